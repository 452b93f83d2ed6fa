// The harness's start of `wrangler dev` (tests/lib/wrangler.mjs), which every suite on
// wrangler uses and the bench starts five of at once: a port taken between picking and
// binding is picked again; a taken port the caller chose fails fast, and says why last.
import { test, describe, before, after } from "node:test";
import assert from "node:assert/strict";
import { createServer } from "node:net";
import { startWrangler, freePort } from "./lib/wrangler.mjs";

describe("starting wrangler dev", () => {
  let squatter; // a listener that accepts and never answers, as a stray server would
  let taken;
  before(async () => {
    squatter = createServer(() => {});
    await new Promise((resolve) => squatter.listen(0, "127.0.0.1", resolve));
    taken = squatter.address().port;
  });
  after(() => squatter?.close());

  test("a picked port taken before it binds: it starts again on another", async () => {
    let first = true;
    const pickPort = async () => {
      if (first) { first = false; return taken; }
      return freePort();
    };
    const server = await startWrangler({ pickPort });
    try {
      assert.notEqual(server.port, taken);
      const r = await fetch(`${server.origin}/healthz`);
      assert.equal(r.status, 200);
    } finally {
      await server.stop();
    }
  });

  test("a taken port the caller chose: it fails within 30 s, its cause repeated last", { timeout: 60_000 }, async () => {
    const t0 = Date.now();
    await assert.rejects(startWrangler({ port: taken, readyMs: 30_000 }), (e) => {
      assert.match(e.message, /exited with 1/);
      assert.match(e.message.split("\n").at(-1), /its first error line: .*Address already in use/);
      return true;
    });
    assert.ok(Date.now() - t0 < 30_000, `failed after ${Date.now() - t0} ms`);
  });
});
