//! The driver: the one piece of code that runs the sans-IO [`Presence`] engine against a
//! [`Store`]. The edge, the simulation and the property tests all go through it, so what
//! they measure is what ships.
//!
//! The engine's state sits in a `RefCell` that is never borrowed across an `await`, so
//! requests that interleave inside one isolate (Workers runs them concurrently on one
//! thread) cannot trip over each other.

use std::cell::{Cell, RefCell};
use std::collections::HashMap;
use std::sync::Arc;

use serde::{Deserialize, Serialize};

use crate::engine::{
    ChannelValue, DIRECTORY_TTL_S, Directory, IndexedRecord, LastSeen, Member, OnlineMember,
    Presence, Refresh, Snapshot, Write, last_seen_key, record_prefix,
};
use crate::protocol::{Beat, BeatResponse, Count};
use crate::store::{ListedKey, Store};
use crate::{Code, Error};

/// The answer to `GET /v1/last-seen`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LastSeenResponse {
    /// The member id asked about.
    pub member: String,
    /// Whether the member has a live tab now.
    pub online: bool,
    /// When the member was last seen (now-ish if online), Unix ms; `None` if never.
    pub last_seen: Option<u64>,
}

/// The engine of one isolate plus the I/O that feeds it.
///
/// # Contract
/// One `Service` per isolate, for its lifetime; `now` is the wall clock in Unix ms when
/// the call is made, never earlier than the previous call's.
/// - Per request: [`Service::heartbeat`], [`Service::leave`], [`Service::count`],
///   [`Service::online`] or [`Service::last_seen`]. Each refreshes the view of other
///   isolates when it is stale and makes the writes due; a failed write is retried by a
///   later flush, a failed read answers 503 with `Retry-After`.
/// - After each request's response: [`Service::flush_timer`]. If it names a time, call
///   [`Service::flush_timer_fired`] then (on Workers, inside `waitUntil`), so that changes
///   the write spacing held back, and time-outs, are published even if no other request
///   comes; and again at the time that returns, while it names one.
/// - Never call the engine's I/O methods (`refresh_due`, `apply_*`, `take_writes`,
///   `write_failed`) around the `Service`: read-only access through [`Service::with`] only.
#[derive(Debug)]
pub struct Service {
    presence: RefCell<Presence>,
    refreshing: Cell<bool>,
    counts: RefCell<HashMap<String, CachedCount>>,
    /// Refreshes that failed in a row, and until when (Unix ms) the next is held back.
    refresh_failures: Cell<u32>,
    refresh_held_until: Cell<u64>,
    /// When the delayed flush scheduled last is due (Unix ms), if one is.
    flush_at: Cell<Option<u64>>,
}

/// The longest a delayed flush is scheduled ahead, in ms: Workers keeps an event alive
/// through `waitUntil` for at most 30 s after the response; 5 s of that are headroom.
/// Later flushes wait for the next request.
pub const FLUSH_HORIZON_MS: u64 = 25_000;

/// A delayed flush to run at `at` (Unix ms), within an event that lives until `deadline`
/// (its request's response plus [`FLUSH_HORIZON_MS`]): from [`Service::flush_timer`], and
/// again from [`Service::flush_timer_fired`] while the event lives. Ordered by when it runs,
/// so that a host may queue them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct FlushTimer {
    /// When to run it, Unix ms.
    pub at: u64,
    /// When the event that runs it ends, Unix ms.
    pub deadline: u64,
}

/// A delayed flush runs this long after the change it publishes is due, so that the
/// write spacing has surely passed when it runs.
pub const FLUSH_SLACK_MS: u64 = 5;

/// After a second refresh in a row fails, the next is held back this long, doubling with
/// each further failure up to the `Retry-After` the failures are answered with (see
/// [`Service::refresh`]).
pub const REFRESH_HOLD_MS: u64 = 100;

/// How long, at most, a computed count is reused once it may be wrong: after the version
/// moved or a counted tab timed out (see [`RECOUNT_TABS_PER_MS`]). While neither happens
/// it is reused as long as it stays right.
pub const COUNT_REUSE_MS: u64 = 250;

/// While the count keeps changing (a join storm), a computed count is reused for one
/// millisecond per this many tabs it counted, up to [`COUNT_REUSE_MS`]. A recount costs
/// time in proportion to the tabs, so this bounds the share of time spent recounting
/// whatever the size of the site; a site under this many tabs is recounted on every change
/// and so always exact.
pub const RECOUNT_TABS_PER_MS: u64 = 100;

