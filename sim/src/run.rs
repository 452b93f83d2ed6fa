//! The event loop: workload, ground truth, the three designs, and the measurements.

use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap};
use std::time::Duration;

use cpu_time::ThreadTime;

use fastrand::Rng;

use std::cell::{Cell, RefCell};

use super::channel::ChannelModel;
use super::kv::{At, KvModel, NaiveKv, Ops, lag};
use super::report::{
    CACHE_REFRESH_MS, DIAG_ROWS, DesignReport, Diagnostics, ORACLES, Report, Stat,
};
use super::scenario::{Channel, Routing, Scenario};
use super::truth::{CAUSES, Instant, TabTruth, Truth};
use herenow_core::engine::{Member, Presence};
use herenow_core::protocol::{Beat, TabState};
use herenow_core::service::{FlushTimer, Service};
use herenow_core::store::block_on_ready;

const SITE: &str = "demo";
/// Leave probes: every 100 ms for 3 s, then every second up to this long.
const PROBE_HORIZON_MS: u64 = 130_000;
/// At most this many other visitors' pages watch one sampled change.
const WATCHERS_PER_CHANGE: usize = 20;
/// A change still not shown on a watching page at the end of the run counts (as its age)
/// once it is older than the heartbeat plus this; younger ones are dropped as unfinished.
const WATCH_OPEN_SLACK_MS: u64 = 5_000;

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Ev {
    Measure,
    Initial(u32),
    Arrive,
    Beat(u32, u32),
    Hide(u32, u32),
    Show(u32, u32),
    Navigate(u32),
    OpenExtra(u32),
    Switch(u32),
    End(u32),
    NewPage(u32),
    Flush(u16, u16, u32, FlushTimer),
    Evict(u16, u16),
    Sample,
    Probe(u32, u32),
    TruthCheck(u32),
}

/// How a visitor starts: visible (every arrival), or away (visitors present at the start).
#[derive(Debug, Clone, Copy)]
enum Start {
    Visible,
    /// Hidden: with its idle beacon sent at arrival (else long expired), back at `show_at`.
    Away {
        beacon: bool,
        show_at: u64,
    },
}

#[derive(Debug)]
struct Visitor {
    id: String,
    loc: u16,
    member: Option<Member>,
    /// Open tabs; `focus` is one of them.
    tabs: Vec<u32>,
    /// Every tab it ever had (for the truth).
    all_tabs: Vec<u32>,
    focus: u32,
    away: bool,
    ended: bool,
    epoch: u32,
}

#[derive(Debug)]
struct Tab {
    visitor: u32,
    id: String,
    page: String,
    open: bool,
    started: bool,
    visible: bool,
    epoch: u32,
    last_ms: u64,
    left_ms: Option<u64>,
    /// Whether its last request was an idle beacon.
    idle: bool,
    /// Under sticky routing, the isolate slot its requests go to.
    slot: usize,
    /// The slot its previous request went to.
    last_slot: Option<usize>,
}

/// A sampled person-level change (a visitor going online or offline) that other visitors'
/// open pages at its location watch for.
#[derive(Debug)]
struct Change {
    visitor: u32,
    at: u64,
    /// Going online (an arrival's first heartbeat) rather than offline (its leave).
    arrive: bool,
}

#[derive(Debug)]
struct Iso {
    svc: Service,
    own_key: String,
    epoch: u32,
    /// Sampled leaves waiting for this isolate's next record write.
    awaiting: Vec<u32>,
}

#[derive(Debug)]
struct LeaveProbe {
    visitor: u32,
    tab: u32,
    loc: u16,
    at: u64,
    published: Option<u64>,
    remote: Option<u16>,
    own_last_counted: u64,
    own_streak: u32,
    own_done: bool,
    remote_done: bool,
}

struct Sim<'a> {
    sc: &'a Scenario,
    /// Draws what visitors do, and nothing else, so that every design and setting sees the
    /// same visitors (and the same truth) for a seed.
    rng: Rng,
    /// When the next visitor arrives, in fractional ms.
    next_arrival: f64,
    /// How each visitor present at the start starts.
    starts: Vec<Start>,
    /// Draws routing, evictions and which leaves to follow.
    io: Rng,
    /// Draws where counts are sampled (the same for every design and setting).
    sampler: Rng,
    /// Draws sticky routing: a tab's first isolate and its moves.
    route: Rng,
    /// Draws which changes are watched, and by which pages.
    watch_rng: Rng,
    seed: u64,
    heap: BinaryHeap<Reverse<(u64, u64, Ev)>>,
    seq: u64,
    visitors: Vec<Visitor>,
    tabs: Vec<Tab>,
    maybe_live: Vec<u32>,
    isos: Vec<Vec<Iso>>,
    loc_names: Vec<String>,
    kv: RefCell<KvModel>,
    /// The per-location channel (used with [`Channel::Cache`] only).
    channel: RefCell<ChannelModel>,
    naive: NaiveKv,
    naive_present: u64,
    measuring: bool,
    measure_start: u64,
    end_ms: u64,
    // Accounting (measurement window only).
    count_requests: u64,
    naive_list_ops: u64,
    naive_read_ops: u64,
    naive_b_list_ops: u64,
    visitor_ms: f64,
    truth_sum: f64,
    truth_n: u64,
    err_h: Vec<(f64, f64)>,
    err_n: Vec<(f64, f64)>,
    leaves: Vec<LeaveProbe>,
    leave_p: f64,
    own_h: Vec<f64>,
    else_h: Vec<f64>,
    else_n: Vec<f64>,
    lost_leaves: u64,
    ops_at_start: Ops,
    naive_at_start: Ops,
    evictions: u64,
    requests: u64,
    /// Exact people online per location over time.
    truth_hist: Truth,
    /// Per location, every record write of its isolates: (written, KV key id, order within
    /// the millisecond).
    summary_writes: Vec<Vec<(u64, u64, u64)>>,
    /// How often oracles write per location: at the write budget (a twentieth of the naive
    /// design's writes before measuring), and as often as the naive design.
    budget_period_ms: u64,
    naive_period_ms: u64,
    /// How often the oracle at herenow's own write budget writes per location: herenow's
    /// record writes before measuring (not its members' last-seen values), spread
    /// evenly, never more often than the 20× budget.
    own_period_ms: u64,
    /// When everyone present at the start had arrived, and the naive writes by then.
    naive_from: (u64, u64),
    /// herenow's record writes by then.
    herenow_from: u64,
    /// Per sample, the error components of `DIAG_ROWS` in people, and the truth.
    diag: Vec<([f64; DIAG_ROWS.len()], f64)>,
    truth_mismatches: u64,
    /// Requests clients made while measuring (heartbeats, idle beacons, leaves).
    client_requests: u64,
    /// Thread CPU time spent in the driver's calls for those requests and their flushes.
    cpu: Duration,
    /// Sticky moves (whole run), and slot changes between a tab's consecutive requests.
    routing_moves: u64,
    slot_changes: u64,
    /// Sampled changes; per watching tab, the changes it waits to show; the delays seen.
    changes: Vec<Change>,
    watching: HashMap<u32, Vec<u32>>,
    change_p: f64,
    others_h: Vec<f64>,
    others_dropped: u64,
}

