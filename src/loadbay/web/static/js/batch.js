// A batch: its status and live progress, its files (an open batch takes more), what was
// refused and why, downloads, actions, children and timeline.

import { api, download } from "./api.js";
import { filePicker, progress, sendFile, uploadName } from "./files.js";
import { boot } from "./shell.js";
import {
  $,
  FINAL,
  MOVING,
  announce,
  badge,
  bytes,
  clock,
  count,
  duration,
  h,
  keepFocus,
  plural,
  progressBar,
  progressText,
  repeat,
  show,
  speedText,
  statusText,
  update,
  updateRows,
  when,
} from "./ui.js";
import { explain } from "./codes.js";

const id = Number(document.body.dataset.batchId);
const base = `/v1/batches/${id}`;
const ERRORS_PAGE = 20;
const catalog = JSON.parse($("#catalog").textContent); // the types the dashboard sends files of
const elsewhere = JSON.parse($("#elsewhere").textContent); // how the other types' records are sent: {text, href, label}

const state = {
  batch: null,
  errorCount: null, // invalid + failed + unprocessed when the errors were last read
  errorTotal: 0, // record errors in all (errors/summary's total)
  errorsAt: 0, // when that was
  cursors: [null], // the cursor of each errors page seen (null: the first)
  page: 0,
  group: null, // the {code, field} the error table shows only, or null for every error
  groups: new Map(), // the error groups last read, by code and field
  parent: null, // the parent batch, read while this child waits for it
  children: [],
  events: [], // the batch's timeline (GET …/events)
  inputs: [], // an open batch's files and pages (GET …/inputs: {name, kind, size, pending, received_at, …}), in their order
  replaced: new Set(), // the names of the files this page sent again, replacing the first
  picker: null, // the file picker, once the batch is seen open
  sending: null, // the upload on its way: {abort}
  acting: null, // the action on its way (submit, process, cancel, retry), if any
};

function refused(counts) {
  return counts.invalid + counts.failed + counts.unprocessed;
}

// status, progress, counts -------------------------------------------------------------------

function renderStatus(batch) {
  $("#status-badge").replaceChildren(badge(batch));
  $("#status-sentence").textContent = sentence(batch);
  const bar = progressBar(batch, "Progress");
  bar.id = "progress";
  bar.setAttribute("aria-labelledby", "progress-label");
  bar.removeAttribute("aria-label");
  $("#progress").replaceWith(bar);
  $("#progress-label").textContent = progressText(batch);
  $("#progress-speed").textContent = speedText(batch);
  show($("#progress-block"), !["open", "validated", "error", "cleared"].includes(batch.status));
  for (const [name, value] of Object.entries(batch.counts)) {
    $(`#count-${name}`).textContent = count(value);
  }
  // The records of the batch once known; until then, those read so far.
  const total = batch.progress.total;
  const soFar = `${count(batch.counts.total)} so far`; // (a cancelled batch's records not read yet are being read)
  $("#count-total").textContent = batch.unread_pending ? soFar : total !== null ? count(total) : MOVING.has(batch.status) ? soFar : "–";
  renderCallout(batch);
}

// What the page says while an action is on its way (a cancel of a large batch takes seconds).
const ACTING = {
  submit: ["Submitting…", "Submitting the batch…"],
  process: ["Starting…", "Starting the import…"],
  cancel: ["Cancelling…", "Cancelling: stopping the work on the batch and giving every record read an outcome…"],
  retry: ["Making the new batch…", "Making a new batch of the records not imported…"],
};

function sentence(batch) {
  if (state.acting && !FINAL.has(batch.status)) return ACTING[state.acting][1];
  const total = batch.progress.total;
  switch (batch.status) {
    case "open":
      return "The batch takes data until it is submitted.";
    case "queued":
      if (waitsForParent(batch)) return `Submitted; it waits for its parent, batch ${batch.parent_id}, to finish (a child batch is checked after its parent).`;
      return "Submitted; a worker starts on it shortly.";
    case "validating":
      return total === null ? "Reading and checking every record." : "Checking and importing every record.";
    case "processing":
      return "Importing the valid records.";
    case "validated":
      return batch.counts.valid ? "Checked; nothing is imported until you press Process." : "Checked; no record is valid.";
    default:
      return batch.finished_at ? `Finished ${when(batch.finished_at)}${took(batch)}.` : "";
  }
}

/** A child batch whose parent is not final yet: it is not checked before the parent ends. */
function waitsForParent(batch) {
  return Boolean(batch.parent_id && state.parent && !FINAL.has(state.parent.status));
}

function took(batch) {
  if (!batch.submitted_at || batch.status !== "completed") return "";
  const seconds = (new Date(batch.finished_at) - new Date(batch.submitted_at)) / 1000;
  return `, ${duration(seconds)} after it was submitted`;
}

function newImport(batch, text) {
  return h("a", { href: `/new?type=${encodeURIComponent(batch.type)}` }, text);
}

/** How the batch's records are sent again: the new-import page of its type (`text` links there), or,
 *  for a type that page does not take, how that type's records are sent instead. Never a link to the
 *  new-import page of a type it does not take: that page would show another type. */
