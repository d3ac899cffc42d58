// bertology explorer: plain JavaScript, no build step. The server computes; this file draws SVG.
"use strict";

const $ = (id) => document.getElementById(id);
const SVG_NS = "http://www.w3.org/2000/svg";
const PALETTE = ["#1f77b4", "#d62728", "#2ca02c", "#ff7f0e", "#9467bd", "#8c564b", "#e377c2", "#17becf"];
const VIEWS = ["senses", "fill-mask", "neighbours", "langvec", "attention"];
const PREFIX = { senses: "senses", "fill-mask": "fm", neighbours: "nb", langvec: "lv", attention: "at" };
// The inputs of each view: URL key -> element id (also where the server's `field` points).
const INPUTS = {
  senses: { sentences: "senses-sentences", target: "senses-target" },
  "fill-mask": { text: "fm-text", k: "fm-k" },
  neighbours: { word: "nb-word", k: "nb-k" },
  langvec: { sentence: "lv-sentence", layer: "lv-layer", alpha: "lv-alpha" },
  attention: { sentence: "at-sentence", target: "at-target" },
};
const SENSES_MIN = 6;     // the server's MIN_PER_SENSE, for the legend's colouring only

const state = {
  models: [], model: null, model2: "", active: "senses",
  seq: {}, stale: new Set(VIEWS), edited: new Set(), senses: null, fontChars: new Set(), ran: {},
};

// ------------------------------------------------------------------------------------------------ helpers
function el(tag, attrs = {}, text) {
  const node = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) node.setAttribute(k, v);
  if (text !== undefined) node.textContent = text;
  return node;
}
function svg(tag, attrs = {}, text) {
  const node = document.createElementNS(SVG_NS, tag);
  for (const [k, v] of Object.entries(attrs)) node.setAttribute(k, v);
  if (text !== undefined) node.textContent = text;
  return node;
}
// A figure that shrinks with a narrow screen: drawn in its own units, at most its width.
function figure(w, h, id) {
  const attrs = { viewBox: `0 0 ${w} ${h}`, width: w, class: "fig", style: `max-width:100%;height:auto` };
  if (id) attrs.id = id;
  return svg("svg", attrs);
}
const fmt = (v, d = 3) => (v === null || v === undefined ? "–" : Number(v).toFixed(d));
// Element ids: the first model's as they are (the tests and links name them), the second model's with "-b".
const sid = (base, slot) => (slot ? `${base}-b` : base);

async function api(path, body) {
  const init = body === undefined ? {} : {
    method: "POST", headers: { "content-type": "application/json" }, body: JSON.stringify(body) };
  const response = await fetch(path, init);
  let data;
  try { data = await response.json(); } catch (e) { data = { error: `HTTP ${response.status}` }; }
  if (!response.ok) {
    const err = new Error(data.error || `HTTP ${response.status}`);
    err.field = data.field; err.status = response.status; err.switch = data.switch;
    throw err;
  }
  return data;
}

const modelInfo = (name) => state.models.find((m) => m.name === name) || {};
const slotModels = () => [state.model, ...(state.model2 && state.model2 !== state.model ? [state.model2] : [])];

// The CJK web font: ask for a subset holding every CJK character on the page (inputs included). Calls are
// chained, so `window.cjkFontSettled()` (used by the tests before a screenshot) resolves once all are applied.
let fontChain = Promise.resolve();
function ensureCjkFont() {
  fontChain = fontChain.then(loadCjkFont).catch(() => { /* the reader's own fonts remain */ });
  return fontChain;
}
window.cjkFontSettled = () => fontChain;

async function loadCjkFont() {
  let text = document.body.innerText;
  document.querySelectorAll("input[type=text], textarea").forEach((i) => { text += i.value; });
  const fresh = [...new Set(text)].filter((c) => c.codePointAt(0) > 0x2e7f && !state.fontChars.has(c));
  if (!fresh.length) return;
  fresh.forEach((c) => state.fontChars.add(c));
  const chars = [...state.fontChars].sort().join("");
  const css = await (await fetch("/api/font.css?chars=" + encodeURIComponent(chars))).text();
  $("cjk-font").textContent = css;
  await document.fonts.load("16px bertology-cjk", chars);
}

// A button that switches the picker (slot 0) or the compared model (slot 1) to `name`.
function switchButton(name, slot = 0) {
  const b = el("button", { type: "button", class: "switch small", "data-model": name }, `switch to ${name}`);
  b.addEventListener("click", () => (slot ? selectModel2(name) : selectModel(name)));
  return b;
}

// ------------------------------------------------------------------------------------------------ running a view
function setState(view, s) { $("view-" + view).dataset.state = s; }

function clearError(view) {
  const p = PREFIX[view];
  $(`${p}-error`).hidden = true;
  Object.values(INPUTS[view]).forEach((id) => $(id).removeAttribute("aria-invalid"));
}

function showError(view, err) {
  const box = $(`${PREFIX[view]}-error`);
  box.replaceChildren(el("span", {}, err.message));
  if (err.switch) box.append(" ", switchButton(err.switch));
  box.hidden = false;
  const id = INPUTS[view][err.field];
  if (id) $(id).setAttribute("aria-invalid", "true");
}

// What the spinner says: a first call loads the model (and, for two views, builds what they need once).
function busyText(view, names) {
  return names.map((name) => {
    const m = modelInfo(name);
    if (!m.loaded && !(state.ran[name])) return `loading ${name} (~${Math.round(m.load_estimate_s || 10)} s)`;
    const prepared = m.prepared || [];
    if (view === "neighbours" && !prepared.some((p) => p.startsWith("neighbours")))
      return `first neighbours call on ${name}: ranking ~1,000 dictionary words (~20 s, once)`;
    if (view === "langvec" && !prepared.includes("langvec"))
      return `first call on ${name}: averaging 500 Tatoeba sentences per language (~10 s, once)`;
    return `running ${name}…`;
  }).join(" · ");
}

