// herenow: "N people online" for any website. TypeScript declarations.

/** A count object from the herenow API. */
export interface HerenowCount {
  online: number; tabs: number; members: number; guests: number; idle: number;
  page?: number; pages: { page: string; online: number }[];
  window_s: number; as_of: number; next_heartbeat_ms?: number;
  /** The site's best count so far and when it was reached (unix ms), when the server keeps one. */
  record?: { online: number; at: number };
}

/** Options of {@link start}. */
export interface HerenowOptions {
  /** API base URL, or "" for the page's own origin. */
  endpoint: string;
  /** The site name. */
  site: string;
  /** The page path counted; pins it (default: location.pathname, following same-document navigations). */
  page?: string;
  /** A member token, or a (possibly async) function returning one. */
  memberToken?: string | (() => string | null | undefined | Promise<string | null | undefined>);
  /** false: keep the visitor id in memory only (default: a cookie unless Global Privacy Control). */
  cookie?: boolean;
  /** The cookie's Max-Age in seconds, renewed by each heartbeat (default 1800: 30 minutes). */
  cookieMaxAge?: number;
  /** false: watch only: show the counts without being counted (no heartbeat, no cookie). */
  track?: boolean;
  /** Called with every count. */
  onCount?: (count: HerenowCount) => void;
}

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
