// camloc serve: the page. Talks to /api/models and /api/localize; boxes follow the threshold
// slider through box.js (the same rule as the server, no round trip).
"use strict";
const $ = (id) => document.getElementById(id);
const state = { info: null, file: null, result: null, image: null, current: 0, boxes: [] };

function setStatus(text, isError = false) {
  $("status").textContent = text;
  $("status").className = isError ? "error" : "";
}

async function init() {
  const info = await (await fetch("/api/models")).json();
  state.info = info;
  $("model").textContent = `${info.model} (${info.num_classes} classes, ${info.backend})`;
  for (const m of info.methods) {
    $("method").add(new Option(methodLabel(m), m));
    $("compare").add(new Option(methodLabel(m), m));
  }
  if (info.default_method) $("method").value = info.default_method;  // serve --method
  const list = $("classes");
  info.class_names.forEach((name, i) => { const o = document.createElement("option"); o.value = name; o.label = `${i}`; list.appendChild(o); });
  const samples = (await (await fetch("/api/samples")).json()).samples;
  for (const name of samples) {
    const b = document.createElement("button");
    b.type = "button"; b.textContent = name; b.dataset.sample = name;
    b.addEventListener("click", async () => {
      const blob = await (await fetch(`/api/samples/${encodeURIComponent(name)}`)).blob();
      useFile(new File([blob], name, { type: blob.type }));
    });
    $("samples").appendChild(b);
  }
  setStatus("Pick or drop an image.");
}

function methodLabel(m) {
  return { cam: "CAM", gradcam: "Grad-CAM", gradcampp: "Grad-CAM++", scorecam: "Score-CAM", sscam: "SS-CAM", iscam: "IS-CAM",
    ablationcam: "Ablation-CAM", xgradcam: "XGrad-CAM", hirescam: "HiResCAM", layercam: "Layer-CAM", eigencam: "Eigen-CAM" }[m] || m;
}

// Side by side: the top-1 map of each chosen method for the current photo (one request per method,
// the same /api/localize the main view uses), each over the photo with its box.
async function sideBySide() {
  const chosen = Array.from($("compare").selectedOptions).map((o) => o.value);
  const side = $("side");
  side.innerHTML = "";
  if (!state.file || !chosen.length) { setStatus("Pick an image and one or more methods.", true); return; }
  for (const m of chosen) {
    const form = new FormData();
    form.append("file", state.file, state.file.name);
    form.append("topk", "1");
    form.append("threshold", $("threshold").value);
    form.append("method", m);
    setStatus(`Side by side: ${m}…`);
    const fig = document.createElement("figure");
    fig.dataset.method = m;
    const cap = document.createElement("figcaption");
    side.appendChild(fig);
    let out;
    try {
      const resp = await fetch("/api/localize", { method: "POST", body: form });
      out = await resp.json();
      if (!resp.ok) { cap.textContent = `${methodLabel(m)}: ${out.error}`; fig.appendChild(cap); continue; }
    } catch (err) { cap.textContent = `${methodLabel(m)}: ${err}`; fig.appendChild(cap); continue; }
    const r = out.record, pred = r.predictions[0], map = out.maps[0];
    const img = state.image || await new Promise((ok) => { const i = new Image(); i.onload = () => ok(i); i.src = URL.createObjectURL(state.file); });
    const scale = Math.min(1, 320 / r.width), canvas = document.createElement("canvas");
    canvas.width = Math.round(r.width * scale); canvas.height = Math.round(r.height * scale);
    const ctx = canvas.getContext("2d");
    ctx.drawImage(img, 0, 0, canvas.width, canvas.height);
    ctx.globalAlpha = parseFloat($("opacity").value);
    ctx.drawImage(heatOf(map, pred.norm || "minmax", r), 0, 0, canvas.width, canvas.height);
    ctx.globalAlpha = 1;
    const { box } = camlocBox.boxFromMap(map, r.width, r.height, parseFloat($("threshold").value), pred.norm || "minmax", state.info.box_cap);
    if (box) {
      ctx.lineWidth = 2; ctx.strokeStyle = "#00ff44";
      ctx.strokeRect(box[0] * scale, box[1] * scale, (box[2] - box[0] + 1) * scale, (box[3] - box[1] + 1) * scale);
    }
    fig.dataset.box = JSON.stringify(box);
    cap.textContent = `${methodLabel(m)}: ${pred.label} ${pred.score.toFixed(2)}`;
    fig.appendChild(canvas); fig.appendChild(cap);
  }
  setStatus(`Side by side: ${chosen.length} methods.`);
  document.body.dataset.side = String(Date.now());
}