/// A count computed at `at` for the engine's `version`, with people on every page, right
/// until `until` unless the version moves.
#[derive(Debug)]
struct CachedCount {
    version: u64,
    at: u64,
    until: u64,
    count: Count,
    pages: HashMap<String, u64>,
}

impl Service {
    /// Wraps an engine.
    #[must_use]
    pub fn new(presence: Presence) -> Self {
        Self {
            presence: RefCell::new(presence),
            refreshing: Cell::new(false),
            counts: RefCell::new(HashMap::new()),
            refresh_failures: Cell::new(0),
            refresh_held_until: Cell::new(0),
            flush_at: Cell::new(None),
        }
    }

    /// When (Unix ms) the driver's host should run [`Service::flush_timer_fired`], if a
    /// change is waiting for the write spacing (or a time-out is due) and no delayed flush
    /// scheduled earlier covers it. A change due before the flush already scheduled (a
    /// leave after a join) gets one of its own; one due past [`FLUSH_HORIZON_MS`] waits for
    /// the next request.
    pub fn flush_timer(&self, now: u64) -> Option<FlushTimer> {
        self.flush_timer_until(now, now.saturating_add(FLUSH_HORIZON_MS))
    }

    /// [`Service::flush_timer`] for an event that lives until `deadline`.
    fn flush_timer_until(&self, now: u64, deadline: u64) -> Option<FlushTimer> {
        let at = self.with(|p| p.next_flush_at())?.max(now) + FLUSH_SLACK_MS;
        if at > deadline {
            return None;
        }
        // One scheduled no later covers it (one in the past has run or was dropped).
        if self.flush_at.get().is_some_and(|f| f <= at && f >= now) {
            return None;
        }
        self.flush_at.set(Some(at));
        Some(FlushTimer { at, deadline })
    }

    /// The delayed flush [`Service::flush_timer`] asked for runs, at `now`. A failure is
    /// retried by the next request: there is no one to answer. Returns the next one to run
    /// within the same event, if another change (a join's write, then a time-out) is due
    /// before the event ends: one request's event can so publish several, where at many
    /// isolates per location the next request may be tens of seconds away.
    pub async fn flush_timer_fired<S: Store>(
        &self,
        store: &S,
        timer: FlushTimer,
        now: u64,
    ) -> Option<FlushTimer> {
        if self.flush_at.get().is_some_and(|f| f <= timer.at) {
            self.flush_at.set(None);
        }
        // A time-out is decided on a fresh view of the peers (the tab may have heartbeated
        // to one of them); a request would have refreshed it, a timer must. From the
        // channel only (free): a listing of KV waits for a request.
        for site in self.with(|p| p.time_outs_awaiting_view(now)) {
            if self.refreshing.replace(true) {
                break;
            }
            let _ = self.refresh_local(store, now, &site, false).await;
            self.refreshing.set(false);
        }
        let _ = self.flush(store, now).await;
        self.flush_timer_until(now, timer.deadline)
    }

    /// Runs `f` on the engine (never across an await).
    pub fn with<R>(&self, f: impl FnOnce(&mut Presence) -> R) -> R {
        f(&mut self.presence.borrow_mut())
    }

    /// Records a heartbeat and answers with the site's count and the next interval.
    ///
    /// The view of other isolates is refreshed *before* anything is recorded, so a store
    /// that cannot be read fails the heartbeat with nothing recorded. A failed write does
    /// not fail it: the heartbeat is counted here and the engine publishes it with its next
    /// flush.
    ///
    /// # Errors
    /// 503 when the store cannot be read.
    pub async fn heartbeat<S: Store>(
        &self,
        store: &S,
        now: u64,
        beat: &Beat,
        member: Option<Member>,
    ) -> Result<BeatResponse, Error> {
        self.refresh(store, now, &beat.site).await?;
        self.with(|p| p.heartbeat(now, beat, member));
        // A failed write is retried by the engine at its next flush.
        let _ = self.flush(store, now).await;
        let count = self.cached_count(now, &beat.site, Some(&beat.page));
        let next_heartbeat_ms = self.with(|p| p.config().heartbeat_ms);
        Ok(BeatResponse {
            count,
            next_heartbeat_ms,
            // Filled in by the history's driver (`history::Recorder::observe`).
            record: None,
        })
    }

