//! Counting: the live tabs of this location plus the latest summary of every other.

use super::*;

impl Presence {
    /// The live tabs of this isolate's location at `now`: its own and those the other
    /// isolates of the location vouch for, latest heartbeat per tab, tombstones applied.
    pub(super) fn local_view(&mut self, now: u64, site: &str) -> Vec<TabRecord> {
        let cfg = self.config.clone();
        let s = self.site(site);
        s.sweep(now, &cfg);
        live_location_tabs(s, now, &cfg)
            .into_iter()
            .cloned()
            .collect()
    }

    /// The count for `site` (and `page`, if given) at `now`: this location exactly, other
    /// locations from their latest summaries.
    pub fn count(&mut self, now: u64, site: &str, page: Option<&str>) -> Count {
        let (mut count, pages) = self.count_all_pages(now, site);
        count.page = page.map(|p| pages.get(p).copied().unwrap_or(0));
        count
    }

    /// The count for `site` without a page, and people per page for every page known (this
    /// location's pages exactly, other locations' as far as their summaries list them).
    pub fn count_all_pages(&mut self, now: u64, site: &str) -> (Count, HashMap<String, u64>) {
        let (count, pages, _) = self.count_all_pages_until(now, site);
        (count, pages)
    }

    /// [`Presence::count_all_pages`], and until when (Unix ms) that count stays right while
    /// [`Presence::version`] does not move: the first time-out of a counted tab or end of a
    /// summary's lease (`now` itself when other isolates of this location are read, whose
    /// entries end with their records' leases).
    pub fn count_all_pages_until(
        &mut self,
        now: u64,
        site: &str,
    ) -> (Count, HashMap<String, u64>, u64) {
        let cfg = self.config.clone();
        let s = self.site(site);
        s.sweep(now, &cfg);
        let tabs = live_location_tabs(s, now, &cfg);
        let mut until = if s.remote.same.is_empty() {
            tabs.iter()
                .map(|t| liveness::live_until(t.last_ms, cfg.window_ms))
                .min()
                .unwrap_or(u64::MAX)
        } else {
            now
        };
        for (_, sum) in s.remote.summaries.values() {
            if sum.lease_until_ms > now {
                until = until.min(sum.lease_until_ms);
            }
        }
        let mut count = aggregate_refs(&tabs, None, cfg.window_ms / 1000, now, usize::MAX);
        let mut pages: HashMap<String, u64> =
            count.pages.drain(..).map(|p| (p.page, p.online)).collect();
        for sum in latest_summaries(s, now) {
            count.online += sum.online;
            count.tabs += sum.tabs;
            count.members += sum.members;
            count.idle += sum.idle;
            for (p, c) in &sum.pages {
                *pages.entry(p.clone()).or_default() += c;
            }
        }
        count.members = count.members.min(count.online);
        count.guests = count.online - count.members;
        count.idle = count.idle.min(count.online);
        count.tabs = count.tabs.max(count.online);
        count.pages = top_pages(pages.clone());
        (count, pages, until)
    }

    /// A number that changes whenever `site`'s count could (see [`Presence::count`]);
    /// time alone (tabs timing out) does not change it.
    #[must_use]
    pub fn version(&self, site: &str) -> u64 {
        self.sites.get(site).map_or(0, |s| s.version)
    }
}

