// The explorer's page: plain JavaScript over the JSON endpoints of alexnet/explore/server.py.
"use strict";

const state = { info: null, analysis: null, tab: "predict", layer: "conv1", chosen: {} };
const $ = (sel) => document.querySelector(sel);

function el(tag, attrs = {}, ...children) {
  const e = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) {
    if (k === "class") e.className = v;
    else if (k.startsWith("on")) e.addEventListener(k.slice(2), v);
    else e.setAttribute(k, v);
  }
  for (const c of children) e.append(c instanceof Node ? c : document.createTextNode(String(c)));
  return e;
}

function say(text, kind = "error") {
  const m = $("#message");
  m.textContent = text;
  m.className = kind;
  m.hidden = !text;
}

async function api(url, options = {}) {
  let r;
  try {
    r = await fetch(url, options);
  } catch (err) {
    say(`the server cannot be reached (${err}); is \`alexnet explore\` still running?`);
    return null;
  }
  let body = null;
  try { body = await r.json(); } catch (err) { body = { error: `${r.status} ${r.statusText}` }; }
  if (!r.ok) {
    say(body.error || `${r.status} ${r.statusText}`);
    return null;
  }
  return body;
}

// A picture endpoint: on failure, its JSON error goes to the message line.
function picture(url, cls = "") {
  const img = el("img", { src: url, class: cls, alt: "" });
  img.addEventListener("error", async () => {
    try {
      const r = await fetch(url);
      const b = await r.json();
      say(b.error || `cannot load ${url}`);
    } catch (err) { say(`cannot load ${url}`); }
  });
  return img;
}

function models() { return state.info ? state.info.models : []; }

function column(m, title) {
  const info = models()[m];
  const name = models().length > 1 ? `${m === 0 ? "A" : "B"}: ${info.source}` : info.source;
  return el("div", { class: "column", id: `${title}-${m}` }, el("h3", {}, name));
}

function percent(p) { return `${(100 * p).toFixed(p >= 0.1 ? 1 : 2)}%`; }

function bars(title, rows, id) {
  const box = el("div", { class: "bars", id });
  box.append(el("h4", {}, title));
  for (const r of rows) {
    box.append(el("div", { class: "bar", title: `class ${r.class}` },
      el("div", { class: "fill", style: `width:${(100 * r.prob).toFixed(2)}%` }),
      el("div", { class: "text" }, `${percent(r.prob)}  ${r.name}`)));
  }
  return box;
}

function viewWith(m, overlayUrl) {
  const a = state.analysis;
  const v = el("div", { class: "view" }, picture(`/api/analyses/${a.id}/${m}/view.png`));
  if (overlayUrl) v.append(picture(overlayUrl, "overlay"));
  return v;
}

// ------------------------------------------------------------------ panels

function renderPredict() {
  const box = $("#predict");
  box.replaceChildren();
  const a = state.analysis;
  if (!a) return;
  a.models.forEach((r, m) => {
    const col = column(m, "predict");
    col.append(el("div", { class: "row" }, viewWith(m),
      el("div", {}, bars("centre view", r.top5_centre, `top5-${m}`),
        bars("ten views (§4.1)", r.top5_ten, `ten-${m}`))));
    if (models()[m].note) col.append(el("p", { class: "hint" }, models()[m].note));
    box.append(col);
  });
}

