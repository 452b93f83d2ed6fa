//! The per-location channel: where it works (the Cache API on a custom domain), the
//! isolates of one location exchange their records through it instead of KV, and only one
//! of them — the location's *publisher* — writes to KV and lists it. KV's bill is then set
//! by the remote delay per location, whatever the number of isolates (`docs/design.md`,
//! "The per-location channel").
//!
//! The channel has no listing, so a location keeps a [`Directory`] in it: the record keys
//! of its isolates with when each last renewed its entry. Every isolate reads it with each
//! poll and adds itself when it is missing or old; a lost update (two isolates rewriting it
//! at once) is repaired by the next poll of whoever was dropped. The publisher is the
//! isolate with the lowest key among the fresh entries, so all isolates that read the same
//! directory agree on it without a lease. After each listing of KV the publisher puts what
//! it listed of other locations in the channel ([`Snapshot`]), so the others need no
//! listing of their own.
//!
//! Each write to KV is stamped in the directory ([`Directory::kv_ms`]). Every isolate sees
//! its location's changes (it polls its peers), so any of them can tell when the
//! publisher's write is overdue: the first with a request [`TAKEOVER_MS`] past the due
//! time writes the location itself and takes the role over. So the location is written at
//! the pace of its requests, not of the publisher's, which at 32 isolates gets one request
//! in 32. A write is made only right after a read of the directory, which it rewrites.
//!
//! A miss in the channel (an entry evicted, or never written) means "not known", never "no
//! tabs": a peer's record that cannot be read keeps its last copy, which vouches for its
//! tabs only as long as a record in KV would.

use super::*;

/// How often an isolate renews its directory entry, in ms.
pub const DIR_RENEW_MS: u64 = 10_000;

/// An entry not renewed for this long no longer stands for publisher, in ms: its isolate
/// has had no request for that long, or was evicted. (Its record is still read until
/// [`EngineConfig::peer_active_ms`] has passed, as a record in KV would be.)
pub const DIR_STALE_MS: u64 = 30_000;

/// How long the per-location channel keeps a location's directory, in seconds (renewed
/// far more often: [`DIR_RENEW_MS`]).
pub const DIRECTORY_TTL_S: u64 = 300;

/// How long past its due time a change of the location may wait for the publisher's KV
/// write before another isolate with a request makes it and takes the role over, in ms.
/// At many isolates per location the publisher gets few requests (at 32, about one every
/// 13 s on medium) and learns of its peers' changes only when it polls, at its requests;
/// whoever has a request when the write is overdue writes a fresh view instead
/// (docs/design.md, "The per-location channel").
pub const TAKEOVER_MS: u64 = 1_000;

/// A value the engine keeps in the channel, as JSON.
pub trait ChannelValue: Serialize + serde::de::DeserializeOwned {
    /// Decodes one; `None` if `bytes` is not one (a miss, for the engine).
    #[must_use]
    fn decode(bytes: &[u8]) -> Option<Self> {
        serde_json::from_slice(bytes).ok()
    }

    /// Encodes it.
    #[must_use]
    fn encode(&self) -> Vec<u8> {
        serde_json::to_vec(self).unwrap_or_default()
    }
}

/// A location's directory in the channel: each isolate's record key and when the isolate
/// last renewed it (Unix ms).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Directory {
    /// Record key → renewed at.
    #[serde(rename = "e")]
    pub entries: BTreeMap<String, u64>,
    /// The record key of the location's publisher: it keeps the role while it renews its
    /// entry, and the first isolate to see its entry older than [`DIR_STALE_MS`] takes
    /// it over (so an isolate back from a pause does not take it back).
    #[serde(rename = "p", default, skip_serializing_if = "Option::is_none")]
    pub publisher: Option<String>,
    /// When the location's record was last written to KV (Unix ms), by whichever isolate
    /// wrote it: the others then know which of the changes they saw KV has, and when a
    /// write is overdue ([`TAKEOVER_MS`]).
    #[serde(rename = "k", default, skip_serializing_if = "Option::is_none")]
    pub kv_ms: Option<u64>,
}

impl ChannelValue for Directory {}

impl Directory {
    /// The entries renewed within `within_ms` of `now`.
    pub fn renewed_within(&self, now: u64, within_ms: u64) -> impl Iterator<Item = &str> {
        self.entries
            .iter()
            .filter(move |(_, at)| **at + within_ms > now)
            .map(|(k, _)| k.as_str())
    }
}

