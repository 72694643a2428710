// mmrag web page: search by text and/or image, view hits on their page, ask with a
// streamed answer, add files. Plain DOM and ES modules: no framework, no build step,
// nothing fetched but this server's API. Server text is only ever set as text
// (textContent, text nodes), never parsed as HTML.

import { ApiError, api, apiKey, errorText, readEvents, setApiKey, setImage } from "./api.js";
import { dropZone, firstImage, highlight, make, pageLabel } from "./dom.js";
import { uploadFiles } from "./upload.js";

const $ = (id) => document.getElementById(id);
const el = {
  collection: $("collection"), apiKey: $("api-key"), error: $("error"),
  newCollection: $("new-collection"), newForm: $("new-collection-form"),
  newName: $("new-collection-name"),
  searchForm: $("search-form"), searchInput: $("search-input"),
  searchImage: $("search-image-input"), modality: $("search-modality"),
  chip: $("image-chip"), chipThumb: $("image-chip-thumb"), chipName: $("image-chip-name"),
  chipRemove: $("image-chip-remove"), searchStatus: $("search-status"), results: $("results"),
  askForm: $("ask-form"), askInput: $("ask-input"), askStop: $("ask-stop"),
  answer: $("answer"), citations: $("citations"),
  uploadDrop: $("upload-drop"), uploadInput: $("upload-input"), uploads: $("uploads"),
  viewer: $("viewer"), viewerTitle: $("viewer-title"), viewerClose: $("viewer-close"),
  viewerStage: $("viewer-stage"), viewerImage: $("viewer-image"), viewerBox: $("viewer-bbox"),
  viewerSnippet: $("viewer-snippet"), viewerAudio: $("viewer-audio"),
};
const COLLECTION_STORE = "mmrag.collection";
const K = 12; // results per search: three or four rows of the grid
const state = { image: null, imageUrl: null, searchSeq: 0, askAbort: null, viewing: null };

// ---- errors --------------------------------------------------------------------------

function showError(e) {
  el.error.textContent = errorText(e);
  el.error.dataset.code = e && e.code ? e.code : "error";
  el.error.title = el.error.textContent;
  el.error.hidden = false;
}

function clearError() {
  el.error.hidden = true;
  el.error.textContent = "";
}

// ---- collections and key -----------------------------------------------------------------

function collectionPath(suffix) {
  return `collections/${encodeURIComponent(el.collection.value || "default")}${suffix}`;
}

async function loadCollections() {
  let found = [];
  try {
    found = (await (await api("collections")).json()).collections || [];
  } catch (e) {
    showError(e);
  }
  // No list (no key yet, or an empty --data server): offer "default" to start with.
  const names = found.length ? found : [{ name: "default", items: null }];
  const wanted = el.collection.value || localStorage.getItem(COLLECTION_STORE) || "default";
  el.collection.replaceChildren(...names.map((c) => {
    const option = make("option", "", c.items == null ? c.name : `${c.name} (${c.items})`);
    option.value = c.name;
    return option;
  }));
  const pick = names.find((c) => c.name === wanted) || names.find((c) => c.name === "default")
    || names[0];
  el.collection.value = pick.name;
}

function resetResults() {
  el.results.replaceChildren();
  el.searchStatus.textContent = "";
}

el.collection.addEventListener("change", () => {
  localStorage.setItem(COLLECTION_STORE, el.collection.value);
  clearError();
  resetResults();
});

function toggleNewCollection(open) {
  el.newForm.hidden = !open;
  el.newCollection.setAttribute("aria-expanded", String(open));
  if (open) el.newName.focus();
}

el.newCollection.addEventListener("click", () => toggleNewCollection(el.newForm.hidden));
el.newForm.addEventListener("submit", async (event) => {
  event.preventDefault();
  const name = el.newName.value.trim();
  if (!name) return;
  clearError();
  try {
    await api(`collections/${encodeURIComponent(name)}`, { method: "PUT" });
  } catch (e) {
    showError(e);
    return;
  }
  localStorage.setItem(COLLECTION_STORE, name);
  el.collection.value = "";
  el.newName.value = "";
  toggleNewCollection(false);
  resetResults();
  await loadCollections();
});

el.apiKey.value = apiKey();
el.apiKey.addEventListener("change", () => {
  setApiKey(el.apiKey.value.trim());
  clearError();
  loadCollections();
});

// ---- search ------------------------------------------------------------------------------

function setSearchImage(file) {
  clearSearchImage();
  state.image = file;
  state.imageUrl = URL.createObjectURL(file);
  el.chipThumb.src = state.imageUrl;
  el.chipName.textContent = file.name || "pasted image";
  el.chip.title = el.chipName.textContent;
  el.chip.hidden = false;
}

