//! The client's page-lifecycle state machine: browser events in, actions out.
//!
//! The JavaScript client (`client/js/client.js`, through `crate::exports`) turns DOM
//! events (`visibilitychange`, `pagehide`, `pageshow`, `freeze`, `resume`), its timer and its fetch results into [`Event`]s, feeds them to a [`Machine`]
//! and carries out the [`Action`]s it returns. All decisions live here, so they are tested
//! natively; the clock (`now_ms`) and randomness (`u` in `[0, 1)`) are injected.
//!
//! The rules (back/forward-cache safe: nothing here ever needs `unload`):
//! - start: heartbeat at once when visible, else one idle beacon;
//! - hidden: one idle beacon and the timer stops; visible: heartbeat at once, timer restarts;
//! - `pagehide`: a leave beacon, the fetch in flight aborted, timers stopped; after it only a
//!   `pageshow` with `persisted` (a back/forward-cache restore) rejoins, at once;
//! - `freeze`: timers stop (and an idle beacon if the tab was active); `resume` acts like
//!   becoming visible (or stays idle when hidden);
//! - a heartbeat's success schedules the next one at the server's interval ±10%; a failure
//!   schedules a retry with exponential backoff and full jitter, never sooner than a
//!   `Retry-After` and, `Retry-After` aside, never later than the server's window less one
//!   interval (so a client rejoins within one window of an outage's end), and the first
//!   failure of a streak asks for one warning;
//! - stop: a leave beacon (unless already left), everything cancelled, listeners detached;
//! - a same-document navigation (the page path changed): a heartbeat at once when active
//!   (so per-page counts follow within one round trip), an idle beacon when hidden; while a
//!   failure streak or a `Retry-After` hold lasts, the next retry carries the new page.

pub(crate) mod backoff;

use backoff::{Backoff, heartbeat_delay_ms};

/// Something that happened to the page or to the client.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) enum Event {
    /// The client started; `visible` is the page's visibility at that moment.
    Start {
        /// Whether the page is visible.
        visible: bool,
    },
    /// `visibilitychange`: the page became visible (`true`) or hidden (`false`).
    Visibility {
        /// Whether the page is now visible.
        visible: bool,
    },
    /// `pagehide`.
    PageHide {
        /// Whether the page may go into the back/forward cache.
        persisted: bool,
    },
    /// `pageshow`.
    PageShow {
        /// Whether the page came back from the back/forward cache.
        persisted: bool,
        /// Whether the page is visible.
        visible: bool,
    },
    /// `freeze` (Page Lifecycle API).
    Freeze,
    /// `resume` (Page Lifecycle API).
    Resume {
        /// Whether the page is visible.
        visible: bool,
    },
    /// The heartbeat timer fired.
    TimerFired,
    /// The heartbeat numbered `seq` succeeded.
    BeatOk {
        /// The number from [`Action::Heartbeat`].
        seq: u32,
        /// The server's `next_heartbeat_ms`, if it sent one.
        next_heartbeat_ms: Option<f64>,
        /// The server's presence window `window_s` (seconds), if it sent one.
        window_s: Option<f64>,
    },
    /// The heartbeat numbered `seq` failed (network error, non-2xx, bad body).
    BeatFailed {
        /// The number from [`Action::Heartbeat`].
        seq: u32,
        /// A `Retry-After` to honour (429/503 only), in milliseconds.
        retry_after_ms: Option<u32>,
    },
    /// The page path changed without a new document (`pushState`, `popstate`, the
    /// Navigation API, or `setPage`); the client already uses the new path.
    Navigate,
    /// The host page called `stop()`.
    Stop,
}

