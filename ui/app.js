// The dashboard's plumbing: DOM building (text only, never HTML from data),
// the admin API client with the tab's token, the page router and the pieces
// pages share. Charts are in chart.js; each page is a file of its own.
'use strict';

const TOKEN_KEY = 'larder-token';

// Builds an element. Children that are not nodes become text nodes, so a
// name a client chose is always shown as text.
function el(tag, attrs, ...kids) {
  const e = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (k.startsWith('on')) e.addEventListener(k.slice(2), v);
    else if (v !== false && v !== null && v !== undefined) e.setAttribute(k, v === true ? '' : String(v));
  }
  for (const kid of kids.flat(Infinity)) {
    if (kid === null || kid === undefined) continue;
    e.append(kid instanceof Node ? kid : String(kid));
  }
  return e;
}

class ApiError extends Error {
  constructor(status, code, message) {
    super(message);
    this.status = status;
    this.code = code;
  }
}

// Calls the admin API; resolves to the JSON body (null for 204), rejects
// with the API's own error message.
async function api(method, path, body) {
  const headers = {};
  const token = sessionStorage.getItem(TOKEN_KEY);
  if (token) headers.Authorization = 'Bearer ' + token;
  if (body !== undefined) headers['Content-Type'] = 'application/json';
  const res = await fetch('/admin/v1/' + path, {
    method, headers, credentials: 'omit', cache: 'no-store',
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  if (res.status === 204) return null;
  let json = null;
  try { json = await res.json(); } catch (_) { /* not JSON: reported below */ }
  if (!res.ok) {
    const err = (json && json.error) || {};
    throw new ApiError(res.status, err.code || 'http_' + res.status, err.message || res.statusText);
  }
  return json;
}

function fmtBytes(n) {
  if (n === null || n === undefined) return '—';
  const units = ['B', 'KiB', 'MiB', 'GiB', 'TiB'];
  let i = 0;
  let v = Number(n);
  while (v >= 1024 && i < units.length - 1) { v /= 1024; i++; }
  return (i === 0 ? String(v) : v.toFixed(1)) + ' ' + units[i];
}

function fmtRatio(hits, misses) {
  const total = hits + misses;
  return total === 0 ? '—' : (100 * hits / total).toFixed(1) + '%';
}

function fmtTime(t) {
  if (!t) return 'never';
  const d = typeof t === 'number' ? new Date(t * 1000) : new Date(t);
  return isNaN(d) ? String(t) : d.toISOString().replace('T', ' ').replace(/\.\d+Z$/, 'Z');
}

// Pages register here: name → async function(main) rendering into main.
const PAGES = {};
// Pages with server-wide numbers, which only an admin token may read (the
// overview shows a namespace-limited token its own namespaces instead).
const ADMIN_PAGES = ['tokens', 'health'];
// The caller (GET whoami): admin, and the namespaces it may read or write.
let ME = { admin: false, namespaces: [] };

function canWrite(ns) {
  return ME.admin || ME.namespaces.some(s => (s.namespace === ns || s.namespace === '*') && s.write);
}

async function route() {
  const main = document.getElementById('main');
  let name = location.hash.slice(1).split('?')[0] || 'overview';
  if (!PAGES[name] || (!ME.admin && ADMIN_PAGES.includes(name))) name = 'overview';
  const page = PAGES[name];
  for (const a of document.querySelectorAll('#nav a')) {
    if (a.getAttribute('href') === '#' + name) a.setAttribute('aria-current', 'page');
    else a.removeAttribute('aria-current');
  }
  main.replaceChildren(el('p', {}, 'Loading…'));
  try {
    const content = el('section', { id: 'page-' + name });
    await page(content);
    main.replaceChildren(content);
  } catch (e) {
    if (e instanceof ApiError && e.status === 401) return showLogin('That token was refused: ' + e.message);
    main.replaceChildren(el('p', { class: 'error', role: 'alert' }, String(e.message || e)));
  }
}

function showLogin(message) {
  document.getElementById('nav').hidden = true;
  const main = document.getElementById('main');
  const input = el('input', { id: 'token', type: 'password', autocomplete: 'off', size: 60 });
  const form = el('form', { id: 'login' },
    el('h1', {}, 'Sign in'),
    el('p', {}, 'An admin token sees and manages everything. The token is kept for this tab only.'),
    el('label', { for: 'token' }, 'Token'), input,
    el('button', { type: 'submit' }, 'Sign in'),
    el('p', { id: 'login-error', role: 'alert', class: 'error' }, message || ''));
  form.addEventListener('submit', async ev => {
    ev.preventDefault();
    sessionStorage.setItem(TOKEN_KEY, input.value.trim());
    try {
      await api('GET', 'whoami');
    } catch (e) {
      sessionStorage.removeItem(TOKEN_KEY);
      document.getElementById('login-error').textContent = 'Sign-in failed: ' + e.message;
      return;
    }
    start();
  });
  main.replaceChildren(form);
  input.focus();
}

async function start() {
  try {
    ME = await api('GET', 'whoami');
  } catch (e) {
    sessionStorage.removeItem(TOKEN_KEY);
    return showLogin('Sign-in failed: ' + e.message);
  }
  for (const a of document.querySelectorAll('#nav a')) {
    a.hidden = !ME.admin && ADMIN_PAGES.includes(a.getAttribute('href').slice(1));
  }
  document.getElementById('nav').hidden = false;
  route();
}

window.addEventListener('hashchange', () => {
  if (sessionStorage.getItem(TOKEN_KEY) !== null) route();
});

document.addEventListener('DOMContentLoaded', () => {
  document.getElementById('logout').addEventListener('click', () => {
    sessionStorage.removeItem(TOKEN_KEY);
    showLogin('');
  });
  if (sessionStorage.getItem(TOKEN_KEY) !== null) start();
  else showLogin('');
});

// ---------------------------------------------------------------- shared by pages

const PROTOCOLS = ['oci', 'gha', 'http', 'turbo', 'nx', 'npm', 'pypi', 'go'];
const sum = (o) => Object.values(o || {}).reduce((a, b) => a + b, 0);

function card(label, value, id) {
  return el('div', { class: 'card' }, el('div', {}, label), el('div', { class: 'value', id }, value));
}

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

// The chosen time range (hour, day, week), kept for the tab.
function chosenRange() {
  return sessionStorage.getItem('larder-range') || 'hour';
}

// The range picker; choosing redraws the page.
function rangeSelect() {
  const range = chosenRange();
  const select = el('select', { id: 'range', 'aria-label': 'Time range' },
    ['hour', 'day', 'week'].map(r => el('option', { value: r, selected: r === range }, 'last ' + r)));
  select.addEventListener('change', () => { sessionStorage.setItem('larder-range', select.value); route(); });
  return select;
}

// The x axis of a history response: its ring's span, ending at its newest point.
function axisOf(hist) {
  const pts = hist.points;
  return { end: pts.length ? pts[pts.length - 1].t : Math.floor(Date.now() / 1000), span: hist.bucket_seconds * (hist.buckets - 1) };
}

// A modal confirmation that says exactly what will happen: `text` is the
// question, or the question and elements that follow it (a list of what
// goes).
function confirmDialog(text, action, onConfirm) {
  const [question, ...details] = [].concat(text);
  const dialog = el('dialog', { id: 'confirm', 'aria-label': 'Confirm' });
  const done = () => { dialog.close(); dialog.remove(); };
  dialog.append(el('p', {}, question), ...details,
    el('button', { type: 'button', id: 'confirm-yes', onclick: async () => { done(); await onConfirm(); } }, action),
    el('button', { type: 'button', onclick: done }, 'Cancel'));
  document.body.append(dialog);
  dialog.showModal();
}
