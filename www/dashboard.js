// herenow dashboard: watches one site (?site=, default "demo") with the herenow client in
// watch-only mode, reads GET /v1/online with each count and GET /v1/history on load (and on
// a range switch, and every 5 minutes), and draws the counts, the history chart
// (dashboard-chart.js) with live counts folded in, the record, the pages and members tables
// and the badge. Same origin only; no inline styles (the CSP forbids them): everything
// visual is a class from style.css or an SVG presentation attribute.

import { LIVE_KEPT, RANGES, Series, drawChart, longDate } from "/dashboard-chart.js";

const SITE_RE = /^[A-Za-z0-9_-]{1,64}$/;
const $ = (sel) => document.querySelector(sel);
/** How often the history is read again while the dashboard is open (a KV read at most). */
const REFETCH_MS = 5 * 60_000;

const params = new URLSearchParams(location.search);
const asked = params.get("site");
const SITE = asked && SITE_RE.test(asked) ? asked : "demo";
const siteQ = `site=${encodeURIComponent(SITE)}`;

// ---------------------------------------------------------------- history
/** The range shown (?range=, default 24 h) and its series; live counts are kept across switches. */
let series = new Series(RANGES[params.get("range")] ? params.get("range") : "24h");
const live = []; // [server ms, online] of the counts since the dashboard opened, the newest LIVE_KEPT
let liveCount = 0;
let hover = -1;
let fetchSeq = 0;
let refetchTimer = 0;

/** Reads the history of the range shown; an answer to an older request is dropped. */
async function loadHistory() {
  const seq = ++fetchSeq;
  const range = series.range;
  clearTimeout(refetchTimer);
  refetchTimer = setTimeout(loadHistory, REFETCH_MS);
  $("#chart").setAttribute("aria-busy", "true");
  try {
    const h = await getJSON(`/v1/history?${siteQ}&range=${range}`);
    if (seq !== fetchSeq) return;
    series.load(h, live);
    $("#history-note").textContent = "";
  } catch (e) {
    if (seq !== fetchSeq) return;
    // A site with "public": false refuses its history (403): the chart shows live counts only.
    $("#history-note").textContent = e.status === 403
      ? "This site does not publish its history; the chart shows the counts since this page opened."
      : `The history could not be read (${e.message}); the chart shows the counts since this page opened.`;
  } finally {
    if (seq === fetchSeq) $("#chart").removeAttribute("aria-busy");
  }
  renderChart();
  renderRecord(series.record);
}

function setRange(range) {
  if (!RANGES[range] || range === series.range) return;
  series = new Series(range);
  for (const [t, n] of live) series.add(t, n);
  hover = -1;
  const url = new URL(location.href);
  url.searchParams.set("range", range);
  history.replaceState(null, "", url);
  renderRangeButtons();
  renderChart();
  loadHistory();
}

function renderRangeButtons() {
  for (const b of document.querySelectorAll("button[data-range]")) b.setAttribute("aria-pressed", String(b.dataset.range === series.range));
  $("#chart-title").textContent = `People online, ${RANGES[series.range].label}`;
}

// ---------------------------------------------------------------- counts
// The counts come from the herenow client itself, watching only (data-track="false": no
// heartbeat, no cookie), at the server's interval while this tab is visible; the members
// list is read with each count.
async function getJSON(path) {
  const r = await fetch(path, { cache: "no-store", headers: { accept: "application/json" } });
  if (!r.ok) throw Object.assign(new Error(`HTTP ${r.status}`), { status: r.status });
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
  if (Number.isFinite(count.as_of) && Number.isFinite(count.online)) {
    series.add(count.as_of, count.online);
    live.push([count.as_of, count.online]);
    if (live.length > LIVE_KEPT) live.shift();
    liveCount += 1;
  }
  if (!statusOk) setStatus(`Live: updating every ${pollMs / 1000} s.`, false);
  renderStats(count);
  renderChart();
  renderRecord(count.record);
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

const hhmmss = (t) => new Date(t).toLocaleTimeString([], { hour: "2-digit", minute: "2-digit", second: "2-digit" });

function renderChart() {
  const box = $("#chart");
  chart = drawChart(box, series, { site: SITE, hover, readout: $("#chart-readout"), liveCount });
  if ($("#chart-summary").textContent !== chart.summary) $("#chart-summary").textContent = chart.summary;
}
let chart = null;

/** "Most ever online: N on DATE", from the history or a count (whichever is higher). */
let shownRecord = null;
function renderRecord(record) {
  if (!Number.isFinite(record?.online) || !Number.isFinite(record?.at)) return;
  if (shownRecord && shownRecord.online >= record.online) return;
  shownRecord = { online: record.online, at: record.at };
  const el = $("#record");
  el.dataset.online = String(record.online);
  el.dataset.at = String(record.at);
  $("#record-online").textContent = fmt(record.online);
  const t = $("#record-at");
  t.dateTime = new Date(record.at).toISOString();
  t.textContent = longDate(record.at);
  t.title = new Date(record.at).toLocaleString();
  el.hidden = false;
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
  $("#badge-img").addEventListener("error", async () => {
    // A site with "public": false refuses its badge (403 not_public): say so where the badge is.
    const r = await fetch($("#badge-img").src, { cache: "no-store" }).catch(() => null);
    await r?.body?.cancel();
    if (r?.status === 403) $("#badge-note").textContent = 'This site does not publish its badge ("public": false in SITES).';
    else setStatus("The badge failed to load.", true);
  });
  let raf = 0;
  new ResizeObserver(() => {
    cancelAnimationFrame(raf);
    raf = requestAnimationFrame(renderChart);
  }).observe($("#chart"));
  for (const b of document.querySelectorAll("button[data-range]")) b.addEventListener("click", () => setRange(b.dataset.range));
  // Hover values: the step under the pointer; from the keyboard, arrows move along the steps.
  const box = $("#chart");
  box.addEventListener("pointermove", (e) => {
    const i = chart?.pointAt(e.clientX) ?? -1;
    if (i !== hover) { hover = i; renderChart(); }
  });
  box.addEventListener("pointerleave", () => { if (hover !== -1) { hover = -1; renderChart(); } });
  box.addEventListener("keydown", (e) => {
    const n = chart?.count ?? 0;
    if (!n) return;
    const moves = { ArrowLeft: -1, ArrowRight: 1, Home: -n, End: n };
    if (!(e.key in moves)) return;
    e.preventDefault();
    hover = Math.min(n - 1, Math.max(0, (hover < 0 ? n - 1 : hover) + moves[e.key]));
    renderChart();
  });
  box.addEventListener("blur", () => { if (hover !== -1) { hover = -1; renderChart(); } });
  renderRangeButtons();
  renderChart();
  loadHistory();
  watch();
}

setup();
