(function(){
'use strict';
const D = JSON.parse(document.getElementById('cytophen-data').textContent);
function el(tag, attrs, kids){
  const n = document.createElement(tag);
  if (attrs) for (const k in attrs){
    if (k === 'text') n.textContent = attrs[k];
    else if (k === 'cls') n.className = attrs[k];
    else if (k.startsWith('on')) n.addEventListener(k.slice(2), attrs[k]);
    else n.setAttribute(k, attrs[k]);
  }
  (kids || []).forEach(c => { if (c != null) n.appendChild(typeof c === 'string' ? document.createTextNode(c) : c); });
  return n;
}
function fmtPct(v){ return v == null ? 'n/a' : (v < 1 ? v.toPrecision(3) : v.toFixed(1)); }
function watch(i, src){
  const ok = () => { if (i.naturalWidth > 0) i.dataset.loaded = '1'; };
  const bad = () => { i.classList.add('broken'); console.error('cytophen report: image failed to load: ' + String(src).slice(0, 200)); };
  i.addEventListener('load', ok); i.addEventListener('error', bad);
  return {ok: ok, bad: bad};
}
function img(src, alt){
  const i = el('img', {loading: 'lazy', alt: alt, decoding: 'async'});
  watch(i, src);
  i.src = src;
  return i;
}

/* full-size view: one overlay, stepping through the plots it was opened from */
const box = document.getElementById('lightbox');
const boxFrame = box.querySelector('.frame');
const boxCap = box.querySelector('.cap');
let boxList = [], boxAt = 0;
function showBox(){
  const it = boxList[boxAt];
  boxFrame.textContent = '';
  const i = el('img', {alt: it.caption, title: 'click to close'});
  watch(i, it.src);
  i.src = it.src;
  boxFrame.appendChild(i);
  boxCap.textContent = it.caption + (boxList.length > 1 ? '  (' + (boxAt + 1) + ' of ' + boxList.length + ')' : '');
}
function openBox(list, at){ boxList = list; boxAt = at; showBox(); box.hidden = false; }
function closeBox(){ box.hidden = true; boxFrame.textContent = ''; }
function step(k){ if (boxList.length){ boxAt = (boxAt + k + boxList.length) % boxList.length; showBox(); } }
box.addEventListener('click', e => { if (e.target === box || e.target.tagName === 'IMG') closeBox(); });
box.querySelector('.close').addEventListener('click', closeBox);
box.querySelector('.prev').addEventListener('click', () => step(-1));
box.querySelector('.next').addEventListener('click', () => step(1));
document.addEventListener('keydown', e => {
  if (box.hidden) return;
  if (e.key === 'Escape') closeBox(); else if (e.key === 'ArrowRight') step(1); else if (e.key === 'ArrowLeft') step(-1);
});
/* a thumbnail that opens list[at] at full size */
function thumb(list, at, caption, cls){
  const it = list[at];
  const i = img(it.src, it.caption);
  i.addEventListener('click', () => openBox(list, at));
  return el('figure', {cls: cls || '', title: it.title || it.caption}, [i, caption]);
}

/* static images (longitudinal plots): mark them loaded, report failures like the others, open them large */
const statImgs = Array.from(document.querySelectorAll('#longitudinal img'));
const statList = statImgs.map(i => ({src: i.getAttribute('src'), caption: i.getAttribute('alt')}));
statImgs.forEach((i, k) => {
  const h = watch(i, i.getAttribute('src'));
  if (i.complete) { if (i.naturalWidth) h.ok(); else if (i.getAttribute('loading') !== 'lazy') h.bad(); }
  i.addEventListener('click', () => openBox(statList, k));
});

/* a sortable, filterable, paged table; rows are arrays, columns {label, num, key(row), render(row)->td} */
function pagedTable(host, id, columns, rows, pageSize, initialSort){
  let sortCol = -1, dir = 1, page = 0, filter = '';
  if (initialSort){
    sortCol = columns.findIndex(c => c.label === initialSort.label);
    dir = initialSort.desc ? -1 : 1;
  }
  const info = el('span', {cls: 'muted'});
  const tbl = el('table', {id: id});
  const pager = el('span', {cls: 'pager'});
  const input = el('input', {type: 'search', placeholder: 'filter rows', oninput: e => { filter = e.target.value.toLowerCase(); page = 0; draw(); }});
  host.appendChild(el('div', {cls: 'tools'}, [input, pager, info]));
  host.appendChild(el('div', {cls: 'scroll'}, [tbl]));
  function view(){
    let r = rows;
    if (filter) r = r.filter(x => String(x[0]).toLowerCase().includes(filter) || (x.__text || '').includes(filter));
    if (sortCol >= 0){
      const c = columns[sortCol];
      r = r.slice().sort((a, b) => {
        const x = c.key(a), y = c.key(b);
        if (x == null && y == null) return 0; if (x == null) return 1; if (y == null) return -1;
        return (x < y ? -1 : x > y ? 1 : 0) * dir;
      });
    }
    return r;
  }
  function draw(){
    const r = view();
    const pages = Math.max(1, Math.ceil(r.length / pageSize));
    page = Math.min(page, pages - 1);
    tbl.textContent = '';
    const head = el('tr', null, columns.map((c, i) => el('th', {
      cls: [c.num ? '' : 't', c.cls || '', i === sortCol ? (dir > 0 ? 'asc' : 'desc') : ''].filter(Boolean).join(' '), title: c.title || 'click to sort',
      onclick: () => { if (sortCol === i) dir = -dir; else { sortCol = i; dir = 1; } draw(); }}, [c.label])));
    tbl.appendChild(el('thead', null, [head]));
    const body = el('tbody');
    r.slice(page * pageSize, (page + 1) * pageSize).forEach(row => body.appendChild(el('tr', null, columns.map(c => c.render(row)))));
    tbl.appendChild(body);
    pager.textContent = '';
    pager.appendChild(el('button', {type: 'button', onclick: () => { page = Math.max(0, page - 1); draw(); }}, ['\u2039 prev']));
    pager.appendChild(document.createTextNode(' page ' + (page + 1) + ' of ' + pages + ' '));
    pager.appendChild(el('button', {type: 'button', onclick: () => { page = Math.min(pages - 1, page + 1); draw(); }}, ['next \u203a']));
    info.textContent = r.length + ' row(s)';
  }
  draw();
}
function textCol(label, i){ return {label: label, key: r => r[i], render: r => el('td', {cls: 't', text: r[i] == null ? '' : String(r[i])})}; }
function sampleLink(id, si){ return el('a', {href: '#sample-' + si, onclick: () => showSample(si), text: id}); }
function plotItem(s, key){
  const p = s.plots[key];
  if (!p) return null;
  const pcts = (p.populations || []).map(q => q + ' ' + fmtPct(p.pct[q]) + '%').join(', ');
  return {src: p.src, caption: s.id + ' \u2013 ' + (p.title || '').replace(/\n/g, ' ') + ': ' + pcts + (p.fell_back ? ' \u2013 fell back: ' + p.reason : ''),
          title: p.fell_back ? 'fell back: ' + p.reason : s.id};
}

/* the data-driven gates that fell back: first, one row per sample and plot */
(function(){
  const host = document.getElementById('fallbacks-table');
  document.getElementById('fallbacks-count').textContent = D.fallbacks.length ? '(' + D.fallbacks.length + ' in ' + new Set(D.fallbacks.map(f => f.sample)).size + ' sample(s))' : '';
  if (!D.fallbacks.length){ host.appendChild(el('p', {cls: 'ok', text: 'No data-driven gate fell back.'})); return; }
  const items = [], at = [];
  D.fallbacks.forEach(f => { const it = plotItem(D.samples[f.si], f.gate); at.push(it ? items.length : -1); if (it) items.push(it); });
  const rows = D.fallbacks.map((f, k) => { const r = [f.sample, f.populations.join(', '), f.reason, k]; r.__text = (f.populations.join(' ') + ' ' + f.reason).toLowerCase(); return r; });
  pagedTable(host, 'fallbacks', [
    {label: 'sample', key: r => r[0], render: r => el('td', {cls: 't'}, [sampleLink(r[0], D.fallbacks[r[3]].si)])},
    textCol('populations', 1), textCol('why', 2),
    {label: 'plot', key: r => r[3], render: r => { const td = el('td', {cls: 't'});
      if (at[r[3]] >= 0) td.appendChild(thumb(items, at[r[3]], null, 'mini fb'));
      return td; }},
  ], rows, 25);
})();

/* failures, and plots that could not be made */
(function(){
  const host = document.getElementById('failures-table');
  if (!D.errors.rows.length){ host.appendChild(el('p', {cls: 'ok', text: 'No sample failed.'})); }
  else pagedTable(host, 'failures', D.errors.columns.map((c, i) => textCol(c, i)), D.errors.rows, 50);
  const ph = document.getElementById('problems-table');
  if (D.problems.length){
    ph.appendChild(el('h3', {text: 'Plots'}));
    pagedTable(ph, 'problems', ['sample', 'plot', 'problem', 'detail'].map((c, i) => textCol(c, i)), D.problems, 50);
  }
})();

/* low counts, one row per population */
(function(){
  const host = document.getElementById('lowcount-table');
  const n = D.low.reduce((a, x) => a + x.samples.length, 0);
  document.getElementById('lowcount-count').textContent = n ? '(' + D.low.length + ' population(s), ' + n + ' sample value(s))' : '';
  if (!D.low.length){ host.appendChild(el('p', {cls: 'ok', text: 'Every population has at least ' + D.low_count + ' events in every sample.'})); return; }
  const rows = D.low.map(x => { const r = [x.population, x.parent, x.samples.length, x.measured, x.samples.map(s => s[0] + ' (' + s[2] + ')').join(', ')]; r.__text = r[4].toLowerCase(); return r; });
  pagedTable(host, 'lowcount', [textCol('population', 0), textCol('parent', 1),
    {label: 'samples below', num: true, key: r => r[2], render: r => el('td', {cls: 'low', text: r[2] + ' of ' + r[3]})},
    textCol('sample (events)', 4)], rows, 50);
})();

/* not measured and skipped, one row per population and reason */
(function(){
  const host = document.getElementById('unmeasured-table');
  if (!D.unmeasured.length){ host.appendChild(el('p', {cls: 'ok', text: 'Every population was measured in every sample; no clean-up step was skipped.'})); return; }
  const rows = D.unmeasured.map(x => { const r = [x.population, x.what, x.note, x.samples.length, x.samples.join(', ')]; r.__text = (x.note + ' ' + r[4]).toLowerCase(); return r; });
  pagedTable(host, 'unmeasured', [textCol('population', 0), textCol('', 1), textCol('why', 2),
    {label: 'samples', num: true, key: r => r[3], render: r => el('td', {text: String(r[3])})},
    {label: 'which', key: r => r[4], render: r => el('td', {cls: 't', title: r[4], text: r[4].length > 120 ? r[4].slice(0, 117) + '...' : r[4]})}],
    rows, 50);
})();

/* populations: one row per sample, one column per population (percent of parent); helpers hidden by default */
const popHost = document.getElementById('populations-table');
let showHelpers = false;
function drawPopulations(){
  popHost.textContent = '';
  const helpers = D.populations.filter(p => D.hidden.includes(p));
  if (helpers.length){
    const cb = el('input', {type: 'checkbox', id: 'show-helpers', onchange: e => { showHelpers = e.target.checked; drawPopulations(); }});
    cb.checked = showHelpers;
    popHost.appendChild(el('div', {cls: 'tools'}, [el('label', null, [cb, ' show helper populations (' + helpers.join(', ') + ')'])]));
  }
  const rows = D.samples.map((s, si) => { const r = [s.id, Object.keys(s.flags).length, si]; r.__text = s.file.toLowerCase(); return r; });
  const cols = [
    {label: 'sample', key: r => r[0], render: r => el('td', {cls: 't'}, [sampleLink(r[0], r[2])])},
    {label: 'flags', num: true, key: r => r[1], render: r => el('td', {cls: r[1] ? 'flag' : '', text: String(r[1])})},
  ];
  D.populations.forEach((p, pi) => {
    const helper = D.hidden.includes(p);
    if (helper && !showHelpers) return;
    cols.push({
      label: p, num: true, cls: helper ? 'helper' : D.cleanup.includes(p) ? 'cleanup' : '',
      title: p + ' (% of ' + D.parents[p] + ')' + (helper ? ', a helper population' : D.cleanup.includes(p) ? ', a clean-up step' : '') + '; click to sort',
      key: r => { const c = D.samples[r[2]].cells[pi]; return c && c[3] ? c[1] : null; },
      render: r => {
        const c = D.samples[r[2]].cells[pi];
        if (!c) return el('td', {cls: 'nm', text: ''});
        const k = c[5] || [];
        const cls = !c[3] ? 'nm' : k.includes('fell back') ? 'flag' : k.includes('low count') ? 'low' : '';
        return el('td', {cls: cls, title: (c[0] == null ? 'not measured' : c[0] + ' events') + (c[4] ? ' \u2013 ' + c[4] : ''), text: c[3] ? fmtPct(c[1]) : 'n/m'});
      }});
  });
  /* a link such as report.html#sort=switched:desc opens the table sorted by that column */
  const m = /(?:^#|&)sort=([^&:]+)(?::(asc|desc))?/.exec(location.hash);
  const initial = m ? {label: decodeURIComponent(m[1]), desc: m[2] === 'desc'} : null;
  pagedTable(popHost, 'populations', cols, rows, 50, initial);
}
drawPopulations();

/* gate by gate: the same plot for every sample, side by side */
const gateHost = document.getElementById('gate-grid');
const gateSel = document.getElementById('gate-select');
const gateOrder = document.getElementById('gate-order');
let gatePage = 0; const GATE_PAGE = 24;
function drawGate(){
  gateHost.textContent = '';
  const g = D.gates[gateSel.selectedIndex];
  if (!g) { gateHost.appendChild(el('p', {text: D.no_plots || 'No gating plots in this results folder.'})); return; }
  const pi = D.populations.indexOf(g.populations[0]);
  let list = D.samples.map((s, si) => ({s: s, si: si, pct: pi >= 0 && s.cells[pi] ? s.cells[pi][1] : null})).filter(x => x.s.plots[g.key]);
  if (gateOrder.value === 'pct') list.sort((a, b) => (a.pct == null) - (b.pct == null) || a.pct - b.pct);
  if (gateOrder.value === 'flag') list.sort((a, b) => b.s.plots[g.key].fell_back - a.s.plots[g.key].fell_back);
  const pages = Math.max(1, Math.ceil(list.length / GATE_PAGE));
  gatePage = Math.min(gatePage, pages - 1);
  const missing = D.samples.length - list.length;
  const nav = el('div', {cls: 'tools'}, [
    el('button', {type: 'button', onclick: () => { gatePage = Math.max(0, gatePage - 1); drawGate(); }}, ['\u2039 prev']),
    ' page ' + (gatePage + 1) + ' of ' + pages + ' (' + list.length + ' samples' + (missing ? '; ' + missing + ' without this plot: not measured or not plotted' : '') + ') ',
    el('button', {type: 'button', onclick: () => { gatePage = Math.min(pages - 1, gatePage + 1); drawGate(); }}, ['next \u203a'])]);
  gateHost.appendChild(nav);
  const grid = el('div', {cls: 'grid'});
  const shown = list.slice(gatePage * GATE_PAGE, (gatePage + 1) * GATE_PAGE);
  const items = shown.map(x => plotItem(x.s, g.key));
  shown.forEach((x, k) => {
    const p = x.s.plots[g.key];
    const pcts = g.populations.length === 1 ? ' ' + fmtPct(x.pct) + '%' : '';
    grid.appendChild(thumb(items, k, el('figcaption', null, [sampleLink(x.s.id, x.si), pcts]), p.fell_back ? 'fb' : ''));
  });
  gateHost.appendChild(grid);
}
D.gates.forEach(g => gateSel.appendChild(el('option', {value: g.key, text: g.populations.join(', ') + '  (in ' + (g.parent || 'all events') + ')'})));
gateSel.addEventListener('change', () => { gatePage = 0; drawGate(); });
gateOrder.addEventListener('change', () => { gatePage = 0; drawGate(); });
drawGate();

/* sample by sample: its gating tree with counts, and its plots */
const depth = {};
function depthOf(p){
  if (depth[p] != null) return depth[p];
  const parent = D.parents[p];
  depth[p] = 0;
  depth[p] = parent && parent !== 'root' && D.parents[parent] != null ? depthOf(parent) + 1 : (parent && parent !== 'root' ? 1 : 0);
  return depth[p];
}
const sampleHost = document.getElementById('sample-cards');
let samplePage = 0; const SAMPLE_PAGE = 5;
function showSample(si){ samplePage = Math.floor(si / SAMPLE_PAGE); drawSamples(); }
function treeTable(s){
  /* the gating tree of the sample's plots (helpers included, greyed), else the table's rows */
  const rows = s.tree.length ? s.tree : D.populations.map(p => [p, depthOf(p) + 1, null, null, '', D.hidden.includes(p)]);
  const t = el('table', {cls: 'pops'});
  t.appendChild(el('thead', null, [el('tr', null, ['population', 'count', '% of parent', '% of total', 'note'].map((h, i) => el('th', {cls: i === 0 || i === 4 ? 't' : '', text: h})))]));
  const b = el('tbody');
  rows.forEach(row => {
    const p = row[0], pi = D.populations.indexOf(p), c = pi >= 0 ? s.cells[pi] : null;
    const name = '  '.repeat(Math.max(row[1] - 1, 0)) + '\u2514 ' + p;
    if (!c){  /* a helper population (not in the tables), or a row of the tree only */
      const note = row[5] ? 'helper population' + (row[4] ? '; ' + row[4] : '') : row[4];
      b.appendChild(el('tr', {cls: 'helper'}, [el('td', {cls: 'tree t', text: name}),
        el('td', {text: row[2] == null ? '' : String(row[2])}), el('td', {text: row[3] == null ? '' : fmtPct(row[3])}),
        el('td', {text: ''}), el('td', {cls: 't', text: note})]));
      return;
    }
    const k2 = c[5] || [];
    const cls = !c[3] ? 'nm' : k2.includes('fell back') ? 'flag' : k2.includes('low count') ? 'low' : '';
    b.appendChild(el('tr', {cls: D.hidden.includes(p) ? 'helper' : ''}, [el('td', {cls: 'tree t', text: name}),
      el('td', {cls: cls, text: c[0] == null ? 'n/m' : String(c[0])}), el('td', {cls: cls, text: c[3] ? fmtPct(c[1]) : ''}),
      el('td', {cls: cls, text: c[3] ? fmtPct(c[2]) : ''}), el('td', {cls: 't', text: [c[4]].concat(k2).filter(Boolean).join('; ')})]));
  });
  t.appendChild(b);
  return t;
}
function drawSamples(){
  sampleHost.textContent = '';
  const pages = Math.max(1, Math.ceil(D.samples.length / SAMPLE_PAGE));
  const nav = () => el('div', {cls: 'tools'}, [
    el('button', {type: 'button', onclick: () => { samplePage = Math.max(0, samplePage - 1); drawSamples(); }}, ['\u2039 prev']),
    ' samples ' + (samplePage * SAMPLE_PAGE + 1) + '\u2013' + Math.min(D.samples.length, (samplePage + 1) * SAMPLE_PAGE) + ' of ' + D.samples.length + ' ',
    el('button', {type: 'button', onclick: () => { samplePage = Math.min(pages - 1, samplePage + 1); drawSamples(); }}, ['next \u203a'])]);
  sampleHost.appendChild(nav());
  D.samples.slice(samplePage * SAMPLE_PAGE, (samplePage + 1) * SAMPLE_PAGE).forEach((s, k) => {
    const si = samplePage * SAMPLE_PAGE + k;
    const badges = [];
    const kinds = new Set(); Object.values(s.flags).forEach(v => v.forEach(x => kinds.add(x)));
    kinds.forEach(x => badges.push(el('span', {cls: 'badge ' + (x === 'low count' ? 'low' : x === 'not measured' ? 'nm' : ''), text: x})));
    const grid = el('div', {cls: 'grid'});
    const keys = D.gates.map(g => g.key).filter(key => s.plots[key]);
    const items = keys.map(key => plotItem(s, key));
    keys.forEach((key, j) => { const p = s.plots[key]; grid.appendChild(thumb(items, j, el('figcaption', {text: p.populations.join(', ')}), p.fell_back ? 'fb' : '')); });
    sampleHost.appendChild(el('div', {cls: 'card', id: 'sample-' + si}, [
      el('h3', null, [s.id].concat(badges)), el('div', {cls: 'muted', text: s.file}),
      el('div', {cls: 'body'}, [el('div', {cls: 'scroll'}, [treeTable(s)]), grid])]));
  });
  sampleHost.appendChild(nav());
}
drawSamples();
document.body.dataset.ready = '1';
})();
