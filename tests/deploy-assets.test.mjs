// What a deploy uploads as static assets carries nothing dev-only (issue 14), and the dev
// asset set of `make dev` and the tests still carries the member sign-in. `wrangler deploy
// --dry-run` (make test-deploy, before this) skips the asset upload, so the production set is
// listed here as wrangler lists it: the config's [assets] directory (read by wrangler's own
// config reader, resolved against the config's folder), every file but _headers, _redirects
// and .assetsignore.
import { test } from "node:test";
import assert from "node:assert/strict";
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { dirname, join, relative, resolve } from "node:path";
import { unstable_readConfig } from "wrangler";
import { ROOT } from "./lib/miniflare.mjs";
import { assembleDevAssets, WWW_DEV } from "../scripts/dev-assets.mjs";

const CONFIG = join(ROOT, "edge", "wrangler.toml");
/** Files wrangler never uploads from an assets directory. */
const NOT_UPLOADED = new Set(["_headers", "_redirects", ".assetsignore"]);
/** The public dev-only secret of the demo site (edge/.dev.vars), which only dev may carry. */
const DEV_SECRET = readFileSync(join(ROOT, "edge", ".dev.vars"), "utf8").match(/^MEMBER_SECRET_DEMO=(.+)$/m)?.[1];

/** Every file under `dir` as `/path` → content, as the site serves it. */
function assetSet(dir) {
  const files = new Map();
  for (const e of readdirSync(dir, { recursive: true, withFileTypes: true })) {
    if (!e.isFile()) continue;
    const path = join(e.parentPath, e.name);
    const rel = relative(dir, path).split("\\").join("/");
    if (!NOT_UPLOADED.has(rel)) files.set(`/${rel}`, readFileSync(path));
  }
  return files;
}

/** The files of a set that hold the dev secret. */
const signers = (set) => [...set].filter(([, bytes]) => bytes.includes(DEV_SECRET)).map(([p]) => p);

test("the deploy's asset set (edge/wrangler.toml [assets]) has no dev-only file and no file with the dev secret", () => {
  assert.ok(DEV_SECRET && DEV_SECRET.length >= 16, "edge/.dev.vars names MEMBER_SECRET_DEMO");
  const config = unstable_readConfig({ config: CONFIG });
  assert.ok(config.assets?.directory, "wrangler.toml has [assets] directory");
  const dir = resolve(dirname(CONFIG), config.assets.directory);
  // An .assetsignore would filter the upload; there is none, so the set is the whole directory.
  assert.ok(!existsSync(join(dir, ".assetsignore")), `${dir}/.assetsignore`);
  const set = assetSet(dir);
  assert.ok(set.has("/index.html") && set.has("/demo.js") && set.has("/herenow/herenow.js"),
    `the demo and the built client are deployed: ${[...set.keys()].join(" ")}`);
  const devOnly = readdirSync(WWW_DEV).map((f) => `/${f}`);
  assert.ok(devOnly.includes("/dev-signin.js"));
  assert.deepEqual(devOnly.filter((p) => set.has(p)), [], "no www-dev/ file is deployed");
  assert.deepEqual(signers(set), [], "no deployed file signs with the dev secret");
  for (const [path, bytes] of set) {
    if (path.endsWith(".html")) assert.doesNotMatch(bytes.toString("utf8"), /dev-signin/, `${path} loads no dev-only script`);
  }
});

test("the dev asset set (make dev, tests) is www/ plus the sign-in, loaded before the loader", () => {
  const out = mkdtempSync(join(tmpdir(), "herenow-dev-assets-test-"));
  try {
    const pages = assembleDevAssets(out);
    assert.deepEqual(pages.sort(), ["about.html", "index.html"]);
    const set = assetSet(out);
    assert.deepEqual(signers(set), ["/dev-signin.js"]);
    for (const page of pages) {
      const html = set.get(`/${page}`).toString("utf8");
      const signin = html.indexOf('<script type="module" src="/dev-signin.js"></script>');
      assert.ok(signin > 0, `${page} loads the sign-in`);
      assert.ok(signin < html.indexOf('src="/herenow/herenow.js"'), `${page}: the sign-in runs before the loader`);
    }
    for (const path of assetSet(join(ROOT, "www")).keys()) assert.ok(set.has(path), `dev set has ${path}`);
  } finally {
    rmSync(out, { recursive: true, force: true });
  }
});