function clearSearchImage() {
  if (state.imageUrl) URL.revokeObjectURL(state.imageUrl);
  state.image = null;
  state.imageUrl = null;
  el.chipThumb.removeAttribute("src");
  el.chip.hidden = true;
  el.searchImage.value = "";
}

function searchByImage(files) {
  const image = firstImage(files);
  if (image) {
    setSearchImage(image);
    runSearch();
  } else if (files.length) {
    showError(new ApiError(`${files[0].name || "that file"} is not an image`));
  }
}

el.chipRemove.addEventListener("click", () => {
  clearSearchImage();
  el.searchInput.focus();
});
el.searchImage.addEventListener("change", () => searchByImage(Array.from(el.searchImage.files)));
dropZone(el.searchForm, searchByImage);
// A pasted image (a screenshot, a copied picture) becomes the search image wherever the
// focus is, except in the ask box.
document.addEventListener("paste", (event) => {
  if (event.target === el.askInput || !event.clipboardData) return;
  const image = firstImage(Array.from(event.clipboardData.files || []));
  if (!image) return;
  event.preventDefault();
  searchByImage([image]);
});
el.searchForm.addEventListener("submit", (event) => {
  event.preventDefault();
  runSearch();
});

async function runSearch() {
  const q = el.searchInput.value.trim();
  if (!q && !state.image) {
    el.searchInput.focus();
    return;
  }
  clearError();
  const seq = ++state.searchSeq;
  el.searchStatus.textContent = "Searching…";
  el.results.setAttribute("aria-busy", "true");
  const modality = el.modality.value;
  try {
    let response;
    if (state.image) {
      const form = new FormData();
      form.append("q", q);
      form.append("k", String(K));
      form.append("image", state.image, state.image.name || "image.png");
      if (modality) form.append("filters", JSON.stringify({ modality }));
      response = await api(collectionPath("/search"), { method: "POST", body: form });
    } else {
      const params = new URLSearchParams({ q, k: String(K) });
      if (modality) params.set("modality", modality);
      response = await api(collectionPath(`/search?${params}`));
    }
    const data = await response.json();
    if (seq !== state.searchSeq) return; // a newer search has started
    const hits = data.hits || [];
    renderHits(hits, q);
    const took = typeof data.took_ms === "number" ? ` in ${Math.round(data.took_ms)} ms` : "";
    el.searchStatus.textContent = hits.length
      ? `${hits.length} result${hits.length === 1 ? "" : "s"}${took}` : "No results";
  } catch (e) {
    if (seq !== state.searchSeq) return;
    resetResults();
    showError(e);
  } finally {
    if (seq === state.searchSeq) el.results.removeAttribute("aria-busy");
  }
}

function renderHits(hits, q) {
  el.results.replaceChildren(...hits.map((hit, i) => {
    const button = make("button", "result");
    button.type = "button";
    button.dataset.testid = "result";
    button.dataset.rank = String(i + 1);
    button.dataset.id = hit.id || "";
    // an audio clip has no picture: it is played in the viewer
    const url = hit.media_type === "audio" ? null : hit.thumb_url || hit.media_url;
    let thumb;
    if (url) {
      thumb = make("img", "thumb");
      thumb.alt = "";
      setImage(thumb, url);
    } else { // a text chunk has no picture: say what the hit is instead
      thumb = make("span", "thumb placeholder", hit.modality || "text");
    }
    thumb.dataset.testid = "result-thumb";
    const name = make("span", "name", hit.name || hit.source || hit.id || "");
    name.dataset.testid = "result-name";
    const page = make("span", "page", pageLabel(hit.page, hit.timestamp));
    page.dataset.testid = "result-page";
    const score = make("span", "score", Number(hit.score || 0).toFixed(3));
    score.dataset.testid = "result-score";
    score.title = "score";
    const facts = make("span", "facts");
    facts.append(page, score);
    const snippet = make("span", "snippet");
    snippet.dataset.testid = "result-snippet";
    highlight(snippet, hit.snippet || "", q);
    const meta = make("span", "meta");
    meta.append(name, facts, snippet);
    button.append(thumb, meta);
    button.setAttribute("aria-label",
      `${hit.name || "result"} ${pageLabel(hit.page, hit.timestamp)}`.trim());
    button.addEventListener("click", () => openViewer(hit, q));
    const li = make("li");
    li.append(button);
    return li;
  }));
}

// ---- viewer ------------------------------------------------------------------------------

