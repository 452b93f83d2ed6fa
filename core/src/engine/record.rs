//! What isolates publish: records, tombstones, location summaries, last-seen values.

use super::*;

/// KV's largest value, in bytes (25 MiB).
pub const MAX_VALUE_BYTES: usize = 25 * 1024 * 1024;

/// The most bytes of tabs and tombstones one record publishes (headroom under
/// [`MAX_VALUE_BYTES`]).
pub const RECORD_BUDGET_BYTES: usize = 24 * 1024 * 1024;

/// A write the engine asks its driver to make.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Write {
    /// The key.
    pub key: String,
    /// The value.
    pub value: Vec<u8>,
    /// Metadata returned by listings (for records: the location [`Summary`] as JSON).
    pub metadata: Option<String>,
    /// Expiration TTL in seconds (at least KV's 60).
    pub ttl_s: u64,
    /// Whether it goes to the per-location channel instead of KV (`engine::local`).
    pub local: bool,
}

/// One tab as stored in a record.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TabRecord {
    /// Visitor id.
    #[serde(rename = "v")]
    pub visitor: String,
    /// Tab id.
    #[serde(rename = "t")]
    pub tab: String,
    /// Page.
    #[serde(rename = "p")]
    pub page: String,
    /// State.
    #[serde(rename = "s")]
    pub state: TabState,
    /// Member, if the visitor is one.
    #[serde(rename = "m", default, skip_serializing_if = "Option::is_none")]
    pub member: Option<Member>,
    /// First heartbeat, Unix ms.
    #[serde(rename = "f")]
    pub first_ms: u64,
    /// Last heartbeat seen by the writer, Unix ms.
    #[serde(rename = "l")]
    pub last_ms: u64,
}

/// A tombstone: the tab left at `at_ms`, or timed out after its last heartbeat at `at_ms`.
/// It removes every entry of the tab whose last heartbeat is not later.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Tombstone {
    /// Visitor id.
    #[serde(rename = "v")]
    pub visitor: String,
    /// Tab id.
    #[serde(rename = "t")]
    pub tab: String,
    /// When the tab left (or was last seen before timing out), Unix ms.
    #[serde(rename = "a")]
    pub at_ms: u64,
}

/// What one isolate publishes for one site.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Record {
    /// Format version (1).
    #[serde(rename = "ver")]
    pub version: u8,
    /// The isolate that wrote it.
    #[serde(rename = "iso")]
    pub isolate: String,
    /// The writer's location, if it knows it.
    #[serde(rename = "loc", default, skip_serializing_if = "Option::is_none")]
    pub location: Option<String>,
    /// When it was written, Unix ms.
    #[serde(rename = "w")]
    pub written_ms: u64,
    /// Until when it vouches for its active tabs, Unix ms.
    #[serde(rename = "u")]
    pub lease_until_ms: u64,
    /// Live tabs.
    #[serde(rename = "tabs")]
    pub tabs: Vec<TabRecord>,
    /// Recent tombstones.
    #[serde(rename = "gone")]
    pub gone: Vec<Tombstone>,
}

impl Record {
    /// Encodes as compact JSON.
    #[must_use]
    pub fn encode(&self) -> Vec<u8> {
        serde_json::to_vec(self).unwrap_or_default()
    }

    /// Decodes a record; `None` for anything that is not a version-1 record.
    #[must_use]
    pub fn decode(bytes: &[u8]) -> Option<Self> {
        serde_json::from_slice::<Self>(bytes)
            .ok()
            .filter(|r| r.version == 1)
    }

    /// When the record in `bytes` was written, read without decoding its tabs (a scan,
    /// no allocation per tab); `None` for anything that is not a version-1 record.
    #[must_use]
    pub fn written_ms_of(bytes: &[u8]) -> Option<u64> {
        #[derive(Deserialize)]
        struct Head {
            #[serde(rename = "ver")]
            version: u8,
            #[serde(rename = "w")]
            written_ms: u64,
        }
        serde_json::from_slice::<Head>(bytes)
            .ok()
            .filter(|h| h.version == 1)
            .map(|h| h.written_ms)
    }
}

