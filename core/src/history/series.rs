//! A time series of maxima in fixed steps over a sliding span: the one shape of every
//! history the module keeps (an isolate's ring, the stored minute and five-minute series).
//!
//! A step holds the most people seen in it; a step never seen holds 0. Merging two series
//! takes the larger value of each step, so it is commutative, associative and idempotent:
//! the writer can fold in its own samples, a predecessor's stored series or a rival's
//! without double counting.

use serde::{Deserialize, Serialize};

/// Steps of `STEP` ms, the newest `CAP` of them, starting at `start` (a multiple of `STEP`).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct Series<const STEP: u64, const CAP: usize> {
    /// The start of the first step held, Unix ms.
    start: u64,
    /// People per step, oldest first.
    n: Vec<u64>,
}

impl<const STEP: u64, const CAP: usize> Series<STEP, CAP> {
    /// The start of the step holding `t`.
    pub(crate) const fn step_of(t: u64) -> u64 {
        t - t % STEP
    }

    /// Raises the step of `t` to at least `online`, sliding the span forward past old steps.
    /// A time older than the newest step by the whole span or more is ignored.
    pub(crate) fn put(&mut self, t: u64, online: u64) {
        let step = Self::step_of(t);
        if self.n.is_empty() {
            self.start = step;
        }
        if step < self.start {
            // Older than the first step held: kept if the span can reach back to it.
            let newest = self.start + (self.n.len() as u64 - 1) * STEP;
            if (newest - step) / STEP >= CAP as u64 {
                return;
            }
            let add = ((self.start - step) / STEP) as usize;
            self.n.splice(..0, std::iter::repeat_n(0, add));
            self.start = step;
        }
        let mut i = ((step - self.start) / STEP) as usize;
        if i >= CAP {
            let drop = i + 1 - CAP;
            if drop >= self.n.len() {
                self.n.clear();
                self.start = step;
                i = 0;
            } else {
                self.n.drain(..drop);
                self.start += drop as u64 * STEP;
                i = CAP - 1;
            }
        }
        if self.n.len() <= i {
            self.n.resize(i + 1, 0);
        }
        self.n[i] = self.n[i].max(online);
    }

    /// The most people in any step that starts in `[from, to)`.
    pub(crate) fn max_in(&self, from: u64, to: u64) -> u64 {
        self.points()
            .filter(|&(t, _)| t >= from && t < to)
            .map(|(_, n)| n)
            .max()
            .unwrap_or(0)
    }

    /// Every step held, as (step start, people).
    pub(crate) fn points(&self) -> impl Iterator<Item = (u64, u64)> + '_ {
        self.n
            .iter()
            .enumerate()
            .map(|(i, &n)| (self.start + i as u64 * STEP, n))
    }

    /// Folds `other` in, step by step (its steps of other lengths fall into this one's).
    pub(crate) fn merge<const S2: u64, const C2: usize>(&mut self, other: &Series<S2, C2>) {
        for (t, n) in other.points() {
            if n > 0 {
                self.put(t, n);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    type Min = Series<60_000, 3>;

    #[test]
    fn a_step_keeps_its_maximum_and_the_span_slides() {
        let mut s = Min::default();
        s.put(60_000, 2);
        s.put(61_000, 5);
        s.put(119_999, 3);
        assert_eq!(s.points().collect::<Vec<_>>(), vec![(60_000, 5)]);
        s.put(240_000, 1); // four steps on: the first slides out
        assert_eq!(s.max_in(0, 240_000), 0);
        assert_eq!(s.max_in(240_000, 300_000), 1);
        s.put(60_000, 9); // older than the span
        assert_eq!(s.max_in(0, u64::MAX), 1);
        let mut back = Min::default();
        back.put(120_000, 1);
        back.put(60_000, 2); // within the span: kept
        assert_eq!(
            back.points().collect::<Vec<_>>(),
            vec![(60_000, 2), (120_000, 1)]
        );
        s.put(10 * 60_000, 4); // far ahead: all old steps go
        assert_eq!(s.points().collect::<Vec<_>>(), vec![(600_000, 4)]);
    }

    #[test]
    fn merging_is_order_free_and_idempotent() {
        let mut a = Min::default();
        a.put(0, 1);
        a.put(60_000, 4);
        let mut b = Min::default();
        b.put(60_000, 2);
        b.put(120_000, 3);
        let mut ab = a.clone();
        ab.merge(&b);
        let mut ba = b.clone();
        ba.merge(&a);
        assert_eq!(ab, ba);
        let again = {
            let mut x = ab.clone();
            x.merge(&b);
            x
        };
        assert_eq!(again, ab);
        // Minutes fold into five-minute steps.
        let mut five = Series::<300_000, 4>::default();
        five.merge(&ab);
        assert_eq!(five.points().collect::<Vec<_>>(), vec![(0, 4)]);
    }
}
