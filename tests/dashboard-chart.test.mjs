// The dashboard chart's series (www/dashboard-chart.js) in Node: a /v1/history answer in,
// live counts folded into its steps as the server folds them (maxima), the range kept to
// its number of steps, today's peak and the record. The drawing is tested in Chromium
// (tests/history-browser.test.mjs).
import { test } from "node:test";
import assert from "node:assert/strict";
import { RANGES, Series } from "../www/dashboard-chart.js";

const FIVE = 5 * 60_000;
const DAY = 24 * 60 * 60_000;
const T0 = 1_764_590_400_000; // 2025-12-01 12:00 UTC, a multiple of five minutes

function answer(range, last, values, extra = {}) {
  const step = RANGES[range].step;
  return {
    site: "demo", range, step_s: step / 1000,
    points: values.map((n, i) => [last - (values.length - 1 - i) * step, n]),
    peak: null, record: null, ...extra,
  };
}

test("an answer is taken as is; a live count raises its step, never lowers it", () => {
  const s = new Series("24h");
  s.load(answer("24h", T0, [1, 4, 2]), []);
  assert.deepEqual(s.points, [[T0 - 2 * FIVE, 1], [T0 - FIVE, 4], [T0, 2]]);
  s.add(T0 + 1000, 3);
  s.add(T0 + 2000, 1);
  assert.deepEqual(s.points.at(-1), [T0, 3], "the step holds the most seen in it");
  s.add(T0 - FIVE + 5, 9);
  assert.deepEqual(s.points[1], [T0 - FIVE, 9], "a late count folds into its own step");
  assert.equal(s.points.length, 3);
});

test("a new step is appended, steps nobody was counted in are 0, and the range keeps its length", () => {
  const s = new Series("1h");
  s.load(answer("1h", T0, new Array(60).fill(5)), []);
  s.add(T0 + 3 * 60_000 + 10, 7);
  assert.equal(s.points.length, 60);
  assert.deepEqual(s.points.slice(-3), [[T0 + 60_000, 0], [T0 + 120_000, 0], [T0 + 180_000, 7]]);
  assert.equal(s.points[0][0], T0 - 56 * 60_000, "the oldest steps slid out");
  // A long absence: at most one range of zeros, never a loop over the whole gap.
  s.add(T0 + 30 * DAY, 1);
  assert.equal(s.points.length, 60);
  assert.deepEqual(s.points.at(-1), [T0 + 30 * DAY, 1]);
  assert.ok(s.points.slice(0, -1).every((p) => p[1] === 0));
});

test("live counts kept across a reload of the answer fold in again, idempotently", () => {
  const s = new Series("24h");
  const live = [[T0 + 500, 6], [T0 + 900, 2]];
  s.load(answer("24h", T0, [1, 1]), live);
  s.load(answer("24h", T0, [1, 1]), live);
  assert.deepEqual(s.points, [[T0 - FIVE, 1], [T0, 6]]);
});

test("today's peak is replaced by a higher count or by a later day's first; the record only rises", () => {
  const s = new Series("7d");
  s.load(answer("7d", T0 - (T0 % RANGES["7d"].step), [3], {
    peak: { online: 10, at: T0 - 1000 }, record: { online: 50, at: T0 - 3 * DAY },
  }), []);
  s.add(T0, 8);
  assert.deepEqual(s.peak, { online: 10, at: T0 - 1000 });
  s.add(T0 + 10, 11);
  assert.deepEqual(s.peak, { online: 11, at: T0 + 10 });
  const tomorrow = T0 - (T0 % DAY) + DAY + 5;
  s.add(tomorrow, 2);
  assert.deepEqual(s.peak, { online: 2, at: tomorrow }, "a new UTC day starts its own peak");
  assert.deepEqual(s.record, { online: 50, at: T0 - 3 * DAY });
  s.add(tomorrow + 1, 51);
  assert.deepEqual(s.record, { online: 51, at: tomorrow + 1 });
  s.add(tomorrow + 2, 50);
  assert.deepEqual(s.record, { online: 51, at: tomorrow + 1 }, "an equal or lower count keeps the first");
});

test("a refused or broken answer leaves an empty series that live counts fill", () => {
  const s = new Series("24h");
  s.load({ points: "nope", peak: { online: "x" } }, []);
  assert.deepEqual(s.points, []);
  assert.equal(s.peak, null);
  s.add(T0 + 3, 0);
  assert.deepEqual([s.peak, s.record], [null, null], "nobody online makes no peak and no record");
  s.add(T0 + 7, 1);
  assert.deepEqual(s.points, [[T0, 1]]);
  assert.deepEqual(s.peak, { online: 1, at: T0 + 7 });
  assert.equal(s.now, T0 + 7, "the chart ends at the server's time");
});
