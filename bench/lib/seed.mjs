// Pre-populates visitors before a measurement: one heartbeat per visitor of [from, to), the
// same bodies as load.lua, `concurrency` at a time, bounded by a deadline. Node's fetch
// (undici, keep-alive). Returns what it did; the caller reports it.
export const PAGES = ["/", "/pricing", "/docs", "/blog/post", "/about"];

export function visitorId(prefix, i) {
  return `${prefix}-0000-4000-8000-${i.toString(16).padStart(12, "0")}`;
}

export function beatBody(prefix, i) {
  return JSON.stringify({ site: "demo", visitor: visitorId(prefix, i), tab: `t${i}`, page: PAGES[i % 5],
    state: i % 7 === 0 ? "idle" : "active" });
}

export async function seedHeartbeats({ origin, prefix, from, to, concurrency = 16, deadlineMs, onProgress }) {
  const t0 = Date.now();
  let next = from;
  let ok = 0;
  let failed = 0;
  let lastStatus = "";
  let lastReport = t0;
  const worker = async () => {
    while (next < to && Date.now() < deadlineMs) {
      const i = next++;
      try {
        const r = await fetch(`${origin}/v1/heartbeat`, {
          method: "POST",
          headers: { "content-type": "text/plain;charset=UTF-8", origin },
          body: beatBody(prefix, i),
          signal: AbortSignal.timeout(Math.max(1000, deadlineMs - Date.now())),
        });
        await r.arrayBuffer();
        if (r.status === 200) ok++; else { failed++; lastStatus = String(r.status); }
      } catch (e) {
        failed++;
        lastStatus = e.name;
      }
      if (onProgress && Date.now() - lastReport > 10_000) {
        lastReport = Date.now();
        onProgress({ done: next - from, of: to - from, ok, failed, seconds: (Date.now() - t0) / 1000 });
      }
    }
  };
  await Promise.all(Array.from({ length: concurrency }, worker));
  const seconds = (Date.now() - t0) / 1000;
  return { requested: to - from, sent: next - from, ok, failed, lastStatus, seconds, complete: next >= to && failed === 0 };
}
