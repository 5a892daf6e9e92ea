// What validation found in a file, shown plainly: the scene's settings,
// the Blender versions, the external files, and the warnings first.

import { h, icon } from './dom.js';

const engineNames = {
  CYCLES: 'Cycles',
  BLENDER_EEVEE: 'EEVEE',
  BLENDER_EEVEE_NEXT: 'EEVEE Next',
  BLENDER_WORKBENCH: 'Workbench',
};

export function engineName(id) {
  return engineNames[id] ?? id;
}

const denoiserNames = {
  OPENIMAGEDENOISE: 'OpenImageDenoise',
  OPTIX: 'OptiX',
};

export function denoiserName(id) {
  return denoiserNames[id] ?? id;
}

const warningTitles = {
  MISSING_FILE: 'A file the scene uses is missing',
  DENOISER_UNAVAILABLE: 'Denoiser not available on this farm',
  NO_CAMERA: 'The scene has no camera',
  MOVIE_OUTPUT: 'The file writes a movie',
  SAVED_WITH_NEWER_BLENDER: 'Saved with a newer Blender',
};

/** The scene a render uses when it names none. */
export function activeScene(analysis) {
  return analysis.scenes.find((s) => s.name === analysis.activeScene) ?? analysis.scenes[0];
}

export function frameRangeOf(scene) {
  const step = Math.max(1, scene.frameStep || 1);
  if (scene.frameStart === scene.frameEnd) return String(scene.frameStart);
  return `${scene.frameStart}-${scene.frameEnd}${step > 1 ? `x${step}` : ''}`;
}

/** warningsBlock lists the warnings as callouts that stand out, or nothing. */
export function warningsBlock(analysis) {
  const warnings = analysis.warnings ?? [];
  if (warnings.length === 0) return null;
  return h('section', { class: 'warnings', id: 'analysis-warnings', 'aria-labelledby': 'warnings-title' },
    h('h2', { id: 'warnings-title', class: 'visually-hidden', text: 'Warnings' }),
    h('ul', { class: 'warning-list' }, warnings.map((w) => h('li', { class: 'callout callout-warning', dataset: { code: w.code } },
      h('p', { class: 'callout-title' },
        warningIcon(),
        h('span', {}, warningTitles[w.code] ?? 'Warning', ' ', h('code', { class: 'warning-code', text: w.code }))),
      h('p', { text: w.message }),
      w.path ? h('p', { class: 'muted' }, 'File: ', h('code', { text: w.path })) : null))));
}

/** sceneCard shows one scene's settings as a definition list. */
// How a multiview scene writes its views, in words.
const viewsWords = {
  INDIVIDUAL: 'an image per view',
  STEREO_3D: 'both views in one image',
  MULTIVIEW: 'every view in one OpenEXR',
};

export function sceneCard(analysis, scene) {
  const frames = scene.frameEnd - scene.frameStart + 1;
  const step = Math.max(1, scene.frameStep || 1);
  const count = Math.floor((frames - 1) / step) + 1;
  let denoise = 'Off';
  if (scene.denoisingEnabled) {
    const name = scene.denoiser ? ` (${denoiserName(scene.denoiser)})` : '';
    denoise = analysis.denoiserAvailable ? `On${name}` : `On in the file${name}; this farm renders without it`;
  }
  return h('section', { class: 'card', id: 'analysis-scene', 'aria-labelledby': 'scene-title' },
    h('h2', { id: 'scene-title' }, 'Scene ', h('span', { class: 'muted', text: `“${scene.name}”` })),
    facts([
      ['Frames', `${scene.frameStart}–${scene.frameEnd}${step > 1 ? ` every ${step}` : ''} (${count} ${count === 1 ? 'frame' : 'frames'}) at ${scene.fps} fps`],
      ['Resolution', `${scene.resolutionX} × ${scene.resolutionY} px at ${scene.resolutionPercentage}%`],
      ['Engine', engineName(scene.engine)],
      ['Samples', scene.engine === 'BLENDER_WORKBENCH' ? 'None (Workbench)' : String(scene.samples)],
      ['Denoising', denoise],
      ['Camera', scene.camera || 'None'],
      ['Output', [scene.outputFormat, scene.colorMode, scene.colorDepth ? `${scene.colorDepth}-bit` : ''].filter(Boolean).join(', ')],
      ['View transform', scene.viewTransform || '—'],
      ['View layers', (scene.viewLayers ?? []).join(', ') || '—'],
      scene.outputPath ? ['Output path', scene.outputPath] : null,
      scene.multiview ? ['Views', `${scene.multiview.views.map((v) => v.name).join(', ')} (${viewsWords[scene.multiview.imageViews] ?? scene.multiview.imageViews})`] : null,
      (scene.fileOutputNodes ?? []).length
        ? ['File Output nodes', scene.fileOutputNodes.map((n) => `${n.name} (${n.format}, ${n.slots.length} ${n.slots.length === 1 ? 'input' : 'inputs'})`).join(', ')]
        : null,
      (scene.renderPasses ?? []).length
        ? ['Passes', scene.renderPasses.map((l) => (scene.renderPasses.length > 1 ? `${l.viewLayer}: ` : '') + l.passes.join(', ')).join('; ')]
        : null,
    ]),
    analysis.scenes.length > 1
      ? h('p', { class: 'muted' }, `The file has ${analysis.scenes.length} scenes; the render form picks which one to render.`)
      : null);
}

