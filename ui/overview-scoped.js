// The overview for a token limited to some namespaces: their used bytes,
// hit ratio and lookups, in total and over time. Server-wide numbers stay
// an admin's. See overview.js.
'use strict';

// The most namespaces charted one by one; the totals count them all.
const CHARTED = 8;

async function scopedOverview(root) {
  const range = chosenRange();
  const { namespaces } = await api('GET', 'namespaces');
  const charted = namespaces.slice().sort((a, b) => b.used_bytes - a.used_bytes).slice(0, CHARTED);
  const hists = await Promise.all(charted.map(n =>
    api('GET', `history?range=${range}&namespace=${encodeURIComponent(n.name)}`)));
  const total = k => namespaces.reduce((a, n) => a + n[k], 0);
  const hits = total('hits'), misses = total('misses');
  root.append(el('h1', {}, 'Overview of your namespaces'),
    el('div', { class: 'cards' },
      card('Namespaces', String(namespaces.length), 'namespace-count'),
      card('Used', fmtBytes(total('used_bytes')), 'used-bytes'),
      card('Entries', String(total('entries'))),
      card('Hit ratio (since start)', fmtRatio(hits, misses), 'hit-ratio'),
      card('Lookups (since start)', `hits ${hits}, misses ${misses}`, 'lookups')));
  if (hists.length === 0) {
    root.append(el('p', {}, 'Your namespaces hold no entries yet.'));
    return;
  }
  // Lookups of all charted namespaces added up per bucket.
  const byTime = new Map();
  for (const h of hists) for (const p of h.points) {
    const b = byTime.get(p.t) || { hits: 0, misses: 0 };
    b.hits += p.hits; b.misses += p.misses;
    byTime.set(p.t, b);
  }
  const times = [...byTime.keys()].sort((a, b) => a - b);
  const axis = axisOf(hists[0]);
  axis.end = Math.max(axis.end, ...times);
  const per = (f) => charted.map((n, i) => ({ name: n.name, times: hists[i].points.map(p => p.t), values: hists[i].points.map(f) }))
    .filter(s => s.values.length > 0);
  const ratios = charted.map((n, i) => {
    const kept = hists[i].points.filter(p => p.hits + p.misses > 0);
    return { name: n.name, times: kept.map(p => p.t), values: kept.map(p => 100 * p.hits / (p.hits + p.misses)) };
  }).filter(s => s.values.length > 0);
  root.append(el('h2', {}, 'Over time ', rangeSelect(),
    namespaces.length > CHARTED ? ` (the ${CHARTED} largest of ${namespaces.length} namespaces)` : ''),
  el('div', { class: 'charts' },
    chart('Used bytes by namespace', times, per(p => p.used_bytes), [], fmtBytes, axis),
    chart('Hit ratio by namespace', times, ratios.length ? ratios : [{ name: 'no lookups', values: [] }], [], v => v.toFixed(1) + '%', axis),
    chart('Lookups', times, [{ name: 'hits', values: times.map(t => byTime.get(t).hits) },
      { name: 'misses', values: times.map(t => byTime.get(t).misses) }], [], String, axis)));
}
