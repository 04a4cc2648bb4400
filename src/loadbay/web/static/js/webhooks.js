// Webhooks: the account's endpoints (add, rotate the secret, disable or enable, delete) and
// each endpoint's deliveries, every attempt with its answer (send one again).

import { api } from "./api.js";
import { boot } from "./shell.js";
import { $, announce, ago, clock, h, keepFocus, repeat, show, updateRows } from "./ui.js";

const state = { hooks: [], chosen: null, deleting: null, rotating: null };

function failure(box, error) {
  box.textContent = error.message;
  show(box, true);
}

// endpoints ----------------------------------------------------------------------------------

function stateCell(hook) {
  if (!hook.enabled) {
    const reason = hook.disabled_reason ? h("p", { class: "small muted wrap" }, hook.disabled_reason) : null;
    return [h("span", { class: "badge badge-error" }, hook.disabled_reason ? "Disabled by loadbay" : "Disabled"), reason];
  }
  if (hook.failing_since) return [h("span", { class: "badge badge-validated" }, "Failing"), h("p", { class: "small muted" }, "every attempt since ", ago(hook.failing_since))];
  return h("span", { class: "badge badge-completed-succeeded" }, "Enabled");
}

/** The endpoint as last read: a row's buttons stay across refreshes (updateRows), so they read it
 *  when pressed. */
function current(id) {
  return state.hooks.find((hook) => hook.id === id);
}

function row(hook) {
  const id = hook.id;
  const label = (text) => `${text}: ${hook.url}`;
  const button = (text, tone, onclick) => h("button", { type: "button", class: `${tone} small`, "aria-label": label(text), onclick }, text);
  const toggle = (event) => {
    const enabled = current(id).enabled;
    act(event.currentTarget, () => api(`/v1/webhooks/${id}`, { method: "PATCH", json: { enabled: !enabled } }), enabled ? "Endpoint disabled." : "Endpoint enabled.");
  };
  return h(
    "tr",
    { "data-id": id },
    h("td", {}, h("code", { class: "wrap" }, hook.url), hook.description ? h("p", { class: "small muted" }, hook.description) : null),
    h("td", {}, h("ul", { class: "plain small" }, hook.events.map((event) => h("li", {}, h("code", {}, event))))),
    h("td", {}, stateCell(hook)),
    h(
      "td",
      {},
      h(
        "div",
        { class: "hook-actions" },
        button("Deliveries", "button-secondary", () => choose(id)),
        button("Rotate secret", "button-quiet", () => confirmRotate(current(id))),
        button(hook.enabled ? "Disable" : "Enable", "button-quiet", toggle),
        button("Delete", "button-danger", () => confirmDelete(current(id))),
      ),
    ),
  );
}

async function loadHooks() {
  const { body } = await api("/v1/webhooks");
  state.hooks = body.data;
  updateRows($("#hooks tbody"), state.hooks.map(row)); // in place: a focused button stays focused
  show($("#hooks"), state.hooks.length > 0);
  show($("#hooks-empty"), state.hooks.length === 0);
  show($("#hooks-error"), false);
  if (state.chosen !== null && !state.hooks.some((hook) => hook.id === state.chosen)) {
    state.chosen = null;
    show($("#deliveries"), false);
  }
}

async function act(button, action, message) {
  button.disabled = true;
  try {
    await action();
    if (message) announce(message);
    await loadHooks();
    if (state.chosen !== null) await loadDeliveries();
  } catch (error) {
    failure($("#hooks-error"), error);
  } finally {
    button.disabled = false; // (disabled, it lost focus)
    keepFocus(button.isConnected ? button : $("#hooks-title"));
  }
}

function showSecret(hook) {
  $("#secret-url").textContent = hook.url;
  $("#secret-value").textContent = hook.secret;
  show($("#secret"), true);
}

function confirmRotate(hook) {
  state.rotating = hook;
  $("#rotate-url").textContent = hook.url;
  $("#confirm-rotate").showModal();
}

function wireRotate() {
  const dialog = $("#confirm-rotate");
  dialog.addEventListener("close", async () => {
    const hook = state.rotating;
    state.rotating = null;
    if (dialog.returnValue !== "rotate" || !hook) return;
    try {
      const { body } = await api(`/v1/webhooks/${hook.id}/rotate`, { method: "POST" });
      showSecret(body);
      announce("Secret rotated. Copy the new one now.");
      $("#secret").focus(); // the new secret, which is shown only now
    } catch (error) {
      failure($("#hooks-error"), error);
    }
  });
}

