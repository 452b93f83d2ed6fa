//! A Workers KV model: per-location visibility lag, TTLs, operation counts, and the
//! 1 write/s/key rule.

use std::cell::{Cell, OnceCell, RefCell};
use std::collections::{BTreeMap, VecDeque};
use std::rc::Rc;
use std::sync::Arc;

use herenow_core::engine::{IndexedRecord, Record};

use herenow_core::store::{LIST_PAGE, ListPage, ListedKey, Store, StoreError};

use super::channel::ChannelModel;

/// Operations served.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct Ops {
    pub writes: u64,
    pub deletes: u64,
    pub lists: u64,
    pub reads: u64,
    /// Writes or deletes of a key less than 1 s after the previous one.
    pub violations: u64,
    /// Writes of members' last-seen values (part of `writes`).
    pub last_seen_writes: u64,
}

impl Ops {
    /// Writes of the engine's records (all but members' last-seen values): the writes that
    /// carry counts, which the oracle at herenow's own budget is given.
    pub fn record_writes(&self) -> u64 {
        self.writes - self.last_seen_writes
    }
}

impl core::ops::Sub for Ops {
    type Output = Self;
    fn sub(self, o: Self) -> Self {
        Self {
            writes: self.writes - o.writes,
            deletes: self.deletes - o.deletes,
            lists: self.lists - o.lists,
            reads: self.reads - o.reads,
            violations: self.violations - o.violations,
            last_seen_writes: self.last_seen_writes - o.last_seen_writes,
        }
    }
}

