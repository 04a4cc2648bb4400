// Small DOM and formatting helpers. Text always goes in as text (never as HTML).

/** An element: h("a", {href: "/"}, "text", child, …); attributes starting with "on" are listeners. */
export function h(tag, attributes, ...children) {
  const element = document.createElement(tag);
  for (const [name, value] of Object.entries(attributes || {})) {
    if (value === undefined || value === null || value === false) continue;
    if (name.startsWith("on")) element.addEventListener(name.slice(2), value);
    else if (name === "class") element.className = value;
    else if (value === true) element.setAttribute(name, "");
    else element.setAttribute(name, String(value));
  }
  element.append(...children.flat().filter((c) => c !== null && c !== undefined && c !== false));
  return element;
}

export const $ = (selector, root = document) => root.querySelector(selector);

export function show(element, visible = true) {
  element.hidden = !visible;
}

const numbers = new Intl.NumberFormat("en");

export function count(n) {
  return n === null || n === undefined ? "–" : numbers.format(n);
}

export function plural(n, one, many = one + "s") {
  return `${count(n)} ${n === 1 ? one : many}`;
}

export function bytes(n) {
  if (n < 1024) return `${n} B`;
  const units = ["KB", "MB", "GB", "TB"];
  let value = n / 1024;
  let unit = 0;
  while (value >= 1024 && unit < units.length - 1) {
    value /= 1024;
    unit += 1;
  }
  return `${value.toFixed(value < 10 ? 1 : 0)} ${units[unit]}`;
}

export function duration(seconds) {
  if (seconds === null || seconds === undefined) return "";
  if (seconds < 1) return "less than a second";
  if (seconds < 90) return plural(Math.round(seconds), "second");
  if (seconds < 90 * 60) return plural(Math.round(seconds / 60), "minute");
  const hours = Math.floor(seconds / 3600);
  const minutes = Math.round((seconds % 3600) / 60);
  return `${plural(hours, "hour")}${minutes ? " " + plural(minutes, "minute") : ""}`;
}

const dateTime = new Intl.DateTimeFormat("en", { dateStyle: "medium", timeStyle: "medium" });
const time = new Intl.DateTimeFormat("en", { timeStyle: "medium" });

export function when(iso) {
  return iso ? dateTime.format(new Date(iso)) : "";
}

export function clock(iso) {
  return iso ? time.format(new Date(iso)) : "";
}

/** "3 minutes ago", with the full date and time as its title. */
export function ago(iso) {
  const seconds = (Date.now() - new Date(iso).getTime()) / 1000;
  let text;
  if (seconds < 45) text = "just now";
  else if (seconds < 60 * 60) text = `${plural(Math.round(seconds / 60), "minute")} ago`;
  else if (seconds < 24 * 3600) text = `${plural(Math.round(seconds / 3600), "hour")} ago`;
  else text = when(iso);
  return h("time", { datetime: iso, title: when(iso) }, text);
}

// statuses ---------------------------------------------------------------------------------

export const MOVING = new Set(["queued", "validating", "processing"]);
export const FINAL = new Set(["completed", "error", "cancelled", "cleared"]);

const STATUS_TEXT = {
  open: "Waiting for data",
  queued: "Queued",
  validating: "Validating",
  validated: "Validated – waiting for you",
  processing: "Importing",
  completed: "Completed",
  error: "Could not be read",
  cancelled: "Cancelled",
  cleared: "Cleared",
};

const OUTCOME_TEXT = { succeeded: "all imported", partial: "some refused", failed: "none imported" };

export function statusText(batch) {
  const text = STATUS_TEXT[batch.status] || batch.status;
  return batch.outcome ? `${text}, ${OUTCOME_TEXT[batch.outcome] || batch.outcome}` : text;
}

export function badge(batch) {
  const tone = batch.status === "completed" ? `completed-${batch.outcome}` : batch.status;
  return h("span", { class: `badge badge-${tone}` }, statusText(batch));
}

/** A progress bar with a short text, for a batch's progress object. */
export function progressBar(batch, label) {
  const p = batch.progress;
  const bar = h("progress", { max: 1, "aria-label": label || `Batch ${batch.id} progress` });
  // A cancelled batch's records all have an outcome: its bar shows the share imported. A
  // validated one waits for Process: nothing is imported yet, though its refused records are done.
  if (batch.status === "cancelled") bar.value = p.total ? batch.counts.succeeded / p.total : 0;
  else if (batch.status === "validated") bar.value = 0;
  else if (p.fraction !== null && batch.status !== "open") bar.value = p.fraction;
  else if (!MOVING.has(batch.status)) bar.value = 0;
  // else: no value, an indeterminate bar (the total is not known yet)
  return bar;
}

