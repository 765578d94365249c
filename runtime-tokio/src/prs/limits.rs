//! GRASP-06's limits that the engine cannot see: pushes per client address (an hourly
//! window and a concurrency cap, answered with 429 before the body is read), the pack
//! size, and the disk quotas per npub and in total; and the push outcomes' labels.

use std::collections::{HashMap, VecDeque};
use std::net::IpAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// The configured limits of the contributor endpoint.
#[derive(Debug, Clone)]
pub struct PrsLimits {
    /// Largest decoded pack of one push.
    pub max_push_size: u64,
    /// Pushes per client address per hour.
    pub pushes_per_ip_per_hour: u32,
    /// Pushes from one address at once.
    pub pushes_per_ip_at_once: u32,
    /// Disk of one npub's contributor repositories.
    pub max_bytes_per_pubkey: u64,
    /// Disk of every contributor repository.
    pub max_total_size: u64,
}

impl PrsLimits {
    /// The limits configured on the command line.
    pub fn from_config(config: &crate::config::Config) -> Self {
        Self {
            max_push_size: config.prs_max_push_size,
            pushes_per_ip_per_hour: config.prs_pushes_per_ip_per_hour,
            pushes_per_ip_at_once: 4,
            max_bytes_per_pubkey: config.prs_max_bytes_per_pubkey,
            max_total_size: config.prs_max_total_size,
        }
    }
}

/// How a `/prs/` push ended, the label of `graspd_prs_pushes_total`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// git ran and the push landed.
    Accepted,
    /// A ref was refused (§4), nothing written.
    Refused,
    /// Over `--prs-max-push-size`.
    TooLarge,
    /// Over the per-address rate.
    RateLimited,
    /// Over a disk quota.
    Quota,
}

impl Outcome {
    /// Every outcome with its label, in exposition order.
    pub const ALL: [(Outcome, &'static str); 5] = [
        (Outcome::Accepted, "accepted"),
        (Outcome::Refused, "refused"),
        (Outcome::TooLarge, "too_large"),
        (Outcome::RateLimited, "rate_limited"),
        (Outcome::Quota, "quota"),
    ];
}

/// Why a push was refused before its body was read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RateRefusal {
    /// The hourly count is used up; retry after this long.
    Hourly(Duration),
    /// Too many pushes from the address at once.
    AtOnce,
}

#[derive(Debug, Default)]
struct Client {
    starts: VecDeque<Instant>,
    running: u32,
}

/// Per-address push counting.
#[derive(Debug)]
pub struct PushRate {
    limits: PrsLimits,
    clients: Mutex<HashMap<IpAddr, Client>>,
}

/// A push counted as running for its address until dropped.
#[derive(Debug)]
pub struct Running {
    rate: Arc<PushRate>,
    ip: Option<IpAddr>,
}

const HOUR: Duration = Duration::from_secs(3600);
/// Addresses remembered at most: beyond it the oldest-idle are dropped first.
const MAX_CLIENTS: usize = 100_000;

impl PushRate {
    /// Counting within `limits`.
    pub fn new(limits: PrsLimits) -> Self {
        Self {
            limits,
            clients: Mutex::new(HashMap::new()),
        }
    }

    /// The limits.
    pub fn limits(&self) -> &PrsLimits {
        &self.limits
    }

    /// Counts one push from `ip` starting now, or says why it may not.
    pub fn start(
        self: &Arc<Self>,
        ip: Option<IpAddr>,
        now: Instant,
    ) -> Result<Running, RateRefusal> {
        let Some(addr) = ip else {
            return Ok(Running {
                rate: Arc::clone(self),
                ip,
            });
        };
        let mut map = self.clients.lock().unwrap_or_else(|e| e.into_inner());
        if map.len() >= MAX_CLIENTS {
            map.retain(|_, c| {
                c.running > 0
                    || c.starts
                        .back()
                        .is_some_and(|t| now.duration_since(*t) < HOUR)
            });
        }
        let c = map.entry(addr).or_default();
        while c
            .starts
            .front()
            .is_some_and(|t| now.duration_since(*t) >= HOUR)
        {
            c.starts.pop_front();
        }
        if c.running >= self.limits.pushes_per_ip_at_once {
            return Err(RateRefusal::AtOnce);
        }
        if c.starts.len() >= self.limits.pushes_per_ip_per_hour as usize {
            let oldest = c.starts.front().copied().unwrap_or(now);
            return Err(RateRefusal::Hourly(
                HOUR.saturating_sub(now.duration_since(oldest)),
            ));
        }
        c.starts.push_back(now);
        c.running += 1;
        Ok(Running {
            rate: Arc::clone(self),
            ip,
        })
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        let Some(ip) = self.ip else { return };
        let mut map = self.rate.clients.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(c) = map.get_mut(&ip) {
            c.running = c.running.saturating_sub(1);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rate(per_hour: u32) -> Arc<PushRate> {
        Arc::new(PushRate::new(PrsLimits {
            max_push_size: 1,
            pushes_per_ip_per_hour: per_hour,
            pushes_per_ip_at_once: 2,
            max_bytes_per_pubkey: 1,
            max_total_size: 1,
        }))
    }

    #[test]
    fn hourly_window_and_concurrency() {
        let r = rate(3);
        let ip: IpAddr = "127.0.0.1".parse().unwrap();
        let t = Instant::now();
        let a = r.start(Some(ip), t).unwrap();
        let b = r.start(Some(ip), t).unwrap();
        assert_eq!(r.start(Some(ip), t).unwrap_err(), RateRefusal::AtOnce);
        drop((a, b));
        drop(r.start(Some(ip), t).unwrap());
        assert!(matches!(r.start(Some(ip), t), Err(RateRefusal::Hourly(_))));
        let other: IpAddr = "127.0.0.2".parse().unwrap();
        assert!(r.start(Some(other), t).is_ok());
        assert!(r.start(Some(ip), t + HOUR).is_ok(), "the window slides");
    }
}
