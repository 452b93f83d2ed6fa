// Compiled by `tsc --noEmit` (tests/npm.test.mjs), never run: typed use of the packed
// herenow package must compile, and each misuse marked @ts-expect-error must be an error
// (tsc fails on an unused @ts-expect-error), which proves the declarations are not `any`.
import { start, type HerenowCount, type HerenowHandle, type HerenowOptions } from "herenow";
// @ts-expect-error the wasm-bindgen glue's init functions are not part of the API
import { initSync } from "herenow";

export async function typedUse(): Promise<number> {
  const options: HerenowOptions = {
    endpoint: "https://herenow.example",
    site: "demo",
    page: "/pricing",
    memberToken: async () => (Math.random() > 0.5 ? "token" : null),
    cookie: false,
    cookieMaxAge: 3600,
    onCount: (c) => {
      const n: number = c.online;
      void n;
    },
  };
  const h: HerenowHandle = await start(options);
  await start({ endpoint: "", site: "demo", memberToken: "a.b.c" });
  await start({ endpoint: "", site: "demo", memberToken: () => undefined });
  const c: HerenowCount = await h.count();
  const fields: number[] = [c.online, c.tabs, c.members, c.guests, c.idle, c.window_s, c.as_of];
  const page: number | undefined = c.page;
  const next: number | undefined = c.next_heartbeat_ms;
  const top: { page: string; online: number }[] = c.pages;
  const stopped: void = h.stop();
  void [fields, page, next, top, stopped];
  return c.online;
}

export async function misuse(h: HerenowHandle, c: HerenowCount): Promise<void> {
  // @ts-expect-error site is required
  await start({ endpoint: "" });
  // @ts-expect-error endpoint is required
  await start({ site: "demo" });
  // @ts-expect-error cookie is a boolean
  await start({ endpoint: "", site: "demo", cookie: "no" });
  // @ts-expect-error memberToken is a string or a function
  await start({ endpoint: "", site: "demo", memberToken: 42 });
  // @ts-expect-error onCount receives a count object
  await start({ endpoint: "", site: "demo", onCount: (s: string) => s.length });
  // @ts-expect-error unknown option
  await start({ endpoint: "", site: "demo", sites: "x" });
  // @ts-expect-error count() resolves to an object, not a number
  const n: number = await h.count();
  // @ts-expect-error online is a number
  const s: string = c.online;
  // @ts-expect-error no such field
  void c.visitors;
  // @ts-expect-error page may be undefined
  const p: number = c.page;
  // @ts-expect-error the handle has no such method
  h.restart();
  void [n, s, p, initSync];
}
