// The client of the farm's public API. The dashboard uses nothing else:
// what it can do, any Renderjuice client can do too.

const base = '/api/external/v1';

/** An answer of the API that is not a success, with its code, message and
 * the request field it is about, as the API sends them. */
export class ApiError extends Error {
  constructor(status, code, message, field) {
    super(message);
    this.name = 'ApiError';
    this.status = status;
    this.code = code;
    this.field = field ?? '';
  }
}

export function isAbort(err) {
  return err?.name === 'AbortError';
}

/** errorFromBody reads the API's {"error": {...}} shape, and makes up a
 * plain message when a proxy or the network answered instead. */
function errorFromBody(status, body) {
  const e = body && typeof body === 'object' ? body.error : null;
  if (e && typeof e.message === 'string') {
    return new ApiError(status, e.code ?? '', e.message, e.field);
  }
  return new ApiError(status, '', `The farm answered HTTP ${status} without an explanation.`);
}

export class Api {
  /**
   * @param {() => string} getKey returns the API key to send.
   * @param {(err: ApiError) => void} onUnauthorized is told when the farm
   *   refuses the key, so the app can ask for another.
   */
  constructor(getKey, onUnauthorized) {
    this.getKey = getKey;
    this.onUnauthorized = onUnauthorized;
  }

  async request(method, path, { body, signal, key } = {}) {
    const headers = { Authorization: `Bearer ${key ?? this.getKey()}` };
    const init = { method, headers, signal, cache: 'no-store' };
    if (body !== undefined) {
      headers['Content-Type'] = 'application/json';
      init.body = JSON.stringify(body);
    }
    let res;
    try {
      res = await fetch(base + path, init);
    } catch (err) {
      if (isAbort(err)) throw err;
      throw new ApiError(0, 'NETWORK', 'The farm cannot be reached. Check that it is running and that this computer can reach it.');
    }
    const text = await res.text();
    let data = null;
    if (text) {
      try {
        data = JSON.parse(text);
      } catch {
        data = null;
      }
    }
    if (!res.ok) {
      const err = errorFromBody(res.status, data);
      if (res.status === 401 && key === undefined) this.onUnauthorized?.(err);
      throw err;
    }
    return data;
  }

  /** checkKey asks for the smallest page of jobs with a key that is not yet
   * stored, to learn whether the farm takes it. */
  checkKey(key, signal) {
    return this.request('GET', '/jobs?page=1&pageSize=1', { key, signal });
  }

  listJobs({ page = 1, pageSize = 20, status = '' } = {}, signal) {
    const q = new URLSearchParams({ page: String(page), pageSize: String(pageSize) });
    if (status) q.set('status', status);
    return this.request('GET', `/jobs?${q}`, { signal });
  }

  /** runningProgress answers the counters of the running jobs, without
   * their frames (frames=none): a list of jobs shows a meter each, and a
   * job of 100,000 frames is megabytes with them. */
  runningProgress(signal) {
    return this.request('GET', '/jobs/progress?frames=none', { signal });
  }

  async getJob(id, signal) {
    const body = await this.request('GET', `/jobs/${encodeURIComponent(id)}`, { signal });
    return body.data;
  }

  progress(id, signal) {
    return this.request('GET', `/jobs/${encodeURIComponent(id)}/progress`, { signal });
  }

  /** progressCounts is progress without the frames, as runningProgress. */
  progressCounts(id, signal) {
    return this.request('GET', `/jobs/${encodeURIComponent(id)}/progress?frames=none`, { signal });
  }

  /** progressOfFrames is progress listing only the frames numbered first
   * to last, and counting them all: a page of a large job's frames. */
  progressOfFrames(id, first, last, signal) {
    return this.request('GET', `/jobs/${encodeURIComponent(id)}/progress?frames=${first}-${last}`, { signal });
  }

  /** downloadsOfFrames answers the files of the frames numbered first to
   * last, and the zip and the video: only their URLs are signed. It asks
   * for the first 100,000 of them, as downloads does: a thousand frames
   * of many compositor outputs each may make more than one answer lists
   * whole. */
  downloadsOfFrames(id, first, last, signal) {
    return this.request('GET', `/jobs/${encodeURIComponent(id)}/downloads?frames=${first}-${last}&page=1&pageSize=100000`, { signal });
  }