function renderLayers() {
  const a = state.analysis;
  const buttons = $("#layer-buttons");
  buttons.replaceChildren();
  const box = $("#layers");
  box.replaceChildren();
  if (!a) return;
  const names = a.models[0].layers.map((l) => l.name);
  if (!names.includes(state.layer)) state.layer = names[0];
  for (const n of names) {
    buttons.append(el("button", {
      class: n === state.layer ? "active" : "", "data-layer": n,
      onclick: () => { state.layer = n; renderLayers(); },
    }, n));
  }
  a.models.forEach((r, m) => {
    const col = column(m, "layer");
    const layer = r.layers.find((l) => l.name === state.layer);
    if (!layer) { col.append("this model has no such layer"); box.append(col); return; }
    col.append(el("p", { class: "hint" },
      `${layer.name}: ${layer.channels} maps of ${layer.h}×${layer.w}`));
    const towers = el("div", { class: "towers" });
    layer.towers.forEach((t, i) => {
      const img = picture(`/api/analyses/${a.id}/${m}/layers/${layer.name}.png?tower=${i}`,
        "atlas");
      img.addEventListener("click", (ev) => {
        const scale = img.naturalWidth / img.clientWidth;
        const x = ev.offsetX * scale, y = ev.offsetY * scale;
        const c = Math.floor(x / layer.cell[1]), rr = Math.floor(y / layer.cell[0]);
        const k = rr * t.cols + c;
        if (c < t.cols && k < t.count) showMap(m, layer.name, t.first + k);
      });
      const cap = layer.towers.length > 1
        ? `tower ${i + 1} (GPU ${i + 1}): maps ${t.first}–${t.first + t.count - 1}`
        : `maps 0–${t.count - 1}`;
      towers.append(el("figure", { class: "tower" }, img, el("figcaption", {}, cap)));
    });
    col.append(towers, el("div", { class: "large", id: `large-${m}` }));
    box.append(col);
  });
}

function showMap(m, layer, c) {
  const a = state.analysis;
  const box = $(`#large-${m}`);
  box.replaceChildren(el("h4", {}, `${layer}, map ${c}`),
    viewWith(m, `/api/analyses/${a.id}/${m}/maps/${layer}/${c}.png`),
    el("button", {
      class: "to-unit", onclick: () => {
        $("#unit-layer").value = layer;
        $("#unit-number").value = c;
        switchTab("units");
        showUnits();
      },
    }, `strongest dataset images of ${layer} #${c}`));
}

async function renderKernels() {
  const box = $("#kernels");
  if (box.dataset.done) return;
  box.dataset.done = "1";
  for (let m = 0; m < models().length; m++) {
    const col = column(m, "kernels");
    box.append(col);
    const k = await api(`/api/kernels/${m}`);
    if (!k) continue;
    col.append(el("p", { class: "hint" },
      `${k.kernels} kernels of ${k.shape[1]}×${k.shape[2]}×${k.shape[0]}`));
    if (Array.isArray(k.split)) {
      const table = el("table", { class: "chroma" },
        el("tr", {}, el("th", {}, "tower"), el("th", {}, "kernels"), el("th", {}, "mean chroma"),
          el("th", {}, "median"), el("th", {}, "range")));
      for (const t of k.split) {
        table.append(el("tr", {}, el("td", {}, t.tower), el("td", {}, `${t.kernels[0]}–${t.kernels[1] - 1}`),
          el("td", {}, `${t.mean.toFixed(3)} ± ${t.std.toFixed(3)}`), el("td", {}, t.median.toFixed(3)),
          el("td", {}, `${t.min.toFixed(2)}–${t.max.toFixed(2)}`)));
      }
      col.append(table);
    } else {
      col.append(el("p", { class: "hint" }, k.split));
    }
    k.urls.forEach((u, i) => {
      col.append(el("figure", { class: "tower" }, picture(u, "kernel-atlas"),
        el("figcaption", {}, k.urls.length > 1 ? `tower ${i + 1} (GPU ${i + 1})` : "conv1")));
    });
  }
}

function fillClasses() {
  const sel = $("#where-class");
  sel.replaceChildren();
  const a = state.analysis;
  if (!a) return;
  for (const r of a.models[0].top5_ten) {
    sel.append(el("option", { value: r.class }, `${r.name} (${percent(r.prob)})`));
  }
}