    /// Records a leave and publishes it. A failed write is retried at the next flush (and
    /// the tab would time out anyway), so a leave never fails on the store.
    ///
    /// A leave needs no view of the others, so it refreshes nothing, except as the first
    /// request of an isolate with the channel on: until it has read its location's
    /// directory (and added itself) its peers do not read its record, and would count the
    /// leaver until its next request that refreshes.
    pub async fn leave<S: Store>(&self, store: &S, now: u64, beat: &Beat) {
        self.with(|p| p.set_local(store.has_local()));
        if self.with(|p| p.unlisted_locally(&beat.site)) {
            let _ = self.refresh(store, now, &beat.site).await;
        }
        self.with(|p| p.leave(now, beat));
        let _ = self.flush(store, now).await;
    }

    /// The count of `site` (and `page`), refreshing the view of other isolates if stale.
    ///
    /// # Errors
    /// 503 when the store fails.
    pub async fn count<S: Store>(
        &self,
        store: &S,
        now: u64,
        site: &str,
        page: Option<&str>,
    ) -> Result<Count, Error> {
        self.refresh(store, now, site).await?;
        Ok(self.cached_count(now, site, page))
    }

    /// The members online on `site`.
    ///
    /// # Errors
    /// 503 when the store fails.
    pub async fn online<S: Store>(
        &self,
        store: &S,
        now: u64,
        site: &str,
    ) -> Result<Vec<OnlineMember>, Error> {
        self.with(|p| p.want_members(now, site));
        self.refresh(store, now, site).await?;
        Ok(self.with(|p| p.online_members(now, site)))
    }

    /// When `member` was last seen on `site`: live if online, else from the store.
    ///
    /// # Errors
    /// 503 when the store fails.
    pub async fn last_seen<S: Store>(
        &self,
        store: &S,
        now: u64,
        site: &str,
        member: &str,
    ) -> Result<LastSeenResponse, Error> {
        self.with(|p| p.want_members(now, site));
        self.refresh(store, now, site).await?;
        if let Some(at) = self.with(|p| p.member_last_seen(now, site, member)) {
            return Ok(LastSeenResponse {
                member: member.to_owned(),
                online: true,
                last_seen: Some(at),
            });
        }
        let stored = store
            .get(&last_seen_key(site, member))
            .await
            .map_err(|e| self.store_failure(e.into()))?;
        let last_seen = stored
            .and_then(|b| serde_json::from_slice::<LastSeen>(&b).ok())
            .map(|l| l.last_seen);
        Ok(LastSeenResponse {
            member: member.to_owned(),
            online: false,
            last_seen,
        })
    }

    /// The count, reused while the engine's version for the site is unchanged and no
    /// counted tab has timed out: a steady heartbeat then costs no aggregation over all
    /// tabs. Otherwise it is reused only within [`RECOUNT_TABS_PER_MS`]'s bound, so that a
    /// storm of joins or time-outs does not recount every tab once per request.
    pub fn cached_count(&self, now: u64, site: &str, page: Option<&str>) -> Count {
        let version = self.with(|p| p.version(site));
        let mut counts = self.counts.borrow_mut();
        let fresh = counts.get(site).is_some_and(|c| {
            now >= c.at
                && ((c.version == version && now < c.until)
                    || now < c.at + (c.count.tabs / RECOUNT_TABS_PER_MS).min(COUNT_REUSE_MS))
        });
        if !fresh {
            let (count, pages, until) = self.with(|p| p.count_all_pages_until(now, site));
            counts.insert(
                site.to_owned(),
                CachedCount {
                    version,
                    at: now,
                    until,
                    count,
                    pages,
                },
            );
        }
        let Some(c) = counts.get(site) else {
            return Count::default();
        };
        let mut count = c.count.clone();
        count.page = page.map(|p| c.pages.get(p).copied().unwrap_or(0));
        count
    }

