// The job list: every job of the workspace, newest first, a page at a
// time, with live progress for the jobs being rendered.

import { ApiError, isAbort } from '../api.js';
import { h, replace, setText } from '../dom.js';
import { finalStatuses, formatAgo, formatDateTime, shortId, statusLabel, statuses } from '../format.js';
import { poll } from '../poll.js';
import { progressMeter, statusBadge, updateStatusBadge } from '../parts.js';

const pageSize = 20;
const pollMs = 1500;

// Kept across visits of the list within the tab, so coming back from a
// job page shows the same filter and page.
const state = { status: '', page: 1 };

// A finished job's frame counts never change, so each is asked for once.
const finishedProgress = new Map();

export function jobsView(root, { api, signal, setConnection }) {
  document.title = 'Jobs · renderfarm';

  const filter = h('select', { id: 'status-filter', onchange: () => {
    state.status = filter.value;
    state.page = 1;
    poller.refresh();
  } },
  h('option', { value: '' }, 'All statuses'),
  statuses.map((s) => h('option', { value: s, selected: s === state.status }, statusLabel(s))));

  const summary = h('p', { class: 'muted', id: 'jobs-summary', role: 'status' });
  const tbody = h('tbody');
  const table = h('table', { class: 'jobs-table', id: 'jobs-table' },
    h('caption', { class: 'visually-hidden', text: 'Jobs, newest first' }),
    h('thead', {}, h('tr', {},
      h('th', { scope: 'col', text: 'File' }),
      h('th', { scope: 'col', text: 'Status' }),
      h('th', { scope: 'col', text: 'Progress' }),
      h('th', { scope: 'col', text: 'Created' }))),
    tbody);
  const empty = h('div', { class: 'empty', hidden: true });
  const error = h('p', { class: 'callout callout-error', role: 'alert', hidden: true });
  const prev = h('button', { type: 'button', class: 'button button-small', onclick: () => { state.page--; poller.refresh(); } }, 'Previous page');
  const next = h('button', { type: 'button', class: 'button button-small', onclick: () => { state.page++; poller.refresh(); } }, 'Next page');
  const pageInfo = h('span', { class: 'muted' });
  const pager = h('nav', { class: 'pager', 'aria-label': 'Pages of jobs', hidden: true }, prev, pageInfo, next);

  replace(root, h('div', { class: 'page', id: 'jobs-view' },
    h('div', { class: 'page-head' }, h('h1', { text: 'Jobs' })),
    h('div', { class: 'toolbar' },
      h('div', { class: 'field field-inline' }, h('label', { for: 'status-filter', text: 'Status' }), filter),
      summary),
    error,
    table,
    empty,
    pager));

  const rows = new Map(); // job id → row parts

  const poller = poll(async () => {
    const asked = { page: state.page, status: state.status };
    try {
      const [list, running] = await Promise.all([
        api.listJobs({ ...asked, pageSize }, signal),
        api.runningProgress(signal),
      ]);
      // The filter or page changed while this round was under way; the
      // next round, which refresh() asked for, answers the new question.
      if (asked.page !== state.page || asked.status !== state.status) return true;
      if (list.pagination.totalPages > 0 && state.page > list.pagination.totalPages) {
        state.page = list.pagination.totalPages;
        poller.refresh(); // ask at once for the last page that exists
        return true;
      }
      const live = new Map(running.map((p) => [p.jobId, p]));
      await fetchFinished(list.jobs);
      show(list, live);
      setConnection(null);
      error.hidden = true;
    } catch (err) {
      if (isAbort(err)) return false;
      setConnection(err);
      if (!(err instanceof ApiError && err.status === 0)) {
        error.textContent = err.message;
        error.hidden = false;
      }
    }
    return true;
  }, pollMs, signal);

  async function fetchFinished(jobs) {
    const wanted = jobs.filter((j) => finalStatuses.has(j.status) && j.finalConfig && !finishedProgress.has(j.id));
    await Promise.all(wanted.map(async (j) => {
      try {
        finishedProgress.set(j.id, await api.progressCounts(j.id, signal));
      } catch (err) {
        if (isAbort(err)) throw err;
      }
    }));
  }

  function show(list, live) {
    const { jobs, pagination } = list;
    const seen = new Set();
    let before = null;
    for (const job of jobs) {
      seen.add(job.id);
      let row = rows.get(job.id);
      if (!row) {
        row = makeRow(job);
        rows.set(job.id, row);
      }
      updateRow(row, job, live.get(job.id) ?? finishedProgress.get(job.id));
      // Move rows only when the order changed: moving a row that holds
      // focus would drop the focus.
      const want = before ? before.nextSibling : tbody.firstChild;
      if (want !== row.tr) tbody.insertBefore(row.tr, want);
      before = row.tr;
    }
    for (const [id, row] of rows) {
      if (!seen.has(id)) {
        row.tr.remove();
        rows.delete(id);
      }
    }

    table.hidden = jobs.length === 0;
    empty.hidden = jobs.length !== 0;
    if (jobs.length === 0) {
      replace(empty, state.status
        ? h('p', {}, `No ${statusLabel(state.status).toLowerCase()} jobs.`)
        : [h('p', { class: 'empty-title', text: 'No jobs yet' }),
          h('p', { class: 'muted', text: 'Upload a .blend file or a project .zip to render it on the farm.' }),
          h('a', { href: '#/new', class: 'button button-primary' }, 'New job')]);
    }
    const n = pagination.total;
    setText(summary, `${n} ${n === 1 ? 'job' : 'jobs'}${state.status ? ` ${statusLabel(state.status).toLowerCase()}` : ''}`);
    pager.hidden = pagination.totalPages <= 1;
    prev.disabled = pagination.page <= 1;
    next.disabled = pagination.page >= pagination.totalPages;
    setText(pageInfo, `Page ${pagination.page} of ${pagination.totalPages}`);
  }
}

