// The dashboard's history chart: a series from GET /v1/history (steps of maxima, the day's
// peak, the record), live counts folded into it, and its SVG with axes, the peak marked and
// a readout of the step under the pointer (or the keyboard's arrows). Dependency-free and
// CSP-clean: no inline style, only classes from style.css and SVG presentation attributes.

const SVG_NS = "http://www.w3.org/2000/svg";
const MINUTE = 60_000;
const HOUR = 60 * MINUTE;
const DAY = 24 * HOUR;

/** The ranges /v1/history answers, as it answers them: step and number of steps. */
export const RANGES = {
  "1h": { step: MINUTE, steps: 60, label: "last hour", tick: 10 * MINUTE, narrowTick: 15 * MINUTE },
  "24h": { step: 5 * MINUTE, steps: 288, label: "last 24 hours", tick: 3 * HOUR, narrowTick: 6 * HOUR },
  "7d": { step: HOUR, steps: 168, label: "last 7 days", tick: DAY, narrowTick: 2 * DAY },
};

/** Live counts a dashboard keeps to fold into a fresh answer (a range switch, a refetch). */
export const LIVE_KEPT = 500;

const fmt = (n) => Number(n).toLocaleString();
const hhmm = (t) => new Date(t).toLocaleTimeString([], { hour: "2-digit", minute: "2-digit" });
const dayLabel = (t) => new Date(t).toLocaleDateString([], { weekday: "short", day: "numeric" });
const dayTime = (t) => new Date(t).toLocaleString([], { weekday: "short", day: "numeric", month: "short", hour: "2-digit", minute: "2-digit" });
/** "12 Mar 2026" in the visitor's locale order. */
export const longDate = (t) => new Date(t).toLocaleDateString([], { day: "numeric", month: "short", year: "numeric" });

const isMark = (m) => Number.isFinite(m?.online) && Number.isFinite(m?.at);
const better = (a, b) => (!isMark(a) ? b : !isMark(b) ? a : b.online > a.online ? b : a);

/**
 * One range's series: `points` are `[step start (Unix ms, server time), most people online
 * in the step]`, oldest first; `peak` today's (UTC) best mark, `record` the best ever.
 */
export class Series {
  /** An empty series of `range` (before the first answer, or when history is refused). */
  constructor(range) {
    this.range = range;
    this.step = RANGES[range].step;
    this.steps = RANGES[range].steps;
    this.points = [];
    this.peak = null;
    this.record = null;
    /** The server's time of the newest answer or count (this clock's until one arrives):
     * the chart ends at its step. */
    this.now = Date.now();
    this.serverTime = false;
  }

  /** Moves the chart's end to server time `t` (the first one replaces this clock's). */
  seen(t) {
    this.now = this.serverTime ? Math.max(this.now, t) : t;
    this.serverTime = true;
  }

  /** Takes a /v1/history answer `h` (for this range), then folds the `live` counts
   * (`[server ms, online]`) in again: steps are maxima, so folding twice changes nothing. */
  load(h, live) {
    const pts = Array.isArray(h?.points) ? h.points : [];
    this.points = pts.filter((p) => Array.isArray(p) && Number.isFinite(p[0]) && Number.isFinite(p[1])).map((p) => [p[0], p[1]]);
    if (Number.isFinite(h?.step_s) && h.step_s > 0) this.step = h.step_s * 1000;
    this.peak = isMark(h?.peak) ? { ...h.peak } : null;
    this.record = isMark(h?.record) ? { ...h.record } : null;
    const last = this.points.at(-1);
    if (last) this.seen(last[0]);
    for (const [t, n] of live) this.add(t, n);
  }

