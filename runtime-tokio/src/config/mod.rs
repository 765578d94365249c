//! Command-line and environment configuration of `graspd`.
//!
//! Every flag has an environment twin (`GRASPD_*`) so that the same binary can be
//! configured by hand, by a systemd unit or by a container without a config file.
//! Units: sizes accept binary suffixes (`256KiB`, `2GiB`) or plain bytes; durations are
//! humantime strings (`500ms`, `20s`, `3m`, `30min`, `24h`). Lists accept commas or
//! repeated flags.

mod logging;
mod parse;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use clap::Parser;
use nostr::prelude::{PublicKey, Url};

pub use logging::{init_logging, log_colours, parse_log_filter};
pub use parse::{
    format_size, parse_duration, parse_maintainer_model, parse_pubkey, parse_size, parse_usize_size,
};

/// The daemon's configuration, parsed from flags and `GRASPD_*` environment variables.
#[derive(Debug, Clone, Parser)]
#[command(
    name = "graspd",
    version,
    about = "A GRASP server: a nostr relay and a git smart-HTTP server in one binary",
    long_about = "A GRASP server: a nostr relay and a git smart-HTTP server in one binary.\n\n\
        Git pushes are authorized by signed NIP-34 repository state events; events whose \
        git data has not arrived yet wait in purgatory until it does.\n\n\
        Every flag can also be set through the environment variable shown with it. \
        Sizes accept plain bytes or binary suffixes (256KiB, 2GiB); durations are \
        humantime strings (500ms, 20s, 3m, 30min, 24h); lists accept commas or repeated flags."
)]
pub struct Config {
    /// What to do; without a subcommand graspd serves.
    #[command(subcommand)]
    pub command: Option<Subcommand>,