function setBusy(view, text) {
  const p = PREFIX[view], status = $(`${p}-status`);
  const button = document.querySelector(`#${p}-form button[type=submit]`);
  if (text) {
    status.replaceChildren(el("span", { class: "spinner", "aria-hidden": "true" }), el("span", {}, text));
    status.hidden = false;
    button.disabled = true; button.setAttribute("aria-busy", "true");
  } else {
    status.hidden = true;
    button.disabled = false; button.removeAttribute("aria-busy");
  }
}

// The one line shown instead of running a view the chosen model cannot run, with the model to switch to.
function cannotLine(view, name) {
  const why = (modelInfo(name).cannot || {})[view];
  if (!why) return null;
  const other = state.models.find((m) => !(m.cannot || {})[view]);
  return { text: `${name} cannot run this view: ${why}.`, switch: other ? other.name : null };
}

function showNotice(view) {
  const box = $(`${PREFIX[view]}-notice`);
  const line = cannotLine(view, state.model);
  box.hidden = !line;
  if (line) {
    box.replaceChildren(el("span", {}, line.text));
    if (line.switch) box.append(" ", switchButton(line.switch));
  }
  return line;
}

async function run(view) {
  const my = (state.seq[view] = (state.seq[view] || 0) + 1);  // only the latest answer is drawn
  state.stale.delete(view);
  const p = PREFIX[view];
  clearError(view);
  const blocked = showNotice(view);
  const names = slotModels();
  const runnable = names.filter((n, slot) => slot > 0 || !blocked);
  if (!runnable.length) { $(`${p}-result`).hidden = true; setState(view, "unavailable"); return; }
  setState(view, "loading");
  setBusy(view, busyText(view, runnable));
  $(`${p}-result`).classList.add("stale");
  const answers = await Promise.all(names.map((name, slot) => {
    if (slot === 0 && blocked) return Promise.resolve({ blocked });
    const line = slot > 0 ? cannotLine(view, name) : null;
    if (line) return Promise.resolve({ blocked: line });
    return RUNNERS[view](name).then((data) => ({ data }), (err) => ({ err }));
  }));
  if (my !== state.seq[view]) return;
  setBusy(view, null);
  names.forEach((n) => { state.ran[n] = true; });
  refreshModels();
  $(`${p}-result`).classList.remove("stale");
  const first = answers[0];
  if (first.err) showError(view, first.err);
  const anyData = answers.some((a) => a.data);
  $(`${p}-result`).hidden = !anyData;
  if (anyData) {
    const columns = $(`${p}-columns`);
    columns.replaceChildren();
    columns.classList.toggle("two", names.length > 1);
    answers.forEach((a, slot) => {
      const col = el("div", { class: "column", "data-slot": slot, "data-model": names[slot] });
      if (names.length > 1) col.append(el("h2", { class: "model-name" }, names[slot]));
      columns.append(col);
      if (a.data) DRAW[view](a.data, col, slot);
      else if (a.blocked) {
        const line = el("p", { class: "notice" }, a.blocked.text);
        if (a.blocked.switch) line.append(" ", switchButton(a.blocked.switch, slot));
        col.append(line);
      } else {
        const line = el("p", { class: "error" }, a.err.message);
        if (a.err.switch) line.append(" ", switchButton(a.err.switch, slot));
        col.append(line);
      }
    });
    if (view === "senses") drawSenses();
  }
  setState(view, first.data ? "ready" : first.blocked && anyData ? "ready" : first.blocked ? "unavailable" : "error");
  writeUrl();
  ensureCjkFont();
}

const RUNNERS = {
  senses: (model) => api("/api/senses", { model, sentences: $("senses-sentences").value,
    target: $("senses-target").value }),
  "fill-mask": (model) => api("/api/fill-mask", { model, text: $("fm-text").value, k: $("fm-k").value }),
  neighbours: (model) => api("/api/neighbours", { model, word: $("nb-word").value, k: $("nb-k").value }),
  langvec: (model) => api("/api/langvec", { model, sentence: $("lv-sentence").value,
    layer: Math.min(Number($("lv-layer").value), modelInfo(model).layers), alpha: $("lv-alpha").value }),
  attention: async (model) => {
    const lines = $("at-sentence").value.split("\n").map((s) => s.trim()).filter(Boolean);
    if (lines.length > 2) { const e = new Error("one or two sentences, one a line"); e.field = "sentence"; throw e; }
    if (!lines.length) lines.push("");
    const target = $("at-target").value;
    const maps = [];
    for (const sentence of lines) maps.push(await api("/api/attention", { model, sentence, target }));
    return { model, maps };
  },
};

// ------------------------------------------------------------------------------------------------ tooltips
function showTooltip(event, build) {
  const tip = $("tooltip");
  tip.replaceChildren();
  build(tip);
  tip.hidden = false;
  const x = Math.max(4, Math.min(event.clientX + 14, window.innerWidth - tip.offsetWidth - 8));
  const y = Math.max(4, Math.min(event.clientY + 14, window.innerHeight - tip.offsetHeight - 8));
  tip.style.left = x + "px"; tip.style.top = y + "px";
}
function hideTooltip() { $("tooltip").hidden = true; }
function hoverable(node, build) {
  node.addEventListener("mousemove", (e) => showTooltip(e, build));
  node.addEventListener("mouseleave", hideTooltip);
}

// viridis-like: dark blue -> teal -> yellow, t in [0, 1]
function heatColor(t) {
  const stops = [[68, 1, 84], [59, 82, 139], [33, 145, 140], [94, 201, 98], [253, 231, 37]];
  const x = Math.max(0, Math.min(1, t)) * (stops.length - 1);
  const i = Math.min(Math.floor(x), stops.length - 2), f = x - i;
  const c = stops[i].map((a, k) => Math.round(a + (stops[i + 1][k] - a) * f));
  return `rgb(${c.join(",")})`;
}
// white -> deep blue for attention probabilities (most are near 0: white keeps the matrix readable)
function attnColor(t) {
  const v = Math.max(0, Math.min(1, t)) ** 0.6;
  return `rgb(${Math.round(255 - 222 * v)},${Math.round(255 - 185 * v)},${Math.round(255 - 95 * v)})`;
}