export function progressText(batch) {
  const p = batch.progress;
  if (batch.status === "error" || batch.status === "cleared") return "";
  if (batch.status === "open") return p.total !== null ? `${plural(p.total, "record")} received` : "";
  if (batch.status === "cancelled" && p.total !== null) return `${count(batch.counts.succeeded)} of ${plural(p.total, "record")} imported`;
  if (batch.status === "validated" && p.total !== null) return `${plural(p.total, "record")} checked, none imported yet`;
  if (p.total === null) {
    if (batch.status === "validating") return `${plural(batch.counts.total, "record")} read so far`;
    return "";
  }
  return `${count(p.done)} of ${plural(p.total, "record")}`;
}

export function speedText(batch) {
  const p = batch.progress;
  if (!MOVING.has(batch.status) || !p.rate) return "";
  const parts = [`${count(Math.round(p.rate))} records/s`];
  if (p.eta_seconds !== null && p.eta_seconds !== undefined) parts.push(`about ${duration(p.eta_seconds)} left`);
  return parts.join(" · ");
}

/** Say something to screen readers (a polite live region). */
export function announce(message) {
  const region = document.getElementById("announcer");
  if (!region) return;
  region.textContent = "";
  setTimeout(() => {
    region.textContent = message;
  }, 50);
}

/**
 * Run `tick`, then again after as many milliseconds as it answers (none: stop); paused while
 * the tab is hidden, and run at once when it shows again. A tick that throws runs again in 5 s.
 */
export function repeat(tick) {
  let timer = null;
  let paused = false;
  let running = null; // the ticks on their way, if any
  let again = false; // asked for while a tick was on its way: its answer may be stale
  const once = async () => {
    clearTimeout(timer);
    timer = null;
    if (document.hidden) {
      paused = true;
      return;
    }
    let wait = 5000;
    try {
      wait = await tick();
    } catch (error) {
      console.error(error);
    }
    if (wait && timer === null) timer = setTimeout(run, wait);
  };
  // One tick at a time: asked for during one, another runs after it, and both callers wait for
  // that one (an older answer never renders over a newer one).
  const run = () => {
    if (running) {
      again = true;
      return running;
    }
    running = (async () => {
      do {
        again = false;
        await once();
      } while (again);
      running = null;
    })();
    return running;
  };
  document.addEventListener("visibilitychange", () => {
    if (!document.hidden && paused) {
      paused = false;
      run();
    }
  });
  return { now: run };
}

// updating in place ------------------------------------------------------------------------

/**
 * Make `old` look like `now` in place: its attributes, text and children, recursively. The
 * elements that stay keep what a person has there: keyboard focus, a selection. Listeners stay
 * those of `old`, so a listener that needs fresh data reads it when it runs. Answers the node
 * now in the page.
 */
export function morph(old, now) {
  if (old.nodeType !== now.nodeType || old.nodeName !== now.nodeName) {
    old.replaceWith(now);
    return now;
  }
  if (old.nodeType !== Node.ELEMENT_NODE) {
    if (old.nodeValue !== now.nodeValue) old.nodeValue = now.nodeValue;
    return old;
  }
  const kept = old.nodeName === "DETAILS" ? ["open"] : []; // opened or closed by the person, not by data
  for (const { name } of [...old.attributes]) if (!now.hasAttribute(name) && !kept.includes(name)) old.removeAttribute(name);
  for (const { name, value } of [...now.attributes]) if (old.getAttribute(name) !== value && !kept.includes(name)) old.setAttribute(name, value);
  update(old, ...now.childNodes);
  return old;
}

/** `element`'s children made these, in place (see morph): replaceChildren that keeps focus. */
export function update(element, ...children) {
  const kids = children.flat().filter((c) => c !== null && c !== undefined && c !== false);
  const nodes = kids.map((kid) => (typeof kid === "string" ? document.createTextNode(kid) : kid));
  nodes.forEach((node, i) => {
    const was = element.childNodes[i];
    if (was) morph(was, node);
    else element.append(node);
  });
  while (element.childNodes.length > nodes.length) element.lastChild.remove();
}

/** A table body's rows made `rows`, each row (a tr with data-id) updated in place where it was
 *  there before, so a focused link or button in it stays focused across refreshes. */
export function updateRows(tbody, rows) {
  const before = new Map([...tbody.children].map((tr) => [tr.dataset.id, tr]));
  rows.forEach((row, i) => {
    const was = before.get(row.dataset.id);
    before.delete(row.dataset.id);
    const kept = was ? morph(was, row) : row;
    if (tbody.children[i] !== kept) tbody.insertBefore(kept, tbody.children[i] || null);
  });
  for (const gone of before.values()) gone.remove();
}

/** Focus `target` if focus was lost (on the page's body) since an action began, as when the
 *  button pressed hides itself or is disabled while it works: never leave a keyboard user on the body. */
export function keepFocus(target) {
  const lost = !document.activeElement || document.activeElement === document.body;
  if (lost && target && target.isConnected) target.focus();
}
