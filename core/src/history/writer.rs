//! Who writes a site's history: one isolate at a time, elected through the history key
//! itself. The key names its writer and when it was written; the writer rewrites it every
//! [`HistoryConfig::write_ms`] (at its first request after that); any other isolate takes
//! over only once the key is stale — a write interval, a twentieth of one and a
//! per-isolate offset (below a quarter of one) old — so that an evicted writer is replaced
//! soon and isolates seeing the same stale key do not all claim it at the same instant. A
//! site nobody visits is sampled by nobody, so nobody writes.

use super::stored::Stored;

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
}

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
        Self {
            write_ms,
            spacing_ms: (write_ms * 18 / 25).max(1),
            read_ms: (write_ms / 6).max(1_000),
        }
    }

    /// The most writes one writer makes in a day under this config.
    #[must_use]
    pub fn max_writes_per_day(&self) -> u64 {
        super::stored::DAY_MS / self.spacing_ms.max(1)
    }

    /// How old the key must be before `isolate` takes over.
    fn stale_after_ms(&self, isolate: &str) -> u64 {
        self.write_ms + self.write_ms / 20 + offset_ms(isolate, (self.write_ms / 4).max(1))
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

/// The role of `isolate` at `now`, given its copy of the key.
pub(crate) fn role(cfg: &HistoryConfig, isolate: &str, stored: Option<&Stored>, now: u64) -> Role {
    match stored {
        None => Role::Candidate,
        Some(s) if s.writer == isolate => Role::Writer,
        Some(s) if now >= s.written_at.saturating_add(cfg.stale_after_ms(isolate)) => {
            Role::Candidate
        }
        Some(_) => Role::Reader,
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
        assert_eq!(role(&cfg, "a", Some(&s), 1_000), Role::Writer);
        assert_eq!(
            role(&cfg, "b", Some(&s), 1_000 + cfg.write_ms),
            Role::Reader
        );
        assert_eq!(role(&cfg, "b", None, 0), Role::Candidate);
        let late = 1_000 + 2 * cfg.write_ms;
        assert_eq!(role(&cfg, "b", Some(&s), late), Role::Candidate);
        // Offsets differ between isolates and stay below one interval.
        let offsets: Vec<u64> = ["b", "c", "d", "e"]
            .iter()
            .map(|i| offset_ms(i, cfg.write_ms / 4))
            .collect();
        assert!(offsets.iter().all(|&o| o < cfg.write_ms / 4));
        assert!(offsets.windows(2).any(|w| w[0] != w[1]));
        assert_eq!(cfg.max_writes_per_day(), 100);
    }
}