impl Sim<'_> {
    fn at(&mut self, t: u64, ev: Ev) {
        self.seq += 1;
        self.heap.push(Reverse((t, self.seq, ev)));
    }

    fn exp(&mut self, mean: u64) -> u64 {
        exp(&mut self.rng, mean)
    }

    fn hb_delay(&mut self) -> u64 {
        let hb = self.sc.engine.heartbeat_ms as f64;
        (hb * (0.9 + 0.2 * self.rng.f64())) as u64
    }

    fn page(&mut self) -> String {
        let k = (self.rng.f64().powi(3) * f64::from(self.sc.workload.pages)) as u32;
        if k == 0 {
            "/".into()
        } else {
            format!("/p/{k}")
        }
    }

    fn new_id(&mut self) -> String {
        let mut b = [0u8; 16];
        for x in &mut b {
            *x = self.rng.u8(..);
        }
        herenow_core::protocol::visitor_id_from_random(b)
    }

    fn new_tab(&mut self, v: u32) -> u32 {
        let id = format!("t{}", self.tabs.len());
        let page = self.page();
        self.tabs.push(Tab {
            visitor: v,
            id,
            page,
            open: true,
            started: false,
            visible: false,
            epoch: 0,
            last_ms: 0,
            left_ms: None,
            idle: false,
            slot: self.route.usize(..self.sc.isolates_per_location),
            last_slot: None,
        });
        let t = (self.tabs.len() - 1) as u32;
        self.visitors[v as usize].all_tabs.push(t);
        t
    }

    // ---- requests, fed to all designs ----

    /// The isolate slot of `tab`'s location its request goes to now.
    fn route(&mut self, tab: u32) -> usize {
        let n = self.sc.isolates_per_location;
        let slot = match self.sc.routing {
            Routing::Random => self.io.usize(..n),
            Routing::Sticky => {
                let t = &self.tabs[tab as usize];
                let cur = t.slot;
                if n > 1 && t.last_slot.is_some() && self.route.f64() < self.sc.move_prob {
                    // A new connection: another isolate, uniformly.
                    let r = self.route.usize(..n - 1);
                    let to = if r >= cur { r + 1 } else { r };
                    self.routing_moves += 1;
                    self.tabs[tab as usize].slot = to;
                    to
                } else {
                    cur
                }
            }
        };
        let t = &mut self.tabs[tab as usize];
        if t.last_slot.is_some_and(|s| s != slot) {
            self.slot_changes += 1;
        }
        t.last_slot = Some(slot);
        slot
    }

    /// Starts the thread CPU clock while measuring.
    fn clock(&self) -> Option<ThreadTime> {
        self.measuring.then(ThreadTime::now)
    }

    /// The wire body a request from `tab` carries, and its visitor's location.
    fn wire_beat(&self, tab: u32, state: TabState) -> (Beat, u16) {
        let t = &self.tabs[tab as usize];
        let v = &self.visitors[t.visitor as usize];
        let beat = Beat {
            site: SITE.into(),
            visitor: v.id.clone(),
            tab: t.id.clone(),
            page: t.page.clone(),
            state,
            member_token: None,
        };
        (beat, v.loc)
    }

    fn beat(&mut self, now: u64, tab: u32, state: TabState) {
        let t = &mut self.tabs[tab as usize];
        t.started = true;
        t.last_ms = now;
        t.left_ms = None;
        t.idle = state == TabState::Idle;
        let vi = t.visitor as usize;
        self.truth_update(vi as u32, now);
        let (beat, loc) = self.wire_beat(tab, state);
        let member = self.visitors[vi].member.clone();
        // (a), (b): one key per visitor, written on every heartbeat.
        let meta_len = 40 + beat.page.len();
        self.naive.put(vi, now, loc, self.sc.max_lag_ms, meta_len);
        // (c): the isolate the request lands on.
        let slot = self.route(tab);
        self.requests += 1;
        let (l, store) = (loc as usize, self.store(loc as usize, slot, now, true));
        let t0 = self.clock();
        let _ = block_on_ready(self.isos[l][slot].svc.heartbeat(&store, now, &beat, member));
        let spent = t0.map(|t| t.elapsed());
        let (wrote, shared) = (store.wrote_own.get(), store.shared_own.get());
        if let Some(d) = spent {
            self.cpu += d;
        }
        if wrote || shared {
            self.wrote_own(l, slot, now, wrote);
        }
        if self.measuring {
            self.count_requests += 1;
            self.client_requests += 1;
            self.count_naive_request();
        }
        self.after_request(loc as usize, slot, now);
        if state == TabState::Active {
            self.shown_on(now, tab, l, slot);
        }
    }

    // ---- changes shown on other visitors' pages ----

    /// Whether isolate `slot` of `loc` counts visitor `v` (any of its tabs) at `now`.
    fn counts_visitor(&self, now: u64, loc: usize, slot: usize, v: u32) -> bool {
        let vis = &self.visitors[v as usize];
        self.isos[loc][slot].svc.with(|p| {
            vis.all_tabs.iter().any(|&t| {
                let tab = &self.tabs[t as usize];
                tab.started && p.tab_counted(now, SITE, &vis.id, &tab.id)
            })
        })
    }

    /// Whether visitor `v` is online in the truth at `now`.
    fn online(&self, now: u64, v: u32) -> bool {
        let window = self.sc.engine.window_ms;
        self.visitors[v as usize].all_tabs.iter().any(|&t| {
            let tab = &self.tabs[t as usize];
            tab.started && tab.left_ms.is_none() && tab.last_ms + window > now
        })
    }

    /// Samples a change of visitor `v` at `now` (with the chance that follows
    /// `leave_samples` changes over the measured time) and has up to
    /// [`WATCHERS_PER_CHANGE`] open, visible pages of other visitors at its location watch it.
    fn watch_change(&mut self, now: u64, v: u32, arrive: bool) {
        if !self.measuring || self.watch_rng.f64() >= self.change_p {
            return;
        }
        let loc = self.visitors[v as usize].loc;
        let mut pages: Vec<u32> = self
            .maybe_live
            .iter()
            .filter(|&&o| o != v)
            .map(|&o| &self.visitors[o as usize])
            .filter(|o| o.loc == loc && !o.ended && !o.away)
            .map(|o| o.focus)
            .filter(|&t| {
                let tab = &self.tabs[t as usize];
                tab.open && tab.visible && tab.started
            })
            .collect();
        self.watch_rng.shuffle(&mut pages);
        pages.truncate(WATCHERS_PER_CHANGE);
        let id = self.changes.len() as u32;
        self.changes.push(Change {
            visitor: v,
            at: now,
            arrive,
        });
        for t in pages {
            self.watching.entry(t).or_default().push(id);
        }
    }

    /// A response to `tab`'s open page came from isolate `slot` of `loc` at `now`: every
    /// change it watches that this isolate's count reflects is shown.
    fn shown_on(&mut self, now: u64, tab: u32, loc: usize, slot: usize) {
        let Some(mut ids) = self.watching.remove(&tab) else {
            return;
        };
        let mut waiting = Vec::new();
        for i in ids.drain(..) {
            let c = &self.changes[i as usize];
            let (v, at, arrive) = (c.visitor, c.at, c.arrive);
            if arrive && !self.online(now, v) {
                // Gone again before it showed: nothing left to show.
                self.others_dropped += 1;
            } else if self.counts_visitor(now, loc, slot, v) == arrive {
                self.others_h.push((now - at) as f64 / 1000.0);
            } else {
                waiting.push(i);
            }
        }
        let ids = waiting;
        if !ids.is_empty() {
            self.watching.insert(tab, ids);
        }
    }

    /// `tab`'s page is hidden or closed: what it watched is dropped unshown.
    fn stop_watching(&mut self, tab: u32) {
        if let Some(ids) = self.watching.remove(&tab) {
            self.others_dropped += ids.len() as u64;
        }
    }

    fn leave(&mut self, now: u64, tab: u32, sample: bool) {
        let t = &mut self.tabs[tab as usize];
        t.left_ms = Some(now);
        let visitor = t.visitor;
        let vi = visitor as usize;
        self.truth_update(visitor, now);
        let (beat, loc) = self.wire_beat(tab, TabState::Idle);
        self.naive.delete(vi, now, loc, self.sc.max_lag_ms);
        let slot = self.route(tab);
        self.requests += 1;
        if self.measuring {
            self.client_requests += 1;
        }
        self.stop_watching(tab);
        let sampled = sample && self.measuring && self.io.f64() < self.leave_p;
        if sampled {
            let remote = (self.sc.locations > 1).then(|| {
                let r = self.io.u16(..(self.sc.locations as u16 - 1));
                if r >= loc { r + 1 } else { r }
            });
            let i = self.leaves.len() as u32;
            let iso = &mut self.isos[loc as usize][slot];
            iso.awaiting.push(i);
            self.leaves.push(LeaveProbe {
                visitor,
                tab,
                loc,
                at: now,
                published: None,
                remote,
                own_last_counted: 0,
                own_streak: 0,
                own_done: false,
                remote_done: remote.is_none(),
            });
            if let Some(r) = remote {
                let l = NaiveKv::delete_lag(self.seed, self.sc.max_lag_ms, vi, now, loc, r);
                self.else_n.push(l as f64 / 1000.0);
            }
            self.at(now + 100, Ev::Probe(i, 0));
        }
        // The leave is recorded and published after the sampled probe waits for it.
        let store = self.store(loc as usize, slot, now, true);
        let t0 = self.clock();
        block_on_ready(self.isos[loc as usize][slot].svc.leave(&store, now, &beat));
        let spent = t0.map(|t| t.elapsed());
        let (wrote, shared) = (store.wrote_own.get(), store.shared_own.get());
        if let Some(d) = spent {
            self.cpu += d;
        }
        if wrote || shared {
            self.wrote_own(loc as usize, slot, now, wrote);
        }
        self.after_request(loc as usize, slot, now);
    }

    fn count_naive_request(&mut self) {
        let keys = self.naive_present;
        let pages = keys.div_ceil(1000).max(1);
        self.naive_list_ops += pages;
        self.naive_read_ops += keys;
        self.naive_b_list_ops += pages;
    }

    /// Tells the truth's history about visitor `v` at `now`.
    fn truth_update(&mut self, v: u32, now: u64) {
        let vis = &self.visitors[v as usize];
        let tabs = &self.tabs;
        let it = vis
            .all_tabs
            .iter()
            .map(|&t| &tabs[t as usize])
            .filter(|t| t.started)
            .map(|t| TabTruth {
                last_ms: t.last_ms,
                left_ms: t.left_ms,
                idle: t.idle,
            });
        if let Some(at) = self
            .truth_hist
            .update(v as usize, vis.loc as usize, vis.ended, it, now)
        {
            self.at(at, Ev::TruthCheck(v));
        }
    }

    // ---- the engine's I/O: through the shipped driver ----

    /// The simulated KV as isolate `slot` of `loc` sees it at `now`.
    fn store(&self, loc: usize, slot: usize, now: u64, account: bool) -> At<'_> {
        At {
            kv: &self.kv,
            channel: (self.sc.channel == Channel::Cache).then_some(&self.channel),
            loc: loc as u16,
            now,
            account: account && self.measuring,
            own_key: &self.isos[loc][slot].own_key,
            wrote_own: Cell::new(false),
            shared_own: Cell::new(false),
        }
    }

    /// What a request at isolate `slot` of `loc` would see at `now`: a copy of its engine,
    /// refreshed as that request would refresh it, with nothing counted. Measuring must not
    /// refresh the real isolate: its fresher view would spare the next real request its own,
    /// counted, refresh, and the bill would come out low.
    fn probe_view(&self, loc: usize, slot: usize, now: u64) -> Service {
        let copy = Service::new(self.isos[loc][slot].svc.with(|p| p.clone()));
        let store = self.store(loc, slot, now, false);
        // The simulated KV never fails.
        let _ = block_on_ready(copy.refresh(&store, now, SITE));
        copy
    }

    /// Bookkeeping after a write of isolate `slot`'s own record at `now`, to its peers (KV
    /// or the channel); `kv`: to KV, where other locations read its summary.
    fn wrote_own(&mut self, loc: usize, slot: usize, now: u64, kv: bool) {
        let iso = &mut self.isos[loc][slot];
        for i in iso.awaiting.drain(..) {
            self.leaves[i as usize].published = Some(now);
        }
        if !kv {
            return;
        }
        let id = self.kv.borrow().key_id(&iso.own_key).unwrap_or_default();
        let at = self.truth_hist.mark(now);
        self.summary_writes[loc].push((now, id, at.1));
    }

    fn after_request(&mut self, loc: usize, slot: usize, now: u64) {
        let iso = &self.isos[loc][slot];
        if let Some(t) = iso.svc.flush_timer(now) {
            let epoch = iso.epoch;
            self.at(t.at, Ev::Flush(loc as u16, slot as u16, epoch, t));
        }
    }

    fn new_isolate(&mut self, loc: usize, slot: usize, epoch: u32) -> Iso {
        let name = format!("i{loc}-{slot}-{epoch}");
        let p = Presence::new(name, self.sc.engine.clone()).with_location(&self.loc_names[loc]);
        Iso {
            own_key: p.own_key(SITE),
            svc: Service::new(p),
            epoch,
            awaiting: Vec::new(),
        }
    }

    // ---- visitors ----

    /// A visitor arrives; `initial` ones start in the steady state (possibly away).
    fn arrive(&mut self, now: u64, start: Start) {
        let w = self.sc.workload.clone();
        let vi = self.visitors.len() as u32;
        let id = self.new_id();
        let loc = self.rng.u16(..self.sc.locations as u16);
        let member = (self.rng.f64() < w.member_share).then(|| Member {
            id: format!("m{vi}"),
            name: format!("Member {vi}"),
        });
        self.visitors.push(Visitor {
            id,
            loc,
            member,
            tabs: Vec::new(),
            all_tabs: Vec::new(),
            focus: 0,
            away: false,
            ended: false,
            epoch: 0,
        });
        self.naive.ensure(vi as usize);
        self.maybe_live.push(vi);
        let t = self.new_tab(vi);
        self.visitors[vi as usize].tabs.push(t);
        self.visitors[vi as usize].focus = t;
        if let Start::Away { beacon, show_at } = start {
            // Away for a while already: hidden, its idle beacon sent now (it arrives as far
            // before the others as it has been away) or long expired.
            self.visitors[vi as usize].away = true;
            if beacon {
                self.tabs[t as usize].started = true;
                self.beat(now, t, TabState::Idle);
            }
            self.at(show_at, Ev::Show(vi, 0));
        } else {
            self.show_tab(now, t);
            self.watch_change(now, vi, true);
            let d = self.exp(w.mean_visible_ms);
            self.at(now + d, Ev::Hide(vi, 0));
        }
        let d = self.exp(w.mean_visit_ms);
        self.at(now + d, Ev::End(vi));
        let d = self.exp(w.mean_page_ms);
        self.at(now + d, Ev::Navigate(vi));
        if self.rng.f64() < w.extra_tab_share {
            let d = self.exp(w.mean_visit_ms / 2);
            self.at(now + d, Ev::OpenExtra(vi));
        }
    }

    fn show_tab(&mut self, now: u64, t: u32) {
        let tab = &mut self.tabs[t as usize];
        tab.visible = true;
        tab.epoch += 1;
        let epoch = tab.epoch;
        self.beat(now, t, TabState::Active);
        let d = self.hb_delay();
        self.at(now + d, Ev::Beat(t, epoch));
    }

    fn hide_tab(&mut self, now: u64, t: u32) {
        self.stop_watching(t);
        let tab = &mut self.tabs[t as usize];
        tab.visible = false;
        tab.epoch += 1;
        if tab.started && tab.open {
            self.beat(now, t, TabState::Idle);
        }
    }

    fn handle(&mut self, now: u64, ev: Ev) {
        let w = &self.sc.workload;
        let (mean_visible, mean_away, mean_page, mean_switch, mpa, vanish) = (
            w.mean_visible_ms,
            w.mean_away_ms,
            w.mean_page_ms,
            w.mean_switch_ms,
            w.mpa_share,
            w.vanish_share,
        );
        match ev {
            Ev::Measure => {
                self.measuring = true;
                self.measure_start = now;
                self.ops_at_start = self.kv.borrow().ops;
                self.naive_at_start = self.naive.ops;
                self.truth_hist.counting_from = now;
                // The write budget: a twentieth of the naive design's writes, spread evenly
                // over the locations.
                let (t0, w0) = self.naive_from;
                let per_s = (self.naive.ops.writes - w0) as f64
                    / ((now.saturating_sub(t0)) as f64 / 1000.0).max(1.0);
                let loc_per_s = per_s / self.sc.locations as f64;
                let period = |rate: f64| {
                    if rate > 0.0 {
                        ((1000.0 / rate) as u64).clamp(1, 600_000)
                    } else {
                        600_000
                    }
                };
                self.naive_period_ms = period(loc_per_s);
                self.budget_period_ms = period(loc_per_s / 20.0);
                // herenow's writes that carry counts: its members' last-seen values carry
                // none, so the oracle is not given them to count with.
                let own_per_s = (self.kv.borrow().ops.record_writes() - self.herenow_from) as f64
                    / ((now.saturating_sub(t0)) as f64 / 1000.0).max(1.0);
                self.own_period_ms =
                    period(own_per_s / self.sc.locations as f64).max(self.budget_period_ms);
            }
            Ev::Initial(i) => {
                let start = self.starts[i as usize];
                self.arrive(now, start);
            }
            Ev::Arrive => {
                if self.naive_from.0 == 0 {
                    // Everyone present: the naive design's write rate is measured from here.
                    self.naive_from = (now, self.naive.ops.writes);
                    self.herenow_from = self.kv.borrow().ops.record_writes();
                }
                self.arrive(now, Start::Visible);
                // Poisson arrivals at exactly visitors / mean visit: the next arrival is
                // kept in fractions of a millisecond (whole-millisecond gaps of a few ms
                // would run the rate several percent slow at large scale).
                let mean = self.sc.workload.mean_visit_ms as f64 / self.sc.visitors.max(1) as f64;
                self.next_arrival += -(1.0 - self.rng.f64()).ln() * mean;
                let at = (self.next_arrival.ceil() as u64).max(now);
                self.at(at, Ev::Arrive);
            }
            Ev::Beat(t, epoch) => {
                let tab = &self.tabs[t as usize];
                if tab.open && tab.visible && tab.epoch == epoch {
                    self.beat(now, t, TabState::Active);
                    let d = self.hb_delay();
                    self.at(now + d, Ev::Beat(t, epoch));
                }
            }
            Ev::Hide(v, epoch) => {
                let vis = &mut self.visitors[v as usize];
                if vis.ended || vis.epoch != epoch || vis.away {
                    return;
                }
                vis.away = true;
                vis.epoch += 1;
                let (g, f) = (vis.epoch, vis.focus);
                self.hide_tab(now, f);
                let d = self.exp(mean_away);
                self.at(now + d, Ev::Show(v, g));
            }
            Ev::Show(v, epoch) => {
                let vis = &mut self.visitors[v as usize];
                if vis.ended || vis.epoch != epoch || !vis.away {
                    return;
                }
                vis.away = false;
                vis.epoch += 1;
                let (g, f) = (vis.epoch, vis.focus);
                if self.tabs[f as usize].started || self.tabs[f as usize].open {
                    self.show_tab(now, f);
                }
                let d = self.exp(mean_visible);
                self.at(now + d, Ev::Hide(v, g));
            }
            Ev::Navigate(v) => {
                if self.visitors[v as usize].ended {
                    return;
                }
                let d = self.exp(mean_page);
                self.at(now + d, Ev::Navigate(v));
                let vis = &self.visitors[v as usize];
                let f = vis.focus;
                if vis.away || !self.tabs[f as usize].started {
                    return;
                }
                if self.rng.f64() < mpa {
                    // A new page: leave, then the new page's first heartbeat.
                    let tab = &mut self.tabs[f as usize];
                    tab.open = false;
                    tab.epoch += 1;
                    self.leave(now, f, false);
                    let n = self.new_tab(v);
                    let vis = &mut self.visitors[v as usize];
                    vis.tabs.retain(|&x| x != f);
                    vis.tabs.push(n);
                    vis.focus = n;
                    let d = 200 + self.rng.u64(..800);
                    self.at(now + d, Ev::NewPage(n));
                } else {
                    let p = self.page();
                    self.tabs[f as usize].page = p;
                    self.show_tab(now, f);
                }
            }
            Ev::NewPage(t) => {
                let tab = &self.tabs[t as usize];
                if !tab.open {
                    return;
                }
                let vis = &self.visitors[tab.visitor as usize];
                if vis.away {
                    self.tabs[t as usize].started = true;
                    self.beat(now, t, TabState::Idle);
                } else {
                    self.show_tab(now, t);
                }
            }
            Ev::OpenExtra(v) => {
                let vis = &self.visitors[v as usize];
                if vis.ended || vis.tabs.len() >= 2 {
                    return;
                }
                let t = self.new_tab(v);
                self.visitors[v as usize].tabs.push(t);
                self.tabs[t as usize].started = true;
                self.beat(now, t, TabState::Idle);
                let d = self.exp(mean_switch);
                self.at(now + d, Ev::Switch(v));
            }
            Ev::Switch(v) => {
                let vis = &self.visitors[v as usize];
                if vis.ended || vis.tabs.len() < 2 {
                    return;
                }
                let (away, old) = (vis.away, vis.focus);
                let other = vis.tabs.iter().copied().find(|&x| x != old);
                let d = self.exp(mean_switch);
                self.at(now + d, Ev::Switch(v));
                if away {
                    return;
                }
                let Some(new) = other else { return };
                if !self.tabs[old as usize].started || !self.tabs[new as usize].started {
                    return;
                }
                self.hide_tab(now, old);
                self.visitors[v as usize].focus = new;
                self.show_tab(now, new);
            }
            Ev::End(v) => {
                let vanishes = self.rng.f64() < vanish;
                if !vanishes && self.online(now, v) {
                    self.watch_change(now, v, false);
                }
                let vis = &mut self.visitors[v as usize];
                vis.ended = true;
                vis.epoch += 1;
                let focus = vis.focus;
                let tabs = std::mem::take(&mut vis.tabs);
                for t in tabs {
                    self.stop_watching(t);
                    let tab = &mut self.tabs[t as usize];
                    tab.open = false;
                    tab.epoch += 1;
                    if tab.started && !vanishes {
                        self.leave(now, t, t == focus);
                    }
                }
            }
            Ev::Flush(loc, slot, epoch, timer) => {
                let (l, s) = (loc as usize, slot as usize);
                if self.isos[l][s].epoch == epoch {
                    let store = self.store(l, s, now, true);
                    let t0 = self.clock();
                    let next =
                        block_on_ready(self.isos[l][s].svc.flush_timer_fired(&store, timer, now));
                    let spent = t0.map(|t| t.elapsed());
                    let (wrote, shared) = (store.wrote_own.get(), store.shared_own.get());
                    if let Some(d) = spent {
                        self.cpu += d;
                    }
                    if wrote || shared {
                        self.wrote_own(l, s, now, wrote);
                    }
                    if let Some(t) = next {
                        self.at(t.at, Ev::Flush(loc, slot, epoch, t));
                    }
                }
            }
            Ev::Evict(loc, slot) => {
                let (l, s) = (loc as usize, slot as usize);
                let epoch = self.isos[l][s].epoch + 1;
                let fresh = self.new_isolate(l, s, epoch);
                let old = std::mem::replace(&mut self.isos[l][s], fresh);
                if self.measuring {
                    self.evictions += 1;
                }
                for i in old.awaiting {
                    // Never published: the leave shows only when the tab times out.
                    self.leaves[i as usize].published = None;
                }
                let d = exp(&mut self.io, self.sc.isolate_lifetime_ms);
                self.at(now + d, Ev::Evict(loc, slot));
            }
            Ev::Sample => self.sample(now),
            Ev::Probe(i, n) => self.probe(now, i, n),
            Ev::TruthCheck(v) => {
                if self.truth_hist.take_check(v as usize, now) {
                    self.truth_update(v, now);
                }
            }
        }
    }

    // ---- measurements ----

    fn truth(&mut self, now: u64) -> u64 {
        let window = self.sc.engine.window_ms;
        let tabs = &self.tabs;
        let visitors = &self.visitors;
        let mut online = 0;
        self.maybe_live.retain(|&v| {
            let vis = &visitors[v as usize];
            let live = vis.all_tabs.iter().any(|&t| {
                let tab = &tabs[t as usize];
                tab.started && tab.left_ms.is_none() && tab.last_ms + window > now
            });
            online += u64::from(live);
            live || !vis.ended
        });
        online
    }

    fn sample(&mut self, now: u64) {
        self.at(now + self.sc.sample_every_ms, Ev::Sample);
        self.naive_present = self.naive.present(now, 60_000);
        let truth = self.truth(now);
        if !self.measuring {
            return;
        }
        self.visitor_ms += truth as f64 * self.sc.sample_every_ms as f64;
        self.truth_sum += truth as f64;
        self.truth_n += 1;
        let loc = self.sampler.usize(..self.sc.locations);
        let slot = self.io.usize(..self.sc.isolates_per_location);
        let store = self.store(loc, slot, now, true);
        let c = block_on_ready(self.isos[loc][slot].svc.count(&store, now, SITE, None))
            .unwrap_or_default();
        self.count_requests += 1;
        self.count_naive_request();
        let n = self
            .naive
            .count(self.seed, self.sc.max_lag_ms, loc as u16, now, 60_000);
        let err = |est: u64| {
            let e = est as f64 - truth as f64;
            (
                e,
                if truth > 0 {
                    100.0 * e / truth as f64
                } else {
                    0.0
                },
            )
        };
        self.err_h.push(err(c.online));
        self.err_n.push(err(n));
        let now_i = self.truth_hist.mark(now);
        let hist: i64 = (0..self.sc.locations)
            .map(|l| self.truth_hist.at(l, now_i))
            .sum();
        if hist != truth as i64 {
            self.truth_mismatches += 1;
        }
        self.diagnose(now_i, loc, slot, c.online);
    }

    /// Splits the engine's error at this sample by source, and counts what oracles that
    /// know each location's exact state as of a write KV has shown here would say.
    fn diagnose(&mut self, now_i: Instant, r: usize, slot: usize, online: u64) {
        let now = now_i.0;
        let th = &self.truth_hist;
        let svc = &self.isos[r][slot].svc;
        let listed = svc.with(|p| p.listed_at(SITE)).unwrap_or(now);
        let mut sums: Vec<Option<(u64, u64)>> = vec![None; self.sc.locations];
        for (loc, w, n) in svc.with(|p| p.summaries_counted(now, SITE)) {
            if let Some(l) = loc.and_then(|x| self.loc_names.iter().position(|n| *n == x)) {
                sums[l] = Some((w, n));
            }
        }
        let (seed, max_lag, locs) = (self.seed, self.sc.max_lag_ms, self.sc.locations);
        let writes = &self.summary_writes;
        // People online at `l` as of write `i` of its records (before any: none).
        let t_w = |l: usize, i: Option<usize>| -> f64 {
            i.map_or(0.0, |i| {
                let (w, _, o) = writes[l][i];
                th.at(l, (w, o)) as f64
            })
        };
        // The newest write of `l` made by `t` (at the end of `t` if `end`).
        let newest = |l: usize, t: u64| -> Option<usize> {
            writes[l]
                .partition_point(|&(w, _, _)| w <= t)
                .checked_sub(1)
        };
        // The newest write of `l` KV shows at `r` at `t`.
        let visible = |l: usize, t: u64| -> Option<usize> {
            let i = writes[l].partition_point(|&(w, _, _)| w <= t);
            (0..i).rev().find(|&j| {
                let (w, id, _) = writes[l][j];
                w + lag(seed, max_lag, id, w, l as u16, r as u16) <= t
            })
        };
        // People at `l` as of the newest write KV shows at `r` at `t` of an oracle at `l`
        // writing every `every` (over several keys if under a second: the lag is drawn per
        // write anyway). With `cache`, `r` instead refreshes its copy every 60 s (at a phase
        // of its own per location) and shows the newest write made by then.
        let periodic = |l: usize, t: u64, every: u64, cache: bool| -> f64 {
            let phase = (l as u64).wrapping_mul(7_919) % every;
            let t = if cache {
                let p = mix_phase(seed, l, r) % CACHE_REFRESH_MS;
                if t < p {
                    return 0.0;
                }
                t - (t - p) % CACHE_REFRESH_MS
            } else {
                t
            };
            if t < phase {
                return 0.0;
            }
            let mut w = t - (t - phase) % every;
            if cache {
                return th.at_end_of(l, w) as f64;
            }
            let id = (1 << 50) + (l as u64) * 1_000 + every % 1_000;
            loop {
                if w + lag(seed, max_lag, id, w, l as u16, r as u16) <= t {
                    return th.at_end_of(l, w) as f64;
                }
                if w < every {
                    return 0.0;
                }
                w -= every;
            }
        };
        let mut row = [0.0; DIAG_ROWS.len()];
        let truth_now: f64 = (0..locs).map(|l| th.at(l, now_i) as f64).sum();
        row[0] = online as f64 - truth_now;
        let mut others = 0.0;
        for l in 0..locs {
            let now_l = th.at(l, now_i) as f64;
            if l == r {
                for k in ORACLES {
                    row[k] += now_l;
                }
                continue;
            }
            let (n, shown) = match sums[l] {
                Some((w, n)) => {
                    // The engine's summary is the last write of `l` at `w`.
                    let i = writes[l]
                        .partition_point(|&(x, _, _)| x <= w)
                        .checked_sub(1);
                    (n as f64, i)
                }
                None => (0.0, None),
            };
            others += n;
            let at_list = newest(l, listed).max(shown);
            let at_now = newest(l, now).max(shown);
            row[2] += n - t_w(l, shown);
            row[3] += t_w(l, shown) - t_w(l, at_list);
            row[4] += t_w(l, at_list) - t_w(l, at_now);
            row[5] += t_w(l, at_now) - now_l;
            row[6] += t_w(l, visible(l, now));
            row[7] += periodic(l, now, self.budget_period_ms, false);
            row[8] += periodic(l, now, 1_000, false);
            row[9] += periodic(l, now, self.naive_period_ms, false);
            row[10] += periodic(l, now, self.budget_period_ms, true);
            row[11] += periodic(l, now, self.own_period_ms, false);
        }
        row[1] = online as f64 - others - th.at(r, now_i) as f64;
        for k in ORACLES {
            row[k] -= truth_now;
        }
        self.diag.push((row, truth_now));
    }

    fn probe(&mut self, now: u64, i: u32, n: u32) {
        let offset = now - self.leaves[i as usize].at;
        let (loc, remote) = (self.leaves[i as usize].loc, self.leaves[i as usize].remote);
        let lp = &self.leaves[i as usize];
        let (vid, tid) = (
            self.visitors[lp.visitor as usize].id.clone(),
            self.tabs[lp.tab as usize].id.clone(),
        );
        if !lp.own_done {
            let slot = self.io.usize(..self.sc.isolates_per_location);
            let counted = self
                .probe_view(loc as usize, slot, now)
                .with(|p| p.tab_counted(now, SITE, &vid, &tid));
            let lp = &mut self.leaves[i as usize];
            if counted {
                lp.own_last_counted = offset;
                lp.own_streak = 0;
            } else {
                lp.own_streak += 1;
            }
            if (lp.own_streak >= 10 && offset >= 1_000) || offset >= PROBE_HORIZON_MS {
                lp.own_done = true;
                let v = if counted {
                    PROBE_HORIZON_MS
                } else {
                    lp.own_last_counted
                };
                self.own_h.push(v as f64 / 1000.0);
            }
        }
        let lp = &self.leaves[i as usize];
        if !lp.remote_done {
            let r = remote.unwrap_or_default() as usize;
            let mut done = offset >= PROBE_HORIZON_MS;
            if let Some(pubd) = lp.published {
                let slot = self.io.usize(..self.sc.isolates_per_location);
                let seen = self
                    .probe_view(r, slot, now)
                    .with(|p| p.location_as_of(SITE, &self.loc_names[loc as usize]))
                    .is_some_and(|w| w >= pubd);
                if seen {
                    self.else_h.push(offset as f64 / 1000.0);
                    self.leaves[i as usize].remote_done = true;
                    done = false;
                }
            }
            if done {
                self.else_h.push(PROBE_HORIZON_MS as f64 / 1000.0);
                self.lost_leaves += u64::from(self.leaves[i as usize].published.is_none());
                self.leaves[i as usize].remote_done = true;
            }
        }
        let lp = &self.leaves[i as usize];
        if !(lp.own_done && lp.remote_done) {
            let next = if n < 29 { 100 } else { 1_000 };
            self.at(now + next, Ev::Probe(i, n + 1));
        }
    }
}

