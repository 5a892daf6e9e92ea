// Pieces several views share: status badges, progress bars, callouts.

import { h, setText } from './dom.js';
import { statusLabel, statusTone } from './format.js';

export function statusBadge(status) {
  const badge = h('span', { class: 'badge' });
  updateStatusBadge(badge, status);
  return badge;
}

export function updateStatusBadge(badge, status) {
  badge.className = `badge badge-${statusTone(status)}`;
  badge.dataset.status = status;
  setText(badge, statusLabel(status));
}

/**
 * progressMeter is a <progress> with a text label; the label, not the bar,
 * carries the numbers, so it reads well without colour too.
 */
export function progressMeter(id) {
  const bar = h('progress', { max: '100', value: '0', id, 'aria-label': 'Progress' });
  const label = h('span', { class: 'meter-label' });
  const el = h('div', { class: 'meter' }, bar, label);
  return {
    el,
    update(percent, text) {
      const p = Math.max(0, Math.min(100, Number(percent) || 0));
      if (Number(bar.value) !== p) bar.value = p;
      bar.setAttribute('aria-valuetext', text);
      setText(label, text);
    },
    indeterminate(text) {
      bar.removeAttribute('value');
      bar.setAttribute('aria-valuetext', text);
      setText(label, text);
    },
  };
}

export function callout(tone, title, ...body) {
  return h('div', { class: `callout callout-${tone}` },
    title ? h('p', { class: 'callout-title', text: title }) : null,
    ...body);
}

export function spinner() {
  return h('span', { class: 'spinner', 'aria-hidden': 'true' });
}
