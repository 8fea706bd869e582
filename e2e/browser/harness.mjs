// What the panel's browser scripts share: launching Debian's headless
// Chromium through playwright-core, a check that fails the script saying
// what, and running a scenario to its end (a screenshot on failure, the
// browser closed either way).
import { chromium } from "playwright-core";

/** Launches headless Chromium ($CHROMIUM, default Debian's). */
export function launch() {
  return chromium.launch({
    executablePath: process.env.CHROMIUM || "/usr/bin/chromium",
    args: ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update", "--disable-sync"],
  });
}

/** Says ok: what, or fails the script with FAIL: what. @param {any} ok @param {string} what */
export function check(ok, what) {
  if (!ok) {
    console.error("FAIL: " + what);
    process.exitCode = 1;
    throw new Error(what);
  }
  console.log("ok: " + what);
}

/**
 * Runs scenario; on an error, fails the script with it (unless a check
 * already did) and saves a screenshot of page at failureShot; closes the
 * browser in any case.
 * @param {import("playwright-core").Browser} browser @param {import("playwright-core").Page} page
 * @param {string} failureShot @param {() => Promise<void>} scenario
 */
export async function drive(browser, page, failureShot, scenario) {
  try {
    await scenario();
  } catch (e) {
    if (!process.exitCode) {
      console.error("FAIL: " + e);
      process.exitCode = 1;
    }
    await page.screenshot({ path: failureShot, fullPage: true }).catch(() => {});
  } finally {
    await browser.close();
  }
}
