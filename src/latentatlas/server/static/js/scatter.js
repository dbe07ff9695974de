// A scatter plot for up to millions of points: WebGL draws the points straight from the projection's
// Float32Array (interleaved x, y: no copy), one byte per point picks its colour from a 256-entry lookup
// texture, and two 2-D canvases carry the axes (below) and the marks (selection, path, hover; above).
// Pan by dragging, zoom with the wheel around the cursor, double-click to reset. Hover and click find
// the nearest point through a uniform grid over the data (built once per point set, off the first-render
// path). Without WebGL (or with ?gl=0 in the URL) the points are rasterised into an ImageData instead.

const MARGIN = { l: 52, r: 10, t: 8, b: 34 };
const NAN_SLOT = 255;

const VS = `
attribute vec2 a_pos;
attribute float a_c;
uniform vec2 u_scale;
uniform vec2 u_offset;
uniform float u_size;
varying float v_c;
void main() {
  gl_Position = vec4(a_pos * u_scale + u_offset, 0.0, 1.0);
  gl_PointSize = u_size;
  v_c = a_c;
}`;
const FS = `
precision mediump float;
uniform sampler2D u_lut;
uniform float u_alpha;
uniform float u_round;
varying float v_c;
void main() {
  if (u_round > 0.5) { vec2 d = gl_PointCoord - 0.5; if (dot(d, d) > 0.25) discard; }
  vec4 c = texture2D(u_lut, vec2((v_c * 255.0 + 0.5) / 256.0, 0.5));
  gl_FragColor = vec4(c.rgb * u_alpha, u_alpha);
}`;

// Viridis at nine stops (matplotlib's table, every 32nd entry), interpolated to 255 entries.
const VIRIDIS = [[68, 1, 84], [71, 44, 122], [59, 81, 139], [44, 113, 142], [33, 144, 141],
  [39, 173, 129], [92, 200, 99], [170, 220, 50], [253, 231, 37]];

export function viridis(t) {
  const x = Math.min(1, Math.max(0, t)) * (VIRIDIS.length - 1);
  const i = Math.min(VIRIDIS.length - 2, Math.floor(x)), f = x - i;
  return VIRIDIS[i].map((a, k) => Math.round(a + f * (VIRIDIS[i + 1][k] - a)));
}

function hexRgb(hex) {
  const v = Number.parseInt(hex.slice(1), 16);
  return [(v >> 16) & 255, (v >> 8) & 255, v & 255];
}

function niceTicks(lo, hi, count) {
  const span = hi - lo;
  if (!(span > 0)) return [lo];
  const raw = span / count, mag = 10 ** Math.floor(Math.log10(raw));
  const step = [1, 2, 5, 10].map((m) => m * mag).find((s) => s >= raw);
  const out = [];
  for (let v = Math.ceil(lo / step) * step; v <= hi + 1e-9 * span; v += step) out.push(Math.abs(v) < step * 1e-9 ? 0 : v);
  return out;
}

function tickLabel(v, ticks) {
  const step = ticks.length > 1 ? Math.abs(ticks[1] - ticks[0]) : Math.abs(v) || 1;
  const digits = Math.max(0, -Math.floor(Math.log10(step)));
  return v.toFixed(Math.min(digits, 6));
}

export class Scatter {
  constructor(host, { onHover = () => {}, onClick = () => {}, onLasso = () => {}, useGL = true } = {}) {
    this.host = host;
    this.onHover = onHover;
    this.onClick = onClick;
    this.onLasso = onLasso;
    host.classList.add("scatter");
    host.innerHTML = "";
    this.back = document.createElement("canvas");
    this.plot = document.createElement("canvas");
    this.front = document.createElement("canvas");
    this.back.className = "scatter-back";
    this.plot.className = "scatter-points";
    this.front.className = "scatter-front";
    host.append(this.back, this.plot, this.front);
    this.gl = useGL ? this.plot.getContext("webgl", { antialias: false, premultipliedAlpha: true, preserveDrawingBuffer: true }) : null;
    this.ctx2d = this.gl ? null : this.plot.getContext("2d");
    this.renderer = this.gl ? "webgl" : "canvas2d";
    if (this.gl) this._initGL();
    this.n = 0;
    this.xy = null;
    this.colors = null;
    this.lut = new Uint8Array(256 * 4);
    this.marks = { selected: null, path: null, hover: null, neighbours: null, lasso: null, chosen: null, traversed: null };
    this.mask = null;
    this.labels = { x: "", y: "" };
    this.view = null;
    this.frames = [];
    this._wire();
    this._resize();
    new ResizeObserver(() => { this._resize(); this.draw(); }).observe(host);
  }

