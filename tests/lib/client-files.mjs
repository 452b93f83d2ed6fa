// The files the script tag loads, as scripts/build-client.sh writes them into www/herenow/:
// the loader at its fixed name, the glue and the .wasm under content-hashed names.
import { readdirSync } from "node:fs";
import { join } from "node:path";
import { ROOT } from "./miniflare.mjs";

/** www/herenow/, the directory the worker serves at /herenow/. */
export const CLIENT_DIR = join(ROOT, "www", "herenow");

/** The glue's and the .wasm's hashed names: herenow_wasm.<hash>.js, herenow_wasm_bg.<hash>.wasm. */
export const HASHED = { glue: /^herenow_wasm\.([0-9a-f]{12})\.js$/, wasm: /^herenow_wasm_bg\.([0-9a-f]{12})\.wasm$/ };

/**
 * `{ loader, glue, wasm }`: the file names in `dir` (default www/herenow/). Throws unless
 * there is exactly one of each, so a stale build cannot pass for the current one.
 */
export function clientFiles(dir = CLIENT_DIR) {
  const files = readdirSync(dir);
  const one = (re, what) => {
    const found = files.filter((f) => re.test(f));
    if (found.length !== 1) throw new Error(`${dir}: expected one ${what}, found ${JSON.stringify(found)} (scripts/build-client.sh)`);
    return found[0];
  };
  return { loader: one(/^herenow\.js$/, "loader"), glue: one(HASHED.glue, "glue"), wasm: one(HASHED.wasm, "wasm") };
}
