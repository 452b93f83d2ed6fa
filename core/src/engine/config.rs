//! The engine's tunables and their validation.

use super::*;

/// Tunables of the engine. All times are in milliseconds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EngineConfig {
    /// A tab with no heartbeat for this long is gone (default 225 s: two and a half
    /// heartbeats, so one lost heartbeat and the client's ±10 % jitter never drop a tab).
    pub window_ms: u64,
    /// The heartbeat interval clients are told to use (default 90 s: Workers requests are
    /// the largest line of the bill, and the leave beacon, not the heartbeat, carries most
    /// departures; 60 s cost $32.67 per 1,000 people online a month at 8 isolates, 90 s
    /// $20.90; docs/design.md › "Why a 90 s heartbeat").
    pub heartbeat_ms: u64,
    /// The least time between two writes of one record (default 1 s; KV allows 1 write/s).
    pub flush_min_ms: u64,
    /// How long a join, leave or time-out may wait before it is published while another
    /// isolate of this location is active (default 1 s). Joins and departures wait equally
    /// long, so the other isolates' counts lag but are not biased (a leave then shows at
    /// them within this delay plus [`EngineConfig::refresh_ms`]).
    pub join_delay_ms: u64,
    /// How long a state or page change may wait before it is published (default 10 s).
    pub change_delay_ms: u64,
    /// How long a record vouches for its active tabs (default 5 min).
    pub lease_ms: u64,
    /// How often the records of this location's other isolates are read (a get each, no
    /// listing) while they are active (default 500 ms).
    pub refresh_ms: u64,
    /// Publishing delay when only isolates of other locations are active, and how often the
    /// records are listed (default [`EngineConfig::remote_delay_for`] the heartbeat: 18.75 s
    /// at 90 s).
    pub remote_delay_ms: u64,
    /// Publishing delay, and view reuse, when no other isolate is active (default 180 s).
    pub solo_delay_ms: u64,
    /// How long before a published heartbeat is a window old an isolate holding a newer
    /// one republishes it, when several isolates share the location (default 5 s).
    pub handoff_margin_ms: u64,
    /// How long a member's last-seen time is kept in KV (default 90 days).
    pub last_seen_ttl_ms: u64,
    /// The most tabs one record holds (default 100,000).
    pub max_tabs_per_record: usize,
}

impl Default for EngineConfig {
    fn default() -> Self {
        Self {
            window_ms: 225_000,
            heartbeat_ms: DEFAULT_HEARTBEAT_MS,
            flush_min_ms: 1_000,
            join_delay_ms: 1_000,
            change_delay_ms: 10_000,
            lease_ms: 300_000,
            refresh_ms: 500,
            remote_delay_ms: Self::remote_delay_for(DEFAULT_HEARTBEAT_MS),
            solo_delay_ms: 180_000,
            handoff_margin_ms: 5_000,
            last_seen_ttl_ms: 90 * 24 * 3_600_000,
            max_tabs_per_record: 100_000,
        }
    }
}

/// [`EngineConfig::heartbeat_ms`]'s default.
const DEFAULT_HEARTBEAT_MS: u64 = 90_000;

impl EngineConfig {
    /// The publishing delay to other locations (and listing interval) that goes with a
    /// heartbeat interval: 5/24 of it (12.5 s at 60 s, 18.75 s at 90 s), at least 1 s.
    ///
    /// Why it follows the heartbeat: a page learns the count once a heartbeat, so a
    /// location's summary written ~5 times a heartbeat reaches it as fresh as KV's lag
    /// allows; and KV writes then fall with the requests, staying ~20× fewer than design
    /// (a)'s one per heartbeat at any interval, where a fixed 12.5 s made only 16× at 120 s
    /// (docs/design.md › "Why a 90 s heartbeat").
    #[must_use]
    pub const fn remote_delay_for(heartbeat_ms: u64) -> u64 {
        let d = heartbeat_ms.saturating_mul(5) / 24;
        if d < 1_000 { 1_000 } else { d }
    }

    /// This config with the heartbeat interval set to `heartbeat_ms` and the remote delay
    /// that goes with it ([`EngineConfig::remote_delay_for`]).
    #[must_use]
    pub fn with_heartbeat(self, heartbeat_ms: u64) -> Self {
        Self {
            heartbeat_ms,
            remote_delay_ms: Self::remote_delay_for(heartbeat_ms),
            ..self
        }
    }

