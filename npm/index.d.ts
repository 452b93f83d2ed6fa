// herenow: "N people online" for any website. TypeScript declarations.

/* HERENOW_CLIENT_TYPES: scripts/build-npm.sh puts here the interfaces that client/src/lib.rs declares (typescript_custom_section), so they cannot drift apart. */

/** A running client, as returned by {@link start}. */
export interface HerenowHandle {
  /**
   * The last count object received, or a fresh one from `GET /v1/count` for this page
   * when none has arrived yet; rejects with an Error when that request fails.
   */
  count(): Promise<HerenowCount>;
  /**
   * Counts this tab on `path` from now on, with a heartbeat at once: for routers that say
   * where they are. Stops following `location`; a path not starting with `/` is ignored.
   */
  setPage(path: string): void;
  /** Stops for good: sends a leave, removes the listeners, cancels the timer and any fetch. */
  stop(): void;
}

/**
 * Starts counting this page. Resolves to a {@link HerenowHandle}; rejects with an Error
 * naming a missing or invalid option, a missing browser feature, or a wasm that could not
 * be loaded. Never throws synchronously.
 *
 * @example
 * import { start } from "herenow";
 * const h = await start({ endpoint: "https://herenow.example", site: "demo",
 *   onCount: (c) => console.log(c.online) });
 */
export function start(options: HerenowOptions): Promise<HerenowHandle>;
