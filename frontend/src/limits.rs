//! Rate limits (governor's GCRA, keyed) and brute-force throttling.
//!
//! - Per client address, on every API request.
//! - Per credential: the verified subject, or, before verification, the token's hash (so a
//!   forged token naming someone's subject cannot use up that subject's allowance).
//! - Failed authentications per client address: past the allowance, the address is refused
//!   every authenticated request (429) for a penalty period, without touching the database.

use std::hash::Hash;
use std::net::IpAddr;
use std::num::NonZeroU32;
use std::sync::Arc;
use std::time::{Duration, Instant};

use governor::clock::{Clock, DefaultClock};
use governor::{DefaultKeyedRateLimiter, Quota, RateLimiter};
use moka::sync::Cache;

use crate::auth::Principal;
use crate::config::Config;

/// Addresses remembered as throttled at most.
const BLOCKED_CAPACITY: u64 = 100_000;

pub struct Limits {
    per_ip: DefaultKeyedRateLimiter<IpAddr>,
    per_key: DefaultKeyedRateLimiter<Principal>,
    failures: DefaultKeyedRateLimiter<IpAddr>,
    blocked: Cache<IpAddr, Instant>,
    penalty: Duration,
}

fn nz(n: u32) -> NonZeroU32 {
    NonZeroU32::new(n.max(1)).expect("at least 1")
}

/// Whole seconds to wait, at least 1: what Retry-After says.
fn ceil_secs(d: Duration) -> u64 {
    d.as_secs() + u64::from(d.subsec_nanos() > 0 || d.is_zero())
}

fn check<K: Hash + Eq + Clone>(limiter: &DefaultKeyedRateLimiter<K>, key: &K) -> Result<(), u64> {
    limiter
        .check_key(key)
        .map_err(|not_until| ceil_secs(not_until.wait_time_from(DefaultClock::default().now())))
}

impl Limits {
    pub fn new(config: &Config) -> Self {
        let per_second = |n: u32| Quota::per_second(nz(n)).allow_burst(nz(n.saturating_mul(2)));
        Self {
            per_ip: RateLimiter::keyed(per_second(config.rate_per_ip)),
            per_key: RateLimiter::keyed(per_second(config.rate_per_key)),
            failures: RateLimiter::keyed(
                Quota::per_minute(nz(config.auth_failures_per_minute))
                    .allow_burst(nz(config.auth_failures_per_minute)),
            ),
            blocked: Cache::builder()
                .max_capacity(BLOCKED_CAPACITY)
                .time_to_live(config.auth_penalty)
                .build(),
            penalty: config.auth_penalty,
        }
    }

    /// `Err(seconds)`: over the address's allowance.
    pub fn check_ip(&self, ip: IpAddr) -> Result<(), u64> {
        check(&self.per_ip, &ip)
    }

    pub fn check_principal(&self, principal: &Principal) -> Result<(), u64> {
        check(&self.per_key, principal)
    }

    /// `Err(seconds)` while the address is throttled for failed authentications.
    pub fn check_throttled(&self, ip: IpAddr) -> Result<(), u64> {
        match self.blocked.get(&ip) {
            Some(until) => match until.checked_duration_since(Instant::now()) {
                Some(left) => Err(ceil_secs(left)),
                None => Ok(()),
            },
            None => Ok(()),
        }
    }

    /// Counts a failed authentication; true when this one starts the penalty.
    pub fn record_failure(&self, ip: IpAddr) -> bool {
        if self.failures.check_key(&ip).is_ok() {
            return false;
        }
        let fresh = self.blocked.get(&ip).is_none();
        self.blocked.insert(ip, Instant::now() + self.penalty);
        fresh
    }

    /// Forgets idle keys (called periodically, so memory follows active clients only).
    pub fn housekeeping(&self) {
        self.per_ip.retain_recent();
        self.per_key.retain_recent();
        self.failures.retain_recent();
        self.per_ip.shrink_to_fit();
        self.per_key.shrink_to_fit();
        self.failures.shrink_to_fit();
    }
}

/// Runs [`Limits::housekeeping`] every minute.
pub fn spawn_housekeeping(limits: Arc<Limits>) {
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(Duration::from_secs(60));
        loop {
            tick.tick().await;
            limits.housekeeping();
        }
    });
}

#[cfg(test)]
mod tests;
