//! The ground truth's history: people online per location at any past instant, exactly.
//!
//! A visitor is online while one of its tabs is live (from a heartbeat or beacon until its
//! leave or a window after it). The simulation tells [`Truth`] after every request of a
//! visitor and when the visitor's last live tab would time out, and the history records each
//! visitor's transitions at the exact millisecond they happen, with their cause.

/// Why a visitor went online or offline.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Cause {
    /// A visit's first heartbeat.
    Arrive = 0,
    /// Back after timing out (an idle or vanished tab).
    Return = 1,
    /// Back after a full page load's leave (its new tab's first heartbeat).
    NavBack = 2,
    /// A visit's last leave.
    Leave = 3,
    /// A full page load's leave, before the new page's tab beats.
    NavOff = 4,
    /// Timed out after an idle beacon: known a window ahead.
    IdleOut = 5,
    /// Timed out after an active heartbeat (the visit vanished without a leave).
    ActiveOut = 6,
}

/// The names of [`Cause`]s, in order.
pub(crate) const CAUSES: [&str; 7] = [
    "arrivals",
    "returns after a time-out",
    "back after a page load",
    "leaves ending a visit",
    "offline during a page load",
    "idle time-outs",
    "active time-outs (vanished)",
];

/// An instant: a time in ms and, within it, the order events were handled in.
pub(crate) type Instant = (u64, u64);

/// People online at one location over time: the count after each transition.
#[derive(Debug, Default)]
pub(crate) struct History {
    times: Vec<Instant>,
    counts: Vec<i64>,
}

impl History {
    fn record(&mut self, t: Instant, delta: i64) {
        let pos = self.times.partition_point(|&x| x <= t);
        let before = if pos == 0 { 0 } else { self.counts[pos - 1] };
        self.times.insert(pos, t);
        self.counts.insert(pos, before + delta);
        for c in &mut self.counts[pos + 1..] {
            *c += delta;
        }
    }

    /// People online at `t` (transitions at `t` included).
    pub fn at(&self, t: Instant) -> i64 {
        let pos = self.times.partition_point(|&x| x <= t);
        if pos == 0 { 0 } else { self.counts[pos - 1] }
    }
}

/// One tab as the truth sees it.
#[derive(Debug, Clone, Copy)]
pub(crate) struct TabTruth {
    /// Its last heartbeat or beacon.
    pub last_ms: u64,
    /// Its leave, if after the last heartbeat.
    pub left_ms: Option<u64>,
    /// Whether its last request was an idle beacon.
    pub idle: bool,
}

#[derive(Debug, Default, Clone, Copy)]
struct VisitorTruth {
    online: bool,
    ever: bool,
    last_off: Option<Cause>,
    /// When its pending time-out check is due (0: none).
    check_at: u64,
}

/// The truth's history for every location.
#[derive(Debug)]
pub(crate) struct Truth {
    window: u64,
    pub locations: Vec<History>,
    visitors: Vec<VisitorTruth>,
    /// Transitions per cause (counted from `counting_from`).
    pub causes: [u64; 7],
    pub counting_from: u64,
    /// Orders the transitions and other marks within a millisecond.
    order: u64,
}

impl Truth {
    pub fn new(locations: usize, window: u64) -> Self {
        Self {
            window,
            locations: (0..locations).map(|_| History::default()).collect(),
            visitors: Vec::new(),
            causes: [0; 7],
            counting_from: u64::MAX,
            order: 0,
        }
    }

    /// The instant of something happening now (after everything already handled at `now`).
    pub fn mark(&mut self, now: u64) -> Instant {
        self.order += 1;
        (now, self.order)
    }

    /// Visitor `v` at `loc`, whose tabs are `tabs`, after a request or a check at `now`
    /// (`ended`: its visit is over). Returns when to check it again, if a new check is due.
    pub fn update(
        &mut self,
        v: usize,
        loc: usize,
        ended: bool,
        tabs: impl Iterator<Item = TabTruth>,
        now: u64,
    ) -> Option<u64> {
        if self.visitors.len() <= v {
            self.visitors.resize(v + 1, VisitorTruth::default());
        }
        let mut expiry = 0;
        let mut end = 0;
        let mut end_cause = Cause::IdleOut;
        for t in tabs {
            let timeout = t.last_ms + self.window;
            let te = t.left_ms.map_or(timeout, |l| l.min(timeout));
            if te > now {
                expiry = expiry.max(te);
            } else if te >= end {
                end = te;
                end_cause = if t.left_ms.is_some_and(|l| l < timeout) {
                    if ended { Cause::Leave } else { Cause::NavOff }
                } else if t.idle {
                    Cause::IdleOut
                } else {
                    Cause::ActiveOut
                };
            }
        }
        let live = expiry > 0;
        let vt = &mut self.visitors[v];
        if live != vt.online {
            let (at, cause) = if live {
                let c = match (vt.ever, vt.last_off) {
                    (false, _) => Cause::Arrive,
                    (true, Some(Cause::NavOff)) => Cause::NavBack,
                    _ => Cause::Return,
                };
                (now, c)
            } else {
                vt.last_off = Some(end_cause);
                (end, end_cause)
            };
            vt.online = live;
            vt.ever = true;
            // A time-out found late would be ordered before what was handled since; checks
            // come at the exact millisecond, so only same-millisecond events are affected.
            self.order += 1;
            let instant = if at == now { (at, self.order) } else { (at, 0) };
            self.locations[loc].record(instant, if live { 1 } else { -1 });
            if at >= self.counting_from {
                self.causes[cause as usize] += 1;
            }
        }
        if live && (vt.check_at == 0 || vt.check_at > expiry) {
            vt.check_at = expiry;
            return Some(expiry);
        }
        None
    }

