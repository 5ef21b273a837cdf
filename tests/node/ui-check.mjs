// Drives the dashboard in headless Chromium (playwright-core, Debian's
// /usr/bin/chromium) against a live Larder that tests/ui_browser.rs filled
// with traffic. Every check throws on failure; the Rust test reads the exit
// status and stderr. Screenshots go to SCREENSHOT_DIR.
//
// env: BASE (http://127.0.0.1:port), ADMIN_TOKEN, SCREENSHOT_DIR, XSS (a
// client-chosen name that must render as text), CHROMIUM.
import { chromium } from 'playwright-core';
import { execFileSync } from 'node:child_process';
import assert from 'node:assert/strict';

const { BASE, ADMIN_TOKEN, TEAM_TOKEN, WRITER_TOKEN, SCREENSHOT_DIR, XSS } = process.env;
const CHROMIUM = process.env.CHROMIUM || '/usr/bin/chromium';

async function admin(path, init = {}) {
  const res = await fetch(BASE + '/admin/v1/' + path, {
    ...init, headers: { Authorization: 'Bearer ' + ADMIN_TOKEN, ...(init.headers || {}) },
  });
  assert.ok(res.ok, `${path}: ${res.status}`);
  return res.json();
}

// The same formatting the page uses (ui/app.js), to compare exactly.
function fmtBytes(n) {
  const units = ['B', 'KiB', 'MiB', 'GiB', 'TiB'];
  let i = 0, v = Number(n);
  while (v >= 1024 && i < units.length - 1) { v /= 1024; i++; }
  return (i === 0 ? String(v) : v.toFixed(1)) + ' ' + units[i];
}
const fmtRatio = (h, m) => (h + m === 0 ? '—' : (100 * h / (h + m)).toFixed(1) + '%');

// Sum of a Prometheus series' samples whose labels pass `keep` (all by
// default).
function metric(text, name, keep = () => true) {
  return text.split('\n').filter(l => (l.startsWith(name + '{') || l.startsWith(name + ' ')) && keep(l))
    .reduce((a, l) => a + Number(l.slice(l.lastIndexOf(' ') + 1)), 0);
}
// The cache's protocols, as the dashboard counts traffic (not the admin API
// nor the dashboard's own files).
const cacheTraffic = l => !l.includes('protocol="admin"') && !l.includes('protocol="other"');

function curlStatus(token, path) {
  return execFileSync('curl', ['-s', '-o', '/dev/null', '-w', '%{http_code}', '-H', 'Authorization: Bearer ' + token, BASE + path],
    { encoding: 'utf8' }).trim();
}

const browser = await chromium.launch({ executablePath: CHROMIUM, args: ['--no-sandbox'] });
let page = await browser.newPage({ viewport: { width: 1280, height: 900 }, permissions: ['clipboard-read', 'clipboard-write'] });
const problems = [];
function watch(p) {
  p.on('dialog', d => { problems.push('a dialog opened: ' + d.message()); d.dismiss(); });
  p.on('pageerror', e => problems.push('page error: ' + e.message));
  p.on('console', m => { if (m.type() === 'error') problems.push('console error: ' + m.text()); });
}
watch(page);
// Each page is photographed, and checked for values rendered badly.
async function shot(name) {
  const text = await page.textContent('body');
  // The Gradle snippet holds a real `!= null`.
  const bads = ['[object ', 'undefined', 'NaN'].concat(name === 'connect' ? [] : ['null']);
  for (const bad of bads) assert.ok(!text.includes(bad), `${name} shows ${bad}: ${text}`);
  await page.screenshot({ path: `${SCREENSHOT_DIR}/${name}.png`, fullPage: true });
}

