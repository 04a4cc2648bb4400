// A new import: the kind of records, a file (dropped or chosen, checked against the columns
// before it is sent: files.js), options, then create → upload (with progress) → submit.

import { api } from "./api.js";
import { filePicker, progress, sendFile, uploadName } from "./files.js";
import { boot } from "./shell.js";
import { $, h, show, statusText } from "./ui.js";

const catalog = JSON.parse($("#catalog").textContent);
const elsewhere = JSON.parse($("#elsewhere").textContent); // how the types this page does not take are sent

const state = { picker: null, batch: null, created: null, name: null, abort: null };

// the type --------------------------------------------------------------------------------

function showType() {
  const name = $("#type").value;
  for (const info of document.querySelectorAll(".type-info")) show(info, info.dataset.type === name);
  state.picker.check();
}

// upload ------------------------------------------------------------------------------------

function fail(...message) {
  const box = $("#import-error");
  box.replaceChildren(...message);
  show(box, true);
  box.focus?.();
}

function body() {
  const spec = { type: $("#type").value, process: $("#two-phase").checked ? "manual" : "auto" };
  const jobId = $("#job-id").value.trim();
  const description = $("#description").value.trim();
  const parent = $("#parent-id").value.trim();
  if (jobId) spec.job_id = jobId;
  if (description) spec.description = description;
  if (parent) spec.parent_id = Number(parent);
  return spec;
}

/** The batch to upload into: the one made by a failed attempt with the same options, or a new one. */
async function batchFor(spec) {
  const signature = JSON.stringify(spec);
  if (state.batch && state.created === signature) return state.batch;
  if (state.batch) api(`/v1/batches/${state.batch.id}/cancel`, { method: "POST" }).catch(() => {});
  state.batch = null;
  let made;
  try {
    made = await api("/v1/batches", { method: "POST", json: spec });
  } catch (error) {
    // The job id names a batch made with other options (another type, description, …).
    const other = error.code === "JOB_ID_CONFLICT" && (error.message.match(/batch (\d+)/) || [])[1];
    if (other) throw jobIdUsed(spec.job_id, { id: other }, "made with other options");
    throw error;
  }
  const { status, body: batch } = made;
  if (status === 200 && batch.status !== "open") throw jobIdUsed(spec.job_id, batch, statusText(batch).toLowerCase());
  state.batch = batch;
  state.created = signature;
  state.name = null;
  return batch;
}

/** The error shown when a job id is taken: which batch has it, and what to do. */
function jobIdUsed(jobId, batch, how) {
  const link = h("a", { href: `/batches/${batch.id}` }, `batch ${batch.id}`);
  return Object.assign(new Error(), {
    shown: [`The job id “${jobId}” is already used by `, link, ` (${how}): a job id names one import. Choose another job id, or open that batch.`],
  });
}

async function start(event) {
  event.preventDefault();
  show($("#import-error"), false);
  const file = state.picker.file;
  if (!file) return fail("Choose a file first (step 2).");
  if (state.picker.problem) return fail(state.picker.problem);
  const spec = body();
  if (spec.parent_id !== undefined && !(spec.parent_id > 0)) return fail("The parent batch is a batch id: a whole number.");
  const contentType = state.picker.contentType;
  $("#start").disabled = true;
  try {
    progress("Creating the batch…", null);
    const batch = await batchFor(spec);
    // Sent again to the same batch, a file keeps the first one's name, so it replaces that one.
    state.name ??= uploadName(file);
    const sending = sendFile(batch.id, file, state.name, contentType);
    state.abort = sending.abort;
    show($("#stop"), true);
    await sending.promise;
    show($("#stop"), false);
    if ($("#submit-now").checked) {
      progress("Uploaded. Submitting…", 1);
      await api(`/v1/batches/${batch.id}/submit`, { method: "POST" });
    }
    progress("Done. Opening the batch…", 1);
    location.assign(`/batches/${batch.id}`);
  } catch (error) {
    show($("#stop"), false);
    if (error.code === "ABORTED" && state.batch) {
      // The batch stays open, without the file: Upload and import sends the file there again.
      progress(`Upload stopped; nothing was imported. Batch ${state.batch.id} waits for the file: Upload and import sends it again.`, 0);
    } else {
      show($("#upload-progress"), false);
      fail(...(error.shown || [explainFailure(error)]));
    }
  } finally {
    $("#start").disabled = false;
    state.abort = null;
  }
}

function explainFailure(error) {
  const made = state.batch ? ` (batch ${state.batch.id} waits for the file; starting again sends it there)` : "";
  switch (error.code) {
    case "PAYLOAD_TOO_LARGE":
      return `The file is larger than this server takes: ${error.message}.`;
    case "UNSUPPORTED_MEDIA_TYPE":
      return `loadbay cannot read this file: ${error.message}.`;
    case "NETWORK":
      return `The upload did not get through: ${error.message}${made}.`;
    default:
      return `The import could not start: ${error.message}${made}.`;
  }
}

/** The page was asked for a type it does not take (?type=…): say so, and how that type's records
 *  are sent, instead of showing another type as if it were the one asked for. */
function notHere(wanted) {
  const how = elsewhere[wanted];
  const said = how
    ? [h("strong", {}, `${wanted} records are not imported from this page. `), how.text, " See the ", h("a", { href: how.href }, how.label), "."]
    : [h("strong", {}, `There is no record type “${wanted}” on this server. `), "Choose the kind of records below."];
  const box = $("#type-elsewhere");
  box.replaceChildren(h("p", {}, ...said));
  show(box, true);
}

boot(async () => {
  const wanted = new URLSearchParams(location.search).get("type");
  if (wanted && catalog[wanted]) $("#type").value = wanted;
  else if (wanted) notHere(wanted);
  const type = () => ({ name: $("#type").value, ...catalog[$("#type").value] });
  state.picker = filePicker(type, { otherwise: ", or pick the kind of records the file holds" });
  $("#type").addEventListener("change", () => {
    show($("#type-elsewhere"), false); // a type is chosen: what was asked for is no longer the point
    showType();
  });
  $("#import-form").addEventListener("submit", start);
  $("#stop").addEventListener("click", () => state.abort?.());
  showType();
});