    /// Whether a check of `v` scheduled for `at` is still the pending one (and clears it).
    pub fn take_check(&mut self, v: usize, at: u64) -> bool {
        let vt = &mut self.visitors[v];
        if vt.check_at == at {
            vt.check_at = 0;
            true
        } else {
            false
        }
    }

    /// People online at `loc` at `t`.
    pub fn at(&self, loc: usize, t: Instant) -> i64 {
        self.locations[loc].at(t)
    }

    /// People online at `loc` at the end of millisecond `t`.
    pub fn at_end_of(&self, loc: usize, t: u64) -> i64 {
        self.locations[loc].at((t, u64::MAX))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const W: u64 = 60_000;

    fn tab(last_ms: u64, left_ms: Option<u64>, idle: bool) -> TabTruth {
        TabTruth {
            last_ms,
            left_ms,
            idle,
        }
    }

    #[test]
    fn history_counts_transitions_in_order_even_when_told_late() {
        let mut h = History::default();
        h.record((10, 1), 1);
        h.record((30, 3), 1);
        h.record((20, 0), -1);
        assert_eq!(h.at((9, u64::MAX)), 0);
        assert_eq!(h.at((10, 0)), 0);
        assert_eq!(h.at((10, 1)), 1);
        assert_eq!(h.at((25, 0)), 0);
        assert_eq!(h.at((30, u64::MAX)), 1);
    }

    #[test]
    fn a_visitor_is_online_from_its_first_beat_until_its_leave_or_time_out() {
        let mut t = Truth::new(2, W);
        t.counting_from = 0;
        // Arrives at 1 s: online, a check due when its tab would time out.
        let check = t.update(0, 1, false, [tab(1_000, None, false)].into_iter(), 1_000);
        assert_eq!(check, Some(61_000));
        assert_eq!((t.at(1, (999, u64::MAX)), t.at_end_of(1, 1_000)), (0, 1));
        // Beats again at 20 s: the pending check stays (it finds the tab alive and moves on).
        assert_eq!(
            t.update(0, 1, false, [tab(20_000, None, true)].into_iter(), 20_000),
            None
        );
        assert!(t.take_check(0, 61_000));
        let again = t.update(0, 1, false, [tab(20_000, None, true)].into_iter(), 61_000);
        assert_eq!(again, Some(80_000));
        assert!(t.take_check(0, 80_000));
        // Its idle beacon at 20 s runs out at exactly 80 s.
        assert_eq!(
            t.update(0, 1, false, [tab(20_000, None, true)].into_iter(), 80_000),
            None
        );
        assert_eq!(t.at_end_of(1, 79_999), 1);
        assert_eq!(t.at_end_of(1, 80_000), 0);
        assert_eq!(t.causes[Cause::IdleOut as usize], 1);
        // Back later: a return; then a visit-ending leave.
        t.update(0, 1, false, [tab(90_000, None, false)].into_iter(), 90_000);
        t.update(
            0,
            1,
            true,
            [tab(90_000, Some(95_000), false)].into_iter(),
            95_000,
        );
        assert_eq!(t.at_end_of(1, 94_999), 1);
        assert_eq!(t.at_end_of(1, 95_000), 0);
        assert_eq!(t.causes[Cause::Return as usize], 1);
        assert_eq!(t.causes[Cause::Leave as usize], 1);
        assert_eq!(t.at_end_of(0, 95_000), 0, "other locations untouched");
    }

    #[test]
    fn a_page_load_is_a_short_gap_and_a_second_tab_keeps_a_visitor_online() {
        let mut t = Truth::new(1, W);
        t.counting_from = 0;
        t.update(0, 0, false, [tab(0, None, false)].into_iter(), 1);
        // Full page load: leave at 10 s, the new tab beats at 10.5 s.
        t.update(
            0,
            0,
            false,
            [tab(1, Some(10_000), false)].into_iter(),
            10_000,
        );
        let tabs = [tab(1, Some(10_000), false), tab(10_500, None, false)];
        t.update(0, 0, false, tabs.into_iter(), 10_500);
        assert_eq!(t.at_end_of(0, 10_200), 0);
        assert_eq!(t.at_end_of(0, 10_500), 1);
        assert_eq!(t.causes[Cause::NavOff as usize], 1);
        assert_eq!(t.causes[Cause::NavBack as usize], 1);
        // A second tab: leaving one keeps the visitor online.
        let tabs = [tab(10_500, Some(20_000), false), tab(15_000, None, true)];
        t.update(0, 0, false, tabs.into_iter(), 20_000);
        assert_eq!(t.at_end_of(0, 20_000), 1);
    }
}
