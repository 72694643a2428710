// Small DOM helpers. Server text only ever becomes text nodes: nothing here parses HTML.

export function make(tag, className, text) {
  const node = document.createElement(tag);
  if (className) node.className = className;
  if (text != null) node.textContent = text;
  return node;
}

export function pageLabel(page, timestamp) {
  if (timestamp) return `at ${timestamp}`; // a video frame, a transcript line, a sound
  return page ? `page ${page}` : "";
}

function queryTerms(q) {
  const words = q.toLowerCase().match(/[\p{L}\p{N}]{2,}/gu) || [];
  return Array.from(new Set(words)).sort((a, b) => b.length - a.length);
}

function escapeRegExp(text) {
  return text.replace(/[.*+?^${}()|[\]\\]/g, "\\$&");
}

/** Fill `node` with `text`, each word of the query `q` wrapped in <mark>. */
export function highlight(node, text, q) {
  node.replaceChildren();
  const terms = queryTerms(q || "");
  if (!terms.length) {
    node.textContent = text;
    return;
  }
  const re = new RegExp(`(${terms.map(escapeRegExp).join("|")})`, "giu");
  let last = 0;
  for (const match of text.matchAll(re)) {
    if (match.index > last) node.append(text.slice(last, match.index));
    node.append(make("mark", "", match[0]));
    last = match.index + match[0].length;
  }
  if (last < text.length) node.append(text.slice(last));
}

export function firstImage(files) {
  for (const file of files || []) if ((file.type || "").startsWith("image/")) return file;
  return null;
}

/** Make `zone` accept dropped files, highlighted while something is dragged over it. */
export function dropZone(zone, onFiles) {
  let depth = 0; // dragenter/leave fire for every child crossed
  zone.addEventListener("dragenter", (event) => {
    event.preventDefault();
    depth += 1;
    zone.classList.add("dragging");
  });
  zone.addEventListener("dragover", (event) => event.preventDefault());
  zone.addEventListener("dragleave", () => {
    depth = Math.max(0, depth - 1);
    if (!depth) zone.classList.remove("dragging");
  });
  zone.addEventListener("drop", (event) => {
    event.preventDefault();
    event.stopPropagation();
    depth = 0;
    zone.classList.remove("dragging");
    onFiles(Array.from((event.dataTransfer && event.dataTransfer.files) || []));
  });
}
