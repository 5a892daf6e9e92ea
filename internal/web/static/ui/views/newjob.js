// New job: pick or drop a .blend or a project .zip, upload it to a
// presigned URL with progress, create the job and start validation, then
// hand over to the job's page, which shows what validation finds.

import { ApiError, isAbort, putFile } from '../api.js';
import { announce, h, icon, replace, setText } from '../dom.js';
import { formatBytes } from '../format.js';
import { callout, progressMeter, spinner } from '../parts.js';

const fileTypes = { '.blend': 'blend', '.zip': 'zip' };

export function newJobView(root, { api, signal, navigate }) {
  document.title = 'New job · renderfarm';

  const input = h('input', {
    type: 'file', id: 'file-input', class: 'file-input', accept: '.blend,.zip',
    'aria-describedby': 'drop-hint',
  });
  const zone = h('div', { class: 'dropzone', id: 'dropzone' },
    uploadIcon(),
    h('p', { class: 'dropzone-title', text: 'Drop a .blend file or a project .zip here' }),
    h('p', { class: 'muted', text: 'or' }),
    input,
    h('label', { for: 'file-input', class: 'button button-primary' }, 'Choose a file'),
    h('p', { class: 'hint', id: 'drop-hint' },
      'A .zip holds one .blend at its top level with the textures and other files it uses.'));
  // Artists rarely zip a project by hand: the add-on packs the scene with
  // every file it uses and submits it from Blender's Render properties.
  const addonHint = h('p', { class: 'hint', id: 'addon-hint' },
    'Working in Blender? ',
    h('a', { href: '/ui/renderfarm-addon.zip', download: 'renderfarm-addon.zip', id: 'addon-download' },
      'Download the Blender add-on'),
    ' to submit from the Render properties, with linked libraries and textures packed for you.');

  const steps = h('ol', { class: 'steps', id: 'upload-steps', hidden: true });
  const problem = h('div', { id: 'upload-error', role: 'alert' });

  replace(root, h('div', { class: 'page page-narrow', id: 'new-job-view' },
    h('div', { class: 'page-head' },
      h('h1', { text: 'New job' }),
      h('a', { href: '#/', class: 'button button-quiet' }, 'Back to jobs')),
    zone,
    addonHint,
    problem,
    steps));

  let busy = false;

  input.addEventListener('change', () => {
    const file = input.files?.[0];
    if (file) start(file);
  });

  // The whole zone takes drops; dragenter/leave fire for every child, so
  // count them to know when the pointer really left.
  let depth = 0;
  zone.addEventListener('dragenter', (e) => {
    if (!hasFiles(e)) return;
    e.preventDefault();
    depth++;
    zone.classList.add('dropzone-over');
  });
  zone.addEventListener('dragover', (e) => {
    if (!hasFiles(e)) return;
    e.preventDefault();
    e.dataTransfer.dropEffect = busy ? 'none' : 'copy';
  });
  zone.addEventListener('dragleave', () => {
    depth = Math.max(0, depth - 1);
    if (depth === 0) zone.classList.remove('dropzone-over');
  });
  zone.addEventListener('drop', (e) => {
    e.preventDefault();
    depth = 0;
    zone.classList.remove('dropzone-over');
    const files = e.dataTransfer?.files;
    if (!files || files.length === 0) return;
    if (files.length > 1) {
      showProblem('Drop one file at a time: a .blend, or a .zip of the whole project.');
      return;
    }
    start(files[0]);
  });

  async function start(file) {
    if (busy) return;
    const dot = file.name.lastIndexOf('.');
    const fileType = dot >= 0 ? fileTypes[file.name.slice(dot).toLowerCase()] : undefined;
    if (!fileType) {
      showProblem(`“${file.name}” is not a .blend file or a .zip. Blender's backups (.blend1) and other files cannot be rendered.`);
      input.value = '';
      return;
    }
    busy = true;
    replace(problem);
    zone.classList.add('dropzone-busy');
    input.disabled = true;

    const uploads = new AbortController();
    signal.addEventListener('abort', () => uploads.abort(), { once: true });
    const meter = progressMeter('upload-progress');
    meter.update(0, 'Starting…');
    const stopButton = h('button', { type: 'button', class: 'button button-small', onclick: () => uploads.abort() }, 'Stop upload');
    const upload = step(`Upload ${file.name} (${formatBytes(file.size)})`, meter.el, stopButton);
    const create = step('Create the job');
    const validate = step('Start validation');
    replace(steps, upload.el, create.el, validate.el);
    steps.hidden = false;

    try {
      upload.working();
      const ticket = await api.createUpload(file.name, fileType, uploads.signal);
      await putFile(ticket.uploadUrl, file, (loaded, total) => {
        const pct = total > 0 ? (100 * loaded) / total : 100;
        meter.update(pct, `${Math.floor(pct)}% · ${formatBytes(loaded)} of ${formatBytes(total)}`);
      }, uploads.signal);
      stopButton.remove();
      upload.done();

      create.working();
      const job = await api.createJob(ticket.slug, signal);
      create.done();

      validate.working();
      await api.validate(job.id, signal);
      validate.done();
      announce('Uploaded. Validation started.');
      navigate(`#/jobs/${job.id}`);
    } catch (err) {
      if (signal.aborted) return;
      for (const s of [upload, create, validate]) s.stopIfWorking();
      stopButton.remove();
      if (isAbort(err)) showProblem('The upload was stopped. Choose the file again to start over.');
      else showProblem(err instanceof ApiError ? err.message : String(err));
      busy = false;
      zone.classList.remove('dropzone-busy');
      input.disabled = false;
      input.value = '';
    }
  }

  function showProblem(message) {
    replace(problem, callout('error', 'The file could not be sent', h('p', { text: message })));
  }
}

function hasFiles(e) {
  return Array.from(e.dataTransfer?.types ?? []).includes('Files');
}

/** step is one line of the progress list, with its state in words. */
function step(title, ...extra) {
  const state = h('span', { class: 'step-state' });
  const icon = h('span', { class: 'step-icon', 'aria-hidden': 'true' });
  const el = h('li', { class: 'step step-pending' },
    icon,
    h('div', { class: 'step-body' },
      h('span', { class: 'step-title', text: title }), ' ', state,
      extra.length ? h('div', { class: 'step-extra' }, ...extra) : null));
  const set = (name, words) => {
    el.className = `step step-${name}`;
    setText(state, words);
    replace(icon, name === 'working' ? spinner() : null);
  };
  set('pending', '(waiting)');
  return {
    el,
    working: () => set('working', '(in progress)'),
    done: () => set('done', '(done)'),
    stopIfWorking: () => { if (el.classList.contains('step-working')) set('failed', '(failed)'); },
  };
}

function uploadIcon() {
  return icon('M12 16V4m0 0l-4.5 4.5M12 4l4.5 4.5M4 15v3a2 2 0 002 2h12a2 2 0 002-2v-3', 40, 'dropzone-icon', 1.8);
}
