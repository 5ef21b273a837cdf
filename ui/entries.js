// Entries: filtered, ordered, paged; an entry's page with its blobs.
'use strict';

PAGES.entries = async (root) => {
  const q = new URLSearchParams(location.hash.split('?')[1] || '');
  const params = new URLSearchParams();
  for (const k of ['namespace', 'protocol', 'prefix', 'order', 'cursor']) if (q.get(k)) params.set(k, q.get(k));
  // A token limited to some namespaces lists one at a time.
  if (!ME.admin && !params.get('namespace')) {
    const { namespaces } = await api('GET', 'namespaces');
    if (namespaces.length === 0) { root.append(el('h1', {}, 'Entries'), el('p', {}, 'Your namespaces hold no entries.')); return; }
    params.set('namespace', namespaces[0].name);
    q.set('namespace', namespaces[0].name);
  }
  // A page of 50 unless the address asks for another size (1 to 1000).
  params.set('limit', String(Math.min(1000, Math.max(1, Number(q.get('limit')) || 50))));
  const page = await api('GET', 'entries?' + params);
  const prefix = q.get('prefix') || '';
  const shown = page.entries;
  const field = (name, label, input) => [el('label', { for: 'f-' + name }, label), input];
  const ns = el('input', { id: 'f-namespace', name: 'namespace', value: q.get('namespace') || '' });
  const pre = el('input', { id: 'f-prefix', name: 'prefix', value: prefix });
  const proto = el('select', { id: 'f-protocol', name: 'protocol' }, el('option', { value: '' }, 'any'),
    PROTOCOLS.map(p => el('option', { value: p, selected: q.get('protocol') === p }, p)));
  const order = el('select', { id: 'f-order', name: 'order' },
    [['lru', 'least recently used'], ['mru', 'most recently used'], ['size', 'largest']].map(([v, t]) =>
      el('option', { value: v, selected: (q.get('order') || 'lru') === v }, t)));
  const form = el('form', { id: 'entry-filter' }, field('namespace', 'Namespace', ns), field('protocol', 'Protocol', proto),
    field('prefix', 'Name prefix', pre), field('order', 'Order', order), el('button', { type: 'submit' }, 'Show'));
  form.addEventListener('submit', ev => {
    ev.preventDefault();
    const p = new URLSearchParams();
    for (const [k, v] of [['namespace', ns.value], ['protocol', proto.value], ['prefix', pre.value], ['order', order.value]]) if (v) p.set(k, v);
    location.hash = 'entries?' + p;
  });
  const next = new URLSearchParams(q);
  if (page.next_cursor) next.set('cursor', page.next_cursor);
  root.append(el('h1', {}, 'Entries'), form,
    el('p', {}, `${shown.length} entries on this page.`),
    el('table', { id: 'entries' },
      el('thead', {}, el('tr', {}, ['Name', 'Namespace', 'Protocol', 'Size', 'Blobs', 'Last used', ''].map(h => el('th', {}, h)))),
      el('tbody', {}, shown.map(e => el('tr', { 'data-id': e.id },
        el('td', {}, el('a', { href: '#entry?id=' + e.id, class: 'entry-link' }, e.name)), el('td', {}, e.namespace), el('td', {}, e.protocol),
        el('td', { class: 'num' }, fmtBytes(e.size)), el('td', { class: 'num' }, e.blobs), el('td', {}, fmtTime(e.last_used)),
        el('td', {}, !canWrite(e.namespace) ? 'read-only' : el('button', {
          type: 'button', class: 'delete', onclick: () => confirmDialog(
            `Delete entry "${e.name}" (${e.protocol}, namespace ${e.namespace}, ${fmtBytes(e.size)})? Entries that need it go too.`,
            'Delete entry', async () => { await api('DELETE', 'entries/' + e.id); route(); }),
        }, 'Delete…')))))),
    page.next_cursor ? el('p', {}, el('a', { href: '#entries?' + next, id: 'next-page' }, 'Next page →')) : '');
};

PAGES.entry = async (root) => {
  const id = new URLSearchParams(location.hash.split('?')[1] || '').get('id') || '';
  const e = await api('GET', 'entries/' + encodeURIComponent(id));
  const facts = [['Name', e.name], ['Namespace', e.namespace], ['Protocol', e.protocol], ['Size', fmtBytes(e.size)],
    ['Created', fmtTime(e.created)], ['Last used', fmtTime(e.last_used)], ['Deleting it frees', fmtBytes(e.only_here_bytes)]];
  root.append(el('h1', {}, 'Entry ', e.name),
    el('dl', { id: 'entry-facts' }, facts.map(([k, v]) => [el('dt', {}, k), el('dd', {}, v)])),
    el('h2', {}, 'Blobs it pins'),
    el('table', { id: 'entry-blobs' },
      el('thead', {}, el('tr', {}, ['Blob (BLAKE3)', 'sha256', 'Size', 'Pinned by entries'].map(h => el('th', {}, h)))),
      el('tbody', {}, e.pinned_blobs.map(b => el('tr', {},
        el('td', {}, el('code', {}, b.id)), el('td', {}, el('code', {}, b.sha256 ?? '—')),
        el('td', { class: 'num' }, fmtBytes(b.size)), el('td', { class: 'num' }, b.shared_by))))),
    el('p', {}, !canWrite(e.namespace) ? 'Read-only for this token.' : el('button', {
      type: 'button', class: 'delete', onclick: () => confirmDialog(
        `Delete entry "${e.name}" (${e.protocol}, namespace ${e.namespace})? It frees ${fmtBytes(e.only_here_bytes)}; entries that need it go too.`,
        'Delete entry', async () => { await api('DELETE', 'entries/' + e.id); location.hash = 'entries?namespace=' + encodeURIComponent(e.namespace); }),
    }, 'Delete…'), ' ', el('a', { href: '#entries' }, '← Entries')));
};
