// The flow view's drawing helpers, pure functions of arrays: the view's coordinate frame, density contours
// (highest-density levels, marching squares), velocity arrows, and the layers they are painted into once
// per change of data so that a step of the time scrubber only copies them and draws the points.

export const PALETTE = ["#1f77b4", "#d62728", "#2ca02c", "#9467bd", "#ff7f0e", "#17becf", "#8c564b", "#e377c2", "#bcbd22", "#7f7f7f"];
export const MASS_LEVELS = [0.2, 0.4, 0.6, 0.8, 0.95];  // contours enclose these shares of the density on the view
export const FIELD_COLOURS = { model: "#1d3557", exact: "#2b8a3e", diff: "#c92a2a" };

// The frame: data bounds {x: [x0, x1], y: [y0, y1]} onto a square of `inner` CSS pixels, inset by `pads`
// ({left, top, right, bottom}) in a canvas of W × H.
export function frame(bounds, inner, pads) {
  const [x0, x1] = bounds.x, [y0, y1] = bounds.y, left = pads.left, top = pads.top;
  const sx = inner / (x1 - x0), sy = inner / (y1 - y0);
  return {
    inner, left, top, W: left + inner + pads.right, H: top + inner + pads.bottom, x0, x1, y0, y1,
    px: (x) => left + (x - x0) * sx,
    py: (y) => top + (y1 - y) * sy,
    toData: (X, Y) => [x0 + (X - left) / sx, y1 - (Y - top) / sy],
  };
}

// An offscreen canvas of the frame's size at the screen's pixel ratio, drawn on in CSS pixels.
export function layer(fr, dpr) {
  const c = document.createElement("canvas");
  c.width = Math.round(fr.W * dpr); c.height = Math.round(fr.H * dpr);
  const g = c.getContext("2d");
  g.setTransform(dpr, 0, 0, dpr, 0, 0);
  return c;
}

// A G × G image (row 0 at the bottom) stretched smoothly over the frame's square.
function stretch(g, fr, img, G) {
  const small = document.createElement("canvas");
  small.width = G; small.height = G;
  small.getContext("2d").putImageData(img, 0, 0);
  g.save();
  g.imageSmoothingEnabled = true;
  g.drawImage(small, fr.left, fr.top, fr.inner, fr.inner);
  g.restore();
}

// The log-density values at which the highest-density regions hold `masses` of the total on the grid.
export function massLevels(logp, masses = MASS_LEVELS) {
  let max = -Infinity;
  for (const v of logp) if (v > max) max = v;
  const p = Float64Array.from(logp, (v) => Math.exp(v - max)).sort().reverse();
  let total = 0;
  for (const v of p) total += v;
  const out = [];
  let cum = 0, k = 0;
  for (const m of masses) {
    while (k < p.length && cum < m * total) cum += p[k++];
    out.push(Math.log(Math.max(p[Math.max(k - 1, 0)], 1e-300)) + max);
  }
  return out;
}

// Marching squares over values at cell centres (G × G, row 0 at the bottom): line segments of the level
// set {v = level} in grid coordinates (column, row), as a flat array x0, y0, x1, y1, …
export function isoSegments(v, G, level) {
  const seg = [];
  const at = (i, j) => v[i * G + j];
  const cross = (a, b) => (level - a) / (b - a);
  for (let i = 0; i < G - 1; i++) {
    for (let j = 0; j < G - 1; j++) {
      const a = at(i, j), b = at(i, j + 1), c = at(i + 1, j + 1), d = at(i + 1, j);  // bl, br, tr, tl
      const code = (a > level ? 1 : 0) | (b > level ? 2 : 0) | (c > level ? 4 : 0) | (d > level ? 8 : 0);
      if (code === 0 || code === 15) continue;
      // edge points: bottom (a–b), right (b–c), top (d–c), left (a–d)
      const B = () => [j + cross(a, b), i], R = () => [j + 1, i + cross(b, c)];
      const T = () => [j + cross(d, c), i + 1], L = () => [j, i + cross(a, d)];
      const add = (p, q) => seg.push(p[0], p[1], q[0], q[1]);
      switch (code) {
        case 1: case 14: add(L(), B()); break;
        case 2: case 13: add(B(), R()); break;
        case 3: case 12: add(L(), R()); break;
        case 4: case 11: add(R(), T()); break;
        case 6: case 9: add(B(), T()); break;
        case 7: case 8: add(L(), T()); break;
        case 5: case 10: {  // a saddle: the cell's mean decides which corners join
          const high = (a + b + c + d) / 4 > level;
          if ((code === 5) === high) { add(L(), T()); add(B(), R()); } else { add(L(), B()); add(R(), T()); }
          break;
        }
        default: break;
      }
    }
  }
  return seg;
}

// The density layer: soft bands between the levels (a G × G image scaled up smoothly) and crisp iso-lines.
export function paintDensity(g, fr, logp, G, levels) {
  const img = new ImageData(G, G);
  for (let i = 0; i < G; i++) {
    for (let j = 0; j < G; j++) {
      const v = logp[i * G + j];
      let band = 0;
      for (const l of levels) if (v >= l) band++;
      const o = 4 * ((G - 1 - i) * G + j);  // image rows go down, grid rows go up
      img.data[o] = 74; img.data[o + 1] = 124; img.data[o + 2] = 89;
      img.data[o + 3] = Math.round(16 * band);
    }
  }
  stretch(g, fr, img, G);  // cell centres sit half a cell inside the bounds: the image spans the square
  const cell = fr.inner / G;
  const gx = (c) => fr.left + (c + 0.5) * cell, gy = (r) => fr.top + fr.inner - (r + 0.5) * cell;
  g.lineWidth = 1;
  levels.forEach((l, k) => {
    const s = isoSegments(logp, G, l);
    g.strokeStyle = `rgba(47, 88, 62, ${0.35 + 0.1 * k})`;
    g.beginPath();
    for (let q = 0; q < s.length; q += 4) { g.moveTo(gx(s[q]), gy(s[q + 1])); g.lineTo(gx(s[q + 2]), gy(s[q + 3])); }
    g.stroke();
  });
}

