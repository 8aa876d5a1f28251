// Shared building blocks of the master and Marathon UIs: building DOM, refreshing it in place,
// hash routing with periodic refresh, JSON requests, dialogs and formatting. Plain DOM, no framework.

// ------------------------------------------------------------------------------------------ DOM

// h("a", {href: "#/x", onclick: fn}, "text", child, [more]) -> element. Text always goes in as text
// nodes, so data from the API can never become markup.
export function h(tag, attributes, ...children) {
  const element = document.createElement(tag);
  for (const [name, value] of Object.entries(attributes ?? {})) {
    if (value === undefined || value === null || value === false) continue;
    if (name.startsWith("on") && typeof value === "function") {
      setHandler(element, name.slice(2), value);
    } else {
      element.setAttribute(name, value === true ? "" : String(value));
    }
  }
  append(element, children);
  return element;
}

export function append(element, children) {
  for (const child of [children].flat(Infinity)) {
    if (child === undefined || child === null || child === false || child === "") continue;
    element.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  return element;
}

// Handlers live in a per-element table behind one real listener per event type, so that an
// in-place refresh (morph) can swap in the newly rendered closures without touching listeners.
function setHandler(element, type, handler) {
  element.handlers ??= {};
  if (!(type in element.handlers)) {
    element.addEventListener(type, (event) => element.handlers[type]?.(event));
  }
  element.handlers[type] = handler;
}

function keyOf(node) {
  return node.nodeType === Node.ELEMENT_NODE ? node.getAttribute("data-key") : null;
}

// Make the live node `target` look like the freshly rendered `source`, reusing nodes where possible so
// that focus, scroll position, text selection and typed input survive a refresh. Children marked
// data-key are matched by key; an element marked data-keep is left alone (it updates itself).
// Answers the node that is live afterwards.
export function morph(target, source) {
  if (target.nodeType !== source.nodeType || target.nodeName !== source.nodeName || keyOf(target) !== keyOf(source)) {
    target.replaceWith(source);
    return source;
  }
  if (target.nodeType !== Node.ELEMENT_NODE) {
    if (target.nodeValue !== source.nodeValue) target.nodeValue = source.nodeValue;
    return target;
  }
  if (target.hasAttribute("data-keep") && target.getAttribute("data-keep") === source.getAttribute("data-keep")) {
    return target;
  }
  for (const { name } of [...target.attributes]) {
    if (!source.hasAttribute(name)) target.removeAttribute(name);
  }
  for (const { name, value } of source.attributes) {
    if (target.getAttribute(name) !== value) target.setAttribute(name, value);
  }
  for (const [type, handler] of Object.entries(source.handlers ?? {})) setHandler(target, type, handler);
  morphChildren(target, source);
  return target;
}

function morphChildren(target, source) {
  const keyed = new Map();
  const unkeyed = [];
  for (const child of target.childNodes) {
    const key = keyOf(child);
    if (key === null) unkeyed.push(child);
    else keyed.set(key, child);
  }
  const live = [...source.childNodes].map((child) => {
    const key = keyOf(child);
    const match = key === null ? unkeyed.shift() : keyed.get(key);
    if (key !== null) keyed.delete(key);
    return match ? morph(match, child) : child;
  });
  live.forEach((node, index) => {
    const current = target.childNodes[index];
    if (current !== node) target.insertBefore(node, current ?? null);
  });
  while (target.childNodes.length > live.length) target.lastChild.remove();
}

// ------------------------------------------------------------------------------------- requests

export class ApiError extends Error {
  constructor(status, body, url) {
    const message = body?.message ?? (typeof body === "string" && body ? body : `HTTP ${status}`);
    super(message);
    this.status = status;
    this.body = body;
    this.url = url;
  }
}

// fetch + JSON both ways; a non-2xx answer throws ApiError carrying the parsed body (Marathon's
// {"message", "details"}), a network failure throws ApiError with status 0.
export async function request(method, url, body) {
  let response;
  try {
    response = await fetch(url, {
      method,
      headers: body === undefined ? { Accept: "application/json" } : { Accept: "application/json", "Content-Type": "application/json" },
      body: body === undefined ? undefined : typeof body === "string" ? body : JSON.stringify(body),
      cache: "no-store",
    });
  } catch (error) {
    throw new ApiError(0, { message: `cannot reach the server (${error.message})` }, url);
  }
  const text = await response.text();
  let parsed = text;
  try {
    parsed = text ? JSON.parse(text) : null;
  } catch {
    // not JSON: keep the text, it is the server's message
  }
  if (!response.ok) throw new ApiError(response.status, parsed, url);
  return parsed;
}

export const getJSON = (url) => request("GET", url);

// ------------------------------------------------------------------------------ routing, refresh

// Hash routes: [{pattern: /^\/agents\/([^/]+)$/, view: async (params, query) => Node, title}].
// The current view is rendered on navigation and re-rendered every `intervalMs` (in place, see morph)
// while the tab is visible; `refreshNow()` re-renders at once (after an action, or on a server event).
export function startApp({ routes, main, status, intervalMs = 2000, notFound }) {
  let generation = 0;
  let timer = null;
  let currentPath = null;
  let firstRender = true;

  function parseHash() {
    const raw = location.hash.replace(/^#/, "") || "/";
    const [path, queryString = ""] = raw.split("?");
    return { path, query: new URLSearchParams(queryString) };
  }

  async function render({ refreshing = false } = {}) {
    const { path, query } = parseHash();
    const route = routes.find((candidate) => candidate.pattern.test(path));
    const navigated = path !== currentPath;
    // Views with forms are rendered once: a refresh must never overwrite what someone is typing.
    if (refreshing && !navigated && route?.refresh === false) return;
    const mine = ++generation;
    clearTimeout(timer);
    currentPath = path;
    try {
      const params = route ? path.match(route.pattern).slice(1).map(decodeURIComponent) : [];
      const node = route ? await route.view(params, query) : notFound(path);
      if (mine !== generation) return;
      const wrapper = h("div", { class: "view" }, node);
      if (navigated || !main.firstChild) {
        main.replaceChildren(wrapper);
        document.title = `${main.querySelector("h1")?.textContent ?? ""} · ${document.body.dataset.product}`;
        main.querySelector("h1")?.setAttribute("tabindex", "-1");
        // After a navigation (not on first load, where Tab should start at the skip link) focus the new
        // page's heading, as a screen reader or keyboard user expects.
        if (!firstRender && (document.activeElement === document.body || !main.contains(document.activeElement))) {
          main.querySelector("h1")?.focus({ preventScroll: true });
        }
        firstRender = false;
        window.scrollTo(0, 0);
      } else {
        morph(main.firstChild, wrapper);
      }
      mountKeptElements(main);
      markCurrentNavigation(path);
      status.replaceChildren();
    } catch (error) {
      if (mine !== generation) return;
      status.replaceChildren(h("p", { class: "alert error", role: "alert" }, describeError(error), " Retrying…"));
      if (navigated) main.replaceChildren(h("div", { class: "view" }, h("h1", {}, "Not available")));
    }
    if (mine === generation && route?.refresh !== false) {
      timer = setTimeout(() => (document.hidden ? null : render({ refreshing: true })), intervalMs);
    }
  }

  function onHashChange() {
    // "#main" and friends are in-page anchors, not routes.
    if (location.hash && !location.hash.startsWith("#/")) return;
    render();
  }

  // The skip link moves focus to <main> itself: its own "#main" must not count as a route.
  document.querySelector(".skip-link")?.addEventListener("click", (event) => {
    event.preventDefault();
    main.focus();
  });
  window.addEventListener("hashchange", onHashChange);
  document.addEventListener("visibilitychange", () => !document.hidden && render({ refreshing: true }));
  render();
  return { refreshNow: () => render({ refreshing: true }), navigate: (hash) => (location.hash = hash) };
}

// A part of a page that manages itself (a log that follows a file, say): the view returns this
// placeholder, refreshes leave the live one alone (data-keep), and `mount(element)` runs once, when the
// placeholder first appears in the page.
export function kept(key, mount) {
  const element = h("div", { "data-keep": key });
  element.mount = mount;
  return element;
}

function mountKeptElements(root) {
  for (const element of root.querySelectorAll("[data-keep]")) {
    if (element.mount && !element.mounted) {
      element.mounted = true;
      element.mount(element);
    }
  }
}

function markCurrentNavigation(path) {
  for (const link of document.querySelectorAll("nav.primary a")) {
    const target = link.getAttribute("href").replace(/^#/, "");
    const current = target === "/" ? path === "/" : path === target || path.startsWith(`${target}/`);
    if (current) link.setAttribute("aria-current", "page");
    else link.removeAttribute("aria-current");
  }
}

export function describeError(error) {
  if (error instanceof ApiError) {
    return error.status ? `${error.url} answered ${error.status}: ${error.message}.` : `${error.message}.`;
  }
  return `${error.message ?? error}.`;
}

// Replace the query part of the hash without adding a history entry (filters, tabs).
export function setHashQuery(query) {
  const path = (location.hash.replace(/^#/, "") || "/").split("?")[0];
  const text = query.toString();
  history.replaceState(null, "", `#${path}${text ? `?${text}` : ""}`);
}

// --------------------------------------------------------------------------------------- dialogs

// A modal <dialog> (focus is trapped and Escape closes it, natively). `body` is built by the caller;
// `confirm` is {label, danger, action: async () => void}; errors of the action show inside the dialog.
export function openDialog({ title, body, confirm, cancelLabel = "Cancel" }) {
  const message = h("div", { class: "dialog-message", role: "alert" });
  const confirmButton = h("button", { type: "submit", class: confirm.danger ? "danger" : "primary" }, confirm.label);
  const dialog = h(
    "dialog",
    { "aria-labelledby": "dialog-title" },
    h(
      "form",
      {
        method: "dialog",
        onsubmit: async (event) => {
          event.preventDefault();
          confirmButton.disabled = true;
          message.replaceChildren();
          try {
            await confirm.action();
            dialog.close();
          } catch (error) {
            message.replaceChildren(h("p", { class: "alert error" }, describeError(error)));
            confirmButton.disabled = false;
          }
        },
      },
      h("h2", { id: "dialog-title" }, title),
      body,
      message,
      h(
        "div",
        { class: "actions" },
        confirmButton,
        h("button", { type: "button", onclick: () => dialog.close() }, cancelLabel),
      ),
    ),
  );
  dialog.addEventListener("close", () => dialog.remove());
  document.body.append(dialog);
  dialog.showModal();
  (dialog.querySelector("input, select, textarea") ?? confirmButton).focus();
  return dialog;
}

// ------------------------------------------------------------------------------------ formatting

export function formatNumber(value, digits = 2) {
  if (value === undefined || value === null || Number.isNaN(value)) return "–";
  return Number(value).toLocaleString("en-US", { maximumFractionDigits: digits });
}

// Mesos and Marathon give mem and disk in MB.
export function formatMegabytes(megabytes) {
  if (megabytes === undefined || megabytes === null) return "–";
  if (megabytes >= 1024 * 1024) return `${formatNumber(megabytes / 1024 / 1024, 1)} TB`;
  if (megabytes >= 1024) return `${formatNumber(megabytes / 1024, 1)} GB`;
  return `${formatNumber(megabytes, 0)} MB`;
}

export function formatDuration(seconds) {
  if (seconds === undefined || seconds === null || Number.isNaN(seconds)) return "–";
  const parts = [];
  let rest = Math.max(0, Math.floor(seconds));
  for (const [unit, size] of [["d", 86400], ["h", 3600], ["m", 60], ["s", 1]]) {
    if (rest >= size || (unit === "s" && parts.length === 0)) {
      parts.push(`${Math.floor(rest / size)}${unit}`);
      rest %= size;
    }
    if (parts.length === 2) break;
  }
  return parts.join(" ");
}

// A <time> element: local date and time, with "… ago" as its tooltip. Accepts seconds since the epoch
// (Mesos) or an ISO 8601 string (Marathon).
export function timeElement(value) {
  if (value === undefined || value === null || value === "") return "–";
  const date = typeof value === "number" ? new Date(value * 1000) : new Date(value);
  if (Number.isNaN(date.getTime())) return String(value);
  const pad = (number) => String(number).padStart(2, "0");
  const text =
    `${date.getFullYear()}-${pad(date.getMonth() + 1)}-${pad(date.getDate())} ` +
    `${pad(date.getHours())}:${pad(date.getMinutes())}:${pad(date.getSeconds())}`;
  const ago = formatDuration((Date.now() - date.getTime()) / 1000);
  return h("time", { datetime: date.toISOString(), title: `${ago} ago` }, text);
}

// A labelled usage bar: "used / total (percent)" as text and a native <meter> (accessible, and styled
// without inline styles, which the Content-Security-Policy forbids).
// `compact` leaves the label to the table column it sits in (it stays the meter's accessible name).
export function usageBar(label, used, total, format = formatNumber, { compact = false } = {}) {
  const fraction = total > 0 ? Math.min(1, used / total) : 0;
  const percent = Math.round(fraction * 100);
  return h(
    "div",
    { class: compact ? "usage compact" : "usage" },
    h("div", { class: "usage-label" }, compact ? null : h("span", {}, label), h("span", {}, `${format(used)} / ${format(total)} (${percent}%)`)),
    h("meter", { min: "0", max: "1", low: "0.7", high: "0.9", optimum: "0", value: fraction.toFixed(4), "aria-label": `${label} used` }),
  );
}

// A table from column definitions [{title, cell: (row) => Node|string, class?}]; rows keyed by `key`.
export function table({ columns, rows, key, caption, empty = "None." }) {
  if (!rows.length) return h("p", { class: "empty" }, empty);
  return h(
    "div",
    { class: "table-scroll" },
    h(
      "table",
      {},
      caption ? h("caption", {}, caption) : null,
      h("thead", {}, h("tr", {}, columns.map((column) => h("th", { scope: "col", class: column.class?.includes("number") ? "number" : null }, column.title)))),
      h(
        "tbody",
        {},
        rows.map((row) =>
          h("tr", { "data-key": key(row) }, columns.map((column) => h("td", { class: column.class }, column.cell(row)))),
        ),
      ),
    ),
  );
}

// A description list from [[term, value], ...], skipping empty values.
export function details(pairs) {
  return h(
    "dl",
    { class: "details" },
    pairs
      .filter(([, value]) => value !== undefined && value !== null && value !== "")
      .map(([term, value]) => [h("dt", {}, term), h("dd", {}, value)]),
  );
}

export function badge(text, kind = text) {
  return h("span", { class: `badge ${String(kind).toLowerCase().replace(/[^a-z0-9]+/g, "-")}` }, text);
}

export function section(title, ...children) {
  const id = `section-${title.toLowerCase().replace(/[^a-z0-9]+/g, "-")}`;
  return h("section", { "aria-labelledby": id }, h("h2", { id }, title), children);
}