function openViewer(hit, q) {
  state.viewing = hit;
  el.viewerTitle.textContent = [hit.name || hit.source || "", pageLabel(hit.page, hit.timestamp)]
    .filter(Boolean).join(" — ");
  highlight(el.viewerSnippet, hit.snippet || "", q || "");
  el.viewerBox.hidden = true;
  el.viewerImage.alt = el.viewerTitle.textContent;
  delete el.viewerImage.dataset.loaded;
  const audio = hit.media_type === "audio" ? hit.media_url : null;
  el.viewerAudio.hidden = !audio;
  setImage(el.viewerAudio, audio); // any element with a src: fetched with the API key
  // a video's transcript line shows its frame and plays its words
  const url = hit.page_url || (audio ? null : hit.media_url);
  el.viewerStage.hidden = !url; // a text chunk has no picture: its text is the view
  setImage(el.viewerImage, url);
  if (!el.viewer.open) el.viewer.showModal();
}

/** The size of the frame the hit's bbox is measured in, or null when the image shown is
 * not that frame. A PDF item's box is in points of its page (page_width/page_height), so
 * it only fits the page render; a box on an image file is in the pixels of that image
 * (its own page). Guessing pixels for a box in points drew it at 72/110 of its size on a
 * 110 dpi render, so without a known frame no box is drawn. */
function boxFrame(hit, img) {
  if (hit.page_width > 0 && hit.page_height > 0) return [hit.page_width, hit.page_height];
  const ownPage = Boolean(hit.page_url) && hit.page_url === hit.media_url;
  return ownPage ? [img.naturalWidth, img.naturalHeight] : null;
}

/** Draw the hit's bbox (top-left origin, in its frame's units) over the page image as
 * displayed: scaled by the image's displayed size over the frame's size. */
function placeBox() {
  const hit = state.viewing;
  const img = el.viewerImage;
  const box = el.viewerBox;
  const bbox = hit && Array.isArray(hit.bbox) && hit.bbox.length === 4 ? hit.bbox : null;
  const frame = bbox && img.naturalWidth ? boxFrame(hit, img) : null;
  // A frame of another shape than the image is another picture (a crop, a stale image
  // still shown while the page loads): a misplaced box is worse than none.
  const shape = frame && (frame[0] / frame[1]) / (img.naturalWidth / img.naturalHeight);
  if (!frame || Math.abs(shape - 1) > 0.03) {
    box.hidden = true;
    return;
  }
  const sx = img.clientWidth / frame[0];
  const sy = img.clientHeight / frame[1];
  const [x0, y0, x1, y1] = bbox;
  box.style.left = `${img.offsetLeft + x0 * sx}px`;
  box.style.top = `${img.offsetTop + y0 * sy}px`;
  box.style.width = `${Math.max(1, (x1 - x0) * sx)}px`;
  box.style.height = `${Math.max(1, (y1 - y0) * sy)}px`;
  box.hidden = false;
}

el.viewerImage.addEventListener("load", () => {
  el.viewerImage.dataset.loaded = "true";
  placeBox();
});
new ResizeObserver(placeBox).observe(el.viewerImage); // window resized, image rescaled
el.viewerClose.addEventListener("click", () => el.viewer.close());
el.viewer.addEventListener("click", (event) => {
  if (event.target === el.viewer) el.viewer.close(); // a click on the backdrop
});
el.viewer.addEventListener("close", () => {
  state.viewing = null;
  setImage(el.viewerImage, null);
  el.viewerAudio.pause();
  setImage(el.viewerAudio, null);
  el.viewerBox.hidden = true;
});

// ---- ask ---------------------------------------------------------------------------------

el.askForm.addEventListener("submit", (event) => {
  event.preventDefault();
  ask();
});
el.askInput.addEventListener("keydown", (event) => {
  if (event.key === "Enter" && !event.shiftKey && !event.isComposing) {
    event.preventDefault();
    ask();
  }
});
el.askStop.addEventListener("click", () => state.askAbort && state.askAbort.abort());

async function ask() {
  const question = el.askInput.value.trim();
  if (!question) {
    el.askInput.focus();
    return;
  }
  if (state.askAbort) state.askAbort.abort();
  const abort = new AbortController();
  state.askAbort = abort;
  clearError();
  const answer = el.answer;
  answer.classList.remove("failed");
  answer.textContent = "";
  answer.dataset.state = "streaming";
  answer.dataset.deltas = "0";
  el.citations.replaceChildren();
  showGrounded(null);
  el.askStop.hidden = false;
  let text = "";
  let finished = false;
  try {
    const response = await api(collectionPath("/ask"), {
      method: "POST",
      headers: { "Content-Type": "application/json", Accept: "text/event-stream" },
      body: JSON.stringify({ question }),
      signal: abort.signal,
    });
    await readEvents(response, (name, raw) => {
      let data;
      try {
        data = JSON.parse(raw);
      } catch (_) {
        data = { text: raw };
      }
      if (name === "delta") {
        text += data.text || "";
        answer.textContent = text; // plain text while streaming; links once done
        answer.dataset.deltas = String(Number(answer.dataset.deltas) + 1);
      } else if (name === "done") {
        finished = true;
        renderAnswer(typeof data.text === "string" ? data.text : text, data.citations || [],
                     data.support || []);
        showGrounded(data);
        answer.dataset.found = String(data.found !== false);
        answer.dataset.state = "done";
      } else if (name === "error") {
        finished = true;
        throw new ApiError(data.message || "the answer failed", data.code);
      }
    });
    if (!finished) throw new ApiError("the answer stream ended early", "stream_ended");
  } catch (e) {
    if (e && e.name === "AbortError") {
      answer.dataset.state = "stopped";
    } else {
      answer.classList.add("failed");
      if (!text) answer.textContent = errorText(e);
      showError(e);
      answer.dataset.state = "failed";
    }
  } finally {
    if (state.askAbort === abort) {
      state.askAbort = null;
      el.askStop.hidden = true;
    }
  }
}

