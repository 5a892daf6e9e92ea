// One job's page. What it shows follows the job's status: validation under
// way, the findings and the render form once validated, live progress and
// the frame grid while rendering, the downloads and the preview video when
// done, and the reason (with the end of Blender's log) when it failed.

import { ApiError, isAbort } from '../api.js';
import { announce, h, replace, setText } from '../dom.js';
import { blenderCard, denoiserName, engineName, facts, filesCard, sceneCard, warningsBlock } from '../analysis.js';
import { CompositeOutputs } from '../composites.js';
import { FrameGrid } from '../frames.js';
import { finalStatuses, formatAgo, formatBytes, formatDateTime, formatSeconds, statusLabel } from '../format.js';
import { callout, progressMeter, spinner, statusBadge, updateStatusBadge } from '../parts.js';
import { poll } from '../poll.js';
import { renderForm } from '../renderform.js';

const pollMs = 1500;
// Download URLs live an hour; a finished job's page refreshes them well
// before that so its links keep working.
const refreshLinksMs = 10 * 60 * 1000;
// A progress report lists every frame, about 77 bytes each: 7.7 MB a poll
// for a job of 100,000 frames; its downloads some 600 bytes a frame, each
// a URL the farm signs; and a grid of 100,000 tiles is more than a
// browser lays out at each poll. A job of more than manyFrames frames
// shows them pageFrames at a time: each poll asks for the counters and
// the frames of the page shown (frames=A-B, some 77 KB), and for the
// downloads of those frames when more of them are done. Below it, one
// full report a poll costs little and keeps every frame in sight.
const manyFrames = 2000;
const pageFrames = 1000;

const failureStages = {
  validation: 'while validating the file',
  render: 'while rendering',
  finalize: 'while making the zip and the preview video',
};