// ---- log in: a wrong token is refused, the admin token is kept for the tab
await page.goto(BASE + '/ui/');
await page.fill('#token', 'not-a-token');
await page.click('#login button[type=submit]');
// Locators, not waitForFunction: the page's CSP forbids the eval that needs.
await page.locator('#login-error', { hasText: 'failed' }).waitFor();
await shot('login');
// The browser logs the refused token's 401; nothing after it may fail.
assert.ok(problems.every(p => p.includes('status of 401')), problems.join('\n'));
problems.length = 0;
await page.fill('#token', ADMIN_TOKEN);
await page.click('#login button[type=submit]');
await page.waitForSelector('#used-bytes');
assert.equal(await page.evaluate(() => sessionStorage.getItem('larder-token')), ADMIN_TOKEN);

// ---- overview agrees with the admin API and with /metrics
const stats = await admin('stats');
const metrics = await (await fetch(BASE + '/metrics', { headers: { Authorization: 'Bearer ' + ADMIN_TOKEN } })).text();
let hits = 0, misses = 0;
for (const t of Object.values(stats.traffic)) { hits += t.hits; misses += t.misses; }
assert.ok(hits > 0 && misses > 0, 'the test made hits and misses');
assert.equal(metric(metrics, 'larder_storage_used_bytes'), stats.used_bytes, '/metrics used bytes vs stats');
const mHits = metric(metrics, 'larder_cache_hits_total'), mMisses = metric(metrics, 'larder_cache_misses_total');
assert.equal(await page.textContent('#used-bytes'), fmtBytes(stats.used_bytes));
assert.equal(await page.textContent('#hit-ratio'), fmtRatio(hits, misses));
assert.equal(await page.textContent('#hit-ratio'), fmtRatio(mHits, mMisses), 'page vs /metrics hit ratio');
assert.equal(await page.textContent('#evictions'), String(stats.evictions));
assert.equal(await page.textContent('#evictions'), String(metric(metrics, 'larder_evictions_total')), 'page vs /metrics evictions');
assert.ok(stats.evictions >= 1, 'the test evicted an entry');
const mIn = metric(metrics, 'larder_bytes_received_total', cacheTraffic);
const mOut = metric(metrics, 'larder_bytes_sent_total', cacheTraffic);
assert.equal(await page.textContent('#bytes-in-out'), fmtBytes(mIn) + ' / ' + fmtBytes(mOut), 'page vs /metrics bytes');
const mRefused = metric(metrics, 'larder_refused_writes_total') + metric(metrics, 'larder_storage_full_refusals_total');
assert.ok(mRefused >= 1, 'the test made a refusal');
assert.equal(await page.textContent('#refusals'), String(mRefused), 'page vs /metrics refusals');
const points = await page.$$eval('svg.chart polyline', ps => ps.map(p => Number(p.getAttribute('data-points'))));
assert.ok(points.length >= 6 && points.every(n => n >= 1), 'every chart has points: ' + points);
// Per protocol and per reason, with value and time axes, a title on every
// point and a data table for each chart.
const legend = async title => page.locator('figure', { has: page.locator(`figcaption:text-is("${title}")`) }).locator('ul.legend').textContent();
// The earlier run's 38 minutes and this one's (two if a minute turned).
const usedPoints = await page.$$eval('figure.chart-box:first-child polyline', ps => ps.map(p => Number(p.getAttribute('data-points'))));
assert.ok(usedPoints.length === 1 && usedPoints[0] >= 39 && usedPoints[0] <= 40, 'used bytes: the saved minutes and this run\'s: ' + usedPoints);
assert.ok((await legend('Bytes in by protocol')).includes('not broken down (older data)'), 'the old file\'s totals are charted');
assert.ok((await legend('Bytes in by protocol')).includes('http: '), await legend('Bytes in by protocol'));
assert.ok((await legend('Bytes out by protocol')).includes('http: '));
for (const proto of ['oci', 'gha']) assert.ok((await legend('Bytes in by protocol')).includes(proto + ': '), proto);
assert.ok((await legend('Hit ratio by protocol')).includes('oci: '), await legend('Hit ratio by protocol'));
assert.ok(/^(larger_than_hard_limit|leased|uploads|disk_full): [1-9]/.test(await legend('Refusals by reason')), await legend('Refusals by reason'));
const figures = await page.$$eval('figure.chart-box', fs => fs.map(f => ({
  ticks: f.querySelectorAll('text.tick').length,
  dots: f.querySelectorAll('circle.p').length,
  titled: [...f.querySelectorAll('circle.p')].every(c => c.querySelector('title') && c.getAttribute('aria-label') === c.querySelector('title').textContent),
  rows: f.querySelectorAll('details.chart-data tbody tr').length,
})));
assert.ok(figures.length >= 6 && figures.every(f => f.ticks >= 6 && f.dots >= 1 && f.titled && f.rows >= 1), JSON.stringify(figures));
const refusalChart = page.locator('figure', { has: page.locator('figcaption:text-is("Refusals by reason")') });
await refusalChart.locator('details summary').click();
const cells = await refusalChart.locator('details tbody td').allTextContents();
assert.equal(cells.map(Number).reduce((a, b) => a + b, 0), mRefused, 'the data table adds up to the refusals: ' + cells);
await shot('overview');
// The week, in 2-hour buckets: the same traffic, dates on the time axis.
await page.selectOption('#range', 'week');
await page.locator('h2', { hasText: '120-minute buckets' }).waitFor();
assert.equal(await page.textContent('#refusals'), String(mRefused), 'the week holds the refusal too');
const weekPoints = await page.$$eval('svg.chart polyline', ps => ps.map(p => Number(p.getAttribute('data-points'))));
assert.ok(weekPoints.length >= 6 && weekPoints.every(n => n >= 1), 'week charts have points: ' + weekPoints);
const weekTicks = await page.$$eval('figure.chart-box:first-child text.tick', ts => ts.map(t => t.textContent));
assert.ok(weekTicks.some(t => /^\d\d-\d\d \d\d:\d\d$/.test(t)), 'dated time axis: ' + weekTicks);
await shot('overview-week');
await page.selectOption('#range', 'hour');
await page.locator('h2', { hasText: '1-minute buckets' }).waitFor();

