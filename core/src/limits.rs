//! Abuse limits, per isolate, in memory only: requests per IP, heartbeats per visitor, and
//! distinct new visitors per IP per minute (so that one client cannot inflate the count).
//!
//! Nothing here stores an IP address: IPs and visitor ids are kept only as 64-bit keyed
//! hashes whose key rotates every minute, together with the counters, so yesterday's
//! hashes cannot be linked to today's. Counters use fixed one-minute windows.

use std::collections::hash_map::DefaultHasher;
use std::collections::{HashMap, HashSet};
use std::hash::{Hash, Hasher};

use crate::error::{Code, Error};

/// Limits per one-minute window.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LimitConfig {
    /// API requests from one IP (default 600).
    pub ip_per_min: u32,
    /// Heartbeats from one visitor id (default 120).
    pub visitor_per_min: u32,
    /// Distinct visitor ids from one IP (default 60): the most one address can add to a
    /// count.
    pub new_visitors_per_ip_per_min: u32,
    /// The most keys tracked per window; past it, unseen keys are refused (fail closed).
    pub max_tracked: usize,
}

impl Default for LimitConfig {
    fn default() -> Self {
        Self {
            ip_per_min: 600,
            visitor_per_min: 120,
            new_visitors_per_ip_per_min: 60,
            max_tracked: 200_000,
        }
    }
}

const WINDOW_MS: u64 = 60_000;

/// Per-isolate limiter state.
#[derive(Debug)]
pub struct Limiter {
    config: LimitConfig,
    seed: u64,
    window: u64,
    ips: HashMap<u64, u32>,
    visitors: HashMap<u64, u32>,
    visitors_per_ip: HashMap<u64, HashSet<u64>>,
}

impl Limiter {
    /// A limiter whose hash keys derive from `seed` (random per isolate).
    #[must_use]
    pub fn new(config: LimitConfig, seed: u64) -> Self {
        Self {
            config,
            seed,
            window: u64::MAX,
            ips: HashMap::new(),
            visitors: HashMap::new(),
            visitors_per_ip: HashMap::new(),
        }
    }

    fn hash(&self, kind: u8, s: &str) -> u64 {
        let mut h = DefaultHasher::new();
        (self.seed, self.window, kind, s).hash(&mut h);
        h.finish()
    }

    fn roll(&mut self, now_ms: u64) {
        let w = now_ms / WINDOW_MS;
        if w != self.window {
            self.window = w;
            self.ips.clear();
            self.visitors.clear();
            self.visitors_per_ip.clear();
        }
    }

    fn limited(&self, now_ms: u64, what: &str) -> Error {
        let retry = (WINDOW_MS - now_ms % WINDOW_MS).div_ceil(1000).max(1);
        Error::new(Code::RateLimited, format!("too many {what}; retry later"))
            .with_retry_after(u32::try_from(retry).unwrap_or(60))
    }

    /// How many keys the current window tracks (addresses, visitors, and each address's
    /// visitors); all are dropped when the window rolls over.
    #[must_use]
    pub fn tracked(&self) -> usize {
        self.ips.len()
            + self.visitors.len()
            + self
                .visitors_per_ip
                .values()
                .map(|v| 1 + v.len())
                .sum::<usize>()
    }

    /// Counts a request from `ip` (any API route).
    ///
    /// # Errors
    /// 429 `rate_limited` with Retry-After past the per-IP limit.
    pub fn request(&mut self, now_ms: u64, ip: Option<&str>) -> Result<(), Error> {
        self.roll(now_ms);
        let Some(ip) = ip else { return Ok(()) };
        let k = self.hash(0, ip);
        let full = self.ips.len() >= self.config.max_tracked;
        let n = match self.ips.get_mut(&k) {
            Some(n) => n,
            None if full => return Err(self.limited(now_ms, "requests")),
            None => self.ips.entry(k).or_insert(0),
        };
        *n += 1;
        if *n > self.config.ip_per_min {
            return Err(self.limited(now_ms, "requests from this address"));
        }
        Ok(())
    }

    /// Counts a heartbeat from `visitor` at `ip`.
    ///
    /// # Errors
    /// 429 `rate_limited` past the per-visitor limit, or when `ip` has already brought
    /// [`LimitConfig::new_visitors_per_ip_per_min`] other visitors this minute.
    pub fn heartbeat(&mut self, now_ms: u64, ip: Option<&str>, visitor: &str) -> Result<(), Error> {
        self.roll(now_ms);
        let vk = self.hash(1, visitor);
        if let Some(ip) = ip {
            let ik = self.hash(0, ip);
            let full = self.visitors_per_ip.len() >= self.config.max_tracked;
            let cap = self.config.new_visitors_per_ip_per_min as usize;
            let set = match self.visitors_per_ip.get_mut(&ik) {
                Some(s) => s,
                None if full => return Err(self.limited(now_ms, "visitors")),
                None => self.visitors_per_ip.entry(ik).or_default(),
            };
            if !set.contains(&vk) {
                if set.len() >= cap {
                    return Err(self.limited(now_ms, "new visitors from this address"));
                }
                set.insert(vk);
            }
        }
        let full = self.visitors.len() >= self.config.max_tracked;
        let n = match self.visitors.get_mut(&vk) {
            Some(n) => n,
            None if full => return Err(self.limited(now_ms, "visitors")),
            None => self.visitors.entry(vk).or_insert(0),
        };
        *n += 1;
        if *n > self.config.visitor_per_min {
            return Err(self.limited(now_ms, "heartbeats from this visitor"));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn limiter() -> Limiter {
        Limiter::new(
            LimitConfig {
                ip_per_min: 10,
                visitor_per_min: 5,
                new_visitors_per_ip_per_min: 3,
                max_tracked: 100,
            },
            42,
        )
    }

    #[test]
    fn per_ip_requests_reset_each_minute() {
        let mut l = limiter();
        for _ in 0..10 {
            l.request(1_000, Some("1.2.3.4")).expect("under the limit");
        }
        let e = l.request(1_000, Some("1.2.3.4")).expect_err("over");
        assert_eq!(e.code().status(), 429);
        assert_eq!(e.retry_after_s(), Some(59));
        l.request(1_000, Some("5.6.7.8")).expect("another address");
        l.request(61_000, Some("1.2.3.4")).expect("next minute");
    }

    #[test]
    fn one_address_adds_at_most_the_cap_of_visitors() {
        let mut l = limiter();
        let mut accepted = 0;
        for i in 0..50 {
            if l.heartbeat(1_000, Some("1.2.3.4"), &format!("v{i}"))
                .is_ok()
            {
                accepted += 1;
            }
        }
        assert_eq!(accepted, 3);
        l.heartbeat(1_000, Some("1.2.3.4"), "v0")
            .expect("a known visitor still beats");
        l.heartbeat(1_000, Some("9.9.9.9"), "v40")
            .expect("other addresses unaffected");
    }

    #[test]
    fn per_visitor_heartbeats() {
        let mut l = limiter();
        for _ in 0..5 {
            l.heartbeat(0, None, "v").expect("under");
        }
        assert_eq!(
            l.heartbeat(0, None, "v").expect_err("over").code().as_str(),
            "rate_limited"
        );
    }

    #[test]
    fn fails_closed_when_tracking_is_full() {
        let mut l = Limiter::new(
            LimitConfig {
                max_tracked: 2,
                ..LimitConfig::default()
            },
            1,
        );
        l.request(0, Some("a")).expect("1");
        l.request(0, Some("b")).expect("2");
        assert!(l.request(0, Some("c")).is_err());
        l.request(0, Some("a"))
            .expect("tracked addresses still pass");
    }
}
