// The attention views' two DOM helpers: an element with properties and children, and a canvas sized for
// the screen's pixel ratio (drawn on in CSS pixels).
export const el = (tag, props = {}, ...kids) => { const e = Object.assign(document.createElement(tag), props); e.append(...kids); return e; };

export function canvas(parent, w, h, id) {
  const c = el("canvas", { id });
  const dpr = window.devicePixelRatio || 1;
  c.width = w * dpr; c.height = h * dpr; c.style.width = `${w}px`; c.style.height = `${h}px`;
  c.getContext("2d").setTransform(dpr, 0, 0, dpr, 0, 0);
  if (parent) parent.append(c);
  return c;
}
