//! When an isolate writes: who reads it ([`Mode`]), how urgent each change is, and the
//! writes themselves.

use super::*;

/// Who reads what an isolate writes, as far as it can tell; sets how fast it publishes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// Another isolate of this location is active: changes go out as fast as KV allows.
    Peers,
    /// Only isolates of other locations are active (they see writes 0–60 s late anyway).
    Remote,
    /// No other isolate is active: this isolate's own memory is the only reader.
    Solo,
}

/// Urgency classes of unpublished changes.
#[derive(Debug, Clone, Copy)]
pub(super) enum Urgency {
    /// A leave, time-out or revival (published as fast as a join).
    Now = 0,
    /// A join.
    Join = 1,
    /// A state or page change.
    Change = 2,
}

impl SiteState {
    pub(super) fn mode(&self, now: u64) -> Mode {
        if self.remote.same_active_until > now {
            Mode::Peers
        } else if self.remote.other_active_until > now {
            Mode::Remote
        } else {
            Mode::Solo
        }
    }

    pub(super) fn pend(&mut self, urgency: Urgency, at: u64) {
        self.version += 1;
        // A change dated before the location's last KV write (a time-out noticed late,
        // dated at the tab's expiry) is still not in it: pending for KV since that write,
        // so that KV keeps its pace.
        self.local
            .changed(at.max(self.local.kv_written_ms().unwrap_or(0)));
        let slot = &mut self.pending[urgency as usize];
        *slot = Some(slot.map_or(at, |d| d.min(at)));
    }

    pub(super) fn delay(cfg: &EngineConfig, urgency: Urgency, mode: Mode, first: bool) -> u64 {
        match (mode, urgency) {
            // A new isolate announces itself at once, so that others find it.
            (_, Urgency::Now | Urgency::Join) if first => cfg
                .join_delay_ms
                .min(Self::delay(cfg, urgency, mode, false)),
            // Joins and departures alike: a departure published sooner than a join would
            // bias the peers' counts low.
            (Mode::Peers, Urgency::Now | Urgency::Join) => cfg.join_delay_ms,
            (Mode::Peers | Mode::Remote, Urgency::Change) => {
                cfg.change_delay_ms.max(cfg.remote_delay_ms)
            }
            (Mode::Remote, _) => cfg.remote_delay_ms,
            (Mode::Solo, _) => cfg.solo_delay_ms,
        }
    }

    pub(super) fn has_content(&self) -> bool {
        !self.tabs.is_empty() || !self.gone.is_empty() || self.published_content
    }

    /// When the unpublished changes must be written (before the 1 write/s spacing):
    /// the earliest pending change plus its delay, or the handoff deadline while peers
    /// read. Lease renewals are not changes (see [`SiteState::due`]).
    pub(super) fn changes_due(&self, cfg: &EngineConfig, mode: Mode) -> Option<u64> {
        let first = self.last_flush_ms.is_none();
        let pending = [Urgency::Now, Urgency::Join, Urgency::Change]
            .into_iter()
            .zip(self.pending)
            .filter_map(|(u, at)| Some(at? + Self::delay(cfg, u, mode, first)));
        let handoff = self.handoff_due.filter(|_| mode == Mode::Peers);
        pending.chain(handoff).min()
    }

    /// When the record must be written next (before the 1 write/s spacing): its changes,
    /// or the renewal of its lease when a third of it is left.
    pub(super) fn due(&self, cfg: &EngineConfig, mode: Mode) -> Option<u64> {
        let renew = (self.last_flush_ms.is_some() && self.has_content())
            .then(|| self.lease_until_ms.saturating_sub(cfg.lease_ms / 3));
        self.changes_due(cfg, mode).into_iter().chain(renew).min()
    }
}

