// What every page shares: signing in with an API key (kept in this tab's sessionStorage),
// the account in the header, signing out.

import { api, session } from "./api.js";
import { $, show } from "./ui.js";

const FLASH = "loadbay.flash";

function signinForm(error, note) {
  show($("#content"), false);
  show($("#who"), false);
  show($("#signin"), true);
  for (const [id, text] of [["#signin-error", error], ["#signin-note", note]]) {
    $(id).textContent = text || "";
    show($(id), Boolean(text));
  }
  $("#signin-key").focus();
}

function showAccount(account) {
  $("#who-name").textContent = account.name;
  const mode = $("#who-mode");
  mode.textContent = account.test ? "test account" : "live account";
  mode.className = `tag ${account.test ? "tag-test" : "tag-live"}`;
  show($("#signin"), false);
  show($("#who"), true);
  show($("#content"), true);
}

async function account() {
  const { body } = await api("/v1/account");
  return body;
}

/** Start the page: sign in first if the tab has no key, then `start(account)` once. */
export function boot(start) {
  let started = false;
  const enter = async () => {
    const found = await account();
    showAccount(found);
    if (started) {
      location.reload(); // signed in again after the key was refused: start over
      return;
    }
    started = true;
    await start(found);
  };

  $("#signin-form").addEventListener("submit", async (event) => {
    event.preventDefault();
    const input = $("#signin-key");
    const key = input.value.trim();
    if (!key) return signinForm("Enter your API key.");
    session.set(key);
    const button = $("#signin-form button[type=submit]");
    button.disabled = true;
    try {
      await enter();
      input.value = "";
      $("#main").focus(); // reading (and tabbing) starts at the page, not the hidden form
    } catch (error) {
      session.clear();
      const why = error.status === 401 ? `That API key was not accepted (${error.message}).` : error.message;
      signinForm(`${why} Check the key and try again.`);
    } finally {
      button.disabled = false;
    }
  });

  $("#sign-out").addEventListener("click", () => {
    session.clear();
    sessionStorage.setItem(FLASH, "You are signed out. The key is no longer kept in this tab.");
    location.reload();
  });

  window.addEventListener("loadbay:signed-out", (event) => {
    signinForm(`Your API key was refused (${event.detail || "unknown API key"}). Sign in again.`);
  });

  const flash = sessionStorage.getItem(FLASH);
  sessionStorage.removeItem(FLASH);
  if (!session.key) return signinForm(null, flash);
  enter().catch((error) => {
    if (error.status !== 401) signinForm(error.message);
  });
}