/// The live tabs of the location: own memory and the view, best entry per tab.
pub(super) fn live_location_tabs<'a>(
    s: &'a SiteState,
    now: u64,
    cfg: &EngineConfig,
) -> Vec<&'a TabRecord> {
    let window = cfg.window_ms;
    let peers: usize = s.remote.same.iter().map(|(r, _)| r.record.tabs.len()).sum();
    let mut out: Vec<&TabRecord> = Vec::with_capacity(s.tabs.len() + peers);
    for (key, h) in &s.tabs {
        let v = s.remote.view(key);
        if v.best.is_some_and(|(b, _)| wins_over(b, &h.rec)) {
            continue; // the view's entry is newer; taken below
        }
        let tomb = s.gone.get(key).map(|g| g.at_ms).max(v.tomb);
        if liveness::is_live(h.rec.last_ms, window, now) && !liveness::removed(tomb, h.rec.last_ms)
        {
            out.push(&h.rec);
        }
    }
    let mut buf = String::new();
    for (r, _) in &s.remote.same {
        for t in &r.record.tabs {
            let key = tab_key_into(&mut buf, &t.visitor, &t.tab);
            let v = s.remote.view_of(&t.visitor, &t.tab, key);
            // Counted once: from the record holding the winning entry.
            if !v.best.is_some_and(|(b, _)| std::ptr::eq(b, t)) {
                continue;
            }
            let Some(t) = v.live(now, window) else {
                continue;
            };
            if s.tabs.get(key).is_some_and(|h| !wins_over(t, &h.rec)) {
                continue;
            }
            if liveness::removed(s.gone.get(key).map(|g| g.at_ms), t.last_ms) {
                continue;
            }
            out.push(t);
        }
    }
    out
}

/// The location summary: the counts of the live view and its busiest pages.
pub(super) fn summarize(
    s: &SiteState,
    now: u64,
    cfg: &EngineConfig,
    location: Option<String>,
    lease_until: u64,
) -> Summary {
    let tabs = live_location_tabs(s, now, cfg);
    let count = aggregate_refs(&tabs, None, cfg.window_ms / 1000, now, usize::MAX);
    Summary {
        written_ms: now,
        lease_until_ms: lease_until,
        location,
        online: count.online,
        tabs: count.tabs,
        members: count.members,
        idle: count.idle,
        pages: count
            .pages
            .into_iter()
            .map(|p| (p.page, p.online))
            .collect(),
    }
}

pub(super) fn top_pages(pages: HashMap<String, u64>) -> Vec<PageCount> {
    let mut top: Vec<PageCount> = pages
        .into_iter()
        .map(|(page, online)| PageCount { page, online })
        .collect();
    top.sort_by(|a, b| b.online.cmp(&a.online).then_with(|| a.page.cmp(&b.page)));
    top.truncate(TOP_PAGES);
    top
}

pub(super) fn aggregate_refs(
    tabs: &[&TabRecord],
    page: Option<&str>,
    window_s: u64,
    as_of: u64,
    top: usize,
) -> Count {
    struct V {
        member: bool,
        active: bool,
    }
    let mut visitors: HashMap<&str, V> = HashMap::with_capacity(tabs.len());
    let mut seen: HashSet<(&str, &str)> = HashSet::with_capacity(tabs.len());
    let mut pages: HashMap<&str, u64> = HashMap::new();
    for t in tabs {
        let v = visitors.entry(t.visitor.as_str()).or_insert(V {
            member: false,
            active: false,
        });
        v.member |= t.member.is_some();
        v.active |= t.state == TabState::Active;
        if seen.insert((t.page.as_str(), t.visitor.as_str())) {
            *pages.entry(t.page.as_str()).or_default() += 1;
        }
    }
    let members = visitors.values().filter(|v| v.member).count() as u64;
    let online = visitors.len() as u64;
    let mut all: Vec<PageCount> = pages
        .iter()
        .map(|(p, n)| PageCount {
            page: (*p).to_owned(),
            online: *n,
        })
        .collect();
    all.sort_by(|a, b| b.online.cmp(&a.online).then_with(|| a.page.cmp(&b.page)));
    all.truncate(top);
    Count {
        online,
        tabs: tabs.len() as u64,
        members,
        guests: online - members,
        idle: visitors.values().filter(|v| !v.active).count() as u64,
        page: page.map(|p| pages.get(p).copied().unwrap_or(0)),
        pages: all,
        window_s,
        as_of,
    }
}
