// Source of www/herenow/herenow.js: scripts/build-client.sh puts the content-hashed names of
// the glue and .wasm in place of the two file names below, and minifies it.
// herenow loader. Usage:
//   <script type="module" src="/herenow/herenow.js" data-site="demo"
//     [data-endpoint="https://api.example"] [data-page="/path"] [data-cookie="false"]
//     [data-member-token="…"]></script>
// Finds its own <script> element (module scripts have no document.currentScript), loads the
// wasm client that sits beside it and starts it. Never throws into the page: a failure is
// one console warning.
const here = import.meta.url;
(async () => {
  const script =
    [...document.querySelectorAll("script[src]")].find((s) => s.src === here) ||
    document.querySelector('script[type="module"][src*="herenow"][data-site]');
  const d = (script && script.dataset) || {};
  const glue = await import(new URL("herenow_wasm.js", here).href);
  await glue.default({ module_or_path: new URL("herenow_wasm_bg.wasm", here) });
  await glue.start({
    endpoint: d.endpoint || "",
    site: d.site,
    page: d.page || undefined,
    cookie: d.cookie === "false" ? false : undefined,
    memberToken: d.memberToken || undefined,
  });
})().catch((e) => console.warn("herenow: not started:", e));
