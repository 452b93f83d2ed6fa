// herenow for bundlers: `import { start } from "herenow"`.
//
// The wasm sits beside this file; `new URL("./herenow_bg.wasm", import.meta.url)` is the
// form bundlers (vite, webpack 5, rollup, parcel, esbuild with a loader) recognise, so they
// copy the file into the build and rewrite the URL. It is fetched once, on the first start().
import init, { start as startClient } from "./herenow.js";

let ready;

/**
 * Starts counting this page. Resolves to a handle with `count()` and `stop()`; rejects with
 * an Error naming a missing or invalid option, a missing browser feature, or a wasm that
 * could not be loaded (a later call tries the load again).
 *
 * @param {import("./index.js").HerenowOptions} options
 * @returns {Promise<import("./index.js").HerenowHandle>}
 */
export function start(options) {
  if (!ready) {
    ready = init({ module_or_path: new URL("./herenow_bg.wasm", import.meta.url) });
    ready.catch(() => {
      ready = undefined;
    });
  }
  return ready.then(() => startClient(options));
}
