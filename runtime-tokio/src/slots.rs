//! Bounded slots: at most `total` holders at once, and at most `per_client` of them
//! from one client address. Used for connections and for concurrent pushes, so that
//! one client cannot take everything and a full server refuses at once instead of
//! queueing.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::{Arc, Mutex};

use tokio::sync::{OwnedSemaphorePermit, Semaphore};

/// Slots held per client address.
type Held = Arc<Mutex<HashMap<IpAddr, usize>>>;

/// Why no slot was free.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Full {
    /// Every slot is taken.
    Total,
    /// This client holds its share.
    PerClient,
}

/// A pool of slots.
#[derive(Debug)]
pub struct Slots {
    total: Arc<Semaphore>,
    per_client: usize,
    held: Held,
}

/// One taken slot; dropping it frees the slot.
#[derive(Debug)]
pub struct Slot {
    _total: OwnedSemaphorePermit,
    client: Option<(IpAddr, Held)>,
}

impl Slots {
    /// `total` slots, `per_client` of them per client address (0 means no slots).
    pub fn new(total: usize, per_client: usize) -> Self {
        Self {
            total: Arc::new(Semaphore::new(total.min(Semaphore::MAX_PERMITS))),
            per_client,
            held: Arc::default(),
        }
    }

    /// Takes a slot for `client` (no per-client share without an address), or says
    /// why there is none.
    pub fn try_take(&self, client: Option<IpAddr>) -> Result<Slot, Full> {
        let client = client.map(client_key);
        let mut held_by_client = None;
        if let Some(ip) = client {
            let mut held = self.held.lock().unwrap_or_else(|e| e.into_inner());
            let count = held.entry(ip).or_insert(0);
            if *count >= self.per_client {
                if *count == 0 {
                    held.remove(&ip);
                }
                return Err(Full::PerClient);
            }
            *count += 1;
            held_by_client = Some((ip, Arc::clone(&self.held)));
        }
        // Built before the semaphore so that a failure below gives the share back.
        let mut slot = PartialSlot(held_by_client);
        let total = Arc::clone(&self.total)
            .try_acquire_owned()
            .map_err(|_| Full::Total)?;
        Ok(Slot {
            _total: total,
            client: slot.0.take(),
        })
    }

    /// Slots free now (for metrics and tests).
    pub fn available(&self) -> usize {
        self.total.available_permits()
    }
}

/// A per-client share taken before the total one, given back if that fails.
struct PartialSlot(Option<(IpAddr, Held)>);

impl Drop for PartialSlot {
    fn drop(&mut self) {
        if let Some((ip, held)) = self.0.take() {
            release(&held, ip);
        }
    }
}

impl Drop for Slot {
    fn drop(&mut self) {
        if let Some((ip, held)) = self.client.take() {
            release(&held, ip);
        }
    }
}

fn release(held: &Mutex<HashMap<IpAddr, usize>>, ip: IpAddr) {
    let mut held = held.lock().unwrap_or_else(|e| e.into_inner());
    if let Some(count) = held.get_mut(&ip) {
        *count -= 1;
        if *count == 0 {
            held.remove(&ip);
        }
    }
}

/// The address a client is counted under: IPv4 as is (also when mapped into IPv6),
/// IPv6 by its /64, which one subscriber usually gets whole.
pub fn client_key(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V4(_) => ip,
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => IpAddr::V4(v4),
            None => {
                let bits = u128::from(v6) & !((1u128 << 64) - 1);
                IpAddr::V6(bits.into())
            }
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> Option<IpAddr> {
        Some(s.parse().expect("ip"))
    }

    #[test]
    fn per_client_and_total_caps() {
        let slots = Slots::new(3, 2);
        let a1 = slots.try_take(ip("10.0.0.1")).expect("a1");
        let a2 = slots.try_take(ip("10.0.0.1")).expect("a2");
        assert_eq!(
            slots.try_take(ip("10.0.0.1")).expect_err("a3"),
            Full::PerClient
        );
        let b1 = slots.try_take(ip("10.0.0.2")).expect("b1");
        assert_eq!(slots.try_take(ip("10.0.0.3")).expect_err("c1"), Full::Total);
        assert_eq!(slots.try_take(None).expect_err("no address"), Full::Total);
        drop(a1);
        let a3 = slots
            .try_take(ip("10.0.0.1"))
            .expect("a slot freed by its client");
        drop((a2, a3, b1));
        assert_eq!(slots.available(), 3);
        assert!(
            slots.held.lock().expect("lock").is_empty(),
            "no counts left"
        );
    }

    #[test]
    fn a_refused_total_gives_the_client_share_back() {
        let slots = Slots::new(1, 5);
        let _b = slots.try_take(ip("10.0.0.2")).expect("b");
        for _ in 0..10 {
            assert_eq!(
                slots.try_take(ip("10.0.0.1")).expect_err("full"),
                Full::Total
            );
        }
        assert_eq!(
            slots
                .held
                .lock()
                .expect("lock")
                .get(&"10.0.0.1".parse().expect("ip")),
            None
        );
    }

    #[test]
    fn ipv6_counts_by_its_64_and_mapped_v4_as_v4() {
        assert_eq!(
            client_key("2001:db8:1:2:aaaa::1".parse().expect("v6")),
            "2001:db8:1:2::".parse::<IpAddr>().expect("v6")
        );
        assert_eq!(
            client_key("::ffff:192.0.2.7".parse().expect("mapped")),
            "192.0.2.7".parse::<IpAddr>().expect("v4")
        );
        let slots = Slots::new(10, 1);
        let _a = slots.try_take(ip("2001:db8::1")).expect("a");
        assert_eq!(
            slots.try_take(ip("2001:db8::ffff")).expect_err("same /64"),
            Full::PerClient
        );
    }
}
