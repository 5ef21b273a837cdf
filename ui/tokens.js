// Tokens: list, create (the secret shown once), revoke.
'use strict';

PAGES.tokens = async (root) => {
  const { tokens } = await api('GET', 'tokens');
  const perms = t => ['read', 'write', 'admin', 'metrics'].filter(p => t[p]).join(', ') || 'none';
  const name = el('input', { id: 't-name', required: true });
  const nss = el('input', { id: 't-namespaces', placeholder: 'team-a, team-b (or *)' });
  const ttl = el('input', { id: 't-ttl', value: '30d', size: 6 });
  const box = (id, label, checked) => [el('input', { type: 'checkbox', id, checked }), el('label', { for: id }, label)];
  const result = el('div', { id: 'new-token', 'aria-live': 'polite' });
  const form = el('form', { id: 'token-form' },
    el('label', { for: 't-name' }, 'Name'), name,
    el('label', { for: 't-namespaces' }, 'Namespaces'), nss,
    box('t-read', 'read', true), box('t-write', 'write', false), box('t-admin', 'admin', false),
    el('label', { for: 't-ttl' }, 'Expires after'), ttl,
    el('button', { type: 'submit' }, 'Create token'));
  form.addEventListener('submit', async ev => {
    ev.preventDefault();
    const on = id => document.getElementById(id).checked;
    try {
      const made = await api('POST', 'tokens', {
        name: name.value, ttl: ttl.value || undefined,
        namespaces: nss.value.split(',').map(s => s.trim()).filter(Boolean),
        read: on('t-read'), write: on('t-write'), admin: on('t-admin'),
      });
      const secret = el('div', { class: 'secret', id: 'token-secret' }, made.token);
      const copy = el('button', { type: 'button', id: 'copy-token' }, 'Copy');
      copy.addEventListener('click', async () => {
        try { await navigator.clipboard.writeText(made.token); copy.textContent = 'Copied'; } catch (_) { copy.textContent = 'Select the text to copy'; }
      });
      // Shown once: the server keeps only its id.
      result.replaceChildren(el('p', {}, 'The secret is shown this once; copy it now.'), secret, copy,
        el('p', {}, el('a', { href: '#tokens', onclick: () => route() }, 'Done')));
      form.reset();
    } catch (e) {
      result.replaceChildren(el('p', { class: 'error', role: 'alert' }, e.message));
    }
  });
  root.append(el('h1', {}, 'Tokens'), el('h2', {}, 'Create'), form, result, el('h2', {}, 'Tokens'),
    tokens.length === 0 ? el('p', {}, 'No token has been minted through the admin API.') :
      el('table', { id: 'tokens' },
        el('thead', {}, el('tr', {}, ['Name', 'Namespaces', 'Permissions', 'Expires', 'Last used', 'Status', ''].map(h => el('th', {}, h)))),
        el('tbody', {}, tokens.map(t => el('tr', { 'data-id': t.id },
          el('td', {}, t.name), el('td', {}, (t.namespaces || []).join(', ')), el('td', {}, perms(t)),
          el('td', {}, fmtTime(t.expires_at)), el('td', {}, fmtTime(t.last_used)),
          el('td', {}, t.revoked ? 'revoked' : 'active'),
          el('td', {}, t.revoked ? '' : el('button', {
            type: 'button', class: 'revoke', onclick: () => confirmDialog(
              `Revoke token "${t.name}"? Clients using it are refused from now on.`, 'Revoke',
              async () => { await api('DELETE', 'tokens/' + encodeURIComponent(t.id)); route(); }),
          }, 'Revoke…')))))));
};
