// Debian's Chromium driven by playwright-core, with the back/forward cache left on.
import { chromium } from "playwright-core";
import { existsSync, mkdirSync } from "node:fs";
import { join } from "node:path";
import { ROOT } from "./miniflare.mjs";

export const ARTIFACTS = join(ROOT, "tests", "artifacts");

export async function launch() {
  const executablePath = process.env.CHROMIUM ?? "/usr/bin/chromium";
  if (!existsSync(executablePath)) {
    throw new Error(`${executablePath} not found: install Debian's chromium (make test does)`);
  }
  mkdirSync(ARTIFACTS, { recursive: true });
  return chromium.launch({
    executablePath,
    headless: true,
    ignoreDefaultArgs: ["--disable-back-forward-cache"],
    args: ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
      "--disable-sync", "--no-first-run", "--disable-dev-shm-usage"],
  });
}

/** Waits until the text of `selector` on `page` equals `text` (polling, with a deadline). */
export async function waitText(page, selector, text, timeout = 10_000) {
  await page.waitForFunction(
    ([sel, want]) => document.querySelector(sel)?.textContent?.trim() === want,
    [selector, String(text)],
    { timeout, polling: 50 },
  );
}