function colourBar(root, x0, y0, height, colour, top, bottom, title) {
  for (let k = 0; k < 20; k++) {
    root.append(svg("rect", { x: x0, y: y0 + (height * k) / 20, width: 10, height: height / 20 + 0.5, fill: colour(1 - k / 20) }));
  }
  root.append(svg("text", { x: x0 + 13, y: y0 + 10, "font-size": 11 }, top));
  root.append(svg("text", { x: x0 + 13, y: y0 + height, "font-size": 11 }, bottom));
  if (title) root.append(svg("text", { x: x0 + 13, y: y0 + height / 2 + 4, "font-size": 11, fill: "#667085" }, title));
}

// ------------------------------------------------------------------------------------------------ senses
function labelColor(labels, label) {
  const i = labels.indexOf(label);
  return label === "" || i < 0 ? "#98a2b3" : PALETTE[i % PALETTE.length];
}

function occurrenceLine(tip, data, i) {
  const o = data.occurrences[i];
  const line = el("div", { class: "sentence" });
  const s = data.sentences[o.sentence];
  line.append(el("b", {}, `#${i + 1}${o.label ? " (" + o.label + ")" : ""}: `), s.slice(0, o.start),
    el("mark", {}, s.slice(o.start, o.end)), s.slice(o.end));
  tip.append(line);
}

// Cosine on a fixed 0..1 scale (the same colours mean the same cosine in every run and model).
function drawHeatmap(box, data, layer, slot) {
  const m = data.layers[layer].similarity, n = m.length;
  const size = Math.min(360, Math.max(160, n * 14)), cell = size / n, pad = 8;
  const root = figure(size + pad + 84, size + 6, sid("heatmap-svg", slot));
  let lowest = 1;
  m.forEach((row, i) => {
    root.append(svg("rect", { x: 0, y: i * cell, width: pad - 2, height: cell,
      fill: labelColor(data.labels, data.occurrences[i].label) }));
    row.forEach((v, j) => {
      lowest = Math.min(lowest, v);
      const r = svg("rect", { class: "cell", x: pad + j * cell, y: i * cell, width: cell + 0.3, height: cell + 0.3,
        fill: heatColor(v), "data-i": i, "data-j": j, "data-cos": v });
      hoverable(r, (tip) => {
        occurrenceLine(tip, data, i); occurrenceLine(tip, data, j);
        tip.append(el("div", {}, `cosine ${fmt(v)} at layer ${layer}`));
      });
      root.append(r);
    });
  });
  colourBar(root, pad + size + 10, 0, size, heatColor, "1", lowest < 0 ? "≤0" : "0", "cosine");
  box.replaceChildren(root);
}

// The separation curve on a fixed axis from 0 (or below, when negative) to 1; with one sentence per sense,
// the cosine across the senses instead (the answer there is: how different are the two occurrences).
function drawCurve(box, data, layer, slot) {
  const w = 360, h = 160, ml = 38, mb = 26, mt = 8, mr = 8;
  const across = data.scores.every((s) => s.separation === null);
  const values = data.scores.map((s, l) => ({ layer: s.layer, v: across ? data.layers[l].across : s.separation }))
    .filter((p) => p.v !== null && p.v !== undefined);
  const root = figure(w, h, sid("curve-svg", slot));
  if (!values.length) {
    root.append(svg("text", { x: 10, y: 40, "font-size": 12 }, "no curve: see the message above"));
    box.replaceChildren(root);
    return;
  }
  const nl = data.scores.length - 1 || 1;
  const ymin = Math.min(0, Math.floor(Math.min(...values.map((p) => p.v)) * 10) / 10), ymax = 1;
  const X = (l) => ml + ((w - ml - mr) * l) / nl, Y = (v) => mt + (h - mt - mb) * (1 - (v - ymin) / (ymax - ymin));
  root.append(svg("line", { x1: ml, x2: w - mr, y1: Y(0), y2: Y(0), stroke: "#98a2b3", "stroke-dasharray": "4 3" }));
  root.append(svg("text", { x: w - mr, y: Y(0) - 3, "font-size": 10, "text-anchor": "end", fill: "#667085" },
    across ? "0" : "0 = no separation (a static vector)"));
  root.append(svg("line", { x1: X(layer), x2: X(layer), y1: mt, y2: h - mb, stroke: "#2f6fdf", "stroke-dasharray": "3 3" }));
  root.append(svg("polyline", { fill: "none", stroke: "#1d2330", "stroke-width": 1.5,
    points: values.map((p) => `${X(p.layer)},${Y(p.v)}`).join(" ") }));
  values.forEach((p) => {
    const s = data.scores[p.layer];
    const c = svg("circle", { class: "point", cx: X(p.layer), cy: Y(p.v), r: p.layer === layer ? 5 : 3.5,
      fill: !across && p.layer === data.best_layer ? "#d62728" : "#1d2330", style: "cursor:pointer" });
    c.addEventListener("click", () => { $("senses-layer").value = p.layer; drawSenses(); });
    hoverable(c, (tip) => tip.append(el("div", {}, across ? `layer ${p.layer}: cosine across the senses ${fmt(p.v)}` :
      `layer ${p.layer}: separation ${fmt(s.separation)} (within ${fmt(s.within)}, between ${fmt(s.between)}), ` +
      `silhouette ${fmt(s.silhouette, 2)}, 2-means purity ${fmt(s.purity, 2)}`)));
    root.append(c);
  });
  for (let l = 0; l <= nl; l++) root.append(svg("text", { x: X(l), y: h - 10, "font-size": 11, "text-anchor": "middle" }, l));
  [ymin, 0.5, ymax].forEach((v) => root.append(svg("text", { x: ml - 4, y: Y(v) + 4, "font-size": 11, "text-anchor": "end" }, fmt(v, 1))));
  box.replaceChildren(el("div", { class: "caption" }, across ?
    "cosine across the two senses per layer (fixed 0–1 axis; lower = the contexts differ more)" :
    "separation per layer: within-sense minus between-sense cosine (fixed axis to 1; click a layer)"), root);
}