/** blenderCard compares the file's Blender with the farm's: which of the
 * farm's Blenders opened the file (and renders it), and which it runs. */
export function blenderCard(analysis, sceneFile) {
  const opened = analysis.renderBlenderVersion || analysis.blenderVersion;
  const farm = analysis.farmBlenderVersions?.length ? analysis.farmBlenderVersions : [analysis.blenderVersion];
  return h('section', { class: 'card', id: 'analysis-blender', 'aria-labelledby': 'blender-title' },
    h('h2', { id: 'blender-title', text: 'Blender' }),
    facts([
      ['Saved with', analysis.fileVersion ? `Blender ${analysis.fileVersion}` : 'unknown'],
      ['Opened with', `Blender ${opened}`],
      ['Farm runs', farm.map((v) => `Blender ${v}`).join(', ')],
      ['Denoiser', analysis.denoiserAvailable ? 'Available (OpenImageDenoise)' : 'Not available'],
      sceneFile?.blendPath && sceneFile.fileType === 'zip' ? ['Scene file', sceneFile.blendPath] : null,
      sceneFile?.compression ? ['Compression', sceneFile.compression] : null,
    ]));
}

/** filesCard lists the external files, the missing ones marked. */
export function filesCard(analysis) {
  const files = analysis.externalFiles ?? [];
  const missing = files.filter((f) => f.missing).length;
  return h('section', { class: 'card', id: 'analysis-files', 'aria-labelledby': 'files-title' },
    h('h2', { id: 'files-title' }, 'External files ',
      h('span', { class: 'muted', text: files.length ? `(${files.length}${missing ? `, ${missing} missing` : ''})` : '' })),
    files.length === 0
      ? h('p', { class: 'muted', text: 'The file uses no files outside itself.' })
      : h('div', { class: 'table-scroll' }, h('table', { class: 'files-table' },
        h('thead', {}, h('tr', {},
          h('th', { scope: 'col', text: 'Name' }),
          h('th', { scope: 'col', text: 'Type' }),
          h('th', { scope: 'col', text: 'Path' }),
          h('th', { scope: 'col', text: 'State' }))),
        h('tbody', {}, files.map((f) => h('tr', { class: f.missing ? 'row-missing' : '' },
          h('td', { text: f.name }),
          h('td', { text: f.type }),
          h('td', {}, h('code', { text: f.path })),
          h('td', {}, f.missing
            ? h('span', { class: 'badge badge-danger', text: 'Missing' })
            : h('span', { class: 'badge badge-muted', text: f.packed ? 'Packed' : 'Found' }))))))),
    analysis.externalFilesTruncated ? h('p', { class: 'muted', text: 'The file names more files than are listed here.' }) : null);
}

/** facts is a definition list of [term, description] pairs; null pairs are skipped. */
export function facts(pairs) {
  return h('dl', { class: 'facts' }, pairs.filter(Boolean).map(([term, desc]) => h('div', { class: 'fact' },
    h('dt', { text: term }),
    h('dd', {}, desc))));
}

function warningIcon() {
  return icon('M12 3l10 18H2L12 3zm0 6v5m0 3v.5', 18);
}
