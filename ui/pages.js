// The dashboard's pages; see app.js for el(), api(), chart() and PAGES.
'use strict';

const PROTOCOLS = ['oci', 'gha', 'http', 'turbo', 'nx'];
const sum = (o) => Object.values(o || {}).reduce((a, b) => a + b, 0);

function card(label, value, id) {
  return el('div', { class: 'card' }, el('div', {}, label), el('div', { class: 'value', id }, value));
}

// ---------------------------------------------------------------- overview

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

// ---------------------------------------------------------------- namespaces

// Sortable by any column; the header button says the order.
function sortableTable(id, columns, rows, actions) {
  let key = columns[0].key, dir = 1;
  const tbody = el('tbody', {});
  const head = el('tr', {});
  const draw = () => {
    const sorted = rows.slice().sort((a, b) => {
      const x = a[key] ?? '', y = b[key] ?? '';
      return (x < y ? -1 : x > y ? 1 : 0) * dir;
    });
    tbody.replaceChildren(...sorted.map(r => el('tr', {},
      columns.map(c => el('td', { class: c.num ? 'num' : null }, c.fmt ? c.fmt(r[c.key]) : (r[c.key] ?? '—'))),
      actions ? el('td', {}, actions(r)) : null)));
    head.replaceChildren(...columns.map(c => el('th', { 'aria-sort': c.key === key ? (dir > 0 ? 'ascending' : 'descending') : 'none' },
      el('button', { type: 'button', 'data-key': c.key, onclick: () => { dir = c.key === key ? -dir : 1; key = c.key; draw(); } }, c.label))),
    actions ? el('th', {}, '') : null);
  };
  draw();
  return el('table', { id }, el('thead', {}, head), tbody);
}

// A modal confirmation that says exactly what will happen.
function confirmDialog(text, action, onConfirm) {
  const dialog = el('dialog', { id: 'confirm' });
  const done = () => { dialog.close(); dialog.remove(); };
  dialog.append(el('p', {}, text),
    el('button', { type: 'button', id: 'confirm-yes', onclick: async () => { done(); await onConfirm(); } }, action),
    el('button', { type: 'button', onclick: done }, 'Cancel'));
  document.body.append(dialog);
  dialog.showModal();
}

// One namespace's lookups and usage over the chosen range.
async function namespaceCharts(ns) {
  const range = sessionStorage.getItem('larder-range') || 'hour';
  const hist = await api('GET', `history?range=${range}&namespace=${encodeURIComponent(ns)}`);
  const pts = hist.points;
  const times = pts.map(p => p.t);
  const axis = { end: times.length ? times[times.length - 1] : 0, span: hist.bucket_seconds * (hist.buckets - 1) };
  return el('section', { id: 'namespace-charts' }, el('h2', {}, `Namespace ${ns}, last ${range}`),
    el('div', { class: 'charts' },
      chart('Used bytes', times, [{ name: 'used', values: pts.map(p => p.used_bytes) }], [], fmtBytes, axis),
      chart('Lookups', times, [{ name: 'hits', values: pts.map(p => p.hits) }, { name: 'misses', values: pts.map(p => p.misses) }], [], String, axis)));
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
        onclick: () => confirmDialog(
          `Purge namespace "${n.name}": remove its ${n.entries} entries (${fmtBytes(n.used_bytes)})? This cannot be undone.`,
          `Purge ${n.name}`,
          async () => { await api('DELETE', 'namespaces/' + encodeURIComponent(n.name)); route(); }),
      }, 'Purge…')));
};

// ---------------------------------------------------------------- entries

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
  params.set('limit', '50');
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

// ---------------------------------------------------------------- tokens

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

// ---------------------------------------------------------------- health

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
        el('thead', {}, el('tr', {}, ['When', 'Target', 'Entries removed', 'Blobs removed', 'Freed', 'Usage after', 'Reached'].map(h => el('th', {}, h)))),
        el('tbody', {}, evictions.map(r => el('tr', {},
          el('td', {}, fmtTime(r.at)), el('td', { class: 'num' }, fmtBytes(r.target)), el('td', { class: 'num' }, r.entries_removed),
          el('td', { class: 'num' }, r.blobs_removed), el('td', { class: 'num' }, fmtBytes(r.bytes_freed)),
          el('td', { class: 'num' }, fmtBytes(r.usage_after)), el('td', {}, r.reached ? 'yes' : 'no'))))));
};