function useFile(file) { state.file = file; $("class").value = ""; request(); }

async function request(cls = null) {
  if (!state.file) return;
  const form = new FormData();
  form.append("file", state.file, state.file.name);
  form.append("topk", $("topk").value);
  form.append("threshold", $("threshold").value);
  form.append("method", $("method").value);
  if (cls !== null && cls !== "") form.append("class", cls);
  setStatus(`Localizing ${state.file.name}…`);
  let out;
  try {
    const resp = await fetch("/api/localize", { method: "POST", body: form });
    out = await resp.json();
    if (!resp.ok) { setStatus(`${resp.status}: ${out.error}`, true); return; }
  } catch (err) { setStatus(`request failed: ${err}`, true); return; }
  const url = URL.createObjectURL(state.file);
  const img = new Image();
  img.onload = () => {
    state.image = img; state.result = out;
    state.current = out.selected ? -1 : 0;
    renderPredictions(); draw();
    setStatus(`${out.record.image}: ${out.record.width}×${out.record.height}, ${out.method}`);
    $("download-json").disabled = false; $("download-png").disabled = false;
    document.body.dataset.ready = String(Date.now());
  };
  img.onerror = () => setStatus("the browser cannot display this image", true);
  img.src = url;
}

function entries() {
  const r = state.result, list = r.record.predictions.map((p, i) => ({ pred: p, map: r.maps[i], index: i }));
  if (r.selected) list.push({ pred: r.selected, map: r.selected_map, index: -1 });
  return list;
}

function renderPredictions() {
  const ol = $("predictions");
  ol.innerHTML = "";
  for (const e of entries()) {
    const li = document.createElement("li");
    li.dataset.index = e.index; li.dataset.class = e.pred.class_index;
    li.textContent = `${e.pred.rank}. ${e.pred.label} — ${e.pred.score.toFixed(3)}`;
    if (e.index === state.current) li.className = "selected";
    li.addEventListener("click", () => { state.current = e.index; renderPredictions(); draw(); });
    ol.appendChild(li);
  }
}

function currentEntry() { return entries().find((e) => e.index === state.current) || entries()[0]; }

// Boxes of every prediction at the slider's threshold (the downloaded record carries them).
function boxAt(entry) {
  const r = state.result.record;
  return camlocBox.boxFromMap(entry.map, r.width, r.height, parseFloat($("threshold").value),
    entry.pred.norm || "minmax", state.info.box_cap);
}

function jet(v) {
  const c = (x) => Math.max(0, Math.min(1, x));
  return [c(1.5 - Math.abs(4 * v - 3)), c(1.5 - Math.abs(4 * v - 2)), c(1.5 - Math.abs(4 * v - 1))].map((x) => Math.round(255 * x));
}

// The map in colour on a canvas of at most 512 pixels (drawn scaled over the image), made once per map.
const heats = new WeakMap();
function heatOf(map, normName, record = null) {
  if (heats.has(map)) return heats.get(map);
  const r = record || state.result.record, grid = camlocBox.boxGrid(r.width, r.height, Math.min(state.info.box_cap, 512));
  const norm = camlocBox.normalized(map, grid[1], grid[0], normName);
  const heat = document.createElement("canvas");
  heat.width = grid[0]; heat.height = grid[1];
  const hctx = heat.getContext("2d"), data = hctx.createImageData(grid[0], grid[1]);
  for (let i = 0; i < norm.length; i++) {
    const [R, G, B] = jet(norm[i]);
    data.data[4 * i] = R; data.data[4 * i + 1] = G; data.data[4 * i + 2] = B; data.data[4 * i + 3] = 255;
  }
  hctx.putImageData(data, 0, 0);
  heats.set(map, heat);
  return heat;
}

