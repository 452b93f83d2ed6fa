//! The client's timing arithmetic: heartbeat jitter, exponential backoff with full jitter,
//! and `Retry-After`.
//!
//! The backoff is capped below the presence window the server announced (see
//! [`backoff_cap_ms`]): however long an outage lasts, a client retries inside every window,
//! so once the store is back every live tab is counted again within one window.
//!
//! Everything here is pure: randomness comes in as a `unit` number in `[0, 1)` (the client
//! passes `Math.random()`, tests pass fixed values), so the bounds can be tested natively.

/// The heartbeat interval used when the server does not say (milliseconds).
pub(crate) const DEFAULT_INTERVAL_MS: u32 = 15_000;
/// The shortest heartbeat interval the client accepts from a server (milliseconds).
pub(crate) const MIN_INTERVAL_MS: u32 = 100;
/// The longest heartbeat interval the client accepts from a server (milliseconds).
pub(crate) const MAX_INTERVAL_MS: u32 = 3_600_000;
/// How far a heartbeat may move either way from the server's interval, in tenths (±10%).
pub(crate) const JITTER_TENTHS: u32 = 1;
/// The first retry's upper bound (milliseconds); it doubles with each failure in a row.
pub(crate) const BACKOFF_BASE_MS: u32 = 1_000;
/// The upper bound of any backoff delay (milliseconds): five minutes, for windows longer
/// than that; shorter windows cap it lower (see [`backoff_cap_ms`]).
pub(crate) const BACKOFF_CAP_MS: u32 = 300_000;
/// The presence window assumed before the server has announced one (milliseconds): the
/// shortest a deployment commonly sets (the API's default is 225 s), so that the backoff
/// stays inside any window until the first answer says which.
pub(crate) const DEFAULT_WINDOW_MS: u32 = 60_000;
/// The backoff cap before the server has announced a window: [`DEFAULT_WINDOW_MS`] less
/// [`DEFAULT_INTERVAL_MS`] (45 s).
pub(crate) const DEFAULT_BACKOFF_CAP_MS: u32 = DEFAULT_WINDOW_MS - DEFAULT_INTERVAL_MS;
/// The longest `Retry-After` the client honours (milliseconds): one hour.
pub(crate) const MAX_RETRY_AFTER_MS: u32 = 3_600_000;

/// Clamps a random number to `[0, 1]`; `NaN` counts as 0.
fn unit(u: f64) -> f64 {
    if u.is_nan() { 0.0 } else { u.clamp(0.0, 1.0) }
}

/// Converts a non-negative finite `f64` to `u32`, saturating.
#[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss)]
fn to_u32(x: f64) -> u32 {
    // `as` saturates and maps NaN to 0.
    x as u32
}

/// The server's heartbeat interval, defaulted and clamped to
/// [`MIN_INTERVAL_MS`]..=[`MAX_INTERVAL_MS`].
///
/// `None`, `NaN` and non-finite values give [`DEFAULT_INTERVAL_MS`].
#[must_use]
pub(crate) fn interval_ms(next_heartbeat_ms: Option<f64>) -> u32 {
    match next_heartbeat_ms {
        Some(ms) if ms.is_finite() => to_u32(ms).clamp(MIN_INTERVAL_MS, MAX_INTERVAL_MS),
        _ => DEFAULT_INTERVAL_MS,
    }
}

/// The delay before the next heartbeat: the server's interval (see [`interval_ms`]) moved
/// by up to ±10%, uniformly, by `u` in `[0, 1)`: `u = 0` gives 90%, `u → 1` gives 110%.
#[must_use]
pub(crate) fn heartbeat_delay_ms(next_heartbeat_ms: Option<f64>, u: f64) -> u32 {
    let base = f64::from(interval_ms(next_heartbeat_ms));
    let spread = base * f64::from(JITTER_TENTHS) / 10.0;
    to_u32(base - spread + 2.0 * spread * unit(u))
}

