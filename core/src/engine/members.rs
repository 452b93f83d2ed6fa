//! Members: who is online, and their last-seen values (written by one isolate per
//! location).

use super::*;

/// A verified member identity (from a member token).
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct Member {
    /// The stable member id (the token's `sub`).
    pub id: String,
    /// The display name (the token's `name`).
    pub name: String,
}

/// A member online now, as `GET /v1/online` lists them.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct OnlineMember {
    /// The member id.
    pub id: String,
    /// The display name.
    pub name: String,
    /// The page of the member's most recently seen tab.
    pub page: String,
    /// When the member's earliest live tab joined, in Unix ms.
    pub since: u64,
}

/// A member seen online at the location: its newest heartbeat and its tabs.
#[derive(Debug, Clone)]
pub(super) struct MemberSeen {
    pub(super) member: Member,
    pub(super) last_ms: u64,
    pub(super) tabs: Vec<String>,
}

impl Presence {
    /// Asks for member lists of `site` (`GET /v1/online`, last-seen): for the next minute,
    /// refreshes also fetch other locations' records, whose summaries carry no names.
    pub fn want_members(&mut self, now: u64, site: &str) {
        let window = self.config.window_ms;
        let r = &mut self.site(site).remote;
        if r.members_until <= now {
            r.members_fetched_ms = None;
        }
        r.members_until = now + window;
    }

    /// The members online on `site` at `now`, by id: this location exactly, other
    /// locations from their records once [`Presence::want_members`] had them fetched.
    pub fn online_members(&mut self, now: u64, site: &str) -> Vec<OnlineMember> {
        let tabs = self.member_view(now, site);
        let mut by_id: BTreeMap<String, (OnlineMember, u64)> = BTreeMap::new();
        for t in tabs {
            let Some(m) = &t.member else { continue };
            let e = by_id.entry(m.id.clone()).or_insert_with(|| {
                (
                    OnlineMember {
                        id: m.id.clone(),
                        name: m.name.clone(),
                        page: t.page.clone(),
                        since: t.first_ms,
                    },
                    t.last_ms,
                )
            });
            e.0.since = e.0.since.min(t.first_ms);
            if t.last_ms > e.1 {
                e.0.page.clone_from(&t.page);
                e.0.name.clone_from(&m.name);
                e.1 = t.last_ms;
            }
        }
        by_id.into_values().map(|(m, _)| m).collect()
    }

    /// When `member` was last seen by a live tab on `site`, if online now.
    pub fn member_last_seen(&mut self, now: u64, site: &str, member: &str) -> Option<u64> {
        self.member_view(now, site)
            .iter()
            .filter(|t| t.member.as_ref().is_some_and(|m| m.id == member))
            .map(|t| t.last_ms)
            .max()
    }

    /// The location's live tabs plus the member tabs of other locations' fetched records.
    pub(super) fn member_view(&mut self, now: u64, site: &str) -> Vec<TabRecord> {
        let mut tabs = self.local_view(now, site);
        let window = self.config.window_ms;
        let my_loc = self.location.clone();
        let s = self.site(site);
        let mut sources: Vec<(&[TabRecord], &[Tombstone])> = Vec::new();
        let mut owned: Vec<Vec<TabRecord>> = Vec::new();
        for (k, (_, rec)) in &s.remote.records {
            if key_location(k) == my_loc.as_deref() {
                continue;
            }
            let rec = &rec.record;
            owned.push(
                rec.tabs
                    .iter()
                    .filter(|t| t.member.is_some())
                    .filter(|t| liveness::entry_live(t, rec.lease_until_ms, window, now))
                    .cloned()
                    .collect(),
            );
        }
        let gone: Vec<&[Tombstone]> = s
            .remote
            .records
            .iter()
            .filter(|(k, _)| key_location(k) != my_loc.as_deref())
            .map(|(_, (_, r))| r.record.gone.as_slice())
            .collect();
        for (tabs_of, g) in owned.iter().zip(gone) {
            sources.push((tabs_of.as_slice(), g));
        }
        tabs.extend(merge(&sources));
        tabs
    }
}

/// The members who went offline at the location since the last write, with when they were
/// last seen (their last heartbeat, or their leave). One isolate per location writes these
/// values — the one with the lowest id among the active ones (`designated`) — so that a
/// member's key is never written by two isolates at once; the others only keep track.
pub(super) fn members_gone(
    s: &mut SiteState,
    now: u64,
    cfg: &EngineConfig,
    designated: bool,
) -> Vec<(Member, u64)> {
    let mut live: BTreeMap<String, MemberSeen> = BTreeMap::new();
    for t in live_location_tabs(s, now, cfg) {
        let Some(m) = &t.member else {
            continue;
        };
        if m.id.len() > MAX_MEMBER_ID_BYTES {
            continue;
        }
        let e = live.entry(m.id.clone()).or_insert_with(|| MemberSeen {
            member: m.clone(),
            last_ms: 0,
            tabs: Vec::new(),
        });
        e.last_ms = e.last_ms.max(t.last_ms);
        e.tabs.push(tab_key(&t.visitor, &t.tab));
    }
    let before = std::mem::replace(&mut s.members_live, live);
    if !designated {
        return Vec::new();
    }
    let mut out = Vec::new();
    for (id, seen) in before {
        if s.members_live.contains_key(&id) {
            continue;
        }
        let left = seen
            .tabs
            .iter()
            .filter_map(|k| s.gone.get(k).map(|g| g.at_ms).max(s.remote.view(k).tomb))
            .max()
            .unwrap_or(0);
        out.push((seen.member, seen.last_ms.max(left)));
    }
    out
}