  // -- data ------------------------------------------------------------------------------------
  setPoints(xy, n) {
    this.xy = xy;
    this.n = n;
    let x0 = Infinity, x1 = -Infinity, y0 = Infinity, y1 = -Infinity;
    for (let i = 0; i < n; i++) {
      const x = xy[2 * i], y = xy[2 * i + 1];
      if (x < x0) x0 = x; if (x > x1) x1 = x;
      if (y < y0) y0 = y; if (y > y1) y1 = y;
    }
    if (!(x1 > x0)) { x0 -= 1; x1 += 1; }
    if (!(y1 > y0)) { y0 -= 1; y1 += 1; }
    const px = 0.04 * (x1 - x0), py = 0.04 * (y1 - y0);
    this.bounds = { x0: x0 - px, x1: x1 + px, y0: y0 - py, y1: y1 + py };
    this.view = { ...this.bounds };
    this.grid = null;
    if (this.gl) {
      const gl = this.gl;
      gl.bindBuffer(gl.ARRAY_BUFFER, this.posBuf);
      gl.bufferData(gl.ARRAY_BUFFER, xy.subarray(0, 2 * n), gl.STATIC_DRAW);
    }
    if (!this.colors || this.colors.length !== n) this.setColors(null);
    // the hover/click index is built after the first frame, not on its path
    clearTimeout(this._gridTimer);
    this._gridTimer = setTimeout(() => this._buildGrid(), 0);
  }

  // Colour by `values` (Float32Array, one per point). categorical: a sorted array of the distinct values,
  // each drawn in palette[i]; otherwise a continuous Viridis scale over [min, max]; no values: one colour.
  setColors(values, { categorical = null, palette = ["#2f6690"], single = "#2f6690" } = {}) {
    const n = this.n, bytes = new Uint8Array(n);
    const lut = this.lut;
    const put = (slot, rgb) => { lut.set([rgb[0], rgb[1], rgb[2], 255], 4 * slot); };
    for (let s = 0; s < 256; s++) put(s, [190, 190, 190]);
    this.range = null;
    if (!values) {
      put(0, hexRgb(single));
    } else if (categorical) {
      const slot = new Map(categorical.map((v, i) => [v, i]));
      categorical.forEach((_, i) => put(i, hexRgb(palette[i % palette.length])));
      for (let i = 0; i < n; i++) { const s = slot.get(values[i]); bytes[i] = s === undefined ? NAN_SLOT : s; }
    } else {
      let lo = Infinity, hi = -Infinity;
      for (let i = 0; i < n; i++) { const v = values[i]; if (v < lo) lo = v; if (v > hi) hi = v; }
      if (!(hi >= lo)) { lo = 0; hi = 1; }
      const k = hi > lo ? 254 / (hi - lo) : 0;
      for (let i = 0; i < n; i++) { const v = values[i]; bytes[i] = Number.isNaN(v) ? NAN_SLOT : Math.round((v - lo) * k); }
      for (let s = 0; s < 255; s++) put(s, viridis(s / 254));
      this.range = [lo, hi];
    }
    // a filter: the points it leaves out are drawn in the grey of missing values
    if (this.mask && this.mask.length === n) for (let i = 0; i < n; i++) if (!this.mask[i]) bytes[i] = NAN_SLOT;
    this.lastColors = { values, opts: { categorical, palette, single } };
    this.colors = bytes;
    if (this.gl) {
      const gl = this.gl;
      gl.bindBuffer(gl.ARRAY_BUFFER, this.colBuf);
      gl.bufferData(gl.ARRAY_BUFFER, bytes, gl.STATIC_DRAW);
      gl.bindTexture(gl.TEXTURE_2D, this.tex);
      gl.texImage2D(gl.TEXTURE_2D, 0, gl.RGBA, 256, 1, 0, gl.RGBA, gl.UNSIGNED_BYTE, lut);
    }
  }