export function jobView(root, { api, signal, params, setConnection }) {
  const id = params[0];
  document.title = 'Job · renderfarm';

  const title = h('h1', { class: 'job-title', id: 'job-title', text: 'Loading the job…' });
  const badge = statusBadge('created');
  badge.hidden = true;
  const meta = h('p', { class: 'job-meta muted', id: 'job-meta' });
  const actions = h('div', { class: 'job-actions' });

  // Errors of the page's own requests; the job's state stays beside them.
  const problem = h('div', { id: 'job-problem', role: 'alert' });

  const sections = {
    status: h('div', { id: 'job-status' }),
    log: h('div', { id: 'job-log' }),
    setup: h('div', { id: 'job-setup' }),
    overview: h('div', { class: 'stack', id: 'job-overview' }),
    frames: h('div', { id: 'job-frames' }),
    composites: h('div', { id: 'job-composites' }),
    // After the frames, so that a phone shows the frames first; on a wide
    // screen the grid moves it up beside the progress.
    settings: h('div', { id: 'job-settings' }),
    details: h('div', { id: 'job-details' }),
  };

  replace(root, h('div', { class: 'page', id: 'job-view' },
    h('a', { href: '#/', class: 'back-link' }, h('span', { 'aria-hidden': 'true', text: '← ' }), 'All jobs'),
    h('div', { class: 'job-head' },
      h('div', { class: 'job-heading' }, title, badge),
      actions),
    meta,
    problem,
    h('div', { class: 'job-sections' }, Object.values(sections))));

  const grid = new FrameGrid();
  const composites = new CompositeOutputs();
  let lastStatus = '';
  let live = null; // the parts of the progress and downloads cards, once rendering started
  let logAsked = false;
  let focusProgress = false;

  // The downloads are asked for again only once more frames are done,
  // the status moved, or the links are refreshLinksMs old (a suspended
  // job, or frames that take hours, would otherwise keep links that
  // expire): each answer signs a URL for every file, which for a job of
  // thousands of frames is the costliest read of a poll.
  let lastDownloads = null;
  let downloadsOf = '';
  let downloadsAt = 0;
  // A large job's pages of frames, each [first, last] frame numbers, once
  // its settings are known ([] for a job shown whole), and the one shown.
  let pages = null;
  let pageIndex = 0;
  let pager = null; // its controls, once built
  let linksRound = 0; // keepLinksFresh's round under way
  let jobRanges = []; // the job's frame ranges, for "Go to frame"
  let goToFrame = null; // the frame asked for there, until its tile is in view

  const poller = poll(async () => {
    try {
      const job = await api.getJob(id, signal);
      let progress = null;
      let downloads = null;
      const shownPage = pageIndex;
      if (job.finalConfig) {
        pages ??= pagesOf(job.finalConfig);
        jobRanges = job.finalConfig.frameRanges ?? [];
        const page = pages[pageIndex];
        progress = page ? await api.progressOfFrames(id, page[0], page[1], signal) : await api.progress(id, signal);
        // A page's downloads are those of its frames: asked for again
        // once more of them are done (their count is what the report
        // lists), or the page changed.
        const stand = page ? `${job.status} ${page[0]}-${page[1]} ${completedOf(progress.frames)}` : `${job.status} ${progress.framesCompleted} ${job.updatedAt}`;
        if (stand !== downloadsOf || !lastDownloads || Date.now() - downloadsAt > refreshLinksMs) {
          lastDownloads = page ? await api.downloadsOfFrames(id, page[0], page[1], signal) : await api.downloads(id, signal);
          downloadsOf = stand;
          downloadsAt = Date.now();
        }
        downloads = lastDownloads;
      }
      // The user turned to another page meanwhile: what was read is of the
      // page left, and the poll that turning asked for comes right after.
      if (shownPage !== pageIndex) return true;
      show(job, progress, downloads);
      setConnection(null);
      replace(problem);
      if (job.status === 'failed' && !logAsked) {
        logAsked = true;
        await showLog();
      }
      if (finalStatuses.has(job.status)) {
        if (job.finalConfig) keepLinksFresh(progress);
        return false;
      }
    } catch (err) {
      if (isAbort(err)) return false;
      if (err instanceof ApiError && err.status === 404) {
        notFound(err);
        return false;
      }
      setConnection(err);
      if (!(err instanceof ApiError && err.status === 0)) showProblem(err, 'The job could not be loaded');
    }
    return true;
  }, pollMs, signal);

  // showPage turns the grid to page index of a large job's frames, and
  // asks for its frames and downloads at once.
  function showPage(index) {
    const next = Math.max(0, Math.min(pages.length - 1, index));
    if (next === pageIndex) return;
    pageIndex = next;
    goToFrame = null;
    setText(pager.said, '');
    // A round of keepLinksFresh under way signs the page left and would
    // draw its tiles into the new page's grid: it stops, and the poll
    // asked for here starts another once it read the new page.
    linksRound++;
    grid.reset();
    composites.reset();
    showPager();
    poller.refresh();
  }

  // buildPager makes the controls that turn a large job's pages of frames:
  // above the grid the first, previous, next and last page, and a frame to
  // go to; below it, the previous and next page, which bring the new
  // page's first frames into view. A turn from below the grid, or one
  // that disabled the control turning it (the first or last page
  // reached), moves the focus to the grid's heading, so that it is neither
  // left a thousand frames below nor lost.
  function buildPager() {
    const button = (id, text, label, to, toTop = false) => {
      const b = h('button', { type: 'button', class: 'button button-small', id, 'aria-label': label }, text);
      b.addEventListener('click', () => {
        showPage(to());
        if (toTop) document.getElementById('frames-section')?.scrollIntoView();
        if (toTop || b.disabled) {
          const heading = document.getElementById('frames-title');
          heading.tabIndex = -1;
          heading.focus({ preventScroll: toTop });
        }
      });
      return b;
    };
    const frame = h('input', { type: 'number', id: 'frame-page-go', min: '0', step: '1', inputmode: 'numeric' });
    const said = h('span', { class: 'muted', id: 'frame-page-said', role: 'status' });
    const form = h('form', { class: 'frame-pager-go' },
      h('label', { for: 'frame-page-go', text: 'Go to frame' }), frame,
      h('button', { type: 'submit', class: 'button button-small', id: 'frame-page-show' }, 'Show'), said);
    form.addEventListener('submit', (e) => {
      e.preventDefault();
      const n = Number(frame.value);
      if (frame.value === '' || !Number.isInteger(n)) return;
      showFrame(n);
    });
    const label = h('span', { class: 'frame-page', id: 'frame-page', 'aria-live': 'polite' });
    const controls = {
      first: button('frame-page-first', '«', 'First page of frames', () => 0),
      previous: button('frame-page-previous', '‹ Previous', 'Previous page of frames', () => pageIndex - 1),
      next: button('frame-page-next', 'Next ›', 'Next page of frames', () => pageIndex + 1),
      last: button('frame-page-last', '»', 'Last page of frames', () => pages.length - 1),
    };
    const nav = h('nav', { class: 'frame-pager', id: 'frame-pager', 'aria-label': 'Pages of frames' },
      controls.first, controls.previous, label, controls.next, controls.last, form);
    const endLabel = h('span', { class: 'frame-page' });
    const end = {
      previous: button('frame-page-previous-end', '‹ Previous', 'Previous page of frames', () => pageIndex - 1, true),
      next: button('frame-page-next-end', 'Next ›', 'Next page of frames', () => pageIndex + 1, true),
    };
    const endNav = h('nav', { class: 'frame-pager frame-pager-end', 'aria-label': 'Pages of frames, after them' },
      end.previous, endLabel, end.next);
    return { nav, label, said, endNav, endLabel, end, ...controls };
  }

  // showFrame turns a large job's grid to the page holding frame n, or
  // the one it would fall in between the job's frames, and brings its
  // tile into view once drawn ("Go to frame", the scout frames' links).
  function showFrame(n) {
    const at = pages.findIndex(([, last]) => n <= last);
    const inJob = hasFrame(jobRanges, n);
    showPage(at < 0 ? pages.length - 1 : at);
    setText(pager.said, inJob ? '' : `Frame ${n} is not one of this job’s frames; these are the nearest.`);
    goToFrame = inJob ? n : null;
    showFrameAskedFor();
  }

  // showFrameAskedFor brings the tile of the frame showFrame asked for
  // into view, and the focus onto it, once the grid shows it.
  function showFrameAskedFor() {
    const tile = goToFrame === null ? null : grid.tiles.get(goToFrame);
    if (!tile) return;
    goToFrame = null;
    tile.li.tabIndex = -1;
    tile.li.scrollIntoView({ block: 'center' });
    tile.li.focus({ preventScroll: true });
  }

  function showPager() {
    if (!pager) return;
    const [first, last] = pages[pageIndex];
    const says = `Frames ${first.toLocaleString('en-US')}–${last.toLocaleString('en-US')} · page ${pageIndex + 1} of ${pages.length}`;
    setText(pager.label, says);
    setText(pager.endLabel, says);
    pager.first.disabled = pager.previous.disabled = pager.end.previous.disabled = pageIndex === 0;
    pager.next.disabled = pager.last.disabled = pager.end.next.disabled = pageIndex === pages.length - 1;
  }

  function show(job, progress, downloads) {
    const name = job.sceneFile?.fileName || 'Untitled job';
    setText(title, name);
    badge.hidden = false;
    updateStatusBadge(badge, job.status);
    document.title = `${name} · ${statusLabel(job.status)} · renderfarm`;
    showMeta(job);

    if (job.status !== lastStatus) {
      if (lastStatus) announce(`Job ${statusLabel(job.status).toLowerCase()}.`);
      lastStatus = job.status;
      replace(sections.status, statusCallout(job, progress));
      showActions(job);
      if (job.status === 'validated' && job.analysis) showSetup(job);
      else replace(sections.setup);
      if (job.analysis && job.status !== 'validated') showDetails(job);
    }
    if (job.finalConfig) showLive(job, progress, downloads);
  }

  function showProblem(err, title = 'The farm refused') {
    replace(problem, callout('error', title, h('p', { text: err.message })));
  }

  let created = null; // the <time> in the meta line, once built
  function showMeta(job) {
    if (!created) {
      const f = job.sceneFile;
      created = h('time', { datetime: job.createdAt, title: formatDateTime(job.createdAt) });
      replace(meta,
        f ? `${f.fileType === 'zip' ? 'Project .zip' : '.blend file'} · ${formatBytes(f.sizeBytes)} · ` : '',
        'created ', created, ' · job ', h('code', { class: 'job-id', text: job.id }));
    }
    setText(created, formatAgo(job.createdAt));
  }

  function statusCallout(job, progress) {
    switch (job.status) {
      case 'created':
        return callout('info', 'Not validated yet',
          h('p', { text: 'The farm inspects the file before rendering it.' }),
          h('button', { type: 'button', class: 'button button-primary', onclick: (e) => validateNow(e.currentTarget) }, 'Validate now'));
      case 'validating':
        return callout('info', null, h('p', { class: 'with-spinner' }, spinner(),
          h('span', {}, h('strong', { text: 'Validating. ' }), 'Blender is opening the file to read its scenes, settings and the files it uses…')));
      case 'validated':
        return null;
      case 'failed': {
        const r = job.failedReason;
        return h('div', { class: 'callout callout-error', id: 'failed-reason', role: 'alert' },
          h('p', { class: 'callout-title' }, `Failed ${failureStages[r?.type] ?? ''}`.trim()),
          // name is a stable code on this farm, a short title on others.
          r?.name ? h('p', {}, /^[A-Z][A-Z0-9_]*$/.test(r.name)
            ? h('code', { class: 'failure-name', text: r.name })
            : h('strong', { text: r.name })) : null,
          h('p', { text: r?.message || 'The farm gave no reason.' }),
          r?.type === 'validation' ? h('a', { href: '#/new', class: 'button button-small' }, 'Upload another file') : null);
      }
      case 'canceled':
        return callout('muted', 'Canceled',
          h('p', { text: job.finalConfig ? 'Frames that finished before the cancel can still be downloaded below.' : 'The job was canceled before it rendered.' }));
      case 'completed': {
        const n = progress?.framesCompleted ?? job.finalConfig?.frameCount ?? 0;
        return callout('success', 'Completed',
          h('p', { text: `${n} ${n === 1 ? 'frame' : 'frames'} rendered, ${formatSeconds(job.normalizedSeconds)} of render time.` }));
      }
      case 'suspended':
        return suspendedCallout(job, progress);
      case 'debugging':
        return callout('warning', statusLabel(job.status), h('p', { text: 'The farm holds this job; it does not render it now.' }));
      default:
        return null;
    }
  }

  // A suspended job: scout frames waiting for approval, or paused on
  // request. Either way resume renders the frames not done yet.
  function suspendedCallout(job, progress) {
    const scouts = job.suspendedReason === 'SCOUT_FRAMES_READY';
    const error = h('p', { class: 'field-error', role: 'alert', hidden: true });
    const button = h('button', { type: 'button', class: 'button button-primary', id: scouts ? 'approve-scouts' : 'resume-job' },
      scouts ? 'Approve and render the rest' : 'Resume');
    button.addEventListener('click', () => act(button, error, () => api.resume(id, signal)));
    if (!scouts) {
      return h('div', { class: 'callout callout-warning', id: 'suspended' },
        h('p', { class: 'callout-title', text: 'Suspended' }),
        h('p', { text: 'Frames already rendered stay; the rest render when you resume.' }), button, error);
    }
    const left = (progress?.framesTotal ?? 0) - (progress?.framesCompleted ?? 0);
    const eta = progress?.etaSeconds != null ? `, about ${formatSeconds(progress.etaSeconds)} at the scouts’ pace` : '';
    const scoutFrames = job.finalConfig?.scoutFrames ?? [];
    // A large job's scout frames may lie on pages of their own: a link to
    // each of their ranges ("1", "1500-1502", "1-100x10") turns the grid
    // to its first frame.
    const firstOf = (r) => parseFrameRange(r)?.start;
    const links = pages?.length ? h('p', { class: 'scout-links' }, 'Show ', ...scoutFrames.filter((r) => firstOf(r) !== undefined).flatMap((r, i) => [
      i > 0 ? ', ' : null,
      h('button', { type: 'button', class: 'link-button', dataset: { frame: String(firstOf(r)) }, onclick: () => showFrame(firstOf(r)) },
        /^\d+$/.test(String(r)) ? `frame ${r}` : `frames ${r}`),
    ])) : null;
    return h('div', { class: 'callout callout-warning', id: 'scout-frames' },
      h('p', { class: 'callout-title', text: 'Scout frames ready' }),
      h('p', {}, 'Frames ', h('strong', { id: 'scout-list', text: scoutFrames.join(', ') }),
        ` are rendered: look at them below. ${left} ${left === 1 ? 'frame waits' : 'frames wait'} for your approval${eta}.`),
      links, button, error);
  }

  // act runs one of the job's actions from button, showing a refusal in
  // error, and refreshes the page once the farm took it.
  async function act(button, error, call) {
    button.disabled = true;
    error.hidden = true;
    try {
      await call();
      poller.refresh();
    } catch (err) {
      if (isAbort(err)) return;
      button.disabled = false;
      error.textContent = err.message;
      error.hidden = false;
    }
  }

  async function validateNow(button) {
    button.disabled = true;
    try {
      await api.validate(id, signal);
      poller.refresh();
    } catch (err) {
      if (isAbort(err)) return;
      button.disabled = false;
      showProblem(err);
    }
  }

  function showActions(job) {
    if (finalStatuses.has(job.status)) {
      replace(actions, ...retryActions(job));
      return;
    }
    const error = h('p', { class: 'field-error', role: 'alert', hidden: true });
    let suspend = null;
    if (job.status === 'booting' || job.status === 'rendering') {
      suspend = h('button', { type: 'button', class: 'button', id: 'suspend-job' }, 'Suspend');
      suspend.addEventListener('click', () => act(suspend, error, () => api.suspend(id, signal)));
    }
    const ask = h('button', { type: 'button', class: 'button button-danger-quiet', id: 'cancel-job' }, 'Cancel job');
    const confirm = h('div', { class: 'confirm', hidden: true, role: 'group', 'aria-label': 'Confirm cancel' },
      h('span', { text: 'Stop this job?' }),
      h('button', { type: 'button', class: 'button button-danger', id: 'cancel-confirm', onclick: doCancel }, 'Yes, cancel it'),
      h('button', { type: 'button', class: 'button', onclick: () => { confirm.hidden = true; ask.hidden = false; ask.focus(); } }, 'Keep it'));
    ask.addEventListener('click', () => {
      ask.hidden = true;
      confirm.hidden = false;
      confirm.querySelector('#cancel-confirm').focus();
    });
    replace(actions, suspend, ask, confirm, error);

    async function doCancel(e) {
      const button = e.currentTarget; // gone from the event once it is dispatched
      button.disabled = true;
      try {
        await api.cancel(id, signal);
        poller.refresh();
      } catch (err) {
        if (isAbort(err)) return;
        button.disabled = false;
        error.textContent = err.message;
        error.hidden = false;
      }
    }
  }

  // retryActions render frames of a job that ended again: those that did
  // not complete, or frames typed in.
  function retryActions(job) {
    if (!job.finalConfig || job.output?.isDeletedForClient) return [];
    const error = h('p', { class: 'field-error', role: 'alert', hidden: true });
    const parts = [];
    if (job.status !== 'completed') {
      const failed = h('button', { type: 'button', class: 'button button-primary', id: 'retry-failed' }, 'Render unfinished frames again');
      failed.addEventListener('click', () => act(failed, error, () => api.retry(id, { frames: 'failed' }, signal)));
      parts.push(failed);
    }
    const input = h('input', { id: 'retry-frames', type: 'text', autocomplete: 'off', spellcheck: 'false', placeholder: 'e.g. 12, 40-45', 'aria-label': 'Frames to render again' });
    const again = h('button', { type: 'button', class: 'button', id: 'retry-frames-button' }, 'Render these frames again');
    again.addEventListener('click', () => act(again, error, () => api.retry(id,
      { frameRanges: input.value.split(',').map((v) => v.trim()).filter(Boolean) }, signal)));
    parts.push(h('span', { class: 'retry-frames' }, input, again), error);
    return parts;
  }

  // priorityForm changes the job's priority: its waiting chunks take it at
  // the next free slot; chunks already rendering go on.
  function priorityForm(job) {
    const input = h('input', { type: 'number', id: 'priority-input', min: '0', max: '100', step: '1', value: String(job.priority ?? 50), required: true });
    const status = h('span', { class: 'muted', id: 'priority-status', role: 'status' });
    const form = h('form', { class: 'priority-form', id: 'priority-form' },
      h('label', { for: 'priority-input', text: 'Priority' }),
      input,
      h('button', { type: 'submit', class: 'button', id: 'priority-save' }, 'Set'),
      status,
      h('p', { class: 'muted', text: 'Among this workspace’s jobs, 0 (lowest) to 100 (highest). Waiting frames take it at once; frames rendering go on.' }));
    form.addEventListener('submit', async (e) => {
      e.preventDefault();
      const button = form.querySelector('#priority-save');
      button.disabled = true;
      try {
        const updated = await api.setPriority(id, Number(input.value), signal);
        input.value = String(updated.priority);
        status.textContent = `Priority ${updated.priority}`;
        announce(`Priority set to ${updated.priority}`);
      } catch (err) {
        if (isAbort(err)) return;
        status.textContent = err.message;
      } finally {
        button.disabled = false;
      }
    });
    return form;
  }

  function showSetup(job) {
    let scene = sceneCard(job.analysis, job.analysis.scenes.find((s) => s.name === job.analysis.activeScene) ?? job.analysis.scenes[0]);
    const findings = h('div', { class: 'stack' }, scene, blenderCard(job.analysis, job.sceneFile), filesCard(job.analysis));
    const form = renderForm(job, {
      api,
      signal,
      onStarted: () => {
        focusProgress = true;
        announce('Rendering started.');
        poller.refresh();
      },
      onSceneChange: (s) => {
        const next = sceneCard(job.analysis, s);
        scene.replaceWith(next);
        scene = next;
      },
    });
    replace(sections.setup,
      h('p', { class: 'lead', text: 'Validation is done. Check what it found, adjust the settings, and render.' }),
      warningsBlock(job.analysis),
      h('div', { class: 'setup-grid' }, findings, form));
  }

  function showDetails(job) {
    replace(sections.details, h('details', { class: 'card details', id: 'analysis-details' },
      h('summary', {}, 'What validation found',
        job.analysis.warnings?.length ? h('span', { class: 'badge badge-warning', text: `${job.analysis.warnings.length} ${job.analysis.warnings.length === 1 ? 'warning' : 'warnings'}` }) : null),
      h('div', { class: 'stack' },
        warningsBlock(job.analysis),
        sceneCard(job.analysis, job.analysis.scenes.find((s) => s.name === job.finalConfig?.scene) ?? job.analysis.scenes[0]),
        blenderCard(job.analysis, job.sceneFile),
        filesCard(job.analysis))));
  }

  function buildLive(job) {
    grid.configure(job.finalConfig);
    const meter = progressMeter('job-progress');
    const stats = h('dl', { class: 'stats' });
    const progressCard = h('section', { class: 'card', id: 'progress-card', 'aria-labelledby': 'progress-title' },
      h('h2', { id: 'progress-title', text: 'Progress' }),
      meter.el,
      stats);
    const c = job.finalConfig;
    const settingsCard = h('section', { class: 'card', id: 'settings-card', 'aria-labelledby': 'settings-title' },
      h('h2', { id: 'settings-title', text: 'Settings' }),
      facts([
        ['Scene', c.scene],
        ['Frames', `${c.frameRanges.join(', ')} (${c.frameCount})`],
        ['Resolution', `${c.resolution[0]} × ${c.resolution[1]} px at ${c.resolutionPercentage}%`],
        ['Engine', `${engineName(c.renderEngine)}, ${c.computeDeviceType}`],
        ['Samples', c.renderEngine === 'BLENDER_WORKBENCH' ? '—' : String(c.sampleCount)],
        ['Denoising', c.denoisingEnabled ? `On${c.denoiserType ? ` (${denoiserName(c.denoiserType)})` : ''}` : 'Off'],
        ['Output', c.outputFormat],
        ['Frames per task', String(c.chunkSize)],
        c.blenderVersion ? ['Blender', c.blenderVersion] : null,
        c.gpuCount ? ['GPUs', `${c.gpuCount} × ${c.computeDeviceType}`] : null,
        c.requiredTags?.length ? ['Workers tagged', c.requiredTags.join(', ')] : null,
      ]),
      priorityForm(job));
    const downloadsBody = h('div', { class: 'downloads-body' });
    const downloadsCard = h('section', { class: 'card', id: 'downloads-card', 'aria-labelledby': 'downloads-title' },
      h('h2', { id: 'downloads-title', text: 'Downloads' }),
      downloadsBody);
    replace(sections.overview, progressCard, downloadsCard);
    replace(sections.settings, settingsCard);

    const framesSummary = h('p', { class: 'muted', id: 'frames-summary' });
    if (pages?.length) {
      pager = buildPager();
      showPager();
    }
    replace(sections.frames, h('section', { id: 'frames-section', 'aria-labelledby': 'frames-title' },
      h('div', { class: 'section-head' }, h('h2', { id: 'frames-title', text: 'Frames' }), framesSummary),
      pager?.nav,
      grid.list,
      pager?.endNav));
    replace(sections.composites, composites.section);
    return { meter, stats, downloadsBody, framesSummary, note: '', built: false, zipLink: null, videoLink: null };
  }

  function showLive(job, progress, downloads) {
    if (!live) live = buildLive(job);
    const p = progress ?? { framesTotal: job.finalConfig.frameCount, framesCompleted: 0, framesRendering: 0, framesFailed: 0, percentComplete: 0, etaSeconds: null, frames: [] };
    const total = p.framesTotal;
    // A job whose Blender no live render node runs waits for one, and the
    // farm says so.
    if (p.waitingFor && !finalStatuses.has(job.status)) live.meter.indeterminate(`Waiting for ${p.waitingFor}`);
    else if (job.status === 'booting' && p.framesCompleted === 0) live.meter.indeterminate('Starting Blender…');
    else if (job.status === 'finalizing') live.meter.update(100, 'Making the zip and the preview video…');
    else live.meter.update(p.percentComplete, `${p.framesCompleted} of ${total} ${total === 1 ? 'frame' : 'frames'} · ${Math.floor(p.percentComplete)}%`);

    const eta = p.etaSeconds === null || p.etaSeconds === undefined || finalStatuses.has(job.status) ? '—' : formatSeconds(p.etaSeconds);
    // normalizedSeconds is set when the job is finalized; until then the
    // completed frames' own times add up to it, which the farm sums
    // (renderSeconds) whichever frames the report lists.
    const spent = job.normalizedSeconds > 0 ? job.normalizedSeconds : (p.renderSeconds ?? 0);
    replaceStats(live.stats, [
      ['Done', String(p.framesCompleted)],
      ['Rendering', String(p.framesRendering)],
      ['Failed', String(p.framesFailed)],
      ['Est. time left', eta],
      ['Render time', spent > 0 ? formatSeconds(spent) : '—'],
    ]);
    live.meter.el.dataset.tone = job.status;
    setText(live.framesSummary, `${p.framesCompleted} of ${total} done${p.framesFailed ? `, ${p.framesFailed} failed` : ''}`);
    grid.update(p, downloads);
    showFrameAskedFor();
    composites.update(downloads);
    showDownloads(job, downloads);

    if (focusProgress) {
      focusProgress = false;
      const heading = document.getElementById('progress-title');
      heading.tabIndex = -1;
      heading.focus();
    }
  }

  function showDownloads(job, downloads) {
    const t = downloads?.transforms;
    const zip = t?.framesZipOutputs ?? (t?.framesZip ? { url: t.framesZip, fileName: 'frames.zip' } : null);
    const video = t?.video ?? null;
    if (!zip && !video) {
      let note = 'The zip of every frame and the preview video are made once all frames are done. Each frame can be downloaded from its tile below as soon as it lands.';
      if (job.status === 'canceled' || job.status === 'failed') note = 'No zip or preview video was made. Finished frames can be downloaded from their tiles below.';
      if (live.note !== note) {
        live.note = note;
        replace(live.downloadsBody, h('p', { class: 'muted', text: note }));
      }
      return;
    }
    if (live.built) {
      // The zip and the video are made together, once; from here on only
      // the links' signatures change. The player keeps its first URL so
      // that it does not reload.
      if (zip && live.zipLink) live.zipLink.href = zip.url;
      if (video && live.videoLink) live.videoLink.href = video.url;
      return;
    }
    live.built = true;
    live.note = '';
    const links = h('div', { class: 'download-links' });
    if (zip) {
      live.zipLink = h('a', { class: 'button button-primary', id: 'download-zip', href: zip.url, download: zip.fileName },
        'Download all frames', h('span', { class: 'button-note', text: ` .zip${zip.sizeBytes ? ` · ${formatBytes(zip.sizeBytes)}` : ''}` }));
      links.append(live.zipLink);
    }
    let player = null;
    if (video) {
      live.videoLink = h('a', { class: 'button', id: 'download-video', href: video.url, download: video.fileName },
        'Download preview video', h('span', { class: 'button-note', text: ` .mp4 · ${formatBytes(video.sizeBytes)}` }));
      links.append(live.videoLink);
      player = h('figure', { class: 'player' },
        h('video', { id: 'preview-video', src: video.url, controls: true, preload: 'metadata', playsinline: true, loop: true }),
        h('figcaption', { class: 'muted', text: `Preview, ${video.codec.toUpperCase()} at ${video.fps} fps. It plays the frames in order; the frames themselves are the full-quality output.` }));
    } else {
      links.append(h('p', { class: 'muted', text: 'No preview video: it needs two frames or more.' }));
    }
    replace(live.downloadsBody, player, links);
  }

  // keepLinksFresh signs a finished job's downloads again every
  // refreshLinksMs, so that its links keep working. Its frames no longer
  // change: the grid keeps those of the last report (progress), and the
  // first round, right after the poll that read both, reads nothing.
  function keepLinksFresh(progress) {
    // A job rendered again from this page (a retry) starts the page's
    // poll again; once it ends again, a new round of this starts, and this
    // one stops.
    const round = ++linksRound;
    let first = true;
    poll(async () => {
      if (round !== linksRound || !finalStatuses.has(lastStatus)) return false;
      if (first) {
        first = false;
        return true;
      }
      try {
        const page = pages?.[pageIndex];
        const downloads = page ? await api.downloadsOfFrames(id, page[0], page[1], signal) : await api.downloads(id, signal);
        if (round !== linksRound) return false; // the page was turned meanwhile (showPage)
        grid.update(progress, downloads);
        composites.update(downloads);
        if (live) showDownloads({ status: lastStatus }, downloads);
      } catch (err) {
        if (isAbort(err)) return false;
      }
      return true;
    }, refreshLinksMs, signal);
  }

  async function showLog() {
    let lines = [];
    try {
      lines = await api.logTail(id, signal);
    } catch (err) {
      if (isAbort(err)) return;
      // The log is a help, not the answer; the failed reason above is.
      return;
    }
    if (lines.length === 0) return;
    replace(sections.log, h('section', { class: 'card', id: 'log-card', 'aria-labelledby': 'log-title' },
      h('h2', { id: 'log-title', text: 'End of the Blender log' }),
      h('pre', { class: 'log', id: 'blender-log', tabindex: '0' }, lines.join('\n'))));
  }

  function notFound(err) {
    setText(title, 'No such job');
    badge.hidden = true;
    replace(meta);
    replace(actions);
    for (const s of Object.values(sections)) replace(s);
    replace(sections.status, callout('error', null, h('p', { text: err.message }), h('p', {}, h('a', { href: '#/' }, 'Back to the jobs'))));
  }
}