/// What the publisher last listed of other locations, for the other isolates of its
/// location to use as their listing.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Snapshot {
    /// When its lister means to list again, Unix ms: until then (plus a remote delay) it
    /// stands for a listing.
    #[serde(rename = "n")]
    pub next_ms: u64,
    /// When its lister listed, Unix ms: a peer applies each listing once, as it appears.
    #[serde(rename = "l", default)]
    pub listed_ms: u64,
    /// Other locations' record keys with their metadata.
    #[serde(rename = "k")]
    pub keys: Vec<(String, Option<String>)>,
}

impl ChannelValue for Snapshot {}

impl Snapshot {
    /// The keys as a listing returns them.
    #[must_use]
    pub fn listed(&self) -> Vec<ListedKey> {
        self.keys
            .iter()
            .map(|(name, metadata)| ListedKey {
                name: name.clone(),
                metadata: metadata.clone(),
            })
            .collect()
    }
}

/// What an isolate knows of its location's channel for one site.
#[derive(Debug, Clone, Default)]
pub(super) struct LocalState {
    /// The directory as last read (with this isolate's own renewal folded in).
    pub(super) dir: Directory,
    /// When the directory was last read.
    pub(super) dir_read_ms: Option<u64>,
    /// When a read of the directory last found it (not a miss): a KV write, which rewrites
    /// the directory, is made only right after one, or it would put back a copy missing
    /// the entries added since.
    pub(super) dir_found_ms: Option<u64>,
    /// The earliest change to the location not yet in KV (own or a peer's).
    pub(super) kv_pending: Option<u64>,
    /// The latest such change: what is left pending once KV has the earlier ones.
    pub(super) kv_latest: Option<u64>,
    /// When this isolate last wrote the site's record to KV.
    pub(super) kv_flushed_ms: Option<u64>,
    /// Until when that record's lease runs.
    pub(super) kv_lease_until_ms: u64,
    /// When the newest listing this isolate applied was made (its own, or a snapshot's).
    pub(super) listed_ms: Option<u64>,
}

impl LocalState {
    /// Notes a change that KV has not seen.
    pub(super) fn changed(&mut self, at: u64) {
        self.kv_pending = Some(self.kv_pending.map_or(at, |p| p.min(at)));
        self.kv_latest = Some(self.kv_latest.map_or(at, |p| p.max(at)));
    }

    /// When the location's record was last written to KV, by this isolate or, as the
    /// directory says, another.
    pub(super) fn kv_written_ms(&self) -> Option<u64> {
        self.kv_flushed_ms.max(self.dir.kv_ms)
    }

    /// KV got the location's record at `at` (from the directory): the changes seen up to
    /// then are in it. (The later ones are known only as the latest of them, a little late.)
    pub(super) fn written_at(&mut self, at: u64) {
        if self.kv_pending.is_some_and(|p| p <= at) {
            self.kv_pending = self.kv_latest.filter(|l| *l > at);
            if self.kv_pending.is_none() {
                self.kv_latest = None;
            }
        }
    }
}

impl SiteState {
    /// Whether `own` publishes its location to KV: the directory, as last read, names it.
    /// An isolate that has not read it yet does not: its view may be empty, and its summary
    /// would replace the location's (a first request that is a leave refreshes nothing).
    pub(super) fn is_publisher(&self, own: &str) -> bool {
        self.local.dir_read_ms.is_some() && self.local.dir.publisher.as_deref() == Some(own)
    }

    /// How this location looks from KV's side, with the channel: as one isolate would
    /// (other locations active, or no one), whatever the peers in the channel.
    pub(super) fn kv_mode(&self, now: u64) -> Mode {
        if self.remote.other_active_until > now {
            Mode::Remote
        } else {
            Mode::Solo
        }
    }

    /// When the publisher's record must be written to KV: changes at the pace other
    /// locations need ([`SiteState::kv_delay`]), or the renewal of the location's lease.
    pub(super) fn kv_due(&self, cfg: &EngineConfig, now: u64) -> Option<u64> {
        let l = &self.local;
        let changes = l.kv_pending.map(|p| p + self.kv_delay(cfg, now));
        // The location's lease in KV, whoever wrote it last (a publisher that took the role
        // over renews what its predecessor wrote).
        let lease_until = l.kv_written_ms().map(|w| {
            let theirs = w + cfg.lease_ms;
            l.kv_flushed_ms
                .map_or(theirs, |_| theirs.min(l.kv_lease_until_ms))
        });
        let renew = lease_until
            .filter(|_| self.has_content())
            .map(|until| until.saturating_sub(cfg.lease_ms / 3));
        let due = changes.into_iter().chain(renew).min()?;
        Some(
            l.kv_flushed_ms
                .map_or(due, |f| due.max(f + cfg.flush_min_ms)),
        )
    }

