//! Liveness: the only place that says when a tab counts.
//!
//! Two rules, applied by every count, time-out, merge and view:
//! - a tab is live until its last heartbeat plus the window ([`live_until`]);
//! - a tombstone dated at or after an entry's last heartbeat removes it
//!   ([`tombstone_wins`]); a later heartbeat outlives it, so a leave never hides a tab
//!   that came back.
//!
//! An *active* entry in another isolate's record counts as long as that record vouches
//! for it ([`vouch_until`]): its holder would have written a tombstone otherwise. An
//! *idle* entry carries its exact last heartbeat, so every reader drops it by itself.

use super::*;

/// Until when (Unix ms, exclusive) a tab last heard at `last_ms` is live.
pub(super) fn live_until(last_ms: u64, window_ms: u64) -> u64 {
    last_ms.saturating_add(window_ms)
}

/// Whether a tab last heard at `last_ms` is live at `now`.
pub(super) fn is_live(last_ms: u64, window_ms: u64, now: u64) -> bool {
    now < live_until(last_ms, window_ms)
}

/// Whether a tombstone dated `tomb_ms` removes an entry last heard at `last_ms`: at or
/// after it wins. A time-out's tombstone is dated at the last heartbeat its writer saw,
/// so it removes that entry but never a newer heartbeat seen elsewhere.
pub(super) fn tombstone_wins(tomb_ms: u64, last_ms: u64) -> bool {
    tomb_ms >= last_ms
}

/// [`tombstone_wins`] for the latest tombstone of a tab, if it has one.
pub(super) fn removed(tomb_ms: Option<u64>, last_ms: u64) -> bool {
    tomb_ms.is_some_and(|g| tombstone_wins(g, last_ms))
}

/// Whether a held tab last heard at `last_ms` must be published again because a tombstone
/// elsewhere (`tomb_ms`) removed the newest copy of it published anywhere (`known_ms`)
/// but not this later heartbeat: to the readers it left, so it rejoins.
pub(super) fn revived(tomb_ms: Option<u64>, known_ms: Option<u64>, last_ms: u64) -> bool {
    tomb_ms.is_some_and(|g| tombstone_wins(g, known_ms.unwrap_or(0)) && !tombstone_wins(g, last_ms))
}

/// Whether entry `t` of a record that vouches until `vouch_until` counts at `now`
/// (ignoring tombstones): an idle entry until its window ends, an active one while the
/// record vouches.
pub(super) fn entry_live(t: &TabRecord, vouch_until: u64, window_ms: u64, now: u64) -> bool {
    match t.state {
        TabState::Idle => is_live(t.last_ms, window_ms, now),
        TabState::Active => vouch_until > now,
    }
}

/// Until when a record of another isolate of this location vouches for its active
/// tabs: its lease, but at most two windows after it was written. A peer that stopped
/// writing that long is presumed evicted (a peer-mode writer republishes about once per
/// window): tabs still alive have heartbeated to another isolate of the location by then.
pub(super) fn vouch_until(cfg: &EngineConfig, record: &Record) -> u64 {
    record
        .lease_until_ms
        .min(record.written_ms.saturating_add(cfg.peer_active_ms()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_tab_is_live_until_last_plus_window_exclusive() {
        assert!(is_live(1_000, 60_000, 60_999));
        assert!(!is_live(1_000, 60_000, 61_000));
        assert!(!is_live(u64::MAX, 1, u64::MAX));
    }

    #[test]
    fn a_tombstone_at_or_after_the_last_heartbeat_wins() {
        assert!(tombstone_wins(5, 5));
        assert!(tombstone_wins(6, 5));
        assert!(!tombstone_wins(4, 5));
        assert!(!removed(None, 5));
    }
}
