// artfx serve: the page. Plain JavaScript, no build step. Forms are generated from /api/info (each stage's
// Params as the server describes them); every change is checked by /api/check, which answers with the command
// line's one-line messages, tied to their fields, and the equivalent command and TOML.
"use strict";

const $ = (sel, root = document) => root.querySelector(sel);
const el = (tag, attrs = {}, ...kids) => {
  const node = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) {
    if (v === null || v === undefined || v === false) continue;
    if (k === "class") node.className = v;
    else if (k.startsWith("on")) node.addEventListener(k.slice(2), v);
    else node.setAttribute(k, v === true ? "" : v);
  }
  for (const kid of kids.flat()) if (kid !== null && kid !== undefined) node.append(kid);
  return node;
};
const POST = { "X-Artfx": "1" };

const state = {
  info: null,            // /api/info
  input: null,           // the upload: {id, name, width, height, view}
  steps: [],             // [{stage, values: {field: string|bool}, files: {field: [{id, name}]}, outputs: {field: suffix}}]
  job: null,             // the job being watched: {id, events: EventSource}
  uploads: {},           // id -> name, for chips
  zoom: 1,               // the view's zoom: 1 (the picture fits the pane), 2 or 4
};

// ---- the API -------------------------------------------------------------------------------------------------
async function api(path, body, extra = {}) {
  const opts = body === undefined ? {} : { method: "POST", headers: { ...POST, ...extra.headers }, body };
  if (body !== undefined && !(body instanceof Blob) && typeof body !== "string") {
    opts.body = JSON.stringify(body);
    opts.headers["Content-Type"] = "application/json";
  }
  const res = await fetch(path, opts);
  let data = {};
  try { data = await res.json(); } catch (e) { data = { error: `${res.status} ${res.statusText}` }; }
  return { ok: res.ok, status: res.status, data };
}

async function uploadFile(file) {
  const limit = state.info.limits.upload_bytes;
  if (file.size > limit) {
    throw new Error(`the file is larger than this page's upload limit of ${limit / 1048576} MB`);
  }
  let res;
  for (let attempt = 0; ; attempt++) {
    res = await api(`/api/uploads?name=${encodeURIComponent(file.name)}`, file,
                    { headers: { "Content-Type": "application/octet-stream" } });
    // 503: other uploads hold the server's memory for decoding; it says when to try again
    if (res.status !== 503 || attempt >= 5) break;
    showError("input", `${res.data.error || "the server is busy"}…`);
    await new Promise((done) => setTimeout(done, 1000 * (Number(res.data.retry_after) || 2)));
  }
  showError("input", "");
  if (!res.ok) throw new Error(res.data.error || "upload failed");
  state.uploads[res.data.id] = res.data.name;
  return res.data;
}

// ---- the photo -----------------------------------------------------------------------------------------------
function setInput(upload) {
  state.input = upload;
  $("#before").src = upload.view;
  $("#frame").style.setProperty("--ar", `${upload.width} / ${upload.height}`);  // the frame takes its shape
  setZoom(1);
  $("#compare").classList.remove("empty", "has-after");
  $("#after").removeAttribute("src");
  $("#downloads").replaceChildren();
  showError("input", "");
  scheduleCheck();
}

async function chooseFile(file) {
  showError("input", "");
  try { setInput(await uploadFile(file)); } catch (e) { showError("input", e.message); }
}

function setupInput() {
  const drop = $("#drop");
  $("#file").addEventListener("change", (e) => { if (e.target.files[0]) chooseFile(e.target.files[0]); });
  for (const ev of ["dragenter", "dragover"]) drop.addEventListener(ev, (e) => { e.preventDefault(); drop.classList.add("over"); });
  for (const ev of ["dragleave", "drop"]) drop.addEventListener(ev, () => drop.classList.remove("over"));
  drop.addEventListener("drop", (e) => { e.preventDefault(); if (e.dataTransfer.files[0]) chooseFile(e.dataTransfer.files[0]); });
  for (const name of state.info.samples) {
    $("#samples").append(el("button", {
      type: "button", class: "sample", title: name, "data-sample": name,
      onclick: async () => {
        const res = await api(`/api/samples/${encodeURIComponent(name)}`, "");
        if (res.ok) setInput(res.data); else showError("input", res.data.error);
      },
    }, el("img", { src: `/static/samples/${name}`, alt: name })));
  }
}

