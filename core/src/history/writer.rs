//! Who writes a site's history: one isolate at a time, elected through the history key
//! itself. The key names its writer, its location and when it was written; the writer
//! rewrites it every [`HistoryConfig::write_ms`] (at its first request after that). Any other
//! isolate takes over only once the key is stale, in two tiers so that KV's lag between
//! locations rarely lets two claim at once:
//! - isolates at the writer's own location (which see its writes, and each other's claims,
//!   without that lag) after a write interval, a twentieth of one and a per-isolate offset
//!   below a quarter of one;
//! - isolates elsewhere a quarter interval later still, spread over a whole interval (two
//!   of them claim together only when their offsets fall within KV's lag of each other).
//!
//! Every write counts itself in the key (`day_writes`): scheduled writes and claims keep to
//! a pace of 90 % of [`HistoryConfig::day_cap`] through the UTC day, the rest is for alerts
//! (written before their call, so that a successor never calls again) and for the writes
//! that two writers racing inside KV's lag count once. A site nobody visits is sampled by
//! nobody, so nobody writes.

use super::stored::{DAY_MS, Stored};

/// The history's tunables.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HistoryConfig {
    /// How often the writer rewrites the history key (`HISTORY_WRITE_S`).
    pub write_ms: u64,
    /// The least time between two writes of one writer (an alert that fires brings the next
    /// write forward, never closer than this): 72 % of `write_ms`, 864 s at the default, so
    /// a writer makes at most 100 writes a day ([`HistoryConfig::max_writes_per_day`]).
    pub spacing_ms: u64,
    /// How long an isolate reuses its copy of the history key before reading it again
    /// (also for `record` in count answers and for `/v1/history`): a sixth of the write
    /// interval, 5 minutes at the default.
    pub read_ms: u64,
    /// The most writes of a site's key in a UTC day, as the writers count them: 100 (the
    /// budget), or more when `write_ms` is so short that its schedule alone needs more (in
    /// development and tests).
    pub day_cap: u64,
    /// How long a writer that has just claimed the key waits before its first alert call:
    /// twice KV's lag ([`KV_LAG_MS`]), by when every rival that read the same stale key has
    /// written its claim and every location sees the same last one; a write interval if that
    /// is shorter (development and tests).
    pub confirm_ms: u64,
}

/// How long a KV write may take to show at other locations (Cloudflare: up to 60 s).
pub const KV_LAG_MS: u64 = 60_000;

/// The budget: history, records and alerts together, per site and UTC day.
pub const TARGET_WRITES_PER_DAY: u64 = 100;

/// Scheduled writes and claims may run this many writes ahead of the day's pace.
const BURST_WRITES: u64 = 5;

/// The default [`HistoryConfig::write_ms`]: 20 minutes (72 scheduled writes a day, room
/// for alerts within 100).
pub const DEFAULT_WRITE_MS: u64 = 20 * 60_000;

impl Default for HistoryConfig {
    fn default() -> Self {
        Self::with_write_ms(DEFAULT_WRITE_MS)
    }
}

impl HistoryConfig {
    /// The config for a write interval, with the reads that go with it.
    #[must_use]
    pub fn with_write_ms(write_ms: u64) -> Self {
        let mut cfg = Self {
            write_ms,
            spacing_ms: (write_ms * 18 / 25).max(1),
            read_ms: (write_ms / 6).max(1_000),
            day_cap: TARGET_WRITES_PER_DAY,
            confirm_ms: (2 * KV_LAG_MS).min(write_ms.max(1_000)),
        };
        cfg.day_cap = cfg.day_cap.max(cfg.max_writes_per_day());
        cfg
    }

    /// The most writes one writer makes in a day under this config.
    #[must_use]
    pub fn max_writes_per_day(&self) -> u64 {
        DAY_MS / self.spacing_ms.max(1)
    }

    /// How old the key must be before `isolate` takes over: sooner at the writer's location
    /// (`same_location`) than elsewhere.
    fn stale_after_ms(&self, isolate: &str, same_location: bool) -> u64 {
        let base = self.write_ms + self.write_ms / 20;
        if same_location {
            base + offset_ms(isolate, (self.write_ms / 4).max(1))
        } else {
            base + self.write_ms / 4 + offset_ms(isolate, self.write_ms.max(1))
        }
    }

    /// Whether a scheduled write or a claim keeps to the day's pace at `now`, given the key's
    /// count (90 % of [`HistoryConfig::day_cap`] spread over the UTC day, a few ahead).
    pub(crate) fn within_pace(&self, stored: Option<&Stored>, now: u64) -> bool {
        let paced = self.day_cap * 9 / 10;
        let into_day = u128::from(now % DAY_MS);
        let earned =
            u64::try_from(u128::from(paced) * into_day / u128::from(DAY_MS)).unwrap_or(paced);
        let allowed = (earned + BURST_WRITES).min(paced);
        stored.map_or(0, |s| s.writes_on(now / DAY_MS)) < allowed
    }

