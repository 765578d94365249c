//! The log filter flag and where logs go.
//!
//! `--log-level` takes a level or tracing directives (`info,grasp_runtime=debug`). A
//! tracing filter reads a bare word as a *target* name, so a mistyped level (`loud`)
//! would be accepted and then log nothing at all: every directive must end in a known
//! level. Colour codes are written only to a terminal and never with `NO_COLOR` set
//! (<https://no-color.org>), so that log files and journald get plain text.

use std::io::IsTerminal;

use tracing_subscriber::EnvFilter;

/// The levels a directive may name (case-insensitive), as tracing spells them.
const LEVELS: [&str; 6] = ["off", "error", "warn", "info", "debug", "trace"];

/// Checks a `--log-level` value: comma-separated directives, each a level or
/// `target[span{field=value}]=level`, valid for tracing's filter. Returned with the
/// spaces around directives removed (tracing's parser refuses them).
pub fn parse_log_filter(input: &str) -> Result<String, String> {
    if input.trim().is_empty() {
        return Err("empty log filter (use error, warn, info, debug or trace)".to_owned());
    }
    let directives: Vec<&str> = input.split(',').map(str::trim).collect();
    for &directive in &directives {
        let level = directive.rsplit_once('=').map_or(directive, |(_, l)| l);
        if !LEVELS.iter().any(|known| level.eq_ignore_ascii_case(known)) {
            return Err(format!(
                "`{directive}` names no log level (use error, warn, info, debug or trace, \
                 or directives such as `info,grasp_runtime=debug`)"
            ));
        }
    }
    let text = directives.join(",");
    EnvFilter::try_new(&text).map_err(|e| format!("`{text}`: {e}"))?;
    Ok(text)
}

/// Whether logs written to stderr get ANSI colours: only on a terminal, and only when
/// `NO_COLOR` is unset or empty.
pub fn log_colours(no_color: Option<&std::ffi::OsStr>, stderr_is_terminal: bool) -> bool {
    stderr_is_terminal && no_color.is_none_or(|v| v.is_empty())
}

/// Starts logging to stderr with `filter` (already checked by [`parse_log_filter`]).
pub fn init_logging(filter: &str) -> Result<(), String> {
    let filter = EnvFilter::try_new(filter).map_err(|e| format!("bad --log-level: {e}"))?;
    let ansi = log_colours(
        std::env::var_os("NO_COLOR").as_deref(),
        std::io::stderr().is_terminal(),
    );
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(ansi)
        .try_init()
        .map_err(|e| format!("cannot start logging: {e}"))
}

#[cfg(test)]
mod tests {
    use std::ffi::OsStr;

    use super::*;

    #[test]
    fn levels_and_directives_are_accepted() {
        for good in [
            "info",
            "DEBUG",
            "off",
            "warn,grasp_runtime=debug",
            "grasp_core=trace",
            "info, tower_http=warn",
            "h[span{field=value}]=debug",
        ] {
            assert!(parse_log_filter(good).is_ok(), "{good}");
        }
    }

    #[test]
    fn unknown_levels_are_refused() {
        for bad in ["loud", "", "info,loud", "grasp_runtime", "x=loud", "info,"] {
            let err = parse_log_filter(bad).expect_err(bad);
            assert!(
                err.contains("level") || err.contains("empty"),
                "{bad}: {err}"
            );
        }
    }

    #[test]
    fn colours_only_on_a_terminal_without_no_color() {
        assert!(log_colours(None, true));
        assert!(log_colours(Some(OsStr::new("")), true));
        assert!(!log_colours(Some(OsStr::new("1")), true));
        assert!(!log_colours(None, false));
        assert!(!log_colours(Some(OsStr::new("1")), false));
    }
}