function citationLink(citation, label) {
  const link = make("a", "cite", label);
  link.href = "#";
  link.dataset.testid = "citation-link";
  link.dataset.number = String(citation.number);
  link.title = [citation.name, pageLabel(citation.page)].filter(Boolean).join(", ");
  link.addEventListener("click", (event) => {
    event.preventDefault();
    openViewer({ ...citation, id: citation.item_id, bbox: citation.bbox || null }, "");
  });
  return link;
}

/** The final answer: each `[n]` becomes a link to citation n, each sentence the sources
 * do not support is wrapped in a marked span (class `unsupported`, the reason as its
 * tooltip), and the citations are listed under it. Sentences are found by their text
 * from the previous one on, not by the server's offsets (Python counts code points,
 * JavaScript UTF-16 units). */
function renderAnswer(text, citations, support) {
  const byNumber = new Map(citations.map((c) => [Number(c.number), c]));
  el.answer.replaceChildren();
  let last = 0;
  for (const s of support || []) {
    if (s.supported || typeof s.text !== "string" || !s.text) continue;
    const at = text.indexOf(s.text, last);
    if (at < 0) continue;
    appendCited(el.answer, text.slice(last, at), byNumber);
    const mark = make("span", "unsupported");
    mark.dataset.testid = "unsupported";
    mark.title = unsupportedReason(s);
    appendCited(mark, s.text, byNumber);
    el.answer.append(mark);
    last = at + s.text.length;
  }
  appendCited(el.answer, text.slice(last), byNumber);
  el.citations.replaceChildren(...citations.map((c) => {
    const li = make("li");
    li.dataset.testid = "citation";
    li.append(citationLink(c, `[${c.number}]`), " ",
              [c.name, pageLabel(c.page)].filter(Boolean).join(", "));
    return li;
  }));
}

/** ``text`` into ``parent``, each `[n]` naming a citation as a link to it. */
function appendCited(parent, text, byNumber) {
  let last = 0;
  for (const match of text.matchAll(/\[(\d+)\]/g)) {
    const citation = byNumber.get(Number(match[1]));
    if (!citation) continue;
    if (match.index > last) parent.append(text.slice(last, match.index));
    parent.append(citationLink(citation, match[0]));
    last = match.index + match[0].length;
  }
  if (last < text.length) parent.append(text.slice(last));
}

function unsupportedReason(s) {
  const numbers = Array.isArray(s.numbers) ? s.numbers : [];
  if (numbers.length) return `Unsupported: ${numbers.join(", ")} appears in no cited source`;
  const score = Number(s.score);
  return "Unsupported: the cited sources do not say this" +
    (Number.isFinite(score) ? ` (support ${score.toFixed(2)})` : "");
}

/** "grounded: 83 %" under a found answer (share of its sentences the sources support);
 * nothing for a not-found answer or before one is done. */
function showGrounded(done) {
  let line = document.getElementById("grounded");
  if (!line) {
    line = make("p", "grounded");
    line.id = "grounded";
    line.dataset.testid = "grounded";
    el.answer.after(line);
  }
  const share = done && done.found !== false && (done.support || []).length
    ? Number(done.grounded) : NaN;
  line.hidden = !Number.isFinite(share);
  line.textContent = line.hidden ? "" : `grounded: ${Math.round(share * 100)} %`;
}

// ---- upload ------------------------------------------------------------------------------

function addFiles(files) {
  if (!files.length) return;
  clearError();
  // The picker's item counts follow each finished file.
  uploadFiles(files, el.collection.value || "default", el.uploads, loadCollections);
}

el.uploadInput.addEventListener("change", () => {
  const files = Array.from(el.uploadInput.files);
  el.uploadInput.value = "";
  addFiles(files);
});
dropZone(el.uploadDrop, addFiles);
// A file dropped anywhere else must not make the browser navigate away to it.
window.addEventListener("dragover", (event) => event.preventDefault());
window.addEventListener("drop", (event) => event.preventDefault());

loadCollections().then(() => {
  document.body.dataset.ready = "true";
});