/// An exponential draw with mean `mean`, at least 1.
fn exp(rng: &mut Rng, mean: u64) -> u64 {
    let u = rng.f64();
    (-(1.0 - u).ln() * mean as f64) as u64 + 1
}

/// A phase in ms for reader `r`'s copy of location `l`'s key (cache-like lag).
fn mix_phase(seed: u64, l: usize, r: usize) -> u64 {
    lag(
        seed ^ 0x5EED,
        u64::MAX - 1,
        ((l as u64) << 20) | r as u64,
        0,
        1,
        0,
    )
}

/// Runs `scenario` with `seed` and reports what each design cost and how accurate it was.
#[must_use]
pub fn run(scenario: &Scenario, seed: u64) -> Report {
    let started = std::time::Instant::now();
    let sc = scenario;
    let loc_names: Vec<String> = (0..sc.locations).map(|l| format!("L{l:03}")).collect();
    let expected_leaves =
        sc.visitors as f64 * sc.measure_ms as f64 / sc.workload.mean_visit_ms as f64;
    let mut sim = Sim {
        sc,
        rng: Rng::with_seed(seed),
        io: Rng::with_seed(seed ^ 0x1500_1A7E),
        next_arrival: (sc.engine.window_ms + sc.engine.heartbeat_ms) as f64,
        starts: Vec::with_capacity(sc.visitors as usize),
        sampler: Rng::with_seed(seed ^ 0x5A4D_7E55),
        route: Rng::with_seed(seed ^ 0x0057_1C4E),
        watch_rng: Rng::with_seed(seed ^ 0x00A7_C4ED),
        seed,
        heap: BinaryHeap::new(),
        seq: 0,
        visitors: Vec::new(),
        tabs: Vec::new(),
        maybe_live: Vec::new(),
        isos: Vec::new(),
        loc_names,
        kv: RefCell::new(KvModel::new(seed, sc.max_lag_ms)),
        channel: RefCell::new(ChannelModel::new(sc.channel_miss, seed)),
        naive: NaiveKv::default(),
        naive_present: 0,
        measuring: false,
        measure_start: 0,
        end_ms: sc.warmup_ms + sc.measure_ms,
        count_requests: 0,
        naive_list_ops: 0,
        naive_read_ops: 0,
        naive_b_list_ops: 0,
        visitor_ms: 0.0,
        truth_sum: 0.0,
        truth_n: 0,
        err_h: Vec::new(),
        err_n: Vec::new(),
        leaves: Vec::new(),
        leave_p: (sc.leave_samples as f64 / expected_leaves.max(1.0)).min(1.0),
        own_h: Vec::new(),
        else_h: Vec::new(),
        else_n: Vec::new(),
        lost_leaves: 0,
        ops_at_start: Ops::default(),
        naive_at_start: Ops::default(),
        evictions: 0,
        requests: 0,
        truth_hist: Truth::new(sc.locations, sc.engine.window_ms),
        summary_writes: vec![Vec::new(); sc.locations],
        budget_period_ms: 600_000,
        naive_period_ms: 600_000,
        own_period_ms: 600_000,
        naive_from: (0, 0),
        herenow_from: 0,
        diag: Vec::new(),
        truth_mismatches: 0,
        client_requests: 0,
        cpu: Duration::ZERO,
        routing_moves: 0,
        slot_changes: 0,
        changes: Vec::new(),
        watching: HashMap::new(),
        // Arrivals and leaves: about two changes per visit.
        change_p: (sc.leave_samples as f64 / (2.0 * expected_leaves).max(1.0)).min(1.0),
        others_h: Vec::new(),
        others_dropped: 0,
    };
    for l in 0..sc.locations {
        let row: Vec<Iso> = (0..sc.isolates_per_location)
            .map(|s| sim.new_isolate(l, s, 0))
            .collect();
        sim.isos.push(row);
        for s in 0..sc.isolates_per_location {
            let d = exp(&mut sim.io, sc.isolate_lifetime_ms);
            sim.at(d, Ev::Evict(l as u16, s as u16));
        }
    }
    // The population starts at its mean and in its steady state, its heartbeats spread over
    // one interval after a window: a visit in progress is away with the chance that the
    // flows between visible, away and ended give (visits start visible), for as long as an
    // away spell in progress has lasted; one away for less than a window sent its idle
    // beacon that long ago (so their time-outs spread as in steady state).
    let w = &sc.workload;
    let (r_hide, r_show, r_end) = (
        1.0 / w.mean_visible_ms as f64,
        1.0 / w.mean_away_ms as f64,
        1.0 / w.mean_visit_ms as f64,
    );
    let p_away = r_hide / (r_hide + r_show + r_end);
    let start_at = sc.engine.window_ms;
    for i in 0..sc.visitors {
        let t0 = start_at + sim.rng.u64(..sc.engine.heartbeat_ms);
        let (at, start) = if sim.rng.f64() < p_away {
            let age = (-(1.0 - sim.rng.f64()).ln() / (r_show + r_end)) as u64;
            let show_at = t0 + exp(&mut sim.rng, w.mean_away_ms);
            let beacon = age < sc.engine.window_ms;
            let at = if beacon { t0 - age } else { t0 };
            (at, Start::Away { beacon, show_at })
        } else {
            (t0, Start::Visible)
        };
        sim.starts.push(start);
        sim.at(at, Ev::Initial(i as u32));
    }
    sim.at(start_at + sc.engine.heartbeat_ms, Ev::Arrive);
    sim.at(sc.warmup_ms, Ev::Measure);
    sim.at(1, Ev::Sample);
    while let Some(Reverse((now, _, ev))) = sim.heap.pop() {
        if now >= sim.end_ms {
            break;
        }
        sim.handle(now, ev);
    }
    // Changes still waiting on open pages: long overdue ones count as their age so far.
    let end = sim.end_ms;
    let overdue = sc.engine.heartbeat_ms + WATCH_OPEN_SLACK_MS;
    for ids in std::mem::take(&mut sim.watching).into_values() {
        for i in ids {
            let age = end - sim.changes[i as usize].at;
            if age > overdue {
                sim.others_h.push(age as f64 / 1000.0);
            } else {
                sim.others_dropped += 1;
            }
        }
    }
    finish(sim, started)
}