// ---- namespaces: sortable
await page.click('a[href="#namespaces"]');
await page.waitForSelector('#namespaces');
const names = () => page.$$eval('#namespaces tbody tr td:first-child', tds => tds.map(td => td.textContent));
const api = (await admin('namespaces')).namespaces;
assert.deepEqual(await names(), api.map(n => n.name).sort());
await page.click('#namespaces th button[data-key=name]');
assert.deepEqual(await names(), api.map(n => n.name).sort().reverse(), 'second click reverses');
const ratios = await page.$$eval('#namespaces tbody tr', trs => Object.fromEntries(trs.map(tr => [tr.children[0].textContent, tr.children[4].textContent])));
for (const n of api) assert.equal(ratios[n.name], fmtRatio(n.hits, n.misses), 'hit ratio of ' + n.name);
assert.equal(ratios['team-a'], fmtRatio(2, 1), 'team-a: two hits, one miss');
await page.click('#namespaces th button[data-key=used_bytes]');
assert.deepEqual(await names(), api.slice().sort((a, b) => a.used_bytes - b.used_bytes).map(n => n.name), 'by used bytes');
await shot('namespaces');
// A namespace's own chart.
await page.click('a.ns-link:text-is("team-a")');
await page.waitForSelector('#namespace-charts');
const nsPoints = await page.$$eval('#namespace-charts polyline', ps => ps.map(p => Number(p.getAttribute('data-points'))));
assert.ok(nsPoints.length === 3 && nsPoints.every(n => n >= 1), 'team-a charts have points: ' + nsPoints);
const teamA = (await admin('namespaces')).namespaces.find(n => n.name === 'team-a');
assert.ok((await page.textContent('#namespace-charts')).includes('used: ' + fmtBytes(teamA.used_bytes)));
await shot('namespace-chart');