  setMarks(marks) { Object.assign(this.marks, marks); }
  // keep only the points where mask[i] is 1 in colour (null: all); the colours are redrawn
  setMask(mask) {
    this.mask = mask;
    if (this.lastColors) this.setColors(this.lastColors.values, this.lastColors.opts);
  }
  // the rows whose points lie inside a polygon of data coordinates (even-odd rule)
  inside(poly) {
    const out = [];
    if (!this.xy || poly.length < 3) return out;
    let x0 = Infinity, x1 = -Infinity, y0 = Infinity, y1 = -Infinity;
    for (const [x, y] of poly) { x0 = Math.min(x0, x); x1 = Math.max(x1, x); y0 = Math.min(y0, y); y1 = Math.max(y1, y); }
    for (let i = 0; i < this.n; i++) {
      const px = this.xy[2 * i], py = this.xy[2 * i + 1];
      if (px < x0 || px > x1 || py < y0 || py > y1) continue;
      let hit = false;
      for (let a = 0, b = poly.length - 1; a < poly.length; b = a++) {
        const [ax, ay] = poly[a], [bx, by] = poly[b];
        if ((ay > py) !== (by > py) && px < ((bx - ax) * (py - ay)) / (by - ay) + ax) hit = !hit;
      }
      if (hit) out.push(i);
    }
    return out;
  }
  setLabels(x, y) { this.labels = { x, y }; }
  resetView() { if (this.bounds) { this.view = { ...this.bounds }; this.draw(); } }

  // -- geometry --------------------------------------------------------------------------------
  _plotBox() {
    const w = this.host.clientWidth, h = this.host.clientHeight;
    return { left: MARGIN.l, top: MARGIN.t, width: Math.max(10, w - MARGIN.l - MARGIN.r), height: Math.max(10, h - MARGIN.t - MARGIN.b) };
  }

  // data → CSS pixels relative to the host element
  toPx(x, y) {
    const b = this._plotBox(), v = this.view;
    return [b.left + (x - v.x0) / (v.x1 - v.x0) * b.width, b.top + (1 - (y - v.y0) / (v.y1 - v.y0)) * b.height];
  }

  fromPx(px, py) {
    const b = this._plotBox(), v = this.view;
    return [v.x0 + (px - b.left) / b.width * (v.x1 - v.x0), v.y0 + (1 - (py - b.top) / b.height) * (v.y1 - v.y0)];
  }

  // where point `row` is on screen (client coordinates), for tests and tools
  screenOf(row) {
    const r = this.host.getBoundingClientRect();
    const [px, py] = this.toPx(this.xy[2 * row], this.xy[2 * row + 1]);
    return { x: r.left + px, y: r.top + py };
  }

  _resize() {
    const dpr = window.devicePixelRatio || 1;
    const w = this.host.clientWidth, h = this.host.clientHeight, b = this._plotBox();
    this.dpr = dpr;
    for (const c of [this.back, this.front]) {
      c.width = Math.round(w * dpr); c.height = Math.round(h * dpr);
      c.style.width = `${w}px`; c.style.height = `${h}px`;
    }
    this.plot.width = Math.round(b.width * dpr); this.plot.height = Math.round(b.height * dpr);
    Object.assign(this.plot.style, { left: `${b.left}px`, top: `${b.top}px`, width: `${b.width}px`, height: `${b.height}px` });
  }

  // -- drawing ---------------------------------------------------------------------------------
  pointSize() {
    const n = this.n;
    const base = n > 200000 ? 2 : n > 20000 ? 3 : n > 2000 ? 4 : 6;
    // zoomed in, points grow a little so sparse regions stay readable
    const zoom = this.bounds ? Math.sqrt((this.bounds.x1 - this.bounds.x0) / (this.view.x1 - this.view.x0)) : 1;
    return Math.min(12, base * Math.max(1, Math.min(3, zoom)));
  }

