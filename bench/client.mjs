// The client step of the benchmarks alone (issue 13): sizes of everything the script tag
// loads and, in Chromium, the main-thread time it adds to a bare page, against `wrangler dev`
// of the built worker on a free loopback port. Prints the markdown of BENCHMARKS.md § 3.
//
//   node bench/client.mjs [--runs N]     (default 5; build first: make build)
import { execFileSync } from "node:child_process";
import { startWrangler } from "../tests/lib/wrangler.mjs";
import { CLIENT_DIR, clientFiles } from "../tests/lib/client-files.mjs";
import { fileSizes, launchChromium, measureClient } from "./lib/client.mjs";
import { clientLines } from "./lib/report.mjs";

const i = process.argv.indexOf("--runs");
const runs = i > 0 ? Number(process.argv[i + 1]) : 5;
if (!Number.isInteger(runs) || runs < 1 || runs > 50) throw new Error("--runs takes 1 to 50");

clientFiles(); // fails unless www/herenow/ holds one build
const chromium = execFileSync(process.env.CHROMIUM ?? "/usr/bin/chromium", ["--version"], { encoding: "utf8" })
  .trim().split("\n").pop();
const client = { sizes: fileSizes(CLIENT_DIR), chromium: null, error: null };
const server = await startWrangler();
try {
  const browser = await launchChromium();
  try {
    client.chromium = await measureClient(browser, server.origin, runs);
  } finally {
    await browser.close();
  }
} finally {
  await server.stop();
}
console.log(clientLines(client, chromium).join("\n"));
const ch = client.chromium;
const task = (s) => s.map((x) => x.task.toFixed(1)).join(" ");
console.log(`\nsamples (task ms): with ${task(ch.samples.withScript)}; bare ${task(ch.samples.bare)}; shown ${JSON.stringify(ch.shown)}`);