function sendAgain(batch, text) {
  if (catalog[batch.type]) return [newImport(batch, text), "."];
  const how = elsewhere[batch.type];
  if (!how) return [`Send ${batch.type} records through the API.`];
  return [how.text, " See the ", h("a", { href: how.href }, how.label), "."];
}

/** Records a retry can send again (failed or not processed), of a batch a retry can be made of. */
function resendable(batch) {
  const again = batch.counts.failed + batch.counts.unprocessed;
  const settled = ["completed", "cancelled"].includes(batch.status) && !batch.unread_pending;
  return settled && again > 0 && !batch.parent_id && state.children.length === 0;
}

/** The valid records of a completed batch that were not imported, by why: failed while being
 *  imported, or never processed (their chunk's attempts ran out). */
function notImported(c) {
  const parts = [];
  if (c.failed) parts.push(`${plural(c.failed, "record")} failed while being imported (the data was valid)`);
  if (c.unprocessed) parts.push(`${plural(c.unprocessed, "record was", "records were")} not processed (${c.unprocessed === 1 ? "its" : "their"} chunk failed on every attempt)`);
  return parts.join(" and ");
}

// What the callout will show, built by renderCallout then put in place at once (updated in
// place: a focused link in it stays focused while the batch moves).
let calloutTone = null;
let calloutParts = [];

/** What the cancel dialog says, for the batch as it is now: the records of a batch being
 *  validated not read yet are read afterwards, unchecked, and end “not processed”. */
function confirmText(batch) {
  const c = batch.counts;
  const total = batch.progress.total;
  if (batch.status === "open") {
    return "No record has been read yet. Cancelling stops the batch before its data is read: nothing is imported. This cannot be undone.";
  }
  if (batch.status === "queued") {
    return "No record has been checked yet. Cancelling stops the batch: nothing is imported, and each record ends as “not processed” (in the result file; Send again sends them). This cannot be undone.";
  }
  if (batch.status === "validating" && (total === null || total > c.total)) {
    const read = total === null ? `${plural(c.total, "record")} of its data so far` : `${count(c.total)} of the ${plural(total, "record")} so far`;
    return `Validation has read ${read}. Cancelling stops it: every record not imported yet ends as “not processed”, those not read yet too (they are read without being checked). They are in the result file, and Send again sends them. Records already imported stay. This cannot be undone.`;
  }
  return "Records not imported yet will not be imported: they end as “not processed”. Records already imported stay. This cannot be undone.";
}

function callout(tone, ...children) {
  calloutTone = tone;
  calloutParts = children.filter((child) => child !== null && child !== undefined);
}

function renderCallout(batch) {
  calloutTone = null;
  calloutParts = [];
  calloutContent(batch);
  const box = $("#callout");
  if (calloutTone) box.className = `callout callout-${calloutTone}`;
  update(box, ...calloutParts);
  show(box, calloutTone !== null);
}