  draw() {
    if (!this.view || !this.xy) return;
    const t0 = performance.now();
    this._drawAxes();
    if (this.gl) this._drawGL(); else this._draw2d();
    this._drawMarks();
    this.frames.push(performance.now() - t0);
    if (this.frames.length > 200) this.frames.shift();
  }

  // request a draw on the next animation frame (coalesces bursts of pan/zoom events)
  schedule() {
    if (this._raf) return;
    this._raf = requestAnimationFrame(() => { this._raf = null; this.draw(); });
  }

  _initGL() {
    const gl = this.gl;
    const shader = (type, src) => {
      const s = gl.createShader(type);
      gl.shaderSource(s, src);
      gl.compileShader(s);
      if (!gl.getShaderParameter(s, gl.COMPILE_STATUS)) throw new Error(gl.getShaderInfoLog(s));
      return s;
    };
    const prog = gl.createProgram();
    gl.attachShader(prog, shader(gl.VERTEX_SHADER, VS));
    gl.attachShader(prog, shader(gl.FRAGMENT_SHADER, FS));
    gl.linkProgram(prog);
    if (!gl.getProgramParameter(prog, gl.LINK_STATUS)) throw new Error(gl.getProgramInfoLog(prog));
    this.prog = prog;
    this.loc = {
      pos: gl.getAttribLocation(prog, "a_pos"), c: gl.getAttribLocation(prog, "a_c"),
      scale: gl.getUniformLocation(prog, "u_scale"), offset: gl.getUniformLocation(prog, "u_offset"),
      size: gl.getUniformLocation(prog, "u_size"), alpha: gl.getUniformLocation(prog, "u_alpha"),
      round: gl.getUniformLocation(prog, "u_round"), lut: gl.getUniformLocation(prog, "u_lut"),
    };
    this.posBuf = gl.createBuffer();
    this.colBuf = gl.createBuffer();
    this.tex = gl.createTexture();
    gl.bindTexture(gl.TEXTURE_2D, this.tex);
    for (const p of [gl.TEXTURE_MIN_FILTER, gl.TEXTURE_MAG_FILTER]) gl.texParameteri(gl.TEXTURE_2D, p, gl.NEAREST);
    for (const p of [gl.TEXTURE_WRAP_S, gl.TEXTURE_WRAP_T]) gl.texParameteri(gl.TEXTURE_2D, p, gl.CLAMP_TO_EDGE);
  }

  _alpha() { return this.n > 200000 ? 0.5 : this.n > 20000 ? 0.7 : 0.9; }

  _drawGL() {
    const gl = this.gl, v = this.view, L = this.loc;
    gl.viewport(0, 0, this.plot.width, this.plot.height);
    gl.clearColor(0, 0, 0, 0);
    gl.clear(gl.COLOR_BUFFER_BIT);
    gl.useProgram(this.prog);
    gl.enable(gl.BLEND);
    gl.blendFunc(gl.ONE, gl.ONE_MINUS_SRC_ALPHA);
    const sx = 2 / (v.x1 - v.x0), sy = 2 / (v.y1 - v.y0);
    gl.uniform2f(L.scale, sx, sy);
    gl.uniform2f(L.offset, -1 - v.x0 * sx, -1 - v.y0 * sy);
    const size = this.pointSize() * this.dpr;
    gl.uniform1f(L.size, size);
    gl.uniform1f(L.alpha, this._alpha());
    gl.uniform1f(L.round, size >= 4 ? 1 : 0);
    gl.activeTexture(gl.TEXTURE0);
    gl.bindTexture(gl.TEXTURE_2D, this.tex);
    gl.uniform1i(L.lut, 0);
    gl.bindBuffer(gl.ARRAY_BUFFER, this.posBuf);
    gl.enableVertexAttribArray(L.pos);
    gl.vertexAttribPointer(L.pos, 2, gl.FLOAT, false, 0, 0);
    gl.bindBuffer(gl.ARRAY_BUFFER, this.colBuf);
    gl.enableVertexAttribArray(L.c);
    gl.vertexAttribPointer(L.c, 1, gl.UNSIGNED_BYTE, true, 0, 0);
    gl.drawArrays(gl.POINTS, 0, this.n);
  }