function confirmDelete(hook) {
  state.deleting = hook;
  $("#delete-url").textContent = hook.url;
  $("#confirm-delete").showModal();
}

function wireDelete() {
  const dialog = $("#confirm-delete");
  dialog.addEventListener("close", async () => {
    const hook = state.deleting;
    state.deleting = null;
    if (dialog.returnValue !== "delete" || !hook) return;
    try {
      await api(`/v1/webhooks/${hook.id}`, { method: "DELETE" });
      announce("Endpoint deleted.");
      await loadHooks();
    } catch (error) {
      failure($("#hooks-error"), error);
    }
    keepFocus($("#hooks-title")); // its row, and the button pressed, are gone
  });
}

function wireForm() {
  const form = $("#hook-form");
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    const box = $("#hook-error");
    show(box, false);
    const url = $("#hook-url").value.trim();
    const events = [...form.querySelectorAll("input[name=events]:checked")].map((input) => input.value);
    if (!url) return failure(box, new Error("Enter the endpoint's URL."));
    if (!events.length) return failure(box, new Error("Choose at least one event."));
    const description = $("#hook-description").value.trim() || null;
    const button = form.querySelector("button[type=submit]");
    button.disabled = true;
    try {
      const { body } = await api("/v1/webhooks", { method: "POST", json: { url, events, description } });
      form.reset();
      showSecret(body);
      announce("Endpoint added. Copy its secret now.");
      await loadHooks();
    } catch (error) {
      failure(box, error);
    } finally {
      button.disabled = false;
    }
  });
}

// deliveries ---------------------------------------------------------------------------------

function attempt(a) {
  const answer = a.status_code !== null ? `HTTP ${a.status_code}` : "no answer";
  const took = a.latency_ms !== null ? ` · ${a.latency_ms} ms` : "";
  return h(
    "li",
    { class: `attempt attempt-${a.result}` },
    h("span", {}, `#${a.attempt} ${a.result} · ${answer}${took} · `, h("time", { datetime: a.at }, clock(a.at))),
    a.error ? h("p", { class: "small wrap" }, a.error) : null,
    a.response ? h("pre", { class: "small wrap" }, a.response.slice(0, 300)) : null,
  );
}

const TONE = { delivered: "completed-succeeded", failed: "error", pending: "processing" };

function deliveryRow(delivery) {
  const hookId = state.chosen;
  const again = h("button", { type: "button", class: "button-quiet small", "aria-label": `Send delivery ${delivery.id} again` }, "Send again");
  again.addEventListener("click", () => act(again, () => api(`/v1/webhooks/${hookId}/deliveries/${delivery.id}/redeliver`, { method: "POST" }), "Sent again."));
  return h(
    "tr",
    { "data-id": delivery.id, "data-status": delivery.status },
    h("td", {}, h("code", {}, delivery.event), h("p", { class: "small muted" }, ago(delivery.created_at))),
    h("td", {}, h("a", { href: `/batches/${delivery.batch_id}` }, `Batch ${delivery.batch_id}`)),
    h("td", {}, h("span", { class: `badge badge-${TONE[delivery.status] || "open"}` }, delivery.status)),
    h("td", {}, h("ol", { class: "plain attempts" }, delivery.attempts.map(attempt))),
    h("td", {}, again),
  );
}

async function loadDeliveries() {
  const { body } = await api(`/v1/webhooks/${state.chosen}/deliveries?limit=50`);
  updateRows($("#delivery-list tbody"), body.data.map(deliveryRow)); // in place: a focused button stays focused
  show($("#delivery-list"), body.data.length > 0);
  show($("#deliveries-empty"), body.data.length === 0);
  return body.data.some((delivery) => delivery.status === "pending");
}

let poll = null;

async function choose(hookId) {
  state.chosen = hookId;
  const hook = state.hooks.find((found) => found.id === hookId);
  $("#deliveries-title").textContent = `Deliveries to ${hook ? hook.url : `endpoint ${hookId}`}`;
  show($("#deliveries"), true);
  await poll.now();
  $("#deliveries-title").focus();
}

// Every 2 seconds while a delivery is pending, every 10 otherwise.
boot(async () => {
  wireForm();
  wireDelete();
  wireRotate();
  poll = repeat(async () => {
    try {
      await loadHooks();
      if (state.chosen === null) return 10_000;
      return (await loadDeliveries()) ? 2000 : 10_000;
    } catch (error) {
      failure($("#hooks-error"), error);
      return error.status === 401 ? null : 5000;
    }
  });
  await poll.now();
});
