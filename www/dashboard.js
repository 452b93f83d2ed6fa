// herenow dashboard: watches one site (?site=, default "demo") with the herenow client in
// watch-only mode, reads GET /v1/online with each count, and draws the counts, a hand-made SVG chart of the last 30 minutes, the pages and
// members tables and the badge. Same origin only; no inline styles (the CSP forbids them):
// everything visual is a class from style.css or an SVG presentation attribute.

const SVG_NS = "http://www.w3.org/2000/svg";
const SPAN_MS = 30 * 60_000;
const SITE_RE = /^[A-Za-z0-9_-]{1,64}$/;
const $ = (sel) => document.querySelector(sel);

const asked = new URLSearchParams(location.search).get("site");
const SITE = asked && SITE_RE.test(asked) ? asked : "demo";
const siteQ = `site=${encodeURIComponent(SITE)}`;
const STORE_KEY = `herenow-dashboard:${SITE}`;

// ---------------------------------------------------------------- history (30 minutes)
/** Samples `{ t, online }` (t: local ms when received), oldest first. */
let history = loadHistory();
function loadHistory() {
  try {
    const h = JSON.parse(sessionStorage.getItem(STORE_KEY) || "[]");
    const t0 = Date.now() - SPAN_MS;
    return Array.isArray(h) ? h.filter((p) => Number.isFinite(p?.t) && Number.isFinite(p?.online) && p.t >= t0) : [];
  } catch {
    return [];
  }
}
function addSample(online) {
  const now = Date.now();
  history.push({ t: now, online });
  const t0 = now - SPAN_MS;
  while (history.length && history[0].t < t0) history.shift();
  try { sessionStorage.setItem(STORE_KEY, JSON.stringify(history)); } catch { /* full or blocked: memory only */ }
}

// ---------------------------------------------------------------- counts
// The counts come from the herenow client itself, watching only (data-track="false": no
// heartbeat, no cookie), at the server's interval while this tab is visible; the members
// list is read with each count.
async function getJSON(path) {
  const r = await fetch(path, { cache: "no-store", headers: { accept: "application/json" } });
  if (!r.ok) throw new Error(`HTTP ${r.status}`);
  return r.json();
}

let pollMs = 2000; // the server's interval, from each count
let watchdog = 0;
let lastOnlineShown = null;

/** No count for a while: the client is backing off (it says why in the console). */
function armWatchdog() {
  clearTimeout(watchdog);
  const ms = Math.max(10_000, 3 * pollMs);
  watchdog = setTimeout(() => setStatus(`No count from the API for ${Math.round(ms / 1000)} s; retrying.`, true), ms);
}

async function onCount(count) {
  if (typeof count?.next_heartbeat_ms === "number") pollMs = count.next_heartbeat_ms;
  armWatchdog();
  addSample(count.online);
  if (!statusOk) setStatus(`Live: updating every ${pollMs / 1000} s.`, false);
  renderStats(count);
  renderChart();
  renderPages(count.pages || []);
  renderBadge(count);
  renderDefinition(count);
  try {
    // A site that keeps its member names private answers 401/403 (no read key here).
    const online = await getJSON(`/v1/online?${siteQ}`).catch((e) => {
      if (e.status === 401 || e.status === 403) return { private: true };
      throw e;
    });
    renderMembers(online?.private ? null : online?.members || []);
  } catch { /* the next count tries again */ }
}

function watch() {
  document.addEventListener("herenow:count", (e) => onCount(e.detail));
  const s = document.createElement("script");
  s.type = "module";
  s.src = "/herenow/herenow.js";
  s.dataset.site = SITE;
  s.dataset.track = "false";
  document.head.append(s);
  armWatchdog();
}

let statusOk = false;
// Kept in front of every status: a ?site= that is not a site name.
const siteNote = asked && asked !== SITE ? `"${asked}" is not a site name; showing ${SITE}. ` : "";
function setStatus(message, isError) {
  const el = $("#status");
  const text = siteNote + message;
  statusOk = !isError;
  if (el.textContent !== text) el.textContent = text;
  el.classList.toggle("error", isError || Boolean(siteNote));
}

// ---------------------------------------------------------------- rendering
const fmt = (n) => Number(n).toLocaleString();
const plural = (n, one, many) => `${fmt(n)} ${n === 1 ? one : many}`;

let lastSummary = "";
function renderStats(c) {
  for (const el of document.querySelectorAll("[data-stat]")) {
    const v = c[el.dataset.stat];
    const text = typeof v === "number" ? fmt(v) : "–";
    if (el.textContent !== text) el.textContent = text;
  }
  // Read out changes only, not every poll.
  const summary = `${plural(c.online, "person", "people")} online: ${plural(c.members, "member", "members")}, ` +
    `${plural(c.guests, "guest", "guests")}, ${fmt(c.idle)} idle, ${plural(c.tabs, "tab", "tabs")}.`;
  if (summary !== lastSummary) {
    lastSummary = summary;
    $("#summary-live").textContent = summary;
  }
}