function calloutContent(batch) {
  const c = batch.counts;
  const bad = refused(c);
  if (batch.status === "open") {
    const hasData = state.inputs.some((input) => input.received_at); // a file at its upload URL is not here yet
    const parent = batch.parent_id ? h("a", { href: `/batches/${batch.parent_id}` }, `batch ${batch.parent_id}`) : null;
    const here = takesFiles(batch); // files can be added on this page
    if (parent && hasData) {
      callout("info", h("p", {}, "The data is here. Submitting its parent, ", parent, ", submits this batch too; it is checked and imported after the parent."));
    } else if (parent) {
      const send = here ? "Add a file to it below (or through the API)" : "Send a file to it through the API";
      callout("info", h("p", {}, "This child batch of ", parent, ` has no data yet. ${send}, or cancel it.`));
    } else {
      const kids = state.children.length ? ` Its ${plural(state.children.length, "child batch", "child batches")} ${state.children.length === 1 ? "is" : "are"} submitted with it.` : "";
      const more = here ? "Add more files below, or submit" : "Submit";
      const awaited = state.inputs.filter((input) => input.pending).map((input) => input.name);
      // (on S3 a file sent to its upload URL is seen only when the batch is submitted)
      const expected = awaited.length ? `This batch waits for ${awaited.join(", ")} at ${awaited.length === 1 ? "its upload URL" : "their upload URLs"}: once uploaded there, submit the batch.` : null;
      const none = here ? "This batch has no data yet. Add a file below, then submit the batch." : "This batch has no data yet. Send a file to it through the API, or start a new import.";
      // A file still awaited comes first: a submit before it is uploaded is refused (FILE_NOT_UPLOADED).
      const ready = `The data is here. ${more} the batch to check and import it.${kids}`;
      callout("info", h("p", {}, expected ? `${expected}${kids}` : hasData ? ready : none));
    }
  } else if (batch.status === "validated") {
    const will = `${plural(c.valid, "record")} will be imported when you press Process`;
    if (c.valid === 0) {
      callout(
        "danger",
        h("p", {}, h("strong", {}, "Nothing to process: "), `${c.total === 1 ? "the record was" : `all ${plural(c.total, "record")} were`} refused.`),
        h("p", {}, "Look at the refused records below, fix them in the file, and import it again; cancel this batch (it imports nothing either way)."),
      );
    } else if (c.invalid === 0) {
      callout("action", h("p", {}, "Every record is valid: ", h("strong", {}, will), "."), h("p", {}, "Process imports them; Cancel imports nothing."));
    } else {
      callout(
        "action",
        h("p", {}, h("strong", {}, will), `; ${plural(c.invalid, "record was", "records were")} refused.`),
        h("p", {}, "Look at the refused records below first. Process imports the valid ones; Cancel imports nothing."),
      );
    }
  } else if (batch.status === "error") {
    const error = batch.error || { code: "ERROR", message: "" };
    callout(
      "danger",
      h("p", {}, h("strong", {}, "This data could not be read, so nothing was imported: "), error.message, " ", h("code", {}, error.code)),
      catalog[batch.type]
        ? h("p", {}, explain(error.code) || "Fix the file and import it again.", " ", ...sendAgain(batch, "Start a new import"))
        : h("p", {}, explain(error.code) ? `${explain(error.code)} ` : null, ...sendAgain(batch)),
    );
  } else if (batch.status === "completed") {
    if (bad === 0) callout("ok", h("p", {}, h("strong", {}, c.total === 1 ? "The record was imported." : `All ${plural(c.total, "record")} were imported.`)));
    else
      callout(
        c.succeeded ? "warn" : "danger",
        h("p", {}, h("strong", {}, `${count(c.succeeded)} of ${plural(c.total, "record")} imported; ${count(bad)} refused.`)),
        catalog[batch.type]
          ? h(
              "p",
              {},
              "Download the refused records, fix them in the file (each row says why it was refused), and import that file again: ",
              ...sendAgain(batch, `new ${batch.type} import`),
            )
          : h("p", {}, "Why each record was refused is listed below. ", ...sendAgain(batch)),
        resendable(batch) ? h("p", {}, `${notImported(c)}: `, h("strong", {}, "Send again"), ` makes a new batch of ${c.failed + c.unprocessed === 1 ? "it" : "them"}.`) : null,
      );
  } else if (batch.status === "cancelled" && batch.unread_pending) {
    const read = state.events.some((e) => e.event === "start") ? `its validation had read ${plural(c.total, "record")}` : "no record had been read";
    callout(
      "muted",
      h("p", {}, `Cancelled before its data was read through (${read}): the rest is being read now, without being checked, and each record not imported ends as “not processed”.`),
      h("p", {}, "The result file is ready once every record has its outcome, in a moment."),
    );
  } else if (batch.status === "cancelled" && c.total === 0) {
    callout("muted", h("p", {}, "Cancelled before its data was read: no record was read or imported."));
  } else if (batch.status === "cancelled") {
    const parts = [`${count(c.succeeded)} of ${plural(c.total, "record")} had been imported`];
    if (c.unprocessed) parts.push(`${plural(c.unprocessed, "record was", "records were")} not processed`);
    if (c.invalid) parts.push(`${plural(c.invalid, "record was", "records were")} refused as invalid`);
    if (c.failed) parts.push(`${plural(c.failed, "record", "records")} failed`);
    callout(
      "muted",
      h("p", {}, `Cancelled. ${parts.join("; ")}.`),
      resendable(batch) ? h("p", {}, h("strong", {}, "Send again"), ` makes a new batch of the ${plural(c.failed + c.unprocessed, "record")} not imported, if you still want ${c.failed + c.unprocessed === 1 ? "it" : "them"}.`) : null,
    );
  }
  const refusedChildren = state.children.filter((child) => FINAL.has(child.status) && refused(child.counts) > 0);
  if (refusedChildren.length) {
    if (!calloutTone) callout("warn");
    calloutParts.push(
      h(
        "p",
        {},
        `${refusedChildren.length === 1 ? "A child batch has" : "Child batches have"} refused records: `,
        refusedChildren.flatMap((child, i) => [i ? ", " : "", h("a", { href: `/batches/${child.id}` }, `batch ${child.id}`), ` (${plural(refused(child.counts), "record")})`]),
        ".",
      ),
    );
  }
  if (batch.warnings.length) {
    if (!calloutTone) callout("info");
    calloutParts.push(h("p", {}, h("strong", {}, "Warnings:")), h("ul", {}, batch.warnings.map((w) => h("li", {}, w))));
  }
}

// actions ------------------------------------------------------------------------------------

function renderActions(batch) {
  $("#confirm-text").textContent = confirmText(batch); // (while the dialog is open too: the numbers move)
  show($("#action-submit"), batch.status === "open");
  show($("#action-process"), batch.status === "validated" && batch.process === "manual" && batch.counts.valid > 0);
  show($("#action-cancel"), !FINAL.has(batch.status));
  show($("#action-retry"), resendable(batch));
  const valid = batch.counts.valid;
  // (a button whose action is on its way says so until it ends: act)
  if (state.acting !== "process") $("#action-process").textContent = `Process ${plural(valid, "valid record")}`;
  if (state.acting !== "retry") $("#action-retry").textContent = `Send ${plural(batch.counts.failed + batch.counts.unprocessed, "record")} again`;
}

