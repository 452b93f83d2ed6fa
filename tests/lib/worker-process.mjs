// The built worker in real workerd through Miniflare, in a process group of its own: the
// runtime without wrangler dev's proxy in front, for the load test, where what is measured
// (RSS and CPU by process group) must be the server's alone, not the load generator's.
//
//   startWorkerProcess({ vars, port, persistTo, faults }) → { origin, port, inspectorPort, pid, stop, log }
//
// the same shape as tests/lib/wrangler.mjs's startWrangler. With `faults`, KV is the faulty
// wrapper of tests/lib/miniflare.mjs, driven through `setFault(mode)` and read through
// `kvOps()` ({ ops, failed } by kind). Run directly, this file is the child: `node
// worker-process.mjs '<json options>'` prints `ready <origin> <control port>` once serving,
// and answers POST /fault (the mode as the body) and GET /ops on 127.0.0.1:<control port>.
import http from "node:http";
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
export async function startWorkerProcess({ vars = {}, port, persistTo, faults = false } = {}) {
  port ??= await freePort();
  const inspectorPort = await freePort();
  const origin = `http://127.0.0.1:${port}`;
  const ownDir = !persistTo;
  persistTo ??= mkdtempSync(join(tmpdir(), "herenow-workerd-"));
  const allVars = { SITES: JSON.stringify({ demo: { origins: [origin, `http://localhost:${port}`] } }), ...vars };
  const child = spawnGroup(process.execPath, [SELF, JSON.stringify({ vars: allVars, port, inspectorPort, persist: persistTo, faults })]);
  const stop = async () => {
    await child.stop();
    if (ownDir) rmSync(persistTo, { recursive: true, force: true });
  };
  await child.waitFor(() => child.output().includes("ready "), 60_000, "the worker process").catch(async (e) => { await stop(); throw e; });
  const control = `http://127.0.0.1:${child.output().match(/ready \S+ (\d+)/)[1]}`;
  const setFault = async (mode) => {
    const r = await fetch(`${control}/fault`, { method: "POST", body: mode });
    if (!r.ok) throw new Error(`setFault: ${r.status}`);
  };
  const kvOps = async () => (await fetch(`${control}/ops`)).json();
  return { origin, port, inspectorPort, pid: child.pid, persistTo, stop, log: child.output, setFault, kvOps };
}

if (process.argv[1] === SELF) {
  const opts = JSON.parse(process.argv[2]);
  const mf = await startWorker(opts);
  const control = http.createServer((req, res) => {
    let body = "";
    req.on("data", (d) => { body += d; });
    req.on("end", () => {
      if (req.method === "POST" && req.url === "/fault" && mf.setFault) {
        mf.setFault(body);
        res.end("ok");
      } else if (req.method === "GET" && req.url === "/ops") {
        res.setHeader("content-type", "application/json");
        res.end(JSON.stringify({ ops: mf.kvOps, failed: mf.kvOpsFailed }));
      } else {
        res.statusCode = 404;
        res.end();
      }
    });
  });
  await new Promise((r) => control.listen(0, "127.0.0.1", r));
  const close = async () => { control.close(); await mf.dispose(); process.exit(0); };
  process.on("SIGTERM", close);
  process.on("SIGINT", close);
  console.log(`ready ${mf.url.origin} ${control.address().port}`);
}