    /// The `Retry-After` a store failure is answered with, in seconds: one heartbeat
    /// interval rounded up, from 1 to [`crate::store::STORE_RETRY_AFTER_S`]. A client that
    /// honours it stays away no longer than between two heartbeats, so it is back inside
    /// the window once the store is (5 s with the default 60 s interval; 1 s for windows
    /// of 4 s and less, where a fixed 5 s would outlast the window).
    #[must_use]
    pub fn store_retry_after_s(&self) -> u32 {
        let s = self.heartbeat_ms.div_ceil(1000).max(1);
        u32::try_from(s).map_or(crate::store::STORE_RETRY_AFTER_S, |s| {
            s.min(crate::store::STORE_RETRY_AFTER_S)
        })
    }

    /// A config with `window_ms` and the other settings scaled to fit it, as tests with
    /// short windows use: heartbeat a quarter of the window, lease twice the window.
    #[must_use]
    pub fn with_window(window_ms: u64) -> Self {
        let d = Self::default();
        Self {
            window_ms,
            lease_ms: (window_ms * 2).max(2_000),
            join_delay_ms: d.join_delay_ms.min(window_ms / 2),
            change_delay_ms: d.change_delay_ms.min(window_ms / 2),
            solo_delay_ms: d.solo_delay_ms.min(window_ms * 2),
            handoff_margin_ms: d.handoff_margin_ms.min(window_ms / 8),
            ..d
        }
        .with_heartbeat((window_ms / 4).max(250))
    }

    /// Checks the settings against each other and KV's limits.
    ///
    /// # Errors
    /// The first bad setting, named by its field (a caller maps it to its own name).
    pub fn validate(&self) -> Result<(), ConfigError> {
        let bad = |setting, message: String| Err(ConfigError { setting, message });
        if self.window_ms < 1_000 {
            return bad(
                Setting::Window,
                format!("window must be at least 1 s (got {} ms)", self.window_ms),
            );
        }
        if self.heartbeat_ms < 250 || self.heartbeat_ms >= self.window_ms {
            return bad(
                Setting::Heartbeat,
                format!(
                    "heartbeat interval must be at least 250 ms and below the window (got {} ms, window {} ms)",
                    self.heartbeat_ms, self.window_ms
                ),
            );
        }
        if self.flush_min_ms < 1_000 {
            return bad(
                Setting::FlushMin,
                "flush interval must be at least 1 s (KV allows one write per second per key)"
                    .into(),
            );
        }
        if self.lease_ms < self.window_ms {
            return bad(
                Setting::Lease,
                format!(
                    "lease ({} ms) must be at least the window ({} ms)",
                    self.lease_ms, self.window_ms
                ),
            );
        }
        if self.max_tabs_per_record == 0 {
            return bad(
                Setting::MaxTabsPerRecord,
                "max tabs per record must be at least 1".into(),
            );
        }
        if self.handoff_margin_ms + self.heartbeat_ms >= self.window_ms {
            // The heartbeat is what a deployment sets; the margin follows the window.
            return bad(
                Setting::Heartbeat,
                format!(
                    "heartbeat interval ({} ms) plus the handoff margin ({} ms) must be below the window ({} ms)",
                    self.heartbeat_ms, self.handoff_margin_ms, self.window_ms
                ),
            );
        }
        Ok(())
    }

    pub(super) fn tombstone_ms(&self) -> u64 {
        self.lease_ms + self.window_ms
    }

    pub(super) fn record_ttl_s(&self) -> u64 {
        ((self.lease_ms + self.window_ms) / 1000 + 1).max(MIN_TTL_S)
    }

    /// How long after its last write another isolate of this location still counts as
    /// active (a peer-mode writer republishes at least about once per window).
    pub(super) fn peer_active_ms(&self) -> u64 {
        2 * self.window_ms
    }
}

/// A field of [`EngineConfig`], as [`ConfigError`] names it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Setting {
    /// [`EngineConfig::window_ms`].
    Window,
    /// [`EngineConfig::heartbeat_ms`] (also blamed when it leaves no room for the
    /// handoff margin inside the window).
    Heartbeat,
    /// [`EngineConfig::flush_min_ms`].
    FlushMin,
    /// [`EngineConfig::lease_ms`].
    Lease,
    /// [`EngineConfig::max_tabs_per_record`].
    MaxTabsPerRecord,
}

/// A bad [`EngineConfig`]: which field, and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigError {
    /// The field at fault.
    pub setting: Setting,
    /// What is wrong with it.
    pub message: String,
}

impl core::fmt::Display for ConfigError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for ConfigError {}