// ---- entries: filter by namespace, the XSS-free rendering of names
await page.goto(BASE + '/ui/#entries?namespace=team-a&order=size');
await page.waitForSelector('#entries');
const rows = await page.$$eval('#entries tbody tr td:nth-child(2)', tds => tds.map(td => td.textContent));
assert.ok(rows.length >= 1 && rows.every(ns => ns === 'team-a'), 'only team-a: ' + rows);
const xssCell = page.locator('#entries tbody td:first-child', { hasText: XSS });
assert.ok((await xssCell.textContent()).includes(XSS), 'the actions/cache key renders as text');
assert.equal(await page.$$eval('img', imgs => imgs.length), 0, 'no element came from a key');
await shot('entries');
await page.fill('#f-prefix', 'k2');
await page.click('#entry-filter button[type=submit]');
await page.locator('#f-prefix[value="k2"]').waitFor();
await page.waitForSelector('#entries');
assert.deepEqual(await page.$$eval('#entries tbody tr td:first-child', tds => tds.map(td => td.textContent)), ['k2'], 'prefix filter');

// ---- an entry's detail lists its blobs, sizes and sharing
const k2 = (await admin('entries?namespace=team-a')).entries.find(e => e.name === 'k2');
await page.click(`#entries tr[data-id="${k2.id}"] a.entry-link`);
await page.waitForSelector('#entry-blobs');
const detail = await admin('entries/' + k2.id);
const blobCells = await page.$$eval('#entry-blobs tbody tr', trs => trs.map(tr => [...tr.children].map(td => td.textContent)));
assert.equal(blobCells.length, detail.pinned_blobs.length);
assert.ok(blobCells.length >= 1, 'k2 pins a blob');
const facts = await page.$$eval('#entry-facts dd', dds => dds.map(d => d.textContent));
assert.deepEqual(facts.slice(0, 4), ['k2', 'team-a', 'http', fmtBytes(k2.size)]);
assert.deepEqual(blobCells.map(r => [r[0], r[2], r[3]]),
  detail.pinned_blobs.map(b => [b.id, fmtBytes(b.size), String(b.shared_by)]));
await shot('entry-detail');

// ---- entries: filter by protocol
await page.goto(BASE + '/ui/#entries?namespace=team-a');
await page.waitForSelector('#entries');
await page.selectOption('#f-protocol', 'gha');
await page.click('#entry-filter button[type=submit]');
await page.locator('#f-protocol option[value=gha][selected]').waitFor({ state: 'attached' });
await page.waitForSelector('#entries');
const ghaRows = await page.$$eval('#entries tbody tr', trs => trs.map(tr => [tr.children[0].textContent, tr.children[2].textContent]));
assert.deepEqual(ghaRows.map(r => r[1]), ['gha'], 'protocol filter: ' + JSON.stringify(ghaRows));
assert.ok(ghaRows[0][0].includes(XSS), 'the actions/cache key, as text');

// ---- entries: paging through all of them, largest first, three a page
const everyEntry = (await admin('entries?order=size&limit=1000')).entries.map(e => String(e.id));
assert.ok(everyEntry.length > 3, 'more than one page: ' + everyEntry.length);
await page.goto(BASE + '/ui/#entries?order=size&limit=3');
const paged = [];
for (;;) {
  await page.waitForSelector('#entries');
  const ids = await page.$$eval('#entries tbody tr', trs => trs.map(tr => tr.getAttribute('data-id')));
  assert.ok(ids.length >= 1 && ids.length <= 3, 'a page of three at most: ' + ids);
  paged.push(...ids);
  if (!(await page.$('#next-page'))) break;
  await page.click('#next-page');
  await page.locator(`#entries tr[data-id="${ids[0]}"]`).waitFor({ state: 'detached' });
}
assert.deepEqual(paged, everyEntry, 'the pages list every entry once, in the API\'s order');

// ---- purge a namespace through the confirmation
await page.click('a[href="#namespaces"]');
await page.waitForSelector('#namespaces');
await page.click('button.purge[data-namespace="team-b"]');
const question = await page.textContent('#confirm p');
assert.ok(question.includes('"team-b"') && question.includes('entries'), question);
assert.deepEqual(await page.$$eval('#purge-list li', lis => lis.map(li => li.textContent)), [`k1 (http, ${fmtBytes(2000)})`], 'names what goes');
await shot('purge-confirmation');
await page.click('#confirm-yes');
await page.locator('button.purge[data-namespace="team-b"]').waitFor({ state: 'detached' });
await page.waitForSelector('#namespaces');
assert.ok(!(await admin('namespaces')).namespaces.some(n => n.name === 'team-b'), 'team-b gone from the API');