// ---- checking and errors ---------------------------------------------------------------------------------------
function payload() {
  const steps = state.steps.map((step) => {
    const info = stageInfo(step.stage);
    const params = {};
    for (const f of info.fields) {
      if (f.widget === "output") continue;
      let value = step.values[f.name];
      const tokens = fileTokens(step, f.name);
      if (tokens.length) value = [...(f.widget === "upload" ? [] : String(value || "").split("|").filter((s) => s)), ...tokens].join("|");
      const dflt = f.widget === "bool" ? f.default : String(f.default);
      if (value !== undefined && value !== null && String(value) !== "" && value !== dflt) params[f.name] = value;
    }
    const outputs = Object.fromEntries(Object.entries(step.outputs).filter(([, v]) => v));
    return { stage: step.stage, params, outputs };
  });
  const options = {};
  for (const name of ["seed", "device", "max_size"]) {
    const v = $(`#opt-${name}`).value;
    if (v !== "") options[name] = v;
  }
  return { input: state.input ? state.input.id : null, steps, options };
}

function clearErrors() {
  document.querySelectorAll(".err").forEach((e) => { e.textContent = ""; });
  document.querySelectorAll(".invalid").forEach((e) => e.classList.remove("invalid"));
}

function showError(name, message) {
  const box = $(`#input-card .err[data-for="${name}"], #run-card .err[data-for="${name}"]`);
  if (box) box.textContent = message;
  const control = $(`#opt-${name}`);
  if (control) control.classList.toggle("invalid", !!message);
}

function showFieldError(step, field, message) {
  const card = $(`#steps .step[data-step="${step}"]`);
  if (!card) return;
  const box = (field && $(`.err[data-for="${field}"]`, card)) || $(`.err[data-for=""]`, card);
  box.textContent = message;
  if (field) {
    const more = box.closest("details");
    if (more) more.open = true;
    $(`[data-field="${field}"] input, [data-field="${field}"] select`, card)?.classList.add("invalid");
  }
}

function showErrors(errors) {
  clearErrors();
  for (const e of errors) {
    if (e.step === null || e.step === undefined) showError(e.field, e.message);
    else showFieldError(e.step, e.field, e.message);
  }
}

let checkTimer = null, checkSeq = 0;
function scheduleCheck() {
  clearTimeout(checkTimer);
  checkTimer = setTimeout(check, 250);
}

async function check() {
  if (!state.steps.length) {
    clearErrors();
    $("#command").textContent = ""; $("#toml").textContent = "";
    return;
  }
  const seq = ++checkSeq;
  const res = await api("/api/check", payload());
  if (seq !== checkSeq) return;  // a newer check is on its way
  showErrors(res.data.errors || (res.ok ? [] : [{ step: null, field: "input", message: res.data.error }]));
  if (res.data.ok) {
    $("#command").textContent = res.data.command;
    $("#toml").textContent = res.data.toml;
  }
}

// ---- running ----------------------------------------------------------------------------------------------------
function setStatus(text, kind = "") {
  const s = $("#status");
  s.textContent = text;
  s.className = `status ${kind}`;
}

function setRunning(running) {
  $("#run").disabled = running;
  $("#cancel").disabled = !running;
}

async function run() {
  clearTimeout(checkTimer);
  const res = await api("/api/jobs", payload());
  if (!res.ok) {
    showErrors(res.data.errors || [{ step: null, field: "input", message: res.data.error }]);
    setStatus(res.data.error || "cannot run", "error");
    return;
  }
  clearErrors();
  $("#command").textContent = res.data.command;
  $("#toml").textContent = res.data.toml;
  $("#downloads").replaceChildren();
  $("#bar").style.width = "0";
  setSlider(0);  // the result covers the whole picture as it forms; dragging uncovers the photo
  setRunning(true);
  watch(res.data.id);
}

function watch(id) {
  const events = new EventSource(`/api/jobs/${id}/events`);
  state.job = { id, events };
  events.addEventListener("state", (e) => {
    const d = JSON.parse(e.data);
    if (d.state === "queued") setStatus(d.position ? `waiting: ${d.position} job${d.position > 1 ? "s" : ""} before this one` : "starting…");
    else if (d.state === "running") setStatus("running…");
  });
  events.addEventListener("progress", (e) => {
    const p = JSON.parse(e.data);
    if (!p.label) return;
    $("#bar").style.width = `${Math.round(p.fraction * 100)}%`;
    const metrics = Object.entries(p.metrics || {}).map(([k, v]) => `${k} ${v}`).join(", ");
    const total = p.total ? `/${p.total}` : "";
    setStatus(`step ${p.label.replace(":", " (")}) ${p.done}${total}${metrics ? ` · ${metrics}` : ""}`);
  });
  events.addEventListener("image", (e) => {
    $("#after").src = JSON.parse(e.data).url;
    $("#compare").classList.add("has-after");
  });
  events.addEventListener("stopped", () => {
    events.close();
    state.job = null;
    setRunning(false);
    setStatus("the server stopped", "error");
  });
  events.addEventListener("end", (e) => {
    events.close();
    state.job = null;
    setRunning(false);
    finish(JSON.parse(e.data));
  });
}

