#!/usr/bin/env node
// Prints edge/wrangler.toml's SITES with the given origins added to the demo site, for
// `make dev ORIGINS="http://localhost:3000 http://127.0.0.1:4000"` (wrangler dev --var SITES:…).
// The file itself is not changed. Fails, naming the value, on an origin the edge would refuse.
//
//   node scripts/dev-sites.mjs ORIGIN…
import { readFileSync } from "node:fs";

const fail = (m) => { console.error(`make dev ORIGINS: ${m}`); process.exit(1); };
const toml = readFileSync(new URL("../edge/wrangler.toml", import.meta.url), "utf8");
const raw = toml.match(/^SITES\s*=\s*'(.*)'\s*$/m)?.[1] ?? fail("no SITES = '…' line in edge/wrangler.toml");
const sites = JSON.parse(raw);
if (!sites.demo) fail("edge/wrangler.toml's SITES has no demo site");
const origins = process.argv.slice(2).flatMap((a) => a.split(/[\s,]+/)).filter(Boolean);
for (const o of origins) {
  // The shape config.rs accepts: scheme://host[:port], no path, no trailing slash.
  if (!/^https?:\/\/[^/\s]+$/.test(o)) fail(`${JSON.stringify(o)} must be scheme://host[:port] with no path, e.g. http://localhost:3000`);
  if (!sites.demo.origins.includes(o)) sites.demo.origins.push(o);
}
process.stdout.write(JSON.stringify(sites));