fn finish(sim: Sim<'_>, started: std::time::Instant) -> Report {
    let sc = sim.sc;
    let hours = sc.measure_ms as f64 / 3_600_000.0;
    let vh = (sim.visitor_ms / 3_600_000.0).max(1e-9);
    let kv = sim.kv.borrow();
    let h = kv.ops - sim.ops_at_start;
    let n = sim.naive.ops - sim.naive_at_start;
    let mean = |v: &[(f64, f64)], f: fn(&(f64, f64)) -> f64| {
        if v.is_empty() {
            0.0
        } else {
            v.iter().map(f).sum::<f64>() / v.len() as f64
        }
    };
    let err_stat = |v: &[(f64, f64)]| {
        (
            Stat::of(v.iter().map(|e| e.0.abs())),
            Stat::of(v.iter().map(|e| e.1.abs())),
            mean(v, |e| e.0),
            mean(v, |e| e.1),
        )
    };
    let (ea, ep, eb, ebp) = err_stat(&sim.err_n);
    let naive = |name: &'static str, lists: u64, reads: u64| DesignReport {
        name,
        writes: n.writes,
        deletes: n.deletes,
        lists,
        reads,
        violations: n.violations,
        count_requests: sim.count_requests,
        err_abs: ea.clone(),
        err_pct: ep.clone(),
        bias: eb,
        bias_pct: ebp,
        leave_own: Stat::of(std::iter::repeat_n(0.0, sim.else_n.len().max(1))),
        leave_else: Stat::of(sim.else_n.iter().copied()),
    };
    let a = naive(
        "(a) naive: key/visitor, list+get",
        sim.naive_list_ops,
        sim.naive_read_ops,
    );
    let b = naive(
        "(b) key/visitor, state in metadata",
        sim.naive_b_list_ops,
        0,
    );
    let (ha, hp, hb, hbp) = err_stat(&sim.err_h);
    let c = DesignReport {
        name: "(c) herenow engine",
        writes: h.writes,
        deletes: h.deletes,
        lists: h.lists,
        reads: h.reads,
        violations: h.violations,
        count_requests: sim.count_requests,
        err_abs: ha,
        err_pct: hp,
        bias: hb,
        bias_pct: hbp,
        leave_own: Stat::of(sim.own_h.iter().copied()),
        leave_else: Stat::of(sim.else_h.iter().copied()),
    };
    Report {
        scenario: sc.clone(),
        hours,
        visitor_hours: vh,
        mean_online: if sim.truth_n > 0 {
            sim.truth_sum / sim.truth_n as f64
        } else {
            0.0
        },
        requests: sim.requests,
        client_requests: sim.client_requests,
        channel_calls: {
            let c = sim.channel.borrow();
            (c.gets, c.puts)
        },
        host_cpu_ms_per_request: sim.cpu.as_secs_f64() * 1000.0 / sim.client_requests.max(1) as f64,
        routing_moves: sim.routing_moves,
        slot_changes: sim.slot_changes,
        others_shown: Stat::of(sim.others_h.iter().copied()),
        others_dropped: sim.others_dropped,
        evictions: sim.evictions,
        lost_leaves: sim.lost_leaves,
        last_seen_writes: h.last_seen_writes,
        max_value_bytes: kv.max_value,
        max_metadata_bytes: kv.max_metadata,
        max_key_bytes: kv.max_key,
        min_ttl_s: if kv.min_ttl == u64::MAX {
            0
        } else {
            kv.min_ttl
        },
        designs: [a, b, c],
        runtime_s: started.elapsed().as_secs_f64(),
        diagnostics: diagnostics(&sim),
    }
}

