//! The per-location channel as the simulation models it (the Cache API of a data center):
//! shared by the isolates of one location, no lag, free, TTLs honoured, and a read misses
//! with a stated chance (an entry evicted under pressure), drawn per read.

use std::cell::OnceCell;
use std::collections::BTreeMap;
use std::rc::Rc;
use std::sync::Arc;

use herenow_core::engine::{IndexedRecord, Record};

#[derive(Debug)]
struct Entry {
    value: Rc<Vec<u8>>,
    expires: u64,
    /// The value decoded as a record, once some reader asked.
    decoded: OnceCell<Option<Arc<IndexedRecord>>>,
}

/// Every location's channel in one map: the engine's channel keys name their location.
#[derive(Debug, Default)]
pub(crate) struct ChannelModel {
    entries: BTreeMap<String, Entry>,
    /// The chance that a read misses.
    pub miss: f64,
    /// Draws for misses (its own stream: visitors and routing stay the same).
    draws: u64,
    /// Calls served while measuring: (gets, puts).
    pub gets: u64,
    pub puts: u64,
}

impl ChannelModel {
    pub fn new(miss: f64, seed: u64) -> Self {
        Self {
            miss,
            draws: seed ^ 0xC0FF_EE00_D15C_0000,
            ..Self::default()
        }
    }

    fn missed(&mut self) -> bool {
        if self.miss <= 0.0 {
            return false;
        }
        self.draws = self.draws.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.draws;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^= z >> 31;
        (z >> 11) as f64 / (1u64 << 53) as f64 >= 1.0 - self.miss
    }

    pub fn put(&mut self, key: &str, value: Vec<u8>, ttl_s: u64, now: u64, count: bool) {
        if count {
            self.puts += 1;
        }
        self.entries.insert(
            key.to_owned(),
            Entry {
                value: Rc::new(value),
                expires: now + ttl_s * 1000,
                decoded: OnceCell::new(),
            },
        );
    }

    fn entry(&mut self, key: &str, now: u64, count: bool) -> Option<&Entry> {
        if count {
            self.gets += 1;
        }
        if self.missed() {
            return None;
        }
        self.entries.get(key).filter(|e| e.expires > now)
    }

    pub fn get(&mut self, key: &str, now: u64, count: bool) -> Option<Vec<u8>> {
        self.entry(key, now, count)
            .map(|e| e.value.as_ref().clone())
    }

    /// The value decoded as a record (once per write, however many isolates read it).
    pub fn get_indexed(&mut self, key: &str, now: u64, count: bool) -> Option<Arc<IndexedRecord>> {
        let e = self.entry(key, now, count)?;
        e.decoded
            .get_or_init(|| Record::decode(&e.value).map(|r| Arc::new(IndexedRecord::new(r))))
            .clone()
    }
}