// ---------------------------------------------------------------- connect

function snippets(base, ns) {
  const host = base.replace(/^https?:\/\//, '');
  return [
    ['BuildKit registry cache', `docker buildx build \\\n  --cache-to   type=registry,ref=${host}/${ns}/app:cache,mode=max \\\n  --cache-from type=registry,ref=${host}/${ns}/app:cache \\\n  -t app .`],
    ['BuildKit gha cache', `docker buildx build \\\n  --cache-to   "type=gha,url=${base}/,token=$LARDER_CACHE_TOKEN,scope=${ns},mode=max" \\\n  --cache-from "type=gha,url=${base}/,token=$LARDER_CACHE_TOKEN,scope=${ns}" \\\n  -t app .`],
    ['actions/cache (self-hosted runner env)', `ACTIONS_CACHE_URL=${base}/\nACTIONS_RUNTIME_TOKEN=$LARDER_CACHE_TOKEN   # a token for namespace ${ns}`],
    ['Bazel (.bazelrc)', `build --remote_cache=${base}/cache/${ns}\n# and: bazel build //... --remote_header="Authorization=Bearer $LARDER_CACHE_TOKEN"`],
    ['ccache', `export CCACHE_REMOTE_STORAGE="${base}/cache/${ns}|layout=subdirs|bearer-token=$LARDER_CACHE_TOKEN"`],
    ['sccache', `export SCCACHE_WEBDAV_ENDPOINT=${base}/cache/${ns}/\nexport SCCACHE_WEBDAV_TOKEN="$LARDER_CACHE_TOKEN"\nexport RUSTC_WRAPPER=sccache`],
    ['Gradle (settings.gradle)', `buildCache {\n    remote(HttpBuildCache) {\n        url = '${base}/cache/${ns}/'\n        allowInsecureProtocol = ${base.startsWith('http:')}\n        push = System.getenv('CI') != null\n        credentials {\n            username = 'gradle'\n            password = System.getenv('LARDER_CACHE_TOKEN')\n        }\n    }\n}`],
    ['Turborepo', `export TURBO_API=${base}\nexport TURBO_TOKEN="$LARDER_CACHE_TOKEN"\nexport TURBO_TEAM=${ns}`],
    ['Nx (20.8+)', `export NX_SELF_HOSTED_REMOTE_CACHE_SERVER=${base}\nexport NX_SELF_HOSTED_REMOTE_CACHE_ACCESS_TOKEN="$LARDER_CACHE_TOKEN"   # a token for namespace ${ns}`],
  ];
}

PAGES.connect = async (root) => {
  const ns = el('input', { id: 'c-namespace', value: sessionStorage.getItem('larder-ns') || 'team' });
  const list = el('div', { id: 'snippets' });
  const draw = () => {
    const name = ns.value.trim() || 'team';
    sessionStorage.setItem('larder-ns', name);
    list.replaceChildren(...snippets(location.origin, name).map(([title, text]) => {
      const copy = el('button', { type: 'button' }, 'Copy');
      copy.addEventListener('click', async () => {
        try { await navigator.clipboard.writeText(text); copy.textContent = 'Copied'; } catch (_) { copy.textContent = 'Select the text to copy'; }
      });
      return el('section', {}, el('h2', {}, title, ' ', copy), el('pre', {}, text));
    }));
  };
  ns.addEventListener('input', draw);
  draw();
  root.append(el('h1', {}, 'How to connect'),
    el('p', {}, 'Each snippet uses this server\'s URL and the namespace below; $LARDER_CACHE_TOKEN is a token for that namespace (see Tokens).'),
    el('label', { for: 'c-namespace' }, 'Namespace'), ns, list);
};