    /// Whether a write for an alert that fired is within the day's cap.
    pub(crate) fn within_cap(&self, stored: Option<&Stored>, now: u64) -> bool {
        stored.map_or(0, |s| s.writes_on(now / DAY_MS)) < self.day_cap
    }
}

/// What an isolate is to a site's history, as its copy of the key says.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Role {
    /// It wrote the key last: it samples, fires alerts and rewrites.
    Writer,
    /// The key is absent or stale: it may take over (by writing).
    Candidate,
    /// Another isolate writes.
    Reader,
}

/// This isolate's offset in `[0, range_ms)` before it takes over a stale key: a hash of its
/// id, so that candidates seeing the same stale key spread out instead of all writing.
fn offset_ms(isolate: &str, range_ms: u64) -> u64 {
    // FNV-1a: stable across builds, which std's hasher is not promised to be.
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in isolate.bytes() {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x0100_0000_01b3);
    }
    h % range_ms.max(1)
}

/// The role of `isolate` (at `location`, if known) at `now`, given its copy of the key.
pub(crate) fn role(
    cfg: &HistoryConfig,
    isolate: &str,
    location: Option<&str>,
    stored: Option<&Stored>,
    now: u64,
) -> Role {
    match stored {
        None => Role::Candidate,
        Some(s) if s.writer == isolate => Role::Writer,
        Some(s) => {
            // Unknown locations count as the same: no tier to wait for.
            let same = match (location, s.location.as_deref()) {
                (Some(a), Some(b)) => a == b,
                _ => true,
            };
            if now
                >= s.written_at
                    .saturating_add(cfg.stale_after_ms(isolate, same))
            {
                Role::Candidate
            } else {
                Role::Reader
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_named_writer_writes_and_others_wait_for_it_to_go_stale() {
        let cfg = HistoryConfig::default();
        let s = Stored {
            writer: "a".into(),
            written_at: 1_000,
            ..Stored::default()
        };
        assert_eq!(role(&cfg, "a", None, Some(&s), 1_000), Role::Writer);
        assert_eq!(
            role(&cfg, "b", None, Some(&s), 1_000 + cfg.write_ms),
            Role::Reader
        );
        assert_eq!(role(&cfg, "b", None, None, 0), Role::Candidate);
        let late = 1_000 + 2 * cfg.write_ms;
        assert_eq!(role(&cfg, "b", None, Some(&s), late), Role::Candidate);
        // Offsets differ between isolates and stay below one interval.
        let offsets: Vec<u64> = ["b", "c", "d", "e"]
            .iter()
            .map(|i| offset_ms(i, cfg.write_ms / 4))
            .collect();
        assert!(offsets.iter().all(|&o| o < cfg.write_ms / 4));
        assert!(offsets.windows(2).any(|w| w[0] != w[1]));
        assert_eq!(cfg.max_writes_per_day(), 100);
        assert_eq!((cfg.day_cap, cfg.confirm_ms), (100, 2 * KV_LAG_MS));
    }

    #[test]
    fn the_writers_location_takes_over_first() {
        let cfg = HistoryConfig::default();
        let s = Stored {
            writer: "a".into(),
            location: Some("here".into()),
            written_at: 0,
            ..Stored::default()
        };
        // Past every same-location offset, before any other location's.
        let t = cfg.write_ms + cfg.write_ms / 20 + cfg.write_ms / 4;
        assert_eq!(role(&cfg, "b", Some("here"), Some(&s), t), Role::Candidate);
        assert_eq!(role(&cfg, "b", Some("there"), Some(&s), t), Role::Reader);
        let later = t + cfg.write_ms;
        assert_eq!(
            role(&cfg, "b", Some("there"), Some(&s), later),
            Role::Candidate
        );
    }

    #[test]
    fn scheduled_writes_keep_to_the_days_pace_and_alerts_to_its_cap() {
        let cfg = HistoryConfig::default();
        let day = 20_000 * DAY_MS;
        let at = |n: u64| Stored {
            day_writes: [20_000, n],
            ..Stored::default()
        };
        // At midnight, a few may go ahead; by noon, 45 of the 90 paced.
        assert!(cfg.within_pace(Some(&at(4)), day));
        assert!(!cfg.within_pace(Some(&at(5)), day));
        assert!(cfg.within_pace(Some(&at(49)), day + DAY_MS / 2));
        assert!(!cfg.within_pace(Some(&at(50)), day + DAY_MS / 2));
        assert!(!cfg.within_pace(Some(&at(90)), day + DAY_MS - 1));
        assert!(cfg.within_cap(Some(&at(99)), day + 1));
        assert!(!cfg.within_cap(Some(&at(100)), day + 1));
        // Yesterday's count does not hold today back.
        assert!(cfg.within_pace(Some(&at(90)), day + DAY_MS));
        // A short interval (development) gets the cap its schedule needs.
        let fast = HistoryConfig::with_write_ms(2_000);
        assert!(fast.day_cap >= DAY_MS / fast.spacing_ms);
        assert_eq!(fast.confirm_ms, 2_000);
    }
}