function draw() {
  if (!state.result) return;
  const r = state.result.record, e = currentEntry(), canvas = $("canvas"), ctx = canvas.getContext("2d");
  canvas.width = r.width; canvas.height = r.height;
  ctx.drawImage(state.image, 0, 0, r.width, r.height);
  ctx.globalAlpha = parseFloat($("opacity").value);
  ctx.imageSmoothingEnabled = true;
  ctx.drawImage(heatOf(e.map, e.pred.norm || "minmax"), 0, 0, r.width, r.height);
  ctx.globalAlpha = 1;
  const { box, warning } = boxAt(e);
  const label = `${e.pred.label} ${e.pred.score.toFixed(2)}`;
  if (box) {
    ctx.lineWidth = Math.max(2, Math.round(r.width / 200));
    ctx.strokeStyle = "#00ff44";
    ctx.strokeRect(box[0], box[1], box[2] - box[0] + 1, box[3] - box[1] + 1);
    ctx.font = `${Math.max(14, Math.round(r.width / 30))}px sans-serif`;
    const size = Math.max(14, Math.round(r.width / 30)), y = Math.max(box[1], size + 6);
    ctx.fillStyle = "rgba(0, 0, 0, 0.6)";
    ctx.fillRect(box[0], y - size - 4, ctx.measureText(label).width + 8, size + 8);
    ctx.fillStyle = "#00ff44";
    ctx.fillText(label, box[0] + 4, y);
  }
  $("box").textContent = `${label}: box ${box ? JSON.stringify(box) : "none"} at threshold ${parseFloat($("threshold").value).toFixed(2)}${warning ? " (" + warning + ")" : ""}`;
  $("box").dataset.box = JSON.stringify(box);
  $("box").dataset.label = e.pred.label;
}

// The record as camloc localize writes it, its boxes at the slider's threshold.
function currentRecord() {
  const rec = JSON.parse(JSON.stringify(state.result.record)), t = parseFloat($("threshold").value);
  rec.predictions.forEach((p, i) => {
    const { box, warning } = boxAt({ pred: p, map: state.result.maps[i] });
    p.box = box; p.threshold = t;
    if (warning) p.warning = warning; else delete p.warning;
  });
  return rec;
}

function save(blob, name) {
  const a = document.createElement("a");
  a.href = URL.createObjectURL(blob); a.download = name;
  document.body.appendChild(a); a.click(); a.remove();
}

function stem() { return (state.result.record.image || "image").replace(/\.[^.]*$/, ""); }

$("download-json").addEventListener("click", () =>
  save(new Blob([JSON.stringify(currentRecord(), null, 1)], { type: "application/json" }), `${stem()}_record.json`));
$("download-png").addEventListener("click", () => $("canvas").toBlob((b) => save(b, `${stem()}_overlay.png`), "image/png"));
$("threshold").addEventListener("input", () => { $("threshold-value").textContent = parseFloat($("threshold").value).toFixed(2); draw(); });
$("opacity").addEventListener("input", () => { $("opacity-value").textContent = parseFloat($("opacity").value).toFixed(2); draw(); });
$("method").addEventListener("change", () => request($("class").value));
$("compare-run").addEventListener("click", () => sideBySide());
$("topk").addEventListener("change", () => request($("class").value));
$("show-class").addEventListener("click", () => request($("class").value));
$("class").addEventListener("keydown", (ev) => { if (ev.key === "Enter") request($("class").value); });
$("file").addEventListener("change", () => { if ($("file").files.length) useFile($("file").files[0]); });
const drop = $("drop");
drop.addEventListener("dragover", (ev) => { ev.preventDefault(); drop.classList.add("over"); });
drop.addEventListener("dragleave", () => drop.classList.remove("over"));
drop.addEventListener("drop", (ev) => {
  ev.preventDefault(); drop.classList.remove("over");
  if (ev.dataTransfer.files.length) useFile(ev.dataTransfer.files[0]);
});
init().catch((err) => setStatus(`cannot reach the server: ${err}`, true));