/// The backoff cap for the server's presence window (`window_s`, seconds) and heartbeat
/// interval (see [`interval_ms`]): the window less one interval, so that a retry always
/// lands inside the window, kept within [`BACKOFF_BASE_MS`]..=[`BACKOFF_CAP_MS`].
///
/// A missing, non-finite or non-positive window counts as [`DEFAULT_WINDOW_MS`].
#[must_use]
pub(crate) fn backoff_cap_ms(window_s: Option<f64>, next_heartbeat_ms: Option<f64>) -> u32 {
    let window_ms = match window_s {
        Some(s) if s.is_finite() && s > 0.0 => to_u32(s * 1000.0),
        _ => DEFAULT_WINDOW_MS,
    };
    window_ms
        .saturating_sub(interval_ms(next_heartbeat_ms))
        .clamp(BACKOFF_BASE_MS, BACKOFF_CAP_MS)
}

/// The exponential ceiling for a failure: `BACKOFF_BASE_MS · 2^attempt`, capped at
/// [`BACKOFF_CAP_MS`]. `attempt` counts from 0 (the first failure in a row).
#[must_use]
pub(crate) fn ceiling_ms(attempt: u32) -> u32 {
    if attempt >= 31 {
        return BACKOFF_CAP_MS;
    }
    BACKOFF_BASE_MS
        .saturating_mul(1 << attempt)
        .min(BACKOFF_CAP_MS)
}

/// Full jitter: a delay drawn uniformly by `u` from `[0, c)`, where `c` is
/// `ceiling_ms(attempt)` capped at `cap_ms` (see [`backoff_cap_ms`]).
#[must_use]
pub(crate) fn full_jitter_ms(attempt: u32, cap_ms: u32, u: f64) -> u32 {
    let ceiling = ceiling_ms(attempt).min(cap_ms);
    to_u32(f64::from(ceiling) * unit(u)).min(ceiling)
}

/// The delay before retrying after a failure: full jitter under `cap_ms`, but never sooner
/// than a `Retry-After` the server sent (itself capped at [`MAX_RETRY_AFTER_MS`]).
#[must_use]
pub(crate) fn retry_delay_ms(
    attempt: u32,
    cap_ms: u32,
    retry_after_ms: Option<u32>,
    u: f64,
) -> u32 {
    let jitter = full_jitter_ms(attempt, cap_ms, u);
    match retry_after_ms {
        Some(ra) => jitter.max(ra.min(MAX_RETRY_AFTER_MS)),
        None => jitter,
    }
}

/// Whether a response status carries a `Retry-After` the client honours (429 and 503).
#[must_use]
pub(crate) const fn honours_retry_after(status: u16) -> bool {
    matches!(status, 429 | 503)
}

/// The `Retry-After` to honour, in milliseconds (saturating): `seconds` from a 429 or 503
/// answer whose header held delay-seconds (the loader reads the header's digits; the
/// HTTP-date form, which the API never sends, arrives as `NaN`), else `None`.
#[must_use]
pub(crate) fn retry_after_ms(status: u16, seconds: f64) -> Option<u32> {
    (honours_retry_after(status) && seconds.is_finite() && seconds >= 0.0)
        .then(|| to_u32(seconds * 1000.0))
}

/// A failure streak: how many attempts in a row have failed, and the cap on their delays.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Backoff {
    failures: u32,
    cap_ms: u32,
}

impl Default for Backoff {
    fn default() -> Self {
        Self::new()
    }
}

impl Backoff {
    /// A fresh streak (no failures), capped at [`DEFAULT_BACKOFF_CAP_MS`].
    #[must_use]
    pub(crate) const fn new() -> Self {
        Self {
            failures: 0,
            cap_ms: DEFAULT_BACKOFF_CAP_MS,
        }
    }

    /// Failures in a row so far.
    #[must_use]
    pub(crate) const fn failures(&self) -> u32 {
        self.failures
    }

    /// The cap on the delays (see [`backoff_cap_ms`]; for tests).
    #[cfg(test)]
    #[must_use]
    pub(crate) const fn cap_ms(&self) -> u32 {
        self.cap_ms
    }

    /// Caps the delays for the server's window and interval (see [`backoff_cap_ms`]).
    pub(crate) fn set_window(&mut self, window_s: Option<f64>, next_heartbeat_ms: Option<f64>) {
        self.cap_ms = backoff_cap_ms(window_s, next_heartbeat_ms);
    }