/// A location's count as one of its isolates saw it when writing its record; carried in
/// the record key's metadata so that other locations count from a listing alone.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct Summary {
    /// When it was written, Unix ms.
    #[serde(rename = "w")]
    pub written_ms: u64,
    /// Until when it vouches for its people, Unix ms.
    #[serde(rename = "u")]
    pub lease_until_ms: u64,
    /// The location, if known.
    #[serde(rename = "l", default, skip_serializing_if = "Option::is_none")]
    pub location: Option<String>,
    /// People online.
    #[serde(rename = "o")]
    pub online: u64,
    /// Live tabs.
    #[serde(rename = "t")]
    pub tabs: u64,
    /// People online who are members.
    #[serde(rename = "m")]
    pub members: u64,
    /// People online none of whose tabs is active.
    #[serde(rename = "i")]
    pub idle: u64,
    /// The busiest pages with their people, as many as fit in KV's metadata.
    #[serde(rename = "p", default, skip_serializing_if = "Vec::is_empty")]
    pub pages: Vec<(String, u64)>,
}

impl Summary {
    /// Encodes as JSON of at most [`MAX_METADATA_BYTES`] bytes: pages are dropped from the
    /// least busy until it fits.
    #[must_use]
    pub fn encode(&self) -> String {
        let mut s = self.clone();
        loop {
            let json = serde_json::to_string(&s).unwrap_or_default();
            if json.len() <= MAX_METADATA_BYTES || s.pages.is_empty() {
                return json;
            }
            // Drop about the overflow's worth of pages at once, at least one.
            let over = json.len() - MAX_METADATA_BYTES;
            let mut freed = 0;
            while freed < over {
                match s.pages.pop() {
                    Some((p, n)) => freed += p.len() + n.to_string().len() + 6,
                    None => break,
                }
            }
        }
    }

    /// Decodes metadata written by [`Summary::encode`].
    #[must_use]
    pub fn decode(metadata: &str) -> Option<Self> {
        serde_json::from_str(metadata).ok()
    }
}

/// A member's last-seen value as stored at [`last_seen_key`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LastSeen {
    /// When the member was last seen, in Unix ms.
    pub last_seen: u64,
    /// The display name then.
    pub name: String,
}

/// A record as this isolate publishes it, borrowed from its state: encoded exactly as
/// [`Record`] (same fields, names and order), without copying any tab or tombstone.
#[derive(Debug, Serialize)]
pub(super) struct RecordOut<'a> {
    #[serde(rename = "ver")]
    pub(super) version: u8,
    #[serde(rename = "iso")]
    pub(super) isolate: &'a str,
    #[serde(rename = "loc", skip_serializing_if = "Option::is_none")]
    pub(super) location: Option<&'a str>,
    #[serde(rename = "w")]
    pub(super) written_ms: u64,
    #[serde(rename = "u")]
    pub(super) lease_until_ms: u64,
    #[serde(rename = "tabs")]
    pub(super) tabs: Vec<&'a TabRecord>,
    #[serde(rename = "gone")]
    pub(super) gone: Vec<&'a Tombstone>,
}

impl RecordOut<'_> {
    /// Encodes as compact JSON into a buffer sized up front (no doubling of a large one).
    pub(super) fn encode(&self) -> Vec<u8> {
        let size = 256
            + self
                .tabs
                .iter()
                .map(|t| {
                    let member = t
                        .member
                        .as_ref()
                        .map_or(0, |m| m.id.len() + m.name.len() + 24);
                    t.visitor.len() + t.tab.len() + t.page.len() + member + 80
                })
                .sum::<usize>()
            + self
                .gone
                .iter()
                .map(|g| g.visitor.len() + g.tab.len() + 40)
                .sum::<usize>();
        let mut out = Vec::with_capacity(size);
        match serde_json::to_writer(&mut out, self) {
            Ok(()) => out,
            Err(_) => Vec::new(),
        }
    }

    /// Encodes within `max` bytes: past it (only unvalidated input gets there), keeps the
    /// most recently seen tabs, a tenth fewer each time.
    pub(super) fn encode_within(mut self, max: usize) -> Vec<u8> {
        let mut value = self.encode();
        if value.len() > max {
            self.tabs.sort_by_key(|t| std::cmp::Reverse(t.last_ms));
            while value.len() > max && !self.tabs.is_empty() {
                self.tabs.truncate(self.tabs.len() * 9 / 10);
                value = self.encode();
            }
        }
        value
    }
}

/// An upper bound of a tab's encoded size, in bytes (validated ids and pages hold no
/// control characters, so JSON at most doubles them; names may be escaped six-fold).
pub(super) fn tab_bytes(t: &TabRecord) -> usize {
    let member = t
        .member
        .as_ref()
        .map_or(0, |m| 2 * m.id.len() + 6 * m.name.len() + 24);
    2 * (t.visitor.len() + t.tab.len() + t.page.len()) + member + 80
}
