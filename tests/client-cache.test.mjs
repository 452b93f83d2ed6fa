// The client's file under `wrangler dev`, as a browser gets it: one file at the fixed name the
// script tag uses, with a short cache (www/_headers), that loads nothing else: the client
// and its wasm are inside it (scripts/build-client.sh).
import { test, describe, before, after } from "node:test";
import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { startWrangler } from "./lib/wrangler.mjs";
import { CLIENT_DIR, clientFiles } from "./lib/client-files.mjs";

describe("client files: names and caching", () => {
  let server;
  before(async () => { server = await startWrangler(); });
  after(async () => { await server?.stop(); });

  test("the served loader is the built one and names no other file to fetch", async () => {
    const { loader } = clientFiles();
    const r = await fetch(`${server.origin}/herenow/${loader}`);
    assert.equal(r.status, 200);
    const body = Buffer.from(await r.arrayBuffer());
    assert.ok(body.equals(readFileSync(join(CLIENT_DIR, loader))), "the built file");
    const text = body.toString("utf8");
    assert.doesNotMatch(text, /\bimport\s*\(|\bimport\s*["{*]|\.wasm\b|new URL\(/, "it imports or fetches nothing");
    assert.match(text, /WebAssembly\.instantiate/);
  });

  test("Cache-Control: the loader 5 minutes; CORS for a public script", async () => {
    const { loader } = clientFiles();
    const r = await fetch(`${server.origin}/herenow/${loader}`);
    await r.arrayBuffer();
    assert.equal(r.status, 200);
    assert.equal(r.headers.get("cache-control"), "public, max-age=300");
    assert.equal(r.headers.get("access-control-allow-origin"), "*");
    assert.equal(r.headers.get("cross-origin-resource-policy"), "cross-origin");
    // A file that is not the client's keeps the default (no immutable caching by accident).
    const other = await fetch(`${server.origin}/style.css`);
    await other.arrayBuffer();
    assert.doesNotMatch(other.headers.get("cache-control") ?? "", /immutable/);
  });
});
