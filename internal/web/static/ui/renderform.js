// The render form: prefilled from the analysis of the chosen scene, it
// sends only what differs from the file (plus the frames, always), so that
// everything left alone keeps the file's own settings. The farm checks the
// values; its field errors are shown beside the fields they name.

import { ApiError, isAbort } from './api.js';
import { h, replace, setText } from './dom.js';
import { activeScene, frameRangeOf } from './analysis.js';

// Still-image formats in the API's enumeration, with the names Blender
// shows for them.
const outputFormats = [
  ['PNG', 'PNG'],
  ['JPEG', 'JPEG'],
  ['WEBP', 'WebP'],
  ['OPEN_EXR', 'OpenEXR'],
  ['OPEN_EXR_MULTILAYER', 'OpenEXR Multilayer'],
  ['TIFF', 'TIFF'],
  ['JPEG2000', 'JPEG 2000'],
  ['BMP', 'BMP'],
  ['TARGA', 'Targa'],
  ['TARGA_RAW', 'Targa Raw'],
  ['HDR', 'Radiance HDR'],
  ['CINEON', 'Cineon'],
  ['DPX', 'DPX'],
  ['IRIS', 'Iris'],
];

const prefix = 'requestedRenderConfig.';

/**
 * renderForm builds the form for a validated job. onStarted gets the job
 * the farm answers once rendering has started.
 */
