// Health: version, uptime, readiness, workers, recent evictions.
'use strict';

PAGES.health = async (root) => {
  const [stats, { workers, recent_evictions: evictions }] = await Promise.all([api('GET', 'stats'), api('GET', 'workers')]);
  const ready = await fetch('/readyz', { cache: 'no-store' }).then(r => r.ok ? 'ready' : 'not ready (' + r.status + ')', () => 'unreachable');
  const up = stats.uptime_seconds;
  root.append(el('h1', {}, 'Health'),
    el('div', { class: 'cards' }, card('Version', stats.version), card('Uptime', `${Math.floor(up / 3600)}h ${Math.floor(up / 60) % 60}m ${up % 60}s`),
      card('Readiness', ready, 'readiness'), card('Uploads in progress', String(stats.uploads_in_progress)),
      card('Evicted', `${stats.evictions} entries, ${fmtBytes(stats.evicted_bytes)}`)),
    el('h2', {}, 'Background workers'),
    el('table', { id: 'workers' },
      el('thead', {}, el('tr', {}, ['Worker', 'Every', 'Runs', 'Failures', 'Last run', 'Took', 'Last error'].map(h => el('th', {}, h)))),
      el('tbody', {}, Object.entries(workers).map(([n, w]) => el('tr', {},
        el('td', {}, n), el('td', { class: 'num' }, w.every_secs + ' s'), el('td', { class: 'num' }, w.runs),
        el('td', { class: 'num' }, w.failures), el('td', {}, fmtTime(w.last_run)),
        el('td', { class: 'num' }, w.last_duration_ms === null ? '—' : w.last_duration_ms + ' ms'),
        el('td', {}, w.last_error || ''))))),
    el('h2', {}, 'Recent evictions'),
    evictions.length === 0 ? el('p', {}, 'No eviction has removed anything since the server started.') :
      el('table', { id: 'evictions' },
        el('thead', {}, el('tr', {}, ['When', 'Target', 'Entries removed', 'Blobs removed', 'Freed', 'Held by leases', 'Usage after', 'Reached'].map(h => el('th', {}, h)))),
        el('tbody', {}, evictions.map(r => el('tr', {},
          el('td', {}, fmtTime(r.at)), el('td', { class: 'num' }, fmtBytes(r.target)), el('td', { class: 'num' }, r.entries_removed),
          el('td', { class: 'num' }, r.blobs_removed), el('td', { class: 'num' }, fmtBytes(r.bytes_freed)),
          el('td', { class: 'num' }, fmtBytes(r.bytes_leased)),
          el('td', { class: 'num' }, fmtBytes(r.usage_after)), el('td', {}, r.reached ? 'yes' : 'no'))))));
};