function drawPca(box, data, layer, slot) {
  const w = 360, h = 240, m = 14;
  const pts = data.layers[layer].pca;
  const span = (a) => [Math.min(...a), Math.max(...a) - Math.min(...a) || 1];
  const [x0, xw] = span(pts.map((p) => p[0])), [y0, yw] = span(pts.map((p) => p[1]));
  const root = figure(w, h, sid("pca-svg", slot));
  root.append(svg("rect", { x: 0.5, y: 0.5, width: w - 1, height: h - 1, fill: "none", stroke: "#d0d5dd" }));
  pts.forEach((p, i) => {
    const c = svg("circle", { class: "point", cx: m + ((w - 2 * m) * (p[0] - x0)) / xw,
      cy: h - m - ((h - 2 * m) * (p[1] - y0)) / yw, r: 5, fill: labelColor(data.labels, data.occurrences[i].label),
      "fill-opacity": 0.85, stroke: "#fff" });
    hoverable(c, (tip) => occurrenceLine(tip, data, i));
    root.append(c);
  });
  const ev = data.layers[layer].explained;
  root.append(svg("text", { x: 6, y: h - 4, "font-size": 11, fill: "#667085" },
    `PC1 ${(100 * ev[0]).toFixed(0)}%, PC2 ${(100 * ev[1]).toFixed(0)}% of variance`));
  box.replaceChildren(el("div", { class: "caption" }, "PCA of the occurrences at this layer, coloured by label"), root);
}

// The numbers of the layer under the slider, each beside what it is measured against.
function sensesSummary(data, layer) {
  const s = data.scores[layer];
  if (s.separation === null) return `layer ${layer}: cosine across the senses ${fmt(data.layers[layer].across)}`;
  let text = `layer ${layer}: separation ${fmt(s.separation)} (layer 0: ${fmt(data.scores[0].separation)}) · ` +
    `silhouette ${fmt(s.silhouette, 2)} · 2-means purity ${fmt(s.purity, 2)}`;
  if (data.position_purity !== null) text += ` (position only: ${fmt(data.position_purity, 2)}, one cluster: ${fmt(data.majority, 2)})`;
  return text;
}

function drawSensesColumn(data, col, slot) {
  const counts = Object.entries(data.counts).map(([k, v]) => `${k || "(no label)"} ${v}`).join(", ");
  const head = el("p", { class: "muted n" }, `n = ${data.occurrences.length} occurrences of “${data.target}” in ` +
    `${data.sentences.length} sentences (${counts})`);
  col.append(head);
  if (data.message) col.append(el("p", { class: "message" }, data.message));
  if (data.warning) col.append(el("p", { class: "warning" }, "⚠ " + data.warning));
  col.append(el("p", { class: "summary", id: sid("senses-summary", slot) }));
  const legend = el("div", { class: "legend", id: sid("senses-legend", slot) });
  legend.append(...data.labels.map((l) => {
    const item = el("span");
    item.append(el("i", { class: "swatch", style: `background:${labelColor(data.labels, l)}` }), l || "(no label)");
    return item;
  }));
  const figures = el("div", { class: "figures" });
  const heat = el("figure"), curve = el("figure");
  heat.append(el("figcaption", {}, "cosine of every pair of occurrences (fixed scale 0–1; hover a cell)"),
    el("div", { class: "heatmap", id: sid("senses-heatmap", slot) }));
  curve.append(el("div", { class: "curve", id: sid("senses-curve", slot) }), el("div", { class: "pca", id: sid("senses-pca", slot) }));
  figures.append(heat, curve);
  col.append(legend, figures);
  col.sensesData = data;
}

function drawSenses() {
  const cols = [...document.querySelectorAll("#senses-columns .column")].filter((c) => c.sensesData);
  if (!cols.length) return;
  const wanted = Number($("senses-layer").value);
  const top = Math.max(...cols.map((c) => c.sensesData.layers.length - 1));
  $("senses-layer-label").textContent = `layer ${wanted} of ${top}`;
  cols.forEach((col) => {
    const data = col.sensesData, slot = Number(col.dataset.slot);
    const layer = Math.min(wanted, data.layers.length - 1);
    $(sid("senses-summary", slot)).textContent = sensesSummary(data, layer) +
      (data.best_layer !== null ? ` · best separation: layer ${data.best_layer}` : "");
    drawHeatmap($(sid("senses-heatmap", slot)), data, layer, slot);
    drawCurve($(sid("senses-curve", slot)), data, layer, slot);
    drawPca($(sid("senses-pca", slot)), data, layer, slot);
  });
}

function drawSensesResult(data, col, slot) {
  const slider = $("senses-layer");
  if (slot === 0) {
    const fresh = !state.senses || state.senses.layers.length !== data.layers.length;
    state.senses = data;
    slider.max = data.layers.length - 1;
    if (fresh) slider.value = data.best_layer !== null ? data.best_layer : data.layers.length - 1;
  } else {
    slider.max = Math.max(Number(slider.max), data.layers.length - 1);
  }
  drawSensesColumn(data, col, slot);
}

