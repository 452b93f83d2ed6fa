// The files the script tag loads, as scripts/build-client.sh writes them into www/herenow/:
// one, the loader at its fixed name, with the client and its wasm inside (nothing else is
// fetched before the first heartbeat).
import { readdirSync } from "node:fs";
import { join } from "node:path";
import { ROOT } from "./miniflare.mjs";

/** www/herenow/, the directory the worker serves at /herenow/. */
export const CLIENT_DIR = join(ROOT, "www", "herenow");

/**
 * `{ loader }`: the file names in `dir` (default www/herenow/). Throws unless the loader is
 * the only file there, so a stale build's leftovers cannot pass for the current one.
 */
export function clientFiles(dir = CLIENT_DIR) {
  const files = readdirSync(dir);
  if (files.length !== 1 || files[0] !== "herenow.js") {
    throw new Error(`${dir}: expected herenow.js alone, found ${JSON.stringify(files)} (scripts/build-client.sh)`);
  }
  return { loader: files[0] };
}