    /// Address and port to listen on (relay, NIP-11 and git HTTP share it); for
    /// `graspd purgatory`, the graspd to ask (before or after the subcommand).
    #[arg(
        long,
        env = "GRASPD_LISTEN",
        default_value = "127.0.0.1:7334",
        global = true
    )]
    pub listen: SocketAddr,

    /// Public base URL clients use to reach this server, e.g. https://git.example.com.
    ///
    /// Announcements must list `<public-url>/<npub>/<identifier>.git` as a clone URL and
    /// the matching ws(s):// URL as a relay to be accepted. Defaults to
    /// http://<listen>, which is only right for local use. A path in it
    /// (https://example.com/git/) is where every route is served; `graspd purgatory`
    /// asks under it too.
    #[arg(long, env = "GRASPD_PUBLIC_URL", global = true)]
    pub public_url: Option<Url>,

    /// Directory holding the event store (`events/`), the bare repos (`repos/`) and the
    /// purgatory journal (`journal.redb`). Created if missing (not by `graspd check`).
    #[arg(
        long,
        env = "GRASPD_DATA_DIR",
        default_value = "./graspd-data",
        global = true
    )]
    pub data_dir: PathBuf,

    /// Relay name published in the NIP-11 document.
    #[arg(long, env = "GRASPD_RELAY_NAME", default_value = "graspd")]
    pub relay_name: String,

    /// Relay description published in the NIP-11 document.
    #[arg(
        long,
        env = "GRASPD_RELAY_DESCRIPTION",
        default_value = "A GRASP server: a nostr relay and git server for NIP-34 repositories"
    )]
    pub relay_description: String,

    /// Operator's public key (npub or hex) published in the NIP-11 document and named
    /// by `/.well-known/nostr.json` (NIP-05: `_` and the relay name, when it is a valid
    /// NIP-05 name, map to it).
    #[arg(long, env = "GRASPD_RELAY_OWNER", value_parser = parse_pubkey)]
    pub relay_owner: Option<PublicKey>,

    /// URL of the relay's icon (a square image) published in the NIP-11 document.
    #[arg(long, env = "GRASPD_RELAY_ICON")]
    pub relay_icon: Option<Url>,

    /// Operator contact (an email or URL) published in the NIP-11 document.
    #[arg(long, env = "GRASPD_RELAY_CONTACT")]
    pub relay_contact: Option<String>,

    /// Largest accepted event, measured as its JSON. Bigger events get
    /// `OK false "invalid: event too large …"` and the connection stays open.
    #[arg(long, env = "GRASPD_MAX_EVENT_SIZE", default_value = "256KiB", value_parser = parse_usize_size)]
    pub max_event_size: usize,

    /// Largest websocket message. A bigger one closes the connection (the websocket
    /// layer cannot skip it), so keep this above the event size limit.
    #[arg(long, env = "GRASPD_MAX_MESSAGE_SIZE", default_value = "1MiB", value_parser = parse_usize_size)]
    pub max_message_size: usize,

    /// Open subscriptions allowed per connection; a REQ beyond it gets CLOSED
    /// `rate-limited: …`.
    #[arg(long, env = "GRASPD_MAX_SUBSCRIPTIONS", default_value_t = 64)]
    pub max_subscriptions: usize,

    /// Filters allowed in one REQ; more gets CLOSED `error: …`.
    #[arg(long, env = "GRASPD_MAX_FILTERS", default_value_t = 20)]
    pub max_filters: usize,

    /// Most stored events one filter returns before EOSE (a filter's own smaller
    /// `limit` wins). Bounds the memory a single REQ can make the server use.
    #[arg(long, env = "GRASPD_MAX_QUERY_LIMIT", default_value_t = 5000)]
    pub max_query_limit: usize,

    /// Largest REQ message, the size its filters are counted by (a parsed filter takes
    /// several times its JSON). A bigger REQ gets CLOSED `error: filters too large …`.
    #[arg(long, env = "GRASPD_MAX_FILTER_BYTES", default_value = "128KiB", value_parser = parse_usize_size)]
    pub max_filter_bytes: usize,

    /// Bytes of the REQs of all open subscriptions of one connection together; a REQ
    /// beyond it gets CLOSED `error: …; CLOSE some first`.
    #[arg(long, env = "GRASPD_MAX_CONNECTION_FILTER_BYTES", default_value = "512KiB", value_parser = parse_usize_size)]
    pub max_connection_filter_bytes: usize,

    /// Bytes of events one connection may hold unsent: a REQ's stored events are read in
    /// pages that fit (the next page only once the client has taken the last), and live
    /// events waiting for their subscription's EOSE count too; a subscription whose
    /// waiting live events would pass it gets CLOSED `error: too slow …`.
    #[arg(long, env = "GRASPD_MAX_CONNECTION_BUFFER", default_value = "1MiB", value_parser = parse_usize_size)]
    pub max_connection_buffer: usize,

    /// Reads of stored events (a REQ's listing or one of its pages) running at once over
    /// every connection; the others wait their turn.
    #[arg(long, env = "GRASPD_MAX_CONCURRENT_QUERIES", default_value_t = 8)]
    pub max_concurrent_queries: usize,

    /// Events a connection may publish in one burst (token-bucket size). Beyond it,
    /// events get `OK false "rate-limited: …"` until tokens refill.
    #[arg(long, env = "GRASPD_EVENT_BURST", default_value_t = 500)]
    pub event_burst: u32,

    /// Sustained events per second per connection (token-bucket refill rate).
    #[arg(long, env = "GRASPD_EVENT_RATE", default_value_t = 100.0)]
    pub event_rate: f64,

    /// Largest push (request body after gzip decoding). A bigger push is aborted and
    /// refused; nothing is written.
    #[arg(long, env = "GRASPD_MAX_PUSH_SIZE", default_value = "2GiB", value_parser = parse_size)]
    pub max_push_size: u64,

    /// A push or fetch whose request body sends no byte for this long is aborted: its
    /// git child is killed and nothing is written.
    #[arg(long, env = "GRASPD_BODY_STALL_TIMEOUT", default_value = "30s", value_parser = parse_duration)]
    pub body_stall_timeout: Duration,

    /// Pushes (`git receive-pack` children) running at once; more get 503 at once.
    #[arg(long, env = "GRASPD_MAX_PUSHES", default_value_t = 32)]
    pub max_pushes: usize,

    /// Pushes running at once from one client address (IPv6: one /64).
    #[arg(long, env = "GRASPD_MAX_PUSHES_PER_CLIENT", default_value_t = 4)]
    pub max_pushes_per_client: usize,

    /// Open connections (HTTP and websocket) at once; beyond it a new connection gets
    /// 503 and is closed. Default: half the open-file limit (raised to its hard limit
    /// at start) after 256 kept for the stores and git children's pipes.
    #[arg(long, env = "GRASPD_MAX_CONNECTIONS")]
    pub max_connections: Option<usize>,

    /// Open connections at once from one client address (IPv6: one /64).
    #[arg(long, env = "GRASPD_MAX_CONNECTIONS_PER_CLIENT", default_value_t = 64)]
    pub max_connections_per_client: usize,

    /// Reverse proxies (CIDRs, comma-separated) whose `X-Forwarded-For` / `Forwarded`
    /// headers name the client: every per-address limit then counts the forwarded
    /// address, and the proxy's own connections count toward the total cap only.
    #[arg(
        long = "trusted-proxy",
        env = "GRASPD_TRUSTED_PROXIES",
        value_delimiter = ','
    )]
    pub trusted_proxies: Vec<ipnet::IpNet>,

    /// Clients (CIDRs, comma-separated) that may read `/metrics` and the purgatory view.
    #[arg(
        long = "metrics-allow",
        env = "GRASPD_METRICS_ALLOW",
        value_delimiter = ',',
        default_value = "127.0.0.0/8,::1/128"
    )]
    pub metrics_allow: Vec<ipnet::IpNet>,

    /// How long a client may take to send a request's headers (also the longest a
    /// kept-alive HTTP connection may sit idle between requests).
    #[arg(long, env = "GRASPD_HEADER_TIMEOUT", default_value = "10s", value_parser = parse_duration)]
    pub header_timeout: Duration,

    /// A websocket with no open subscription that sends nothing for this long is
    /// closed.
    #[arg(long, env = "GRASPD_IDLE_WEBSOCKET_TIMEOUT", default_value = "120s", value_parser = parse_duration)]
    pub idle_websocket_timeout: Duration,

    /// How long an event waits in purgatory for its git data before it is dropped.
    #[arg(long, env = "GRASPD_PURGATORY_EXPIRY", default_value = "30min", value_parser = parse_duration)]
    pub purgatory_expiry: Duration,

    /// How long an expired announcement is kept (without its repo) so that a late state
    /// event can revive it, before it is forgotten.
    #[arg(long, env = "GRASPD_ANNOUNCEMENT_SOFT_EXPIRY", default_value = "24h", value_parser = parse_duration)]
    pub announcement_soft_expiry: Duration,

    /// Most concurrent fetch requests to one remote domain.
    #[arg(long, env = "GRASPD_DOMAIN_CONCURRENCY", default_value_t = grasp_core::Config::DEFAULT_DOMAIN_CONCURRENCY)]
    pub domain_concurrency: u32,

    /// Most fetch requests to one remote domain in any sliding 60 s window.
    #[arg(long, env = "GRASPD_DOMAIN_RATE_PER_MINUTE", default_value_t = grasp_core::Config::DEFAULT_DOMAIN_RATE)]
    pub domain_rate_per_minute: u32,

    /// Remote git requests (ls-remote, fetch) in flight over every domain together:
    /// strangers' clone URLs may name any number of domains.
    #[arg(long, env = "GRASPD_MAX_REMOTE_REQUESTS", default_value_t = grasp_core::Config::DEFAULT_REMOTE_CONCURRENCY)]
    pub max_remote_requests: u32,

    /// Delay before hunting remote servers for the data of an event a client sent
    /// (a push usually follows within it).
    #[arg(long, env = "GRASPD_CLIENT_SYNC_DELAY", default_value = "180s", value_parser = parse_duration)]
    pub client_sync_delay: Duration,

    /// Delay before fetching the data of events that arrived through relay sync
    /// (batches bursts into one fetch per repository).
    #[arg(long, env = "GRASPD_SYNC_DELAY", default_value = "500ms", value_parser = parse_duration)]
    pub sync_delay: Duration,

    /// Time limit of one fetch from a remote git server; a fetch still running then is
    /// killed and counted as a failure.
    #[arg(long, env = "GRASPD_FETCH_TIMEOUT", default_value = "120s", value_parser = parse_duration)]
    pub fetch_timeout: Duration,

    /// Allow fetching from loopback, private and link-local addresses. Off by default
    /// (clone URLs come from strangers); tests and private deployments turn it on.
    #[arg(long, env = "GRASPD_ALLOW_PRIVATE_ADDRESSES")]
    pub allow_private_addresses: bool,

    /// Only these authors (npub or hex) may announce repositories. Empty: anyone.
    #[arg(long = "allow-pubkey", env = "GRASPD_ALLOW_PUBKEYS", value_delimiter = ',', value_parser = parse_pubkey)]
    pub allow_pubkeys: Vec<PublicKey>,

    /// These authors (npub or hex) are refused with `blocked: …`.
    #[arg(long = "deny-pubkey", env = "GRASPD_DENY_PUBKEYS", value_delimiter = ',', value_parser = parse_pubkey)]
    pub deny_pubkeys: Vec<PublicKey>,

    /// Only repositories with these identifiers (`d` tags) are hosted. Empty: any.
    #[arg(
        long = "allow-identifier",
        env = "GRASPD_ALLOW_IDENTIFIERS",
        value_delimiter = ','
    )]
    pub allow_identifiers: Vec<String>,

    /// Repositories with these identifiers are refused with `blocked: …`.
    #[arg(
        long = "deny-identifier",
        env = "GRASPD_DENY_IDENTIFIERS",
        value_delimiter = ','
    )]
    pub deny_identifiers: Vec<String>,

    /// Who counts as a maintainer (docs/engine.md, "The maintainer model"): `reciprocal`
    /// (a listed key counts once its own announcement lists a confirmed maintainer back;
    /// role tags M/m/o; what ngit 3.x writes) or `listed` (the flat rule of older servers:
    /// everyone reachable through listings, invitations included).
    #[arg(long, env = "GRASPD_MAINTAINER_MODEL", default_value = "reciprocal", value_parser = parse_maintainer_model)]
    pub maintainer_model: grasp_core::MaintainerModel,

    /// Most repositories one author may have hosted here.
    #[arg(long, env = "GRASPD_MAX_REPOS_PER_AUTHOR", default_value_t = grasp_core::Limits::DEFAULT.repos_per_author)]
    pub max_repos_per_author: usize,

    /// Most announcements waiting in purgatory on the whole server: each holds a bare
    /// repository on disk, and new keys are free, so the per-author cap alone does not
    /// bound them.
    #[arg(long, env = "GRASPD_MAX_WAITING_REPOS", default_value_t = grasp_core::Limits::DEFAULT.waiting_repos_total)]
    pub max_waiting_repos: usize,
    /// Most announcements of one identifier (one per key): what one more announcement
    /// of an identifier costs grows with the others, and anyone may announce any.
    #[arg(long, env = "GRASPD_MAX_REPOS_PER_IDENTIFIER", default_value_t = grasp_core::Limits::DEFAULT.repos_per_identifier)]
    pub max_repos_per_identifier: usize,

    /// Most events one author may have waiting in purgatory at once.
    #[arg(long, env = "GRASPD_MAX_PURGATORY_PER_AUTHOR", default_value_t = grasp_core::Limits::DEFAULT.purgatory_per_author)]
    pub max_purgatory_per_author: usize,

    /// Bytes of every event waiting in purgatory together (their JSON).
    #[arg(long, env = "GRASPD_MAX_PURGATORY_BYTES", default_value = "1GiB", value_parser = parse_size)]
    pub max_purgatory_bytes: u64,

    /// Bytes of one author's events waiting in purgatory.
    #[arg(long, env = "GRASPD_MAX_PURGATORY_BYTES_PER_AUTHOR", default_value = "16MiB", value_parser = parse_size)]
    pub max_purgatory_bytes_per_author: u64,

    /// Most new `refs/nostr/<event-id>` placeholders (commits pushed before their pull
    /// request) one push may create. Placeholders need no key, so they have a budget of
    /// their own, apart from purgatory's events.
    #[arg(long, env = "GRASPD_MAX_PLACEHOLDERS_PER_PUSH", default_value_t = grasp_core::Limits::DEFAULT.placeholders_per_push)]
    pub max_placeholders_per_push: usize,

    /// Most placeholders one repository may hold.
    #[arg(
        long,
        env = "GRASPD_MAX_PLACEHOLDERS_PER_REPO",
        default_value_t = grasp_core::Limits::DEFAULT.placeholders_per_repo
    )]
    pub max_placeholders_per_repo: usize,

    /// Most placeholders pushed from one client address.
    #[arg(
        long,
        env = "GRASPD_MAX_PLACEHOLDERS_PER_ADDRESS",
        default_value_t = grasp_core::Limits::DEFAULT.placeholders_per_client
    )]
    pub max_placeholders_per_address: usize,

    /// Most placeholders on the server.
    #[arg(long, env = "GRASPD_MAX_PLACEHOLDERS", default_value_t = grasp_core::Limits::DEFAULT.placeholders_total)]
    pub max_placeholders: usize,

    /// How long after a `refs/nostr/` placeholder expires its repository's unreachable
    /// objects are pruned; further expiries in that repository meanwhile join the same
    /// prune, so a repository is pruned at most once per this interval.
    #[arg(long, env = "GRASPD_PRUNE_DELAY", default_value = "5min", value_parser = parse_duration)]
    pub prune_delay: Duration,

    /// Objects younger than this survive a prune (a fetch or copy that just landed and is
    /// not referenced yet).
    #[arg(long, env = "GRASPD_PRUNE_GRACE", default_value = "10min", value_parser = parse_duration)]
    pub prune_grace: Duration,

    /// GRASP-06: serve the contributor endpoint `/prs/<npub>/<identifier>.git`, where
    /// anyone may push a pull request's commits to `refs/nostr/<event-id>`, and accept
    /// pull requests whose `clone` names it. Off: `/prs/` is a 404.
    #[arg(long, env = "GRASPD_GRASP06")]
    pub grasp06: bool,

    /// How long a `/prs/` push whose pull request event has not arrived keeps its ref.
    #[arg(long, env = "GRASPD_PRS_PLACEHOLDER_EXPIRY", default_value = "20min", value_parser = parse_duration)]
    pub prs_placeholder_expiry: Duration,

    /// Pull requests accepted only because their `clone` names our `/prs/` URL that may
    /// wait at once per signer.
    #[arg(long, env = "GRASPD_PRS_MAX_WAITING_PER_AUTHOR", default_value_t = 20)]
    pub prs_max_waiting_per_author: usize,

    /// Largest `/prs/` push (decoded pack).
    #[arg(long, env = "GRASPD_PRS_MAX_PUSH_SIZE", default_value = "100MiB", value_parser = parse_size)]
    pub prs_max_push_size: u64,

    /// `/prs/` pushes per client address per hour (4 at once): more get 429.
    #[arg(long, env = "GRASPD_PRS_PUSHES_PER_IP_PER_HOUR", default_value_t = 30)]
    pub prs_pushes_per_ip_per_hour: u32,

    /// Disk used by one npub's `/prs/` repositories.
    #[arg(long, env = "GRASPD_PRS_MAX_BYTES_PER_PUBKEY", default_value = "1GiB", value_parser = parse_size)]
    pub prs_max_bytes_per_pubkey: u64,

    /// Disk used by every `/prs/` repository together.
    #[arg(long, env = "GRASPD_PRS_MAX_TOTAL_SIZE", default_value = "20GiB", value_parser = parse_size)]
    pub prs_max_total_size: u64,

    /// Log filter: a level (error, warn, info, debug, trace, off) or tracing directives
    /// such as `info,grasp_runtime=debug`; an unknown level is refused. Logs go to
    /// stderr, coloured only on a terminal and never with `NO_COLOR` set.
    #[arg(long, env = "GRASPD_LOG", default_value = "info", value_parser = parse_log_filter, global = true)]
    pub log_level: String,
}