// ---- delete one entry through its confirmation
await page.goto(BASE + '/ui/#entries?namespace=team-e');
await page.waitForSelector('#entries');
const [gone] = (await admin('entries?namespace=team-e')).entries;
await page.click(`#entries tr[data-id="${gone.id}"] button.delete`);
assert.ok((await page.textContent('#confirm p')).includes(`"${gone.name}"`));
await page.click('#confirm-yes');
await page.locator(`#entries tr[data-id="${gone.id}"]`).waitFor({ state: 'detached' });
await page.waitForSelector('#entries');
assert.equal((await admin('entries?namespace=team-e')).entries.length, 0, 'the entry is gone');

// ---- tokens: create (named with the XSS string), use with curl, revoke
await page.click('a[href="#tokens"]');
await page.waitForSelector('#token-form');
await page.fill('#t-name', XSS);
await page.fill('#t-namespaces', 'team-a');
await page.click('#token-form button[type=submit]');
await page.waitForSelector('#token-secret');
const secret = await page.textContent('#token-secret');
await page.click('#copy-token');
await page.locator('#copy-token', { hasText: 'Copied' }).waitFor();
assert.equal(await page.evaluate(() => navigator.clipboard.readText()), secret, 'the copy button copies the secret');
assert.equal(curlStatus(secret, '/cache/team-a/k1'), '200', 'the new token reads team-a');
assert.equal(curlStatus(secret, '/cache/team-c/k1'), '403', 'and nothing else');
await shot('token-created');
await page.click('#new-token a');
await page.waitForSelector('#tokens');
const row = page.locator('#tokens tbody tr', { hasText: XSS });
assert.equal(await row.locator('td').first().textContent(), XSS, 'the name renders as text');
assert.equal(await page.$$eval('img', imgs => imgs.length), 0, 'no element came from a name');
await shot('tokens');
await row.locator('button.revoke').click();
await page.click('#confirm-yes');
await page.locator('#tokens tbody tr', { hasText: XSS }).filter({ hasText: 'revoked' }).waitFor();
const refused = curlStatus(secret, '/cache/team-a/k1');
assert.ok(refused === '401' || refused === '403', 'revoked token refused: ' + refused);

// ---- health and connect
await page.click('a[href="#health"]');
await page.waitForSelector('#workers');
assert.equal(await page.textContent('#readiness'), 'ready');
assert.ok((await page.textContent('#workers')).includes('history'), 'the history worker is listed');
const evicted = await page.$$eval('#evictions tbody tr td:nth-child(3)', tds => tds.map(td => td.textContent));
assert.deepEqual(evicted, ['1'], 'the eviction the test made is reported');
const held = await page.$$eval('#evictions tbody tr td:nth-child(6)', tds => tds.map(td => td.textContent));
assert.deepEqual(held, [fmtBytes(600 << 10)], 'the read lease that made the write refused');
await shot('health');
await page.click('a[href="#connect"]');
await page.waitForSelector('#snippets pre');
await page.fill('#c-namespace', 'team-a');
const snippets = await page.$$eval('#snippets pre', ps => ps.map(p => p.textContent));
assert.equal(snippets.length, 12);
assert.ok(snippets.some(s => s.includes(`${BASE}/cache/team-a`)), 'snippets use this server and namespace');
assert.ok(snippets.some(s => s.includes(`registry=${BASE}/npm/team-a/`)), 'the npm proxy snippet');
assert.ok(snippets.some(s => s.includes(`GOPROXY=${BASE}/go/team-a/`)), 'the Go proxy snippet');
await shot('connect');