impl Presence {
    /// The writes due now: records with unpublished changes or a lease near its end, and
    /// members' last-seen values. The engine assumes they succeed; on failure call
    /// [`Presence::write_failed`].
    #[must_use]
    pub fn take_writes(&mut self, now: u64) -> Vec<Write> {
        let cfg = self.config.clone();
        let local = self.local;
        let mut out = Vec::new();
        let mut sites: Vec<String> = self.sites.keys().cloned().collect();
        sites.sort();
        for site in sites {
            let key = self.own_key(&site);
            let dir_key = self.directory_key(&site);
            let isolate = self.isolate.clone();
            let location = self.location.clone();
            let s = self.site(&site);
            s.sweep(now, &cfg);
            let mode = s.mode(now);
            s.mode = Some(mode);
            let spaced = s
                .last_flush_ms
                .is_none_or(|last| now >= last + cfg.flush_min_ms);
            let record_due = spaced && s.due(&cfg, mode).is_some_and(|d| now >= d);
            // With the channel, the record goes to the location's peers through it, and
            // to KV only from the location's publisher, at the pace other locations need.
            // Or from another isolate, when the publisher's write is overdue (it gets few
            // requests): it then takes the role over. Either only right after reading the
            // directory (a refresh at this `now`), as the write rewrites it: an older read
            // may miss the write that made this one moot, and would drop the entries added
            // since. (A publisher due to write reads it first: `Service::flush`.)
            let publisher = s.is_publisher(&key);
            let dir_fresh = s.local.dir_found_ms == Some(now);
            let takeover = local
                && !publisher
                && dir_fresh
                && s.takeover_due(&cfg, now).is_some_and(|d| now >= d);
            let kv_due = takeover || local && dir_fresh && s.publisher_write_due(&key, &cfg, now);
            if !(record_due || kv_due) {
                continue;
            }
            let designated = s.remote.same_ids.iter().all(|id| **id > *isolate);
            let mut last_seen = std::mem::take(&mut s.last_seen_retry);
            // A member back online since its write failed gets a fresh value when it leaves.
            last_seen.retain(|id, _| !s.members_live.contains_key(id));
            for (m, at) in members_gone(s, now, &cfg, designated) {
                last_seen.insert(m.id.clone(), (m, at));
            }
            for (m, at) in last_seen.values() {
                let value = serde_json::to_vec(&LastSeen {
                    last_seen: *at,
                    name: m.name.clone(),
                })
                .unwrap_or_default();
                out.push(Write {
                    key: last_seen_key(&site, &m.id),
                    value,
                    metadata: None,
                    ttl_s: (cfg.last_seen_ttl_ms / 1000).max(MIN_TTL_S),
                    local: false,
                });
            }
            s.last_seen_sent = last_seen;
            // The record is encoded straight from the state (no copy of its tabs), before
            // the state is updated for it.
            let (value, metadata, lease_until_ms, content, published) = {
                let (record, summary, capped) =
                    build_record(s, now, &cfg, &isolate, location.as_deref());
                // Capped: which tabs made it (keys as in `tabs`); else every live tab did.
                let published: Option<HashSet<String>> = capped.then(|| {
                    record
                        .tabs
                        .iter()
                        .map(|t| tab_key(&t.visitor, &t.tab))
                        .collect()
                });
                let content = !record.tabs.is_empty() || !record.gone.is_empty();
                let lease_until_ms = record.lease_until_ms;
                let value = record.encode_within(MAX_VALUE_BYTES);
                (value, summary.encode(), lease_until_ms, content, published)
            };
            let metadata = Some(metadata);
            if kv_due {
                s.local.kv_pending = None;
                s.local.kv_latest = None;
                s.local.kv_flushed_ms = Some(now);
                s.local.kv_lease_until_ms = lease_until_ms;
                // The directory says when KV got the location, so that the peers know
                // which changes it has (and that no takeover is due); put first, as the
                // KV write takes longer to land.
                let dir = &mut s.local.dir;
                dir.kv_ms = Some(now);
                if takeover {
                    dir.publisher = Some(key.clone());
                    dir.entries.insert(key.clone(), now);
                }
                out.push(Write {
                    key: dir_key,
                    value: dir.encode(),
                    metadata: None,
                    ttl_s: DIRECTORY_TTL_S,
                    local: true,
                });
                out.push(Write {
                    key: key.clone(),
                    value: value.clone(),
                    metadata: metadata.clone(),
                    ttl_s: cfg.record_ttl_s(),
                    local: false,
                });
            }
            if !record_due {
                continue;
            }
            s.pending = [None; 3];
            s.handoff_due = None;
            s.last_flush_ms = Some(now);
            s.lease_until_ms = lease_until_ms;
            s.published_content = content;
            for (k, h) in &mut s.tabs {
                let included = match &published {
                    Some(p) => p.contains(k),
                    None => {
                        h.rec.last_ms + cfg.window_ms > now
                            && s.remote.view(k).last().is_none_or(|l| l <= h.rec.last_ms)
                    }
                };
                if included {
                    h.ours = Some((h.rec.last_ms, h.rec.state));
                    h.known_ms = h.known_ms.max(Some(h.rec.last_ms));
                } else {
                    h.ours = None;
                }
            }
            out.push(Write {
                key,
                value,
                metadata,
                ttl_s: cfg.record_ttl_s(),
                local,
            });
        }
        out
    }

