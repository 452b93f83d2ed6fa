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
export async function startWrangler({ vars = {}, port, persistTo, dir = join(ROOT, "edge"), readyMs = 60_000, persistRoot, extraArgs = [],
  devAssets = dir === join(ROOT, "edge") } = {}) {
  port ??= await freePort();
  const origin = `http://127.0.0.1:${port}`;
  const ownDir = !persistTo;
  persistTo ??= mkdtempSync(join(persistRoot ?? tmpdir(), "herenow-wrangler-"));
  const allVars = {
    // As edge/wrangler.toml's demo site: members public, so its dashboard lists them.
    SITES: JSON.stringify({ demo: { origins: [origin, `http://localhost:${port}`], members_public: true } }),
    ...vars,
  };
  const inspectorPort = await freePort();
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
      return (await fetch(`${origin}/healthz`)).ok;
    } catch { return false; /* not up yet */ }
  }, readyMs, `wrangler dev (${dir})`).catch(async (e) => { await stop(); throw e; });
  return { origin, port, inspectorPort, pid: child.pid, persistTo, stop, log: child.output };
}
