// A new import: the kind of records, a file (dropped or chosen, checked against the columns
// before it is sent), options, then create → upload (with progress) → submit.

import { api, upload } from "./api.js";
import { boot } from "./shell.js";
import { $, bytes, h, show, statusText } from "./ui.js";

const catalog = JSON.parse($("#catalog").textContent);
const CONTENT_TYPES = { csv: "text/csv", tsv: "text/tab-separated-values", jsonl: "application/x-ndjson", json: "application/json" };
const FORMAT_NAMES = { csv: "CSV", tsv: "TSV", jsonl: "JSON Lines", json: "JSON" };

const state = { file: null, head: "", unreadable: null, problem: null, batch: null, created: null, name: null, abort: null };

// the type --------------------------------------------------------------------------------

function showType() {
  const name = $("#type").value;
  for (const info of document.querySelectorAll(".type-info")) show(info, info.dataset.type === name);
  checkFile();
}

// the file --------------------------------------------------------------------------------

function guessFormat(name, head) {
  const extension = (name.match(/\.([a-z0-9]+)$/i) || [])[1]?.toLowerCase();
  if (extension === "csv") return "csv";
  if (extension === "tsv" || extension === "tab") return "tsv";
  if (extension === "jsonl" || extension === "ndjson") return "jsonl";
  if (extension === "json") return "json";
  const start = head.trimStart();
  if (start.startsWith("[")) return "json";
  if (start.startsWith("{")) return "jsonl";
  const first = head.split(/\r?\n/, 1)[0];
  return first.includes("\t") && !first.includes(",") ? "tsv" : "csv";
}

/** What keeps the file's first 64 KB from being read as text: "binary", "encoding" or null. */
function unreadable(buffer) {
  const bytes = new Uint8Array(buffer);
  if (bytes.includes(0)) return "binary"; // text files hold no NUL (a workbook, a zip, UTF-16)
  try {
    new TextDecoder("utf-8", { fatal: true }).decode(bytes, { stream: true }); // (a character cut at the end is fine)
    return null;
  } catch {
    return "encoding";
  }
}

async function choose(file) {
  state.file = file;
  const buffer = file ? await file.slice(0, 65536).arrayBuffer() : new ArrayBuffer(0);
  state.head = new TextDecoder("utf-8").decode(buffer);
  state.unreadable = unreadable(buffer);
  show($("#format-field"), Boolean(file));
  const chosen = $("#file-chosen");
  show(chosen, Boolean(file));
  if (!file) return;
  $("#format").value = guessFormat(file.name, state.head);
  chosen.replaceChildren(h("strong", {}, file.name), ` · ${bytes(file.size)}`);
  checkFile();
}

/** The first record of CSV or TSV text: its cells (quotes as spreadsheets write them). */
function headerCells(text, delimiter) {
  const cells = [];
  let cell = "";
  let quoted = false;
  for (let i = 0; i < text.length; i++) {
    const ch = text[i];
    if (quoted) {
      if (ch === '"' && text[i + 1] === '"') {
        cell += '"';
        i++;
      } else if (ch === '"') quoted = false;
      else cell += ch;
    } else if (ch === '"' && cell === "") quoted = true;
    else if (ch === delimiter) {
      cells.push(cell);
      cell = "";
    } else if (ch === "\n" || ch === "\r") break;
    else cell += ch;
  }
  cells.push(cell);
  return cells.map((c) => c.trim()).filter((c) => c !== "");
}

// The delimiters the server tells apart in a CSV header, in the order that breaks a tie.
const DELIMITERS = { ",": "comma", ";": "semicolon", "\t": "tab", "|": "pipe" };

/** The delimiter the server will read a CSV file with: the one that splits its header into the most cells. */
function delimiterOf(head) {
  const line = head.split(/\r\n|\r|\n/).find((l) => l.trim() !== "") || "";
  let best = ",";
  for (const d of Object.keys(DELIMITERS)) if (headerCells(line, d).length > headerCells(line, best).length) best = d;
  return best;
}