    /// A write from [`Presence::take_writes`] failed: make it again with the next flush,
    /// as soon as the write spacing allows (a record is rebuilt from the state then; a
    /// member's last-seen value is queued again as it was).
    pub fn write_failed(&mut self, now: u64, key: &str, local: bool) {
        match Key::parse(key) {
            Some(Key::LastSeen { site, member }) => {
                let s = self.site(site);
                if let Some(v) = s.last_seen_sent.remove(member) {
                    s.last_seen_retry.insert(member.to_owned(), v);
                    s.pend(Urgency::Now, now);
                }
            }
            Some(Key::Record { site, .. }) if self.local && !local => {
                // The publisher's copy in KV: written again at the next flush.
                let s = self.site(site);
                s.local.kv_lease_until_ms = 0;
                s.local.changed(0);
            }
            Some(Key::Record { site, .. }) => {
                let s = self.site(site);
                s.lease_until_ms = 0;
                s.pend(Urgency::Now, now);
                for h in s.tabs.values_mut() {
                    h.ours = None;
                }
            }
            Some(Key::Directory { .. } | Key::Snapshot { .. }) | None => {}
        }
    }

    /// The sites whose directory this isolate must read before it writes them to KV: it is
    /// due to as its location's publisher (with the channel), as far as its last read
    /// says, and has not read the directory at `now` (a request's refresh may have).
    #[must_use]
    pub fn kv_writes_awaiting_read(&self, now: u64) -> Vec<String> {
        if !self.local {
            return Vec::new();
        }
        self.sites
            .iter()
            .filter(|(site, s)| {
                s.local.dir_found_ms != Some(now)
                    && s.publisher_write_due(&self.own_key(site), &self.config, now)
            })
            .map(|(site, _)| site.clone())
            .collect()
    }

    /// The sites with a time-out due ([`SiteState::next_time_out`]) while peers read through
    /// the channel, whose view is too old to decide it on: a delayed flush refreshes them
    /// first, or it could not publish the time-out it was scheduled for.
    #[must_use]
    pub fn time_outs_awaiting_view(&self, now: u64) -> Vec<String> {
        if !self.local {
            return Vec::new();
        }
        self.sites
            .iter()
            .filter(|(_, s)| {
                s.mode(now) == Mode::Peers
                    && s.next_time_out(&self.config).is_some_and(|e| e <= now)
                    && !s.view_fresh(now, &self.config)
            })
            .map(|(site, _)| site.clone())
            .collect()
    }