fn diagnostics(sim: &Sim<'_>) -> Diagnostics {
    let n = sim.diag.len().max(1) as f64;
    let pct = |e: f64, t: f64| if t > 0.0 { 100.0 * e / t } else { 0.0 };
    let rows = DIAG_ROWS
        .iter()
        .enumerate()
        .map(|(k, name)| {
            let abs = Stat::of(sim.diag.iter().map(|(d, _)| d[k].abs()));
            let p = Stat::of(sim.diag.iter().map(|(d, t)| pct(d[k].abs(), *t)));
            let bias = sim.diag.iter().map(|(d, _)| d[k]).sum::<f64>() / n;
            let ms = sim
                .diag
                .iter()
                .map(|(d, t)| pct(d[k], *t).powi(2))
                .sum::<f64>()
                / n;
            ((*name).to_owned(), abs, p, bias, ms.sqrt())
        })
        .collect();
    let hours = sim.sc.measure_ms as f64 / 3_600_000.0;
    Diagnostics {
        rows,
        causes: CAUSES
            .iter()
            .zip(sim.truth_hist.causes)
            .map(|(c, k)| ((*c).to_owned(), k as f64 / hours))
            .collect(),
        budget_period_ms: sim.budget_period_ms,
        naive_period_ms: sim.naive_period_ms,
        own_period_ms: sim.own_period_ms,
        truth_mismatches: sim.truth_mismatches,
    }
}