fn mix(mut z: u64) -> u64 {
    z = z.wrapping_add(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// The visibility lag of write (`key`, `written`) at `loc` for a writer at `writer`.
pub(crate) fn lag(seed: u64, max: u64, key: u64, written: u64, writer: u16, loc: u16) -> u64 {
    if writer == loc {
        return 0;
    }
    mix(seed ^ mix(key ^ mix(written ^ (u64::from(loc) << 48)))) % (max + 1)
}

#[derive(Debug)]
struct Version {
    written: u64,
    writer: u16,
    /// `None`: a delete.
    entry: Option<Rc<(Vec<u8>, Option<String>)>>,
    expires: u64,
    /// The value decoded as a record, once some reader asked.
    decoded: OnceCell<Option<Arc<IndexedRecord>>>,
}

#[derive(Debug)]
struct Hist {
    id: u64,
    versions: VecDeque<Version>,
    last_write: u64,
}

/// Keys with their recent versions.
#[derive(Debug)]
pub(crate) struct KvModel {
    seed: u64,
    max_lag: u64,
    keys: BTreeMap<String, Hist>,
    next_id: u64,
    pub ops: Ops,
    /// The largest value and metadata written, in bytes.
    pub max_value: usize,
    pub max_metadata: usize,
    pub max_key: usize,
    pub min_ttl: u64,
}

impl KvModel {
    pub fn new(seed: u64, max_lag: u64) -> Self {
        Self {
            seed,
            max_lag,
            keys: BTreeMap::new(),
            next_id: 1,
            ops: Ops::default(),
            max_value: 0,
            max_metadata: 0,
            max_key: 0,
            min_ttl: u64::MAX,
        }
    }

    /// The id the lag of `key`'s writes is drawn with, once written.
    pub fn key_id(&self, key: &str) -> Option<u64> {
        self.keys.get(key).map(|h| h.id)
    }

    fn hist(&mut self, key: &str) -> &mut Hist {
        if !self.keys.contains_key(key) {
            self.next_id += 1;
            self.keys.insert(
                key.to_owned(),
                Hist {
                    id: self.next_id,
                    versions: VecDeque::new(),
                    last_write: 0,
                },
            );
        }
        self.keys.get_mut(key).expect("just inserted")
    }

    fn push(&mut self, key: &str, now: u64, v: Version) {
        let max_lag = self.max_lag;
        let h = self.hist(key);
        let violation = h.last_write != 0 && now < h.last_write + 1_000;
        h.last_write = now;
        h.versions.push_back(v);
        // Versions older than the newest one visible everywhere are never read again.
        while h.versions.len() > 1 && h.versions[1].written + max_lag < now {
            h.versions.pop_front();
        }
        if violation {
            self.ops.violations += 1;
        }
    }

    /// A put at `now` from location `loc`.
    pub fn put(
        &mut self,
        key: &str,
        value: Vec<u8>,
        metadata: Option<String>,
        ttl_s: u64,
        now: u64,
        loc: u16,
    ) {
        self.ops.writes += 1;
        self.ops.last_seen_writes += u64::from(key.starts_with("m:"));
        self.max_value = self.max_value.max(value.len());
        self.max_metadata = self
            .max_metadata
            .max(metadata.as_ref().map_or(0, String::len));
        self.max_key = self.max_key.max(key.len());
        self.min_ttl = self.min_ttl.min(ttl_s);
        let v = Version {
            written: now,
            writer: loc,
            entry: Some(Rc::new((value, metadata))),
            expires: now + ttl_s * 1000,
            decoded: OnceCell::new(),
        };
        self.push(key, now, v);
    }

    fn visible<'a>(&self, h: &'a Hist, loc: u16, now: u64) -> Option<&'a Version> {
        let v = h.versions.iter().rev().find(|v| {
            v.written + lag(self.seed, self.max_lag, h.id, v.written, v.writer, loc) <= now
        })?;
        (v.entry.is_some() && v.expires > now).then_some(v)
    }

    /// The keys under `prefix` visible at `loc`, with their metadata, and how many list
    /// pages that took.
    pub fn list(&mut self, prefix: &str, loc: u16, now: u64, count: bool) -> Vec<ListedKey> {
        let out: Vec<ListedKey> = self
            .keys
            .range(prefix.to_owned()..)
            .take_while(|(k, _)| k.starts_with(prefix))
            .filter_map(|(k, h)| {
                let v = self.visible(h, loc, now)?;
                Some(ListedKey {
                    name: k.clone(),
                    metadata: v.entry.as_ref().and_then(|e| e.1.clone()),
                })
            })
            .collect();
        if count {
            self.ops.lists += out.len().div_ceil(LIST_PAGE).max(1) as u64;
        }
        out
    }

    /// The value of `key` visible at `loc`, as bytes.
    pub fn get(&mut self, key: &str, loc: u16, now: u64, count: bool) -> Option<Vec<u8>> {
        if count {
            self.ops.reads += 1;
        }
        let h = self.keys.get(key)?;
        let v = self.visible(h, loc, now)?;
        Some(v.entry.as_ref()?.0.clone())
    }

    /// The value of `key` visible at `loc`, decoded as a record (decoded once per write,
    /// however many isolates read it).
    pub fn get_indexed(
        &mut self,
        key: &str,
        loc: u16,
        now: u64,
        count: bool,
    ) -> Option<Arc<IndexedRecord>> {
        if count {
            self.ops.reads += 1;
        }
        let h = self.keys.get(key)?;
        let v = self.visible(h, loc, now)?;
        let e = v.entry.as_ref()?;
        v.decoded
            .get_or_init(|| Record::decode(&e.0).map(|r| Arc::new(IndexedRecord::new(r))))
            .clone()
    }
}

/// The naive designs' keys: one per visitor, as a short history of puts and deletes.
#[derive(Debug, Default)]
pub(crate) struct NaiveKv {
    /// Per visitor: (written, writer location, is put).
    hist: Vec<VecDeque<(u64, u16, bool)>>,
    last_write: Vec<u64>,
    pub ops: Ops,
    pub max_metadata: usize,
}

impl NaiveKv {
    pub fn ensure(&mut self, visitor: usize) {
        if self.hist.len() <= visitor {
            self.hist.resize_with(visitor + 1, VecDeque::new);
            self.last_write.resize(visitor + 1, 0);
        }
    }

    fn op(&mut self, visitor: usize, now: u64, loc: u16, put: bool, max_lag: u64) {
        self.ensure(visitor);
        if self.last_write[visitor] != 0 && now < self.last_write[visitor] + 1_000 {
            self.ops.violations += 1;
        }
        self.last_write[visitor] = now;
        let h = &mut self.hist[visitor];
        h.push_back((now, loc, put));
        while h.len() > 1 && h[1].0 + max_lag < now {
            h.pop_front();
        }
    }

    pub fn put(&mut self, visitor: usize, now: u64, loc: u16, max_lag: u64, metadata_len: usize) {
        self.ops.writes += 1;
        self.max_metadata = self.max_metadata.max(metadata_len);
        self.op(visitor, now, loc, true, max_lag);
    }

