// The live frame grid of a job: one tile per frame with its state, the
// worker that rendered it and how long it took, and its thumbnail as soon
// as the frame is stored.

import { h, replace, setText } from './dom.js';
import { formatBytes, formatSeconds } from './format.js';

// Formats a browser shows in an <img>; other frames get a download tile.
const viewable = new Set(['PNG', 'JPEG', 'WEBP', 'BMP']);

const frameWords = {
  queued: 'Queued',
  rendering: 'Rendering…',
  completed: 'Done',
  failed: 'Failed',
  canceled: 'Canceled',
};

export class FrameGrid {
  constructor() {
    this.list = h('ul', { class: 'frame-grid', id: 'frame-grid' });
    this.tiles = new Map(); // frame number → tile parts
    this.aspect = '';
    this.format = 'PNG';
    this.shownFrames = null; // what the tiles show, to skip an update that changes nothing
    this.shownDownloads = null;
  }

  /** reset removes every tile: the grid shows another page of frames. */
  reset() {
    this.list.replaceChildren();
    this.tiles.clear();
    this.shownFrames = null;
    this.shownDownloads = null;
  }

  /** configure sets what every tile shares: the frames' shape and format. */
  configure(finalConfig) {
    if (!finalConfig) return;
    const [w, hgt] = finalConfig.resolution ?? [];
    this.aspect = w > 0 && hgt > 0 ? `${w} / ${hgt}` : '';
    this.format = finalConfig.outputFormat ?? 'PNG';
  }

  /**
   * update merges the progress report (state, worker, time of each frame)
   * with the downloads (the stored files) into the tiles.
   */
  update(progress, downloads) {
    // A finished job's page gives the same frames again as its links are
    // signed anew (views/job.js): no tile changed but their links.
    if (progress?.frames && progress.frames === this.shownFrames && downloads === this.shownDownloads) return;
    this.shownFrames = progress?.frames;
    this.shownDownloads = downloads;
    // A frame of a multiview scene has an image per view: its tile shows
    // the first (the left one).
    const outputs = new Map();
    for (const o of downloads?.frameOutputs ?? []) {
      if (Number.isInteger(o.frame) && !outputs.has(o.frame)) outputs.set(o.frame, o);
    }
    const frames = progress?.frames?.length
      ? progress.frames
      : [...outputs.keys()].map((frame) => ({ frame, status: 'completed', worker: '', renderSeconds: 0, attempts: 1 }));

    let before = null;
    for (const f of frames) {
      let tile = this.tiles.get(f.frame);
      if (!tile) {
        tile = this.makeTile(f.frame);
        this.tiles.set(f.frame, tile);
      }
      this.updateTile(tile, f, outputs.get(f.frame));
      const want = before ? before.nextSibling : this.list.firstChild;
      if (want !== tile.li) this.list.insertBefore(tile.li, want);
      before = tile.li;
    }
  }

  makeTile(frame) {
    const thumb = h('div', { class: 'frame-thumb' });
    if (this.aspect) thumb.style.aspectRatio = this.aspect;
    const state = h('span', { class: 'frame-state' });
    const time = h('span', { class: 'frame-time' });
    const worker = h('span', { class: 'frame-worker' });
    const li = h('li', { class: 'frame', dataset: { frame: String(frame) } },
      thumb,
      h('div', { class: 'frame-meta' },
        h('span', { class: 'frame-number', text: `Frame ${frame}` }),
        state),
      h('div', { class: 'frame-meta frame-meta-sub' }, worker, time));
    return { li, thumb, state, time, worker, frame, url: '', link: null, status: '' };
  }

  updateTile(tile, f, output) {
    const status = output && f.status !== 'failed' ? 'completed' : f.status;
    if (tile.status !== status) {
      tile.li.className = `frame frame-${status}`;
      tile.li.dataset.status = status;
      tile.status = status;
    }
    setText(tile.state, frameWords[status] ?? status);
    const retries = f.attempts > 1 ? ` · ${f.attempts} attempts` : '';
    setText(tile.time, f.renderSeconds > 0 ? `${formatSeconds(f.renderSeconds)}${retries}` : retries.slice(3));
    setText(tile.worker, f.worker || '');
    tile.worker.title = f.worker ? `Rendered by ${f.worker}` : '';

    if (output && !tile.url) {
      // The first URL is kept: every answer of the API signs the object
      // anew, and a changed src would load the image again each poll.
      tile.url = output.url;
      const size = output.sizeBytes ? `, ${formatBytes(output.sizeBytes)}` : '';
      const link = h('a', {
        href: output.url, download: output.fileName, class: 'frame-link',
        'aria-label': `Download frame ${tile.frame} (${output.fileName}${size})`,
        title: `Download ${output.fileName}`,
      });
      if (viewable.has(this.format)) {
        link.append(h('img', { src: output.url, alt: `Frame ${tile.frame}`, loading: 'lazy', decoding: 'async' }));
      } else {
        link.append(h('span', { class: 'frame-file' }, h('span', { class: 'frame-ext', text: extension(output.fileName) }), 'Download'));
      }
      replace(tile.thumb, link);
      tile.link = link;
    } else if (output && tile.link && tile.link.href !== output.url) {
      // A fresh signature keeps the download working after the first one
      // expires; changing href loads nothing.
      tile.link.href = output.url;
    } else if (!tile.url && !tile.thumb.firstChild) {
      tile.thumb.append(h('span', { class: 'frame-placeholder', 'aria-hidden': 'true' }));
    }
  }
}

function extension(name) {
  const dot = name.lastIndexOf('.');
  return dot >= 0 ? name.slice(dot + 1).toUpperCase() : 'FILE';
}