function svg(tag, attrs = {}, text) {
  const el = document.createElementNS(SVG_NS, tag);
  for (const [k, v] of Object.entries(attrs)) el.setAttribute(k, String(v));
  if (text !== undefined) el.textContent = text;
  return el;
}
const hhmm = (t) => new Date(t).toLocaleTimeString([], { hour: "2-digit", minute: "2-digit" });
const hhmmss = (t) => new Date(t).toLocaleTimeString([], { hour: "2-digit", minute: "2-digit", second: "2-digit" });

/** A step of 1, 2 or 5 × 10^k at least `raw`. */
function niceStep(raw) {
  const p = 10 ** Math.floor(Math.log10(Math.max(raw, 1)));
  for (const m of [1, 2, 5, 10]) if (m * p >= raw) return m * p;
  return 10 * p;
}

function renderChart() {
  const box = $("#chart");
  const width = Math.max(280, Math.round(box.clientWidth || 640));
  const height = width < 520 ? 200 : 260;
  const m = { l: 40, r: 44, t: 14, b: 30 };
  const now = Date.now();
  const t0 = now - SPAN_MS;
  const pts = history.filter((p) => p.t >= t0);
  const peak = pts.reduce((a, p) => Math.max(a, p.online), 0);
  const step = niceStep(Math.max(4, peak) / 4);
  const yMax = Math.max(step * 4, Math.ceil(peak / step) * step);
  const x = (t) => m.l + ((t - t0) / SPAN_MS) * (width - m.l - m.r);
  const y = (v) => m.t + (1 - v / yMax) * (height - m.t - m.b);

  const root = svg("svg", {
    viewBox: `0 0 ${width} ${height}`, width, height, role: "img",
    "aria-labelledby": "chart-svg-title chart-svg-desc", "data-points": pts.length, focusable: "false",
  });
  root.append(svg("title", { id: "chart-svg-title" }, `People online on ${SITE}, last 30 minutes`));
  const desc = svg("desc", { id: "chart-svg-desc" });
  root.append(desc);

  // Horizontal grid with counts; vertical grid every 5 minutes with clock times.
  for (let v = 0; v <= yMax; v += step) {
    root.append(svg("line", { class: "grid", x1: m.l, x2: width - m.r, y1: y(v), y2: y(v) }));
    root.append(svg("text", { class: "axis-label", x: m.l - 8, y: y(v) + 4, "text-anchor": "end" }, fmt(v)));
  }
  const every = width < 520 ? 10 * 60_000 : 5 * 60_000;
  for (let t = Math.ceil(t0 / every) * every; t <= now; t += every) {
    root.append(svg("line", { class: "grid", x1: x(t), x2: x(t), y1: m.t, y2: height - m.b, "stroke-dasharray": "2 4" }));
    root.append(svg("text", { class: "axis-label", x: x(t), y: height - m.b + 18, "text-anchor": "middle" }, hhmm(t)));
  }

  if (pts.length === 0) {
    root.append(svg("text", { class: "empty", x: (m.l + width - m.r) / 2, y: height / 2, "text-anchor": "middle" }, "No samples yet"));
    desc.textContent = "No samples yet.";
  } else {
    // Lines break where polling stopped for a while (tab asleep, API down).
    const gap = Math.max(3 * pollMs, 15_000);
    const segments = [];
    for (const p of pts) {
      const seg = segments.at(-1);
      if (seg && p.t - seg.at(-1).t <= gap) seg.push(p); else segments.push([p]);
    }
    for (const seg of segments) {
      const line = seg.map((p, i) => `${i ? "L" : "M"}${x(p.t).toFixed(1)} ${y(p.online).toFixed(1)}`).join(" ");
      const base = y(0).toFixed(1);
      const area = `${line} L${x(seg.at(-1).t).toFixed(1)} ${base} L${x(seg[0].t).toFixed(1)} ${base} Z`;
      root.append(svg("path", { class: "area", d: area }));
      root.append(svg("path", { class: "line", d: line }));
    }
    const lp = pts.at(-1);
    root.append(svg("circle", { class: "last", cx: x(lp.t), cy: y(lp.online), r: 4.5 }));
    root.append(svg("text", { class: "last-label", x: x(lp.t) + 8, y: y(lp.online) + 4 }, fmt(lp.online)));
    const low = pts.reduce((a, p) => Math.min(a, p.online), Infinity);
    const text = `Now ${fmt(lp.online)}, peak ${fmt(peak)}, low ${fmt(low)}; ${plural(pts.length, "sample", "samples")} since ${hhmmss(pts[0].t)}.`;
    desc.textContent = text;
    $("#chart-summary").textContent = text;
  }
  box.replaceChildren(root);
}