// pagesOf splits a job's frames into pages of pageFrames, each [first,
// last] frame numbers, when it has more than manyFrames; [] when it is
// shown whole. The frames come from the job's merged frame ranges ("7",
// "1-250", "1-250x5").
function pagesOf(config) {
  if (!((config.frameCount ?? 0) > manyFrames) || !Array.isArray(config.frameRanges)) return [];
  const frames = new Set();
  for (const r of config.frameRanges) {
    const range = parseFrameRange(r);
    if (!range) return []; // a range this page cannot read: the frames shown whole
    for (let f = range.start; f <= range.end; f += range.step) frames.add(f);
  }
  const sorted = [...frames].sort((a, b) => a - b);
  if (sorted.length <= manyFrames) return [];
  const out = [];
  for (let i = 0; i < sorted.length; i += pageFrames) {
    out.push([sorted[i], sorted[Math.min(i + pageFrames, sorted.length) - 1]]);
  }
  return out;
}

// hasFrame tells whether frame n is one of those the frame ranges ("7",
// "1-250", "1-250x5") name.
function hasFrame(ranges, n) {
  return ranges.some((r) => {
    const range = parseFrameRange(r);
    return range !== null && n >= range.start && n <= range.end && (n - range.start) % range.step === 0;
  });
}

// parseFrameRange reads a frame range as the farm writes them ("7",
// "1-250", "1-250x5"): its start, end and step, or null.
function parseFrameRange(r) {
  const m = /^(\d+)(?:-(\d+)(?:x(\d+))?)?$/.exec(String(r).trim());
  if (!m) return null;
  const start = Number(m[1]);
  const end = m[2] === undefined ? start : Number(m[2]);
  const step = m[3] === undefined ? 1 : Number(m[3]);
  return step > 0 ? { start, end, step } : null;
}

// completedOf counts the completed frames of a report's list.
function completedOf(frames) {
  let n = 0;
  for (const f of frames ?? []) if (f.status === 'completed') n++;
  return n;
}

function replaceStats(dl, pairs) {
  if (dl.children.length !== pairs.length) {
    replace(dl, pairs.map(([term]) => h('div', { class: 'stat' }, h('dt', { text: term }), h('dd'))));
  }
  pairs.forEach(([, value], i) => setText(dl.children[i].querySelector('dd'), value));
}
