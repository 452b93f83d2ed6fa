//! The wasm's exports: the lifecycle machine over numbers only, so that the JavaScript
//! client calls it with a plain `WebAssembly.instantiate(bytes, {})` and no binding glue.
//!
//! The contract, for `client/js/client.js` (its one caller):
//! 1. `hn_new()` gives a machine id (one per running client; a stopped machine's slot is
//!    reused).
//! 2. `hn_event(id, kind, a, b, c, now_ms, u)` feeds one [`Event`] (its `kind` code and
//!    fields as [`decode_event`] reads them) at `now_ms` with a random `u` in `[0, 1)`, and
//!    returns how many actions came out.
//! 3. `hn_action(i)` gives the `i`-th of them, `code + 16 · value` ([`encode_action`]),
//!    until the next `hn_event`.
//! 4. `hn_in_flight(id)` gives the heartbeat `seq` the machine waits for, or `-1`: an
//!    outcome for any other `seq` is stale.
//!
//! Numbers cross as `f64` (JavaScript's number) or `u32`; an absent option is `NaN`.

// `#[no_mangle]` is how a wasm without binding glue names its exports; nothing else in the
// crate is unsafe (the workspace forbids it, the client's own lints deny it outside here).
#![allow(unsafe_code)]

use std::cell::RefCell;

use crate::machine::backoff::retry_after_ms;
use crate::machine::{Action, Event, Machine};

thread_local! {
    /// The running clients' machines, by id.
    static MACHINES: RefCell<Vec<Machine>> = const { RefCell::new(Vec::new()) };
    /// The actions of the last `hn_event`.
    static OUT: RefCell<Vec<Action>> = const { RefCell::new(Vec::new()) };
}

/// `Some(x)` for a finite `x`, `None` for `NaN` (absent) and infinities.
fn finite(x: f64) -> Option<f64> {
    x.is_finite().then_some(x)
}

/// `x` as a `u32`, saturating (`NaN` gives 0).
#[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss)]
fn to_u32(x: f64) -> u32 {
    x as u32
}

/// Reads an event from its wire form: `kind` and up to three numbers (a flag is non-zero
/// for true). `None` for an unknown kind.
///
/// | kind | event | a | b | c |
/// |---|---|---|---|---|
/// | 0 | `Start` | visible | | |
/// | 1 | `Visibility` | visible | | |
/// | 2 | `PageHide` | persisted | | |
/// | 3 | `PageShow` | persisted | visible | |
/// | 4 | `Freeze` | | | |
/// | 5 | `Resume` | visible | | |
/// | 6 | `TimerFired` | | | |
/// | 7 | `BeatOk` | seq | `next_heartbeat_ms` | `window_s` |
/// | 8 | `BeatFailed` | seq | HTTP status (0: none) | `Retry-After` seconds |
/// | 9 | `Navigate` | | | |
/// | 10 | `Stop` | | | |
#[must_use]
pub(crate) fn decode_event(kind: u32, a: f64, b: f64, c: f64) -> Option<Event> {
    let flag = |x: f64| x != 0.0 && !x.is_nan();
    Some(match kind {
        0 => Event::Start { visible: flag(a) },
        1 => Event::Visibility { visible: flag(a) },
        2 => Event::PageHide { persisted: flag(a) },
        3 => Event::PageShow {
            persisted: flag(a),
            visible: flag(b),
        },
        4 => Event::Freeze,
        5 => Event::Resume { visible: flag(a) },
        6 => Event::TimerFired,
        7 => Event::BeatOk {
            seq: to_u32(a),
            next_heartbeat_ms: finite(b),
            window_s: finite(c),
        },
        8 => Event::BeatFailed {
            seq: to_u32(a),
            retry_after_ms: retry_after_ms(u16::try_from(to_u32(b)).unwrap_or(0), c),
        },
        9 => Event::Navigate,
        10 => Event::Stop,
        _ => return None,
    })
}

/// An action as one number: `code + 16 · value`, exact in an `f64`.
///
/// | code | action | value |
/// |---|---|---|
/// | 0 | `Heartbeat` | seq |
/// | 1 | `BeaconIdle` | |
/// | 2 | `BeaconLeave` | |
/// | 3 | `Schedule` | delay in ms |
/// | 4 | `CancelTimer` | |
/// | 5 | `AbortFetch` | |
/// | 6 | `Warn` | |
/// | 7 | `Detach` | |
#[must_use]
pub(crate) fn encode_action(action: Action) -> f64 {
    let (code, value) = match action {
        Action::Heartbeat { seq } => (0, seq),
        Action::BeaconIdle => (1, 0),
        Action::BeaconLeave => (2, 0),
        Action::Schedule { delay_ms } => (3, delay_ms),
        Action::CancelTimer => (4, 0),
        Action::AbortFetch => (5, 0),
        Action::Warn => (6, 0),
        Action::Detach => (7, 0),
    };
    f64::from(code) + 16.0 * f64::from(value)
}

/// A new machine; returns its id.
#[unsafe(no_mangle)]
pub extern "C" fn hn_new() -> u32 {
    MACHINES.with_borrow_mut(|machines| {
        let id = match machines.iter().position(Machine::is_stopped) {
            Some(free) => {
                machines[free] = Machine::new();
                free
            }
            None => {
                machines.push(Machine::new());
                machines.len() - 1
            }
        };
        u32::try_from(id).unwrap_or(u32::MAX)
    })
}