  // The fallback: square points written into an ImageData, blended over white-transparent.
  _draw2d() {
    const c = this.plot, w = c.width, h = c.height, v = this.view;
    const img = this.ctx2d.createImageData(w, h), px = img.data;
    const s = Math.max(1, Math.round(this.pointSize() * this.dpr)), half = s >> 1;
    const a = this._alpha(), ia = 1 - a, lut = this.lut, xy = this.xy, col = this.colors;
    const kx = w / (v.x1 - v.x0), ky = h / (v.y1 - v.y0);
    for (let i = 0; i < this.n; i++) {
      const cx = Math.round((xy[2 * i] - v.x0) * kx) - half, cy = Math.round(h - (xy[2 * i + 1] - v.y0) * ky) - half;
      if (cx + s < 0 || cy + s < 0 || cx >= w || cy >= h) continue;
      const o = 4 * col[i];
      for (let yy = Math.max(0, cy); yy < Math.min(h, cy + s); yy++) {
        for (let xx = Math.max(0, cx); xx < Math.min(w, cx + s); xx++) {
          const p = 4 * (yy * w + xx);
          px[p] = px[p] * ia + lut[o] * a; px[p + 1] = px[p + 1] * ia + lut[o + 1] * a;
          px[p + 2] = px[p + 2] * ia + lut[o + 2] * a; px[p + 3] = px[p + 3] * ia + 255 * a;
        }
      }
    }
    this.ctx2d.putImageData(img, 0, 0);
  }

  _drawAxes() {
    const g = this.back.getContext("2d"), b = this._plotBox(), v = this.view, dpr = this.dpr;
    g.setTransform(dpr, 0, 0, dpr, 0, 0);
    g.clearRect(0, 0, this.host.clientWidth, this.host.clientHeight);
    g.fillStyle = "#fff";
    g.fillRect(b.left, b.top, b.width, b.height);
    g.font = "11px 'DejaVu Sans', sans-serif";
    g.fillStyle = "#6b7378";
    g.strokeStyle = "#eeeeee";
    g.lineWidth = 1;
    const xt = niceTicks(v.x0, v.x1, Math.max(2, Math.round(b.width / 90)));
    const yt = niceTicks(v.y0, v.y1, Math.max(2, Math.round(b.height / 60)));
    g.textAlign = "center"; g.textBaseline = "top";
    for (const t of xt) {
      const [x] = this.toPx(t, 0), xx = Math.round(x) + 0.5;
      g.beginPath(); g.moveTo(xx, b.top); g.lineTo(xx, b.top + b.height); g.stroke();
      g.fillText(tickLabel(t, xt), x, b.top + b.height + 4);
    }
    g.textAlign = "right"; g.textBaseline = "middle";
    for (const t of yt) {
      const [, y] = this.toPx(0, t), yy = Math.round(y) + 0.5;
      g.beginPath(); g.moveTo(b.left, yy); g.lineTo(b.left + b.width, yy); g.stroke();
      g.fillText(tickLabel(t, yt), b.left - 5, y);
    }
    g.strokeStyle = "#d5d3cc";
    g.strokeRect(b.left + 0.5, b.top + 0.5, b.width - 1, b.height - 1);
    g.fillStyle = "#1d2327";
    g.textAlign = "center"; g.textBaseline = "bottom";
    g.fillText(this.labels.x, b.left + b.width / 2, b.top + b.height + MARGIN.b);
    g.save();
    g.translate(12, b.top + b.height / 2);
    g.rotate(-Math.PI / 2);
    g.textBaseline = "middle";
    g.fillText(this.labels.y, 0, 0);
    g.restore();
  }

  drawMarks() { if (this.view && this.xy) this._drawMarks(); }

