// Talking to the mmrag HTTP API: the key, JSON errors as one-line messages, images behind
// a key, and server-sent events read from a POST response.

const KEY_STORE = "mmrag.apiKey";

/** An API failure: the server's `{"error": {"code", "message"}}`, or a network error. */
export class ApiError extends Error {
  constructor(message, code, status) {
    super(oneLine(message));
    this.code = code || "error";
    this.status = status || 0;
  }
}

export function oneLine(text) {
  return String(text == null ? "" : text).replace(/\s+/g, " ").trim() || "error";
}

export function apiKey() {
  return localStorage.getItem(KEY_STORE) || "";
}

export function setApiKey(key) {
  if (key) localStorage.setItem(KEY_STORE, key);
  else localStorage.removeItem(KEY_STORE);
}

export function authHeaders(extra) {
  const headers = Object.assign({}, extra || {});
  const key = apiKey();
  if (key) headers.Authorization = `Bearer ${key}`;
  return headers;
}

/** A path the server sent ("/jobs/1", "/media/x") made relative to where the page is
 * served, so the page also works behind a proxy that mounts it under a prefix. */
export function relative(url) {
  return url.startsWith("/") ? url.slice(1) : url;
}

/** The API error carried by a non-2xx response (JSON error body, else the status). */
async function errorFrom(response) {
  let body = null;
  try {
    body = await response.json();
  } catch (_) { /* not JSON: fall back to the status line */ }
  const err = body && body.error;
  if (err && err.message) return new ApiError(err.message, err.code, response.status);
  return new ApiError(`${response.status} ${response.statusText || "error"}`.trim(),
                      `http_${response.status}`, response.status);
}

/** `fetch` with the key; resolves to the response, throws an ApiError unless it is 2xx. */
export async function api(path, options) {
  const opts = Object.assign({}, options || {});
  opts.headers = authHeaders(opts.headers);
  let response;
  try {
    response = await fetch(relative(path), opts);
  } catch (e) {
    if (e && e.name === "AbortError") throw e;
    throw new ApiError(`cannot reach the server (${e && e.message ? e.message : e})`,
                       "network");
  }
  if (!response.ok) throw await errorFrom(response);
  return response;
}

export function errorText(e) {
  if (e instanceof ApiError) {
    return e.status === 401 || e.status === 403 ? `${e.message} — check the API key`
      : e.message;
  }
  return oneLine(e && e.message ? e.message : e);
}

const blobUrls = new WeakMap();

/** Point an <img> at a server media URL. Without an API key the URL is used as is; with
 * one the image is fetched with the Authorization header (an <img> cannot send it) and
 * shown from a blob: URL. */
export async function setImage(img, url) {
  const old = blobUrls.get(img);
  if (old) {
    URL.revokeObjectURL(old);
    blobUrls.delete(img);
  }
  img.dataset.want = url || "";
  if (!url) {
    img.removeAttribute("src");
    return;
  }
  if (!apiKey()) {
    img.src = relative(url);
    return;
  }
  try {
    const blob = await (await api(url)).blob();
    if (img.dataset.want !== url) return; // another image was asked for meanwhile
    const blobUrl = URL.createObjectURL(blob);
    blobUrls.set(img, blobUrl);
    img.src = blobUrl;
  } catch (e) {
    if (img.dataset.want !== url) return;
    img.removeAttribute("src");
    img.alt = `image unavailable: ${errorText(e)}`;
  }
}

/** Read a text/event-stream body, calling `onEvent(name, data)` per event. EventSource
 * cannot send a POST, hence this reader over `fetch`. */
export async function readEvents(response, onEvent) {
  const reader = response.body.getReader();
  const decoder = new TextDecoder();
  let buffer = "";
  const dispatch = (block) => {
    let name = "message";
    const data = [];
    for (const line of block.split(/\r\n|\r|\n/)) {
      if (!line || line.startsWith(":")) continue; // blank or a comment (keep-alive)
      const colon = line.indexOf(":");
      const field = colon < 0 ? line : line.slice(0, colon);
      let value = colon < 0 ? "" : line.slice(colon + 1);
      if (value.startsWith(" ")) value = value.slice(1);
      if (field === "event") name = value;
      else if (field === "data") data.push(value);
    }
    if (data.length) onEvent(name, data.join("\n"));
  };
  try {
    for (;;) {
      const { value, done } = await reader.read();
      buffer += decoder.decode(value || new Uint8Array(), { stream: !done });
      const blocks = buffer.split(/\r\n\r\n|\n\n|\r\r/);
      buffer = blocks.pop();
      blocks.forEach(dispatch);
      if (done) break;
    }
    if (buffer.trim()) dispatch(buffer);
  } finally {
    reader.releaseLock();
  }
}
