//! The key-value store the engine persists to, behind a trait.
//!
//! The edge implements [`Store`] for Workers KV; [`MemoryStore`] is the in-memory double
//! used by native tests. Both follow KV's rules: a TTL of at least [`MIN_TTL_S`] seconds
//! and at most [`LIST_PAGE`] keys a list page.

use std::cell::{Cell, RefCell};
use std::collections::BTreeMap;
use std::rc::Rc;
use std::sync::Arc;

use crate::engine::IndexedRecord;

/// KV's smallest allowed expiration TTL, in seconds.
pub const MIN_TTL_S: u64 = 60;
/// KV's largest list page.
pub const LIST_PAGE: usize = 1000;

/// A store failure (the edge answers 503 with Retry-After).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoreError(pub String);

impl core::fmt::Display for StoreError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        write!(f, "store error: {}", self.0)
    }
}

impl std::error::Error for StoreError {}

/// The longest `Retry-After` a store failure is answered with, in seconds (the
/// [`crate::service::Service`] shortens it to the heartbeat interval, see
/// [`crate::engine::EngineConfig::store_retry_after_s`]).
pub const STORE_RETRY_AFTER_S: u32 = 5;

impl From<StoreError> for crate::Error {
    /// A 503 whose message says only that the store failed: the store's own message (a
    /// runtime error, possibly with a stack) stays out of public responses.
    fn from(_: StoreError) -> Self {
        unavailable(STORE_RETRY_AFTER_S)
    }
}

/// The 503 a request gets when the store failed (or, held back after failures, would
/// not be asked), with its `Retry-After`.
#[must_use]
pub fn unavailable(retry_after_s: u32) -> crate::Error {
    crate::Error::unavailable(
        "the presence store is unavailable; retry later",
        retry_after_s,
    )
}

/// KV's largest metadata, in bytes.
pub const MAX_METADATA_BYTES: usize = 1024;

/// A key as a listing returns it, with the metadata written beside its value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ListedKey {
    /// The key.
    pub name: String,
    /// The metadata given to [`Store::put`], if any.
    pub metadata: Option<String>,
}

/// One page of a prefix listing.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ListPage {
    /// Keys on this page, in lexicographic order.
    pub keys: Vec<ListedKey>,
    /// Where the next page starts, if there is one.
    pub cursor: Option<String>,
}

/// A KV-like store. Futures need not be `Send`: Workers is single-threaded.
#[allow(async_fn_in_trait)]
pub trait Store {
    /// The value at `key`, if present and not expired.
    async fn get(&self, key: &str) -> Result<Option<Vec<u8>>, StoreError>;
    /// Writes `value` at `key` with optional `metadata` (at most [`MAX_METADATA_BYTES`],
    /// returned by [`Store::list`]), to expire after `ttl_s` seconds (at least [`MIN_TTL_S`]).
    async fn put(
        &self,
        key: &str,
        value: Vec<u8>,
        metadata: Option<String>,
        ttl_s: u64,
    ) -> Result<(), StoreError>;
    /// Up to [`LIST_PAGE`] keys starting with `prefix`, after `cursor`.
    async fn list(&self, prefix: &str, cursor: Option<&str>) -> Result<ListPage, StoreError>;
    /// The record at `key`, decoded and indexed, or `held` again when it is the same write
    /// ([`IndexedRecord::decode`]); `None` if absent or not a record. A store shared by
    /// many engines in one process (the simulation's) overrides it to decode each write
    /// once.
    async fn get_record(
        &self,
        key: &str,
        held: Option<&Arc<IndexedRecord>>,
    ) -> Result<Option<Arc<IndexedRecord>>, StoreError> {
        let bytes = self.get(key).await?;
        Ok(bytes.and_then(|b| IndexedRecord::decode(&b, held)))
    }

    /// Whether the per-location channel works here: a store shared by the isolates of one
    /// location only, free and without lag (the Cache API on a custom domain; it does
    /// nothing on `workers.dev`). Without it the engine exchanges records through KV.
    fn has_local(&self) -> bool {
        false
    }

    /// The value at `key` in the per-location channel; `None` when absent, evicted or
    /// unreadable (the channel is best effort: a miss reads as "not known").
    async fn local_get(&self, _key: &str) -> Option<Vec<u8>> {
        None
    }

    /// Puts `value` at `key` in the per-location channel for `ttl_s` seconds; `false` if
    /// it failed.
    async fn local_put(&self, _key: &str, _value: Vec<u8>, _ttl_s: u64) -> bool {
        false
    }

    /// The record at `key` in the per-location channel, as [`Store::get_record`] (the
    /// simulation's store overrides it likewise).
    async fn local_get_record(
        &self,
        key: &str,
        held: Option<&Arc<IndexedRecord>>,
    ) -> Option<Arc<IndexedRecord>> {
        let bytes = self.local_get(key).await?;
        IndexedRecord::decode(&bytes, held)
    }
}