// ------------------------------------------------------------------------------------------------ fill-mask
function drawFillMask(data, col, slot) {
  const filled = el("p", { class: "filled", id: sid("fm-filled", slot) });
  filled.append(el("span", { class: "muted" }, "top answers filled in: "), el("b", {}, data.filled));
  const tokens = el("div", { class: "token-row", id: sid("fm-tokens", slot) });
  data.tokens.forEach((t, i) => tokens.append(el("span", { class: "tok" + (data.mask_positions.includes(i) ? " blank" : "") }, t)));
  col.append(filled, el("div", { class: "caption" }, `the input as the model reads it (${data.tokens.length} tokens)`), tokens);
  if (data.warning) {
    const w = el("p", { class: "warning" }, "⚠ " + data.warning);
    if (data.switch) w.append(" ", switchButton(data.switch, slot));
    col.append(w);
  }
  data.masks.forEach((mask, j) => {
    const div = el("div", { class: "mask" });
    div.append(el("h3", {}, `blank ${j + 1} of ${data.masks.length}: top ${mask.candidates.length} (probability, 0–1)`));
    const list = el("ol", { class: "topk", id: sid(`fm-list-${j}`, slot) });
    mask.candidates.forEach((c) => {
      const li = el("li");
      li.append(el("b", { class: "token" }, c.token), el("span", { class: "bar", style: `width:${Math.max(1, 160 * c.prob)}px` }),
        el("span", { class: "prob" }, c.prob.toFixed(3)));
      list.append(li);
    });
    div.append(list);
    col.append(div);
  });
}

// ------------------------------------------------------------------------------------------------ neighbours
// The translation's rank per layer on a log axis (rank 1 at the top), with where a random ranking puts it.
function drawRankPlot(data, slot) {
  const w = 360, h = 150, ml = 44, mr = 10, mt = 10, mb = 26;
  const n = data.candidates, nl = data.layers.length - 1 || 1;
  const root = figure(w, h, sid("nb-rank-svg", slot));
  const X = (l) => ml + ((w - ml - mr) * l) / nl;
  const Y = (r) => mt + (h - mt - mb) * (Math.log(r) / Math.log(Math.max(n, 2)));
  [1, 10, 100, 1000].filter((r) => r <= n).concat([n]).forEach((r) => {
    root.append(svg("line", { x1: ml, x2: w - mr, y1: Y(r), y2: Y(r), stroke: "#eaecf0" }));
    root.append(svg("text", { x: ml - 4, y: Y(r) + 4, "font-size": 11, "text-anchor": "end" }, r));
  });
  if (data.chance_rank) {
    root.append(svg("line", { class: "chance", x1: ml, x2: w - mr, y1: Y(data.chance_rank), y2: Y(data.chance_rank),
      stroke: "#b42318", "stroke-dasharray": "5 3" }));
    root.append(svg("text", { x: w - mr, y: Y(data.chance_rank) - 4, "font-size": 11, "text-anchor": "end", fill: "#b42318" },
      `chance ≈ ${Math.round(data.chance_rank)}`));
  }
  const pts = data.layers.filter((l) => l.gold_rank !== null);
  if (pts.length) {
    root.append(svg("polyline", { fill: "none", stroke: "#1d2330", "stroke-width": 1.5,
      points: pts.map((l) => `${X(l.layer)},${Y(l.gold_rank)}`).join(" ") }));
    pts.forEach((l) => {
      const c = svg("circle", { class: "point", cx: X(l.layer), cy: Y(l.gold_rank), r: 3.5, fill: "#067647" });
      hoverable(c, (tip) => tip.append(el("div", {}, `layer ${l.layer}: rank ${l.gold_rank} of ${n}`)));
      root.append(c);
    });
  }
  data.layers.forEach((l) => root.append(svg("text", { x: X(l.layer), y: h - 8, "font-size": 11, "text-anchor": "middle" }, l.layer)));
  return root;
}

function drawNeighbours(data, col, slot) {
  const [src, tgt] = data.direction.split("-");
  const lang = { en: "English", zh: "Chinese" };
  const info = el("p", { class: "muted" });
  info.textContent = `“${data.query}”${data.query !== data.word ? " (converted from “" + data.word + "”)" : ""}: ` +
    `${lang[src]} → ${lang[tgt]}, its vector averaged over ${data.occurrences} Tatoeba occurrence(s), ranked ` +
    `against ${data.candidates} ${lang[tgt]} words. Dictionary: ` +
    (data.gold.length ? data.gold.join(", ") + (data.gold_ranked.length < data.gold.length ?
      ` (ranked here: ${data.gold_ranked.join(", ") || "none"})` : "") : "no MUSE entry");
  col.append(info);
  if (data.notice) {
    const n = el("p", { class: "warning" }, "⚠ " + data.notice);
    if (data.switch) n.append(" ", switchButton(data.switch, slot));
    col.append(n);
  }
  if (data.chance_rank) {
    const best = Math.min(...data.layers.filter((l) => l.gold_rank !== null).map((l) => l.gold_rank));
    col.append(el("p", { class: "summary" }, `best rank of the translation: ${best} of ${data.candidates} · a random ` +
      `ranking puts it at ≈ ${Math.round(data.chance_rank)} (reciprocal rank ${fmt(data.chance_mrr, 4)}; the alignment ` +
      `verdict asks for an MRR ≥ 3 × that over many words)`));
    const fig = el("figure");
    fig.append(el("figcaption", {}, "rank of the translation per layer (log axis, 1 at the top; dashed: chance)"), drawRankPlot(data, slot));
    col.append(fig);
  }
  const table = el("table", { id: sid("nb-table", slot) });
  const head = el("tr");
  ["layer", `rank (of ${data.candidates}${data.chance_rank ? "; chance ≈ " + Math.round(data.chance_rank) : ""})`,
    `nearest ${lang[tgt]} words (cosine)`].forEach((t) => head.append(el("th", {}, t)));
  table.append(head);
  data.layers.forEach((row) => {
    const tr = el("tr", { class: "nb-row" });
    tr.append(el("td", {}, row.layer), el("td", {}, row.gold_rank === null ? "–" : row.gold_rank));
    const td = el("td");
    row.neighbours.forEach((n) => td.append(el("span", { class: "chip-word" + (n.gold ? " gold" : "") },
      `${n.gold ? "★ " : ""}${n.word} ${n.cosine.toFixed(2)}`)));
    tr.append(td);
    table.append(tr);
  });
  const scroll = el("div", { class: "scroll" });
  scroll.append(table);
  col.append(scroll);
}