export function renderForm(job, { api, signal, onStarted, onSceneChange }) {
  const analysis = job.analysis;
  let scene = activeScene(analysis);

  const fields = {}; // API field name → { wrap, error, inputs }
  const field = (name, label, input, hint) => {
    const error = h('p', { class: 'field-error', id: `err-${name}`, hidden: true });
    const hintEl = hint ? h('p', { class: 'hint', id: `hint-${name}` }, hint) : null;
    input.setAttribute('aria-describedby', [hintEl ? `hint-${name}` : '', `err-${name}`].filter(Boolean).join(' '));
    const wrap = h('div', { class: 'field', id: `field-${name}` },
      h('label', { for: input.id, text: label }), input, hintEl, error);
    fields[name] = { wrap, error, inputs: [input] };
    return wrap;
  };
  const number = (id, attrs = {}) => h('input', { id, type: 'number', inputmode: 'numeric', step: '1', ...attrs });

  const sceneSelect = analysis.scenes.length > 1
    ? h('select', { id: 'f-scene' }, analysis.scenes.map((s) => h('option', { value: s.name, selected: s.name === scene.name }, s.name)))
    : null;
  const frames = h('input', { id: 'f-frameRanges', type: 'text', autocomplete: 'off', spellcheck: 'false' });
  const frameHint = h('span');
  const width = number('f-resolution-w', { min: '1', max: '16384' });
  const height = number('f-resolution-h', { min: '1', max: '16384' });
  const percent = number('f-resolutionPercentage', { min: '1', max: '100' });
  const samples = number('f-sampleCount', { min: '1' });
  const format = h('select', { id: 'f-outputFormat' }, outputFormats.map(([v, label]) => h('option', { value: v }, label)));
  const chunk = number('f-chunkSize', { min: '1', max: '1000', placeholder: 'Automatic' });
  const priority = number('f-priority', { min: '0', max: '100', placeholder: '50' });
  // One still frame on many workers: each frame split into parts that
  // different workers render, then merged (samples: Cycles; tiles: Cycles, EEVEE, Workbench; the farm says
  // what it refuses).
  const splitParts = number('f-splitFrame', { min: '2', max: '64', placeholder: 'Whole frames' });
  const splitMode = h('select', { id: 'f-splitFrameMode' },
    h('option', { value: 'samples', selected: true }, 'By samples'),
    h('option', { value: 'tiles' }, 'By tiles'));
  // The farm's Blenders, filled in from GET /blender: the one that opened
  // the file first (sending nothing), then every other that can open it.
  const opened = analysis.renderBlenderVersion || analysis.blenderVersion;
  const blender = h('select', { id: 'f-blenderVersion' },
    h('option', { value: '', selected: true }, `Blender ${opened} (opened the file)`));

  const resolutionError = h('p', { class: 'field-error', id: 'err-resolution', hidden: true });
  const resolution = h('fieldset', { class: 'field fieldset', id: 'field-resolution' },
    h('legend', { text: 'Resolution' }),
    h('div', { class: 'field-row' },
      h('div', { class: 'field' }, h('label', { for: 'f-resolution-w', text: 'Width (px)' }), width),
      h('span', { class: 'times', 'aria-hidden': 'true', text: '×' }),
      h('div', { class: 'field' }, h('label', { for: 'f-resolution-h', text: 'Height (px)' }), height)),
    resolutionError);
  width.setAttribute('aria-describedby', 'err-resolution');
  height.setAttribute('aria-describedby', 'err-resolution');
  fields.resolution = { wrap: resolution, error: resolutionError, inputs: [width, height] };

  const scout = h('input', { id: 'f-scoutFrames', type: 'checkbox' });
  const scoutField = h('div', { class: 'field field-check', id: 'field-scoutFrames' },
    h('label', { for: 'f-scoutFrames' }, scout, ' Render scout frames first'),
    h('p', { class: 'hint', id: 'hint-scoutFrames' }, 'The first, middle and last frame render first; the job then waits for you to look at them and approve the rest.'),
    h('p', { class: 'field-error', id: 'err-scoutFrames', hidden: true }));
  scout.setAttribute('aria-describedby', 'hint-scoutFrames err-scoutFrames');
  fields.scoutFrames = { wrap: scoutField, error: scoutField.querySelector('#err-scoutFrames'), inputs: [scout] };

  const samplesNote = h('p', { class: 'hint', id: 'samples-note', hidden: true, text: 'Workbench renders without samples.' });
  const formError = h('div', { id: 'render-error', role: 'alert' });
  const submit = h('button', { type: 'submit', class: 'button button-primary button-large', id: 'render-button' }, 'Render');

  const form = h('form', { class: 'card render-form', id: 'render-form', novalidate: true, 'aria-labelledby': 'render-title' },
    h('h2', { id: 'render-title', text: 'Render settings' }),
    h('p', { class: 'muted', text: 'Prefilled from the file. Anything you leave as it is keeps the file’s own setting.' }),
    sceneSelect ? field('scene', 'Scene', sceneSelect) : null,
    field('frameRanges', 'Frames', frames, [frameHint, ' Use “7”, “1-250” or “1-250x5” (every fifth); separate ranges with commas.']),
    resolution,
    h('div', { class: 'field-row' },
      field('resolutionPercentage', 'Scale (%)', percent),
      h('div', {}, field('sampleCount', 'Samples', samples), samplesNote)),
    h('div', { class: 'field-row' },
      field('outputFormat', 'Output format', format),
      field('chunkSize', 'Frames per task', chunk, 'How many frames one Blender process renders. Empty: split evenly across the workers.')),
    h('div', { class: 'field-row' },
      field('splitFrame', 'Parts per frame', splitParts, 'Split each frame into 2 to 64 parts that different workers render, then merged: by samples (each part the whole image with a share of the samples) or by tiles (each part a region). By samples: Cycles; by tiles: Cycles, EEVEE of Blender 4.1 and older, Workbench. Empty: each frame renders whole.'),
      h('div', { class: 'field' }, h('label', { for: 'f-splitFrameMode', text: 'Split by' }), splitMode)),
    field('priority', 'Priority', priority, 'Among this workspace’s jobs, 0 (lowest) to 100 (highest); 50 when empty. It can be changed while the job waits.'),
    field('blenderVersion', 'Blender', blender, 'The farm’s Blender that renders the frames. A newer one may render the file differently.'),
    scoutField,
    h('p', { class: 'muted small' }, 'Color management: the file’s own (preset “default”).'),
    formError,
    h('div', { class: 'form-actions' }, submit));

  function prefill() {
    frames.value = frameRangeOf(scene);
    setText(frameHint, `The scene has frames ${scene.frameStart}–${scene.frameEnd}.`);
    width.value = String(scene.resolutionX);
    height.value = String(scene.resolutionY);
    percent.value = String(scene.resolutionPercentage);
    const workbench = scene.engine === 'BLENDER_WORKBENCH';
    samples.value = workbench ? '' : String(scene.samples);
    samples.disabled = workbench;
    samplesNote.hidden = !workbench;
    // A movie format cannot be rendered frame by frame; PNG is what the
    // farm falls back to.
    format.value = outputFormats.some(([v]) => v === scene.outputFormat) ? scene.outputFormat : 'PNG';
    chunk.value = '';
    updateButton();
  }

  function updateButton() {
    const n = countFrames(frames.value);
    setText(submit, n > 0 ? `Render ${n} ${n === 1 ? 'frame' : 'frames'}` : 'Render');
  }

  frames.addEventListener('input', updateButton);
  sceneSelect?.addEventListener('change', () => {
    scene = analysis.scenes.find((s) => s.name === sceneSelect.value) ?? scene;
    clearErrors();
    prefill();
    onSceneChange?.(scene);
  });

  /** config collects the request: the frames always, the rest only where it
   * differs from the scene. */
  function config() {
    const c = { colorManagementPreset: 'default' };
    if (sceneSelect) c.scene = scene.name;
    c.frameRanges = frames.value.split(',').map((s) => s.trim()).filter(Boolean);
    if (c.frameRanges.length === 0) delete c.frameRanges;
    const num = (input) => (input.value.trim() === '' ? null : Number(input.value));
    const w = num(width);
    const hgt = num(height);
    if (w !== null && hgt !== null && (w !== scene.resolutionX || hgt !== scene.resolutionY)) c.resolution = [w, hgt];
    const p = num(percent);
    if (p !== null && p !== scene.resolutionPercentage) c.resolutionPercentage = p;
    const s = num(samples);
    if (!samples.disabled && s !== null && s !== scene.samples) c.sampleCount = s;
    if (format.value !== scene.outputFormat) c.outputFormat = format.value;
    const k = num(chunk);
    if (k !== null) c.chunkSize = k;
    if (scout.checked) c.scoutFrames = 'auto';
    const parts = num(splitParts);
    if (parts !== null) c.splitFrame = { mode: splitMode.value, parts };
    const pr = num(priority);
    if (pr !== null) c.priority = pr;
    if (blender.value) c.blenderVersion = blender.value;
    return c;
  }

  /** fillBlenders offers the farm's other Blenders that can open the file:
   * none older than the Blender that saved it. */
  async function fillBlenders() {
    let offered;
    try {
      offered = await api.blenderVersions(signal);
    } catch (err) {
      if (!isAbort(err)) blender.title = `The farm's Blenders could not be listed: ${err.message}`;
      return;
    }
    const file = versionParts(analysis.fileVersion);
    for (const o of offered) {
      const v = versionParts(o.version);
      if (o.version === opened || !v || (file && compareVersions(v, file) < 0)) continue;
      blender.append(h('option', { value: o.version },
        `Blender ${o.version} (${o.workers} ${o.workers === 1 ? 'render node' : 'render nodes'})`));
    }
  }

  function clearErrors() {
    replace(formError);
    for (const f of Object.values(fields)) {
      f.error.hidden = true;
      f.error.textContent = '';
      f.wrap.classList.remove('field-invalid');
      for (const input of f.inputs) input.removeAttribute('aria-invalid');
    }
  }

  function showError(err) {
    const name = err.field?.startsWith(prefix) ? err.field.slice(prefix.length).split(/[.[]/)[0] : '';
    const f = fields[name];
    if (!f) {
      replace(formError, h('div', { class: 'callout callout-error' },
        h('p', { class: 'callout-title', text: 'The farm did not start the render' }),
        h('p', { text: err.message })));
      return;
    }
    // The message starts with the field's name, which the label already says.
    const text = err.message.replace(new RegExp(`^${name}:\\s*`), '');
    f.error.textContent = text.charAt(0).toUpperCase() + text.slice(1);
    f.error.hidden = false;
    f.wrap.classList.add('field-invalid');
    for (const input of f.inputs) input.setAttribute('aria-invalid', 'true');
    f.inputs[0].focus();
  }

  form.addEventListener('submit', async (e) => {
    e.preventDefault();
    clearErrors();
    submit.disabled = true;
    const label = submit.textContent;
    setText(submit, 'Starting…');
    try {
      const started = await api.render(job.id, config(), signal);
      onStarted(started);
    } catch (err) {
      if (isAbort(err)) return;
      submit.disabled = false;
      setText(submit, label);
      showError(err instanceof ApiError ? err : new ApiError(0, '', String(err)));
    }
  });

  prefill();
  fillBlenders();
  return form;
}

/** versionParts reads "4.3" or "4.3.2" as [major, minor]: the release that
 * decides which files a Blender opens. */
function versionParts(version) {
  const m = /^(\d+)\.(\d+)(?:\.\d+)?$/.exec(version ?? '');
  return m ? [Number(m[1]), Number(m[2])] : null;
}

function compareVersions(a, b) {
  return a[0] - b[0] || a[1] - b[1];
}

/** countFrames counts the frames a list of ranges names, or 0 when it does
 * not parse; the farm has the final word. */
function countFrames(text) {
  const frames = new Set();
  for (const part of text.split(',')) {
    const s = part.trim();
    if (!s) continue;
    const m = /^(\d+)(?:-(\d+)(?:x(\d+))?)?$/.exec(s);
    if (!m) return 0;
    const start = Number(m[1]);
    const end = m[2] === undefined ? start : Number(m[2]);
    const step = m[3] === undefined ? 1 : Number(m[3]);
    if (end < start || step < 1) return 0;
    for (let f = start; f <= end; f += step) {
      frames.add(f);
      if (frames.size > 100000) return 0;
    }
  }
  return frames.size;
}