/// How many operations of each kind a [`MemoryStore`] has served.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct OpCounts {
    /// `get` calls.
    pub reads: u64,
    /// `put` calls.
    pub writes: u64,
    /// `list` calls.
    pub lists: u64,
}

/// A shared, settable clock in Unix milliseconds, for tests and the simulation.
#[derive(Debug, Clone, Default)]
pub struct ManualClock(Rc<Cell<u64>>);

impl ManualClock {
    /// A clock reading `now_ms`.
    #[must_use]
    pub fn new(now_ms: u64) -> Self {
        Self(Rc::new(Cell::new(now_ms)))
    }
    /// The time now.
    #[must_use]
    pub fn now_ms(&self) -> u64 {
        self.0.get()
    }
    /// Moves the clock forward by `ms`.
    pub fn advance(&self, ms: u64) {
        self.0.set(self.0.get() + ms);
    }
    /// Sets the clock.
    pub fn set(&self, now_ms: u64) {
        self.0.set(now_ms);
    }
}

/// An in-memory [`Store`] with KV's TTL semantics, operation counters and an optional
/// failure switch. Clones share the same data.
#[derive(Debug, Clone, Default)]
pub struct MemoryStore {
    inner: Rc<MemoryInner>,
}

#[derive(Debug)]
struct Entry {
    value: Vec<u8>,
    metadata: Option<String>,
    expires_ms: u64,
}

#[derive(Debug, Default)]
struct MemoryInner {
    data: RefCell<BTreeMap<String, Entry>>,
    ops: Cell<OpCounts>,
    failing: Cell<bool>,
    clock: ManualClock,
    /// The per-location channel, when switched on ([`MemoryStore::set_local`]).
    local_on: Cell<bool>,
    local: RefCell<BTreeMap<String, Entry>>,
    local_ops: Cell<OpCounts>,
}

impl MemoryStore {
    /// An empty store whose TTLs run on `clock`.
    #[must_use]
    pub fn new(clock: ManualClock) -> Self {
        Self {
            inner: Rc::new(MemoryInner {
                clock,
                ..MemoryInner::default()
            }),
        }
    }

    /// Operations served so far.
    #[must_use]
    pub fn ops(&self) -> OpCounts {
        self.inner.ops.get()
    }

    /// Makes every following operation fail (`true`) or succeed again (`false`).
    pub fn set_failing(&self, failing: bool) {
        self.inner.failing.set(failing);
    }

    /// Switches the per-location channel on or off (off, as on `workers.dev`, it holds
    /// nothing). Every engine on this store is of one location, or keys keep them apart.
    pub fn set_local(&self, on: bool) {
        self.inner.local_on.set(on);
    }

    /// Drops every entry of the per-location channel (as an eviction would).
    pub fn evict_local(&self) {
        self.inner.local.borrow_mut().clear();
    }

    /// Operations the per-location channel served (`reads`: gets, `writes`: puts).
    #[must_use]
    pub fn local_ops(&self) -> OpCounts {
        self.inner.local_ops.get()
    }

    /// Live keys, for inspection in tests.
    #[must_use]
    pub fn keys(&self) -> Vec<String> {
        let now = self.inner.clock.now_ms();
        self.inner
            .data
            .borrow()
            .iter()
            .filter(|(_, e)| e.expires_ms > now)
            .map(|(k, _)| k.clone())
            .collect()
    }

    fn op(&self, f: impl FnOnce(&mut OpCounts)) -> Result<(), StoreError> {
        let mut ops = self.inner.ops.get();
        f(&mut ops);
        self.inner.ops.set(ops);
        if self.inner.failing.get() {
            Err(StoreError("memory store set to fail".into()))
        } else {
            Ok(())
        }
    }
}

impl Store for MemoryStore {
    async fn get(&self, key: &str) -> Result<Option<Vec<u8>>, StoreError> {
        self.op(|o| o.reads += 1)?;
        let now = self.inner.clock.now_ms();
        Ok(self
            .inner
            .data
            .borrow()
            .get(key)
            .filter(|e| e.expires_ms > now)
            .map(|e| e.value.clone()))
    }

    async fn put(
        &self,
        key: &str,
        value: Vec<u8>,
        metadata: Option<String>,
        ttl_s: u64,
    ) -> Result<(), StoreError> {
        self.op(|o| o.writes += 1)?;
        if ttl_s < MIN_TTL_S {
            return Err(StoreError(format!(
                "expiration_ttl {ttl_s} is below KV's minimum of {MIN_TTL_S}"
            )));
        }
        if metadata
            .as_ref()
            .is_some_and(|m| m.len() > MAX_METADATA_BYTES)
        {
            return Err(StoreError(format!(
                "metadata is larger than KV's {MAX_METADATA_BYTES} bytes"
            )));
        }
        let expires_ms = self.inner.clock.now_ms() + ttl_s * 1000;
        self.inner.data.borrow_mut().insert(
            key.to_owned(),
            Entry {
                value,
                metadata,
                expires_ms,
            },
        );
        Ok(())
    }

