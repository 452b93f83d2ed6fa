// Starts `wrangler dev` (real workerd, local KV persisted on disk) on a free loopback port,
// exactly as `make dev` does, and stops it with its whole process group.
import { spawn } from "node:child_process";
import { createServer } from "node:net";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { ROOT } from "./miniflare.mjs";

/** A free TCP port on 127.0.0.1. */
export async function freePort() {
  return new Promise((resolve, reject) => {
    const srv = createServer();
    srv.unref();
    srv.on("error", reject);
    srv.listen(0, "127.0.0.1", () => {
      const { port } = srv.address();
      srv.close(() => resolve(port));
    });
  });
}

/**
 * Starts wrangler dev; `vars` override [vars]. Returns { origin, port, inspectorPort, pid (of
 * wrangler, which leads the process group of its workerd children), persistTo, stop, log() }.
 * SITES defaults to the `sites` (default ["demo"]) allowed from this server's own origin.
 */
export async function startWrangler({ vars = {}, sites = ["demo"], port, persistTo } = {}) {
  port ??= await freePort();
  const origin = `http://127.0.0.1:${port}`;
  const ownDir = !persistTo;
  persistTo ??= mkdtempSync(join(tmpdir(), "herenow-wrangler-"));
  const allVars = {
    SITES: JSON.stringify(Object.fromEntries(sites.map((s) => [s, { origins: [origin, `http://localhost:${port}`] }]))),
    ...vars,
  };
  const inspectorPort = await freePort();
  const args = ["dev", "--local", "--ip", "127.0.0.1", "--port", String(port), "--persist-to", persistTo,
    "--inspector-port", String(inspectorPort)];
  for (const [k, v] of Object.entries(allVars)) args.push("--var", `${k}:${v}`);
  const child = spawn(join(ROOT, "node_modules", ".bin", "wrangler"), args, {
    cwd: join(ROOT, "edge"),
    detached: true,
    stdio: ["ignore", "pipe", "pipe"],
    env: { ...process.env, CI: "true", WRANGLER_SEND_METRICS: "false", CLOUDFLARE_CF_FETCH_ENABLED: "false", WRANGLER_HIDE_BANNER: "true" },
  });
  let output = "";
  child.stdout.on("data", (d) => { output += d; });
  child.stderr.on("data", (d) => { output += d; });
  let exited = null;
  child.on("exit", (code) => { exited = code; });
  const stop = async () => {
    if (exited === null) {
      try { process.kill(-child.pid, "SIGTERM"); } catch { /* already gone */ }
      const deadline = Date.now() + 5000;
      while (exited === null && Date.now() < deadline) await new Promise((r) => setTimeout(r, 50));
      if (exited === null) { try { process.kill(-child.pid, "SIGKILL"); } catch { /* gone */ } }
    }
    if (ownDir) rmSync(persistTo, { recursive: true, force: true });
  };
  const deadline = Date.now() + 60_000;
  for (;;) {
    if (exited !== null) throw new Error(`wrangler dev exited with ${exited}:\n${output}`);
    try {
      const r = await fetch(`${origin}/healthz`);
      if (r.ok) break;
    } catch { /* not up yet */ }
    if (Date.now() > deadline) { await stop(); throw new Error(`wrangler dev not ready in 60 s:\n${output}`); }
    await new Promise((r) => setTimeout(r, 200));
  }
  return { origin, port, inspectorPort, pid: child.pid, persistTo, stop, log: () => output };
}
