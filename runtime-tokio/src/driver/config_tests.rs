//! The daemon's defaults are the engine's: a graspd started without flags runs the
//! engine exactly as `grasp_core::Config::new` configures it (the simulator's and the
//! core tests' engine), apart from the public URL and the hash key.

use clap::Parser;
use grasp_core::{Config as EngineConfig, Limits};

use super::engine_config;
use crate::config::Config;

#[test]
fn the_daemon_without_flags_runs_the_engine_defaults() {
    let daemon = engine_config(&Config::parse_from(["graspd"])).expect("default config");
    let core = EngineConfig::new(daemon.public_url.clone());
    assert_eq!(daemon.limits, Limits::default(), "caps");
    assert_eq!(
        (
            daemon.purgatory_expiry,
            daemon.announcement_soft_expiry,
            daemon.client_delay,
            daemon.sync_delay,
            daemon.prune_delay,
        ),
        (
            core.purgatory_expiry,
            core.announcement_soft_expiry,
            core.client_delay,
            core.sync_delay,
            core.prune_delay,
        ),
        "durations"
    );
    assert_eq!(
        (
            daemon.domain_concurrency,
            daemon.domain_rate,
            daemon.remote_concurrency,
        ),
        (
            core.domain_concurrency,
            core.domain_rate,
            core.remote_concurrency,
        ),
        "remote request budgets"
    );
    assert_eq!(daemon.maintainer_model, core.maintainer_model);
    assert!(!daemon.curation.is_curated());
}

#[test]
fn the_relay_url_is_the_engines() {
    for (public, relay) in [
        ("http://127.0.0.1:7334", "ws://127.0.0.1:7334"),
        ("https://git.example.com/", "wss://git.example.com"),
        (
            "https://git.example.com/grasp/",
            "wss://git.example.com/grasp",
        ),
        ("https://GIT.example.com:443", "wss://git.example.com"),
    ] {
        let config = Config::parse_from(["graspd", "--public-url", public]);
        assert_eq!(config.relay_url(), relay, "{public}");
        assert_eq!(
            grasp_core::relay_url_of(&public.parse().unwrap()),
            relay,
            "{public}"
        );
    }
}