    pub fn delete(&mut self, visitor: usize, now: u64, loc: u16, max_lag: u64) {
        self.ops.deletes += 1;
        self.op(visitor, now, loc, false, max_lag);
    }

    /// Keys a count at `loc` sees at `now` (a put with 60 s TTL left, fresh within the window).
    pub fn count(&self, seed: u64, max_lag: u64, loc: u16, now: u64, ttl_ms: u64) -> u64 {
        self.hist
            .iter()
            .enumerate()
            .filter(|(i, h)| {
                h.iter()
                    .rev()
                    .find(|(w, wl, _)| {
                        w + lag(seed, max_lag, *i as u64 + (1 << 40), *w, *wl, loc) <= now
                    })
                    .is_some_and(|(w, _, put)| *put && w + ttl_ms > now)
            })
            .count() as u64
    }

    /// Keys present anywhere (what a listing returns, give or take the lag).
    pub fn present(&self, now: u64, ttl_ms: u64) -> u64 {
        self.hist
            .iter()
            .filter(|h| h.back().is_some_and(|(w, _, put)| *put && w + ttl_ms > now))
            .count() as u64
    }

    /// When visitor `visitor`'s delete at `at` shows at `loc`.
    pub fn delete_lag(
        seed: u64,
        max_lag: u64,
        visitor: usize,
        at: u64,
        writer: u16,
        loc: u16,
    ) -> u64 {
        lag(seed, max_lag, visitor as u64 + (1 << 40), at, writer, loc)
    }
}

/// The simulated KV as one isolate sees it at one instant: the [`Store`] the shipped
/// driver ([`herenow_core::service::Service`]) runs against in the simulation. Operations are
/// accounted only if `account`; `wrote_own` tells the simulation that the isolate's own
/// record was written (for its leave probes and oracles).
pub(crate) struct At<'a> {
    pub kv: &'a RefCell<KvModel>,
    /// The per-location channel, where the scenario has one.
    pub channel: Option<&'a RefCell<ChannelModel>>,
    pub loc: u16,
    pub now: u64,
    pub account: bool,
    pub own_key: &'a str,
    pub wrote_own: Cell<bool>,
    /// The isolate's own record was put in the per-location channel (its peers see it).
    pub shared_own: Cell<bool>,
}

impl Store for At<'_> {
    async fn get(&self, key: &str) -> Result<Option<Vec<u8>>, StoreError> {
        Ok(self
            .kv
            .borrow_mut()
            .get(key, self.loc, self.now, self.account))
    }

    async fn put(
        &self,
        key: &str,
        value: Vec<u8>,
        metadata: Option<String>,
        ttl_s: u64,
    ) -> Result<(), StoreError> {
        self.kv
            .borrow_mut()
            .put(key, value, metadata, ttl_s, self.now, self.loc);
        if key == self.own_key {
            self.wrote_own.set(true);
        }
        Ok(())
    }

    async fn list(&self, prefix: &str, _cursor: Option<&str>) -> Result<ListPage, StoreError> {
        // One call returns every page; the pages are accounted all the same.
        let keys = self
            .kv
            .borrow_mut()
            .list(prefix, self.loc, self.now, self.account);
        Ok(ListPage { keys, cursor: None })
    }

    async fn get_record(
        &self,
        key: &str,
        _held: Option<&Arc<IndexedRecord>>,
    ) -> Result<Option<Arc<IndexedRecord>>, StoreError> {
        Ok(self
            .kv
            .borrow_mut()
            .get_indexed(key, self.loc, self.now, self.account))
    }

    fn has_local(&self) -> bool {
        self.channel.is_some()
    }

    async fn local_get(&self, key: &str) -> Option<Vec<u8>> {
        self.channel?.borrow_mut().get(key, self.now, self.account)
    }

    async fn local_put(&self, key: &str, value: Vec<u8>, ttl_s: u64) -> bool {
        let Some(c) = self.channel else {
            return false;
        };
        c.borrow_mut()
            .put(key, value, ttl_s, self.now, self.account);
        if key == self.own_key {
            self.shared_own.set(true);
        }
        true
    }

    async fn local_get_record(
        &self,
        key: &str,
        _held: Option<&Arc<IndexedRecord>>,
    ) -> Option<Arc<IndexedRecord>> {
        self.channel?
            .borrow_mut()
            .get_indexed(key, self.now, self.account)
    }
}
