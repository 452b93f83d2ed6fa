// herenow's public widget: refreshes "N online now" at the server's interval while the
// page is visible, and the 24-hour sparkline every 5 minutes. No cookies, no heartbeat:
// this page only reads the site's public count and history. Its CSP allows this script
// by its hash, so it must stay free of anything that varies per site or per request.
const root = document.querySelector("main");
const site = root.dataset.site;
let intervalMs = Number(root.dataset.interval) || 15000;
const q = "site=" + encodeURIComponent(site);
const W = 288, H = 40;
let points = [];
let timer = 0;
let lastHistory = 0;

function path(pts) {
  if (!pts.length) return ["", ""];
  const max = Math.max(1, ...pts.map((p) => p[1]));
  const dx = pts.length > 1 ? W / (pts.length - 1) : 0;
  const xy = pts.map((p, i) => [(i * dx).toFixed(1), (H - 2 - (p[1] / max) * (H - 4)).toFixed(1)]);
  const line = xy.map((c) => c.join(",")).join(" ");
  return [line, `0,${H} ${line} ${xy[xy.length - 1][0]},${H}`];
}

function draw() {
  const [line, area] = path(points);
  document.getElementById("spark").setAttribute("points", line);
  document.getElementById("area").setAttribute("points", area);
}

async function getJSON(p) {
  const r = await fetch(p, { cache: "no-store", credentials: "omit" });
  if (!r.ok) throw new Error("HTTP " + r.status);
  return r.json();
}

async function refresh() {
  clearTimeout(timer);
  if (document.visibilityState === "hidden") return;
  try {
    const c = await getJSON("/v1/count?" + q);
    if (typeof c.next_heartbeat_ms === "number" && c.next_heartbeat_ms > 0) intervalMs = c.next_heartbeat_ms;
    document.getElementById("online").textContent = String(c.online);
    if (Date.now() - lastHistory > 300000) {
      const h = await getJSON("/v1/history?" + q + "&range=24h");
      points = h.points;
      lastHistory = Date.now();
    }
    if (points.length) {
      const last = points[points.length - 1];
      last[1] = Math.max(last[1], c.online);
    }
    draw();
    root.dataset.state = "live";
  } catch {
    root.dataset.state = "stale";
  }
  timer = setTimeout(refresh, intervalMs);
}

try { points = JSON.parse(root.dataset.points || "[]"); } catch { points = []; }
lastHistory = Date.now();
document.addEventListener("visibilitychange", () => { if (document.visibilityState === "visible") refresh(); });
timer = setTimeout(refresh, intervalMs);
