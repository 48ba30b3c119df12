// artfx serve: the steps and their forms, drawn from the stages' fields as /api/info describes them (loaded before
// app.js, which holds the page's state and talks to the server; these functions run only once both are loaded).
"use strict";

// ---- steps -----------------------------------------------------------------------------------------------------
const stageInfo = (name) => state.info.stages.find((s) => s.name === name);

function addStep(name) {
  const info = stageInfo(name);
  const values = {};
  for (const f of info.fields) values[f.name] = f.widget === "bool" ? f.default : (f.widget === "output" ? "" : f.default);
  state.steps.push({ stage: name, values, files: {}, outputs: {} });
  renderSteps();
  scheduleCheck();
}

function moveStep(i, by) {
  const j = i + by;
  if (j < 0 || j >= state.steps.length) return;
  [state.steps[i], state.steps[j]] = [state.steps[j], state.steps[i]];
  renderSteps();
  scheduleCheck();
}

function removeStep(i) {
  state.steps.splice(i, 1);
  renderSteps();
  scheduleCheck();
}

function renderSteps() {
  const list = $("#steps");
  list.replaceChildren(...state.steps.map((step, i) => renderStep(step, i)));
}

function renderStep(step, i) {
  const info = stageInfo(step.stage);
  const fields = info.fields.filter((f) => f.widget !== "output");
  const outputs = info.fields.filter((f) => f.widget === "output");
  const first = fields.slice(0, 4), rest = fields.slice(4);
  const n = state.steps.length;
  return el("li", { class: "step", "data-step": i, "data-stage": step.stage },
    el("div", { class: "step-head" },
      el("span", { class: "num" }, String(i + 1)), el("span", { class: "name" }, step.stage),
      el("span", { class: "summary", title: info.summary }, info.summary),
      el("span", { class: "btns" },
        el("button", { type: "button", class: "small", title: "move up", disabled: i === 0, onclick: () => moveStep(i, -1) }, "↑"),
        el("button", { type: "button", class: "small", title: "move down", disabled: i === n - 1, onclick: () => moveStep(i, 1) }, "↓"),
        el("button", { type: "button", class: "small", title: "remove", "data-action": "remove", onclick: () => removeStep(i) }, "✕"))),
    el("div", { class: "err", "data-for": "" }),
    el("div", { class: "fields" }, first.map((f) => renderField(step, f))),
    rest.length ? el("details", { class: "more" }, el("summary", {}, `${rest.length} more parameters`),
      el("div", { class: "fields" }, rest.map((f) => renderField(step, f)))) : null,
    outputs.length ? el("div", { class: "fields" }, outputs.map((f) => renderOutput(step, f))) : null);
}

function changed(step, name, value) {
  step.values[name] = value;
  scheduleCheck();
}

function rangeText(f) {
  return f.range ? ` (${f.range.replace(/^allowed range /, "").replace(/^must be /, "")})` : "";
}

function renderField(step, f) {
  const id = `f-${state.steps.indexOf(step)}-${f.name}`;
  const wide = ["styles", "text-upload", "upload"].includes(f.widget) || (f.widget === "text" && f.list);
  const box = el("div", { class: `field ${f.widget}${wide ? " wide" : ""}`, "data-field": f.name, title: f.description });
  const label = el("label", { for: id }, f.label, el("span", { class: "range" }, f.widget === "choice" ? "" : rangeText(f)));
  let control;
  if (f.widget === "bool") {
    control = el("input", { id, type: "checkbox", name: f.name, checked: !!step.values[f.name],
                            onchange: (e) => changed(step, f.name, e.target.checked) });
    box.append(el("label", { for: id }, control, f.label));
  } else if (f.widget === "choice") {
    control = el("select", { id, name: f.name, onchange: (e) => changed(step, f.name, e.target.value) },
      f.choices.map((c) => el("option", { value: c, selected: c === step.values[f.name] }, c)));
    box.append(label, control);
  } else if (f.widget === "number") {
    control = el("input", { id, type: "number", name: f.name, step: f.step, min: f.min, max: f.max,
                            value: step.values[f.name], oninput: (e) => changed(step, f.name, e.target.value) });
    box.append(label, control);
  } else if (f.widget === "styles") {
    box.append(label, renderStyles(step, f));
  } else if (f.widget === "upload" || f.widget === "text-upload") {
    box.append(label, renderUpload(step, f, id));
  } else {
    control = el("input", { id, type: "text", name: f.name, value: step.values[f.name], placeholder: f.list ? "a|b|c" : "",
                            oninput: (e) => changed(step, f.name, e.target.value) });
    box.append(label, control);
  }
  box.append(el("div", { class: "help" }, f.description), el("div", { class: "err", "data-for": f.name }));
  return box;
}