    /// Whether `own`, as its location's publisher, has its KV write due at `now`.
    pub(super) fn publisher_write_due(&self, own: &str, cfg: &EngineConfig, now: u64) -> bool {
        self.is_publisher(own) && self.kv_due(cfg, now).is_some_and(|d| now >= d)
    }

    /// When another isolate than the publisher writes the location's record to KV, and
    /// takes the role over: once a change it saw has waited [`TAKEOVER_MS`] past its due
    /// time. Never before this isolate has read the directory (its view may be empty).
    pub(super) fn takeover_due(&self, cfg: &EngineConfig, now: u64) -> Option<u64> {
        self.local.dir_read_ms?;
        Some(self.local.kv_pending? + self.kv_delay(cfg, now) + TAKEOVER_MS)
    }

    /// How long a change of the location waits for KV: the join delay for the location's
    /// first write, then the remote delay while other locations are active, else the solo
    /// delay.
    fn kv_delay(&self, cfg: &EngineConfig, now: u64) -> u64 {
        if self.local.kv_written_ms().is_none() {
            cfg.join_delay_ms
        } else if self.remote.other_active_until > now {
            cfg.remote_delay_ms
        } else {
            cfg.solo_delay_ms
        }
    }
}

impl Presence {
    /// Whether this isolate exchanges records with its location through the channel.
    #[must_use]
    pub fn local(&self) -> bool {
        self.local
    }

    /// Switches the channel on (the driver found that it works) or off. Switching forces a
    /// listing, so the view is rebuilt from the new source.
    pub fn set_local(&mut self, on: bool) {
        if self.local == on {
            return;
        }
        self.local = on;
        for s in self.sites.values_mut() {
            s.remote.fetched_ms = None;
            s.local = LocalState::default();
            s.pend(Urgency::Now, 0);
        }
    }

    /// Whether this isolate, with the channel on, has yet to read `site`'s directory: its
    /// peers do not know of it until it has (they poll the isolates the directory names).
    #[must_use]
    pub fn unlisted_locally(&self, site: &str) -> bool {
        self.local
            && self
                .sites
                .get(site)
                .is_none_or(|s| s.local.dir_read_ms.is_none())
    }

    /// The channel key of `site`'s directory at this isolate's location.
    #[must_use]
    pub fn directory_key(&self, site: &str) -> String {
        Key::Directory {
            site,
            location: self.location.as_deref(),
        }
        .to_string()
    }

    /// The channel key of the publisher's [`Snapshot`] of `site` at this location.
    #[must_use]
    pub fn snapshot_key(&self, site: &str) -> String {
        Key::Snapshot {
            site,
            location: self.location.as_deref(),
        }
        .to_string()
    }

    /// Whether this isolate publishes `site` to KV (always, without the channel).
    #[must_use]
    pub fn is_publisher(&self, site: &str) -> bool {
        !self.local
            || self
                .sites
                .get(site)
                .is_some_and(|s| s.is_publisher(&self.own_key(site)))
    }

    /// Whether a record listed at `key` is read from the channel (a peer of this location
    /// in its directory, while the channel is on) rather than from KV. A record of this
    /// location that the directory does not name — written by an isolate that ran without
    /// the channel (an older version during a deploy, a restart whose channel was lost) —
    /// is read from KV as without the channel: a record the channel does not know still
    /// counts.
    #[must_use]
    pub fn reads_locally(&self, site: &str, key: &str) -> bool {
        self.local
            && self.same_location(key)
            && self
                .sites
                .get(site)
                .is_some_and(|s| s.local.dir.entries.contains_key(key))
    }

