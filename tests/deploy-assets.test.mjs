// What a deploy uploads as static assets carries nothing dev-only (issue 14), and the dev
// asset set of `make dev` and the tests still carries the member sign-in. `make test-deploy`
// runs `wrangler deploy --dry-run` with WRANGLER_LOG=debug first: the dry run uploads nothing,
// but its log lists every file it read from the assets directory (edge/wrangler.toml
// [assets]) and each one it ignores (_headers); the rest is what a deploy would upload.
import { test } from "node:test";
import assert from "node:assert/strict";
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, relative } from "node:path";
import { ROOT } from "./lib/miniflare.mjs";
import { assembleDevAssets, WWW, WWW_DEV } from "../scripts/dev-assets.mjs";

const DEPLOY_LOG = join(ROOT, "target", "deploy.log");
/** The public dev-only secret of the demo site (edge/.dev.vars), which only dev may carry. */
const DEV_SECRET = readFileSync(join(ROOT, "edge", ".dev.vars"), "utf8").match(/^MEMBER_SECRET_DEMO=(.+)$/m)?.[1];
/** A script tag that loads a file of www-dev/. */
const DEV_TAG = new RegExp(`<script\\b[^>]*\\ssrc="/(${readdirSync(WWW_DEV).join("|").replace(/\./g, "\\.")})"`);

/** The dry run's upload set: `/path` → content, from the files its log lists. */
function deployedSet() {
  assert.ok(existsSync(DEPLOY_LOG), `${DEPLOY_LOG}: run \`make test-deploy\``);
  const lines = readFileSync(DEPLOY_LOG, "utf8").split("\n");
  const at = lines.findIndex((l) => /Read \d+ files? from the assets directory /.test(l));
  assert.ok(at >= 0, "the dry run read an assets directory");
  const [, n, dir] = lines[at].match(/Read (\d+) files? from the assets directory (.+)$/);
  const listed = lines.slice(at + 1, at + 1 + Number(n));
  assert.ok(listed.every((l) => l.startsWith("/")), `the log lists ${n} files: ${listed.join(" ")}`);
  const ignored = new Set(lines.map((l) => l.match(/^Ignoring asset: (.+)$/)?.[1]).filter(Boolean).map((f) => `/${f}`));
  const files = new Map();
  for (const path of listed) {
    const file = join(dir, path);
    if (!ignored.has(path) && statSync(file).isFile()) files.set(path, readFileSync(file));
  }
  return { dir, files };
}

/** Every file under `dir` as `/path` → content (the dev set; _headers is not a page). */
function assetSet(dir) {
  const files = new Map();
  for (const e of readdirSync(dir, { recursive: true, withFileTypes: true })) {
    if (!e.isFile()) continue;
    const path = join(e.parentPath, e.name);
    const rel = relative(dir, path).split("\\").join("/");
    if (rel !== "_headers") files.set(`/${rel}`, readFileSync(path));
  }
  return files;
}

/** The files of a set that hold the dev secret. */
const signers = (set) => [...set].filter(([, bytes]) => bytes.includes(DEV_SECRET)).map(([p]) => p);

test("the deploy's asset set (wrangler's dry run of edge/wrangler.toml) has no dev-only file and no file with the dev secret", () => {
  assert.ok(DEV_SECRET && DEV_SECRET.length >= 16, "edge/.dev.vars names MEMBER_SECRET_DEMO");
  const { dir, files: set } = deployedSet();
  assert.equal(dir, WWW, "a deploy uploads www/");
  assert.ok(set.has("/index.html") && set.has("/demo.js") && set.has("/herenow/herenow.js"),
    `the demo and the built client are deployed: ${[...set.keys()].join(" ")}`);
  const devOnly = readdirSync(WWW_DEV).map((f) => `/${f}`);
  assert.ok(devOnly.includes("/dev-signin.js"));
  assert.deepEqual(devOnly.filter((p) => set.has(p)), [], "no www-dev/ file is deployed");
  assert.deepEqual(signers(set), [], "no deployed file signs with the dev secret");
  for (const [path, bytes] of set) {
    if (path.endsWith(".html")) assert.doesNotMatch(bytes.toString("utf8"), DEV_TAG, `${path} loads no dev-only script`);
  }
});

test("the dev asset set (make dev, tests) is www/ plus the sign-in, loaded before the loader", () => {
  const out = mkdtempSync(join(tmpdir(), "herenow-dev-assets-test-"));
  try {
    const pages = assembleDevAssets(out);
    assert.deepEqual(pages.sort(), ["about.html", "index.html"]);
    const set = assetSet(out);
    assert.deepEqual(signers(set), ["/dev-signin.js"]);
    for (const page of pages) assert.match(set.get(`/${page}`).toString("utf8"), DEV_TAG, page);
    for (const page of pages) {
      const html = set.get(`/${page}`).toString("utf8");
      const signin = html.indexOf('<script type="module" src="/dev-signin.js"></script>');
      assert.ok(signin > 0, `${page} loads the sign-in`);
      assert.ok(signin < html.indexOf('src="/herenow/herenow.js"'), `${page}: the sign-in runs before the loader`);
    }
    for (const path of assetSet(WWW).keys()) assert.ok(set.has(path), `dev set has ${path}`);
  } finally {
    rmSync(out, { recursive: true, force: true });
  }
});
