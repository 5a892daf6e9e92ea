// Formatting for people: sizes, durations, times, and the words for job
// statuses.

const units = ['B', 'KB', 'MB', 'GB', 'TB'];

export function formatBytes(n) {
  if (!Number.isFinite(n) || n < 0) return '';
  let i = 0;
  let v = n;
  while (v >= 1000 && i < units.length - 1) {
    v /= 1000;
    i++;
  }
  return `${i === 0 ? v : v.toFixed(v < 10 ? 1 : 0)} ${units[i]}`;
}

export function formatSeconds(s) {
  if (!Number.isFinite(s)) return '';
  if (s < 1) return `${s.toFixed(2)} s`;
  if (s < 60) return `${s.toFixed(1)} s`;
  const m = Math.floor(s / 60);
  if (m < 60) return `${m} min ${Math.round(s % 60)} s`;
  return `${Math.floor(m / 60)} h ${m % 60} min`;
}

const dateTime = new Intl.DateTimeFormat(undefined, { dateStyle: 'medium', timeStyle: 'short' });
const relative = new Intl.RelativeTimeFormat(undefined, { numeric: 'auto' });

export function formatDateTime(iso) {
  const d = new Date(iso);
  return Number.isNaN(d.getTime()) ? '' : dateTime.format(d);
}

/** formatAgo says "3 minutes ago" for recent times and the date otherwise. */
export function formatAgo(iso, now = Date.now()) {
  const d = new Date(iso);
  if (Number.isNaN(d.getTime())) return '';
  const s = Math.round((d.getTime() - now) / 1000);
  if (Math.abs(s) < 45) return 'just now';
  if (Math.abs(s) < 3600) return relative.format(Math.round(s / 60), 'minute');
  if (Math.abs(s) < 86400) return relative.format(Math.round(s / 3600), 'hour');
  return formatDateTime(iso);
}

/** The statuses of the API, in the order a job goes through them. */
export const statuses = [
  'created', 'validating', 'validated', 'debugging', 'booting', 'rendering',
  'finalizing', 'completed', 'failed', 'canceled', 'suspended',
];

const statusWords = {
  created: 'Created',
  validating: 'Validating',
  validated: 'Ready to render',
  debugging: 'Debugging',
  booting: 'Starting',
  rendering: 'Rendering',
  finalizing: 'Finalizing',
  completed: 'Completed',
  failed: 'Failed',
  canceled: 'Canceled',
  suspended: 'Suspended',
};

export function statusLabel(status) {
  return statusWords[status] ?? status;
}

export const finalStatuses = new Set(['completed', 'failed', 'canceled']);

/** The tone decides a status badge's colour. */
export function statusTone(status) {
  switch (status) {
    case 'completed': return 'success';
    case 'failed': return 'danger';
    case 'canceled': return 'muted';
    case 'validated': return 'ready';
    case 'suspended': case 'debugging': return 'warning';
    case 'created': case 'validating': return 'info';
    default: return 'active';
  }
}

/** A short, stable id to show: the first block of the UUID. */
export function shortId(id) {
  return String(id).split('-')[0];
}
