// The built worker in real workerd through Miniflare, in a process group of its own: the
// runtime without wrangler dev's proxy in front, for the load test, where what is measured
// (RSS and CPU by process group) must be the server's alone, not the load generator's.
//
//   startWorkerProcess({ vars, port, persistTo }) → { origin, port, inspectorPort, pid, stop, log }
//
// the same shape as tests/lib/wrangler.mjs's startWrangler. Run directly, this file is the
// child: `node worker-process.mjs '<json options>'` prints `ready <origin>` once serving.
import { spawn } from "node:child_process";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { startWorker } from "./miniflare.mjs";
import { freePort } from "./wrangler.mjs";

const SELF = fileURLToPath(import.meta.url);

/**
 * Starts the worker in a detached child (its own process group); `vars` override the test
 * settings; SITES defaults to the `sites` (default ["demo"]) allowed from this server's own origin; KV is
 * persisted on disk in `persistTo` (a fresh temporary directory by default).
 */
export async function startWorkerProcess({ vars = {}, sites = ["demo"], port, persistTo } = {}) {
  port ??= await freePort();
  const inspectorPort = await freePort();
  const origin = `http://127.0.0.1:${port}`;
  const ownDir = !persistTo;
  persistTo ??= mkdtempSync(join(tmpdir(), "herenow-workerd-"));
  const allVars = { SITES: JSON.stringify(Object.fromEntries(sites.map((s) => [s, { origins: [origin, `http://localhost:${port}`] }]))), ...vars };
  const child = spawn(process.execPath, [SELF, JSON.stringify({ vars: allVars, port, inspectorPort, persist: persistTo })], {
    detached: true,
    stdio: ["ignore", "pipe", "pipe"],
  });
  let output = "";
  child.stdout.on("data", (d) => { output += d; });
  child.stderr.on("data", (d) => { output += d; });
  let exited = null;
  child.on("exit", (code, signal) => { exited = code ?? signal; });
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
  while (!output.includes("ready ")) {
    if (exited !== null) throw new Error(`the worker process exited with ${exited}:\n${output}`);
    if (Date.now() > deadline) { await stop(); throw new Error(`the worker process not ready in 60 s:\n${output}`); }
    await new Promise((r) => setTimeout(r, 100));
  }
  return { origin, port, inspectorPort, pid: child.pid, persistTo, stop, log: () => output };
}

if (process.argv[1] === SELF) {
  const opts = JSON.parse(process.argv[2]);
  const mf = await startWorker(opts);
  const close = async () => { await mf.dispose(); process.exit(0); };
  process.on("SIGTERM", close);
  process.on("SIGINT", close);
  console.log(`ready ${mf.url.origin}`);
}
