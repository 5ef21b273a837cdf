// The overview for an admin: usage against the budget, traffic per
// protocol, and charts of the server's history. A namespace-limited token
// gets its namespaces' summary instead (overview-scoped.js). See app.js for
// el(), api() and PAGES; chart.js for chart() and breakdown().
'use strict';

PAGES.overview = async (root) => {
  if (!ME.admin) return scopedOverview(root);
  const range = chosenRange();
  const [stats, hist] = await Promise.all([api('GET', 'stats'), api('GET', 'history?range=' + range)]);
  const traffic = stats.traffic || {};
  let hits = 0, misses = 0, bin = 0, bout = 0;
  for (const t of Object.values(traffic)) { hits += t.hits; misses += t.misses; bin += t.bytes_in; bout += t.bytes_out; }
  const pts = hist.points;
  const refusals = pts.reduce((a, p) => a + p.refusals, 0);
  root.append(
    el('h1', {}, 'Overview'),
    el('div', { class: 'cards' },
      card('Used', fmtBytes(stats.used_bytes), 'used-bytes'),
      card('max_size', fmtBytes(stats.max_bytes)),
      card('hard_limit', fmtBytes(stats.hard_limit_bytes)),
      card('Watermarks (low / high)', fmtBytes(hist.low_watermark_bytes) + ' / ' + fmtBytes(hist.high_watermark_bytes)),
      card('Hit ratio', fmtRatio(hits, misses), 'hit-ratio'),
      card('Bytes in / out', fmtBytes(bin) + ' / ' + fmtBytes(bout), 'bytes-in-out'),
      card('Evictions (since start)', String(stats.evictions), 'evictions'),
      card('Refusals (last ' + range + ')', String(refusals), 'refusals')),
    el('h2', {}, 'Traffic per protocol (since start)'),
    el('table', { id: 'protocols' },
      el('thead', {}, el('tr', {}, ['Protocol', 'Hits', 'Misses', 'Hit ratio', 'Bytes in', 'Bytes out', 'Entries'].map(h => el('th', {}, h)))),
      el('tbody', {}, PROTOCOLS.map(p => {
        const t = traffic[p] || { hits: 0, misses: 0, bytes_in: 0, bytes_out: 0 };
        return el('tr', {}, el('td', {}, p), el('td', { class: 'num' }, t.hits), el('td', { class: 'num' }, t.misses),
          el('td', { class: 'num' }, fmtRatio(t.hits, t.misses)), el('td', { class: 'num' }, fmtBytes(t.bytes_in)),
          el('td', { class: 'num' }, fmtBytes(t.bytes_out)), el('td', { class: 'num' }, (stats.entries || {})[p] || 0));
      }))),
    el('h2', {}, 'Over time ', rangeSelect(), ` (${hist.bucket_seconds / 60}-minute buckets, UTC)`));
  const times = pts.map(p => p.t);
  const axis = axisOf(hist);
  // One line per protocol that had lookups in the range; a bucket without
  // lookups has no ratio and is left out of its line.
  const ratioSeries = PROTOCOLS.filter(proto => pts.some(p => p.hits[proto] + p.misses[proto] > 0)).map(proto => {
    const kept = pts.filter(p => p.hits[proto] + p.misses[proto] > 0);
    return { name: proto, times: kept.map(p => p.t), values: kept.map(p => 100 * p.hits[proto] / (p.hits[proto] + p.misses[proto])) };
  });
  const reasons = Object.keys((pts[0] || {}).refusals_by_reason || {});
  const pct = v => v.toFixed(1) + '%';
  const count = v => String(v);
  root.append(el('div', { class: 'charts' },
    chart('Used bytes', times, [{ name: 'used', values: pts.map(p => p.used_bytes) }],
      [{ name: 'hard_limit', value: hist.hard_limit_bytes }, { name: 'max_size', value: hist.max_bytes },
        { name: 'high watermark', value: hist.high_watermark_bytes }, { name: 'low watermark', value: hist.low_watermark_bytes }], fmtBytes, axis),
    chart('Hit ratio by protocol', times, ratioSeries.length ? ratioSeries : [{ name: 'no lookups', values: [] }], [], pct, axis),
    chart('Bytes in by protocol', times, breakdown(pts, 'bytes_in_by_protocol', PROTOCOLS, 'bytes_in'), [], fmtBytes, axis),
    chart('Bytes out by protocol', times, breakdown(pts, 'bytes_out_by_protocol', PROTOCOLS, 'bytes_out'), [], fmtBytes, axis),
    chart('Evictions', times, [{ name: 'entries evicted', values: pts.map(p => p.evictions) }], [], count, axis),
    chart('Refusals by reason', times, breakdown(pts, 'refusals_by_reason', reasons, 'refusals'), [], count, axis)));
};