/// Feeds event `kind` (fields `a`, `b`, `c`; see [`decode_event`]) to machine `id` at
/// `now_ms` with the random `u`; returns how many actions [`hn_action`] now holds (0 for
/// an unknown id or kind).
#[unsafe(no_mangle)]
pub extern "C" fn hn_event(id: u32, kind: u32, a: f64, b: f64, c: f64, now_ms: f64, u: f64) -> u32 {
    let actions = decode_event(kind, a, b, c).and_then(|event| {
        MACHINES.with_borrow_mut(|machines| {
            let machine = machines.get_mut(usize::try_from(id).ok()?)?;
            // `as` saturates; Date.now() is a positive whole number.
            #[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss)]
            Some(machine.handle(event, now_ms as u64, u))
        })
    });
    OUT.with_borrow_mut(|out| {
        *out = actions.unwrap_or_default();
        u32::try_from(out.len()).unwrap_or(0)
    })
}

/// The `i`-th action of the last [`hn_event`] (see [`encode_action`]), or `-1`.
#[unsafe(no_mangle)]
pub extern "C" fn hn_action(i: u32) -> f64 {
    OUT.with_borrow(|out| {
        usize::try_from(i)
            .ok()
            .and_then(|i| out.get(i))
            .map_or(-1.0, |&a| encode_action(a))
    })
}

/// The heartbeat machine `id` waits for, or `-1`.
#[unsafe(no_mangle)]
pub extern "C" fn hn_in_flight(id: u32) -> f64 {
    MACHINES.with_borrow(|machines| {
        usize::try_from(id)
            .ok()
            .and_then(|id| machines.get(id)?.in_flight())
            .map_or(-1.0, f64::from)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const NAN: f64 = f64::NAN;

    fn actions(n: u32) -> Vec<f64> {
        (0..n).map(|i| hn_action(i)).collect()
    }

    #[test]
    fn a_client_through_the_exports() {
        let id = hn_new();
        assert_eq!(hn_in_flight(id), -1.0);
        // Start visible: heartbeat 1.
        assert_eq!(actions(hn_event(id, 0, 1.0, NAN, NAN, 0.0, 0.5)), [16.0]);
        assert_eq!(hn_in_flight(id), 1.0);
        // Its answer: the next one at 10 s ± 10% (u = 0 gives 9 s).
        let n = hn_event(id, 7, 1.0, 10_000.0, 60.0, 5.0, 0.0);
        assert_eq!(actions(n), [3.0 + 16.0 * 9_000.0]);
        assert_eq!(hn_in_flight(id), -1.0);
        assert_eq!(hn_action(n), -1.0);
        // Timer: heartbeat 2, which fails with a 503 and Retry-After: 7.
        assert_eq!(
            actions(hn_event(id, 6, NAN, NAN, NAN, 9_005.0, 0.5)),
            [32.0]
        );
        let n = hn_event(id, 8, 2.0, 503.0, 7.0, 9_010.0, 0.0);
        assert_eq!(actions(n), [6.0, 3.0 + 16.0 * 7_000.0]);
        // Stop: cancel, abort, leave, detach; the slot is reused by the next client.
        let n = hn_event(id, 10, NAN, NAN, NAN, 9_020.0, 0.5);
        assert_eq!(actions(n), [4.0, 5.0, 2.0, 7.0]);
        assert_eq!(hn_new(), id);
        // Unknown ids and kinds do nothing.
        assert_eq!(hn_event(u32::MAX, 0, 1.0, NAN, NAN, 0.0, 0.5), 0);
        assert_eq!(hn_event(id, 99, 1.0, NAN, NAN, 0.0, 0.5), 0);
        assert_eq!(hn_in_flight(u32::MAX), -1.0);
    }

    #[test]
    fn events_decode_from_their_numbers() {
        assert_eq!(
            decode_event(3, 1.0, 0.0, NAN),
            Some(Event::PageShow {
                persisted: true,
                visible: false
            })
        );
        assert_eq!(
            decode_event(1, NAN, NAN, NAN),
            Some(Event::Visibility { visible: false })
        );
        assert_eq!(
            decode_event(7, 4.0, NAN, f64::INFINITY),
            Some(Event::BeatOk {
                seq: 4,
                next_heartbeat_ms: None,
                window_s: None
            })
        );
        // A Retry-After counts on 429 and 503 only.
        for (status, want) in [(429.0, Some(2_000)), (503.0, Some(2_000)), (500.0, None)] {
            assert_eq!(
                decode_event(8, 5.0, status, 2.0),
                Some(Event::BeatFailed {
                    seq: 5,
                    retry_after_ms: want
                })
            );
        }
        assert_eq!(decode_event(11, 0.0, 0.0, 0.0), None);
    }

    #[test]
    fn actions_encode_exactly() {
        assert_eq!(
            encode_action(Action::Schedule { delay_ms: u32::MAX }),
            3.0 + 16.0 * f64::from(u32::MAX)
        );
        assert_eq!(encode_action(Action::Heartbeat { seq: 7 }), 112.0);
        assert_eq!(encode_action(Action::Detach), 7.0);
    }
}
