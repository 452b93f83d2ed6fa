// herenow for bundlers: `import { start } from "herenow"`.
//
// herenow.js is the client itself (client/js/client.js, the same code the script tag's
// file bundles) and herenow_wasm.js its lifecycle machine as base64, not a .wasm file
// beside it: esbuild does not copy a `new URL("x.wasm", import.meta.url)` asset, vite's
// dependency pre-bundling loses it, and every bundler handles a plain module. The wasm is
// decoded and compiled once, on the first start() (a later one tries again after a failure,
// such as a CSP without 'wasm-unsafe-eval').
export { start } from "./herenow.js";
