//! The async driver: runs the sans-IO [`Presence`] engine against a [`Store`].
//!
//! The engine's state sits in a `RefCell` that is never borrowed across an `await`, so
//! requests that interleave inside one isolate (Workers runs them concurrently on one
//! thread) cannot trip over each other.

use std::cell::{Cell, RefCell};

use serde::{Deserialize, Serialize};

use crate::Error;
use crate::engine::{
    LastSeen, Member, OnlineMember, Presence, Write, last_seen_key, record_prefix,
};
use crate::protocol::{Beat, BeatResponse, Count};
use crate::store::Store;

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
#[derive(Debug)]
pub struct Service {
    presence: RefCell<Presence>,
    refreshing: Cell<bool>,
}

impl Service {
    /// Wraps an engine.
    #[must_use]
    pub fn new(presence: Presence) -> Self {
        Self {
            presence: RefCell::new(presence),
            refreshing: Cell::new(false),
        }
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
        let (count, next_heartbeat_ms) = self.with(|p| {
            (
                p.count(now, &beat.site, Some(&beat.page)),
                p.config().heartbeat_ms,
            )
        });
        Ok(BeatResponse {
            count,
            next_heartbeat_ms,
        })
    }

    /// Records a leave and publishes it. A failed write is retried at the next flush (and
    /// the tab would time out anyway), so a leave never fails on the store.
    pub async fn leave<S: Store>(&self, store: &S, now: u64, beat: &Beat) {
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
        Ok(self.with(|p| p.count(now, site, page)))
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
        let stored = store.get(&last_seen_key(site, member)).await?;
        let last_seen = stored
            .and_then(|b| serde_json::from_slice::<LastSeen>(&b).ok())
            .map(|l| l.last_seen);
        Ok(LastSeenResponse {
            member: member.to_owned(),
            online: false,
            last_seen,
        })
    }

    /// Makes the writes the engine has due now.
    ///
    /// # Errors
    /// 503 when a write fails (the engine retries it later).
    pub async fn flush<S: Store>(&self, store: &S, now: u64) -> Result<(), Error> {
        let writes: Vec<Write> = self.with(|p| p.take_writes(now));
        let mut first_err = None;
        for w in writes {
            if let Err(e) = store.put(&w.key, w.value, w.metadata, w.ttl_s).await {
                self.with(|p| p.write_failed(now, &w.key));
                first_err.get_or_insert(e);
            }
        }
        match first_err {
            Some(e) => Err(e.into()),
            None => Ok(()),
        }
    }

    /// Refreshes the view of other isolates' records for `site` if it is stale: one listing
    /// (a page per 1,000 isolates) plus a read per record that changed.
    ///
    /// # Errors
    /// 503 when the store fails.
    pub async fn refresh<S: Store>(&self, store: &S, now: u64, site: &str) -> Result<(), Error> {
        if self.refreshing.get() || !self.with(|p| p.needs_refresh(now, site)) {
            return Ok(());
        }
        self.refreshing.set(true);
        let result = self.refresh_now(store, now, site).await;
        self.refreshing.set(false);
        result
    }

    async fn refresh_now<S: Store>(&self, store: &S, now: u64, site: &str) -> Result<(), Error> {
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
        let wanted = self.with(|p| p.keys_to_fetch(site, &listed));
        let mut fetched = Vec::with_capacity(wanted.len());
        for key in wanted {
            if let Some(bytes) = store.get(&key).await? {
                fetched.push((key, bytes));
            }
        }
        self.with(|p| p.apply_remote(now, site, &listed, fetched));
        Ok(())
    }
}
