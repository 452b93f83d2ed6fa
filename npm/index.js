// herenow for bundlers: `import { start } from "herenow"`.
//
// The wasm is inside the package's JavaScript (herenow_wasm.js, base64), not a file beside
// it: esbuild does not copy a `new URL("x.wasm", import.meta.url)` asset, vite's dependency
// pre-bundling loses it, and every bundler handles a plain module. It is decoded and
// compiled once, on the first start().
import init, { start as startClient } from "./herenow.js";
import wasmBase64 from "./herenow_wasm.js";

let ready;

/** The wasm's bytes, decoded from base64 (atob: every browser, no fetch, no CSP connect-src). */
function wasmBytes() {
  const text = atob(wasmBase64);
  const bytes = new Uint8Array(text.length);
  for (let i = 0; i < text.length; i++) bytes[i] = text.charCodeAt(i);
  return bytes;
}

/**
 * Starts counting this page. Resolves to a handle with `count()` and `stop()`; rejects with
 * an Error naming a missing or invalid option, a missing browser feature, or a wasm that
 * could not be compiled (a CSP without 'wasm-unsafe-eval'; a later call tries again).
 *
 * @param {import("./index.js").HerenowOptions} options
 * @returns {Promise<import("./index.js").HerenowHandle>}
 */
export function start(options) {
  if (!ready) {
    ready = Promise.resolve().then(() => init({ module_or_path: wasmBytes() }));
    ready.catch(() => {
      ready = undefined;
    });
  }
  return ready.then(() => startClient(options));
}