  _drawMarks() {
    const g = this.front.getContext("2d"), b = this._plotBox(), dpr = this.dpr, m = this.marks;
    g.setTransform(dpr, 0, 0, dpr, 0, 0);
    g.clearRect(0, 0, this.host.clientWidth, this.host.clientHeight);
    g.save();
    g.beginPath(); g.rect(b.left, b.top, b.width, b.height); g.clip();
    const at = (row) => this.toPx(this.xy[2 * row], this.xy[2 * row + 1]);
    const ok = (row) => Number.isInteger(row) && row >= 0 && row < this.n;
    if (m.path && m.path.length) {
      const pts = m.path.filter(ok).map(at);
      g.strokeStyle = "#b23a48"; g.lineWidth = 2;
      g.beginPath();
      pts.forEach(([x, y], i) => (i ? g.lineTo(x, y) : g.moveTo(x, y)));
      g.stroke();
      g.fillStyle = "#b23a48";
      for (const [x, y] of pts) { g.beginPath(); g.arc(x, y, 3.5, 0, 2 * Math.PI); g.fill(); }
    }
    const ring = (row, color, r, w) => {
      if (!ok(row)) return;
      const [x, y] = at(row);
      g.strokeStyle = "#fff"; g.lineWidth = w + 2;
      g.beginPath(); g.arc(x, y, r, 0, 2 * Math.PI); g.stroke();
      g.strokeStyle = color; g.lineWidth = w;
      g.beginPath(); g.arc(x, y, r, 0, 2 * Math.PI); g.stroke();
    };
    if (m.chosen && m.chosen.length) {
      // a lasso's rows (at most 5,000 drawn; the summary counts them all)
      g.fillStyle = "rgba(29,35,39,.85)";
      for (const row of m.chosen.slice(0, 5000)) { if (!ok(row)) continue; const [x, y] = at(row); g.fillRect(x - 1.5, y - 1.5, 3, 3); }
    }
    if (m.lasso && m.lasso.length > 1) {
      g.strokeStyle = "#1d2327"; g.lineWidth = 1.5; g.setLineDash([5, 4]);
      g.beginPath();
      m.lasso.forEach(([x, y], i) => { const [u, v] = this.toPx(x, y); i ? g.lineTo(u, v) : g.moveTo(u, v); });
      g.closePath(); g.stroke(); g.setLineDash([]);
    }
    for (const row of m.neighbours || []) ring(row, "#00798c", 5, 2);
    if (ok(m.traversed)) {
      ring(m.traversed, "#edae49", 8, 3);
      const [x, y] = at(m.traversed);
      g.font = "11px DejaVu Sans, sans-serif"; g.fillStyle = "#1d2327";
      const left = x + 150 > b.left + b.width;  // near the right edge the label goes to the left of the ring
      g.textAlign = left ? "right" : "left";
      g.fillText("traversal (nearest row)", left ? x - 11 : x + 11, y - 9);
      g.textAlign = "left";
    }
    ring(m.hover, "#1d2327", 6, 1.5);
    ring(m.selected, "#b23a48", 9, 2.5);
    g.restore();
  }

  // -- picking ---------------------------------------------------------------------------------
  // A uniform grid over the data bounds, points counting-sorted into cells: O(n) to build, and a
  // query looks only at the cells under the search radius.
  _buildGrid() {
    if (this.grid || !this.xy) return this.grid;
    const n = this.n, xy = this.xy, B = this.bounds;
    const side = Math.max(1, Math.min(1024, Math.round(Math.sqrt(n / 4))));
    const fx = side / (B.x1 - B.x0), fy = side / (B.y1 - B.y0);
    const cellOf = new Int32Array(n), start = new Int32Array(side * side + 1);
    for (let i = 0; i < n; i++) {
      const cx = Math.min(side - 1, Math.max(0, Math.floor((xy[2 * i] - B.x0) * fx)));
      const cy = Math.min(side - 1, Math.max(0, Math.floor((xy[2 * i + 1] - B.y0) * fy)));
      const c = cy * side + cx;
      cellOf[i] = c;
      start[c + 1]++;
    }
    for (let c = 0; c < side * side; c++) start[c + 1] += start[c];
    const fill = start.slice(0, side * side), items = new Int32Array(n);
    for (let i = 0; i < n; i++) items[fill[cellOf[i]]++] = i;
    this.grid = { side, fx, fy, start, items };
    return this.grid;
  }

