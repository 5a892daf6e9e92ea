// Sign in with an API key. The key is checked against the farm before it is
// kept, so a wrong key is answered with the farm's own words.

import { ApiError, isAbort } from '../api.js';
import { h, replace } from '../dom.js';

export function signInView(root, { api, signal, onSignedIn, message }) {
  document.title = 'Sign in · renderfarm';
  const input = h('input', {
    id: 'api-key', name: 'api-key', type: 'password', required: true,
    autocomplete: 'off', spellcheck: 'false', autocapitalize: 'off',
    'aria-describedby': 'api-key-hint',
  });
  const error = h('p', { id: 'signin-error', class: 'callout callout-error', role: 'alert', hidden: true });
  const notice = message
    ? h('p', { id: 'signin-notice', class: 'callout callout-info', role: 'status', text: message })
    : null;
  const submit = h('button', { type: 'submit', class: 'button button-primary', id: 'sign-in' }, 'Sign in');

  const form = h('form', { class: 'signin-form', novalidate: true, onsubmit: onSubmit },
    h('div', { class: 'field' },
      h('label', { for: 'api-key', text: 'API key' }),
      input,
      h('p', { class: 'hint', id: 'api-key-hint' },
        'Create one on the farm with ', h('code', { text: 'renderfarm keys create --workspace NAME' }),
        '. It is kept in this tab only and forgotten when the tab closes.')),
    error,
    submit);

  replace(root, h('div', { class: 'signin' },
    h('section', { class: 'card signin-card', 'aria-labelledby': 'signin-title' },
      h('h1', { id: 'signin-title', text: 'Sign in' }),
      h('p', { class: 'lead', text: 'Upload Blender scenes, render them on the farm and watch the frames arrive.' }),
      notice,
      form)));
  input.focus();

  async function onSubmit(e) {
    e.preventDefault();
    const key = input.value.trim();
    error.hidden = true;
    if (!key) {
      showError('Enter an API key.');
      return;
    }
    submit.disabled = true;
    submit.textContent = 'Signing in…';
    try {
      await api.checkKey(key, signal);
      onSignedIn(key);
    } catch (err) {
      if (isAbort(err)) return;
      showError(err instanceof ApiError ? err.message : String(err));
      submit.disabled = false;
      submit.textContent = 'Sign in';
    }
  }

  function showError(text) {
    error.textContent = text;
    error.hidden = false;
    input.setAttribute('aria-invalid', 'true');
    input.setAttribute('aria-describedby', 'signin-error api-key-hint');
    input.focus();
  }
}