async function act(action, button) {
  const box = $("#action-error");
  show(box, false);
  const [busy, doing] = ACTING[action];
  const label = button.textContent;
  state.acting = action;
  button.disabled = true;
  button.textContent = busy;
  $("#status-sentence").textContent = doing;
  announce(doing);
  try {
    const { body } = await api(`${base}/${action}`, { method: "POST" });
    if (action === "retry") {
      location.assign(`/batches/${body.id}`); // the new batch, with the records sent again
      return;
    }
    announce(`Batch ${id}: ${statusText(body)}`);
    await poll.now();
  } catch (error) {
    const what = action === "retry" ? "send the records again" : `${action} the batch`;
    const code = error.status ? [" (", h("code", {}, error.code), ")"] : []; // (no answer: no code)
    box.replaceChildren(`Could not ${what}: ${error.message}`, ...code);
    show(box, true);
  } finally {
    state.acting = null;
    button.disabled = false;
    button.textContent = label;
    if (state.batch) {
      renderStatus(state.batch);
      renderActions(state.batch);
    }
    // (disabled while it worked, the button lost focus; once the batch moved on it may be hidden)
    keepFocus(button.hidden ? $("#status-line") : button);
  }
}

function wireActions() {
  $("#action-submit").addEventListener("click", (e) => act("submit", e.currentTarget));
  $("#action-process").addEventListener("click", (e) => act("process", e.currentTarget));
  $("#action-retry").addEventListener("click", (e) => act("retry", e.currentTarget));
  const dialog = $("#confirm-cancel");
  $("#action-cancel").addEventListener("click", () => dialog.showModal());
  dialog.addEventListener("close", () => {
    if (dialog.returnValue === "cancel") act("cancel", $("#action-cancel"));
    // The browser gives focus back to the button itself; this is for one that does not. The
    // event comes a moment after the dialog closes, when focus may have moved on: leave it there.
    else if (!document.activeElement || document.activeElement === document.body) $("#action-cancel").focus();
  });
}

// files: an open batch takes more -----------------------------------------------------------

/** Whether files can be added to the batch here: an open batch of a type that takes files, whose
 *  data is neither pages of items (a retry's records are read as items) nor fetched from a URL. */
function takesFiles(batch) {
  const pages = state.inputs.some((input) => input.kind === "page" || input.kind === "retry");
  return batch.status === "open" && Boolean(catalog[batch.type]) && !batch.source_url && !pages;
}

/** One of the batch's files: its size and when it was received, or that it waits at its upload URL
 *  (or, read as the batch left open, that it never came). */
function inputItem(file) {
  const name = h("span", { class: "input-name" }, file.name);
  const waiting = file.pending ? "waiting for upload (an upload URL was handed out for it)" : "never received";
  if (!file.received_at) return h("li", { class: "input-pending" }, name, h("span", { class: "small muted" }, waiting));
  const received = h("time", { datetime: file.received_at, title: when(file.received_at) }, clock(file.received_at));
  const again = state.replaced.has(file.name) ? " (sent again: it replaced the first one)" : null;
  return h("li", {}, name, h("span", { class: "small muted" }, `${bytes(file.size)} · `, "received ", received, again));
}

function renderFiles(batch) {
  const open = takesFiles(batch);
  show($("#add-file"), open || state.sending !== null);
  if (batch.status !== "open") {
    // Shown only while a file is still on its way (it will be refused): the batch takes no more
    // files and waits for none, so the card lists none.
    $("#inputs").replaceChildren();
    show($("#inputs"), false);
    show($("#add-file-hint"), false);
    $("#inputs-none").textContent = "This batch is no longer open: it takes no more files.";
    show($("#inputs-none"), true);
    return;
  }
  if (!open) return;
  if (!state.picker) startPicker(batch);
  $("#inputs").replaceChildren(...state.inputs.map(inputItem));
  show($("#inputs"), state.inputs.length > 0);
  show($("#inputs-none"), state.inputs.length === 0);
}

function startPicker(batch) {
  const type = batch.type;
  $("#add-file-hint").replaceChildren(
    "Each file holds ",
    h("code", {}, type),
    " records: the ",
    h("a", { href: `/new?type=${encodeURIComponent(type)}` }, "new-import page"),
    " lists their columns, and a ",
    h("a", { href: `/types/${encodeURIComponent(type)}/template.csv`, download: true }, "CSV template"),
    " has the header row. The batch reads its files in the order they arrived; a file sent with the name of one already here replaces it. Submit the batch once every file is here.",
  );
  state.picker = filePicker(() => ({ name: type, ...catalog[type] }), {
    otherwise: `, or choose a file of ${type} records`,
    present: (name) => state.inputs.some((file) => file.name === name),
  });
}

