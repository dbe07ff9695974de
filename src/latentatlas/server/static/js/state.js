// The whole view state lives in the URL's query string, so any view can be bookmarked and shared.
const listeners = new Set();

export function get(key, fallback = null) {
  const v = new URLSearchParams(location.search).get(key);
  return v === null ? fallback : v;
}

export function getInt(key, fallback = null) {
  const v = get(key);
  const n = v === null ? NaN : Number.parseInt(v, 10);
  return Number.isFinite(n) ? n : fallback;
}

// set({key: value}) updates the URL (null removes a key) and tells the listeners what changed.
export function set(changes, { push = false } = {}) {
  const params = new URLSearchParams(location.search);
  for (const [k, v] of Object.entries(changes)) {
    if (v === null || v === undefined || v === "") params.delete(k); else params.set(k, String(v));
  }
  const url = `${location.pathname}?${params}`;
  if (push) history.pushState(null, "", url); else history.replaceState(null, "", url);
  for (const fn of listeners) fn(changes);
}

export function onChange(fn) { listeners.add(fn); }
window.addEventListener("popstate", () => { for (const fn of listeners) fn({ view: get("view") }); });