function checkFile() {
  const box = $("#file-check");
  state.problem = null;
  box.replaceChildren();
  if (!state.file) return;
  const format = $("#format").value;
  const type = catalog[$("#type").value];
  if (state.file.size === 0) return report("error", "The file is empty.");
  if (/\.(xlsx|xlsm|xls|ods|numbers)$/i.test(state.file.name)) {
    return report("error", "loadbay does not read spreadsheet workbooks. Save the sheet as “CSV UTF-8” (in Excel: File › Save As) and choose that file.");
  }
  if (state.unreadable === "binary") return report("error", "This is not a text file. Choose a CSV, TSV, JSON Lines or JSON file, saved as UTF-8.");
  if (state.unreadable === "encoding") {
    return report("error", "The file is not UTF-8 text (accented letters would come out wrong). Save it as “CSV UTF-8” and choose it again.");
  }
  if (format === "json" || format === "jsonl") {
    return report("info", `Read as ${FORMAT_NAMES[format]}: each ${format === "json" ? "object of the array" : "line"} is a record with the columns as its keys.`);
  }
  const head = state.head.replace(/^\uFEFF/, "").replace(/^(\s*(\r\n|\r|\n))+/, "");
  const delimiter = format === "tsv" ? "\t" : delimiterOf(head);
  const found = headerCells(head, delimiter);
  if (format === "csv" && delimiter !== ",") report("info", `Read as ${DELIMITERS[delimiter]}-separated values, as the header row is.`);
  const known = new Map(type.columns.map((c) => [c.toLowerCase(), c]));
  const have = new Set(found.map((c) => c.toLowerCase()));
  const missing = type.required.filter((c) => !have.has(c.toLowerCase()));
  const oneOf = type.one_of.length && !type.one_of.some((c) => have.has(c.toLowerCase())) ? type.one_of : [];
  const ours = found.filter((c) => /^loadbay_/i.test(c) && !known.has(c.toLowerCase()));
  const unknown = found.filter((c) => !known.has(c.toLowerCase()) && !ours.includes(c));
  const matched = found.filter((c) => known.has(c.toLowerCase()));
  if (missing.length) {
    report(
      "error",
      `The header row lacks the required ${missing.length === 1 ? "column" : "columns"} ${missing.join(", ")}.`,
      " Add ",
      missing.length === 1 ? "it" : "them",
      ` to the first row of the file, or pick the kind of records the file holds. Columns found: ${found.join(", ") || "none"}.`,
    );
  } else if (oneOf.length) {
    report(
      "error",
      `The header row has none of the columns ${oneOf.join(", ")}: each record needs one of them.`,
      ` Add one to the first row of the file. Columns found: ${found.join(", ") || "none"}.`,
    );
  } else {
    report("ok", `Columns found: ${matched.join(", ")} (${matched.length} of ${type.columns.length}; every required one is there).`);
  }
  if (unknown.length) report("warn", `Not columns of ${$("#type").value}, so they are ignored: ${unknown.join(", ")}.`);
  if (ours.length) report("info", "The loadbay_… columns of a result file are not imported: the other columns are.");
}

function report(tone, ...text) {
  if (tone === "error") state.problem = text.join("");
  $("#file-check").append(h("p", { class: `check-${tone}` }, ...text));
}

function wireFile() {
  const input = $("#file");
  input.addEventListener("change", () => choose(input.files[0] || null));
  $("#format").addEventListener("change", checkFile);
  const zone = $("#dropzone");
  for (const name of ["dragenter", "dragover"]) {
    zone.addEventListener(name, (event) => {
      event.preventDefault();
      zone.classList.add("dragging");
    });
  }
  zone.addEventListener("dragleave", () => zone.classList.remove("dragging"));
  zone.addEventListener("drop", (event) => {
    event.preventDefault();
    zone.classList.remove("dragging");
    const file = event.dataTransfer.files[0];
    if (!file) return;
    try {
      input.files = event.dataTransfer.files;
    } catch {
      // some browsers keep the input's own list; the dropped file is used either way
    }
    choose(file);
  });
}

// upload ------------------------------------------------------------------------------------

function fail(...message) {
  const box = $("#import-error");
  box.replaceChildren(...message);
  show(box, true);
  box.focus?.();
}

function progress(text, fraction) {
  show($("#upload-progress"), true);
  $("#upload-text").textContent = text;
  const bar = $("#upload-bar");
  if (fraction === null) bar.removeAttribute("value");
  else bar.value = fraction;
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

function uploadName(file) {
  return file.name.length > 100 ? file.name.slice(0, 100) : file.name;
}

async function start(event) {
  event.preventDefault();
  show($("#import-error"), false);
  if (!state.file) return fail("Choose a file first (step 2).");
  if (state.problem) return fail(state.problem);
  const spec = body();
  if (spec.parent_id !== undefined && !(spec.parent_id > 0)) return fail("The parent batch is a batch id: a whole number.");
  const format = $("#format").value;
  $("#start").disabled = true;
  try {
    progress("Creating the batch…", null);
    const batch = await batchFor(spec);
    const blob = state.file;
    // Sent again to the same batch, a file keeps the first one's name, so it replaces that one.
    state.name ??= uploadName(state.file);
    const path = `/v1/batches/${batch.id}/data?name=${encodeURIComponent(state.name)}`;
    const sending = upload(path, blob, CONTENT_TYPES[format], (sent, total) =>
      progress(`Uploading ${state.file.name}: ${bytes(sent)} of ${bytes(total)} (${Math.round((100 * sent) / (total || 1))}%)`, total ? sent / total : null),
    );
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

boot(async () => {
  const wanted = new URLSearchParams(location.search).get("type");
  if (wanted && catalog[wanted]) $("#type").value = wanted;
  $("#type").addEventListener("change", showType);
  wireFile();
  $("#import-form").addEventListener("submit", start);
  $("#stop").addEventListener("click", () => state.abort?.());
  showType();
  if ($("#file").files[0]) choose($("#file").files[0]); // (kept by the browser on a reload)
});