/// Operator subcommands.
#[derive(Debug, Clone, clap::Subcommand)]
pub enum Subcommand {
    /// Show what waits in purgatory and the sync queue of the graspd running at
    /// `--listen` (asks its loopback-only `/purgatory.json`).
    Purgatory {
        /// Print the raw JSON instead of a table.
        #[arg(long)]
        json: bool,
    },
    /// Check the data directory (`--data-dir`, before or after the subcommand) with
    /// graspd stopped: journal, stored states against the repositories, repositories
    /// without announcements, leftovers. Exits 1 when something is wrong.
    Check,
}

impl Config {
    /// The public base URL, without a trailing slash: the configured one or
    /// `http://<listen>`.
    pub fn public_base(&self) -> String {
        match &self.public_url {
            Some(url) => url.as_str().trim_end_matches('/').to_owned(),
            None => format!("http://{}", self.listen),
        }
    }

    /// The relay URL clients connect to: the public URL with `ws`/`wss` for the scheme.
    pub fn relay_url(&self) -> String {
        match url::Url::parse(&self.public_base()) {
            Ok(url) => grasp_core::relay_url_of(&url),
            Err(_) => self.public_base(),
        }
    }

    /// Whether operators restricted who or what is hosted beyond spam prevention
    /// (NIP-11 then carries a `curation` statement).
    pub fn is_curated(&self) -> bool {
        self.curation().is_curated()
    }

