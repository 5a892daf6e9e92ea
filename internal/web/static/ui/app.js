// The dashboard's entry point: the session (the API key in this tab's
// session storage), the router over location.hash, and the frame around
// the views.

import { Api, ApiError } from './api.js';
import { h, replace } from './dom.js';
import { signInView } from './views/signin.js';
import { jobsView } from './views/jobs.js';
import { newJobView } from './views/newjob.js';
import { jobView } from './views/job.js';

// sessionStorage, not localStorage: the key is gone when the tab closes,
// and other tabs must sign in themselves.
const keyName = 'renderfarm.apiKey';

const session = {
  get key() {
    return sessionStorage.getItem(keyName) ?? '';
  },
  set key(value) {
    if (value) sessionStorage.setItem(keyName, value);
    else sessionStorage.removeItem(keyName);
  },
};

const main = document.getElementById('main');
const topnav = document.getElementById('topnav');
const connection = document.getElementById('connection');

const api = new Api(() => session.key, (err) => signOut(`The farm refused the API key: ${err.message}`));

// Routes are hash based so that the server needs to answer only "/".
const routes = [
  { pattern: /^#?\/?$/, view: jobsView, nav: 'nav-jobs' },
  { pattern: /^#\/new$/, view: newJobView, nav: 'nav-new' },
  { pattern: /^#\/jobs\/([0-9a-fA-F-]{1,64})$/, view: jobView, nav: 'nav-jobs' },
];

let current = null; // the AbortController of the view on screen
let firstRender = true;
let pendingMessage = ''; // shown on the sign-in page after a sign-out

function render() {
  current?.abort();
  current = new AbortController();
  const signal = current.signal;
  setConnection(null);

  if (!session.key) {
    topnav.hidden = true;
    signInView(main, { api, signal, onSignedIn, message: pendingMessage });
    pendingMessage = '';
    afterRender();
    return;
  }
  topnav.hidden = false;

  const hash = location.hash;
  const route = routes.find((r) => r.pattern.test(hash));
  for (const link of topnav.querySelectorAll('a')) {
    if (route && link.id === route.nav) link.setAttribute('aria-current', 'page');
    else link.removeAttribute('aria-current');
  }
  if (!route) {
    document.title = 'Not found · renderfarm';
    replace(main, h('div', { class: 'page' },
      h('h1', { text: 'No such page' }),
      h('p', {}, h('a', { href: '#/' }, 'Back to the jobs'))));
    afterRender();
    return;
  }
  const params = route.pattern.exec(hash).slice(1);
  main.replaceChildren();
  route.view(main, { api, signal, params, setConnection, navigate });
  afterRender();
}

// afterRender moves focus to the new page's heading, so keyboard and screen
// reader users start at the top of what changed; not on the first load,
// where the browser's own start is right.
function afterRender() {
  if (firstRender) {
    firstRender = false;
    return;
  }
  const heading = main.querySelector('h1');
  if (heading) {
    heading.tabIndex = -1;
    heading.focus({ preventScroll: true });
  }
  window.scrollTo(0, 0);
}

function navigate(hash) {
  if (location.hash === hash) render();
  else location.hash = hash;
}

function onSignedIn(key) {
  session.key = key;
  render();
}

function signOut(message = '') {
  session.key = '';
  pendingMessage = message;
  render();
}

/** setConnection shows or hides the banner about losing the farm. */
function setConnection(err) {
  if (err instanceof ApiError && err.status === 0) {
    connection.textContent = 'Lost contact with the farm. Retrying…';
    connection.hidden = false;
  } else {
    connection.hidden = true;
    connection.textContent = '';
  }
}

document.getElementById('sign-out').addEventListener('click', () => signOut('Signed out.'));

// The skip link's target is not a route.
document.querySelector('.skip-link').addEventListener('click', (e) => {
  e.preventDefault();
  main.focus();
});

window.addEventListener('hashchange', () => {
  // Fragments that are not routes (such as #main) leave the view alone.
  if (location.hash === '' || location.hash.startsWith('#/')) render();
});

render();