// ------------------------------------------------------------------------------------------------ language vector
function drawLangvec(data, col, slot) {
  const table = el("table", { class: "tokens", id: sid("lv-table", slot) });
  const rows = [["input tokens", data.tokens, null], ["decoded, no shift", data.before, null],
    [`decoded, α = ${data.alpha} at layer ${data.layer}`, data.after, data.before]];
  rows.forEach(([name, tokens, compare]) => {
    const tr = el("tr", { class: "lv-row" });
    tr.append(el("th", {}, name));
    tokens.forEach((t, i) => tr.append(el("td", compare && compare[i] !== t ? { class: "changed" } : {}, t)));
    table.append(tr);
  });
  const scroll = el("div", { class: "scroll" });
  scroll.append(table);
  const score = el("p", { class: "summary", id: sid("lv-precision", slot) });
  if (data.precision === null) {
    score.textContent = "precision: none of this sentence's words is both a single token and in the MUSE dictionary";
  } else {
    const beats = data.precision > Math.max(data.unshifted_precision, data.constant_precision);
    score.textContent = `precision ${fmt(data.precision, 2)} on ${data.scored.length} dictionary word(s) ` +
      `(translated: ${data.scored.filter((w) => w.hit).map((w) => w.word).join(", ") || "none"}) · baselines: ` +
      `no shift ${fmt(data.unshifted_precision, 2)}, the constant token “${data.constant_token}” ` +
      `${fmt(data.constant_precision, 2)} — ${beats ? "above both" : "not above both"} (one sentence: an ` +
      `illustration; the report's verdict scores many)`;
  }
  const note = el("p", { class: "muted" }, `‖mean zh − mean en‖ at layer ${data.layer} = ${data.distance.toFixed(2)} ` +
    `(means over ${data.mean_sentences} Tatoeba sentences per language); highlighted: tokens the shift changed.`);
  col.append(scroll, score, note);
}

// ------------------------------------------------------------------------------------------------ attention
// One small matrix per head (rows: the attending token), the target's rows outlined; a fixed 0..1 scale.
function headMatrix(map, rows, size, title, onClick) {
  const n = map.length, cell = size / n;
  const root = svg("svg", { viewBox: `0 0 ${size} ${size}`, width: size, height: size, class: "head" });
  map.forEach((row, i) => row.forEach((v, j) => {
    root.append(svg("rect", { x: j * cell, y: i * cell, width: cell + 0.2, height: cell + 0.2, fill: attnColor(v) }));
  }));
  rows.forEach((i) => root.append(svg("rect", { class: "target-row", x: 0.5, y: i * cell + 0.5, width: size - 1,
    height: cell - 1, fill: "none", stroke: "#d62728", "stroke-width": 1.5 })));
  root.append(svg("title", {}, title));
  if (onClick) { root.addEventListener("click", onClick); root.style.cursor = "pointer"; }
  return root;
}

function attentionDetail(box, res, layer, head) {
  const toks = res.tokens, n = toks.length, cell = Math.min(34, 300 / n), lw = 64;
  const map = res.attentions[layer][head];
  const root = figure(lw + n * cell + 70, lw + n * cell + 4, null);
  toks.forEach((t, i) => {
    root.append(svg("text", { x: lw - 4, y: lw + i * cell + cell / 2 + 4, "font-size": 12, "text-anchor": "end",
      "font-weight": res.target_positions.includes(i) ? 700 : 400 }, t));
    root.append(svg("text", { x: 0, y: 0, "font-size": 12, transform: `translate(${lw + i * cell + cell / 2 + 4},${lw - 4}) rotate(-60)` }, t));
  });
  map.forEach((row, i) => row.forEach((v, k) => {
    const r = svg("rect", { x: lw + k * cell, y: lw + i * cell, width: cell, height: cell, fill: attnColor(v) });
    hoverable(r, (tip) => tip.append(el("div", {}, `${toks[i]} → ${toks[k]}: ${fmt(v)} (layer ${layer + 1}, head ${head})`)));
    root.append(r);
  }));
  res.target_positions.forEach((i) => root.append(svg("rect", { x: lw, y: lw + i * cell, width: n * cell, height: cell,
    fill: "none", stroke: "#d62728", "stroke-width": 2 })));
  colourBar(root, lw + n * cell + 8, lw, n * cell, attnColor, "1", "0", "");
  box.replaceChildren(el("div", { class: "caption" }, `layer ${layer + 1}, head ${head}: row = the token attending, column = ` +
    `the token attended to (hover a cell)`), root);
}

// Per layer, the target's attention averaged over heads: the lecture's question in one table.
function targetTable(res) {
  const rows = res.target_positions;
  const table = el("table", { class: "attn-target" });
  const head = el("tr");
  head.append(el("th", {}, `layer: what “${res.target}” attends to (mean of ${res.heads} heads)`));
  res.tokens.forEach((t) => head.append(el("th", {}, t)));
  table.append(head);
  res.attentions.forEach((layer, l) => {
    const tr = el("tr");
    tr.append(el("th", {}, l + 1));
    res.tokens.forEach((_, k) => {
      let v = 0;
      layer.forEach((map) => rows.forEach((i) => { v += map[i][k]; }));
      v /= layer.length * rows.length;
      tr.append(el("td", { style: `background:${attnColor(v)};color:${v > 0.5 ? "#fff" : "#1d2330"}` }, v.toFixed(2)));
    });
    table.append(tr);
  });
  const scroll = el("div", { class: "scroll" });
  scroll.append(table);
  return scroll;
}