    /// Makes the writes the engine has due now.
    ///
    /// # Errors
    /// 503 when a write fails (the engine retries it later).
    pub async fn flush<S: Store>(&self, store: &S, now: u64) -> Result<(), Error> {
        self.with(|p| p.set_local(store.has_local()));
        // A publisher about to write its location to KV reads the channel first (free),
        // unless this request's refresh just did, even if it read it less than a poll ago: a
        // KV write is made only right after a read of the directory. Another isolate may have taken the role over (the location would be
        // written twice), and the peers' changes since belong in the write. Were the write
        // left for later instead, the delayed flush would be spent on it and a change due
        // after it (a leave) would wait for the next request.
        for site in self.with(|p| p.kv_writes_awaiting_read(now)) {
            if self.refreshing.replace(true) {
                break;
            }
            let _ = self.refresh_local(store, now, &site, false).await;
            self.refreshing.set(false);
        }
        let writes: Vec<Write> = self.with(|p| p.take_writes(now));
        let mut first_err = None;
        for w in writes {
            if w.local {
                if !store.local_put(&w.key, w.value, w.ttl_s).await {
                    self.with(|p| p.write_failed(now, &w.key, true));
                }
            } else if let Err(e) = store.put(&w.key, w.value, w.metadata, w.ttl_s).await {
                self.with(|p| p.write_failed(now, &w.key, false));
                first_err.get_or_insert(e);
            }
        }
        match first_err {
            Some(e) => Err(self.store_failure(e.into())),
            None => Ok(()),
        }
    }

    /// Refreshes the view of other isolates' records for `site` if it is stale: one listing
    /// (a page per 1,000 isolates) plus a read per record of this location that changed, or,
    /// between listings while other isolates of this location are active, a read of each of
    /// their records ([`Presence::refresh_due`]).
    ///
    /// A store that keeps failing is not asked again on every request: after two failed
    /// refreshes in a row the next waits [`REFRESH_HOLD_MS`], doubling up to the answers'
    /// `Retry-After`, and requests that need a refresh meanwhile are answered 503 at once,
    /// with no store operation. So an outage costs a few KV operations per isolate and
    /// `Retry-After`, not one per request (KV bills failed operations, and the free plan
    /// allows 1,000 lists a day); a single failed operation is retried by the next request.
    ///
    /// # Errors
    /// 503 when the store fails, or failed just before.
    pub async fn refresh<S: Store>(&self, store: &S, now: u64, site: &str) -> Result<(), Error> {
        self.with(|p| p.set_local(store.has_local()));
        if self.refreshing.get() || !self.with(|p| p.needs_refresh(now, site)) {
            return Ok(());
        }
        if now < self.refresh_held_until.get() {
            let retry_after_s = self.with(|p| p.config().store_retry_after_s());
            return Err(crate::store::unavailable(retry_after_s));
        }
        self.refreshing.set(true);
        let result = self.refresh_now(store, now, site).await;
        self.refreshing.set(false);
        if result.is_ok() {
            self.refresh_failures.set(0);
        } else {
            let failures = self.refresh_failures.get().saturating_add(1);
            self.refresh_failures.set(failures);
            if failures >= 2 {
                let cap = u64::from(self.with(|p| p.config().store_retry_after_s())) * 1000;
                let hold = REFRESH_HOLD_MS
                    .saturating_mul(1 << (failures - 2).min(16))
                    .min(cap);
                self.refresh_held_until.set(now.saturating_add(hold));
            }
        }
        result.map_err(|e| self.store_failure(e))
    }

    /// A store failure with the `Retry-After` of this engine's heartbeat interval (see
    /// [`crate::engine::EngineConfig::store_retry_after_s`]); other errors unchanged.
    fn store_failure(&self, e: Error) -> Error {
        if e.code() == Code::StoreUnavailable {
            e.with_retry_after(self.with(|p| p.config().store_retry_after_s()))
        } else {
            e
        }
    }

    async fn refresh_now<S: Store>(&self, store: &S, now: u64, site: &str) -> Result<(), Error> {
        if self.with(|p| p.local()) {
            return self.refresh_local(store, now, site, true).await;
        }
        if let Refresh::Poll(keys) = self.with(|p| p.refresh_due(now, site)) {
            // Peers of this location only: a read each, no listing.
            return self.poll(store, now, site, keys, false).await;
        }
        let listed = list_records(store, site).await?;
        let wanted = self.with(|p| p.keys_to_fetch(site, &listed));
        for key in wanted {
            if let Some(record) = self.read_record(store, site, &key.name, false).await? {
                self.with(|p| p.apply_record(now, site, key.name, key.metadata, record));
            }
        }
        self.with(|p| p.apply_remote(now, site, &listed));
        Ok(())
    }

