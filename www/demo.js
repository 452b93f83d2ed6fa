// The demo pages' own script (the herenow client fills the numbers by itself): singular or
// plural words next to the numbers, a screen-reader announcement when the number of people
// changes, the time of the last count, and the member sign-in form of dev servers.

const $ = (sel) => document.querySelector(sel);

// "1 member" / "2 members": <span data-plural="member|members" data-for="members">.
function fixWords(count) {
  for (const el of document.querySelectorAll("[data-plural][data-for]")) {
    const n = count[el.dataset.for];
    if (typeof n !== "number") continue;
    const [one, many] = el.dataset.plural.split("|");
    el.textContent = n === 1 ? one : many;
  }
}

let lastAnnounced = null;
function announce(count) {
  const live = $("#live-announcer");
  if (!live) return;
  const key = `${count.online}/${count.members}/${count.guests}`;
  if (key === lastAnnounced) return; // only changes are read out, not every heartbeat
  lastAnnounced = key;
  const people = count.online === 1 ? "1 person" : `${count.online} people`;
  live.textContent = `${people} online: ${count.members} signed in, ${count.guests} ${count.guests === 1 ? "guest" : "guests"}.`;
}

function showUpdated(count) {
  const el = $("#updated-at");
  if (!el || typeof count.as_of !== "number") return;
  const at = new Date(count.as_of);
  el.dateTime = at.toISOString();
  el.textContent = at.toLocaleTimeString();
  const w = $("#window-s");
  if (w && typeof count.window_s === "number") w.textContent = String(count.window_s);
}

document.addEventListener("herenow:count", (e) => {
  const count = e.detail || {};
  fixWords(count);
  announce(count);
  showUpdated(count);
  document.documentElement.dataset.herenowLive = "true";
});

// The dev-only member sign-in (www-dev/dev-signin.js): only a dev server's pages load it,
// before the loader (scripts/dev-assets.mjs). A deployed page has no such tag, so nothing is
// requested: the visitor is a guest and the form says sign-in is unavailable. When the tag is
// there its module has already run, and this import takes it from the module map.
const devTag = document.querySelector('script[type="module"][src="/dev-signin.js"]');
const dev = devTag ? await import(devTag.src) : null;
const canSignIn = Boolean(dev?.isLocal); // the dev secret is valid on this machine only

// Who am I: "signed in as …" on every page that has #whoami.
function showMember() {
  const member = canSignIn ? dev.currentMember() : null;
  for (const el of document.querySelectorAll("[data-whoami]")) {
    el.textContent = member ? `Signed in as ${member.name}` : "You are counted as a guest";
  }
  const form = $("#signin-form");
  const out = $("#signout-box");
  if (!form || !out) return;
  if (!canSignIn) {
    form.hidden = true;
    out.hidden = true;
    $("#signin-unavailable").hidden = false;
    return;
  }
  form.hidden = Boolean(member);
  out.hidden = !member;
  if (member) {
    $("#member-name").textContent = member.name;
    $("#member-id").textContent = member.sub;
    const exp = new Date(member.exp * 1000);
    const t = $("#member-exp");
    t.dateTime = exp.toISOString();
    t.textContent = exp.toLocaleString();
  }
}

function wireSignIn() {
  const form = $("#signin-form");
  if (!form || !canSignIn) return;
  const input = $("#signin-name");
  const error = $("#signin-error");
  input.maxLength = dev.MAX_NAME_CHARS;
  form.addEventListener("submit", async (e) => {
    e.preventDefault();
    error.textContent = "";
    input.removeAttribute("aria-invalid");
    const button = form.querySelector("button");
    button.disabled = true;
    try {
      await dev.signIn(input.value);
      // The loader reads data-member-token when it starts: reload so it starts with it.
      location.reload();
    } catch (err) {
      error.textContent = err.message || String(err);
      input.setAttribute("aria-invalid", "true");
      input.focus();
      button.disabled = false;
    }
  });
  $("#signout").addEventListener("click", () => {
    dev.signOut();
    location.reload();
  });
}

showMember();
wireSignIn();
