// The script tag's file: client.js (and its inlined wasm) bundled into www/herenow/herenow.js
// by scripts/build-client.sh. Usage:
//   <script type="module" src="/herenow/herenow.js" data-site="demo"
//     [data-endpoint="https://api.example"] [data-page="/path"] [data-track="false"]
//     [data-cookie="false"] [data-cookie-max-age="1800"] [data-member-token="…"]></script>
// Finds its own <script> element (module scripts have no document.currentScript) and starts
// the client with its data- attributes. Never throws into the page: a failure is one
// console warning (naming the CSP directive when the policy blocks WebAssembly).
// Imported by a module instead (no such tag), it starts nothing and exports start().
import { start } from "./client.js";

export { start };

const here = import.meta.url;
const script =
  [...document.querySelectorAll("script[src]")].find((s) => s.src === here) ||
  document.querySelector('script[type="module"][src*="herenow"][data-site]');
if (script) {
  const d = script.dataset;
  start({
    endpoint: d.endpoint || "",
    site: d.site,
    page: d.page || undefined,
    track: d.track !== "false",
    cookie: d.cookie === "false" ? false : undefined,
    cookieMaxAge: d.cookieMaxAge ? +d.cookieMaxAge : undefined,
    memberToken: d.memberToken || undefined,
  }).catch((e) =>
    console.warn("herenow: not started:", /eval/.test(e) ? "add 'wasm-unsafe-eval' to the CSP's script-src;" : "", e));
}
