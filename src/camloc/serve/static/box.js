// The paper's box rule, computed in the page from a raw map exactly as camloc computes it in
// Python (camloc.localize.predictions_for): the map is upsampled bilinearly (half-pixel centres,
// OpenCV's INTER_LINEAR in float32) to the image, or for an image longer than `cap` pixels to the
// image scaled to that longer side; thresholded (min-max: m > min + t (max - min); positive:
// m > t max) with the threshold rounded to float32; the bounding box of the largest 8-connected
// component is kept (ties: the component OpenCV labels first) and scaled back to the image.
"use strict";
(function (root) {
  const f = Math.fround;

  // Python's round(): halves go to the even neighbour.
  function pyRound(x) {
    const r = Math.round(x);
    return (r - x === 0.5 && r % 2 !== 0) ? r - 1 : r;
  }

  // camloc.boxes.box_grid: [w, h] on which boxes are found.
  function boxGrid(width, height, cap) {
    const long = Math.max(width, height);
    if (cap <= 0 || long <= cap) return [width, height];
    return [Math.max(1, pyRound(width * cap / long)), Math.max(1, pyRound(height * cap / long))];
  }

  // camloc.boxes.scale_box (from the grid to the image).
  function boxToOriginal(box, grid, width, height) {
    const [gw, gh] = grid;
    if (gw === width && gh === height) return box.slice();
    const sx = width / gw, sy = height / gh;
    const at = (v, top) => Math.min(top, Math.max(0, Math.floor(v + 0.5)));
    const x0 = at(box[0] * sx - 0.5, width - 1), y0 = at(box[1] * sy - 0.5, height - 1);
    const x1 = at((box[2] + 1) * sx - 0.5, width - 1), y1 = at((box[3] + 1) * sy - 0.5, height - 1);
    return [x0, y0, Math.max(x0, x1), Math.max(y0, y1)];
  }

  // Source index and weight of each output pixel along one axis (OpenCV's resize coefficients).
  function coeffs(dsize, ssize) {
    const scale = 1 / (dsize / ssize), idx = new Int32Array(dsize), alpha = new Float32Array(dsize);
    for (let d = 0; d < dsize; d++) {
      let fx = f((d + 0.5) * scale - 0.5);
      let sx = Math.floor(fx);
      fx = f(fx - sx);
      if (sx < 0) { fx = 0; sx = 0; }
      if (sx >= ssize - 1) { fx = 0; sx = ssize - 1; }
      idx[d] = sx; alpha[d] = fx;
    }
    return [idx, alpha];
  }

  // Bilinear resize of a (h, w) map (row-major array) to (H, W), float32.
  function upsample(data, h, w, H, W) {
    const out = new Float32Array(H * W);
    if (h === H && w === W) { for (let i = 0; i < H * W; i++) out[i] = f(data[i]); return out; }
    const [xi, xa] = coeffs(W, w), [yi, ya] = coeffs(H, h);
    const rows = new Map();
    const hrow = (r) => {
      if (rows.has(r)) return rows.get(r);
      const row = new Float32Array(W);
      for (let d = 0; d < W; d++) {
        const s = xi[d], s1 = Math.min(s + 1, w - 1), a = xa[d];
        row[d] = f(f(f(data[r * w + s]) * f(1 - a)) + f(f(data[r * w + s1]) * a));
      }
      rows.set(r, row);
      return row;
    };
    for (let y = 0; y < H; y++) {
      const s = yi[y], s1 = Math.min(s + 1, h - 1), b = ya[y], b0 = f(1 - b);
      const r0 = hrow(s), r1 = hrow(s1);
      for (let x = 0; x < W; x++) out[y * W + x] = f(f(r0[x] * b0) + f(r1[x] * b));
    }
    return out;
  }

  // camloc.readings.map_status: null for a usable map, else the reason.
  function mapStatus(data, norm) {
    if (!data.length) return "empty map";
    let lo = Infinity, hi = -Infinity;
    for (const v of data) {
      if (v === null || !Number.isFinite(v)) return "non-finite map";
      if (v < lo) lo = v;
      if (v > hi) hi = v;
    }
    if (norm === "positive") return hi > 0 ? null : "no positive evidence";
    return hi > lo ? null : "constant map";
  }

  // The mask m > threshold (see the header) of an upsampled map; null when it has no peak.
  function mask(up, threshold, norm) {
    let lo = Infinity, hi = -Infinity;
    for (let i = 0; i < up.length; i++) { const v = up[i]; if (v < lo) lo = v; if (v > hi) hi = v; }
    let cut;
    if (norm === "positive") { if (!(hi > 0)) return null; cut = f(threshold * hi); }
    else cut = f(lo + threshold * (hi - lo));
    const m = new Uint8Array(up.length);
    for (let i = 0; i < up.length; i++) m[i] = up[i] > cut ? 1 : 0;
    return m;
  }

  // Box [x0, y0, x1, y1] of the largest 8-connected component of a 0/1 mask, or null. On a tie in
  // area the component whose first 2x2 block (block rows of two pixel rows, scanned left to
  // right) comes first wins: the order in which OpenCV's block-based labelling numbers them.
  // Runs of each row are joined to the runs they touch in the row above (union-find on runs).
  function largestBox(m, H, W) {
    const rs = [], re = [], ry = [], parent = [];
    const find = (i) => { while (parent[i] !== i) { parent[i] = parent[parent[i]]; i = parent[i]; } return i; };
    let prevStart = 0, prevEnd = 0;
    for (let y = 0; y < H; y++) {
      const rowStart = rs.length, base = y * W;
      let x = 0, p = prevStart;
      while (x < W) {
        if (!m[base + x]) { x++; continue; }
        const a = x;
        while (x < W && m[base + x]) x++;
        const b = x - 1, id = rs.length;
        rs.push(a); re.push(b); ry.push(y); parent.push(id);
        while (p < prevEnd && re[p] < a - 1) p++;
        for (let k = p; k < prevEnd && rs[k] <= b + 1; k++) {
          const r1 = find(k), r2 = find(id);
          if (r1 !== r2) { if (r1 < r2) parent[r2] = r1; else parent[r1] = r2; }
        }
      }
      prevStart = rowStart; prevEnd = rs.length;
    }
    if (!rs.length) return null;
    const comps = new Map();
    for (let i = 0; i < rs.length; i++) {
      const r = find(i), key = (ry[i] >> 1) * W + (rs[i] >> 1);
      let c = comps.get(r);
      if (!c) { c = { area: 0, key, box: [rs[i], ry[i], re[i], ry[i]] }; comps.set(r, c); }
      c.area += re[i] - rs[i] + 1;
      if (key < c.key) c.key = key;
      const bx = c.box;
      if (rs[i] < bx[0]) bx[0] = rs[i];
      if (re[i] > bx[2]) bx[2] = re[i];
      if (ry[i] < bx[1]) bx[1] = ry[i];
      if (ry[i] > bx[3]) bx[3] = ry[i];
    }
    let best = null;
    for (const c of comps.values()) {
      if (!best || c.area > best.area || (c.area === best.area && c.key < best.key)) best = c;
    }
    return best.box;
  }

  // The last upsampling of each map object, so that a threshold slider only redoes the mask.
  const memo = new WeakMap();
  function upsampledOnce(map, H, W) {
    const hit = memo.get(map);
    if (hit && hit.H === H && hit.W === W) return hit.up;
    const up = upsample(map.data, map.shape[0], map.shape[1], H, W);
    memo.set(map, { H, W, up });
    return up;
  }

  // The prediction's box for a raw map {shape: [h, w], data}: {box, warning} as in the record.
  function boxFromMap(map, width, height, threshold, norm = "minmax", cap = 512) {
    const [h, w] = map.shape;
    const problem = mapStatus(map.data, norm);
    if (problem) return { box: null, warning: problem + ": no box" };
    const grid = boxGrid(width, height, cap);
    const up = upsampledOnce(map, grid[1], grid[0]);
    const m = mask(up, threshold, norm);
    const box = m && largestBox(m, grid[1], grid[0]);
    if (!box) return { box: [0, 0, width - 1, height - 1], warning: "map is flat at image resolution: box is the whole image" };
    return { box: boxToOriginal(box, grid, width, height), warning: null };
  }

  // The map upsampled to (H, W) and normalized to [0, 1] (min-max, or positive part over max).
  function normalized(map, H, W, norm = "minmax") {
    const [h, w] = map.shape;
    const out = new Float32Array(H * W);
    if (mapStatus(map.data, norm)) return out;
    const up = upsample(map.data, h, w, H, W);
    let lo = Infinity, hi = -Infinity;
    for (const v of up) { if (v < lo) lo = v; if (v > hi) hi = v; }
    for (let i = 0; i < up.length; i++) {
      out[i] = norm === "positive" ? Math.max(0, up[i]) / hi : (hi > lo ? (up[i] - lo) / (hi - lo) : 0);
    }
    return out;
  }

  const api = { pyRound, boxGrid, boxToOriginal, upsample, mapStatus, largestBox, boxFromMap, normalized };
  if (typeof module !== "undefined" && module.exports) module.exports = api;
  else root.camlocBox = api;
})(this);
