// The app tests/npm.test.mjs builds with esbuild, webpack 5 and rollup (build.mjs) and opens
// in Chromium: it imports the packed herenow package like any user would. The endpoint comes
// from the query string (?endpoint=http://127.0.0.1:PORT), so one build works against any
// test server.
import { start } from "herenow";

const params = new URLSearchParams(location.search);
const online = document.getElementById("online");
const status = document.getElementById("status");

start({
  endpoint: params.get("endpoint") ?? "",
  site: params.get("site") ?? "demo",
  onCount: (count) => {
    online.textContent = String(count.online);
  },
})
  .then((handle) => {
    // For the test: window.herenow.count() and window.herenow.stop().
    Object.assign(window, { herenow: handle });
    status.textContent = "started";
  })
  .catch((e) => {
    status.textContent = `error: ${e instanceof Error ? e.message : String(e)}`;
  });