/// Something the client must do.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Action {
    /// Send a heartbeat (state `active`) with fetch, aborting any earlier one still in flight;
    /// report its outcome as [`Event::BeatOk`] or [`Event::BeatFailed`] with this `seq`.
    Heartbeat {
        /// Identifies this heartbeat; outcomes of older ones are ignored.
        seq: u32,
    },
    /// Send one heartbeat with state `idle` by `navigator.sendBeacon`.
    BeaconIdle,
    /// Send a leave by `navigator.sendBeacon`.
    BeaconLeave,
    /// (Re)arm the timer: [`Event::TimerFired`] after `delay_ms`, replacing any pending one.
    Schedule {
        /// The delay in milliseconds.
        delay_ms: u32,
    },
    /// Cancel the pending timer, if any.
    CancelTimer,
    /// Abort the fetch in flight, if any.
    AbortFetch,
    /// Log one warning: a failure streak has begun.
    Warn,
    /// Remove every event listener: the client is stopped for good.
    Detach,
}

/// Where the client is in the page's life.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Phase {
    /// Not started yet.
    Init,
    /// Visible: heartbeats run.
    Active,
    /// Hidden: the idle beacon went out, no timer.
    Hidden,
    /// Frozen: no timer.
    Frozen,
    /// After `pagehide`: left; only a persisted `pageshow` rejoins.
    Left,
    /// After `stop()`: everything is ignored.
    Stopped,
}

/// The lifecycle state machine. See the [module docs](self) for the rules.
#[derive(Debug, Clone)]
pub(crate) struct Machine {
    phase: Phase,
    visible: bool,
    seq: u32,
    in_flight: Option<u32>,
    backoff: Backoff,
    /// A `Retry-After` hold: no heartbeat before this time (ms since the epoch).
    hold_until_ms: Option<u64>,
}

impl Default for Machine {
    fn default() -> Self {
        Self::new()
    }
}

impl Machine {
    /// A machine that has not started.
    #[must_use]
    pub(crate) const fn new() -> Self {
        Self {
            phase: Phase::Init,
            visible: true,
            seq: 0,
            in_flight: None,
            backoff: Backoff::new(),
            hold_until_ms: None,
        }
    }

    /// The current phase (for tests: the glue acts on actions only).
    #[cfg(test)]
    #[must_use]
    pub(crate) const fn phase(&self) -> Phase {
        self.phase
    }

    /// Failures in a row so far (for tests).
    #[cfg(test)]
    #[must_use]
    pub(crate) const fn failures(&self) -> u32 {
        self.backoff.failures()
    }

    /// Whether `stop()` ended this machine for good (its slot may be reused).
    #[must_use]
    pub(crate) const fn is_stopped(&self) -> bool {
        matches!(self.phase, Phase::Stopped)
    }

    /// The heartbeat in flight, if any.
    #[must_use]
    pub(crate) const fn in_flight(&self) -> Option<u32> {
        self.in_flight
    }