function drawAttention(data, col, slot) {
  data.maps.forEach((res, s) => {
    const block = el("div", { class: "attn-block", id: sid(`at-block-${s}`, slot) });
    block.append(el("h3", {}, `“${res.sentence}”: ${res.tokens.length} tokens, ${res.layers} layers × ${res.heads} heads`));
    if (res.warning) {
      const w = el("p", { class: "warning" }, "⚠ " + res.warning);
      if (res.switch) w.append(" ", switchButton(res.switch, slot));
      block.append(w);
    }
    if (res.target_positions.length) block.append(targetTable(res));
    const detail = el("div", { class: "attn-detail" });
    const grid = el("div", { class: "attn-grid", id: sid(`at-grid-${s}`, slot),
      style: `grid-template-columns: 2.2em repeat(${res.heads}, auto)` });
    grid.append(el("span", { class: "muted" }, ""));
    for (let h = 0; h < res.heads; h++) grid.append(el("span", { class: "muted axis" }, h));
    const size = Math.max(24, Math.min(44, 6 * res.tokens.length));
    res.attentions.forEach((layer, l) => {
      grid.append(el("span", { class: "muted axis" }, `L${l + 1}`));
      layer.forEach((map, h) => grid.append(headMatrix(map, res.target_positions, size, `layer ${l + 1}, head ${h}`,
        () => attentionDetail(detail, res, l, h))));
    });
    block.append(el("div", { class: "caption" }, "every layer (rows) × head (columns); white 0 → blue 1, fixed; the " +
      "target's row outlined in red; click a head to enlarge it"));
    const scroll = el("div", { class: "scroll" });
    scroll.append(grid);
    block.append(scroll, detail);
    attentionDetail(detail, res, res.layers - 1, 0);
    col.append(block);
  });
}

const DRAW = { senses: drawSensesResult, "fill-mask": drawFillMask, neighbours: drawNeighbours, langvec: drawLangvec,
  attention: drawAttention };

// ------------------------------------------------------------------------------------------------ URL state
// #VIEW?model=A&compare=B&<the view's inputs>: a reload or a shared link shows the same thing.
function writeUrl() {
  const params = new URLSearchParams();
  params.set("model", state.model);
  if (state.model2) params.set("compare", state.model2);
  Object.entries(INPUTS[state.active]).forEach(([key, id]) => params.set(key, $(id).value));
  history.replaceState(null, "", `#${state.active}?${params.toString()}`);
}

function readUrl() {
  const hash = location.hash.slice(1), q = hash.indexOf("?");
  const view = decodeURIComponent(q < 0 ? hash : hash.slice(0, q));
  return { view: VIEWS.includes(view) ? view : null, params: new URLSearchParams(q < 0 ? "" : hash.slice(q + 1)) };
}

function applyUrlInputs(view, params) {
  let any = false;
  Object.entries(INPUTS[view]).forEach(([key, id]) => {
    if (params.has(key)) { $(id).value = params.get(key); any = true; }
  });
  if (any) state.edited.add(view);
  updateSliderLabels();
}

// ------------------------------------------------------------------------------------------------ wiring
function showView(view, focus = false) {
  state.active = view;
  document.querySelectorAll("#tabs button").forEach((b) => {
    const on = b.dataset.view === view;
    b.setAttribute("aria-selected", String(on));
    b.tabIndex = on ? 0 : -1;
    if (on && focus) b.focus();
  });
  VIEWS.forEach((v) => { $("view-" + v).hidden = v !== view; });
  hideTooltip();
  if (state.stale.has(view)) run(view); else writeUrl();
}

function chips(view, list, apply) {
  const box = $(`${PREFIX[view]}-chips`);
  box.replaceChildren(el("span", { class: "muted" }, "examples:"), ...list.map((c) => {
    const b = el("button", { type: "button", class: "chip" }, c.label);
    b.addEventListener("click", () => { apply(c); state.edited.add(view); run(view); });
    return b;
  }));
}

async function fillExamples() {
  const ex = await api("/api/examples?model=" + encodeURIComponent(state.model));
  const set = (view, pairs) => { if (!state.edited.has(view)) pairs.forEach(([id, v]) => { $(id).value = v; }); };
  set("senses", [["senses-sentences", ex.senses.sentences], ["senses-target", ex.senses.target]]);
  set("fill-mask", [["fm-text", ex.fill_mask.text], ["fm-k", ex.fill_mask.k]]);
  set("neighbours", [["nb-word", ex.neighbours.word], ["nb-k", ex.neighbours.k]]);
  $("lv-layer").max = modelInfo(state.model).layers;
  set("langvec", [["lv-layer", ex.langvec.layer], ["lv-alpha", ex.langvec.alpha], ["lv-sentence", ex.langvec.sentence]]);
  set("attention", [["at-sentence", ex.attention.sentence], ["at-target", ex.attention.target]]);
  chips("senses", ex.senses.chips, (c) => { $("senses-sentences").value = c.sentences; $("senses-target").value = c.target; updateLabels(); });
  chips("fill-mask", ex.fill_mask.chips, (c) => { $("fm-text").value = c.text; });
  chips("neighbours", ex.neighbours.chips, (c) => { $("nb-word").value = c.word; });
  chips("langvec", ex.langvec.chips, (c) => { $("lv-sentence").value = c.sentence; });
  const pair = ex.attention.chips.slice(0, 2);
  chips("attention", [{ label: `${pair[0].sentence} vs ${pair[1].sentence}`, sentence: pair.map((c) => c.sentence).join("\n"),
    target: pair[0].target }, ...ex.attention.chips], (c) => { $("at-sentence").value = c.sentence; $("at-target").value = c.target; });
  updateSliderLabels();
  updateLabels();
}

function updateSliderLabels() {
  $("lv-layer-label").textContent = $("lv-layer").value;
  $("lv-alpha-label").textContent = $("lv-alpha").value;
}

// The label dropdown: the labels already in the box, and "apply" puts one in front of the line at the cursor.
function updateLabels() {
  const found = new Set(["fruit", "company"]);
  $("senses-sentences").value.split("\n").forEach((line) => {
    const m = line.match(/^([^\s:：\t]{1,24})(?::\s+|：\s*|\t)/);
    if (m) found.add(m[1]);
  });
  $("senses-labels").replaceChildren(...[...found].map((l) => el("option", { value: l })));
}