function cell(text, cls) {
  const td = document.createElement("td");
  if (cls) td.className = cls;
  if (text !== undefined) td.textContent = text;
  return td;
}
function emptyRow(tbody, cols, text) {
  const tr = document.createElement("tr");
  const td = cell(text, "empty");
  td.colSpan = cols;
  tr.append(td);
  tbody.replaceChildren(tr);
}

function renderPages(pages) {
  const tbody = $("#pages-table tbody");
  if (!pages.length) return emptyRow(tbody, 2, "No one is online.");
  const max = pages.reduce((a, p) => Math.max(a, p.online), 1);
  tbody.replaceChildren(...pages.map((p) => {
    const tr = document.createElement("tr");
    const name = cell();
    const code = document.createElement("code");
    code.textContent = p.page;
    const bar = document.createElement("span");
    bar.className = `meter w${Math.round((p.online / max) * 10)}`;
    bar.setAttribute("aria-hidden", "true");
    name.append(code, bar);
    tr.append(name, cell(fmt(p.online), "n"));
    return tr;
  }));
}

function duration(ms) {
  const s = Math.max(0, Math.round(ms / 1000));
  if (s < 60) return `${s} s`;
  const min = Math.floor(s / 60);
  if (min < 60) return `${min} min`;
  return `${Math.floor(min / 60)} h ${min % 60} min`;
}

function renderMembers(members) {
  const tbody = $("#members-table tbody");
  if (!members) return emptyRow(tbody, 3, "This site keeps its members' names private (see members_public in the README).");
  if (!members.length) return emptyRow(tbody, 3, "No members online.");
  const sorted = [...members].sort((a, b) => String(a.name).localeCompare(String(b.name)));
  tbody.replaceChildren(...sorted.map((mb) => {
    const tr = document.createElement("tr");
    const who = cell();
    const name = document.createElement("strong");
    name.className = "member-name";
    name.textContent = mb.name || mb.id;
    const id = document.createElement("div");
    id.className = "muted";
    const code = document.createElement("code");
    code.textContent = mb.id;
    id.append(code);
    who.append(name, id);
    const page = cell();
    const pc = document.createElement("code");
    pc.textContent = mb.page;
    page.append(pc);
    const since = cell();
    if (Number.isFinite(mb.since)) {
      const t = document.createElement("time");
      t.dateTime = new Date(mb.since).toISOString();
      t.title = `since ${new Date(mb.since).toLocaleString()}`;
      t.textContent = duration(Date.now() - mb.since);
      since.append(t);
    }
    tr.append(who, page, since);
    return tr;
  }));
}

function renderBadge(c) {
  if (c.online === lastOnlineShown) return;
  lastOnlineShown = c.online;
  const img = $("#badge-img");
  // A fresh URL when the number changes: the badge is cacheable for a few seconds.
  img.src = `/v1/badge.svg?${siteQ}&v=${c.as_of}`;
  img.alt = `Badge: ${plural(c.online, "person", "people")} online`;
}

function renderDefinition(c) {
  for (const el of document.querySelectorAll("[data-def]")) {
    const v = c[el.dataset.def];
    el.textContent = typeof v === "number" ? String(v) : "…";
  }
  const t = $("#as-of");
  const at = new Date(c.as_of);
  t.dateTime = at.toISOString();
  t.textContent = `${at.toLocaleDateString()} ${hhmmss(c.as_of)}`;
  $("#poll-s").textContent = String(pollMs / 1000);
}

// ---------------------------------------------------------------- static parts, start
function setup() {
  $("#site-name").textContent = SITE;
  $("#site-input").value = SITE;
  document.title = `Dashboard: ${SITE} · herenow`;
  if (siteNote) setStatus("Connecting…", true);
  const snippet = `<img src="${location.origin}/v1/badge.svg?${siteQ}" alt="People online">`;
  $("#badge-snippet").textContent = snippet;
  $("#badge-img").src = `/v1/badge.svg?${siteQ}`;
  $("#copy-badge").addEventListener("click", async () => {
    const status = $("#copy-status");
    try {
      await navigator.clipboard.writeText(snippet);
      status.textContent = "Copied.";
    } catch {
      // No clipboard permission: select the snippet for Ctrl+C.
      const range = document.createRange();
      range.selectNodeContents($("#badge-snippet"));
      getSelection().removeAllRanges();
      getSelection().addRange(range);
      status.textContent = "Selected: press Ctrl+C (⌘C) to copy.";
    }
  });
  $("#badge-img").addEventListener("error", () => setStatus("The badge failed to load.", true));
  let raf = 0;
  new ResizeObserver(() => {
    cancelAnimationFrame(raf);
    raf = requestAnimationFrame(renderChart);
  }).observe($("#chart"));
  renderChart();
  watch();
}

setup();