    /// Feeds one event at time `now_ms` (ms since the epoch) with a random `u` in `[0, 1)`
    /// and returns what to do, in order.
    #[must_use]
    pub(crate) fn handle(&mut self, event: Event, now_ms: u64, u: f64) -> Vec<Action> {
        let mut out = Vec::new();
        match (self.phase, event) {
            (Phase::Stopped, _) => {}
            (_, Event::Stop) => {
                out.extend([Action::CancelTimer, Action::AbortFetch]);
                if matches!(self.phase, Phase::Active | Phase::Hidden | Phase::Frozen) {
                    out.push(Action::BeaconLeave);
                }
                out.push(Action::Detach);
                self.in_flight = None;
                self.phase = Phase::Stopped;
            }
            (Phase::Init, Event::Start { visible }) => {
                self.visible = visible;
                self.enter_shown(&mut out, now_ms, false);
            }
            (Phase::Init, _) | (_, Event::Start { .. }) => {}
            (phase, Event::Visibility { visible }) => {
                self.visible = visible;
                match phase {
                    Phase::Active if !visible => {
                        out.extend([Action::CancelTimer, Action::BeaconIdle]);
                        self.phase = Phase::Hidden;
                    }
                    Phase::Hidden if visible => self.enter_shown(&mut out, now_ms, true),
                    _ => {}
                }
            }
            (Phase::Active | Phase::Hidden | Phase::Frozen, Event::PageHide { .. }) => {
                out.extend([Action::CancelTimer, Action::AbortFetch, Action::BeaconLeave]);
                self.in_flight = None;
                self.phase = Phase::Left;
            }
            (
                Phase::Left,
                Event::PageShow {
                    persisted: true,
                    visible,
                },
            ) => {
                self.visible = visible;
                self.enter_shown(&mut out, now_ms, true);
            }
            (Phase::Active, Event::Freeze) => {
                out.extend([Action::CancelTimer, Action::BeaconIdle]);
                self.phase = Phase::Frozen;
            }
            (Phase::Hidden, Event::Freeze) => {
                out.push(Action::CancelTimer);
                self.phase = Phase::Frozen;
            }
            (Phase::Frozen, Event::Resume { visible }) => {
                self.visible = visible;
                if visible {
                    self.enter_shown(&mut out, now_ms, true);
                } else {
                    self.phase = Phase::Hidden;
                }
            }
            (Phase::Active, Event::TimerFired) => self.heartbeat(&mut out),
            // During a failure streak (and any `Retry-After` hold) the pending retry goes on.
            (Phase::Active, Event::Navigate) if self.backoff.failures() == 0 => {
                out.push(Action::CancelTimer);
                self.heartbeat(&mut out);
            }
            (Phase::Hidden, Event::Navigate) => out.push(Action::BeaconIdle),
            (
                _,
                Event::BeatOk {
                    seq,
                    next_heartbeat_ms,
                    window_s,
                },
            ) if self.in_flight == Some(seq) => {
                self.in_flight = None;
                self.backoff.succeed();
                self.backoff.set_window(window_s, next_heartbeat_ms);
                self.hold_until_ms = None;
                if self.phase == Phase::Active {
                    out.push(Action::Schedule {
                        delay_ms: heartbeat_delay_ms(next_heartbeat_ms, u),
                    });
                }
            }
            (
                _,
                Event::BeatFailed {
                    seq,
                    retry_after_ms,
                },
            ) if self.in_flight == Some(seq) => {
                self.in_flight = None;
                if self.backoff.failures() == 0 {
                    out.push(Action::Warn);
                }
                let delay_ms = self.backoff.fail(retry_after_ms, u);
                self.hold_until_ms = retry_after_ms.map(|_| now_ms.saturating_add(delay_ms.into()));
                if self.phase == Phase::Active {
                    out.push(Action::Schedule { delay_ms });
                }
            }
            _ => {}
        }
        out
    }

    /// Enters `Active` (heartbeat now, or when a `Retry-After` hold ends) when visible, else
    /// `Hidden` with one idle beacon.
    fn enter_shown(&mut self, out: &mut Vec<Action>, now_ms: u64, honour_hold: bool) {
        if !self.visible {
            out.push(Action::BeaconIdle);
            self.phase = Phase::Hidden;
            return;
        }
        self.phase = Phase::Active;
        match self.hold_until_ms {
            Some(until) if honour_hold && until > now_ms => {
                let wait = u32::try_from(until - now_ms).unwrap_or(u32::MAX);
                out.push(Action::Schedule { delay_ms: wait });
            }
            _ => self.heartbeat(out),
        }
    }