    async fn list(&self, prefix: &str, cursor: Option<&str>) -> Result<ListPage, StoreError> {
        self.op(|o| o.lists += 1)?;
        let now = self.inner.clock.now_ms();
        let data = self.inner.data.borrow();
        let mut keys = data
            .range(cursor.unwrap_or(prefix).to_owned()..)
            .filter(|(k, _)| cursor.is_none_or(|c| k.as_str() > c))
            .take_while(|(k, _)| k.starts_with(prefix))
            .filter(|(_, e)| e.expires_ms > now)
            .map(|(k, e)| ListedKey {
                name: k.clone(),
                metadata: e.metadata.clone(),
            });
        let page: Vec<ListedKey> = keys.by_ref().take(LIST_PAGE).collect();
        let cursor = if keys.next().is_some() {
            page.last().map(|k| k.name.clone())
        } else {
            None
        };
        Ok(ListPage { keys: page, cursor })
    }

    fn has_local(&self) -> bool {
        self.inner.local_on.get()
    }

    async fn local_get(&self, key: &str) -> Option<Vec<u8>> {
        let mut ops = self.inner.local_ops.get();
        ops.reads += 1;
        self.inner.local_ops.set(ops);
        let now = self.inner.clock.now_ms();
        self.inner
            .local
            .borrow()
            .get(key)
            .filter(|e| self.inner.local_on.get() && e.expires_ms > now)
            .map(|e| e.value.clone())
    }

    async fn local_put(&self, key: &str, value: Vec<u8>, ttl_s: u64) -> bool {
        let mut ops = self.inner.local_ops.get();
        ops.writes += 1;
        self.inner.local_ops.set(ops);
        if !self.inner.local_on.get() {
            return false;
        }
        let expires_ms = self.inner.clock.now_ms() + ttl_s * 1000;
        self.inner.local.borrow_mut().insert(
            key.to_owned(),
            Entry {
                value,
                metadata: None,
                expires_ms,
            },
        );
        true
    }
}

/// Runs a future that never waits (e.g. one over a [`MemoryStore`]) to completion.
///
/// # Panics
/// If the future is still pending after being polled once, which a future over the
/// memory store never is.
pub fn block_on_ready<F: core::future::Future>(fut: F) -> F::Output {
    let mut fut = core::pin::pin!(fut);
    let mut cx = core::task::Context::from_waker(core::task::Waker::noop());
    match fut.as_mut().poll(&mut cx) {
        core::task::Poll::Ready(v) => v,
        core::task::Poll::Pending => panic!("block_on_ready: the future is not ready"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ttl_expiry_listing_and_counts() {
        let clock = ManualClock::new(1_000_000);
        let s = MemoryStore::new(clock.clone());
        block_on_ready(s.put("p:a", b"1".to_vec(), Some("m".into()), 60)).expect("put");
        block_on_ready(s.put("p:b", b"2".to_vec(), None, 120)).expect("put");
        block_on_ready(s.put("q:c", b"3".to_vec(), None, 60)).expect("put");
        assert!(block_on_ready(s.put("p:x", b"3".to_vec(), None, 59)).is_err());
        assert!(block_on_ready(s.put("p:y", vec![], Some("x".repeat(1025)), 60)).is_err());
        let page = block_on_ready(s.list("p:", None)).expect("list");
        let names: Vec<&str> = page.keys.iter().map(|k| k.name.as_str()).collect();
        assert_eq!(names, vec!["p:a", "p:b"]);
        assert_eq!(page.keys[0].metadata.as_deref(), Some("m"));
        clock.advance(61_000);
        assert_eq!(block_on_ready(s.get("p:a")).expect("get"), None);
        assert_eq!(
            block_on_ready(s.get("p:b")).expect("get"),
            Some(b"2".to_vec())
        );
        let ops = s.ops();
        assert_eq!((ops.writes, ops.lists, ops.reads), (5, 1, 2));
        s.set_failing(true);
        assert!(block_on_ready(s.get("p:b")).is_err());
    }

    #[test]
    fn list_pages_with_cursor() {
        let s = MemoryStore::new(ManualClock::new(0));
        for i in 0..(LIST_PAGE + 5) {
            block_on_ready(s.put(&format!("k:{i:05}"), vec![], None, 60)).expect("put");
        }
        let first = block_on_ready(s.list("k:", None)).expect("list");
        assert_eq!(first.keys.len(), LIST_PAGE);
        let second = block_on_ready(s.list("k:", first.cursor.as_deref())).expect("list");
        assert_eq!(second.keys.len(), 5);
        assert_eq!(second.cursor, None);
    }
}