function fileTokens(step, name) {
  return (step.files[name] || []).map((u) => `upload:${u.id}`);
}

function pickFile(onFile) {
  const input = el("input", { type: "file", accept: "image/*" });
  input.addEventListener("change", () => { if (input.files[0]) onFile(input.files[0]); });
  input.click();
}

function uploadInto(step, f, multi) {
  pickFile(async (file) => {
    try {
      const up = await uploadFile(file);
      step.files[f.name] = multi ? [...(step.files[f.name] || []), up] : [up];
      if (!multi && f.widget !== "styles") step.values[f.name] = "";
      renderSteps();
      scheduleCheck();
    } catch (e) { showFieldError(state.steps.indexOf(step), f.name, e.message); }
  });
}

function chips(step, f) {
  return el("div", { class: "chips" }, (step.files[f.name] || []).map((u, k) => el("span", { class: "chip" }, u.name,
    el("button", { type: "button", title: "remove", onclick: () => {
      step.files[f.name].splice(k, 1); renderSteps(); scheduleCheck();
    } }, "✕"))));
}

function renderUpload(step, f, id) {
  const row = el("div", { class: "upload-row" });
  if (f.widget === "text-upload") {
    const hasFile = (step.files[f.name] || []).length > 0 && !f.multi;
    row.append(el("input", { id, type: "text", name: f.name, value: step.values[f.name], disabled: hasFile,
                             placeholder: f.placeholder || (f.words || []).join(" | "), list: f.words ? `${id}-words` : null,
                             oninput: (e) => changed(step, f.name, e.target.value) }));
    if (f.words) row.append(el("datalist", { id: `${id}-words` }, f.words.map((w) => el("option", { value: w }))));
  }
  row.append(el("button", { type: "button", class: "small", onclick: () => uploadInto(step, f, !!f.multi) }, "upload…"));
  return el("div", {}, row, chips(step, f));
}

function renderStyles(step, f) {
  const chosen = () => (step.values[f.name] || "").split("|").filter((s) => s);
  const box = el("div", { class: "styles" });
  for (const name of state.info.styles) {
    const at = chosen().indexOf(name);
    box.append(el("button", {
      type: "button", class: `style-pick${at >= 0 ? " on" : ""}`, title: name, "data-style": name,
      onclick: () => {
        const now = chosen();
        const k = now.indexOf(name);
        if (k >= 0) now.splice(k, 1); else now.push(name);
        step.values[f.name] = now.join("|");
        renderSteps();
        scheduleCheck();
      },
    }, el("img", { src: `/api/styles/${name}`, alt: name }), at >= 0 ? el("span", { class: "order" }, String(at + 1)) : null));
  }
  box.append(el("button", { type: "button", class: "small", onclick: () => uploadInto(step, f, true) }, "your own…"));
  return el("div", {}, box, chips(step, f));
}

function renderOutput(step, f) {
  const id = `o-${state.steps.indexOf(step)}-${f.name}`;
  const current = step.outputs[f.name] || "";
  const set = (v) => { step.outputs[f.name] = v; scheduleCheck(); };
  let control;
  if (f.suffixes.length === 1) {
    control = el("label", { for: id }, el("input", { id, type: "checkbox", name: f.name, checked: !!current,
      onchange: (e) => set(e.target.checked ? f.suffixes[0] : "") }), ` also make ${f.label} (${f.suffixes[0]})`);
  } else {
    control = el("label", { for: id }, `also make ${f.label} `, el("select", { id, name: f.name, onchange: (e) => set(e.target.value) },
      el("option", { value: "" }, "no"), f.suffixes.map((s) => el("option", { value: s, selected: s === current }, s))));
  }
  return el("div", { class: "field output", "data-field": f.name, title: f.description }, control,
            el("div", { class: "help" }, f.description), el("div", { class: "err", "data-for": f.name }));
}
