//! The site's history as KV holds it: one key per site, `h:{site}`, written by one isolate
//! at a time (the key names it), holding minute steps for two hours, five-minute steps for
//! a week, the day's peak, the record and the alerts' states.

use serde::{Deserialize, Serialize};

use super::alerts::AlertState;
use super::series::Series;

/// One minute, the finest step.
pub const MINUTE_MS: u64 = 60_000;
/// Five minutes, the 24-hour chart's step and the stored week's.
pub const FIVE_MINUTES_MS: u64 = 5 * MINUTE_MS;
/// One hour, the week chart's step.
pub const HOUR_MS: u64 = 60 * MINUTE_MS;
/// One day (UTC days start at multiples of it).
pub const DAY_MS: u64 = 24 * HOUR_MS;

/// Minute steps kept: two hours, the hour chart plus the longest an unwritten part can be.
pub(crate) const MINUTE_STEPS: usize = 120;
/// Five-minute steps kept: a week and an hour, the week chart plus a partial hour.
pub(crate) const FIVE_STEPS: usize = 7 * 288 + 12;

/// An isolate's own samples, and the stored minute steps.
pub(crate) type Minutes = Series<MINUTE_MS, MINUTE_STEPS>;
/// The stored five-minute steps.
pub(crate) type Fives = Series<FIVE_MINUTES_MS, FIVE_STEPS>;

/// The history key's TTL: a week and a day, so that a site nobody visits for that long
/// leaves nothing behind (and costs nothing meanwhile).
pub const HISTORY_TTL_S: u64 = 8 * 24 * 3600;

/// The tag that starts every history key.
const HISTORY_TAG: &str = "h:";

/// The key of a site's history.
#[must_use]
pub fn history_key(site: &str) -> String {
    format!("{HISTORY_TAG}{site}")
}

/// A count with its time: the record, or the day's peak.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Mark {
    /// People online.
    pub online: u64,
    /// When, Unix ms.
    pub at: u64,
}

impl Mark {
    /// The higher of two marks; of two equal counts the earlier (a record is first set
    /// when it is first reached).
    #[must_use]
    pub fn best(a: Option<Mark>, b: Option<Mark>) -> Option<Mark> {
        match (a, b) {
            (Some(x), Some(y)) => Some(
                if (y.online, std::cmp::Reverse(y.at)) > (x.online, std::cmp::Reverse(x.at)) {
                    y
                } else {
                    x
                },
            ),
            (x, None) => x,
            (None, y) => y,
        }
    }

    /// The UTC day (days since the epoch) of the mark.
    #[must_use]
    pub const fn day(&self) -> u64 {
        self.at / DAY_MS
    }

    /// The better of two day peaks: a later day's replaces an earlier day's.
    #[must_use]
    pub fn best_of_day(a: Option<Mark>, b: Option<Mark>) -> Option<Mark> {
        match (a, b) {
            (Some(x), Some(y)) if x.day() != y.day() => Some(if y.day() > x.day() { y } else { x }),
            (x, y) => Self::best(x, y),
        }
    }
}

/// The value at [`history_key`].
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct Stored {
    /// The isolate that wrote it: the site's history writer until it goes stale.
    pub writer: String,
    /// When it was written, Unix ms.
    pub written_at: u64,
    /// Minute steps, the last two hours.
    pub minutes: Minutes,
    /// Five-minute steps, the last week.
    pub fives: Fives,
    /// The most people ever online, and when.
    pub record: Option<Mark>,
    /// The most people online on the UTC day of its `at`.
    pub peak: Option<Mark>,
    /// The alerts' states.
    #[serde(default)]
    pub alerts: Vec<AlertState>,
    /// The writer's location (`None`: unknown): isolates there take over first, since they
    /// see its writes without KV's lag between locations.
    #[serde(default)]
    pub location: Option<String>,
    /// `[UTC day, writes of the key that day]`: the daily budget as the writers count it
    /// ([`super::writer::HistoryConfig::day_cap`]).
    #[serde(default)]
    pub day_writes: [u64; 2],
}

impl Stored {
    /// Reads a stored value; `None` for anything that is not one (an older format is
    /// started afresh rather than failing the site).
    pub(crate) fn decode(bytes: &[u8]) -> Option<Self> {
        serde_json::from_slice(bytes).ok()
    }

    /// The bytes to store.
    pub(crate) fn encode(&self) -> Vec<u8> {
        serde_json::to_vec(self).unwrap_or_default()
    }

    /// Writes of the key counted on UTC day `day`.
    pub(crate) fn writes_on(&self, day: u64) -> u64 {
        if self.day_writes[0] == day {
            self.day_writes[1]
        } else {
            0
        }
    }

    /// Folds another copy in (a predecessor's or a rival writer's): steps by maximum,
    /// record and peak by [`Mark::best`]. Writer, time and alert states stay this one's.
    pub(crate) fn merge_samples(&mut self, other: &Stored) {
        self.minutes.merge(&other.minutes);
        self.fives.merge(&other.fives);
        self.record = Mark::best(self.record, other.record);
        self.peak = Mark::best_of_day(self.peak, other.peak);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn marks_keep_the_highest_and_first_and_peaks_their_day() {
        let a = Some(Mark { online: 5, at: 10 });
        let b = Some(Mark { online: 5, at: 20 });
        let c = Some(Mark { online: 6, at: 30 });
        assert_eq!(Mark::best(a, b), a);
        assert_eq!(Mark::best(b, a), a);
        assert_eq!(Mark::best(b, c), c);
        assert_eq!(Mark::best(None, b), b);
        let tomorrow = Some(Mark {
            online: 1,
            at: DAY_MS + 5,
        });
        assert_eq!(Mark::best_of_day(c, tomorrow), tomorrow);
        assert_eq!(Mark::best_of_day(tomorrow, c), tomorrow);
    }

    #[test]
    fn a_full_week_fits_comfortably_in_a_kv_value() {
        let mut s = Stored {
            writer: "w".repeat(36),
            ..Stored::default()
        };
        let t0 = 1_800_000_000_000;
        for i in 0..(FIVE_STEPS as u64 + 10) {
            s.fives.put(t0 + i * FIVE_MINUTES_MS, 100_000 + i);
        }
        for i in 0..(MINUTE_STEPS as u64) {
            s.minutes.put(t0 + i * MINUTE_MS, 100_000);
        }
        let bytes = s.encode();
        assert!(bytes.len() < 32 * 1024, "{} bytes", bytes.len());
        assert_eq!(Stored::decode(&bytes), Some(s));
        assert_eq!(Stored::decode(b"{\"nope\":1}"), None);
        assert_eq!(history_key("demo"), "h:demo");
    }
}