// What to do about an upload the API refused, by its code.
const UPLOAD_HINTS = {
  PAYLOAD_TOO_LARGE: "Split it into smaller files: the batch takes several.",
  UNSUPPORTED_MEDIA_TYPE: "Choose how to read it under “Read it as”, or save it as “CSV UTF-8”.",
  INVALID_NAME: "Rename the file and choose it again.",
  MIXED_INPUT: "This batch holds pages of items: send the rest as pages through the API.",
};

/** Why the file was not added, in words, with the API's message and code. */
function refusal(error, file) {
  const what = h("strong", {}, `${file.name} was not added: `);
  if (error.status === 0) return [what, `${error.message}.`]; // no answer: the network, not the API
  const hint = UPLOAD_HINTS[error.code];
  return [what, `${error.message} (`, h("code", {}, error.code), ").", hint ? ` ${hint}` : null];
}

/** Say why nothing was sent or added: under the upload, or with the actions once the batch has
 *  left open (the upload's card is gone then). */
function uploadError(...message) {
  const box = $("#add-file").hidden ? $("#action-error") : $("#upload-error");
  box.replaceChildren(...message);
  show(box, true);
}

async function addFile(event) {
  event.preventDefault();
  show($("#upload-error"), false);
  const picker = state.picker;
  const file = picker.file;
  if (!file) return uploadError("Choose a file first.");
  if (picker.problem) return uploadError(picker.problem);
  const name = uploadName(file);
  const again = state.inputs.some((input) => input.name === name && input.received_at); // it replaces that one
  const focused = document.activeElement === $("#start");
  for (const button of [$("#start"), $("#action-submit")]) button.disabled = true; // (a disabled button loses focus)
  let failure = null;
  try {
    progress(`Uploading ${file.name}…`, 0);
    const sending = sendFile(id, file, name, picker.contentType);
    state.sending = sending;
    show($("#stop"), true);
    await sending.promise;
    if (again) state.replaced.add(name);
    progress(`${name} (${bytes(file.size)}) is in the batch. Add another file, or submit the batch.`, 1);
    await picker.clear();
  } catch (error) {
    failure = error;
    if (error.code === "ABORTED") progress(`Upload stopped: ${file.name} was not added.`, 0);
    else show($("#upload-progress"), false);
  } finally {
    show($("#stop"), false);
    state.sending = null;
    for (const button of [$("#start"), $("#action-submit")]) button.disabled = false;
    // A keyboard user keeps their place, unless they have moved on meanwhile.
    if (focused && (!document.activeElement || document.activeElement === document.body)) $("#start").focus();
  }
  await poll.now(); // the files, and the status: the batch may have been submitted meanwhile
  if (failure && failure.code !== "ABORTED") uploadError(...refusal(failure, file));
}

function wireFiles() {
  $("#upload-form").addEventListener("submit", addFile);
  $("#stop").addEventListener("click", () => state.sending?.abort());
}

// downloads ----------------------------------------------------------------------------------

function renderDownloads(batch) {
  const ready = (batch.status === "completed" || batch.status === "cancelled") && !batch.unread_pending;
  show($("#downloads"), ready);
  if (!ready) return;
  const bad = refused(batch.counts);
  // (records of a type the new-import page does not take are sent again another way: renderCallout)
  const again = catalog[batch.type] ? ", ready to fix and import again" : "";
  $("#downloads-hint").textContent =
    `The result file has every record as it was read, and what happened to it: loadbay_status (succeeded, invalid, failed, unprocessed), the action, the id it got, and the error code and message. The refused-records file has only the records that were not imported${again}.`;
  const refusedButton = $("#download-refused");
  refusedButton.disabled = bad === 0;
  refusedButton.textContent = bad ? `Download ${plural(bad, "refused record")} (CSV)` : "No refused records";
}

async function save(button, path, filename) {
  const status = $("#download-status");
  button.disabled = true;
  status.textContent = `Preparing ${filename}…`;
  try {
    const size = await download(path, filename);
    status.textContent = `Downloaded ${filename} (${count(size)} bytes).`;
  } catch (error) {
    status.textContent = `The download failed: ${error.message}`;
  } finally {
    button.disabled = false;
  }
}

function wireDownloads() {
  $("#download-results").addEventListener("click", (e) => save(e.currentTarget, `${base}/results`, `batch-${id}-results.csv`));
  $("#download-refused").addEventListener("click", (e) =>
    save(e.currentTarget, `${base}/results?outcome=invalid,failed,unprocessed`, `batch-${id}-refused.csv`),
  );
}

// errors -------------------------------------------------------------------------------------

const SHORT_VALUE = 80; // characters of a refused value shown (the whole of it: on hover, and expanded)

/** A refused value as a person reads it: text in quotes; nested values (a job's recipients,
 *  say, which the API gives as JSON) by their values, not as a JSON dump. A value longer than
 *  SHORT_VALUE shows its start, and the whole of it on hover and when expanded (in a box that
 *  scrolls: a value of 400 KB does not make the page that tall). */
