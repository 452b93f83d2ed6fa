// Starts `wrangler dev` (local workerd, local KV persisted on disk) for any worker folder
// on a free loopback port, the way tests/lib/wrangler.mjs does for the edge worker, and
// stops it by its process group. Used for herenow (edge/), bench/naive and bench/ceiling.
import { spawn } from "node:child_process";
import { freePort } from "../../tests/lib/wrangler.mjs";
import { cpSync, mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, dirname } from "node:path";
import { fileURLToPath } from "node:url";

export const ROOT = join(dirname(fileURLToPath(import.meta.url)), "..", "..");

export { freePort };

/** Starts wrangler dev in `dir` with `vars`; returns { origin, port, pid, stop, log() }. */
export async function startWrangler({ dir, vars = {}, readyMs = 90_000, persistRoot, extraArgs = [] }) {
  const port = await freePort();
  const origin = `http://127.0.0.1:${port}`;
  const persistTo = mkdtempSync(join(persistRoot ?? tmpdir(), "herenow-bench-kv-"));
  const allVars = { SITES: JSON.stringify({ demo: { origins: [origin] } }), ...vars };
  const inspectorPort = await freePort();
  const args = ["dev", "--local", "--ip", "127.0.0.1", "--port", String(port), "--persist-to", persistTo,
    "--inspector-port", String(inspectorPort), "--log-level", "warn", ...extraArgs];
  for (const [k, v] of Object.entries(allVars)) args.push("--var", `${k}:${v}`);
  const child = spawn(join(ROOT, "node_modules", ".bin", "wrangler"), args, {
    cwd: dir,
    detached: true,
    stdio: ["ignore", "pipe", "pipe"],
    env: { ...process.env, CI: "true", WRANGLER_SEND_METRICS: "false", CLOUDFLARE_CF_FETCH_ENABLED: "false",
      WRANGLER_HIDE_BANNER: "true" },
  });
  let output = "";
  const keep = (d) => { output = (output + d).slice(-20_000); };
  child.stdout.on("data", keep);
  child.stderr.on("data", keep);
  let exited = null;
  child.on("exit", (code) => { exited = code ?? "signal"; });
  const stop = async () => {
    if (exited === null) {
      try { process.kill(-child.pid, "SIGTERM"); } catch { /* gone */ }
      const deadline = Date.now() + 5000;
      while (exited === null && Date.now() < deadline) await new Promise((r) => setTimeout(r, 50));
      if (exited === null) { try { process.kill(-child.pid, "SIGKILL"); } catch { /* gone */ } }
    }
    rmSync(persistTo, { recursive: true, force: true });
  };
  const deadline = Date.now() + readyMs;
  for (;;) {
    if (exited !== null) { await stop(); throw new Error(`wrangler dev (${dir}) exited with ${exited}:\n${output}`); }
    try {
      const r = await fetch(`${origin}/healthz`);
      if (r.ok) break;
    } catch { /* not up yet */ }
    if (Date.now() > deadline) { await stop(); throw new Error(`wrangler dev (${dir}) not ready in ${readyMs} ms:\n${output}`); }
    await new Promise((r) => setTimeout(r, 200));
  }
  return { origin, port, inspectorPort, pid: child.pid, stop, log: () => output };
}

/**
 * Copies the built edge worker (edge/wrangler.toml, edge/build, www) into a private folder,
 * so that a rebuild of edge/build by someone else during the bench cannot hot-reload the
 * worker under load (wrangler dev watches its files). Returns the folder to run it from.
 */
export function snapshotEdge() {
  const base = mkdtempSync(join(tmpdir(), "herenow-bench-edge-"));
  const edge = join(base, "edge");
  cpSync(join(ROOT, "edge", "wrangler.toml"), join(edge, "wrangler.toml"));
  cpSync(join(ROOT, "edge", "build"), join(edge, "build"), { recursive: true });
  cpSync(join(ROOT, "www"), join(base, "www"), { recursive: true });
  return { dir: edge, remove: () => rmSync(base, { recursive: true, force: true }) };
}
