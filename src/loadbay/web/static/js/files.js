// A file to import, as the new-import page and an open batch's page take it (the markup of
// templates/_files.html): dropped or chosen, read as the format its name or first bytes say,
// its header row checked against the record type's columns before it is sent, then sent into
// a batch with a progress bar.

import { upload } from "./api.js";
import { $, bytes, h, show } from "./ui.js";

export const CONTENT_TYPES = { csv: "text/csv", tsv: "text/tab-separated-values", jsonl: "application/x-ndjson", json: "application/json" };
const FORMAT_NAMES = { csv: "CSV", tsv: "TSV", jsonl: "JSON Lines", json: "JSON" };

// the file's format and text -------------------------------------------------------------

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

// the picker -------------------------------------------------------------------------------

/**
 * The page's file picker (#dropzone, #file, #format, #file-check). `type()` answers the record
 * type the file is checked against: { name, columns, required, one_of }. Options: `otherwise`,
 * what else a person can do about missing columns (", or pick …"); `present(name)`, whether
 * the batch has a file of that name already (sending another replaces it).
 */
export function filePicker(type, { otherwise = "", present = () => false } = {}) {
  const state = { file: null, head: "", unreadable: null, problem: null };

  async function choose(file) {
    state.file = file;
    const buffer = file ? await file.slice(0, 65536).arrayBuffer() : new ArrayBuffer(0);
    state.head = new TextDecoder("utf-8").decode(buffer);
    state.unreadable = unreadable(buffer);
    show($("#format-field"), Boolean(file));
    const chosen = $("#file-chosen");
    show(chosen, Boolean(file));
    if (file) {
      $("#format").value = guessFormat(file.name, state.head);
      chosen.replaceChildren(h("strong", {}, file.name), ` · ${bytes(file.size)}`);
    }
    check();
  }

  function report(tone, ...text) {
    if (tone === "error") state.problem = text.join("");
    $("#file-check").append(h("p", { class: `check-${tone}` }, ...text));
  }

  function check() {
    state.problem = null;
    $("#file-check").replaceChildren();
    if (!state.file) return;
    checkText();
    if (!state.problem && present(uploadName(state.file))) {
      report("warn", `The batch has a file named ${uploadName(state.file)} already: this one replaces it.`);
    }
  }

  function checkText() {
    const format = $("#format").value;
    const { name, ...columns } = type();
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
    checkHeader(name, columns, found);
  }

  function checkHeader(name, type, found) {
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
        ` to the first row of the file${otherwise}. Columns found: ${found.join(", ") || "none"}.`,
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
    if (unknown.length) report("warn", `Not columns of ${name}, so they are ignored: ${unknown.join(", ")}.`);
    if (ours.length) report("info", "The loadbay_… columns of a result file are not imported: the other columns are.");
  }

  function wire() {
    const input = $("#file");
    input.addEventListener("change", () => choose(input.files[0] || null));
    $("#format").addEventListener("change", check);
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
    if (input.files[0]) choose(input.files[0]); // (kept by the browser on a reload)
  }

  wire();
  return {
    get file() {
      return state.file;
    },
    /** Why the file cannot be sent as it is (shown with the file), or null. */
    get problem() {
      return state.problem;
    },
    get contentType() {
      return CONTENT_TYPES[$("#format").value];
    },
    check,
    /** Forget the file: the picker is empty again, for the next one. */
    clear() {
      $("#file").value = "";
      return choose(null);
    },
  };
}

// sending ----------------------------------------------------------------------------------

/** The upload's progress line (#upload-progress): `text`, and the bar at `fraction` (null: no known end). */
export function progress(text, fraction) {
  show($("#upload-progress"), true);
  $("#upload-text").textContent = text;
  const bar = $("#upload-bar");
  if (fraction === null) bar.removeAttribute("value");
  else bar.value = fraction;
}

/** Send `file` into the batch as its file `name` (Content-Type `contentType`), with its progress shown: { promise, abort }. */
export function sendFile(batchId, file, name, contentType) {
  const path = `/v1/batches/${batchId}/data?name=${encodeURIComponent(name)}`;
  return upload(path, file, contentType, (sent, total) =>
    progress(`Uploading ${file.name}: ${bytes(sent)} of ${bytes(total)} (${Math.round((100 * sent) / (total || 1))}%)`, total ? sent / total : null),
  );
}

// The longest file name the server keeps: 240 bytes once URL-encoded (core/intake.py, INVALID_NAME).
const MAX_QUOTED_NAME = 240;

/** `text`'s length URL-encoded as the server encodes names (Python's quote: !'()* too). */
function quotedLength(text) {
  return encodeURIComponent(text).length + 2 * (text.match(/[!'()*]/g) || []).length;
}

/** The name a file is kept under in its batch: its own, cut to 100 characters and to what the
 *  server keeps (a name in another script is two to four bytes a letter), a whole character at a time. */
export function uploadName(file) {
  let name = "";
  let length = 0;
  for (const character of file.name) {
    length += 1;
    if (length > 100 || quotedLength(name + character) > MAX_QUOTED_NAME) break;
    name += character;
  }
  return name;
}