function makeRow(job) {
  const name = job.sceneFile?.fileName || 'Untitled job';
  const link = h('a', { href: `#/jobs/${job.id}`, class: 'job-link' }, name);
  const badge = statusBadge(job.status);
  const meter = progressMeter();
  const frames = h('span', { class: 'muted' });
  const time = h('time', { datetime: job.createdAt, title: formatDateTime(job.createdAt) });
  const tr = h('tr', { dataset: { jobId: job.id } },
    h('td', { 'data-label': 'File' }, link, h('span', { class: 'job-id muted' }, `job ${shortId(job.id)}`)),
    h('td', { 'data-label': 'Status' }, badge),
    h('td', { 'data-label': 'Progress', class: 'progress-cell' }, meter.el, frames),
    h('td', { 'data-label': 'Created' }, time));
  return { tr, badge, meter, frames, time };
}

function updateRow(row, job, progress) {
  updateStatusBadge(row.badge, job.status);
  row.meter.el.dataset.tone = job.status;
  setText(row.time, formatAgo(job.createdAt));
  const total = progress?.framesTotal ?? job.finalConfig?.frameCount ?? 0;
  if (total === 0) {
    row.meter.el.hidden = true;
    setText(row.frames, job.status === 'validated' ? 'Not rendered yet' : '—');
    return;
  }
  row.meter.el.hidden = false;
  let done = progress?.framesCompleted;
  if (done === undefined && job.status === 'completed') done = total;
  if (done === undefined) {
    row.meter.update(0, `${total} frames`);
    setText(row.frames, '');
    return;
  }
  const pct = progress?.percentComplete ?? (100 * done) / total;
  row.meter.update(pct, `${done} / ${total} frames`);
  const failed = progress?.framesFailed ?? 0;
  setText(row.frames, failed > 0 ? `${failed} failed` : '');
}