    /// Applies the directory read from the channel (`None`: absent or evicted, read as the
    /// directory last read). Returns the directory
    /// to write back when this isolate's entry is missing or due for renewal (with stale
    /// entries dropped), else `None`.
    pub fn apply_directory(
        &mut self,
        now: u64,
        site: &str,
        dir: Option<Directory>,
    ) -> Option<Directory> {
        let own = self.own_key(site);
        let keep = self.config.peer_active_ms();
        let s = self.site(site);
        // A miss is "not known", not "empty": start from the directory last read, so that
        // an evicted entry does not erase the location's isolates or its publisher.
        if dir.is_some() {
            s.local.dir_found_ms = Some(now);
        }
        let mut dir = dir.unwrap_or_else(|| s.local.dir.clone());
        s.local.dir_read_ms = Some(now);
        // Never older than what this isolate knows (a rewrite from an older read).
        dir.kv_ms = dir.kv_ms.max(s.local.kv_written_ms());
        if let Some(at) = dir.kv_ms {
            s.local.written_at(at);
        }
        let renewed = dir.entries.get(&own).copied();
        let holder_fresh = dir
            .publisher
            .as_ref()
            .and_then(|p| dir.entries.get(p))
            .is_some_and(|at| *at + DIR_STALE_MS > now);
        let claim = !holder_fresh;
        let write = claim || renewed.is_none_or(|at| at + DIR_RENEW_MS <= now);
        if write {
            dir.entries.retain(|_, at| *at + keep > now);
            dir.entries.insert(own.clone(), now);
            if claim {
                dir.publisher = Some(own);
            }
        }
        s.local.dir = dir.clone();
        write.then_some(dir)
    }

    /// Whether a [`Snapshot`] still stands for a listing: its lister has not yet missed its
    /// next listing by a remote delay.
    #[must_use]
    pub fn snapshot_fresh(&self, now: u64, snapshot: &Snapshot) -> bool {
        now < snapshot.next_ms + self.config.remote_delay_ms
    }

    /// Whether `snapshot` holds a listing newer than any this isolate applied for `site`
    /// (and still stands): peers apply each listing as it appears in the channel, so their
    /// view of other locations is as fresh as the location's newest listing.
    #[must_use]
    pub fn snapshot_newer(&self, now: u64, site: &str, snapshot: &Snapshot) -> bool {
        let applied = self.sites.get(site).and_then(|s| s.local.listed_ms);
        applied.is_none_or(|a| snapshot.listed_ms > a) && self.snapshot_fresh(now, snapshot)
    }

    /// Whether the location's lister is late: no snapshot, or one whose next listing is
    /// [`TAKEOVER_MS`] overdue. A peer whose listing is due then lists KV itself (and
    /// shares it), as it would take over an overdue write.
    #[must_use]
    pub fn snapshot_overdue(&self, now: u64, snapshot: Option<&Snapshot>) -> bool {
        snapshot.is_none_or(|s| now >= s.next_ms + TAKEOVER_MS)
    }

    /// Notes the listing just applied for `site` as made at `listed_ms`.
    pub fn listing_applied(&mut self, site: &str, listed_ms: u64) {
        let l = &mut self.site(site).local;
        l.listed_ms = Some(l.listed_ms.map_or(listed_ms, |a| a.max(listed_ms)));
    }

    /// The [`Snapshot`] of the listing just applied ([`Presence::apply_remote`]) with the
    /// other locations' keys in `listed`, and how long the channel keeps it, in seconds.
    #[must_use]
    pub fn snapshot(&self, site: &str, listed: &[ListedKey]) -> (Snapshot, u64) {
        let s = self.sites.get(site);
        let listed_ms = s.and_then(|s| s.remote.fetched_ms).unwrap_or(0);
        let every = s.map_or(self.config.remote_delay_ms, |s| {
            s.list_every(&self.config, s.kv_mode(listed_ms))
        });
        let snapshot = Snapshot {
            next_ms: listed_ms + every,
            listed_ms,
            keys: listed
                .iter()
                .filter(|k| !self.reads_locally(site, &k.name))
                .map(|k| (k.name.clone(), k.metadata.clone()))
                .collect(),
        };
        let ttl_s = ((every + self.config.remote_delay_ms) / 1000).max(MIN_TTL_S);
        (snapshot, ttl_s)
    }

    /// The record keys of this location's other isolates in the last directory read (those
    /// renewed within [`EngineConfig::peer_active_ms`]: their records may still vouch).
    #[must_use]
    pub fn directory_peers(&self, now: u64, site: &str) -> Vec<String> {
        let own = self.own_key(site);
        let keep = self.config.peer_active_ms();
        self.sites.get(site).map_or_else(Vec::new, |s| {
            s.local
                .dir
                .renewed_within(now, keep)
                .filter(|k| **k != *own)
                .map(str::to_owned)
                .collect()
        })
    }
}
