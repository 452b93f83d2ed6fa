// ============================================================================
//  DEVELOPMENT ONLY: a local "member sign-in" for the herenow demo.
// ============================================================================
// It signs an HS256 member token IN THE BROWSER with the public, dev-only secret from
// edge/.dev.vars (MEMBER_SECRET_DEMO). A real site never does this: its server mints the
// token (see README, "Members") and the secret never reaches a browser. With any other
// secret the edge rejects these tokens (401) and the visitor stays a guest.
//
// It lives in www-dev/, outside the deployed www/: only the dev asset set
// (scripts/dev-assets.mjs, for `make dev` and the tests) serves it, and puts its tag where a
// page marks `<!-- herenow:dev-scripts -->`, BEFORE the herenow loader (module scripts run in
// document order):
//   <script type="module" src="/dev-signin.js"></script>
//   <script type="module" src="/herenow/herenow.js" data-site="demo"></script>
// When evaluated, this module copies a stored, unexpired token into the loader tag's
// `data-member-token`, which the loader reads when it starts.

/** The dev-only secret of the `demo` site (public: it is in edge/.dev.vars). */
const DEV_SECRET = "herenow-dev-only-secret-not-for-production";
/** Where the signed-in member is kept (this browser profile, all tabs). */
const STORAGE_KEY = "herenow-dev-member";
/** Tokens live this long. */
const TTL_S = 12 * 3600;
/** The longest name the edge keeps (core/src/token.rs MAX_MEMBER_NAME_CHARS). */
export const MAX_NAME_CHARS = 64;

/** Whether this page is served from this machine: the only place the dev secret is valid. */
export const isLocal = ["127.0.0.1", "localhost", "[::1]"].includes(location.hostname);

const enc = new TextEncoder();
const b64url = (bytes) => {
  let s = "";
  for (const b of bytes) s += String.fromCharCode(b);
  return btoa(s).replace(/\+/g, "-").replace(/\//g, "_").replace(/=+$/, "");
};
const part = (obj) => b64url(enc.encode(JSON.stringify(obj)));

/** A member id from a name: "Ada Lovelace" → "dev-ada-lovelace". */
export function memberId(name) {
  const slug = name.normalize("NFKD").toLowerCase().replace(/[^a-z0-9]+/g, "-").replace(/^-+|-+$/g, "").slice(0, 48);
  return `dev-${slug || "member"}`;
}

/** Mints `header.claims.signature` (HS256) for `sub`/`name`, valid `ttlS` seconds. */
export async function mintDevToken(sub, name, ttlS = TTL_S) {
  if (!globalThis.crypto?.subtle) throw new Error("WebCrypto is unavailable (this page is not a secure context)");
  const exp = Math.floor(Date.now() / 1000) + ttlS;
  const body = `${part({ alg: "HS256", typ: "JWT" })}.${part({ sub, name, exp })}`;
  const key = await crypto.subtle.importKey("raw", enc.encode(DEV_SECRET), { name: "HMAC", hash: "SHA-256" }, false, ["sign"]);
  const sig = new Uint8Array(await crypto.subtle.sign("HMAC", key, enc.encode(body)));
  return { token: `${body}.${b64url(sig)}`, exp };
}

/** The stored member `{ name, sub, token, exp }` if there is one and it has not expired. */
export function currentMember() {
  try {
    const m = JSON.parse(localStorage.getItem(STORAGE_KEY) || "null");
    if (m && typeof m.token === "string" && typeof m.name === "string" && m.exp * 1000 > Date.now() + 60_000) return m;
  } catch { /* storage blocked or garbage: a guest */ }
  return null;
}

/** Signs in as `name` (trimmed, at most 64 characters) and stores the token. */
export async function signIn(rawName) {
  const name = [...String(rawName).trim().replace(/\s+/g, " ")].slice(0, MAX_NAME_CHARS).join("");
  if (!name) throw new Error("Type a name first.");
  const sub = memberId(name);
  const { token, exp } = await mintDevToken(sub, name);
  const member = { name, sub, token, exp };
  localStorage.setItem(STORAGE_KEY, JSON.stringify(member));
  return member;
}

/** Forgets the stored member: this browser counts as a guest again. */
export function signOut() {
  try { localStorage.removeItem(STORAGE_KEY); } catch { /* nothing stored */ }
}

/** Puts the stored token on the loader's tag, before the loader (the next module script) runs. */
function applyToLoader() {
  const member = isLocal ? currentMember() : null;
  if (!member) return;
  for (const s of document.querySelectorAll('script[type="module"][src]')) {
    if (new URL(s.src, location.href).pathname.endsWith("/herenow/herenow.js") && !s.dataset.memberToken) {
      s.dataset.memberToken = member.token;
    }
  }
}
applyToLoader();