    /// When the earliest unpublished change may be written (its due time, pushed back by
    /// the write spacing), so a driver can flush then without waiting for a request.
    #[must_use]
    pub fn next_flush_at(&self) -> Option<u64> {
        let min = self.config.flush_min_ms;
        let kv = self.sites.iter().filter_map(|(site, s)| {
            let now = s.local.dir_read_ms?;
            (self.local && s.is_publisher(&self.own_key(site)))
                .then(|| s.kv_due(&self.config, now))
                .flatten()
        });
        self.sites
            .values()
            .filter_map(|s| {
                // Lease renewals wait for the next request; changes do not, nor time-outs
                // while peers read through the channel (published a join delay after the
                // tab's expiry). Through KV each would be a write of its own: it waits for
                // the next request's, as the small site's 1,000 writes a day allow no more.
                let mode = s.mode.unwrap_or(Mode::Solo);
                let time_out = (mode == Mode::Peers && self.local)
                    .then(|| s.next_time_out(&self.config))
                    .flatten()
                    .map(|e| e.max(s.next_sweep_ms) + self.config.join_delay_ms);
                let due = s
                    .changes_due(&self.config, mode)
                    .into_iter()
                    .chain(time_out)
                    .min()?;
                Some(s.last_flush_ms.map_or(due, |l| due.max(l + min)))
            })
            .chain(kv)
            .min()
    }
}

/// When a tab held with a heartbeat newer than the newest published one (`known_ms`)
/// must be republished, while peers read: before the published one is a window old,
/// less the handoff margin, so that no peer times it out meanwhile.
pub(super) fn handoff_due(cfg: &EngineConfig, known_ms: u64) -> u64 {
    liveness::live_until(known_ms, cfg.window_ms).saturating_sub(cfg.handoff_margin_ms)
}

/// Builds this isolate's record and the summary of its location at `now`; `true` if the
/// record was capped (it then holds only some of the live tabs).
pub(super) fn build_record<'a>(
    s: &'a SiteState,
    now: u64,
    cfg: &EngineConfig,
    isolate: &'a str,
    location: Option<&'a str>,
) -> (RecordOut<'a>, Summary, bool) {
    // Tabs a peer of this location has published with a newer heartbeat are left to it.
    let live: Vec<&Held> = s
        .tabs
        .iter()
        .filter(|(_, h)| h.rec.last_ms + cfg.window_ms > now)
        .filter(|(k, h)| s.remote.view(k).last().is_none_or(|l| l <= h.rec.last_ms))
        .map(|(_, h)| h)
        .collect();
    let gone: Vec<&Tombstone> = s.gone.values().collect();
    let gone_bytes: usize = gone
        .iter()
        .map(|g| g.visitor.len() + g.tab.len() + 40)
        .sum();
    let budget = RECORD_BUDGET_BYTES.saturating_sub(gone_bytes + 256);
    let mut order: Vec<&Held> = live;
    let total: usize = order.iter().map(|h| tab_bytes(&h.rec)).sum();
    let capped = order.len() > cfg.max_tabs_per_record || total > budget;
    if capped {
        // Over the cap: publish the most recently seen tabs that fit.
        order.sort_by(|a, b| {
            b.rec
                .last_ms
                .cmp(&a.rec.last_ms)
                .then_with(|| (&a.rec.visitor, &a.rec.tab).cmp(&(&b.rec.visitor, &b.rec.tab)))
        });
        let mut left = budget;
        let fit = order
            .iter()
            .take(cfg.max_tabs_per_record)
            .take_while(|h| {
                let size = tab_bytes(&h.rec);
                let ok = size <= left;
                left = left.saturating_sub(size);
                ok
            })
            .count();
        order.truncate(fit);
    }
    let tabs: Vec<&TabRecord> = order.iter().map(|h| &h.rec).collect();
    let record = RecordOut {
        version: 1,
        isolate,
        location,
        written_ms: now,
        lease_until_ms: now + cfg.lease_ms,
        tabs,
        gone,
    };
    let summary = summarize(
        s,
        now,
        cfg,
        location.map(str::to_owned),
        record.lease_until_ms,
    );
    (record, summary, capped)
}
