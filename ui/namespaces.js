// The namespaces: a sortable table, a namespace's chart, purge.
'use strict';

// One namespace's lookups and usage over the chosen range.
async function namespaceCharts(ns) {
  const range = chosenRange();
  const hist = await api('GET', `history?range=${range}&namespace=${encodeURIComponent(ns)}`);
  const pts = hist.points;
  const times = pts.map(p => p.t);
  const axis = axisOf(hist);
  return el('section', { id: 'namespace-charts' }, el('h2', {}, `Namespace ${ns} `, rangeSelect()),
    el('div', { class: 'charts' },
      chart('Used bytes', times, [{ name: 'used', values: pts.map(p => p.used_bytes) }], [], fmtBytes, axis),
      chart('Lookups', times, [{ name: 'hits', values: pts.map(p => p.hits) }, { name: 'misses', values: pts.map(p => p.misses) }], [], String, axis)));
}

// What purging `n` removes, by name: its largest entries, and how many more.
async function purgeQuestion(n) {
  const SHOWN = 10;
  const { entries } = await api('GET', `entries?namespace=${encodeURIComponent(n.name)}&order=size&limit=${SHOWN}`);
  const more = n.entries - entries.length;
  return [`Purge namespace "${n.name}": remove all its entries (${n.entries}, ${fmtBytes(n.used_bytes)})? This cannot be undone.`,
    el('ul', { id: 'purge-list' }, entries.map(e => el('li', {}, `${e.name} (${e.protocol}, ${fmtBytes(e.size)})`)),
      more > 0 ? el('li', {}, `and ${more} more`) : null)];
}

PAGES.namespaces = async (root) => {
  const { namespaces } = await api('GET', 'namespaces');
  const chosen = new URLSearchParams(location.hash.split('?')[1] || '').get('ns');
  const rows = namespaces.map(n => ({
    ...n, quota_bytes: n.quota_bytes ?? null,
    // Sorts below every measured ratio when there were no lookups.
    hit_ratio: n.hits + n.misses ? n.hits / (n.hits + n.misses) : -1,
  }));
  root.append(el('h1', {}, 'Namespaces'),
    chosen ? await namespaceCharts(chosen) : el('p', {}, 'Choose a namespace to chart it.'),
    rows.length === 0 ? el('p', {}, 'No namespace holds entries yet.') :
      sortableTable('namespaces', [
        { key: 'name', label: 'Namespace', fmt: v => el('a', { href: '#namespaces?ns=' + encodeURIComponent(v), class: 'ns-link' }, v) },
        { key: 'used_bytes', label: 'Used', num: true, fmt: fmtBytes },
        { key: 'quota_bytes', label: 'Quota', num: true, fmt: v => v === null ? 'none' : fmtBytes(v) },
        { key: 'entries', label: 'Entries', num: true },
        { key: 'hit_ratio', label: 'Hit ratio', num: true, fmt: v => v < 0 ? '—' : (100 * v).toFixed(1) + '%' },
        { key: 'last_used', label: 'Last used', fmt: fmtTime },
      ], rows, n => !canWrite(n.name) ? 'read-only' : el('button', {
        type: 'button', class: 'purge', 'data-namespace': n.name,
        onclick: async () => confirmDialog(await purgeQuestion(n), `Purge ${n.name}`,
          async () => { await api('DELETE', 'namespaces/' + encodeURIComponent(n.name)); route(); }),
      }, 'Purge…')));
};