  /** Folds a live count (`online` at server time `t`) into its step, the peak and the record. */
  add(t, online) {
    if (!Number.isFinite(t) || !Number.isFinite(online)) return;
    const at = t - (t % this.step);
    const last = this.points.at(-1);
    if (!last || at > last[0]) {
      // Steps nobody was counted in are 0, as the server answers them; at most one range of them.
      if (last) {
        const gap = Math.min((at - last[0]) / this.step - 1, this.steps);
        for (let i = 1; i <= gap; i++) this.points.push([at - (gap - i + 1) * this.step, 0]);
      }
      this.points.push([at, online]);
      if (this.points.length > this.steps) this.points.splice(0, this.points.length - this.steps);
    } else {
      const p = this.points.find((q) => q[0] === at);
      if (p) p[1] = Math.max(p[1], online);
    }
    this.seen(t);
    // As the server: nobody online makes no mark; the peak is today's (UTC), so a count of a
    // later day replaces it.
    if (online <= 0) return;
    const today = Math.floor(t / DAY);
    if (!isMark(this.peak) || Math.floor(this.peak.at / DAY) < today || online > this.peak.online) this.peak = { online, at: t };
    this.record = better(this.record, { online, at: t });
  }
}

function svg(tag, attrs = {}, text) {
  const el = document.createElementNS(SVG_NS, tag);
  for (const [k, v] of Object.entries(attrs)) el.setAttribute(k, String(v));
  if (text !== undefined) el.textContent = text;
  return el;
}

/** A step of 1, 2 or 5 × 10^k at least `raw`. */
function niceStep(raw) {
  const p = 10 ** Math.floor(Math.log10(Math.max(raw, 1)));
  for (const m of [1, 2, 5, 10]) if (m * p >= raw) return m * p;
  return 10 * p;
}

/** What a step is called in the readout: its time (or span) and its count. */
function stepText(series, [t, n]) {
  const span = series.step >= HOUR ? `${dayTime(t)}–${hhmm(t + series.step)}`
    : series.step > MINUTE ? `${hhmm(t)}–${hhmm(t + series.step)}` : hhmm(t);
  return `${span}: ${fmt(n)} online`;
}

/**
 * The chart of one series in `box`, redrawn whole on every change; `hover` the index of the
 * point to read out (or -1) into `readout`; `liveCount` the live counts folded in. Returns the geometry `pointAt(clientX)` needs.
 */
