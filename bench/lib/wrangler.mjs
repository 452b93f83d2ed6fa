// Starts `wrangler dev` (local workerd, local KV persisted on disk) for any worker folder
// on a free loopback port through tests/lib/wrangler.mjs, and stops it by its process group.
// Used for herenow (edge/), bench/naive and bench/ceiling.
import { freePort, startWrangler as startTestWrangler } from "../../tests/lib/wrangler.mjs";
import { cpSync, mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, dirname } from "node:path";
import { fileURLToPath } from "node:url";

export const ROOT = join(dirname(fileURLToPath(import.meta.url)), "..", "..");

export { freePort };

/**
 * Starts wrangler dev in `dir` with `vars` (tests/lib/wrangler.mjs, quieter); returns
 * { origin, port, inspectorPort, pid, stop, log() }.
 */
export function startWrangler(options) {
  return startTestWrangler({ readyMs: 90_000, ...options, extraArgs: ["--log-level", "warn", ...(options.extraArgs ?? [])] });
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