function shownValue(value) {
  const nested = /^[[{]/.test(value) ? parsed(value) : undefined;
  const text = nested === undefined ? value : inWords(nested) || "none";
  const quoted = (words) => (nested === undefined ? ["“", words, "”"] : [words]);
  const tone = nested === undefined ? "value" : "value value-nested";
  const chars = Array.from(text); // code points, so "…" never splits one
  if (chars.length <= SHORT_VALUE) return h("span", { class: tone }, ...quoted(text));
  const short = `${chars.slice(0, SHORT_VALUE - 1).join("")}…`;
  const size = plural(chars.length, "character");
  const hint = h("span", { class: "small muted" }, `(${size}: show all)`);
  return h(
    "details",
    { class: "value-long", ontoggle: (event) => (hint.textContent = `(${size}: ${event.currentTarget.open ? "hide" : "show all"})`) },
    h("summary", { title: text }, h("span", { class: tone }, ...quoted(short)), " ", hint),
    h("div", { class: "value-whole", tabindex: "0", role: "region", "aria-label": "The whole value" }, text),
  );
}

function parsed(text) {
  try {
    return JSON.parse(text);
  } catch {
    return undefined;
  }
}

/** Nested values in words: an object's values joined by commas, a list's items numbered. */
function inWords(value) {
  if (Array.isArray(value)) return value.length === 1 ? inWords(value[0]) : value.map((item, i) => `${i + 1}. ${inWords(item)}`).join("; ");
  if (value !== null && typeof value === "object") return Object.values(value).map(inWords).filter(Boolean).join(", ");
  return value === null ? "" : String(value);
}

function example(e) {
  const key = e.external_id; // the record's key as its type shows it (a mail job's: job-1)
  return h(
    "li",
    {},
    h("span", { class: "record-no" }, `#${count(e.index + 1)}`),
    key ? [" ", h("code", {}, key)] : null,
    e.value !== null ? [" ", shownValue(e.value)] : null,
    " ",
    h("span", { class: "muted" }, e.message),
  );
}

function groupName(group) {
  return `${group.code} ${group.field ? `on ${group.field}` : "of whole records"}`;
}

const groupKey = (group) => `${group.code} ${group.field ?? ""}`;

function groupRow(group) {
  const what = explain(group.code);
  const more = group.count > group.examples.length;
  const key = groupKey(group);
  const showAll = h(
    "button",
    { type: "button", class: "button-quiet small", "aria-label": `Show all ${count(group.count)} errors ${groupName(group)}`, onclick: () => showGroup(state.groups.get(key)) },
    `Show all ${count(group.count)}`,
  );
  return h(
    "tr",
    { "data-id": key },
    h("td", { "data-label": "Problem" }, h("code", { class: "code" }, group.code), what ? h("div", { class: "small" }, what) : null),
    h("td", { "data-label": "Field" }, group.field ? h("code", {}, group.field) : h("span", { class: "muted" }, "the whole record")),
    h("td", { "data-label": "Records", class: "num" }, count(group.count)),
    h("td", { "data-label": "Examples" }, h("ul", { class: "examples" }, group.examples.map(example)), more ? showAll : null),
  );
}

async function showGroup(group) {
  state.group = group && { code: group.code, field: group.field, count: group.count };
  state.cursors = [null];
  await loadErrors(0);
  const title = $("#errors-title");
  title.scrollIntoView();
  title.focus();
}

async function loadSummary() {
  const { body: summary } = await api(`${base}/errors/summary`);
  state.groups = new Map(summary.groups.map((group) => [groupKey(group), group]));
  updateRows($("#groups tbody"), summary.groups.map(groupRow)); // in place: a focused button stays focused
  // The errors of the groups past those listed (the API lists the largest 50): not_listed, where
  // the server says (an older one does not), else what the listed groups leave of the total.
  const shown = summary.groups.reduce((n, g) => n + g.count, 0);
  const notListed = typeof summary.not_listed === "number" ? summary.not_listed : Math.max(0, summary.total - shown);
  $("#groups-more").textContent = notListed ? `${plural(notListed, "more error")} in other groups, not listed here: every error is in the table below.` : "";
  show($("#groups-more"), notListed > 0);
  const groups = notListed ? `the ${plural(summary.groups.length, "largest group")} and others` : plural(summary.groups.length, "group");
  $("#problems-hint").textContent =
    `${plural(summary.total, "error")} in ${groups}, by code and field, the largest first. A record refused on two fields counts in both. Records are numbered from 1 in the order of the file (a CSV's header row is not counted).`;
  return summary.total;
}

function errorRow(e) {
  return h(
    "tr",
    {},
    h("td", { class: "num", "data-label": "Record" }, `#${count(e.index + 1)}`),
    h("td", { "data-label": "Key" }, e.external_id ? h("code", {}, e.external_id) : "–"),
    h("td", { "data-label": "Field" }, e.field ? h("code", {}, e.field) : "–"),
    h("td", { "data-label": "Code" }, h("code", { class: "code" }, e.code)),
    h("td", { "data-label": "Message", class: "wrap" }, e.message),
  );
}

async function loadErrors(page) {
  const cursor = state.cursors[page];
  const query = new URLSearchParams({ limit: String(ERRORS_PAGE) });
  if (cursor) query.set("cursor", cursor);
  if (state.group) {
    query.set("code", state.group.code);
    query.set("field", state.group.field || ""); // empty: the errors of whole records
  }
  const { body } = await api(`${base}/errors?${query}`);
  $("#errors-title").textContent = state.group ? `Errors ${groupName(state.group)}` : "Every error";
  show($("#errors-all"), Boolean(state.group));
  state.page = page;
  state.cursors[page + 1] = body.next_cursor;
  $("#errors tbody").replaceChildren(...body.data.map(errorRow));
  const first = page * ERRORS_PAGE + 1;
  const of = state.group ? state.group.count : state.errorTotal;
  const range = `Errors ${count(first)}–${count(first + body.data.length - 1)}${of ? ` of ${count(of)}` : ""}`;
  $("#errors-range").textContent = body.data.length ? range : "";
  show($("#errors-first"), page > 1);
  show($("#errors-previous"), page > 0);
  show($("#errors-next"), Boolean(body.next_cursor));
}

/** Turn the errors' page by `step` (0: back to the first), one turn at a time: a press while a
 *  page loads waits for it. The pressed button hides at the last or first page: focus then goes
 *  to the one that goes the other way. */
let turning = Promise.resolve();
function turn(step) {
  turning = turning.then(async () => {
    const page = step === 0 ? 0 : state.page + step;
    if (page < 0 || (step > 0 && !state.cursors[page])) return; // (past either end: pressed twice)
    await loadErrors(page);
    if (step > 0) $("#errors-title").scrollIntoView();
    const next = $("#errors-next");
    const back = $("#errors-previous");
    keepFocus([step > 0 ? next : back, step > 0 ? back : next, $("#errors-title")].find((button) => !button.hidden));
  });
  return turning;
}

function wireErrors() {
  $("#errors-next").addEventListener("click", () => turn(1));
  $("#errors-first").addEventListener("click", () => turn(0));
  $("#errors-previous").addEventListener("click", () => turn(-1));
  $("#errors-all").addEventListener("click", () => showGroup(null));
}

async function renderProblems(batch) {
  const bad = refused(batch.counts);
  if (bad === state.errorCount) return;
  // While the batch moves, errors are read again every few seconds, not on every tick.
  const moving = MOVING.has(batch.status);
  if (moving && state.errorsAt && Date.now() - state.errorsAt < 5000) return;
  state.errorCount = bad;
  state.errorsAt = Date.now();
  const total = bad ? await loadSummary() : 0;
  state.errorTotal = total;
  show($("#problems"), total > 0);
  if (total > 0 && state.page === 0) await loadErrors(0);
}

// children, timeline, details ----------------------------------------------------------------

function renderChildren(children) {
  const rows = children.map((child) =>
    h(
      "tr",
      { "data-id": child.id },
      h("td", {}, h("a", { href: `/batches/${child.id}` }, `Batch ${child.id}`)),
      h("td", {}, h("code", {}, child.type)),
      h("td", {}, badge(child)),
      h("td", {}, progressBar(child), " ", h("span", { class: "small muted" }, progressText(child))),
      h("td", { class: "num" }, count(child.progress.total)),
    ),
  );
  updateRows($("#children tbody"), rows); // in place: a focused link stays focused
  show($("#children"), rows.length > 0);
  return children.some((child) => MOVING.has(child.status));
}

const EVENT_TEXT = {
  created: "Created",
  file_received: "File received",
  page_received: "Page received",
  attachment_received: "Attachment received",
  submit: "Submitted",
  start: "Validation started",
  copied: "Fetched from its URL",
  summed: "Child totals summed",
  read: "File read through",
  chunked: "Every record checked",
  validated: "Validated, waiting for Process",
  apply: "Importing",
  process: "Process requested",
  complete: "Completed",
  fail: "Failed",
  cancel: "Cancelled",
  clear: "Cleared",
};

/** An event's detail with its sizes and counts written for people: "big.csv (13 MB)", "300,000 records". */
function readable(detail) {
  return detail
    .replace(/\b(\d{4,}) bytes\b/g, (_, n) => bytes(Number(n)))
    .replace(/\b(\d{4,})(?= (records?|items?|line items?|files?|pages?)\b)/g, (n) => count(Number(n)));
}

function renderTimeline(events) {
  const items = events.map((e) =>
    h(
      "li",
      { class: `event event-${e.event}` },
      h("time", { datetime: e.at, title: when(e.at) }, clock(e.at)),
      h("span", { class: "event-name" }, EVENT_TEXT[e.event] || e.event),
      e.detail ? h("span", { class: "event-detail" }, readable(e.detail)) : null,
    ),
  );
  $("#timeline").replaceChildren(...items);
}

const ORIGINS = {
  api: "The native API (or this dashboard, or the CLI)",
  ebill: "The eBill API",
  fusebill: "The Fusebill API",
  centrapay: "The Centrapay API",
  alliant: "The Alliant API",
  click2mail: "The Click2Mail API",
};

/** The API that created the batch (recorded since schema revision 0006), and its id there. */
function createdThrough(batch) {
  if (!batch.origin) {
    return ["Not recorded", h("div", { class: "small muted" }, "The batch was created before loadbay recorded the API that made it.")];
  }
  const name = ORIGINS[batch.origin] || batch.origin;
  if (batch.origin === "api") return [name];
  const id = batch.origin === "centrapay" ? batch.ref : String(batch.id);
  return [`${name}, where its id is `, h("code", {}, id)];
}

function views(batch) {
  const table = JSON.parse($("#profile-views").textContent);
  const n = (batch.type.match(/^catalog\.user(\d)$/) || [])[1];
  return (table[batch.type] || []).map(([profile, path]) => {
    const url = path.replace("{id}", batch.id).replace("{ref}", batch.ref).replace("{n}", n);
    const shown = path.includes("{ref}") ? batch.ref : batch.id;
    return h("div", {}, `${profile}: id `, h("code", {}, String(shown)), " ", h("span", { class: "small muted" }, "GET ", h("code", {}, url)));
  });
}

function renderDetails(batch) {
  const rows = [
    ["Type", h("code", {}, batch.type)],
    ["Job id", batch.job_id || "–"],
    ["Description", batch.description || "–"],
    ["Two-phase", batch.process === "manual" ? "Yes: waits at validated until Process" : "No: imported as soon as it is checked"],
    ["Mode", batch.test ? "Test" : "Live"],
    ["Parent batch", batch.parent_id ? h("a", { href: `/batches/${batch.parent_id}` }, `Batch ${batch.parent_id}`) : null],
    ["Sent again from", batch.retry_of ? [h("a", { href: `/batches/${batch.retry_of}` }, `Batch ${batch.retry_of}`), h("div", { class: "small muted" }, "The records of that batch that were not imported, sent again.")] : null],
    ["Source URL", batch.source_url ? h("code", { class: "wrap" }, batch.source_url) : null],
    ["Created", when(batch.created_at)],
    ["Submitted", batch.submitted_at ? when(batch.submitted_at) : null],
    ["Finished", batch.finished_at ? when(batch.finished_at) : null],
    ["Reference", h("code", {}, batch.ref)],
    ["Created through", createdThrough(batch)],
    ["In the vendor APIs", views(batch)],
    ["Options", Object.keys(batch.options).length ? h("pre", {}, JSON.stringify(batch.options, null, 2)) : null],
  ];
  const items = rows
    .filter(([, value]) => value !== null && !(Array.isArray(value) && value.length === 0))
    .map(([term, value]) => h("div", {}, h("dt", {}, term), h("dd", {}, value)));
  update($("#details"), ...items); // in place: a focused link stays focused
  update($("#crumb-parent"), ...(batch.parent_id ? [h("a", { href: `/batches/${batch.parent_id}` }, `Batch ${batch.parent_id}`), " / "] : []));
}

// loading ------------------------------------------------------------------------------------

async function load() {
  const [{ body: batch }, { body: events }, { body: children }] = await Promise.all([api(base), api(`${base}/events`), api(`${base}/children`)]);
  const before = state.batch;
  state.batch = batch;
  state.children = children.data;
  // A child is checked once its parent is final: while it waits, the parent's status says why.
  state.parent = batch.parent_id && ["open", "queued"].includes(batch.status) ? (await api(`/v1/batches/${batch.parent_id}`)).body : null;
  // What an open batch holds: whether it has data, takes files, and the files it lists.
  state.events = events.data;
  state.inputs = batch.status === "open" ? (await api(`${base}/inputs`)).body.data : [];
  if (before && before.status !== batch.status) announce(`Batch ${id}: ${statusText(batch)}`);
  $("#batch-subtitle").replaceChildren(h("code", {}, batch.type), batch.job_id ? ` · ${batch.job_id}` : "", batch.description ? ` · ${batch.description}` : "");
  document.title = `Batch ${id} (${statusText(batch)}) · loadbay`;
  renderStatus(batch);
  renderActions(batch);
  renderFiles(batch);
  renderDownloads(batch);
  renderTimeline(events.data);
  renderDetails(batch);
  const childrenMoving = renderChildren(children.data);
  await renderProblems(batch);
  show($("#batch-loading"), false);
  show($("#batch"), true);
  show($("#batch-error"), false);
  return MOVING.has(batch.status) || batch.unread_pending || childrenMoving;
}

// Every second while the batch (or a child) moves; every 10 seconds while it waits (someone
// may submit or process it elsewhere); not at all once it is final.
const poll = repeat(async () => {
  try {
    const moving = await load();
    return moving ? 1000 : FINAL.has(state.batch.status) ? null : 10_000;
  } catch (error) {
    show($("#batch-loading"), false);
    const box = $("#batch-error");
    box.textContent = error.status === 404 ? `There is no batch ${id} in this account.` : `The batch could not be loaded: ${error.message}`;
    show(box, true);
    return error.status === 404 || error.status === 401 ? null : 5000;
  }
});

boot(async () => {
  wireActions();
  wireFiles();
  wireDownloads();
  wireErrors();
  await poll.now();
});
