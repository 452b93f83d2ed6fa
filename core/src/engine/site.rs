//! One site's state in an isolate: the tabs it holds, their time-outs, and reconciling
//! them with the view.

use super::*;

/// How often an isolate looks for timed-out tabs, in ms (counts filter exactly anyway).
pub(super) const SWEEP_EVERY_MS: u64 = 1_000;

/// A tab this isolate holds in memory.
#[derive(Debug, Clone)]
pub(super) struct Held {
    pub(super) rec: TabRecord,
    /// What this isolate last published for it: (last heartbeat, state).
    pub(super) ours: Option<(u64, TabState)>,
    /// The newest heartbeat of it published anywhere, as far as this isolate knows.
    pub(super) known_ms: Option<u64>,
}

#[derive(Debug, Default, Clone)]
pub(super) struct SiteState {
    /// Bumped on every change a count could show (a join, leave, change or new view), so a
    /// driver can reuse a computed count until it moves.
    pub(super) version: u64,
    pub(super) tabs: HashMap<String, Held>,
    pub(super) gone: HashMap<String, Tombstone>,
    /// Earliest unpublished change per urgency.
    pub(super) pending: [Option<u64>; 3],
    /// When a held heartbeat must be republished (peers mode only).
    pub(super) handoff_due: Option<u64>,
    pub(super) last_flush_ms: Option<u64>,
    pub(super) lease_until_ms: u64,
    /// Whether the last published record held any tab or tombstone.
    pub(super) published_content: bool,
    pub(super) next_sweep_ms: u64,
    pub(super) mode: Option<Mode>,
    pub(super) remote: RemoteView,
    /// Members with a live tab here, and how many tabs.
    pub(super) members_live: BTreeMap<String, MemberSeen>,
    /// The last-seen values handed out by the latest [`Presence::take_writes`], by member
    /// id, kept so that [`Presence::write_failed`] can queue one again.
    pub(super) last_seen_sent: BTreeMap<String, (Member, u64)>,
    /// Last-seen values whose write failed, written again with the next record.
    pub(super) last_seen_retry: BTreeMap<String, (Member, u64)>,
    /// The per-location channel's state (`local`).
    pub(super) local: local::LocalState,
}

impl SiteState {
    /// Whether the view's entry for `key` has a newer heartbeat than `than`.
    pub(super) fn newer_elsewhere(&self, key: &str, than: u64) -> bool {
        self.remote.view(key).last().is_some_and(|l| l > than)
    }

    /// Handles a held tab that has had no heartbeat here for a window.
    pub(super) fn time_out(&mut self, key: &str, now: u64, cfg: &EngineConfig) {
        let Some(h) = self.tabs.remove(key) else {
            return;
        };
        let t_x = h.rec.last_ms;
        // While peers read through the channel, dated when the tab went, not when this
        // isolate noticed: joins count from their arrival, so departures must too (a later
        // date biases the count high; at many isolates per location the notice comes tens
        // of seconds late). Through KV, when noticed: an earlier date splits writes that
        // would have been one (+1 % on the small site, over its 1,000 a day).
        let channel = self.local.dir_read_ms.is_some();
        // (Never before the record's last write, which did not have it: writes keep their
        // pace.)
        let at = if channel && self.mode(now) == Mode::Peers {
            liveness::live_until(t_x, cfg.window_ms)
                .min(now)
                .max(self.last_flush_ms.unwrap_or(0))
        } else {
            now
        };
        if self.newer_elsewhere(key, t_x) {
            // Another isolate saw it later: that one is responsible for it now.
            return;
        }
        // Does a published copy still vouch for it? (Idle copies expire by themselves.)
        let ours_vouches = h.ours.is_some_and(|(_, s)| s == TabState::Active);
        let view = self.remote.view(key);
        let view_vouches = view
            .live(now, cfg.window_ms)
            .is_some_and(|t| t.state == TabState::Active);
        if !(ours_vouches || view_vouches) {
            // Idle copies expire by themselves where the full records are read; other
            // locations see it in the next summary, published as soon as a join would be.
            if h.ours.is_some() || view.best.is_some() || view.tomb.is_some() {
                self.pend(Urgency::Join, at);
            }
            return;
        }
        {
            self.gone.insert(
                key.to_owned(),
                Tombstone {
                    visitor: h.rec.visitor,
                    tab: h.rec.tab,
                    at_ms: t_x,
                },
            );
            self.pend(Urgency::Now, at);
        }
    }

    /// When the next time-out this isolate would publish is due: the earliest expiry of an
    /// active tab whose newest known heartbeat it holds (others answer for the rest; idle
    /// tabs expire at every reader by themselves). While peers read through the channel, a
    /// driver flushes then rather than at its next request, which at many isolates per
    /// location comes tens of seconds later, while the peers count the vanished tab
    /// meanwhile.
    pub(super) fn next_time_out(&self, cfg: &EngineConfig) -> Option<u64> {
        self.tabs
            .values()
            .filter(|h| h.rec.state == TabState::Active)
            .filter(|h| h.known_ms.is_none_or(|k| k <= h.rec.last_ms))
            .map(|h| liveness::live_until(h.rec.last_ms, cfg.window_ms))
            .min()
    }

    /// Whether the view of the peers is recent enough to decide time-outs on: a tab may
    /// have heartbeated to one of them meanwhile.
    pub(super) fn view_fresh(&self, now: u64, cfg: &EngineConfig) -> bool {
        self.remote
            .fetched_ms
            .max(self.remote.polled_ms)
            .is_some_and(|f| f + 2 * cfg.refresh_ms + SWEEP_EVERY_MS >= now)
    }

    /// Times out tabs with no heartbeat for a window, at most once per second, and drops
    /// old tombstones. While peers read, decisions wait for a fresh view.
    pub(super) fn sweep(&mut self, now: u64, cfg: &EngineConfig) {
        if now < self.next_sweep_ms {
            return;
        }
        self.next_sweep_ms = now + SWEEP_EVERY_MS;
        if self.mode(now) == Mode::Peers && !self.view_fresh(now, cfg) {
            return;
        }
        let expired: Vec<String> = self
            .tabs
            .iter()
            .filter(|(_, h)| !liveness::is_live(h.rec.last_ms, cfg.window_ms, now))
            .map(|(k, _)| k.clone())
            .collect();
        for key in expired {
            self.time_out(&key, now, cfg);
        }
        let keep = cfg.tombstone_ms();
        self.gone.retain(|_, g| g.at_ms + keep > now);
    }

    /// Recomputes what is known published for each held tab, republishes tabs a tombstone
    /// elsewhere wrongly removed, and recomputes the handoff deadline.
    pub(super) fn reconcile(&mut self, now: u64, cfg: &EngineConfig) {
        let mode = self.mode(now);
        let mut handoff: Option<u64> = None;
        let mut revive = false;
        for (key, h) in &mut self.tabs {
            let view = self.remote.view(key);
            let view_last = view.last();
            h.known_ms = h.known_ms.max(view_last).max(h.ours.map(|o| o.0));
            if !liveness::is_live(h.rec.last_ms, cfg.window_ms, now) {
                continue;
            }
            if liveness::revived(view.tomb, h.known_ms, h.rec.last_ms) {
                revive = true;
            }
            if let Some(k) = h.known_ms
                && h.rec.last_ms > k
                && mode == Mode::Peers
            {
                let d = schedule::handoff_due(cfg, k);
                handoff = Some(handoff.map_or(d, |x: u64| x.min(d)));
            }
        }
        self.handoff_due = handoff;
        if revive {
            self.pend(Urgency::Now, now);
        }
    }
}
