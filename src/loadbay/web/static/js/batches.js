// The batches page: filters in the URL, newest first, cursor pages, live while batches move.

import { api } from "./api.js";
import { boot } from "./shell.js";
import { $, MOVING, ago, badge, count, h, progressBar, progressText, repeat, show, updateRows } from "./ui.js";

const params = new URLSearchParams(location.search);

function fillFilters() {
  for (const name of ["q", "status", "type"]) {
    const field = $(`#filter-${name}`);
    if (params.get(name)) field.value = params.get(name);
  }
  // Only the filters that are set go in the URL.
  $("#filters").addEventListener("submit", (event) => {
    event.preventDefault();
    const query = new URLSearchParams();
    for (const name of ["q", "status", "type"]) {
      const value = $(`#filter-${name}`).value.trim();
      if (value) query.set(name, value);
    }
    location.assign(query.toString() ? `/?${query}` : "/");
  });
}

function query() {
  const query = new URLSearchParams({ limit: "25" });
  for (const name of ["q", "status", "type", "cursor"]) {
    if (params.get(name)) query.set(name, params.get(name));
  }
  return query;
}

/** The records loadbay refused: invalid or failed, and those left unprocessed when a chunk failed
 *  on every attempt; not those of a batch the person cancelled (they chose to stop it). */
function refused(batch) {
  const counts = batch.counts;
  return counts.invalid + counts.failed + (batch.status === "cancelled" ? 0 : counts.unprocessed);
}

const SHOWN_WORD = 24; // characters of one word of a job id shown (monospace, so they take one width)
const WORD_TAIL = 10; // of those, the word's last: ids that differ often differ at the end

/** A job id that wraps only between its words, never inside one (at a UUID's or a path's
 *  hyphens and slashes); a word too long for the column keeps its start and its end around
 *  "…", and then the whole id is on hover (title) and read to screen readers. */
function jobId(id) {
  const words = id.split(" ");
  const shown = words.map(shortWord);
  const line = shown.flatMap((word, i) => [i ? " " : null, h("span", { class: "word" }, word)]);
  if (shown.every((word, i) => word === words[i])) return h("code", { class: "job-id" }, line);
  return h("code", { class: "job-id", title: id }, h("span", { "aria-hidden": "true" }, line), h("span", { class: "sr-only" }, id));
}

function shortWord(word) {
  const chars = Array.from(word); // code points, so "…" never splits one
  if (chars.length <= SHOWN_WORD) return word;
  return `${chars.slice(0, SHOWN_WORD - WORD_TAIL - 1).join("")}…${chars.slice(-WORD_TAIL).join("")}`;
}

/** The job id, and under it the description (cut short after two lines, whole on hover). */
function jobCell(batch) {
  if (!batch.job_id && !batch.description) return h("span", { class: "muted" }, "–");
  const description = batch.description && h("span", { class: "job-description", title: batch.description }, batch.description);
  return [batch.job_id && jobId(batch.job_id), description];
}

function row(batch) {
  const link = `/batches/${batch.id}`;
  const bad = refused(batch);
  const cell = (name, label, ...content) => h("td", { class: `c-${name}`, "data-label": label }, ...content);
  return h(
    "tr",
    { "data-id": batch.id, "data-status": batch.status },
    cell("batch", "Batch", h("a", { href: link, class: "batch-link" }, `Batch ${batch.id}`), batch.test ? h("span", { class: "tag tag-test" }, "test") : null),
    cell("type", "Type", h("code", {}, batch.type)),
    cell("job", "Job id / description", jobCell(batch)),
    cell("status", "Status", badge(batch)),
    cell("progress", "Progress", progressCell(batch)),
    cell("records", "Records", count(batch.progress.total)),
    cell("refused", "Refused", bad ? h("span", { class: "refused" }, count(bad)) : "0"),
    cell("created", "Created", ago(batch.created_at)),
  );
}

function progressCell(batch) {
  if (batch.status === "error" || batch.status === "cleared") return h("span", { class: "muted small" }, "nothing imported");
  return h("div", { class: "cell-progress" }, progressBar(batch), h("span", { class: "small muted" }, progressText(batch)));
}

function filtered() {
  return ["q", "status", "type"].some((name) => params.get(name));
}

function emptyText() {
  if (filtered()) return "No batches match these filters.";
  if (params.get("cursor")) return "No older batches.";
  return "No batches yet. Start with a new import: pick the kind of records, choose a file, and loadbay checks and imports every record.";
}

async function load() {
  const { body: page } = await api(`/v1/batches?${query()}`);
  const tbody = $("#batches tbody");
  updateRows(tbody, page.data.map(row)); // in place: a focused link stays focused
  show($("#batches"), page.data.length > 0);
  const empty = $("#empty");
  empty.textContent = emptyText();
  show(empty, page.data.length === 0);
  if (page.data.length === 0 && filtered()) {
    empty.append(" ", h("a", { href: "/" }, "Clear the filters"));
  } else if (page.data.length === 0 && !params.get("cursor")) {
    empty.append(" ", h("a", { href: "/new" }, "New import"));
  }
  pager(page.next_cursor);
  show($("#list-error"), false);
  const moving = page.data.some((b) => MOVING.has(b.status));
  show($("#live-note"), moving);
  return moving;
}

/** What in the address the API refused (400), in words. */
function unusable(error) {
  if (error.code === "INVALID_STATUS") return `there is no status “${params.get("status")}”.`;
  if (error.message.startsWith("cursor")) return "its page (cursor) is not one this list made.";
  if (error.message.startsWith("q")) return `its search is ${count(Array.from(params.get("q") || "").length)} characters long; a search is 200 characters at most.`;
  return "one of its filters is not one the list knows.";
}

function pager(next) {
  const older = $("#page-older");
  const newest = $("#page-newest");
  const base = new URLSearchParams(params);
  base.delete("cursor");
  newest.href = base.toString() ? `/?${base}` : "/";
  show(newest, Boolean(params.get("cursor")));
  if (next) base.set("cursor", next);
  older.href = `/?${base}`;
  show(older, Boolean(next));
}

// Every 2 seconds while a batch on the page moves; every 10 otherwise, so batches made
// elsewhere (the API, the CLI, another tab) show up without a reload.
boot(async () => {
  fillFilters();
  const poll = repeat(async () => {
    try {
      return (await load()) ? 2000 : 10_000;
    } catch (error) {
      const box = $("#list-error");
      if (error.status === 400) {
        // An address edited by hand (or kept from elsewhere): say which part, in words, and the way back.
        box.replaceChildren(`This address asks for something the list cannot show: ${unusable(error)} `, h("a", { href: "/" }, "Show the newest batches"), ".");
        show(box, true);
        show($("#batches"), false);
        return null; // (asking again gets the same answer)
      }
      box.textContent = `The batches could not be loaded: ${error.message}`;
      show(box, true);
      return error.status === 401 ? null : 5000;
    }
  });
  await poll.now();
});
