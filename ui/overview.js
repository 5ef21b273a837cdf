// The overview: usage against the budget, traffic per protocol, and charts
// of the server's history. See app.js for el(), api(), chart() and PAGES.
'use strict';

PAGES.overview = async (root) => {
  const range = sessionStorage.getItem('larder-range') || 'hour';
  const [stats, hist] = await Promise.all([api('GET', 'stats'), api('GET', 'history?range=' + range)]);
  const traffic = stats.traffic || {};
  let hits = 0, misses = 0, bin = 0, bout = 0;
  for (const t of Object.values(traffic)) { hits += t.hits; misses += t.misses; bin += t.bytes_in; bout += t.bytes_out; }
  const refusals = hist.points.reduce((a, p) => a + p.refusals, 0);
  const select = el('select', { id: 'range', 'aria-label': 'Time range' },
    ['hour', 'day', 'week'].map(r => el('option', { value: r, selected: r === range }, 'last ' + r)));
  select.addEventListener('change', () => { sessionStorage.setItem('larder-range', select.value); route(); });
  root.append(
    el('h1', {}, 'Overview'),
    el('div', { class: 'cards' },
      card('Used', fmtBytes(stats.used_bytes), 'used-bytes'),
      card('max_size', fmtBytes(stats.max_bytes)),
      card('hard_limit', fmtBytes(stats.hard_limit_bytes)),
      card('Watermarks (low / high)', fmtBytes(hist.low_watermark_bytes) + ' / ' + fmtBytes(hist.high_watermark_bytes)),
      card('Hit ratio', fmtRatio(hits, misses), 'hit-ratio'),
      card('Bytes in / out', fmtBytes(bin) + ' / ' + fmtBytes(bout)),
      card('Evictions (since start)', String(stats.evictions), 'evictions'),
      card('Refusals (' + range + ')', String(refusals))),
    el('h2', {}, 'Hit ratio per protocol (since start)'),
    el('table', { id: 'protocols' },
      el('thead', {}, el('tr', {}, ['Protocol', 'Hits', 'Misses', 'Hit ratio', 'Bytes in', 'Bytes out', 'Entries'].map(h => el('th', {}, h)))),
      el('tbody', {}, PROTOCOLS.map(p => {
        const t = traffic[p] || { hits: 0, misses: 0, bytes_in: 0, bytes_out: 0 };
        return el('tr', {}, el('td', {}, p), el('td', { class: 'num' }, t.hits), el('td', { class: 'num' }, t.misses),
          el('td', { class: 'num' }, fmtRatio(t.hits, t.misses)), el('td', { class: 'num' }, fmtBytes(t.bytes_in)),
          el('td', { class: 'num' }, fmtBytes(t.bytes_out)), el('td', { class: 'num' }, (stats.entries || {})[p] || 0));
      }))),
    el('h2', {}, 'Over time ', select, ` (${hist.bucket_seconds / 60}-minute buckets)`));
  const pts = hist.points;
  const times = pts.map(p => p.t);
  const axis = { end: times.length ? times[times.length - 1] : 0, span: hist.bucket_seconds * (hist.buckets - 1) };
  // One line per protocol that had lookups in the range; a bucket without
  // lookups has no ratio and is left out of its line.
  const ratioSeries = PROTOCOLS.filter(proto => pts.some(p => p.hits[proto] + p.misses[proto] > 0)).map(proto => {
    const kept = pts.filter(p => p.hits[proto] + p.misses[proto] > 0);
    return { name: proto, times: kept.map(p => p.t), values: kept.map(p => 100 * p.hits[proto] / (p.hits[proto] + p.misses[proto])) };
  });
  const pct = v => v.toFixed(1) + '%';
  const count = v => String(v);
  root.append(el('div', { class: 'charts' },
    chart('Used bytes', times, [{ name: 'used', values: pts.map(p => p.used_bytes) }],
      [{ name: 'max_size', value: hist.max_bytes }, { name: 'high watermark', value: hist.high_watermark_bytes }], fmtBytes, axis),
    chart('Hit ratio by protocol', times, ratioSeries.length ? ratioSeries : [{ name: 'no lookups', values: [] }], [], pct, axis),
    chart('Bytes in and out', times, [{ name: 'in', values: pts.map(p => p.bytes_in) }, { name: 'out', values: pts.map(p => p.bytes_out) }], [], fmtBytes, axis),
    chart('Evictions and refusals', times, [{ name: 'evictions', values: pts.map(p => p.evictions) }, { name: 'refusals', values: pts.map(p => p.refusals) }], [], count, axis)));
};
