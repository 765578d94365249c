//! Faults the black-box tests inject into a debug build of graspd. Compiled out of
//! release builds (`debug_assertions` off), so no environment of a production daemon
//! can trigger them.

/// `GRASPD_DEBUG_PANIC_ON_EVENT=1`: the engine task panics on the next client event,
/// so that tests can check that graspd exits when its engine task dies.
#[cfg(debug_assertions)]
pub(super) fn on_event() {
    static PANIC: std::sync::OnceLock<bool> = std::sync::OnceLock::new();
    if *PANIC.get_or_init(|| std::env::var_os("GRASPD_DEBUG_PANIC_ON_EVENT").is_some()) {
        panic!("GRASPD_DEBUG_PANIC_ON_EVENT is set");
    }
}

/// Nothing in a release build.
#[cfg(not(debug_assertions))]
pub(super) fn on_event() {}