  /** downloads answers the job's files: the first 100,000 (the most one
   * answer lists), which is every file of all but the largest jobs. */
  downloads(id, signal) {
    return this.request('GET', `/jobs/${encodeURIComponent(id)}/downloads?page=1&pageSize=100000`, { signal });
  }

  /** logTail answers the last lines of the job's Blender log, or [] when the
   * farm keeps none for it (or is too old to offer the route). */
  async logTail(id, signal) {
    try {
      const body = await this.request('GET', `/jobs/${encodeURIComponent(id)}/log`, { signal });
      return Array.isArray(body?.lines) ? body.lines.filter((l) => typeof l === 'string') : [];
    } catch (err) {
      if (err instanceof ApiError && (err.status === 404 || err.status === 405)) return [];
      throw err;
    }
  }

  /** blenderVersions answers the Blender versions the farm's live render
   * nodes run, oldest first: [{ version, workers }]. */
  async blenderVersions(signal) {
    const body = await this.request('GET', '/blender', { signal });
    return Array.isArray(body?.versions) ? body.versions : [];
  }

  createUpload(fileName, fileType, signal) {
    return this.request('POST', '/uploads', { body: { fileName, fileType }, signal });
  }

  createJob(slug, signal) {
    return this.request('POST', '/jobs', { body: { slug }, signal });
  }

  validate(id, signal) {
    return this.request('POST', `/jobs/${encodeURIComponent(id)}/validate`, { signal });
  }

  render(id, requestedRenderConfig, signal) {
    return this.request('POST', `/jobs/${encodeURIComponent(id)}/render`, { body: { requestedRenderConfig }, signal });
  }

  cancel(id, signal) {
    return this.request('POST', `/jobs/${encodeURIComponent(id)}/cancel`, { signal });
  }

  suspend(id, signal) {
    return this.request('POST', `/jobs/${encodeURIComponent(id)}/suspend`, { signal });
  }

  /** resume renders the rest of a suspended job; it approves scout frames too. */
  resume(id, signal) {
    return this.request('POST', `/jobs/${encodeURIComponent(id)}/resume`, { signal });
  }

  /** retry renders frames of a job that ended again: { frames: 'failed' } or { frameRanges: [...] }. */
  retry(id, body, signal) {
    return this.request('POST', `/jobs/${encodeURIComponent(id)}/retry`, { body, signal });
  }

  /** setPriority changes a job's priority, 0 (lowest) to 100 (highest). */
  setPriority(id, priority, signal) {
    return this.request('PATCH', `/jobs/${encodeURIComponent(id)}`, { body: { priority }, signal });
  }
}

/**
 * putFile sends a file to a presigned upload URL with one plain PUT and
 * reports progress. XMLHttpRequest, because fetch has no upload progress.
 * The body is a slice without a type so that no Content-Type header is
 * sent: a presigned URL signs no headers, and some stores refuse ones it
 * did not expect.
 *
 * @param {string} url
 * @param {File} file
 * @param {(loaded: number, total: number) => void} onProgress
 * @param {AbortSignal} signal
 */
export function putFile(url, file, onProgress, signal) {
  return new Promise((resolve, reject) => {
    const xhr = new XMLHttpRequest();
    const abort = () => xhr.abort();
    xhr.open('PUT', url);
    xhr.upload.addEventListener('progress', (e) => {
      if (e.lengthComputable) onProgress(e.loaded, e.total);
    });
    xhr.addEventListener('load', () => {
      signal?.removeEventListener('abort', abort);
      if (xhr.status >= 200 && xhr.status < 300) {
        onProgress(file.size, file.size);
        resolve();
        return;
      }
      let body = null;
      try {
        body = JSON.parse(xhr.responseText);
      } catch {
        body = null;
      }
      reject(errorFromBody(xhr.status, body));
    });
    xhr.addEventListener('error', () => {
      signal?.removeEventListener('abort', abort);
      reject(new ApiError(0, 'NETWORK', 'The upload was interrupted: the connection to the farm failed. Try again.'));
    });
    xhr.addEventListener('abort', () => {
      reject(new DOMException('The upload was stopped.', 'AbortError'));
    });
    if (signal?.aborted) {
      reject(new DOMException('The upload was stopped.', 'AbortError'));
      return;
    }
    signal?.addEventListener('abort', abort, { once: true });
    xhr.send(file.slice(0, file.size, ''));
  });
}
