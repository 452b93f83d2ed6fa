// Starts `wrangler dev` (real workerd, local KV persisted on disk) on a free loopback port,
// exactly as `make dev` does, and stops it with its whole process group.
import { createServer } from "node:net";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { ROOT } from "./miniflare.mjs";
import { spawnGroup } from "./process-group.mjs";
import { assembleDevAssets } from "../../scripts/dev-assets.mjs";

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
 * Starts wrangler dev for the worker in `dir` (default edge/); `vars` override [vars].
 * Returns { origin, port, inspectorPort, pid (of wrangler, which leads the process group of
 * its workerd children), persistTo, stop, log() }. SITES defaults to the demo site allowed
 * from this server's own origin. KV is persisted in `persistTo`, by default a fresh
 * directory under `persistRoot` (default the system's temporary directory) removed on stop.
 * For edge/ it serves the dev asset set (www/ plus www-dev/, with the member sign-in), as
 * `make dev` does, assembled into a fresh directory removed on stop; `devAssets: false`
 * serves what a deploy serves, the directory of the config's [assets] alone.
 */
export async function startWrangler({ pickPort = freePort, ...opts } = {}) {
  // Ports are picked free, then bound by workerd seconds later, while other servers (and
  // other wranglers' own internal listeners) pick theirs: rarely, one is taken in between
  // and workerd exits with "Address already in use". A CI run also once saw one of the
  // bench's five wranglers starting together exit at start for a cause its log lost. So a
  // start that exits before it is ready is tried again on fresh ports (`pickPort` picks
  // them: tests pass a taken one), saying why; a start that is merely slow is not, and
  // neither is a port the caller chose that is taken.
  const ATTEMPTS = 3;
  for (let attempt = 1; ; attempt++) {
    const port = opts.port ?? await pickPort();
    const inspectorPort = await pickPort();
    try {
      return await startOnce({ ...opts, port, inspectorPort });
    } catch (e) {
      const taken = /Address already in use[^\n]*?127\.0\.0\.1:(\d+)/.exec(e.message)?.[1];
      const callers = taken !== undefined && Number(taken) === opts.port;
      if (e.exitCode === undefined || callers || attempt === ATTEMPTS) throw e;
      const why = taken ? `port ${taken} was taken before it bound` : e.firstError ?? `exit code ${e.exitCode}`;
      console.error(`wrangler dev (${opts.dir ?? "edge"}) exited at start (${why}); starting again, attempt ${attempt + 1} of ${ATTEMPTS}`);
    }
  }
}

async function startOnce({ vars = {}, port, inspectorPort, persistTo, dir = join(ROOT, "edge"), readyMs = 60_000, persistRoot, extraArgs = [],
  devAssets = dir === join(ROOT, "edge") }) {
  const origin = `http://127.0.0.1:${port}`;
  const ownDir = !persistTo;
  persistTo ??= mkdtempSync(join(persistRoot ?? tmpdir(), "herenow-wrangler-"));
  const allVars = {
    // As edge/wrangler.toml's demo site: members public, so its dashboard lists them.
    SITES: JSON.stringify({ demo: { origins: [origin, `http://localhost:${port}`], members_public: true } }),
    ...vars,
  };
  const assetsDir = devAssets ? mkdtempSync(join(tmpdir(), "herenow-dev-assets-")) : null;
  if (assetsDir) assembleDevAssets(assetsDir);
  const args = ["dev", "--local", "--ip", "127.0.0.1", "--port", String(port), "--persist-to", persistTo,
    "--inspector-port", String(inspectorPort), ...(assetsDir ? ["--assets", assetsDir] : []), ...extraArgs];
  for (const [k, v] of Object.entries(allVars)) args.push("--var", `${k}:${v}`);
  const child = spawnGroup(join(ROOT, "node_modules", ".bin", "wrangler"), args, {
    cwd: dir,
    env: { ...process.env, CI: "true", WRANGLER_SEND_METRICS: "false", CLOUDFLARE_CF_FETCH_ENABLED: "false", WRANGLER_HIDE_BANNER: "true" },
  });
  const stop = async () => {
    await child.stop();
    if (ownDir) rmSync(persistTo, { recursive: true, force: true });
    if (assetsDir) rmSync(assetsDir, { recursive: true, force: true });
  };
  await child.waitFor(async () => {
    try {
      return (await fetch(`${origin}/healthz`, { signal: AbortSignal.timeout(2_000) })).ok;
    } catch { return false; /* not up yet */ }
  }, readyMs, `wrangler dev (${dir})`).catch(async (e) => { await stop(); throw e; });
  return { origin, port, inspectorPort, pid: child.pid, persistTo, stop, log: child.output };
}
