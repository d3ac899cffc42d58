// bertology explorer: plain JavaScript, no build step. The server computes; this file draws SVG.
"use strict";

const $ = (id) => document.getElementById(id);
const SVG_NS = "http://www.w3.org/2000/svg";
const PALETTE = ["#1f77b4", "#d62728", "#2ca02c", "#ff7f0e", "#9467bd", "#8c564b", "#e377c2", "#17becf"];
const VIEWS = ["senses", "fill-mask", "neighbours", "langvec"];
// Which element shows an error about which input, per view (the server names the field).
const FIELDS = {
  senses: { sentences: "senses-sentences", target: "senses-target" },
  "fill-mask": { text: "fm-text", k: "fm-k" },
  neighbours: { word: "nb-word", k: "nb-k" },
  langvec: { sentence: "lv-sentence", layer: "lv-layer", alpha: "lv-alpha" },
};
const ERROR_BOX = { senses: "senses-error", "fill-mask": "fm-error", neighbours: "nb-error", langvec: "lv-error" };
const RESULT_BOX = { senses: "senses-result", "fill-mask": "fm-result", neighbours: "nb-result", langvec: "lv-result" };

const state = {
  models: [], model: null, active: "senses",
  seq: {}, stale: new Set(VIEWS), edited: new Set(), senses: null, fontChars: new Set(),
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
const fmt = (v, d = 3) => (v === null || v === undefined ? "–" : Number(v).toFixed(d));

async function api(path, body) {
  const init = body === undefined ? {} : {
    method: "POST", headers: { "content-type": "application/json" }, body: JSON.stringify(body) };
  const response = await fetch(path, init);
  let data;
  try { data = await response.json(); } catch (e) { data = { error: `HTTP ${response.status}` }; }
  if (!response.ok) {
    const err = new Error(data.error || `HTTP ${response.status}`);
    err.field = data.field; err.status = response.status;
    throw err;
  }
  return data;
}

function currentModel() { return state.models.find((m) => m.name === state.model) || {}; }

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

// ------------------------------------------------------------------------------------------------ running a view
function setState(view, s) { $("view-" + view).dataset.state = s; }

function clearError(view) {
  $(ERROR_BOX[view]).hidden = true;
  Object.values(FIELDS[view]).forEach((id) => $(id).removeAttribute("aria-invalid"));
}

function showError(view, err) {
  const box = $(ERROR_BOX[view]);
  box.textContent = err.message;
  box.hidden = false;
  const id = FIELDS[view][err.field];
  if (id) $(id).setAttribute("aria-invalid", "true");
  $(RESULT_BOX[view]).hidden = true;
}

async function run(view) {
  const my = (state.seq[view] = (state.seq[view] || 0) + 1);  // only the latest answer is drawn
  state.stale.delete(view);
  setState(view, "loading");
  try {
    const data = await RUNNERS[view]();
    if (my !== state.seq[view]) return;
    clearError(view);
    $(RESULT_BOX[view]).hidden = false;
    DRAW[view](data);
    setState(view, "ready");
  } catch (err) {
    if (my !== state.seq[view]) return;
    clearError(view);
    showError(view, err);
    setState(view, "error");
  }
  ensureCjkFont();
}

const RUNNERS = {
  senses: () => api("/api/senses", { model: state.model, sentences: $("senses-sentences").value,
    target: $("senses-target").value }),
  "fill-mask": () => api("/api/fill-mask", { model: state.model, text: $("fm-text").value, k: $("fm-k").value }),
  neighbours: () => api("/api/neighbours", { model: state.model, word: $("nb-word").value, k: $("nb-k").value }),
  langvec: () => api("/api/langvec", { model: state.model, sentence: $("lv-sentence").value,
    layer: $("lv-layer").value, alpha: $("lv-alpha").value }),
};

// ------------------------------------------------------------------------------------------------ senses
function labelColor(labels, label) {
  const i = labels.indexOf(label);
  return label === "" || i < 0 ? "#98a2b3" : PALETTE[i % PALETTE.length];
}

function sentenceHtml(node, sentence, start, end) {
  node.append(sentence.slice(0, start), el("mark", {}, sentence.slice(start, end)), sentence.slice(end));
}

function showTooltip(event, build) {
  const tip = $("tooltip");
  tip.replaceChildren();
  build(tip);
  tip.hidden = false;
  const x = Math.min(event.clientX + 14, window.innerWidth - tip.offsetWidth - 8);
  const y = Math.min(event.clientY + 14, window.innerHeight - tip.offsetHeight - 8);
  tip.style.left = x + "px"; tip.style.top = y + "px";
}
function hideTooltip() { $("tooltip").hidden = true; }

function occurrenceLine(tip, data, i) {
  const o = data.occurrences[i];
  const line = el("div", { class: "sentence" });
  line.append(el("b", {}, `#${i + 1}${o.label ? " (" + o.label + ")" : ""}: `));
  sentenceHtml(line, data.sentences[o.sentence], o.start, o.end);
  tip.append(line);
}

function heatColor(t) {  // t in [0, 1]: dark blue -> teal -> yellow (viridis-like)
  const stops = [[68, 1, 84], [59, 82, 139], [33, 145, 140], [94, 201, 98], [253, 231, 37]];
  const x = Math.max(0, Math.min(1, t)) * (stops.length - 1);
  const i = Math.min(Math.floor(x), stops.length - 2), f = x - i;
  const c = stops[i].map((a, k) => Math.round(a + (stops[i + 1][k] - a) * f));
  return `rgb(${c.join(",")})`;
}

function drawHeatmap(data, layer) {
  const m = data.layers[layer].similarity, n = m.length;
  const size = Math.min(440, Math.max(160, n * 18)), cell = size / n, pad = 8;
  let lo = 1;
  m.forEach((row, i) => row.forEach((v, j) => { if (i !== j) lo = Math.min(lo, v); }));
  if (!(lo < 1)) lo = 0;
  const root = svg("svg", { width: size + pad + 60, height: size + pad + 4, id: "heatmap-svg" });
  m.forEach((row, i) => {
    const label = data.occurrences[i].label;
    root.append(svg("rect", { x: 0, y: i * cell, width: pad - 2, height: cell, fill: labelColor(data.labels, label) }));
    row.forEach((v, j) => {
      const r = svg("rect", { class: "cell", x: pad + j * cell, y: i * cell, width: cell + 0.3, height: cell + 0.3,
        fill: heatColor((v - lo) / (1 - lo || 1)), "data-i": i, "data-j": j, "data-cos": v });
      r.addEventListener("mousemove", (e) => showTooltip(e, (tip) => {
        occurrenceLine(tip, data, i); occurrenceLine(tip, data, j);
        tip.append(el("div", {}, `cosine ${fmt(v)} at layer ${layer}`));
      }));
      r.addEventListener("mouseleave", hideTooltip);
      root.append(r);
    });
  });
  // colour scale
  const x0 = pad + size + 12;
  for (let k = 0; k < 20; k++) {
    root.append(svg("rect", { x: x0, y: (size * k) / 20, width: 10, height: size / 20 + 0.5, fill: heatColor(1 - k / 20) }));
  }
  root.append(svg("text", { x: x0 + 13, y: 10, "font-size": 10 }, "1"));
  root.append(svg("text", { x: x0 + 13, y: size, "font-size": 10 }, fmt(lo, 2)));
  $("senses-heatmap").replaceChildren(root);
}

function drawCurve(data, layer) {
  const w = 360, h = 150, ml = 36, mb = 24, mt = 8, mr = 8;
  const pts = data.scores.filter((s) => s.separation !== null);
  const root = svg("svg", { width: w, height: h, id: "curve-svg" });
  if (!pts.length) {
    root.append(svg("text", { x: 10, y: 40, "font-size": 12 }, "give the sentences two or more labels to see separation"));
    $("senses-curve").replaceChildren(root);
    return;
  }
  const nl = data.scores.length - 1 || 1;
  const ys = pts.map((s) => s.separation), ymax = Math.max(0.05, ...ys), ymin = Math.min(0, ...ys);
  const X = (l) => ml + ((w - ml - mr) * l) / nl, Y = (v) => mt + (h - mt - mb) * (1 - (v - ymin) / (ymax - ymin));
  root.append(svg("line", { x1: ml, x2: w - mr, y1: Y(0), y2: Y(0), stroke: "#d0d5dd" }));
  root.append(svg("line", { x1: X(layer), x2: X(layer), y1: mt, y2: h - mb, stroke: "#2f6fdf", "stroke-dasharray": "3 3" }));
  root.append(svg("polyline", { fill: "none", stroke: "#1d2330", "stroke-width": 1.5,
    points: pts.map((s) => `${X(s.layer)},${Y(s.separation)}`).join(" ") }));
  pts.forEach((s) => {
    const c = svg("circle", { class: "point", cx: X(s.layer), cy: Y(s.separation), r: s.layer === layer ? 5 : 3.5,
      fill: s.layer === data.best_layer ? "#d62728" : "#1d2330", style: "cursor:pointer" });
    c.addEventListener("click", () => { $("senses-layer").value = s.layer; drawSenses(); });
    c.addEventListener("mousemove", (e) => showTooltip(e, (tip) => tip.append(el("div", {},
      `layer ${s.layer}: separation ${fmt(s.separation)} (within ${fmt(s.within)}, between ${fmt(s.between)}), ` +
      `silhouette ${fmt(s.silhouette, 2)}, 2-means purity ${fmt(s.purity, 2)}`))));
    c.addEventListener("mouseleave", hideTooltip);
    root.append(c);
  });
  for (let l = 0; l <= nl; l++) root.append(svg("text", { x: X(l), y: h - 8, "font-size": 10, "text-anchor": "middle" }, l));
  [ymin, ymax].forEach((v) => root.append(svg("text", { x: ml - 4, y: Y(v) + 4, "font-size": 10, "text-anchor": "end" }, fmt(v, 2))));
  $("senses-curve").replaceChildren(root);
}

function drawPca(data, layer) {
  const w = 360, h = 260, m = 14;
  const pts = data.layers[layer].pca;
  const xs = pts.map((p) => p[0]), ys = pts.map((p) => p[1]);
  const span = (a) => [Math.min(...a), Math.max(...a) - Math.min(...a) || 1];
  const [x0, xw] = span(xs), [y0, yw] = span(ys);
  const root = svg("svg", { width: w, height: h, id: "pca-svg" });
  root.append(svg("rect", { x: 0.5, y: 0.5, width: w - 1, height: h - 1, fill: "none", stroke: "#d0d5dd" }));
  pts.forEach((p, i) => {
    const c = svg("circle", { class: "point", cx: m + ((w - 2 * m) * (p[0] - x0)) / xw,
      cy: h - m - ((h - 2 * m) * (p[1] - y0)) / yw, r: 5, fill: labelColor(data.labels, data.occurrences[i].label),
      "fill-opacity": 0.85, stroke: "#fff" });
    c.addEventListener("mousemove", (e) => showTooltip(e, (tip) => occurrenceLine(tip, data, i)));
    c.addEventListener("mouseleave", hideTooltip);
    root.append(c);
  });
  const ev = data.layers[layer].explained;
  root.append(svg("text", { x: 6, y: h - 4, "font-size": 10, fill: "#667085" },
    `PC1 ${(100 * ev[0]).toFixed(0)}%, PC2 ${(100 * ev[1]).toFixed(0)}% of variance`));
  $("senses-pca").replaceChildren(root);
}

function drawSenses() {
  const data = state.senses;
  if (!data) return;
  const layer = Number($("senses-layer").value);
  const s = data.scores[layer];
  $("senses-layer-label").textContent = `layer ${layer} of ${data.layers.length - 1}` +
    (data.best_layer !== null ? ` (best separation: layer ${data.best_layer})` : "");
  $("senses-summary").textContent = s.separation === null ? "" :
    `separation ${fmt(s.separation)} · silhouette ${fmt(s.silhouette, 2)} · 2-means purity ${fmt(s.purity, 2)}`;
  drawHeatmap(data, layer); drawCurve(data, layer); drawPca(data, layer);
}

function drawSensesResult(data) {
  const fresh = !state.senses || state.senses.layers.length !== data.layers.length;
  state.senses = data;
  const slider = $("senses-layer");
  slider.max = data.layers.length - 1;
  if (fresh) slider.value = data.best_layer !== null ? data.best_layer : data.layers.length - 1;
  const legend = $("senses-legend");
  legend.replaceChildren(...data.labels.map((l) => {
    const item = el("span");
    item.append(el("i", { class: "swatch", style: `background:${labelColor(data.labels, l)}` }), l || "(no label)");
    return item;
  }), el("span", { class: "muted" }, `${data.occurrences.length} occurrences of “${data.target}” in ` +
    `${data.sentences.length} sentences · ${data.model}`));
  drawSenses();
}

// ------------------------------------------------------------------------------------------------ other views
function drawFillMask(data) {
  const box = $("fm-result");
  box.replaceChildren();
  data.masks.forEach((mask, j) => {
    const div = el("div", { class: "mask" });
    div.append(el("h3", {}, `mask ${j + 1} of ${data.masks.length}`));
    const list = el("ol", { class: "topk", id: `fm-list-${j}` });
    mask.candidates.forEach((c) => {
      const li = el("li");
      li.append(el("b", { class: "token" }, c.token), el("span", { class: "bar", style: `width:${Math.max(1, 180 * c.prob)}px` }),
        el("span", { class: "prob" }, c.prob.toFixed(3)));
      list.append(li);
    });
    div.append(list);
    box.append(div);
  });
}

function drawNeighbours(data) {
  const box = $("nb-result");
  const [src, tgt] = data.direction.split("-");
  const lang = { en: "English", zh: "Chinese" };
  const info = el("p", { class: "muted" });
  info.textContent = `“${data.query}”${data.query !== data.word ? " (converted from “" + data.word + "”)" : ""}: ` +
    `${lang[src]} → ${lang[tgt]}, its vector averaged over ${data.occurrences} Tatoeba occurrence(s), ranked ` +
    `against ${data.candidates} ${lang[tgt]} words. Dictionary: ` +
    (data.gold.length ? data.gold.join(", ") + (data.gold_ranked.length < data.gold.length ?
      ` (ranked here: ${data.gold_ranked.join(", ") || "none, not readable by this model"})` : "") : "no MUSE entry");
  const table = el("table", { id: "nb-table" });
  const head = el("tr");
  ["layer", "rank of the translation", `nearest ${lang[tgt]} words (cosine)`].forEach((t) => head.append(el("th", {}, t)));
  table.append(head);
  data.layers.forEach((row) => {
    const tr = el("tr", { class: "nb-row" });
    tr.append(el("td", {}, row.layer), el("td", {}, row.gold_rank === null ? "–" : row.gold_rank));
    const td = el("td");
    row.neighbours.forEach((n) => td.append(el("span", { class: "chip" + (n.gold ? " gold" : "") },
      `${n.gold ? "★ " : ""}${n.word} ${n.cosine.toFixed(2)}`)));
    tr.append(td);
    table.append(tr);
  });
  box.replaceChildren(info, table);
}

function drawLangvec(data) {
  const box = $("lv-result");
  const table = el("table", { class: "tokens", id: "lv-table" });
  const rows = [["input tokens", data.tokens, null], ["decoded, no shift", data.before, null],
    [`decoded, α = ${data.alpha} at layer ${data.layer}`, data.after, data.before]];
  rows.forEach(([name, tokens, compare]) => {
    const tr = el("tr", { class: "lv-row" });
    tr.append(el("th", {}, name));
    tokens.forEach((t, i) => tr.append(el("td", compare && compare[i] !== t ? { class: "changed" } : {}, t)));
    table.append(tr);
  });
  const note = el("p", { class: "muted" }, `‖mean zh − mean en‖ at layer ${data.layer} = ${data.distance.toFixed(2)} ` +
    `(means over ${data.mean_sentences} Tatoeba sentences per language); highlighted: tokens the shift changed.`);
  box.replaceChildren(table, note);
}

const DRAW = { senses: drawSensesResult, "fill-mask": drawFillMask, neighbours: drawNeighbours, langvec: drawLangvec };

// ------------------------------------------------------------------------------------------------ wiring
function showView(view) {
  state.active = view;
  document.querySelectorAll("#tabs button").forEach((b) => b.setAttribute("aria-selected", String(b.dataset.view === view)));
  VIEWS.forEach((v) => { $("view-" + v).hidden = v !== view; });
  hideTooltip();
  if (state.stale.has(view)) run(view);
}

async function fillExamples() {
  const ex = await api("/api/examples?model=" + encodeURIComponent(state.model));
  const set = (view, pairs) => { if (!state.edited.has(view)) pairs.forEach(([id, v]) => { $(id).value = v; }); };
  set("senses", [["senses-sentences", ex.senses.sentences], ["senses-target", ex.senses.target]]);
  set("fill-mask", [["fm-text", ex.fill_mask.text], ["fm-k", ex.fill_mask.k]]);
  set("neighbours", [["nb-word", ex.neighbours.word], ["nb-k", ex.neighbours.k]]);
  const m = currentModel();
  $("lv-layer").max = m.layers;
  set("langvec", [["lv-layer", ex.langvec.layer], ["lv-alpha", ex.langvec.alpha], ["lv-sentence", ex.langvec.sentence]]);
  updateSliderLabels();
}

function updateSliderLabels() {
  $("lv-layer-label").textContent = $("lv-layer").value;
  $("lv-alpha-label").textContent = $("lv-alpha").value;
}

async function selectModel(name) {
  state.model = name;
  const m = currentModel();
  $("model-info").textContent = `${m.layers} layers · ${m.mlm ? "masked-LM head" : "no masked-LM head"} · ${m.description}`;
  VIEWS.forEach((v) => state.stale.add(v));
  state.senses = null;
  try {
    await fillExamples();
    $("global-error").hidden = true;
  } catch (err) {
    $("global-error").textContent = err.message; $("global-error").hidden = false;
  }
  run(state.active);
}

async function start() {
  const info = await api("/api/models");
  state.models = info.models;
  const limits = info.limits;
  $("fm-k").max = limits.max_k; $("nb-k").max = limits.max_k;
  $("lv-alpha").min = -limits.max_alpha; $("lv-alpha").max = limits.max_alpha;
  // A local directory is shown by its last two path parts (the full path is the tooltip).
  const shortName = (name) => (name.includes("/") ? name.replace(/\/+$/, "").split("/").slice(-2).join("/") : name);
  $("model").replaceChildren(...info.models.map((m) => el("option", { value: m.name, title: m.name }, shortName(m.name))));
  $("model").value = info.default;
  $("model").addEventListener("change", (e) => selectModel(e.target.value));
  document.querySelectorAll("#tabs button").forEach((b) => b.addEventListener("click", () => showView(b.dataset.view)));
  const forms = { senses: "senses-form", "fill-mask": "fm-form", neighbours: "nb-form", langvec: "lv-form" };
  Object.entries(forms).forEach(([view, id]) => {
    $(id).addEventListener("submit", (e) => { e.preventDefault(); run(view); });
    $(id).addEventListener("input", () => state.edited.add(view));
  });
  $("senses-layer").addEventListener("input", drawSenses);
  // The Tab key types the label separator in the sentence list.
  $("senses-sentences").addEventListener("keydown", (e) => {
    if (e.key !== "Tab" || e.shiftKey) return;
    e.preventDefault();
    const t = e.target, a = t.selectionStart;
    t.value = t.value.slice(0, a) + "\t" + t.value.slice(t.selectionEnd);
    t.selectionStart = t.selectionEnd = a + 1;
    state.edited.add("senses");
  });
  let timer = null;  // the language-vector sliders rerun on release of a short pause
  ["lv-layer", "lv-alpha"].forEach((id) => $(id).addEventListener("input", () => {
    updateSliderLabels();
    clearTimeout(timer);
    timer = setTimeout(() => run("langvec"), 250);
  }));
  await selectModel(info.default);
}

start().catch((err) => { $("global-error").textContent = "could not start: " + err.message; $("global-error").hidden = false; });