async function showWhere() {
  const a = state.analysis;
  const box = $("#where");
  box.replaceChildren();
  if (!a) return;
  const method = document.querySelector("input[name=method]:checked").value;
  const other = $("#where-other").value.trim();
  const cls = encodeURIComponent(other || $("#where-class").value);
  for (let m = 0; m < a.models.length; m++) {
    const col = column(m, "where");
    col.append(el("p", { class: "hint" }, method === "occlusion"
      ? "computing the occlusion sweep…" : "computing Grad-CAM…"));
    box.append(col);
    const r = await api(`/api/analyses/${a.id}/${m}/where/${method}?class=${cls}`);
    if (!r) { col.lastChild.textContent = "—"; continue; }
    say("");
    col.lastChild.textContent = method === "occlusion"
      ? `${r.name}: ${r.grid}×${r.grid} squares of ${r.patch} px (stride ${r.stride}), ` +
        `${r.seconds.toFixed(2)} s; largest drop ${percent(r.largest_drop)}`
      : `${r.name}: Grad-CAM at ${r.layer}`;
    col.append(viewWith(m, r.url));
  }
}

// The dataset pass (units, neighbours): started on request, polled with a progress bar.
async function indexReady(m, box) {
  let s = await api(`/api/index/${m}`, { method: "POST" });
  if (!s) return false;
  const bar = el("progress", { max: Math.max(1, s.total), value: s.done });
  const text = el("span", {}, "");
  const line = el("p", { class: "index-progress" }, "dataset pass (once per run and data): ",
    bar, " ", text);
  box.append(line);
  while (s && s.state === "running") {
    bar.value = s.done;
    text.textContent = `${s.done} / ${s.total} images`;
    await new Promise((res) => setTimeout(res, 400));
    s = await api(`/api/index/${m}`);
  }
  line.remove();
  if (!s || s.state !== "ready") {
    if (s) say(`dataset pass failed: ${s.message}`);
    return false;
  }
  return true;
}

async function showNeighbours() {
  const a = state.analysis;
  const box = $("#neighbours");
  box.replaceChildren();
  if (!a) return;
  if (!state.info.data) { say(`no dataset to search. ${state.info.data_note}`, "info"); return; }
  const by = document.querySelector("input[name=by]:checked").value;
  for (let m = 0; m < a.models.length; m++) {
    const col = column(m, "neighbours");
    box.append(col);
    if (!(await indexReady(m, col))) continue;
    const r = await api(`/api/analyses/${a.id}/${m}/neighbours?by=${by}&k=6`);
    if (!r) continue;
    const g = el("div", { class: "gallery" });
    for (const n of r.neighbours) {
      g.append(el("figure", { class: "neighbour" }, picture(n.url),
        el("figcaption", {}, `${n.label} · ${by === "fc7" ? n.distance.toPrecision(3) : n.distance + " bits"}`)));
    }
    col.append(el("p", { class: "hint" }, by === "fc7"
      ? "training images nearest in fc7 (Euclidean distance)"
      : "training images nearest by 64-bit codes (Hamming distance)"), g);
  }
}

async function showUnits() {
  const box = $("#units");
  box.replaceChildren();
  if (!state.info.data) { say(`no dataset to search. ${state.info.data_note}`, "info"); return; }
  const layer = $("#unit-layer").value;
  const u = $("#unit-number").value;
  for (let m = 0; m < models().length; m++) {
    const col = column(m, "units");
    box.append(col);
    if (!(await indexReady(m, col))) continue;
    const r = await api(`/api/units/${m}/${encodeURIComponent(layer)}/${encodeURIComponent(u)}`);
    if (!r) continue;
    say("");
    const where = r.field ? `patches of ${r.field.size} px (receptive field)` : "whole images";
    col.append(el("p", { class: "hint" }, `${r.layer} unit ${r.unit}: ${where}`));
    const g = el("div", { class: "gallery" });
    for (const e of r.examples) {
      g.append(el("figure", { class: "unit-example" }, picture(e.url),
        el("figcaption", {}, `${e.value.toFixed(2)} · ${e.label}`)));
    }
    col.append(g);
  }
}

function fillUnitLayers() {
  const sel = $("#unit-layer");
  sel.replaceChildren();
  for (const u of models()[0].units) {
    sel.append(el("option", { value: u.layer }, `${u.layer} (${u.count})`));
  }
  const conv5 = models()[0].units.find((u) => u.layer === "conv5");
  if (conv5) sel.value = "conv5";
}

