// Polling that stays polite: one request round at a time, a pause between
// rounds, and none at all while the tab is hidden.

/**
 * poll runs task now and then again intervalMs after each run ends, until
 * task returns false or signal aborts. While the page is hidden nothing
 * runs; when it shows again, task runs at once. refresh() asks for a run
 * now, or right after the one under way, for changes the user just made;
 * it starts again a poll whose task returned false (a job that ended, and
 * is then rendered again), but not one whose signal aborted.
 *
 * @param {() => Promise<boolean|void>} task
 * @param {number} intervalMs
 * @param {AbortSignal} signal
 * @returns {{refresh: () => void}}
 */
export function poll(task, intervalMs, signal) {
  let timer = 0;
  let running = false;
  let again = false; // refresh() was called during a run
  let done = false;

  const stop = () => {
    done = true;
    clearTimeout(timer);
    document.removeEventListener('visibilitychange', onVisibility);
  };

  async function tick() {
    timer = 0;
    if (done || signal.aborted) return;
    if (document.hidden) return; // onVisibility starts again
    running = true;
    again = false;
    let more = true;
    try {
      more = (await task()) !== false;
    } catch (err) {
      // The task reports its own errors; a failed round is retried.
      if (err?.name !== 'AbortError') console.warn('poll:', err);
    } finally {
      running = false;
    }
    if (!more) stop();
    else if (!done && !signal.aborted) timer = setTimeout(tick, again ? 0 : intervalMs);
  }

  function onVisibility() {
    if (!document.hidden && !running && !timer && !done) tick();
  }

  document.addEventListener('visibilitychange', onVisibility);
  signal.addEventListener('abort', stop, { once: true });
  tick();

  return {
    refresh() {
      if (signal.aborted) return;
      if (done) {
        done = false;
        document.addEventListener('visibilitychange', onVisibility);
        tick();
        return;
      }
      if (running) {
        again = true;
        return;
      }
      clearTimeout(timer);
      tick();
    },
  };
}