  // the point nearest to host-relative pixel (px, py) within `radius` pixels, or null
  pick(px, py, radius = 8) {
    if (!this.xy || !this.n) return null;
    const G = this._buildGrid(), B = this.bounds, b = this._plotBox(), v = this.view;
    if (px < b.left || px > b.left + b.width || py < b.top || py > b.top + b.height) return null;
    const [qx, qy] = this.fromPx(px, py);
    const kx = b.width / (v.x1 - v.x0), ky = b.height / (v.y1 - v.y0);
    const rx = radius / kx, ry = radius / ky;
    const clamp = (c) => Math.min(G.side - 1, Math.max(0, c));
    const cx0 = clamp(Math.floor((qx - rx - B.x0) * G.fx)), cx1 = clamp(Math.floor((qx + rx - B.x0) * G.fx));
    const cy0 = clamp(Math.floor((qy - ry - B.y0) * G.fy)), cy1 = clamp(Math.floor((qy + ry - B.y0) * G.fy));
    let best = null, bestD = radius * radius;
    for (let cy = cy0; cy <= cy1; cy++) {
      for (let cx = cx0; cx <= cx1; cx++) {
        const c = cy * G.side + cx;
        for (let j = G.start[c]; j < G.start[c + 1]; j++) {
          const i = G.items[j];
          const dx = (this.xy[2 * i] - qx) * kx, dy = (this.xy[2 * i + 1] - qy) * ky;
          const d = dx * dx + dy * dy;
          if (d <= bestD) { bestD = d; best = i; }
        }
      }
    }
    return best;
  }

  // -- interaction -----------------------------------------------------------------------------
  _wire() {
    const f = this.front;
    const local = (ev) => { const r = this.host.getBoundingClientRect(); return [ev.clientX - r.left, ev.clientY - r.top]; };
    let drag = null;
    f.addEventListener("pointerdown", (ev) => {
      if (ev.button !== 0 || !this.view) return;
      f.setPointerCapture(ev.pointerId);
      drag = { at: local(ev), view: { ...this.view }, moved: false, lasso: ev.shiftKey ? [this.fromPx(...local(ev))] : null };
    });
    f.addEventListener("pointermove", (ev) => {
      const [px, py] = local(ev);
      if (drag && drag.lasso) {
        // shift-drag draws a lasso instead of panning
        drag.lasso.push(this.fromPx(px, py));
        drag.moved = true;
        this.marks.lasso = drag.lasso;
        this._drawMarks();
        return;
      }
      if (drag) {
        const dx = px - drag.at[0], dy = py - drag.at[1];
        if (!drag.moved && dx * dx + dy * dy < 16) return;
        drag.moved = true;
        const b = this._plotBox(), v0 = drag.view;
        const ux = (v0.x1 - v0.x0) / b.width, uy = (v0.y1 - v0.y0) / b.height;
        this.view = { x0: v0.x0 - dx * ux, x1: v0.x1 - dx * ux, y0: v0.y0 + dy * uy, y1: v0.y1 + dy * uy };
        this._hover(null, ev);
        this.schedule();
        return;
      }
      this._hover(this.pick(px, py), ev);
    });
    f.addEventListener("pointerup", (ev) => {
      const d = drag;
      drag = null;
      if (d && d.lasso) {
        if (d.lasso.length > 2) this.onLasso(this.inside(d.lasso), d.lasso);
        return;
      }
      if (d && !d.moved) {
        const [px, py] = local(ev);
        const row = this.pick(px, py);
        if (row !== null) this.onClick(row);
      }
    });
    f.addEventListener("pointerleave", (ev) => { if (!drag) this._hover(null, ev); });
    f.addEventListener("wheel", (ev) => {
      if (!this.view) return;
      ev.preventDefault();
      const [px, py] = local(ev);
      const [cx, cy] = this.fromPx(px, py), k = Math.exp(ev.deltaY * 0.0015), v = this.view;
      this.view = { x0: cx + (v.x0 - cx) * k, x1: cx + (v.x1 - cx) * k, y0: cy + (v.y0 - cy) * k, y1: cy + (v.y1 - cy) * k };
      this.schedule();
    }, { passive: false });
    f.addEventListener("dblclick", () => this.resetView());
  }

  _hover(row, ev) {
    if (row === this.marks.hover) { if (row !== null) this.onHover(row, ev); return; }
    this.marks.hover = row;
    this.onHover(row, ev);
    if (this.view) { this._drawMarks(); }
  }
}
