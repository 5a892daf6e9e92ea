// Small helpers to build DOM nodes element by element: every string the
// farm sends (file names, messages, Blender's log) ends up as text, never
// parsed as markup.

/**
 * h builds an element. attrs keys: "class", "text", "on<event>" handlers,
 * "dataset" (an object), boolean attributes (true adds, false/null skips),
 * anything else becomes an attribute. Children may be nodes, strings,
 * numbers, arrays of those, or null/false to skip.
 */
export function h(tag, attrs = {}, ...children) {
  const el = document.createElement(tag);
  for (const [key, value] of Object.entries(attrs)) {
    if (value === null || value === undefined || value === false) continue;
    if (key === 'class') el.className = value;
    else if (key === 'text') el.textContent = value;
    else if (key === 'dataset') Object.assign(el.dataset, value);
    else if (key.startsWith('on') && typeof value === 'function') el.addEventListener(key.slice(2), value);
    else if (value === true) el.setAttribute(key, '');
    else el.setAttribute(key, String(value));
  }
  append(el, children);
  return el;
}

function append(el, children) {
  for (const child of children) {
    if (child === null || child === undefined || child === false) continue;
    if (Array.isArray(child)) append(el, child);
    else if (child instanceof Node) el.append(child);
    else el.append(String(child));
  }
}

/** replace swaps the children of el for the given ones. */
export function replace(el, ...children) {
  el.replaceChildren();
  append(el, children);
  return el;
}

/** setText changes text only when it differs, so live updates do not disturb
 * screen readers or text selection with needless mutations. */
export function setText(el, text) {
  const s = String(text);
  if (el.textContent !== s) el.textContent = s;
}

/** announce reads a short message to screen reader users. */
export function announce(message) {
  const live = document.getElementById('announcer');
  if (!live) return;
  live.textContent = '';
  // A fresh text node after a tick makes repeated messages be read again.
  setTimeout(() => { live.textContent = message; }, 50);
}

const svgNS = 'http://www.w3.org/2000/svg';

/** icon draws a stroked SVG path; icons are decoration, hidden from
 * screen readers, with the meaning carried by the text beside them. */
export function icon(d, size, className = 'icon', strokeWidth = 2) {
  const svg = document.createElementNS(svgNS, 'svg');
  svg.setAttribute('viewBox', '0 0 24 24');
  svg.setAttribute('width', String(size));
  svg.setAttribute('height', String(size));
  svg.setAttribute('aria-hidden', 'true');
  svg.setAttribute('class', className);
  const path = document.createElementNS(svgNS, 'path');
  path.setAttribute('d', d);
  path.setAttribute('fill', 'none');
  path.setAttribute('stroke', 'currentColor');
  path.setAttribute('stroke-width', String(strokeWidth));
  path.setAttribute('stroke-linecap', 'round');
  path.setAttribute('stroke-linejoin', 'round');
  svg.append(path);
  return svg;
}
