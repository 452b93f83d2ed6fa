// Source of www/herenow/herenow.js: scripts/build-client.sh puts the content-hashed names of
// the glue and .wasm in place of the two file names below, and minifies it.
// herenow loader. Usage:
//   <script type="module" src="/herenow/herenow.js" data-site="demo"
//     [data-endpoint="https://api.example"] [data-page="/path"] [data-track="false"]
//     [data-cookie="false"] [data-cookie-max-age="1800"] [data-member-token="…"]></script>
// Finds its own <script> element (module scripts have no document.currentScript), loads the
// wasm client that sits beside it and starts it. Never throws into the page: a failure is
// one console warning (naming the CSP directive when the policy blocks WebAssembly).
const here = import.meta.url;
// Without the Navigation API, pushState/replaceState fire no event: say `herenow:navigate`
// (the client follows it and popstate). Here rather than in the wasm, where it costs ~1 KB.
if (!self.navigation)
  for (const m of ["pushState", "replaceState"]) {
    const f = history[m];
    history[m] = function () {
      const r = f.apply(this, arguments);
      dispatchEvent(new Event("herenow:navigate"));
      return r;
    };
  }
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
    track: d.track !== "false",
    cookie: d.cookie === "false" ? false : undefined,
    cookieMaxAge: d.cookieMaxAge ? +d.cookieMaxAge : undefined,
    memberToken: d.memberToken || undefined,
  });
})().catch((e) =>
  console.warn("herenow: not started:", /eval/.test(e) ? "add 'wasm-unsafe-eval' to the CSP's script-src;" : "", e));