    fn heartbeat(&mut self, out: &mut Vec<Action>) {
        self.seq = self.seq.wrapping_add(1);
        self.in_flight = Some(self.seq);
        out.push(Action::Heartbeat { seq: self.seq });
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use Action::*;

    fn started() -> Machine {
        let mut m = Machine::new();
        assert_eq!(
            m.handle(Event::Start { visible: true }, 0, 0.5),
            [Heartbeat { seq: 1 }]
        );
        m
    }

    const fn ok(seq: u32, ms: f64) -> Event {
        Event::BeatOk {
            seq,
            next_heartbeat_ms: Some(ms),
            window_s: None,
        }
    }

    const fn failed(seq: u32, retry_after_ms: Option<u32>) -> Event {
        Event::BeatFailed {
            seq,
            retry_after_ms,
        }
    }

    const VISIBLE: Event = Event::Visibility { visible: true };
    const HIDDEN: Event = Event::Visibility { visible: false };

    #[test]
    fn start_visible_heartbeats_then_schedules_with_jitter() {
        let mut m = started();
        assert_eq!(m.phase(), Phase::Active);
        assert_eq!(
            m.handle(ok(1, 10_000.0), 10, 0.0),
            [Schedule { delay_ms: 9_000 }]
        );
        assert_eq!(
            m.handle(Event::TimerFired, 9_010, 0.5),
            [Heartbeat { seq: 2 }]
        );
        assert_eq!(
            m.handle(ok(2, 10_000.0), 9_020, 0.999_999),
            [Schedule { delay_ms: 10_999 }]
        );
    }

    #[test]
    fn start_hidden_sends_one_idle_beacon() {
        let mut m = Machine::new();
        assert_eq!(
            m.handle(Event::Start { visible: false }, 0, 0.5),
            [BeaconIdle]
        );
        assert_eq!(m.phase(), Phase::Hidden);
        assert_eq!(m.handle(HIDDEN, 1, 0.5), []);
        assert_eq!(m.handle(VISIBLE, 2, 0.5), [Heartbeat { seq: 1 }]);
    }

    #[test]
    fn events_before_start_and_a_second_start_are_ignored() {
        let mut m = Machine::new();
        assert_eq!(m.handle(Event::TimerFired, 0, 0.5), []);
        assert_eq!(m.handle(HIDDEN, 0, 0.5), []);
        assert_eq!(m.handle(Event::PageHide { persisted: true }, 0, 0.5), []);
        let mut m = started();
        assert_eq!(m.handle(Event::Start { visible: true }, 0, 0.5), []);
    }

    #[test]
    fn hidden_sends_idle_once_and_stops_the_timer_visible_restarts() {
        let mut m = started();
        let _ = m.handle(ok(1, 1_000.0), 0, 0.5);
        assert_eq!(m.handle(HIDDEN, 100, 0.5), [CancelTimer, BeaconIdle]);
        assert_eq!(m.phase(), Phase::Hidden);
        assert_eq!(m.handle(HIDDEN, 200, 0.5), []);
        assert_eq!(m.handle(Event::TimerFired, 300, 0.5), []);
        assert_eq!(m.handle(VISIBLE, 400, 0.5), [Heartbeat { seq: 2 }]);
        assert_eq!(m.handle(VISIBLE, 450, 0.5), []);
        assert_eq!(
            m.handle(ok(2, 1_000.0), 500, 0.5),
            [Schedule { delay_ms: 1_000 }]
        );
    }

    #[test]
    fn a_response_while_hidden_schedules_nothing() {
        let mut m = started();
        assert_eq!(m.handle(HIDDEN, 1, 0.5), [CancelTimer, BeaconIdle]);
        assert_eq!(m.handle(ok(1, 1_000.0), 2, 0.5), []);
        assert_eq!(m.in_flight(), None);
    }

    #[test]
    fn pagehide_leaves_aborts_and_only_a_persisted_pageshow_rejoins() {
        let mut m = started();
        assert_eq!(
            m.handle(Event::PageHide { persisted: true }, 5, 0.5),
            [CancelTimer, AbortFetch, BeaconLeave]
        );
        assert_eq!(m.phase(), Phase::Left);
        // Chromium's order on a bfcache round trip.
        assert_eq!(m.handle(HIDDEN, 6, 0.5), []);
        assert_eq!(m.handle(Event::Freeze, 7, 0.5), []);
        assert_eq!(m.handle(Event::Resume { visible: false }, 8, 0.5), []);
        assert_eq!(m.handle(VISIBLE, 9, 0.5), []);
        assert_eq!(m.handle(Event::TimerFired, 9, 0.5), []);
        // The aborted heartbeat's outcome is stale.
        assert_eq!(m.handle(failed(1, None), 9, 0.5), []);
        assert_eq!(
            m.handle(
                Event::PageShow {
                    persisted: false,
                    visible: true
                },
                10,
                0.5
            ),
            []
        );
        assert_eq!(
            m.handle(
                Event::PageShow {
                    persisted: true,
                    visible: true
                },
                10,
                0.5
            ),
            [Heartbeat { seq: 2 }]
        );
        assert_eq!(m.phase(), Phase::Active);
        assert_eq!(m.failures(), 0);
    }

    #[test]
    fn pageshow_when_not_left_is_ignored() {
        let mut m = started();
        assert_eq!(
            m.handle(
                Event::PageShow {
                    persisted: true,
                    visible: true
                },
                1,
                0.5
            ),
            []
        );
    }

    #[test]
    fn a_hidden_restore_sends_idle() {
        let mut m = started();
        let _ = m.handle(Event::PageHide { persisted: true }, 1, 0.5);
        assert_eq!(
            m.handle(
                Event::PageShow {
                    persisted: true,
                    visible: false
                },
                2,
                0.5
            ),
            [BeaconIdle]
        );
        assert_eq!(m.phase(), Phase::Hidden);
    }

    #[test]
    fn pagehide_while_hidden_still_leaves() {
        let mut m = started();
        let _ = m.handle(HIDDEN, 1, 0.5);
        assert_eq!(
            m.handle(Event::PageHide { persisted: false }, 2, 0.5),
            [CancelTimer, AbortFetch, BeaconLeave]
        );
        assert_eq!(m.handle(Event::PageHide { persisted: false }, 3, 0.5), []);
    }

    #[test]
    fn freeze_and_resume() {
        let mut m = started();
        let _ = m.handle(ok(1, 1_000.0), 0, 0.5);
        assert_eq!(m.handle(Event::Freeze, 1, 0.5), [CancelTimer, BeaconIdle]);
        assert_eq!(m.phase(), Phase::Frozen);
        assert_eq!(m.handle(Event::TimerFired, 2, 0.5), []);
        assert_eq!(
            m.handle(Event::Resume { visible: true }, 3, 0.5),
            [Heartbeat { seq: 2 }]
        );
        // Hidden, then frozen: no second idle beacon; resuming hidden stays hidden.
        let _ = m.handle(HIDDEN, 4, 0.5);
        assert_eq!(m.handle(Event::Freeze, 5, 0.5), [CancelTimer]);
        assert_eq!(m.handle(Event::Resume { visible: false }, 6, 0.5), []);
        assert_eq!(m.phase(), Phase::Hidden);
        assert_eq!(m.handle(VISIBLE, 7, 0.5), [Heartbeat { seq: 3 }]);
    }

    #[test]
    fn failures_back_off_with_full_jitter_and_warn_once_per_streak() {
        let mut m = started();
        assert_eq!(
            m.handle(failed(1, None), 0, 0.5),
            [Warn, Schedule { delay_ms: 500 }]
        );
        assert_eq!(
            m.handle(Event::TimerFired, 500, 0.5),
            [Heartbeat { seq: 2 }]
        );
        assert_eq!(
            m.handle(failed(2, None), 600, 0.5),
            [Schedule { delay_ms: 1_000 }]
        );
        assert_eq!(
            m.handle(Event::TimerFired, 1_600, 0.5),
            [Heartbeat { seq: 3 }]
        );
        assert_eq!(
            m.handle(failed(3, None), 1_700, 0.999),
            [Schedule { delay_ms: 3_996 }]
        );
        assert_eq!(m.failures(), 3);
        let _ = m.handle(Event::TimerFired, 6_000, 0.5);
        assert_eq!(
            m.handle(ok(4, 2_000.0), 6_100, 0.5),
            [Schedule { delay_ms: 2_000 }]
        );
        assert_eq!(m.failures(), 0);
        let _ = m.handle(Event::TimerFired, 8_100, 0.5);
        assert_eq!(
            m.handle(failed(5, None), 8_200, 0.0),
            [Warn, Schedule { delay_ms: 0 }]
        );
    }

    /// Fails `n` heartbeats in a row from `seq` on (each retried when its timer fires) and
    /// returns the delays scheduled.
    fn fail_in_a_row(m: &mut Machine, seq: u32, n: u32, retry_after_ms: Option<u32>) -> Vec<u32> {
        let mut delays = Vec::new();
        for seq in seq..seq + n {
            let actions = m.handle(failed(seq, retry_after_ms), 0, 0.999_999);
            delays.extend(actions.iter().find_map(|a| match a {
                Schedule { delay_ms } => Some(*delay_ms),
                _ => None,
            }));
            assert_eq!(
                m.handle(Event::TimerFired, 0, 0.5),
                [Heartbeat { seq: seq + 1 }]
            );
        }
        delays
    }

    /// A started client whose first heartbeat was answered with `next_ms` and a window of
    /// `window_s`, and whose second heartbeat is out.
    fn answered(next_ms: u32, window_s: f64) -> Machine {
        let mut m = started();
        let ok = Event::BeatOk {
            seq: 1,
            next_heartbeat_ms: Some(f64::from(next_ms)),
            window_s: Some(window_s),
        };
        assert_eq!(m.handle(ok, 0, 0.5), [Schedule { delay_ms: next_ms }]);
        assert_eq!(
            m.handle(Event::TimerFired, u64::from(next_ms), 0.5),
            [Heartbeat { seq: 2 }]
        );
        m
    }

    #[test]
    fn backoff_is_capped_inside_the_default_window_before_any_answer() {
        let mut m = started();
        let delays = fail_in_a_row(&mut m, 1, 50, None);
        assert_eq!(delays.len(), 50);
        assert!(delays.iter().all(|d| *d < 45_000), "{delays:?}");
        assert!(delays[10..].iter().all(|d| *d > 44_000), "{delays:?}");
    }

    #[test]
    fn backoff_stays_inside_the_servers_window_so_a_long_outage_ends_within_one_window() {
        // Regression: the cap was five minutes whatever the window, so after a long outage
        // a client could wait minutes before rejoining a 60 s (or 6 s) window.
        let mut m = answered(500, 6.0);
        let delays = fail_in_a_row(&mut m, 2, 40, Some(1_000));
        assert!(
            delays.iter().all(|d| (1_000..5_500).contains(d)),
            "{delays:?}"
        );
        // The default window's answer: 45 s, never the old five minutes.
        let mut m = answered(15_000, 60.0);
        let delays = fail_in_a_row(&mut m, 2, 40, Some(5_000));
        assert!(delays.iter().all(|d| *d < 45_000), "{delays:?}");
        // A window longer than five minutes keeps the five-minute cap.
        let mut m = answered(60_000, 3_600.0);
        let delays = fail_in_a_row(&mut m, 2, 40, None);
        assert!(delays.iter().all(|d| *d < 300_000), "{delays:?}");
        assert!(delays.iter().any(|d| *d > 45_000), "{delays:?}");
    }

    #[test]
    fn retry_after_is_honoured_even_across_visibility_changes() {
        let mut m = started();
        assert_eq!(
            m.handle(failed(1, Some(30_000)), 1_000, 0.1),
            [Warn, Schedule { delay_ms: 30_000 }]
        );
        let _ = m.handle(HIDDEN, 2_000, 0.5);
        // Visible again inside the hold: wait out the rest instead of heartbeating at once.
        assert_eq!(
            m.handle(VISIBLE, 11_000, 0.5),
            [Schedule { delay_ms: 20_000 }]
        );
        assert_eq!(
            m.handle(Event::TimerFired, 31_000, 0.5),
            [Heartbeat { seq: 2 }]
        );
        assert_eq!(
            m.handle(ok(2, 5_000.0), 31_100, 0.5),
            [Schedule { delay_ms: 5_000 }]
        );
        let _ = m.handle(HIDDEN, 32_000, 0.5);
        assert_eq!(m.handle(VISIBLE, 33_000, 0.5), [Heartbeat { seq: 3 }]);
    }

    #[test]
    fn a_navigation_beats_at_once_when_active_and_beacons_idle_when_hidden() {
        let mut m = started();
        // While the first heartbeat is in flight: a new one replaces it (its outcome is stale).
        assert_eq!(
            m.handle(Event::Navigate, 1, 0.5),
            [CancelTimer, Heartbeat { seq: 2 }]
        );
        assert_eq!(m.handle(ok(1, 1_000.0), 2, 0.5), []);
        assert_eq!(
            m.handle(ok(2, 1_000.0), 3, 0.5),
            [Schedule { delay_ms: 1_000 }]
        );
        assert_eq!(
            m.handle(Event::Navigate, 4, 0.5),
            [CancelTimer, Heartbeat { seq: 3 }]
        );
        assert_eq!(m.handle(HIDDEN, 5, 0.5), [CancelTimer, BeaconIdle]);
        assert_eq!(m.handle(Event::Navigate, 6, 0.5), [BeaconIdle]);
        let _ = m.handle(Event::PageHide { persisted: true }, 7, 0.5);
        assert_eq!(m.handle(Event::Navigate, 8, 0.5), []);
    }

    #[test]
    fn a_navigation_during_a_failure_streak_waits_for_the_retry() {
        let mut m = started();
        let _ = m.handle(failed(1, Some(5_000)), 10, 0.5);
        assert_eq!(m.handle(Event::Navigate, 20, 0.5), []);
        let mut m = started();
        let _ = m.handle(failed(1, None), 10, 0.5);
        assert_eq!(m.handle(Event::Navigate, 20, 0.5), []);
        assert_eq!(m.handle(Event::TimerFired, 30, 0.5), [Heartbeat { seq: 2 }]);
    }

    #[test]
    fn stale_outcomes_are_ignored() {
        let mut m = started();
        let _ = m.handle(HIDDEN, 1, 0.5);
        assert_eq!(m.handle(VISIBLE, 2, 0.5), [Heartbeat { seq: 2 }]);
        assert_eq!(m.handle(ok(1, 1_000.0), 3, 0.5), []);
        assert_eq!(m.handle(failed(1, None), 3, 0.5), []);
        assert_eq!(m.in_flight(), Some(2));
        assert_eq!(
            m.handle(failed(2, None), 4, 0.5),
            [Warn, Schedule { delay_ms: 500 }]
        );
    }

    #[test]
    fn stop_leaves_once_and_ignores_everything_after() {
        let mut m = started();
        assert_eq!(
            m.handle(Event::Stop, 1, 0.5),
            [CancelTimer, AbortFetch, BeaconLeave, Detach]
        );
        assert_eq!(m.phase(), Phase::Stopped);
        for e in [
            VISIBLE,
            HIDDEN,
            Event::TimerFired,
            Event::Stop,
            Event::PageShow {
                persisted: true,
                visible: true,
            },
            ok(1, 1.0),
        ] {
            assert_eq!(m.handle(e, 2, 0.5), []);
        }
        // After pagehide the leave already went out.
        let mut m = started();
        let _ = m.handle(Event::PageHide { persisted: true }, 1, 0.5);
        assert_eq!(
            m.handle(Event::Stop, 2, 0.5),
            [CancelTimer, AbortFetch, Detach]
        );
        // Before start: nothing to leave.
        let mut m = Machine::new();
        assert_eq!(
            m.handle(Event::Stop, 0, 0.5),
            [CancelTimer, AbortFetch, Detach]
        );
    }
}
