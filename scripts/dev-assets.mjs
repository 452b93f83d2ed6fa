// The dev asset set: www/ plus the dev-only files of www-dev/, for `wrangler dev --assets DIR`
// (`make dev`, tests/lib/wrangler.mjs). A deploy serves www/ alone (edge/wrangler.toml
// [assets]), so nothing of www-dev/ — the member sign-in that signs tokens with the public
// dev secret — ever reaches a deployment.
//
//   node scripts/dev-assets.mjs OUT     # writes OUT afresh (www/herenow/ must be built)
//
// The pages of www/ mark with DEV_MARKER where dev-only scripts go; here each marker becomes
// a module script tag per www-dev/*.js, in place, so they run before the loader (module
// scripts run in document order) and can put a stored member token on its tag.
import { cpSync, readdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";

const ROOT = join(dirname(fileURLToPath(import.meta.url)), "..");
/** The production asset set (the directory edge/wrangler.toml's [assets] names). */
export const WWW = join(ROOT, "www");
/** The dev-only files, served by dev servers only. */
export const WWW_DEV = join(ROOT, "www-dev");
/** The comment in a page of www/ that the dev set replaces with its dev-only scripts. */
export const DEV_MARKER = /<!-- herenow:dev-scripts\b[\s\S]*?-->/;

/** Writes the dev asset set into `out` (removed first); returns the pages that got the scripts. */
export function assembleDevAssets(out) {
  rmSync(out, { recursive: true, force: true });
  cpSync(WWW, out, { recursive: true });
  cpSync(WWW_DEV, out, { recursive: true });
  const tags = readdirSync(WWW_DEV).filter((f) => f.endsWith(".js")).sort()
    .map((f) => `<script type="module" src="/${f}"></script>`).join("\n  ");
  const pages = [];
  for (const f of readdirSync(out).filter((f) => f.endsWith(".html"))) {
    const html = readFileSync(join(out, f), "utf8");
    if (!DEV_MARKER.test(html)) continue;
    writeFileSync(join(out, f), html.replace(DEV_MARKER, tags));
    pages.push(f);
  }
  if (!pages.includes("index.html")) throw new Error(`dev-assets: www/index.html has no ${DEV_MARKER} marker`);
  return pages;
}

if (process.argv[1] && resolve(process.argv[1]) === fileURLToPath(import.meta.url)) {
  const out = process.argv[2];
  if (!out) {
    console.error("usage: node scripts/dev-assets.mjs OUT");
    process.exit(2);
  }
  const pages = assembleDevAssets(resolve(out));
  console.log(`==> dev assets in ${out}: www/ + www-dev/ (dev scripts on ${pages.join(", ")})`);
}
