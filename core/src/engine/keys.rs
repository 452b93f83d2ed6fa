//! The KV key scheme: one type that formats and parses every key the engine writes.

/// KV's largest key, in bytes.
pub const MAX_KEY_BYTES: usize = 512;

/// Isolate ids are cut to this many bytes in keys.
pub const MAX_ISOLATE_BYTES: usize = 128;

/// Location names are cut to this many bytes in keys.
pub const MAX_LOCATION_BYTES: usize = 32;

/// The tag that starts every record key.
const RECORD_TAG: &str = "r:";
/// The tag that starts every last-seen key.
const LAST_SEEN_TAG: &str = "m:";
/// The tag that starts a location's directory in the per-location channel.
const DIRECTORY_TAG: &str = "d:";
/// The tag that starts a location's snapshot in the per-location channel.
const SNAPSHOT_TAG: &str = "s:";

/// A key the engine writes: the one place that formats (`Display`) and parses
/// ([`Key::parse`]) them. No key is written by two isolates: a record key names its
/// isolate, and a member's last-seen key is written by one isolate per location.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Key<'a> {
    /// An isolate's record for a site: `r:{site}:{location}/{isolate}`, or
    /// `r:{site}:{isolate}` when it does not know its location. The location comes first
    /// so that a listing of [`record_prefix`] groups isolates by location.
    Record {
        /// The site (validated: no `:`).
        site: &'a str,
        /// The writer's location (cut by [`key_part`]: no `/`), if known.
        location: Option<&'a str>,
        /// The writer (cut by [`key_part`]).
        isolate: &'a str,
    },
    /// A member's last-seen value: `m:{site}:{member}`.
    LastSeen {
        /// The site.
        site: &'a str,
        /// The member id (at most [`crate::token::MAX_MEMBER_ID_BYTES`]).
        member: &'a str,
    },
    /// A location's directory in the per-location channel (never in KV):
    /// `d:{site}:{location}` ([`super::local::Directory`]).
    Directory {
        /// The site.
        site: &'a str,
        /// The location, if known.
        location: Option<&'a str>,
    },
    /// The publisher's listing of other locations, in the per-location channel (never in
    /// KV): `s:{site}:{location}` ([`super::local::Snapshot`]).
    Snapshot {
        /// The site.
        site: &'a str,
        /// The location, if known.
        location: Option<&'a str>,
    },
}

impl<'a> Key<'a> {
    /// Reads a key [`Key`]'s `Display` wrote; `None` for anything else.
    #[must_use]
    pub fn parse(key: &'a str) -> Option<Self> {
        if let Some(rest) = key.strip_prefix(RECORD_TAG) {
            let (site, rest) = rest.split_once(':')?;
            let (location, isolate) = match rest.split_once('/') {
                Some((loc, iso)) => (Some(loc), iso),
                None => (None, rest),
            };
            return Some(Key::Record {
                site,
                location,
                isolate,
            });
        }
        for (tag, directory) in [(DIRECTORY_TAG, true), (SNAPSHOT_TAG, false)] {
            if let Some(rest) = key.strip_prefix(tag) {
                let (site, loc) = rest.split_once(':')?;
                let location = (!loc.is_empty()).then_some(loc);
                return Some(if directory {
                    Key::Directory { site, location }
                } else {
                    Key::Snapshot { site, location }
                });
            }
        }
        let (site, member) = key.strip_prefix(LAST_SEEN_TAG)?.split_once(':')?;
        Some(Key::LastSeen { site, member })
    }

    /// The site the key belongs to.
    #[must_use]
    pub fn site(&self) -> &'a str {
        match self {
            Key::Record { site, .. }
            | Key::LastSeen { site, .. }
            | Key::Directory { site, .. }
            | Key::Snapshot { site, .. } => site,
        }
    }
}

impl core::fmt::Display for Key<'_> {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            Key::Record {
                site,
                location: Some(loc),
                isolate,
            } => write!(f, "{RECORD_TAG}{site}:{loc}/{isolate}"),
            Key::Record {
                site,
                location: None,
                isolate,
            } => write!(f, "{RECORD_TAG}{site}:{isolate}"),
            Key::LastSeen { site, member } => write!(f, "{LAST_SEEN_TAG}{site}:{member}"),
            Key::Directory { site, location } => {
                write!(f, "{DIRECTORY_TAG}{site}:{}", location.unwrap_or(""))
            }
            Key::Snapshot { site, location } => {
                write!(f, "{SNAPSHOT_TAG}{site}:{}", location.unwrap_or(""))
            }
        }
    }
}

/// The key prefix of a site's isolate records (what a refresh lists).
#[must_use]
pub fn record_prefix(site: &str) -> String {
    format!("{RECORD_TAG}{site}:")
}

/// The key of a member's last-seen value.
#[must_use]
pub fn last_seen_key(site: &str, member: &str) -> String {
    Key::LastSeen { site, member }.to_string()
}

/// The location a record key names, if any (`None` also for keys that are no record's).
pub(super) fn key_location(key: &str) -> Option<&str> {
    match Key::parse(key)? {
        Key::Record { location, .. } => location,
        Key::LastSeen { .. } | Key::Directory { .. } | Key::Snapshot { .. } => None,
    }
}

/// The key of a tab inside a site's state: a visitor's tab.
pub(super) fn tab_key(visitor: &str, tab: &str) -> String {
    format!("{visitor}/{tab}")
}

/// The visitor and tab a [`tab_key`] joins (a tab id holds no `/`: `protocol::parse_beat`).
pub(super) fn split_tab_key(key: &str) -> (&str, &str) {
    key.rsplit_once('/').unwrap_or((key, ""))
}

/// Writes [`tab_key`] into `buf`, reused so that a loop over many tabs allocates once.
pub(super) fn tab_key_into<'a>(buf: &'a mut String, visitor: &str, tab: &str) -> &'a str {
    buf.clear();
    buf.push_str(visitor);
    buf.push('/');
    buf.push_str(tab);
    buf
}

/// Cuts `s` to at most `max` bytes of `[A-Za-z0-9_.-]` (others become `_`).
pub(super) fn key_part(s: &str, max: usize) -> String {
    s.chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.') {
                c
            } else {
                '_'
            }
        })
        .take(max)
        .collect()
}