    /// The allow and deny lists, as the engine takes them.
    pub fn curation(&self) -> grasp_core::Curation {
        grasp_core::Curation {
            allow_pubkeys: self.allow_pubkeys.iter().copied().collect(),
            deny_pubkeys: self.deny_pubkeys.iter().copied().collect(),
            allow_identifiers: self.allow_identifiers.iter().cloned().collect(),
            deny_identifiers: self.deny_identifiers.iter().cloned().collect(),
        }
    }

    /// The path every route is served under: the public URL's path without its trailing
    /// slash (`/git` for `https://example.com/git/`), empty when served at the root.
    pub fn base_path(&self) -> String {
        self.public_url
            .as_ref()
            .map(|url| url.path().trim_end_matches('/').to_owned())
            .unwrap_or_default()
    }

    /// Where the event store lives.
    pub fn events_dir(&self) -> PathBuf {
        self.data_dir.join("events")
    }

    /// Where the bare repositories live.
    pub fn repos_dir(&self) -> PathBuf {
        self.data_dir.join("repos")
    }

    /// Checks relations between values that clap cannot express.
    pub fn validate(&self) -> Result<(), String> {
        if self.max_message_size < self.max_event_size {
            return Err(format!(
                "--max-message-size ({}) must be at least --max-event-size ({})",
                format_size(self.max_message_size as u64),
                format_size(self.max_event_size as u64)
            ));
        }
        if !(self.event_rate.is_finite() && self.event_rate > 0.0) {
            return Err("--event-rate must be a positive number".into());
        }
        if self.header_timeout.is_zero() || self.body_stall_timeout.is_zero() {
            return Err("--header-timeout and --body-stall-timeout must be above zero".into());
        }
        if self.max_pushes == 0
            || self.max_pushes_per_client == 0
            || self.max_connections_per_client == 0
            || self.max_connections == Some(0)
        {
            return Err(
                "--max-pushes, --max-pushes-per-client, --max-connections and \
                 --max-connections-per-client must be at least 1"
                    .into(),
            );
        }
        if self.idle_websocket_timeout.is_zero() {
            return Err("--idle-websocket-timeout must be above zero".into());
        }
        if self.max_filter_bytes == 0
            || self.max_connection_filter_bytes == 0
            || self.max_connection_buffer == 0
            || self.max_concurrent_queries == 0
        {
            return Err(
                "--max-filter-bytes, --max-connection-filter-bytes, --max-connection-buffer \
                 and --max-concurrent-queries must be at least 1"
                    .into(),
            );
        }
        if self.event_burst == 0 {
            return Err("--event-burst must be at least 1".into());
        }
        if let Some(url) = &self.public_url {
            if !matches!(url.scheme(), "http" | "https") {
                return Err(format!("--public-url must be http(s), got `{url}`"));
            }
            if url.query().is_some() || url.fragment().is_some() {
                return Err(format!(
                    "--public-url must not have a query or fragment, got `{url}`"
                ));
            }
        }
        if let Some(url) = &self.relay_icon {
            if !matches!(url.scheme(), "http" | "https") {
                return Err(format!("--relay-icon must be http(s), got `{url}`"));
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use clap::CommandFactory;

    use super::*;

    fn parse(args: &[&str]) -> Config {
        let mut argv = vec!["graspd"];
        argv.extend_from_slice(args);
        Config::try_parse_from(argv).expect("valid args")
    }

    #[test]
    fn clap_definition_is_consistent() {
        Config::command().debug_assert();
    }

    #[test]
    fn defaults_match_the_documented_numbers() {
        let config = parse(&[]);
        assert_eq!(config.listen.to_string(), "127.0.0.1:7334");
        assert_eq!(config.public_base(), "http://127.0.0.1:7334");
        assert_eq!(config.relay_url(), "ws://127.0.0.1:7334");
        assert_eq!(config.max_event_size, 256 * 1024);
        assert_eq!(config.max_subscriptions, 64);
        assert_eq!(config.max_filter_bytes, 128 * 1024);
        assert_eq!(config.max_connection_filter_bytes, 512 * 1024);
        assert_eq!(config.max_connection_buffer, 1 << 20);
        assert_eq!(config.max_concurrent_queries, 8);
        assert_eq!(config.event_burst, 500);
        assert_eq!(config.max_push_size, 2 << 30);
        assert_eq!(config.purgatory_expiry, Duration::from_secs(30 * 60));
        assert_eq!(config.prune_delay, Duration::from_secs(5 * 60));
        assert_eq!(config.prune_grace, Duration::from_secs(10 * 60));
        assert_eq!(config.domain_concurrency, 5);
        assert_eq!(config.domain_rate_per_minute, 30);
        assert_eq!(config.client_sync_delay, Duration::from_secs(180));
        assert_eq!(config.sync_delay, Duration::from_millis(500));
        assert_eq!(config.fetch_timeout, Duration::from_secs(120));
        assert_eq!(config.body_stall_timeout, Duration::from_secs(30));
        assert_eq!(config.max_pushes, 32);
        assert_eq!(config.max_pushes_per_client, 4);
        assert_eq!(config.max_connections, None);
        assert_eq!(config.max_connections_per_client, 64);
        assert_eq!(config.header_timeout, Duration::from_secs(10));
        assert_eq!(config.idle_websocket_timeout, Duration::from_secs(120));
        assert!(!config.allow_private_addresses);
        assert!(!config.is_curated());
        assert!(config.validate().is_ok());
    }

    #[test]
    fn lists_accept_commas_and_repetition() {
        let config = parse(&[
            "--deny-identifier",
            "spam,junk",
            "--deny-identifier",
            "more",
        ]);
        assert_eq!(config.deny_identifiers, ["spam", "junk", "more"]);
        assert!(config.is_curated());
    }

    #[test]
    fn https_public_url_gives_wss_relay() {
        let config = parse(&["--public-url", "https://git.example.com/"]);
        assert_eq!(config.public_base(), "https://git.example.com");
        assert_eq!(config.relay_url(), "wss://git.example.com");
    }

    #[test]
    fn base_path_is_the_public_url_path() {
        assert_eq!(parse(&[]).base_path(), "");
        assert_eq!(
            parse(&["--public-url", "https://git.example.com/"]).base_path(),
            ""
        );
        let config = parse(&["--public-url", "https://example.com/git/"]);
        assert_eq!(config.base_path(), "/git");
        assert_eq!(config.public_base(), "https://example.com/git");
        assert_eq!(config.relay_url(), "wss://example.com/git");
        assert_eq!(
            parse(&["--public-url", "https://example.com/a/b"]).base_path(),
            "/a/b"
        );
    }

    #[test]
    fn validate_rejects_odd_public_and_icon_urls() {
        for args in [
            ["--public-url", "https://example.com/git?x=1"],
            ["--public-url", "https://example.com/git#top"],
            ["--relay-icon", "ftp://example.com/icon.png"],
        ] {
            assert!(parse(&args).validate().is_err(), "{args:?} accepted");
        }
        assert!(
            parse(&["--relay-icon", "https://example.com/icon.png"])
                .validate()
                .is_ok()
        );
    }

    #[test]
    fn validate_rejects_zero_caps_and_timeouts() {
        for args in [
            ["--max-pushes", "0"],
            ["--max-pushes-per-client", "0"],
            ["--max-connections", "0"],
            ["--max-connections-per-client", "0"],
            ["--header-timeout", "0s"],
            ["--body-stall-timeout", "0s"],
            ["--idle-websocket-timeout", "0s"],
            ["--max-filter-bytes", "0"],
            ["--max-connection-filter-bytes", "0"],
            ["--max-connection-buffer", "0"],
            ["--max-concurrent-queries", "0"],
        ] {
            assert!(parse(&args).validate().is_err(), "{args:?} accepted");
        }
    }

    #[test]
    fn validate_rejects_message_smaller_than_event() {
        let config = parse(&["--max-message-size", "1KiB"]);
        assert!(config.validate().is_err());
    }

    #[test]
    fn unknown_log_levels_are_refused() {
        let err = Config::try_parse_from(["graspd", "--log-level", "loud"]).expect_err("loud");
        assert!(err.to_string().contains("names no log level"), "{err}");
        assert_eq!(parse(&["--log-level", "debug"]).log_level, "debug");
        assert_eq!(
            parse(&["--log-level", "info,grasp_runtime=trace"]).log_level,
            "info,grasp_runtime=trace"
        );
    }

    #[test]
    fn purgatory_takes_listen_before_or_after_the_subcommand() {
        for args in [
            &["purgatory", "--listen", "127.0.0.1:9"][..],
            &["--listen", "127.0.0.1:9", "purgatory"],
            &["purgatory", "--json", "--listen", "127.0.0.1:9"],
        ] {
            let config = parse(args);
            assert_eq!(config.listen.to_string(), "127.0.0.1:9", "{args:?}");
            assert!(
                matches!(config.command, Some(Subcommand::Purgatory { .. })),
                "{args:?}"
            );
        }
        let config = parse(&["purgatory", "--log-level", "warn"]);
        assert_eq!(config.log_level, "warn");
    }

    #[test]
    fn every_flag_has_help_and_env() {
        let command = Config::command();
        for arg in command.get_arguments() {
            let id = arg.get_id().as_str();
            if matches!(id, "help" | "version") {
                continue;
            }
            assert!(arg.get_help().is_some(), "--{id} has no help");
            assert!(arg.get_env().is_some(), "--{id} has no env twin");
        }
    }
}