// ---- a token limited to team-a (read-only), in a tab of its own
const adminPage = page;
page = await browser.newPage({ viewport: { width: 1280, height: 900 } });
watch(page);
await page.goto(BASE + '/ui/');
await page.fill('#token', TEAM_TOKEN);
await page.click('#login button[type=submit]');
// Its overview: team-a's numbers as the admin API has them, and charts.
await page.waitForSelector('#used-bytes');
const limitedA = (await admin('namespaces')).namespaces.find(n => n.name === 'team-a');
assert.equal(await page.textContent('#namespace-count'), '1');
assert.equal(await page.textContent('#used-bytes'), fmtBytes(limitedA.used_bytes));
assert.equal(await page.textContent('#hit-ratio'), fmtRatio(limitedA.hits, limitedA.misses));
const nsMetrics = await (await fetch(BASE + '/metrics', { headers: { Authorization: 'Bearer ' + ADMIN_TOKEN } })).text();
const ofA = l => l.includes('namespace="team-a"');
assert.equal(await page.textContent('#used-bytes'), fmtBytes(metric(nsMetrics, 'larder_namespace_used_bytes', ofA)), 'page vs /metrics, team-a used');
assert.equal(await page.textContent('#hit-ratio'),
  fmtRatio(metric(nsMetrics, 'larder_namespace_cache_hits_total', ofA), metric(nsMetrics, 'larder_namespace_cache_misses_total', ofA)), 'page vs /metrics, team-a hit ratio');
const limitedPoints = await page.$$eval('svg.chart polyline', ps => ps.map(p => Number(p.getAttribute('data-points'))));
assert.ok(limitedPoints.length === 4 && limitedPoints.every(n => n >= 1), 'team-a overview charts: ' + limitedPoints);
assert.ok(!(await page.textContent('main')).includes('team-b'), 'nothing of other namespaces');
await shot('limited-overview');
await page.click('a[href="#namespaces"]');
await page.waitForSelector('#namespaces');
assert.ok((await admin('namespaces')).namespaces.length >= 2, 'the admin sees more than team-a');
assert.deepEqual(await names(), ['team-a']);
assert.equal(await page.$$eval('button.purge', b => b.length), 0, 'read-only: no purge');
assert.ok(!(await page.isVisible('a[href="#health"]')) && !(await page.isVisible('a[href="#tokens"]')), 'no server-wide pages');
await shot('limited-namespaces');
await page.click('a[href="#entries"]');
await page.waitForSelector('#entries');
const limitedRows = await page.$$eval('#entries tbody tr td:nth-child(2)', tds => tds.map(td => td.textContent));
assert.ok(limitedRows.length >= 1 && limitedRows.every(ns => ns === 'team-a'), 'only team-a: ' + limitedRows);
assert.equal(await page.$$eval('button.delete', b => b.length), 0, 'read-only: no delete');
await shot('limited-entries');
assert.equal(await adminPage.evaluate(() => sessionStorage.getItem('larder-token')), ADMIN_TOKEN, 'each tab keeps its own token');

// ---- a token that may write team-d (and nothing else) purges it
await page.click('#logout');
await page.fill('#token', WRITER_TOKEN);
await page.click('#login button[type=submit]');
// Signing in again keeps the tab's page (entries), now team-d's.
await page.waitForSelector('#entries');
assert.deepEqual(await page.$$eval('#entries tbody tr td:nth-child(2)', tds => tds.map(td => td.textContent)), ['team-d']);
await page.click('a[href="#namespaces"]');
await page.waitForSelector('#namespaces');
assert.deepEqual(await names(), ['team-d']);
await page.click('button.purge[data-namespace="team-d"]');
assert.ok((await page.textContent('#confirm p')).includes('"team-d"'));
assert.deepEqual(await page.$$eval('#purge-list li', lis => lis.map(li => li.textContent)), [`k1 (http, ${fmtBytes(500)})`]);
await shot('writer-purge');
await page.click('#confirm-yes');
await page.locator('button.purge[data-namespace="team-d"]').waitFor({ state: 'detached' });
assert.ok(!(await admin('namespaces')).namespaces.some(n => n.name === 'team-d'), 'team-d gone from the API');

assert.deepEqual(problems, []);
await browser.close();
console.log('ui-check: all checks passed');
