// The built worker in real workerd through Miniflare, in a process group of its own: the
// runtime without wrangler dev's proxy in front, for the load test, where what is measured
// (RSS and CPU by process group) must be the server's alone, not the load generator's.
//
//   startWorkerProcess({ vars, port, persistTo }) → { origin, port, inspectorPort, pid, stop, log }
//
// the same shape as tests/lib/wrangler.mjs's startWrangler. Run directly, this file is the
// child: `node worker-process.mjs '<json options>'` prints `ready <origin>` once serving.
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { startWorker } from "./miniflare.mjs";
import { freePort } from "./wrangler.mjs";
import { spawnGroup } from "./process-group.mjs";

const SELF = fileURLToPath(import.meta.url);

/**
 * Starts the worker in a detached child (its own process group); `vars` override the test
 * settings; SITES defaults to the demo site allowed from this server's own origin; KV is
 * persisted on disk in `persistTo` (a fresh temporary directory by default).
 */
export async function startWorkerProcess({ vars = {}, port, persistTo } = {}) {
  port ??= await freePort();
  const inspectorPort = await freePort();
  const origin = `http://127.0.0.1:${port}`;
  const ownDir = !persistTo;
  persistTo ??= mkdtempSync(join(tmpdir(), "herenow-workerd-"));
  const allVars = { SITES: JSON.stringify({ demo: { origins: [origin, `http://localhost:${port}`] } }), ...vars };
  const child = spawnGroup(process.execPath, [SELF, JSON.stringify({ vars: allVars, port, inspectorPort, persist: persistTo })]);
  const stop = async () => {
    await child.stop();
    if (ownDir) rmSync(persistTo, { recursive: true, force: true });
  };
  await child.waitFor(() => child.output().includes("ready "), 60_000, "the worker process").catch(async (e) => { await stop(); throw e; });
  return { origin, port, inspectorPort, pid: child.pid, persistTo, stop, log: child.output };
}

if (process.argv[1] === SELF) {
  const opts = JSON.parse(process.argv[2]);
  const mf = await startWorker(opts);
  const close = async () => { await mf.dispose(); process.exit(0); };
  process.on("SIGTERM", close);
  process.on("SIGINT", close);
  console.log(`ready ${mf.url.origin}`);
}