    /// Records a failure and returns the delay before the next attempt (see
    /// [`retry_delay_ms`]); the first failure of a streak uses attempt 0.
    pub(crate) fn fail(&mut self, retry_after_ms: Option<u32>, u: f64) -> u32 {
        let attempt = self.failures;
        self.failures = self.failures.saturating_add(1);
        retry_delay_ms(attempt, self.cap_ms, retry_after_ms, u)
    }

    /// Records a success, ending any streak. Returns whether a streak was running.
    pub(crate) fn succeed(&mut self) -> bool {
        let was = self.failures > 0;
        self.failures = 0;
        was
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn heartbeat_jitter_stays_within_ten_percent() {
        assert_eq!(heartbeat_delay_ms(Some(10_000.0), 0.0), 9_000);
        assert_eq!(heartbeat_delay_ms(Some(10_000.0), 0.5), 10_000);
        assert_eq!(heartbeat_delay_ms(Some(10_000.0), 0.999_999), 10_999);
        for i in 0..=1000 {
            let d = heartbeat_delay_ms(Some(20_000.0), f64::from(i) / 1000.0);
            assert!((18_000..=22_000).contains(&d), "{d}");
        }
    }

    #[test]
    fn heartbeat_interval_is_defaulted_and_clamped() {
        assert_eq!(interval_ms(None), DEFAULT_INTERVAL_MS);
        assert_eq!(interval_ms(Some(f64::NAN)), DEFAULT_INTERVAL_MS);
        assert_eq!(interval_ms(Some(f64::INFINITY)), DEFAULT_INTERVAL_MS);
        assert_eq!(interval_ms(Some(0.0)), MIN_INTERVAL_MS);
        assert_eq!(interval_ms(Some(-5.0)), MIN_INTERVAL_MS);
        assert_eq!(interval_ms(Some(1e12)), MAX_INTERVAL_MS);
        assert_eq!(interval_ms(Some(1234.7)), 1234);
    }

    #[test]
    fn out_of_range_randoms_are_clamped() {
        assert_eq!(heartbeat_delay_ms(Some(1000.0), -1.0), 900);
        assert_eq!(heartbeat_delay_ms(Some(1000.0), 7.0), 1100);
        assert_eq!(heartbeat_delay_ms(Some(1000.0), f64::NAN), 900);
        assert_eq!(full_jitter_ms(3, BACKOFF_CAP_MS, f64::NAN), 0);
        assert_eq!(full_jitter_ms(0, BACKOFF_CAP_MS, 2.0), BACKOFF_BASE_MS);
        assert_eq!(full_jitter_ms(5, 3_000, 2.0), 3_000);
    }

    #[test]
    fn ceiling_doubles_then_caps_at_five_minutes() {
        assert_eq!(ceiling_ms(0), 1_000);
        assert_eq!(ceiling_ms(1), 2_000);
        assert_eq!(ceiling_ms(5), 32_000);
        assert_eq!(ceiling_ms(8), 256_000);
        assert_eq!(ceiling_ms(9), BACKOFF_CAP_MS);
        assert_eq!(ceiling_ms(30), BACKOFF_CAP_MS);
        assert_eq!(ceiling_ms(u32::MAX), BACKOFF_CAP_MS);
    }

    #[test]
    fn full_jitter_spans_zero_to_ceiling() {
        assert_eq!(full_jitter_ms(2, BACKOFF_CAP_MS, 0.0), 0);
        assert_eq!(full_jitter_ms(2, BACKOFF_CAP_MS, 0.5), 2_000);
        assert!(full_jitter_ms(2, BACKOFF_CAP_MS, 0.999_999) < 4_000);
        for attempt in 0..40 {
            for i in 0..100 {
                let d = full_jitter_ms(attempt, BACKOFF_CAP_MS, f64::from(i) / 100.0);
                assert!(d < ceiling_ms(attempt).max(1), "{attempt} {i} {d}");
            }
        }
    }

    #[test]
    fn full_jitter_stays_under_the_cap() {
        assert_eq!(full_jitter_ms(10, 5_500, 0.5), 2_750);
        assert_eq!(
            full_jitter_ms(1, 5_500, 0.5),
            1_000,
            "below the cap: unchanged"
        );
        for attempt in 0..40 {
            for i in 0..100 {
                let d = full_jitter_ms(attempt, 5_500, f64::from(i) / 100.0);
                assert!(d < 5_500, "{attempt} {i} {d}");
            }
        }
    }

    #[test]
    fn retry_after_is_a_floor_and_is_capped() {
        let cap = BACKOFF_CAP_MS;
        assert_eq!(retry_delay_ms(0, cap, Some(5_000), 0.0), 5_000);
        assert_eq!(retry_delay_ms(0, cap, Some(5_000), 0.99), 5_000);
        assert_eq!(retry_delay_ms(10, cap, Some(5_000), 0.5), 150_000);
        assert_eq!(
            retry_delay_ms(0, cap, Some(u32::MAX), 0.0),
            MAX_RETRY_AFTER_MS
        );
        assert_eq!(retry_delay_ms(1, cap, None, 0.25), 500);
        // The window's cap bounds the jitter, not a Retry-After (a rate limit stays one).
        assert_eq!(retry_delay_ms(10, 5_500, Some(1_000), 0.999), 5_494);
        assert_eq!(retry_delay_ms(10, 5_500, Some(30_000), 0.999), 30_000);
    }

    #[test]
    fn the_cap_keeps_retries_inside_the_window() {
        assert_eq!(backoff_cap_ms(Some(60.0), Some(15_000.0)), 45_000);
        assert_eq!(backoff_cap_ms(None, None), DEFAULT_BACKOFF_CAP_MS);
        assert_eq!(backoff_cap_ms(Some(6.0), Some(500.0)), 5_500);
        assert_eq!(backoff_cap_ms(Some(4.0), Some(1_000.0)), 3_000);
        // Long windows keep the five-minute cap; silly ones are defaulted or clamped.
        assert_eq!(
            backoff_cap_ms(Some(3_600.0), Some(15_000.0)),
            BACKOFF_CAP_MS
        );
        assert_eq!(backoff_cap_ms(Some(f64::NAN), None), DEFAULT_BACKOFF_CAP_MS);
        assert_eq!(backoff_cap_ms(Some(-1.0), None), DEFAULT_BACKOFF_CAP_MS);
        assert_eq!(backoff_cap_ms(Some(1.0), Some(250.0)), BACKOFF_BASE_MS);
        assert_eq!(backoff_cap_ms(Some(1.0), None), BACKOFF_BASE_MS);
    }

    #[test]
    fn retry_after_counts_on_429_and_503_only() {
        assert_eq!(retry_after_ms(503, 0.0), Some(0));
        assert_eq!(retry_after_ms(429, 7.0), Some(7_000));
        assert_eq!(retry_after_ms(503, 1e23), Some(u32::MAX));
        assert_eq!(retry_after_ms(503, f64::NAN), None);
        assert_eq!(retry_after_ms(503, -1.0), None);
        assert_eq!(retry_after_ms(503, f64::INFINITY), None);
        assert_eq!(retry_after_ms(500, 7.0), None);
        assert_eq!(retry_after_ms(200, 7.0), None);
        assert!(honours_retry_after(429));
        assert!(honours_retry_after(503));
        assert!(!honours_retry_after(500));
        assert!(!honours_retry_after(200));
    }

    #[test]
    fn streak_grows_and_resets() {
        let mut b = Backoff::new();
        assert!(!b.succeed());
        assert_eq!(b.fail(None, 0.5), 500);
        assert_eq!(b.fail(None, 0.5), 1_000);
        assert_eq!(b.fail(None, 0.5), 2_000);
        assert_eq!(b.failures(), 3);
        assert!(b.succeed());
        assert_eq!(b.failures(), 0);
        assert_eq!(b.fail(None, 0.5), 500);
        for _ in 0..100 {
            assert!(b.fail(None, 0.999) < DEFAULT_BACKOFF_CAP_MS);
        }
        b.set_window(Some(6.0), Some(500.0));
        assert_eq!(b.cap_ms(), 5_500);
        for _ in 0..100 {
            assert!(b.fail(None, 0.999_999) < 5_500);
        }
    }
}
