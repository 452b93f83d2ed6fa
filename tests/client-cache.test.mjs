// The client's files under `wrangler dev`, as a browser gets them: the loader at its fixed
// name with a short cache, the glue and .wasm it imports under names that are a hash of their
// content, cached immutable (www/_headers, scripts/build-client.sh).
import { test, describe, before, after } from "node:test";
import assert from "node:assert/strict";
import { createHash } from "node:crypto";
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { startWrangler } from "./lib/wrangler.mjs";
import { CLIENT_DIR, HASHED, clientFiles } from "./lib/client-files.mjs";

const sha12 = (buf) => createHash("sha256").update(buf).digest("hex").slice(0, 12);

describe("client files: names and caching", () => {
  let server;
  before(async () => { server = await startWrangler(); });
  after(async () => { await server?.stop(); });

  test("the glue's and the .wasm's names are the hash of their content", () => {
    const { glue, wasm } = clientFiles();
    assert.equal(glue.match(HASHED.glue)[1], sha12(readFileSync(join(CLIENT_DIR, glue))), glue);
    assert.equal(wasm.match(HASHED.wasm)[1], sha12(readFileSync(join(CLIENT_DIR, wasm))), wasm);
  });

  test("the served loader imports exactly the served hashed files", async () => {
    const { glue, wasm } = clientFiles();
    const r = await fetch(`${server.origin}/herenow/herenow.js`);
    assert.equal(r.status, 200);
    const loader = await r.text();
    const names = [...loader.matchAll(/"(herenow_wasm[^"]*)"/g)].map((m) => m[1]).sort();
    assert.deepEqual(names, [glue, wasm].sort());
    for (const f of names) {
      const got = await fetch(new URL(f, `${server.origin}/herenow/`));
      assert.equal(got.status, 200, f);
      assert.ok(Buffer.from(await got.arrayBuffer()).equals(readFileSync(join(CLIENT_DIR, f))), `${f} is the built file`);
    }
  });

  test("Cache-Control: the loader 5 minutes, the hashed files a year and immutable", async () => {
    const { loader, glue, wasm } = clientFiles();
    const cc = async (f) => {
      const r = await fetch(`${server.origin}/herenow/${f}`);
      await r.arrayBuffer();
      assert.equal(r.status, 200, f);
      return r.headers.get("cache-control");
    };
    assert.equal(await cc(loader), "public, max-age=300");
    for (const f of [glue, wasm]) assert.equal(await cc(f), "public, max-age=31536000, immutable", f);
    // A file that is not the client's keeps the default (no immutable caching by accident).
    assert.doesNotMatch((await cc("../style.css")) ?? "", /immutable/);
  });
});