    /// The refresh with the per-location channel (`engine::local`): the location's
    /// directory and its peers' records come from the channel, free; KV is listed only by
    /// the location's publisher, which shares what it listed of other locations through
    /// the channel's snapshot. A miss in the channel keeps what was known.
    ///
    /// `kv`: whether it may list KV when a listing is due; not for the read of the channel
    /// a publisher makes before its KV write (`Service::flush`), which would bypass the
    /// hold on a failing store that [`Service::refresh`] keeps.
    async fn refresh_local<S: Store>(
        &self,
        store: &S,
        now: u64,
        site: &str,
        kv: bool,
    ) -> Result<(), Error> {
        let due = self.with(|p| p.refresh_due(now, site));
        let dir_key = self.with(|p| p.directory_key(site));
        let dir = store
            .local_get(&dir_key)
            .await
            .and_then(|b| Directory::decode(&b));
        if let Some(renewed) = self.with(|p| p.apply_directory(now, site, dir)) {
            // Lost to a concurrent rewrite? The next poll sees it and renews again.
            let _ = store
                .local_put(&dir_key, renewed.encode(), DIRECTORY_TTL_S)
                .await;
        }
        let peers = self.with(|p| p.directory_peers(now, site));
        // A peer reads the lister's snapshot with every poll (the channel is free) and
        // applies each new listing as it appears; it lists KV itself only when its own
        // listing is due and the lister is late. The publisher lists when due.
        let snap_key = self.with(|p| p.snapshot_key(site));
        let publisher = self.with(|p| p.is_publisher(site));
        let snapshot = if publisher {
            None
        } else {
            store
                .local_get(&snap_key)
                .await
                .and_then(|b| Snapshot::decode(&b))
        };
        let list = matches!(due, Refresh::List);
        // A listing wanted for more than its pace (the first, or member lists) takes the
        // snapshot as it is, if it still stands.
        let wanted = list && self.with(|p| p.listing_wanted(now, site));
        let use_snapshot = snapshot.as_ref().is_some_and(|s| {
            self.with(|p| p.snapshot_newer(now, site, s) || wanted && p.snapshot_fresh(now, s))
        });
        let list_kv =
            kv && list && (publisher || self.with(|p| p.snapshot_overdue(now, snapshot.as_ref())));
        // (`Fresh` only from the read a publisher makes before its KV write, in `flush`.)
        if !use_snapshot && !list_kv {
            return self.poll(store, now, site, peers, true).await;
        }
        let shared = snapshot.filter(|_| use_snapshot);
        let from_kv = shared.is_none();
        let listed_ms = shared.as_ref().map(|s| s.listed_ms);
        let mut listed = match shared {
            Some(snapshot) => snapshot.listed(),
            // This location's records in KV are its publishers'; its peers are the
            // directory's.
            None => list_records(store, site)
                .await?
                .into_iter()
                .filter(|k| !self.with(|p| p.reads_locally(site, &k.name)))
                .collect(),
        };
        listed.extend(peers.into_iter().map(|name| ListedKey {
            name,
            metadata: None,
        }));
        let wanted = self.with(|p| p.keys_to_fetch(site, &listed));
        for key in wanted {
            let local = self.with(|p| p.reads_locally(site, &key.name));
            if let Some(record) = self.read_record(store, site, &key.name, local).await? {
                self.with(|p| p.apply_record(now, site, key.name, key.metadata, record));
            }
        }
        self.with(|p| p.apply_remote(now, site, &listed));
        self.with(|p| p.listing_applied(site, listed_ms.unwrap_or(now)));
        if from_kv {
            // Whoever listed KV shares it, so that its peers need not.
            let (snapshot, ttl_s) = self.with(|p| p.snapshot(site, &listed));
            let _ = store.local_put(&snap_key, snapshot.encode(), ttl_s).await;
        }
        Ok(())
    }
}

impl Service {
    /// A [`Refresh::Poll`]: reads each of `keys` (from the channel if `local`, else KV) and
    /// applies it as it is read; a key that read nothing is passed on as gone.
    async fn poll<S: Store>(
        &self,
        store: &S,
        now: u64,
        site: &str,
        keys: Vec<String>,
        local: bool,
    ) -> Result<(), Error> {
        let mut gone = Vec::new();
        for key in keys {
            match self.read_record(store, site, &key, local).await? {
                Some(record) => self.with(|p| p.apply_record(now, site, key, None, record)),
                None => gone.push(key),
            }
        }
        self.with(|p| p.apply_polled(now, site, gone));
        Ok(())
    }