function applyLabel() {
  const box = $("senses-sentences"), label = $("senses-label").value.trim();
  const text = box.value, at = box.selectionStart;
  const start = text.lastIndexOf("\n", at - 1) + 1, endAt = text.indexOf("\n", at);
  const end = endAt < 0 ? text.length : endAt;
  const body = text.slice(start, end).replace(/^([^\s:：\t]{1,24})(?::\s+|：\s*|\t)/, "");
  const line = label ? `${label}: ${body}` : body;
  box.value = text.slice(0, start) + line + text.slice(end);
  box.selectionStart = box.selectionEnd = start + line.length;
  state.edited.add("senses");
  markStale("senses");
  updateLabels();
  box.focus();
}

// An input changed: the result no longer answers it (dimmed) and its error no longer applies (cleared).
function markStale(view) {
  clearError(view);
  $(`${PREFIX[view]}-result`).classList.add("stale");
}

function refreshModels() {
  api("/api/models").then((info) => { state.models = info.models; }).catch(() => {});
}

function describeModel() {
  const m = modelInfo(state.model);
  $("model-info").textContent = `${m.layers} layers · ${m.mlm ? "masked-LM head" : "no masked-LM head"} · ` +
    `${m.chinese ? "reads Chinese" : "reads little Chinese"} · ${m.description}`;
}

// A new model: every view's old answer and error is cleared at once (they were about the other model).
function clearAll() {
  VIEWS.forEach((v) => {
    state.stale.add(v);
    clearError(v);
    $(`${PREFIX[v]}-result`).hidden = true;
    $(`${PREFIX[v]}-notice`).hidden = true;
    setState(v, "idle");
  });
  state.senses = null;
  hideTooltip();
}

async function selectModel(name) {
  state.model = name;
  $("model").value = name;
  describeModel();
  clearAll();
  try {
    await fillExamples();
    $("global-error").hidden = true;
  } catch (err) {
    $("global-error").textContent = err.message; $("global-error").hidden = false;
  }
  run(state.active);
}

function selectModel2(name) {
  state.model2 = name || "";
  $("model2").value = state.model2;
  clearAll();
  run(state.active);
}

function wireKeyboard() {
  // ← → Home End move between tabs (the ARIA tabs pattern); Ctrl/Cmd+Enter runs the view from any input.
  $("tabs").addEventListener("keydown", (e) => {
    const i = VIEWS.indexOf(state.active);
    const to = { ArrowRight: i + 1, ArrowLeft: i - 1, Home: 0, End: VIEWS.length - 1 }[e.key];
    if (to === undefined) return;
    e.preventDefault();
    showView(VIEWS[(to + VIEWS.length) % VIEWS.length], true);
  });
  document.addEventListener("keydown", (e) => {
    if (e.key === "Enter" && (e.ctrlKey || e.metaKey) && e.target.closest && e.target.closest("form")) {
      e.preventDefault();
      e.target.closest("form").requestSubmit();
    }
  });
}

async function start() {
  const info = await api("/api/models");
  state.models = info.models;
  const limits = info.limits;
  $("fm-k").max = limits.max_k; $("nb-k").max = limits.max_k;
  $("lv-alpha").min = -limits.max_alpha; $("lv-alpha").max = limits.max_alpha;
  // A local directory is shown by its last two path parts (the full path is the tooltip).
  const shortName = (name) => (name.includes("/") ? name.replace(/\/+$/, "").split("/").slice(-2).join("/") : name);
  const options = () => info.models.map((m) => el("option", { value: m.name, title: m.name }, shortName(m.name)));
  $("model").replaceChildren(...options());
  $("model2").replaceChildren(el("option", { value: "" }, "none"), ...options());
  const url = readUrl();
  const known = (n) => info.models.some((m) => m.name === n);
  state.model = known(url.params.get("model")) ? url.params.get("model") : info.default;
  state.model2 = known(url.params.get("compare")) ? url.params.get("compare") : "";
  $("model").value = state.model; $("model2").value = state.model2;
  $("model").addEventListener("change", (e) => selectModel(e.target.value));
  $("model2").addEventListener("change", (e) => selectModel2(e.target.value));
  document.querySelectorAll("#tabs button").forEach((b) => b.addEventListener("click", () => showView(b.dataset.view)));
  Object.entries(PREFIX).forEach(([view, p]) => {
    $(`${p}-form`).addEventListener("submit", (e) => { e.preventDefault(); run(view); });
    $(`${p}-form`).addEventListener("input", (e) => {
      if (e.target.id === "senses-label") return;
      state.edited.add(view);
      if (!["lv-layer", "lv-alpha"].includes(e.target.id)) markStale(view);
    });
  });
  $("senses-layer").addEventListener("input", drawSenses);
  $("senses-sentences").addEventListener("input", updateLabels);
  $("senses-label-apply").addEventListener("click", applyLabel);
  $("senses-label").addEventListener("keydown", (e) => { if (e.key === "Enter") { e.preventDefault(); applyLabel(); } });
  wireKeyboard();
  let timer = null;  // the language-vector sliders rerun after a short pause
  ["lv-layer", "lv-alpha"].forEach((id) => $(id).addEventListener("input", () => {
    updateSliderLabels();
    clearTimeout(timer);
    timer = setTimeout(() => run("langvec"), 250);
  }));
  window.addEventListener("hashchange", () => {
    const u = readUrl();
    if (u.view && u.view !== state.active) { applyUrlInputs(u.view, u.params); state.stale.add(u.view); showView(u.view); }
  });
  state.active = url.view || "senses";
  describeModel();
  await fillExamples().catch((err) => { $("global-error").textContent = err.message; $("global-error").hidden = false; });
  if (url.view) applyUrlInputs(url.view, url.params);
  showView(state.active);
}

start().catch((err) => { $("global-error").textContent = "could not start: " + err.message; $("global-error").hidden = false; });
