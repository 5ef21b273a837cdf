// Line charts as SVG with value and time axes. Each point carries a <title>
// (a tooltip on hover) and every chart has a data table under a <details>,
// so the numbers are there for the keyboard and screen readers too, not
// only for a pointer. See app.js for el().
'use strict';

const SVG = 'http://www.w3.org/2000/svg';
function svg(tag, attrs, text) {
  const e = document.createElementNS(SVG, tag);
  for (const [k, v] of Object.entries(attrs)) e.setAttribute(k, String(v));
  if (text !== undefined) e.textContent = text;
  return e;
}

// UTC, like every other time the dashboard shows; the date only when the
// axis spans days.
function fmtClock(t, withDate) {
  const iso = new Date(t * 1000).toISOString();
  return (withDate ? iso.slice(5, 10) + ' ' : '') + iso.slice(11, 16);
}

// The smallest 1, 2 or 5 × 10^n at least v, so the top label is round;
// for bytes, in the unit fmtBytes will show (KiB, MiB, …).
function niceMax(v, bytes) {
  const unit = bytes ? Math.pow(1024, Math.floor(Math.log(v) / Math.log(1024))) : 1;
  const p = Math.pow(10, Math.floor(Math.log10(v / unit)));
  const nice = [1, 2, 5, 10].map(m => m * p).find(x => x >= v / unit);
  // 1000 KiB reads worse than the 1 MiB just above it.
  return unit * (bytes && nice >= 1000 ? 1024 : nice);
}

// A line chart of `series` ([{name, values, times?}]) over `times` (unix
// seconds), with optional dashed `limits` ([{name, value}]); the x axis
// covers range.span seconds up to range.end, so a new server's few points
// sit at the right rather than fill the width. Each polyline carries
// data-points, its number of points.
function chart(title, times, series, limits, fmt, range) {
  const W = 420, H = 190, L = 78, R = 10, T = 10, B = 24;
  const all = series.flatMap(s => s.values).concat((limits || []).map(l => l.value));
  const max = niceMax(Math.max(1, ...all), fmt === fmtBytes);
  const span = Math.max(1, range.span);
  const t0 = range.end - span;
  const withDate = span > 86400;
  const x = t => L + (W - L - R) * Math.max(0, (t - t0) / span);
  const y = v => H - B - (H - T - B) * (v / max);
  const s = svg('svg', { class: 'chart', viewBox: `0 0 ${W} ${H}`, role: 'img', 'aria-label': title });
  s.append(svg('title', {}, title));
  for (const v of [0, max / 2, max]) {
    s.append(svg('line', { class: 'grid', x1: L, x2: W - R, y1: y(v), y2: y(v) }));
    s.append(svg('text', { class: 'tick', x: L - 6, y: y(v) + 4, 'text-anchor': 'end' }, fmt(v)));
  }
  for (const [t, anchor] of [[t0, 'start'], [t0 + span / 2, 'middle'], [range.end, 'end']]) {
    s.append(svg('text', { class: 'tick', x: x(t), y: H - 6, 'text-anchor': anchor }, fmtClock(t, withDate)));
  }
  s.append(svg('line', { class: 'axis', x1: L, x2: L, y1: T, y2: H - B }));
  s.append(svg('line', { class: 'axis', x1: L, x2: W - R, y1: H - B, y2: H - B }));
  for (const l of limits || []) {
    const line = svg('line', { class: 'limit', x1: L, x2: W - R, y1: y(l.value), y2: y(l.value) });
    line.append(svg('title', {}, l.name + ': ' + fmt(l.value)));
    s.append(line);
  }
  series.forEach((ser, i) => {
    // A series may have times of its own (buckets where it has a value).
    const ts = ser.times || times;
    const pts = ser.values.map((v, j) => `${x(ts[j]).toFixed(1)},${y(v).toFixed(1)}`);
    // A single point still draws: a dot-length line.
    if (pts.length === 1) pts.unshift(`${(x(ts[0]) - 3).toFixed(1)},${y(ser.values[0]).toFixed(1)}`);
    s.append(svg('polyline', { class: 's' + (i % 6), points: pts.join(' '), 'data-points': ser.values.length }));
    ser.values.forEach((v, j) => {
      const label = `${ser.name} at ${fmtClock(ts[j], withDate)} UTC: ${fmt(v)}`;
      const dot = svg('circle', { class: 'p s' + (i % 6), cx: x(ts[j]).toFixed(1), cy: y(v).toFixed(1), r: 2.5, 'aria-label': label });
      dot.append(svg('title', {}, label));
      s.append(dot);
    });
  });
  const legend = el('ul', { class: 'legend' }, series.map((ser, i) =>
    el('li', { class: 'k' + (i % 6) }, `${ser.name}: ${ser.values.length ? fmt(ser.values[ser.values.length - 1]) : '—'}`)),
  (limits || []).map(l => el('li', { class: 'lim' }, `${l.name}: ${fmt(l.value)}`)));
  return el('figure', { class: 'chart-box' }, el('figcaption', {}, title), s, legend, dataTable(title, times, series, fmt, withDate));
}

// The chart's numbers as a table, one row per time, one column per series.
function dataTable(title, times, series, fmt, withDate) {
  const at = new Map();
  series.forEach((ser, i) => (ser.times || times).forEach((t, j) => {
    if (!at.has(t)) at.set(t, []);
    at.get(t)[i] = ser.values[j];
  }));
  const rows = [...at.keys()].sort((a, b) => a - b);
  return el('details', { class: 'chart-data' }, el('summary', {}, 'Data table'),
    el('table', {}, el('caption', {}, title + ' (UTC)'),
      el('thead', {}, el('tr', {}, el('th', { scope: 'col' }, 'Time'), series.map(ser => el('th', { scope: 'col' }, ser.name)))),
      el('tbody', {}, rows.map(t => el('tr', {}, el('th', { scope: 'row' }, fmtClock(t, withDate)),
        series.map((_, i) => el('td', { class: 'num' }, at.get(t)[i] === undefined ? '—' : fmt(at.get(t)[i]))))))));
}

// One series per key of `field` (a {key: n} map in each point) that has a
// non-zero value in the range, or a single flat one when none has; buckets
// saved before the breakdown existed count in `total` only, shown apart.
function breakdown(pts, field, keys, total) {
  const of = (p, k) => (p[field] || {})[k] || 0;
  const series = keys.filter(k => pts.some(p => of(p, k) > 0)).map(k => ({ name: k, values: pts.map(p => of(p, k)) }));
  if (total) {
    const rest = pts.map(p => Math.max(0, p[total] - keys.reduce((a, k) => a + of(p, k), 0)));
    if (rest.some(v => v > 0)) series.push({ name: 'not broken down (older data)', values: rest });
  }
  return series.length ? series : [{ name: 'none', values: pts.map(() => 0) }];
}