    /// The record at `key` for a refresh, from the channel if `local` (a miss is `None`)
    /// or from KV (a failure is an error), given the copy held so that the store does not
    /// decode the same write again ([`IndexedRecord::decode`]).
    async fn read_record<S: Store>(
        &self,
        store: &S,
        site: &str,
        key: &str,
        local: bool,
    ) -> Result<Option<Arc<IndexedRecord>>, Error> {
        let held = self.with(|p| p.held_record(site, key));
        Ok(if local {
            store.local_get_record(key, held.as_ref()).await
        } else {
            store.get_record(key, held.as_ref()).await?
        })
    }
}

/// Every record key of `site` in KV with its metadata: a listing, following its cursors
/// (a page per 1,000 isolates).
async fn list_records<S: Store>(store: &S, site: &str) -> Result<Vec<ListedKey>, Error> {
    let prefix = record_prefix(site);
    let mut listed = Vec::new();
    let mut cursor: Option<String> = None;
    loop {
        let page = store.list(&prefix, cursor.as_deref()).await?;
        listed.extend(page.keys);
        match page.cursor {
            Some(c) => cursor = Some(c),
            None => break,
        }
    }
    Ok(listed)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::EngineConfig;
    use crate::protocol::TabState;
    use crate::store::{ManualClock, MemoryStore, block_on_ready};

    const T0: u64 = 1_800_000_000_000;

    fn beat(i: u32) -> Beat {
        Beat {
            site: "demo".into(),
            visitor: format!("00000000-0000-4000-8000-{i:012x}"),
            tab: format!("t{i}"),
            page: "/".into(),
            state: TabState::Active,
            member_token: None,
        }
    }

    fn setup() -> (Service, MemoryStore) {
        let presence = Presence::new("iso", EngineConfig::with_window(60_000));
        (
            Service::new(presence),
            MemoryStore::new(ManualClock::new(T0)),
        )
    }

    fn beat_online(svc: &Service, kv: &MemoryStore, now: u64, i: u32) -> u64 {
        block_on_ready(svc.heartbeat(kv, now, &beat(i), None))
            .map(|r| r.count.online)
            .unwrap_or(u64::MAX)
    }

    #[test]
    fn a_small_site_is_recounted_on_every_change() {
        let (svc, kv) = setup();
        for i in 0..(RECOUNT_TABS_PER_MS as u32 - 1) {
            // Same millisecond: only the version says the count moved.
            assert_eq!(beat_online(&svc, &kv, T0, i), u64::from(i) + 1);
        }
        block_on_ready(svc.leave(&kv, T0, &beat(0)));
        let count = block_on_ready(svc.count(&kv, T0, "demo", None)).map(|c| c.online);
        assert_eq!(count, Ok(u64::from(RECOUNT_TABS_PER_MS as u32 - 2)));
    }

    #[test]
    fn a_join_storm_on_a_large_site_recounts_at_most_once_per_bound() {
        let (svc, kv) = setup();
        let n = 20 * RECOUNT_TABS_PER_MS as u32; // reuse bound: 20 ms
        for i in 0..n {
            let _ = beat_online(&svc, &kv, T0, i);
        }
        // Counted at T0 + 1 with all n tabs present.
        assert_eq!(beat_online(&svc, &kv, T0 + 1, 0), u64::from(n));
        // Joins within the bound reuse that count (stale by the joins since) ...
        for i in n..n + 10 {
            assert_eq!(beat_online(&svc, &kv, T0 + 10, i), u64::from(n));
        }
        // ... until 20 ms after it was made.
        assert_eq!(beat_online(&svc, &kv, T0 + 20, n + 10), u64::from(n));
        assert_eq!(beat_online(&svc, &kv, T0 + 21, 1), u64::from(n + 11));
        // A steady heartbeat does not move the version: that count stays exact.
        assert_eq!(beat_online(&svc, &kv, T0 + 22, 2), u64::from(n + 11));
    }

    fn online(svc: &Service, kv: &MemoryStore, now: u64) -> u64 {
        block_on_ready(svc.count(kv, now, "demo", None))
            .map(|c| c.online)
            .unwrap_or(u64::MAX)
    }

    #[test]
    fn a_reused_count_drops_a_tab_the_moment_it_times_out() {
        let (svc, kv) = setup();
        let n = 4 * RECOUNT_TABS_PER_MS as u32;
        for i in 0..n / 2 {
            let _ = beat_online(&svc, &kv, T0, i);
        }
        for i in n / 2..n {
            let _ = beat_online(&svc, &kv, T0 + 30_000, i);
        }
        assert_eq!(online(&svc, &kv, T0 + 30_010), u64::from(n));
        // Nothing changes for half a minute: the same count, still right.
        assert_eq!(online(&svc, &kv, T0 + 59_999), u64::from(n));
        // The first half's window ends: gone within the recount bound (n / 100 ms), though
        // no request changed anything.
        let bound = u64::from(n) / RECOUNT_TABS_PER_MS;
        assert_eq!(online(&svc, &kv, T0 + 60_000 + bound), u64::from(n / 2));
        assert_eq!(online(&svc, &kv, T0 + 90_000), 0);
    }

    #[test]
    fn an_outage_costs_a_few_store_operations_not_one_per_request() {
        let (svc, kv) = setup();
        assert_eq!(beat_online(&svc, &kv, T0, 1), 1);
        kv.set_failing(true);
        // Past the first listing delay every request needs a refresh: 1,000 requests 10 ms
        // apart (10 s) during the outage.
        let start = T0 + 10_000;
        let before = kv.ops();
        let mut refused = 0;
        for i in 0..1_000u64 {
            match block_on_ready(svc.count(&kv, start + i * 10, "demo", None)) {
                Err(e) => {
                    assert_eq!(e.code().status(), 503);
                    assert!(e.retry_after_s().is_some_and(|s| s > 0));
                    refused += 1;
                }
                Ok(c) => panic!("answered {c:?} during the outage"),
            }
        }
        assert_eq!(
            refused, 1_000,
            "every request that needs the store is refused"
        );
        let tried = kv.ops().lists - before.lists;
        // 100, 200, 400, 800, 1600 ms, then the cap (one heartbeat interval, here 5 s): 7
        // attempts or so in 10 s, against 1,000 without holding back.
        assert!(
            (3..=10).contains(&tried),
            "{tried} listings during the outage"
        );
        // Once the store is back, the first request after the hold gets through.
        kv.set_failing(false);
        let after = start + 10_000 + 5_000;
        assert_eq!(
            block_on_ready(svc.count(&kv, after, "demo", None)).map(|c| c.online),
            Ok(1)
        );
    }

    #[test]
    fn a_single_failed_refresh_is_retried_by_the_next_request() {
        let (svc, kv) = setup();
        assert_eq!(beat_online(&svc, &kv, T0, 1), 1);
        kv.set_failing(true);
        let at = T0 + 10_000;
        assert!(block_on_ready(svc.count(&kv, at, "demo", None)).is_err());
        kv.set_failing(false);
        // The same millisecond: no hold after one failure.
        assert_eq!(
            block_on_ready(svc.count(&kv, at, "demo", None)).map(|c| c.online),
            Ok(1)
        );
    }

    /// A store that, at each record read, notes whether the old copies handed to earlier
    /// reads (the `held` argument) are still alive.
    struct Watching {
        inner: MemoryStore,
        olds: RefCell<Vec<std::sync::Weak<IndexedRecord>>>,
        alive_at_a_read: Cell<usize>,
    }

    impl Store for Watching {
        async fn get(&self, key: &str) -> Result<Option<Vec<u8>>, crate::store::StoreError> {
            self.inner.get(key).await
        }
        async fn put(
            &self,
            key: &str,
            value: Vec<u8>,
            metadata: Option<String>,
            ttl_s: u64,
        ) -> Result<(), crate::store::StoreError> {
            self.inner.put(key, value, metadata, ttl_s).await
        }
        async fn list(
            &self,
            prefix: &str,
            cursor: Option<&str>,
        ) -> Result<crate::store::ListPage, crate::store::StoreError> {
            self.inner.list(prefix, cursor).await
        }
        async fn get_record(
            &self,
            key: &str,
            held: Option<&Arc<IndexedRecord>>,
        ) -> Result<Option<Arc<IndexedRecord>>, crate::store::StoreError> {
            {
                let mut olds = self.olds.borrow_mut();
                let alive = olds.iter().filter(|w| w.strong_count() > 0).count();
                self.alive_at_a_read
                    .set(self.alive_at_a_read.get().max(alive));
                olds.extend(held.map(Arc::downgrade));
            }
            self.inner.get_record(key, held).await
        }
    }

    /// Four isolates of one location on a watching store, all holding each other's
    /// records, with two tabs each; and the time they do.
    fn location_of_four() -> (Watching, Vec<Service>, u64) {
        let kv = Watching {
            inner: MemoryStore::new(ManualClock::new(T0)),
            olds: RefCell::new(Vec::new()),
            alive_at_a_read: Cell::new(0),
        };
        let (svc, t) = four_isolates(&kv);
        assert_eq!(online(&svc[0], &kv.inner, t), 8);
        (kv, svc, t)
    }

    fn four_isolates(kv: &Watching) -> (Vec<Service>, u64) {
        let svc: Vec<Service> = ["a", "b", "c", "d"]
            .iter()
            .map(|n| Service::new(Presence::new(*n, EngineConfig::default()).with_location("L")))
            .collect();
        let mut t = T0;
        for round in 0..2u32 {
            for (i, s) in (0u32..).zip(&svc) {
                let _ = block_on_ready(s.heartbeat(kv, t, &beat(round * 10 + i), None));
            }
            t += 1_100;
            for s in &svc {
                let _ = block_on_ready(s.flush(kv, t));
            }
        }
        // Alone, an isolate lists again after a backoff: until each has found the others.
        for _ in 0..20 {
            if svc.iter().all(|s| s.with(|p| p.stats().record_tabs) == 6) {
                return (svc, t);
            }
            t += 5_000;
            for s in &svc {
                let _ = block_on_ready(s.count(kv, t, "demo", None));
                let _ = block_on_ready(s.flush(kv, t));
            }
        }
        panic!("the four isolates never held each other's records");
    }

    #[test]
    fn a_refresh_frees_each_old_record_before_it_reads_the_next() {
        let (kv, svc, t) = location_of_four();
        // Every peer writes a new record; then the first isolate refreshes.
        for (i, s) in (0u32..).zip(&svc).skip(1) {
            let _ = block_on_ready(s.heartbeat(&kv, t + 100, &beat(100 + i), None));
        }
        for s in &svc[1..] {
            let _ = block_on_ready(s.flush(&kv, t + 1_200));
        }
        kv.olds.borrow_mut().clear();
        kv.alive_at_a_read.set(0);
        let count = block_on_ready(svc[0].count(&kv, t + 1_300, "demo", None));
        assert_eq!(count.map(|c| c.online), Ok(11));
        // Three peers' old copies were handed over, and none outlived its own read.
        assert_eq!(kv.olds.borrow().len(), 3);
        assert_eq!(kv.alive_at_a_read.get(), 0);
        assert!(kv.olds.borrow().iter().all(|w| w.strong_count() == 0));
    }

    #[test]
    fn a_record_written_once_is_decoded_once() {
        let (kv, svc, t) = location_of_four();
        let peers = ["r:demo:L/b", "r:demo:L/c", "r:demo:L/d"];
        let held = |s: &Service| -> Vec<Arc<IndexedRecord>> {
            peers
                .iter()
                .filter_map(|k| s.with(|p| p.held_record("demo", k)))
                .collect()
        };
        let before = held(&svc[0]);
        assert_eq!(before.len(), 3);
        // Read again (polls and a listing) with nothing rewritten: the same copies.
        for dt in [600, 1_200, 11_000] {
            assert_eq!(online(&svc[0], &kv.inner, t + dt), 8);
        }
        let reads = kv.inner.ops().reads;
        assert!(
            reads >= 6,
            "the peers' records were read again ({reads} reads)"
        );
        let after = held(&svc[0]);
        assert!(before.iter().zip(&after).all(|(a, b)| Arc::ptr_eq(a, b)));
        // A rewrite is decoded.
        let _ = block_on_ready(svc[1].heartbeat(&kv, t + 11_100, &beat(200), None));
        let _ = block_on_ready(svc[1].flush(&kv, t + 12_200));
        assert_eq!(online(&svc[0], &kv.inner, t + 12_800), 9);
        let after = held(&svc[0]);
        assert!(!Arc::ptr_eq(&before[0], &after[0]));
        assert!(Arc::ptr_eq(&before[1], &after[1]));
    }
}
