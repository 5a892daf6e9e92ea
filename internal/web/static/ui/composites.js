// The images the scene's compositor File Output nodes wrote (depth, AO,
// cryptomatte, AOVs…), a group per node: a thumbnail for the images a
// browser shows, a download tile for the others (OpenEXR), each captioned
// with its frame and view, and the zip of them all.

import { h, replace, setText } from './dom.js';
import { formatBytes } from './format.js';

// Extensions of the images a browser shows in an <img>.
const viewable = new Set(['png', 'jpg', 'jpeg', 'webp', 'bmp']);

export class CompositeOutputs {
  constructor() {
    this.summary = h('p', { class: 'muted', id: 'composites-summary' });
    this.zip = h('div', { class: 'download-links', id: 'composites-zip' });
    this.body = h('div', { class: 'stack' });
    this.section = h('section', { id: 'composites-section', 'aria-labelledby': 'composites-title', hidden: true },
      h('div', { class: 'section-head' }, h('h2', { id: 'composites-title', text: 'Compositor outputs' }), this.summary),
      this.zip,
      this.body);
    this.groups = new Map(); // node name → its list
    this.tiles = new Map(); // file name → its tile
    this.zipLink = null;
  }

  /** reset removes the images shown: the page shows another page of
   * frames, whose downloads list their own. The zip stays. */
  reset() {
    // Hidden until the new page's downloads list an output (update).
    this.section.hidden = true;
    this.body.replaceChildren();
    this.groups.clear();
    this.tiles.clear();
    setText(this.summary, '');
  }

  /** update adds the images the downloads list, and refreshes the links. */
  update(downloads) {
    const outputs = downloads?.compositeNodeOutputs ?? [];
    const t = downloads?.transforms;
    const zip = t?.compositeNodesZipOutputs ?? (t?.compositeNodesZip ? { url: t.compositeNodesZip, fileName: 'compositeNodes.zip' } : null);
    // A page of a large job's frames may have no outputs of its own while
    // the job's zip of them all exists.
    if (outputs.length === 0 && !zip) return;
    this.section.hidden = false;
    for (const o of outputs) {
      const node = o.compositeNodeName ?? 'Compositor';
      let list = this.groups.get(node);
      if (!list) {
        list = h('ul', { class: 'frame-grid composite-grid', dataset: { node } });
        this.groups.set(node, list);
        this.body.append(h('section', { class: 'composite-node' },
          h('h3', { class: 'composite-node-name', text: node }), list));
      }
      const tile = this.tiles.get(o.fileName);
      if (tile) {
        // A fresh signature keeps the link working; the thumbnail keeps
        // its first URL so that it does not load again.
        if (tile.href !== o.url) tile.href = o.url;
        continue;
      }
      this.tiles.set(o.fileName, this.tile(list, o));
    }
    const n = this.tiles.size;
    setText(this.summary, n ? `${n} ${n === 1 ? 'image' : 'images'} from ${this.groups.size} ${this.groups.size === 1 ? 'node' : 'nodes'}` : '');

    if (zip && !this.zipLink) {
      this.zipLink = h('a', { class: 'button', id: 'download-composites-zip', href: zip.url, download: zip.fileName },
        'Download all compositor outputs', h('span', { class: 'button-note', text: ` .zip${zip.sizeBytes ? ` · ${formatBytes(zip.sizeBytes)}` : ''}` }));
      replace(this.zip, this.zipLink);
    } else if (zip && this.zipLink.href !== zip.url) {
      this.zipLink.href = zip.url;
    }
  }

  tile(list, o) {
    const ext = extension(o.fileName);
    const size = o.sizeBytes ? `, ${formatBytes(o.sizeBytes)}` : '';
    const caption = `Frame ${o.frame ?? '?'}${o.view ? ` · ${o.view}` : ''}`;
    const link = h('a', {
      href: o.url, download: baseName(o.fileName), class: 'frame-link',
      'aria-label': `Download ${o.fileName} (${caption}${size})`,
      title: `Download ${o.fileName}`,
    });
    if (viewable.has(ext)) {
      link.append(h('img', { src: o.url, alt: `${o.compositeNodeName ?? ''} ${caption}`, loading: 'lazy', decoding: 'async' }));
    } else {
      link.append(h('span', { class: 'frame-file' }, h('span', { class: 'frame-ext', text: ext.toUpperCase() || 'FILE' }), 'Download'));
    }
    const li = h('li', { class: 'frame frame-completed composite', dataset: { file: o.fileName } },
      h('div', { class: 'frame-thumb' }, link),
      h('div', { class: 'frame-meta' }, h('span', { class: 'frame-number', text: caption })),
      h('div', { class: 'frame-meta frame-meta-sub' }, h('span', { class: 'frame-worker', text: baseName(o.fileName), title: o.fileName })));
    // Frames come in order, so appending keeps each node's list in order.
    list.append(li);
    return link;
  }
}

function baseName(name) {
  return name.slice(name.lastIndexOf('/') + 1);
}

function extension(name) {
  const base = baseName(name);
  const dot = base.lastIndexOf('.');
  return dot > 0 ? base.slice(dot + 1).toLowerCase() : '';
}
