// The upload area: one multipart POST per file (the browser reports upload progress per
// request), then the ingest job polled until that file is done, skipped or failed.

import { api, authHeaders, errorText, oneLine, relative } from "./api.js";
import { make } from "./dom.js";

const FINISHED = new Set(["done", "failed"]);

/** Upload `files` into `collection`, a row each in `list`; `onSettled()` after each. */
export function uploadFiles(files, collection, list, onSettled) {
  files.forEach((file) => uploadOne(file, collection, row(file, list), onSettled));
}

function row(file, list) {
  const li = make("li", "upload-row");
  li.dataset.testid = "upload";
  li.dataset.name = file.name;
  const line = make("div", "line");
  const name = make("span", "file", file.name);
  name.dataset.testid = "upload-name";
  name.title = file.name;
  const status = make("span", "state", "waiting");
  status.dataset.testid = "upload-status";
  line.append(name, status);
  const bar = make("progress");
  bar.dataset.testid = "upload-progress";
  bar.max = 1;
  bar.value = 0;
  bar.setAttribute("aria-label", `${file.name} progress`);
  const reason = make("div", "reason");
  reason.dataset.testid = "upload-error";
  reason.hidden = true;
  li.append(line, bar, reason);
  list.prepend(li);
  const set = (phase, label, value) => {
    li.dataset.state = phase;
    status.textContent = label;
    if (value == null) bar.removeAttribute("value"); // indeterminate: indexing
    else bar.value = value;
  };
  const fail = (message) => {
    set("failed", "failed", 1);
    reason.textContent = oneLine(message);
    reason.title = reason.textContent;
    reason.hidden = false;
  };
  return { set, fail };
}

function uploadOne(file, collection, view, onSettled) {
  const form = new FormData();
  form.append("files", file, file.name);
  const xhr = new XMLHttpRequest(); // fetch cannot report upload progress
  xhr.open("POST", `collections/${encodeURIComponent(collection)}/items`);
  const headers = authHeaders();
  Object.keys(headers).forEach((h) => xhr.setRequestHeader(h, headers[h]));
  xhr.upload.addEventListener("progress", (event) => {
    if (event.lengthComputable) {
      const f = event.loaded / event.total;
      view.set("uploading", `uploading ${Math.round(f * 100)}%`, f);
    }
  });
  xhr.addEventListener("error", () => view.fail("upload failed: cannot reach the server"));
  xhr.addEventListener("load", () => {
    let body = null;
    try {
      body = JSON.parse(xhr.responseText);
    } catch (_) { /* not JSON */ }
    const err = body && body.error;
    if (xhr.status < 200 || xhr.status >= 300 || !body) {
      view.fail(err && err.message ? err.message : `${xhr.status} ${xhr.statusText}`);
      return;
    }
    view.set("indexing", "queued", null);
    poll(body.status_url || `jobs/${encodeURIComponent(body.job_id)}`, file.name, view)
      .finally(onSettled);
  });
  view.set("uploading", "uploading 0%", 0);
  xhr.send(form);
}

async function poll(url, name, view) {
  let delay = 250;
  for (;;) {
    let job;
    try {
      job = await (await api(relative(url))).json();
    } catch (e) {
      view.fail(errorText(e));
      return;
    }
    const files = job.files || [];
    const file = files.find((f) => f.name === name) || files[0];
    if (FINISHED.has(job.status)) {
      const status = file ? file.status : job.status;
      const reason = (file && file.reason) || job.error || "";
      if (status === "failed" || job.status === "failed") view.fail(reason || "failed");
      else if (status === "skipped") view.set("skipped", reason ? `skipped: ${oneLine(reason)}`
        : "skipped (unchanged)", 1);
      else view.set("done", "done", 1);
      return;
    }
    view.set("indexing", job.status === "running" ? "indexing…" : "queued", null);
    await new Promise((resolve) => setTimeout(resolve, delay));
    delay = Math.min(2000, delay * 1.5);
  }
}