function finish(job) {
  if (job.state === "done") {
    $("#bar").style.width = "100%";
    setStatus(`done in ${job.seconds} s`, "done");
    showResult(job);
  } else if (job.state === "cancelled") {
    setStatus("cancelled", "error");
  } else {
    setStatus(job.error || "failed", "error");
  }
}

function showResult(job) {
  // job.kind is "image" today; a sweep will come as "grid" (one thumbnail per parameter set, drawn in #grid).
  $("#after").src = `${job.result}?t=${Date.now()}`;
  $("#compare").classList.add("has-after");
  const links = job.files.map((f) => el("a", {
    href: f.url, download: f.name, class: f.url === job.result ? "main" : "", "data-file": f.name,
  }, `⬇ ${f.name}`));
  $("#downloads").replaceChildren(...links);
}

async function cancel() {
  if (!state.job) return;
  $("#cancel").disabled = true;
  setStatus("cancelling…");
  await api(`/api/jobs/${state.job.id}/cancel`, "");
}

// ---- the before/after view -------------------------------------------------------------------------------------
// The picture fits the pane whole. The result covers it; the slider uncovers the photo from the left (0: all
// result, 100: all photo). Zoom scales both pictures alike (so they stay lined up under the slider) around the
// point under the pointer; "fit" or a double click goes back.
function setSlider(value) {
  const slider = $("#slider");
  slider.value = String(value);
  const v = Number(slider.value);
  $("#after-wrap").style.clipPath = `inset(0 0 0 ${v}%)`;
  $("#handle").style.left = `${v}%`;
  $("#frame").classList.toggle("all-after", v < 8);
  $("#frame").classList.toggle("all-before", v > 92);
}

function setZoom(level) {
  state.zoom = level;
  for (const img of [$("#before"), $("#after")]) img.style.transform = level > 1 ? `scale(${level})` : "";
  $("#frame").classList.toggle("zoomed", level > 1);
  document.querySelectorAll(".zoom button").forEach((b) => b.classList.toggle("on", Number(b.dataset.zoom) === level));
  $("#view-hint").textContent = level > 1 ? "move the pointer to look around; double-click to fit" :
    "drag across the picture to compare; double-click to zoom";
}

function setupView() {
  const slider = $("#slider"), frame = $("#frame");
  slider.addEventListener("input", () => setSlider(slider.value));
  frame.addEventListener("pointermove", (e) => {
    if (state.zoom <= 1) return;
    const r = frame.getBoundingClientRect();
    const x = Math.min(Math.max((e.clientX - r.left) / r.width, 0), 1) * 100;
    const y = Math.min(Math.max((e.clientY - r.top) / r.height, 0), 1) * 100;
    for (const img of [$("#before"), $("#after")]) img.style.transformOrigin = `${x}% ${y}%`;
  });
  frame.addEventListener("dblclick", () => setZoom(state.zoom > 1 ? 1 : 2));
  document.querySelectorAll(".zoom button").forEach((b) => b.addEventListener("click", () => setZoom(Number(b.dataset.zoom))));
  setSlider(0);
  setZoom(1);
}

// ---- the page ----------------------------------------------------------------------------------------------------

async function main() {
  const res = await api("/api/info");
  state.info = res.data;
  $("#version").textContent = `artfx ${state.info.version}`;
  const select = $("#add-stage");
  for (const s of state.info.stages) {
    select.append(el("option", { value: s.name, disabled: !!s.error, title: s.error || s.summary },
                     s.error ? `${s.name} (broken: ${s.error})` : s.name));
  }
  $("#opt-device").append(...state.info.devices.map((d) => el("option", { value: d }, d)));
  for (const name of ["seed", "device", "max_size"]) {
    const control = $(`#opt-${name}`);
    control.title = state.info.options[name];
    control.addEventListener("input", scheduleCheck);
  }
  $("#add-step").addEventListener("click", () => addStep(select.value));
  $("#run").addEventListener("click", run);
  $("#cancel").addEventListener("click", cancel);
  document.querySelectorAll("button.copy").forEach((b) => b.addEventListener("click", () => {
    navigator.clipboard?.writeText($(`#${b.dataset.copy}`).textContent);
  }));
  setupInput();
  setupView();
  if (stageInfo("quantize")) addStep("quantize");
  document.body.dataset.ready = "1";
}

main();