// ------------------------------------------------------------------ choosing images

function switchTab(tab) {
  state.tab = tab;
  document.querySelectorAll(".tab").forEach((b) => b.classList.toggle("active", b.dataset.tab === tab));
  document.querySelectorAll(".panel").forEach((p) => { p.hidden = p.id !== `panel-${tab}`; });
  if (tab === "kernels") renderKernels();
  if (tab === "where" && !$("#where").childElementCount) showWhere();
  if (tab === "neighbours") showNeighbours();
}

function setAnalysis(a) {
  if (!a) return;
  state.analysis = a;
  say("");
  const label = a.label ? ` (class: ${a.label})` : "";
  $("#current").textContent = `${a.name}${label}`;
  renderPredict();
  renderLayers();
  fillClasses();
  $("#where").replaceChildren();
  if (state.tab === "where") showWhere();
  if (state.tab === "neighbours") showNeighbours();
}

async function upload(file) {
  if (!file) return;
  if (file.size > state.info.max_bytes) {
    say(`${file.name} is ${file.size.toLocaleString()} bytes, more than the ` +
      `${state.info.max_bytes.toLocaleString()} allowed; choose a smaller image`);
    return;
  }
  say(`analysing ${file.name}…`, "info");
  document.querySelectorAll("#samples img").forEach((i) => i.classList.remove("chosen"));
  setAnalysis(await api(`/api/analyse?name=${encodeURIComponent(file.name)}`,
    { method: "POST", body: file, headers: { "Content-Type": "application/octet-stream" } }));
}

async function chooseSample(i, img) {
  document.querySelectorAll("#samples img").forEach((x) => x.classList.toggle("chosen", x === img));
  setAnalysis(await api(`/api/samples/${i}/analyse`, { method: "POST" }));
}

async function start() {
  state.info = await api("/api/info");
  if (!state.info) return;
  $("#models-line").textContent = models().map((m, i) =>
    `${models().length > 1 ? (i ? "B: " : "A: ") : ""}${m.name}, ${m.classes} classes, ` +
    `${m.size} px, ${m.towers} tower${m.towers > 1 ? "s" : ""}`).join("   |   ");
  const d = state.info.data;
  $("#data-line").textContent = d
    ? `${d.name}: ${d.samples} validation images to pick, ${d.store} training images searched`
    : state.info.data_note || "no dataset: upload images";
  fillUnitLayers();
  const s = await api("/api/samples");
  if (s) {
    // at most 120 thumbnails, spread over the split (it is stored class by class)
    const n = s.samples.length, shown = Math.min(n, 120);
    const picks = [...new Set(Array.from({ length: shown },
      (_, i) => s.samples[Math.round(i * (n - 1) / Math.max(1, shown - 1))]))];
    picks.forEach((x) => {
      const img = el("img", { src: `/api/samples/${x.index}.jpg?side=96`, title: x.label,
        "data-index": x.index, loading: "lazy", alt: x.label });
      img.addEventListener("click", () => chooseSample(x.index, img));
      $("#samples").append(img);
    });
  }
  if (state.info.first) setAnalysis(await api(`/api/analyses/${state.info.first}`));
}

document.querySelectorAll(".tab").forEach((b) => b.addEventListener("click", () => switchTab(b.dataset.tab)));
$("#file").addEventListener("change", (e) => upload(e.target.files[0]));
const drop = $("#drop");
drop.addEventListener("dragover", (e) => { e.preventDefault(); drop.classList.add("over"); });
drop.addEventListener("dragleave", () => drop.classList.remove("over"));
drop.addEventListener("drop", (e) => {
  e.preventDefault();
  drop.classList.remove("over");
  upload(e.dataTransfer.files[0]);
});
$("#where-go").addEventListener("click", showWhere);
document.querySelectorAll("input[name=method]").forEach((r) => r.addEventListener("change", showWhere));
document.querySelectorAll("input[name=by]").forEach((r) => r.addEventListener("change", showNeighbours));
$("#unit-show").addEventListener("click", showUnits);
start();