export function drawChart(box, series, { site, hover = -1, readout, liveCount = 0 }) {
  const width = Math.max(280, Math.round(box.clientWidth || 640));
  const narrow = width < 520;
  const height = narrow ? 200 : 260;
  const m = { l: 44, r: 48, t: 22, b: 30 };
  const { step, steps } = series;
  const info = RANGES[series.range];
  const end = series.now - (series.now % step) + step;
  const x0 = end - steps * step;
  const pts = series.points.filter((p) => p[0] >= x0);
  const high = pts.reduce((a, p) => Math.max(a, p[1]), 0);
  const peak = isMark(series.peak) && series.peak.at >= x0 && series.peak.at < end ? series.peak : null;
  const top = Math.max(high, peak?.online ?? 0);
  const yStep = niceStep(Math.max(4, top) / 4);
  const yMax = Math.max(4, Math.ceil(top / yStep) * yStep);
  const x = (t) => m.l + ((t - x0) / (end - x0)) * (width - m.l - m.r);
  const xMid = (t) => x(t + step / 2);
  const y = (v) => m.t + (1 - v / yMax) * (height - m.t - m.b);

  const root = svg("svg", {
    viewBox: `0 0 ${width} ${height}`, width, height, role: "img", focusable: "false",
    "aria-labelledby": "chart-svg-title chart-svg-desc", "data-points": pts.length, "data-range": series.range,
    "data-live": liveCount,
  });
  root.append(svg("title", { id: "chart-svg-title" }, `People online on ${site}, ${info.label}`));
  const desc = svg("desc", { id: "chart-svg-desc" });
  root.append(desc);

  // The count axis: a grid line and label per nice step.
  for (let v = 0; v <= yMax; v += yStep) {
    root.append(svg("line", { class: "grid", x1: m.l, x2: width - m.r, y1: y(v), y2: y(v) }));
    root.append(svg("text", { class: "axis-label y-label", x: m.l - 8, y: y(v) + 4, "text-anchor": "end" }, fmt(v)));
  }
  // The time axis, ticks on the visitor's clock (whole hours, whole days).
  const every = narrow ? info.narrowTick : info.tick;
  const offset = new Date(end).getTimezoneOffset() * MINUTE;
  for (let t = Math.ceil((x0 - offset) / every) * every + offset; t <= end; t += every) {
    root.append(svg("line", { class: "grid", x1: x(t), x2: x(t), y1: m.t, y2: height - m.b, "stroke-dasharray": "2 4" }));
    root.append(svg("text", { class: "axis-label x-label", x: x(t), y: height - m.b + 18, "text-anchor": "middle" },
      every >= DAY ? dayLabel(t) : hhmm(t)));
  }

  let summary;
  if (pts.length === 0) {
    root.append(svg("text", { class: "empty", x: (m.l + width - m.r) / 2, y: height / 2, "text-anchor": "middle" }, "No history yet"));
    summary = "No history yet.";
  } else {
    const line = pts.map((p, i) => `${i ? "L" : "M"}${xMid(p[0]).toFixed(1)} ${y(p[1]).toFixed(1)}`).join(" ");
    const base = y(0).toFixed(1);
    const area = `${line} L${xMid(pts.at(-1)[0]).toFixed(1)} ${base} L${xMid(pts[0][0]).toFixed(1)} ${base} Z`;
    root.append(svg("path", { class: "area", d: area }));
    root.append(svg("path", { class: "line", d: line }));
    if (peak) {
      const g = svg("g", { class: "peak-mark", "data-online": peak.online, "data-at": peak.at });
      const px = xMid(peak.at - (peak.at % step));
      g.append(svg("line", { class: "peak-line", x1: px, x2: px, y1: y(peak.online), y2: y(0) }));
      g.append(svg("circle", { class: "peak", cx: px, cy: y(peak.online), r: 5 }));
      const right = px > width - m.r - 90;
      g.append(svg("text", { class: "peak-label", x: px + (right ? -8 : 8), y: y(peak.online) - 8, "text-anchor": right ? "end" : "start" },
        `peak ${fmt(peak.online)} at ${hhmm(peak.at)}`));
      root.append(g);
    }
    const lp = pts.at(-1);
    root.append(svg("circle", { class: "last", cx: xMid(lp[0]), cy: y(lp[1]), r: 4.5 }));
    root.append(svg("text", { class: "last-label", x: xMid(lp[0]) + 8, y: y(lp[1]) + 4 }, fmt(lp[1])));
    if (hover >= 0 && hover < pts.length) {
      const hp = pts[hover];
      root.append(svg("line", { class: "hover-line", x1: xMid(hp[0]), x2: xMid(hp[0]), y1: m.t, y2: height - m.b }));
      root.append(svg("circle", { class: "hover-dot", cx: xMid(hp[0]), cy: y(hp[1]), r: 4 }));
    }
    summary = `Now ${fmt(lp[1])}, highest ${fmt(high)} in the ${info.label}` +
      (isMark(series.peak) ? `; peak today ${fmt(series.peak.online)} at ${hhmm(series.peak.at)}` : "") + ".";
  }
  desc.textContent = summary;
  box.replaceChildren(root);
  if (readout) {
    // Set only on a change: the readout is a live region, redrawn with every count.
    const text = hover >= 0 && hover < pts.length ? stepText(series, pts[hover]) : "Point at the chart (or focus it and use ← →) to read a value.";
    if (readout.textContent !== text) readout.textContent = text;
  }
  return {
    summary,
    count: pts.length,
    /** The index of the point nearest `clientX`, or -1 outside the plot. */
    pointAt(clientX) {
      const svgEl = box.querySelector("svg");
      if (!svgEl || !pts.length) return -1;
      const r = svgEl.getBoundingClientRect();
      const vx = ((clientX - r.left) / r.width) * width;
      if (vx < m.l - 10 || vx > width - m.r + 10) return -1;
      const t = x0 + ((vx - m.l) / (width - m.l - m.r)) * (end - x0) - step / 2;
      let best = 0;
      for (let i = 1; i < pts.length; i++) if (Math.abs(pts[i][0] - t) < Math.abs(pts[best][0] - t)) best = i;
      return best;
    },
  };
}