// The field layer: one arrow per block of `step` × `step` cells of a G × G field (the block's mean), its
// length |v|·`scale` pixels capped at 1.6 blocks, clipped to the square; with `shadeRef` > 0 (a
// difference), |v| / shadeRef shaded underneath in red (full at a difference as large as the reference).
export function paintArrows(g, fr, field, G, step, scale, colour, shadeRef = 0) {
  const cell = fr.inner / G, blocks = Math.floor(G / step), bs = cell * step;
  const off = (G - blocks * step) / 2 * cell;
  g.save();
  g.beginPath(); g.rect(fr.left, fr.top, fr.inner, fr.inner); g.clip();
  if (shadeRef > 0) {
    const img = new ImageData(G, G);
    for (let i = 0; i < G; i++) for (let j = 0; j < G; j++) {
      const k = i * G + j, m = Math.hypot(field[2 * k], field[2 * k + 1]) / shadeRef, o = 4 * ((G - 1 - i) * G + j);
      img.data[o] = 201; img.data[o + 1] = 42; img.data[o + 2] = 42; img.data[o + 3] = Math.round(90 * Math.min(1, m));
    }
    stretch(g, fr, img, G);
  }
  g.strokeStyle = colour; g.fillStyle = colour; g.lineWidth = 1.1; g.globalAlpha = 0.75;
  g.beginPath();
  const heads = [];
  for (let bi = 0; bi < blocks; bi++) {
    for (let bj = 0; bj < blocks; bj++) {
      let u = 0, w = 0;
      for (let a = 0; a < step; a++) for (let b = 0; b < step; b++) {
        const k = (bi * step + a) * G + bj * step + b;
        u += field[2 * k]; w += field[2 * k + 1];
      }
      u /= step * step; w /= step * step;
      const cx = fr.left + off + (bj + 0.5) * bs, cy = fr.top + fr.inner - off - (bi + 0.5) * bs;
      let len = Math.hypot(u, w) * scale;
      if (!(len > 0.4)) { g.moveTo(cx + 0.8, cy); g.arc(cx, cy, 0.8, 0, 2 * Math.PI); continue; }
      len = Math.min(len, 1.6 * bs);
      const n = Math.hypot(u, w), ux = u / n, uy = -w / n;  // screen y goes down
      const sx = cx - ux * len / 2, sy = cy - uy * len / 2, ex = cx + ux * len / 2, ey = cy + uy * len / 2;
      g.moveTo(sx, sy); g.lineTo(ex, ey);
      heads.push(ex, ey, ux, uy, Math.min(4, 0.35 * len + 1.5));
    }
  }
  g.stroke();
  g.beginPath();
  for (let q = 0; q < heads.length; q += 5) {
    const [ex, ey, ux, uy, h] = heads.slice(q, q + 5);
    g.moveTo(ex, ey);
    g.lineTo(ex - ux * h - uy * h * 0.55, ey - uy * h + ux * h * 0.55);
    g.lineTo(ex - ux * h + uy * h * 0.55, ey - uy * h - ux * h * 0.55);
    g.closePath();
  }
  g.fill();
  g.restore();
}

// The frame's box and ticks at whole numbers (every 2 when the view is wide).
export function paintAxes(g, fr) {
  g.strokeStyle = "#c9c5bb"; g.lineWidth = 1;
  g.strokeRect(fr.left + 0.5, fr.top + 0.5, fr.inner - 1, fr.inner - 1);
  g.fillStyle = "#8a8f94"; g.font = "10px ui-monospace, monospace";
  const span = fr.x1 - fr.x0, every = span > 40 ? Math.pow(10, Math.floor(Math.log10(span / 4))) : span > 10 ? 2 : 1;
  const bottom = fr.top + fr.inner;
  g.textAlign = "center"; g.textBaseline = "top";
  for (let v = Math.ceil(fr.x0 / every) * every; v <= fr.x1; v += every) {
    const X = fr.px(v);
    g.fillRect(Math.round(X), bottom, 1, 4);
    g.fillText(String(+v.toFixed(6)), X, bottom + 6);
  }
  g.textAlign = "right"; g.textBaseline = "middle";
  for (let v = Math.ceil(fr.y0 / every) * every; v <= fr.y1; v += every) {
    const Y = fr.py(v);
    g.fillRect(fr.left - 4, Math.round(Y), 4, 1);
    g.fillText(String(+v.toFixed(6)), fr.left - 6, Y);
  }
}

// The largest-but-robust speed of a field (its 95th percentile), to scale arrows by.
export function speedScale(field) {
  const n = field.length / 2, m = new Float32Array(n);
  for (let k = 0; k < n; k++) m[k] = Math.hypot(field[2 * k], field[2 * k + 1]);
  m.sort();
  return m[Math.min(n - 1, Math.floor(0.95 * n))] || 1;
}
