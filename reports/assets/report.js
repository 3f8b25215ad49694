/* recon drift report: the interactive parts, vanilla JS, no library, no network.
   Data comes from the JSON island (#report-data). Every value is put into the page with
   textContent / createTextNode, never innerHTML, so data stays text. */
(function () {
  'use strict';
  var root = document.documentElement;
  root.classList.add('js');
  var t0 = performance.now();
  var D = JSON.parse(document.getElementById('report-data').textContent);
  var M = D.model, F = D.findings, C = F.cols, DICT = F.dict, N = F.n;
  // dictionary codes come as one character per finding (see reports/json_out.py)
  (function decodeCodes() {
    var table = new Int32Array(128).fill(-1), nullCode = F['null'].charCodeAt(0);
    for (var a = 0; a < F.alphabet.length; a++) table[F.alphabet.charCodeAt(a)] = a;
    Object.keys(DICT).forEach(function (col) {
      var s = C[col];
      if (typeof s !== 'string') return;
      var out = new Int32Array(N);
      for (var i = 0; i < N; i++) { var ch = s.charCodeAt(i); out[i] = ch === nullCode ? -1 : table[ch]; }
      C[col] = out;
    });
  })();
  var MARKS = /[\ue000-\ue002]/;
  var TPL = M.settings.zuora_url_template || '';
  var TZ = M.settings.tenant_tz;
  var CAT = M.catalogue;
  var TITLES = M.drift_titles || {};
  var SEV_ICON = {critical: '\u203c', high: '\u25b2', medium: '\u25cf', low: '\u25cb'};
  var ST_ICON = {'new': '\u271a', persisting: '\u21bb', pending: '\u23f3', resolved: '\u2714'};
  var KIND_SHORT = {missing_in_local: 'missing locally', orphaned_in_local: 'orphaned locally',
    field_mismatch: 'field differs', duplicate_local: 'duplicate', rule_violation: 'rule',
    quarantined: 'quarantined'};
  var FILTERS = {object: 'object', kind: 'kind', rule: 'rule', drift: 'drift_id', field: 'field',
    severity: 'severity', action: 'action', status: 'status', owner: 'owner', ack: 'ack'};
  var NCOLS = 8;
  var GROUP_WORDS = {subscription: 'Subscription', account: 'Account', product: 'Product'};
  var STATUS_ORDER = ['new', 'persisting', 'pending', 'resolved'];
  var SEV_ORDER = ['critical', 'high', 'medium', 'low'];
  var PREFIX = M.command_prefix || 'recon';

  // -- small helpers -------------------------------------------------------------------------
  function el(tag, cls, text) {
    var n = document.createElement(tag);
    if (cls) n.className = cls;
    if (text !== undefined && text !== null) n.textContent = String(text);
    return n;
  }
  function add(parent) {
    for (var i = 1; i < arguments.length; i++) {
      var c = arguments[i];
      if (c === null || c === undefined) continue;
      parent.appendChild(typeof c === 'string' ? document.createTextNode(c) : c);
    }
    return parent;
  }
  function fmt(n) { return n === null || n === undefined ? '\u2013' : Number(n).toLocaleString('en-US'); }
  function get(col, i) {
    var v = C[col][i];
    if (DICT[col]) return v < 0 ? null : DICT[col][v];
    if (v === null || v === undefined) return null;
    if (col === 'zuora_updated') return new Date(v * 1000).toISOString().replace('.000Z', 'Z');
    if (col === 'note' && MARKS.test(v)) {
      return v.split('\ue000').join(C.key[i]).split('\ue001').join(C.zuora_value[i])
        .split('\ue002').join(C.local_value[i]);
    }
    return v;
  }
  function zuoraHref(obj, id) {
    if (!TPL || id === null || id === undefined) return null;
    return TPL.split('{object}').join(encodeURIComponent(obj)).split('{id}').join(encodeURIComponent(id));
  }
  function link(href, text, external) {
    var a = el('a', null, text);
    a.setAttribute('href', href);
    if (external) { a.setAttribute('rel', 'noopener noreferrer'); a.setAttribute('target', '_blank'); a.title = 'open in Zuora'; }
    return a;
  }
  function inTz(iso) {
    if (!iso) return '';
    var d = new Date(iso);
    if (isNaN(d.getTime())) return iso;
    try {
      return new Intl.DateTimeFormat('en-CA', {timeZone: TZ, year: 'numeric', month: '2-digit',
        day: '2-digit', hour: '2-digit', minute: '2-digit', second: '2-digit', hour12: false,
        timeZoneName: 'short'}).format(d);
    } catch (e) { return iso; }
  }

  // -- before -> after (same rule as reports/values.py) --------------------------------------
  function chars(s) { return /[\ud800-\udfff]/.test(s) ? Array.from(s) : s; }
  function diffParts(a, b) {
    var x = chars(a), y = chars(b), n = Math.min(x.length, y.length), p = 0, s = 0;
    while (p < n && x[p] === y[p]) p++;
    while (s < n - p && x[x.length - 1 - s] === y[y.length - 1 - s]) s++;
    function cut(z) {
      var j = function (u, v) { return typeof z === 'string' ? z.slice(u, v) : z.slice(u, v).join(''); };
      return [j(0, p), j(p, z.length - s), j(z.length - s, z.length)];
    }
    return [cut(x), cut(y)];
  }
  var DATE = /^(\d{4})-(\d{2})-(\d{2})/, NUM = /^-?\d+(\.\d+)?$/;
  function scaled(s, k) {
    var neg = s[0] === '-', t = neg ? s.slice(1) : s, parts = t.split('.');
    var frac = (parts[1] || '') + new Array(k + 1).join('0');
    var v = BigInt(parts[0] + frac.slice(0, k));
    return neg ? -v : v;
  }
  function deltaNote(before, after) {
    if (before === null || after === null || before === undefined || after === undefined) return null;
    var x = DATE.exec(before), y = DATE.exec(after);
    if (x && y) {
      var d = Math.round((Date.UTC(+y[1], y[2] - 1, +y[3]) - Date.UTC(+x[1], x[2] - 1, +x[3])) / 864e5);
      if (!d) return null;
      return (d > 0 ? '+' : '') + d + ' day' + (Math.abs(d) !== 1 ? 's' : '');
    }
    if (NUM.test(before) && NUM.test(after)) {
      var k = Math.max((before.split('.')[1] || '').length, (after.split('.')[1] || '').length);
      var diff = scaled(after, k) - scaled(before, k);
      if (diff === 0n) return null;
      var neg = diff < 0n, digits = (neg ? -diff : diff).toString();
      while (digits.length <= k) digits = '0' + digits;
      var txt = k ? digits.slice(0, digits.length - k) + '.' + digits.slice(digits.length - k) : digits;
      return '\u0394 ' + (neg ? '-' : '+') + txt;
    }
    return null;
  }
  function sidePart(v, parts, cls) {
    var n = el(cls === 'b' ? 'del' : 'ins', cls);
    if (v === null || v === undefined) { add(n, el('span', 'null', '\u2205 null')); return n; }
    if (!parts) { n.textContent = v; return n; }
    add(n, parts[0], el('mark', null, parts[1]), parts[2]);
    return n;
  }
  function valuePair(before, after, kind) {
    var f = document.createDocumentFragment();
    if (kind === 'missing_in_local') { add(f, el('span', 'null', 'row missing locally')); return f; }
    if (kind === 'orphaned_in_local') { add(f, el('span', 'null', 'row only in the local copy')); return f; }
    if (before === null && after === null) return f;
    var p = (before !== null && after !== null) ? diffParts(before, after) : [null, null];
    add(f, sidePart(before, p[0], 'b'), ' \u2192 ', sidePart(after, p[1], 'a'));
    var note = deltaNote(before, after);
    if (note) add(f, el('span', 'delta', note));
    return f;
  }

  // -- cells ------------------------------------------------------------------------------------
  function statusBadge(s) { var b = el('span', 'badge s-' + s, (ST_ICON[s] || '') + ' ' + s); return b; }
  function sevBadge(s) { return el('span', 'v-' + s, (SEV_ICON[s] || '') + ' ' + (s || '')); }
  function drillLink(kind, id) { return id ? link('#drill?' + kind + '=' + encodeURIComponent(id), id) : null; }
  function keyCell(obj, key) {
    var h = CAT[obj] ? zuoraHref(obj, key) : null;
    return h ? link(h, key, true) : document.createTextNode(key === null ? '' : key);
  }
  function ruleCell(i) {
    var r = get('rule', i), d = get('drift_id', i), s = el('span', null, r || '');
    s.title = TITLES[r || d] || '';
    if (d && d !== r) add(s, ' ', el('span', 'muted', (r ? '' : 'likely ') + d));
    return s;
  }
  function td(child, cls) { var c = el('td', cls); if (child !== null && child !== undefined) add(c, child); return c; }
  function accountLink(i) {
    var acct = get('account_id', i), num = get('account_number', i);
    if (acct) return link('#drill?account=' + encodeURIComponent(acct), num || acct);
    return num ? document.createTextNode(num) : null;
  }
  function findingRow(i) {
    var ack = get('ack', i);
    var tr = el('tr', ack === 'acknowledged' ? 'row acked' : 'row'), obj = get('object', i), kind = get('kind', i);
    tr.dataset.i = i;
    var st = td(statusBadge(get('status', i)));
    add(st, add(el('div', 'small'), sevBadge(get('severity', i))));
    if (ack === 'acknowledged') {
      var a = el('div', 'ack', '\u2713 acked');
      a.title = 'acknowledged by ' + (get('ack_by', i) || '?') + ': ' + (get('ack_note', i) || '');
      add(st, a);
    } else if (ack === 'lapsed') add(st, el('div', 'small muted', 'ack lapsed: ' + get('ack_lapsed', i)));
    var sub = get('subscription_name', i);
    var ent = td(sub ? drillLink('sub', sub) : get('product', i), 'ent');
    var what = td(null);
    add(what, el('span', 'obj', obj), ' ', el('span', 'small muted', KIND_SHORT[kind] || kind));
    if (get('field', i)) add(what, el('div', 'fld', get('field', i)));
    if (get('rule', i) || get('drift_id', i)) add(what, add(el('div', 'small'), ruleCell(i)));
    var action = get('action', i);
    add(tr, st, ent, td(accountLink(i), 'ent'), what,
      td(valuePair(get('local_value', i), get('zuora_value', i), kind), 'val'),
      td(el('div', null, get('note', i)), 'expl'), td(get('owner', i)),
      td(action === 'human' ? el('span', 'a-human', '\u2691 human') : action));
    return tr;
  }
  function groupInfo(rows) {
    var info = {n: rows.length, fields: [], rows: {}, nrows: 0, sev: 9, statuses: {}, owners: [], acked: 0,
      number: null, name: null};
    rows.forEach(function (i) {
      var f = get('field', i), o = get('owner', i), s = get('status', i), v = SEV_ORDER.indexOf(get('severity', i));
      if (f && info.fields.indexOf(f) < 0) info.fields.push(f);
      var rk = C.object[i] + '\u0001' + C.key[i];
      if (!info.rows[rk]) { info.rows[rk] = 1; info.nrows++; }
      if (v >= 0 && v < info.sev) info.sev = v;
      info.statuses[s] = (info.statuses[s] || 0) + 1;
      if (o && info.owners.indexOf(o) < 0) info.owners.push(o);
      if (get('ack', i) === 'acknowledged') info.acked++;
      if (!info.number && get('account_number', i)) { info.number = get('account_number', i); info.name = get('account_name', i); }
    });
    return info;
  }
  function groupRows(rows, k) {  // the contiguous run of rows[k]'s group in rows
    var g = groupId(rows[k]), a = k, b = k;
    while (a > 0 && groupId(rows[a - 1]) === g) a--;
    while (b + 1 < rows.length && groupId(rows[b + 1]) === g) b++;
    return rows.slice(a, b + 1);
  }
  function groupHeader(i, rows) {
    var tr = el('tr', 'gh'), th = el('th'), kind = get('entity_kind', i), ent = get('entity', i);
    th.colSpan = NCOLS; th.scope = 'rowgroup';
    var g = groupInfo(rows), id = el('span', 'g-id');
    if (kind === 'subscription') add(id, drillLink('sub', ent));
    else if (kind === 'account' && get('account_id', i)) add(id, link('#drill?account=' + encodeURIComponent(get('account_id', i)), ent));
    else add(id, kind === 'other' ? C.key[i] : ent);
    add(th, el('span', 'g-kind', GROUP_WORDS[kind] || get('object', i)), ' ', id);
    if (kind === 'account' && g.name) add(th, ' ', el('span', 'g-name', g.name));
    if (kind === 'subscription' && g.number) add(th, ' ', el('span', 'muted', '\u00b7 account ' + g.number + (g.name ? ' ' + g.name : '')));
    var sum = ' \u00b7 ' + fmt(g.n) + ' finding' + (g.n === 1 ? '' : 's');
    if (g.fields.length) sum += ': ' + g.fields.slice(0, 6).join(', ') + (g.fields.length > 6 ? ' +' + (g.fields.length - 6) : '');
    if (g.nrows > 1) sum += ' on ' + fmt(g.nrows) + ' rows';
    var sp = el('span', 'g-sum', sum + ' \u00b7 ');
    if (g.sev < 9) add(sp, sevBadge(SEV_ORDER[g.sev]));
    var tail = '';
    STATUS_ORDER.forEach(function (s) { if (g.statuses[s]) tail += ' \u00b7 ' + (ST_ICON[s] || '') + ' ' + fmt(g.statuses[s]) + ' ' + s; });
    if (g.owners.length) tail += ' \u00b7 owner ' + g.owners.join(', ');
    if (g.acked) tail += ' \u00b7 \u2713 ' + fmt(g.acked) + ' acknowledged';
    add(sp, tail);
    add(th, sp);
    tr.appendChild(th);
    return tr;
  }
  function sqlStr(s) { return "'" + String(s).replace(/'/g, "''") + "'"; }
  function reproduce(i) {
    var obj = get('object', i), key = get('key', i), field = get('field', i), out = [];
    var snap = M.run.snapshot.dir, runDir = M.run.run_dir;
    if (CAT[obj] && snap) {
      out.push('-- Zuora side (the source of truth)');
      out.push('SELECT * FROM read_parquet(' + sqlStr(snap + '/zuora/' + obj + '.parquet') + ') WHERE "Id" = ' + sqlStr(key) + ';');
      out.push('-- local side');
      out.push('SELECT * FROM read_parquet(' + sqlStr(snap + '/local/' + CAT[obj].table + '.parquet') + ') WHERE ' + CAT[obj].key_column + ' = ' + sqlStr(key) + ';');
    }
    if (runDir) {
      out.push('-- this finding in the run\'s drift output');
      out.push('SELECT * FROM read_parquet(' + sqlStr(runDir + '/drift.parquet') + ') WHERE object = ' + sqlStr(obj) +
        ' AND key = ' + sqlStr(key) + (field ? ' AND field = ' + sqlStr(field) : '') + ';');
    }
    return out.join('\n');
  }
  function detailRow(i) {
    var tr = el('tr', 'detail'), cell = el('td');
    cell.colSpan = NCOLS;
    var dl = el('dl', 'prov');
    function item(label, value) {
      if (value === null || value === undefined || value === '') return;
      var d = el('div'); add(d, el('dt', null, label)); var dd = el('dd'); add(dd, value); add(d, dd); add(dl, d);
    }
    var kind = get('kind', i), status = get('status', i), drift = get('drift_id', i), rule = get('rule', i);
    var expl = get('note', i);
    item('Explanation', expl && expl.slice(-1) === '\u2026' ? expl + ' (cut; full text in report.json)' : expl);
    var obj0 = get('object', i), key0 = get('key', i), ids = el('span');
    add(ids, obj0 + ' ', CAT[obj0] ? keyCell(obj0, key0) : document.createTextNode(key0 === null ? '' : key0));
    var acct0 = get('account_id', i);
    if (acct0) {
      var ah0 = zuoraHref('Account', acct0);
      add(ids, ' \u00b7 account ', ah0 ? link(ah0, acct0, true) : acct0);
      if (get('account_name', i)) add(ids, ' (' + get('account_name', i) + ')');
    }
    item('Zuora ids', ids);
    item('Kind', kind);
    item('Status', status + (get('first_seen_run', i) ? ' \u00b7 first seen in ' + get('first_seen_run', i) : ''));
    item('Rule / drift', (rule ? rule + ' ' : '') + (drift ? '(' + drift + ': ' + (TITLES[drift] || '') + ')' : ''));
    var upd = get('zuora_updated', i);
    item('Zuora updated', upd ? upd.replace('T', ' ').replace('Z', ' UTC') + ' (' + inTz(upd) + ')' : null);
    item('Local value (before)', get('local_value', i));
    item('Zuora value (after)', get('zuora_value', i));
    var links = el('span'), obj = get('object', i), key = get('key', i);
    var zh = CAT[obj] ? zuoraHref(obj, key) : null;
    if (zh) add(links, link(zh, 'open in Zuora \u2197', true), ' \u00b7 ');
    if (get('subscription_name', i)) add(links, drillLink('sub', get('subscription_name', i)), ' \u00b7 ');
    add(links, link('#findings?object=' + encodeURIComponent(obj) + (get('field', i) ? '&field=' + encodeURIComponent(get('field', i)) : ''), 'all findings like this'));
    item('Links', links);
    item('Owner', get('owner', i));
    var fp = get('fp', i), ack = get('ack', i);
    if (ack) item('Acknowledged', (ack === 'lapsed' ? 'lapsed (' + get('ack_lapsed', i) + '): ' : '') + 'by ' +
      (get('ack_by', i) || '?') + ' at ' + (get('ack_at', i) || '').replace('T', ' ').replace('Z', ' UTC') +
      (get('ack_until', i) ? ', until ' + get('ack_until', i) : '') + ': \u201c' + (get('ack_note', i) || '') + '\u201d');
    item('Fingerprint', fp ? fp + '\u2026 (whole in report.json)' : null);
    add(cell, dl);
    if (fp && status !== 'resolved') {
      var cmd = ack === 'acknowledged' ? PREFIX + ' findings unack ' + fp
        : PREFIX + ' findings ack ' + fp + " --note 'why this can wait'";
      add(cell, el('div', 'small muted', ack === 'acknowledged' ? 'Take the acknowledgement back' :
        'Acknowledge it (it stays here under \u201cacknowledged\u201d and stops alerting until it changes)'),
        el('pre', 'cmd', cmd));
    }
    var ev = get('evidence', i);
    if (ev) {
      var pretty = ev;
      try { pretty = JSON.stringify(JSON.parse(ev), null, 2); } catch (e) { /* cut or not JSON: as is */ }
      add(cell, el('div', 'small muted', 'Evidence'), el('pre', null, pretty));
    }
    add(cell, el('div', 'small muted', 'Reproduce (DuckDB, over the run\'s files)'), el('pre', null, reproduce(i)));
    tr.appendChild(cell);
    return tr;
  }

  // -- filtering and sorting ----------------------------------------------------------------------
  function defaults() {
    return {object: '', kind: '', rule: '', drift: '', field: '', severity: '', action: '', status: '',
      owner: '', ack: '', q: '', group: 'entity', size: 50, sort: '', desc: false, page: 1};
  }
  var state = defaults();
  var hay = null;
  function haystack() {
    if (hay) return hay;
    hay = new Array(N);
    var k = C.key, s = C.subscription_name, a = C.account_id;
    for (var i = 0; i < N; i++) hay[i] = ((k[i] || '') + '\u0001' + (s[i] || '') + '\u0001' + (a[i] || '') +
      '\u0001' + (get('account_number', i) || '') + '\u0001' + (get('entity', i) || '')).toLowerCase();
    return hay;
  }
  var orders = {};
  function order(col) {
    if (!col || !C[col]) return null;
    if (orders[col]) return orders[col];
    var idx = new Int32Array(N), arr = C[col], i;
    for (i = 0; i < N; i++) idx[i] = i;
    if (DICT[col]) {
      var big = 1 << 30;
      idx.sort(function (x, y) { var u = arr[x] < 0 ? big : arr[x], v = arr[y] < 0 ? big : arr[y]; return (u - v) || (x - y); });
    } else {
      idx.sort(function (x, y) {
        var u = arr[x], v = arr[y];
        if (u === v) return x - y;
        if (u === null) return 1;
        if (v === null) return -1;
        return u < v ? -1 : 1;
      });
    }
    orders[col] = idx;
    return idx;
  }
  function predicate(st) {
    var tests = [];
    Object.keys(FILTERS).forEach(function (name) {
      var v = st[name];
      if (!v) return;
      var col = FILTERS[name], arr = C[col], dict = DICT[col];
      if (name === 'status' && v === 'open') {
        var a = dict.indexOf('new'), b = dict.indexOf('persisting');
        tests.push(function (i) { return arr[i] === a || arr[i] === b; });
      } else if (v === '-') {
        tests.push(function (i) { return arr[i] < 0; });
      } else {
        var code = dict.indexOf(v);
        if (code < 0) code = -2;
        tests.push(function (i) { return arr[i] === code; });
      }
    });
    if (st.q) {
      var q = st.q.toLowerCase(), h = haystack();
      tests.push(function (i) { return h[i].indexOf(q) >= 0; });
    }
    return function (i) {
      for (var t = 0; t < tests.length; t++) if (!tests[t](i)) return false;
      return true;
    };
  }
  var gids = null;
  function groupId(i) {  // one integer per (entity kind, entity): the default grouping's key
    if (!gids) {
      gids = new Int32Array(N);
      var kinds = C.entity_kind, ents = C.entity, nk = DICT.entity_kind.length + 1;
      for (var r = 0; r < N; r++) gids[r] = (ents[r] + 1) * nk + kinds[r] + 1;
    }
    return gids[i];
  }
  function groupKey(st, i) {
    if (st.group === 'entity') return groupId(i);
    if (st.group === 'object') return get('object', i);
    if (st.group === 'rule') return get('rule', i) || (get('drift_id', i) ? get('drift_id', i) + ' (row/field)' : '\u2014');
    return null;
  }
  function selectRows(st) {
    var ok = predicate(st), idx = order(st.sort), out = [], i;
    if (idx) {
      if (st.desc) { for (i = N - 1; i >= 0; i--) if (ok(idx[i])) out.push(idx[i]); }
      else { for (i = 0; i < N; i++) if (ok(idx[i])) out.push(idx[i]); }
    } else {
      for (i = 0; i < N; i++) if (ok(i)) out.push(i);
    }
    var groups = null, members = null;
    if (st.group === 'entity' && !idx) {
      // the findings come grouped (reports.model.prepare_findings) and filtering keeps each
      // group contiguous: the page finds a group's rows around it (groupRows), no bucketing
      return {rows: out, groups: {}, members: null};
    }
    if (st.group && st.group !== 'none') {
      var buckets = {}, names = [];
      out.forEach(function (r) {
        var g = groupKey(st, r);
        if (!buckets[g]) { buckets[g] = []; names.push(g); }
        buckets[g].push(r);
      });
      if (st.group !== 'entity') names.sort();  // entities: in reading order (worst first)
      else members = buckets;
      groups = {};
      out = [];
      names.forEach(function (g) {  // push, not concat: linear for 100,000 findings in many groups
        var b = buckets[g];
        groups[g] = b.length;
        for (var k = 0; k < b.length; k++) out.push(b[k]);
      });
    }
    return {rows: out, groups: groups, members: members};
  }

  // -- the findings explorer ------------------------------------------------------------------------
  var fTable = document.getElementById('f-table');
  var fBody = fTable ? fTable.tBodies[0] : null;
  var fCount = document.getElementById('f-count');
  var fPager = document.getElementById('f-pager');
  var form = document.getElementById('f-form');
  var current = {rows: [], groups: null};

  function readHash() {
    var h = location.hash || '';
    if (h.indexOf('#findings?') !== 0) return null;
    var p = new URLSearchParams(h.slice('#findings?'.length)), st = defaults();
    Object.keys(st).forEach(function (k) {
      if (!p.has(k)) return;
      var v = p.get(k);
      if (k === 'size' || k === 'page') st[k] = Math.max(1, parseInt(v, 10) || st[k]);
      else if (k === 'desc') st[k] = v === '1' || v === 'true';
      else st[k] = v;
    });
    return st;
  }
  function writeHash() {
    var d = defaults(), p = new URLSearchParams();
    Object.keys(state).forEach(function (k) {
      if (state[k] !== d[k]) p.set(k, k === 'desc' ? (state[k] ? '1' : '0') : String(state[k]));
    });
    var h = '#findings?' + p.toString();
    if (location.hash !== h) history.replaceState(null, '', h);
  }
  function syncForm() {
    if (!form) return;
    Array.prototype.forEach.call(form.querySelectorAll('[data-filter]'), function (s) {
      var v = String(state[s.name]);
      if (s.name === 'size') v = String(state.size);
      if (!Array.prototype.some.call(s.options, function (o) { return o.value === v; })) {
        var o = el('option', null, v); o.value = v; s.appendChild(o);
      }
      s.value = v;
    });
    var q = document.getElementById('f-q');
    if (q && q.value !== state.q) q.value = state.q;
    Array.prototype.forEach.call(fTable.tHead.rows[0].cells, function (th) {
      th.classList.remove('asc', 'desc');
      if (th.dataset.sort && th.dataset.sort === state.sort) th.classList.add(state.desc ? 'desc' : 'asc');
    });
  }
  function pager(box, page, pages, go) {
    box.textContent = '';
    var prev = el('button', null, '\u00ab Prev'), next = el('button', null, 'Next \u00bb');
    prev.type = next.type = 'button';
    prev.disabled = page <= 1; next.disabled = page >= pages;
    prev.addEventListener('click', function () { go(page - 1); });
    next.addEventListener('click', function () { go(page + 1); });
    var input = el('input'); input.type = 'number'; input.min = 1; input.max = pages; input.value = page; input.style.width = '5em';
    input.setAttribute('aria-label', 'page');
    input.addEventListener('change', function () { go(Math.min(pages, Math.max(1, parseInt(input.value, 10) || 1))); });
    add(box, prev, 'Page ', input, ' of ' + fmt(pages), next);
  }
  function renderFindings() {
    if (!fBody) return;
    var t = performance.now();
    current = selectRows(state);
    var total = current.rows.length, size = state.size, pages = Math.max(1, Math.ceil(total / size));
    if (state.page > pages) state.page = pages;
    var start = (state.page - 1) * size, end = Math.min(total, start + size);
    var frag = document.createDocumentFragment(), last = null;
    for (var k = start; k < end; k++) {
      var i = current.rows[k];
      if (current.groups) {
        var g = groupKey(state, i);
        if (g !== last) {
          if (state.group === 'entity') frag.appendChild(groupHeader(i, current.members ? current.members[g] : groupRows(current.rows, k)));
          else {
            var gr = el('tr', 'grp'), gc = el('td', null, (state.group === 'object' ? 'Object ' : 'Rule / drift ') + g + ' \u2014 ' + fmt(current.groups[g]) + ' findings');
            gc.colSpan = NCOLS; gr.appendChild(gc); frag.appendChild(gr);
          }
          last = g;
        }
      }
      frag.appendChild(findingRow(i));
    }
    fBody.textContent = '';
    fBody.appendChild(frag);
    fCount.dataset.count = total;
    fCount.textContent = total ? 'Showing ' + fmt(start + 1) + '\u2013' + fmt(end) + ' of ' + fmt(total) +
      ' findings' + (total !== N ? ' (filtered from ' + fmt(N) + ')' : '') + '.' : 'No finding matches these filters (of ' + fmt(N) + ').';
    pager(fPager, state.page, pages, function (p) { state.page = p; writeHash(); renderFindings(); });
    syncForm();
    window.__reportLastRenderMs = performance.now() - t;
  }
  if (fBody) {
    fBody.addEventListener('click', function (ev) {
      if (ev.target.closest('a, button, input')) return;
      var tr = ev.target.closest('tr.row');
      if (!tr) return;
      var next = tr.nextSibling;
      if (next && next.classList && next.classList.contains('detail')) { next.remove(); return; }
      tr.parentNode.insertBefore(detailRow(+tr.dataset.i), tr.nextSibling);
    });
    fTable.tHead.addEventListener('click', function (ev) {
      var th = ev.target.closest('th[data-sort]');
      if (!th) return;
      var col = th.dataset.sort;
      if (state.sort === col) state.desc = !state.desc; else { state.sort = col; state.desc = false; }
      state.page = 1; writeHash(); renderFindings();
    });
  }
  if (form) {
    form.addEventListener('change', function (ev) {
      var s = ev.target;
      if (!s.dataset || !s.dataset.filter) return;
      state[s.name] = s.name === 'size' ? parseInt(s.value, 10) : s.value;
      state.page = 1; writeHash(); renderFindings();
    });
    var timer = null, q = document.getElementById('f-q');
    q.addEventListener('input', function () {
      clearTimeout(timer);
      timer = setTimeout(function () { state.q = q.value.trim(); state.page = 1; writeHash(); renderFindings(); }, 150);
    });
    document.getElementById('f-reset').addEventListener('click', function () { state = defaults(); writeHash(); renderFindings(); });
  }

  // -- needs a person ----------------------------------------------------------------------------------
  var people = null, peoplePage = 1;
  function renderPeople() {
    var tbl = document.getElementById('people-table'), box = document.getElementById('people-pager');
    if (!tbl || !box) return;
    if (!people) people = selectRows({action: 'human', status: 'open', q: '', group: 'none', sort: '', desc: false}).rows;
    var size = 50, pages = Math.max(1, Math.ceil(people.length / size));
    var body = tbl.tBodies[0], frag = document.createDocumentFragment();
    people.slice((peoplePage - 1) * size, peoplePage * size).forEach(function (i) {
      var tr = el('tr');
      add(tr, td(sevBadge(get('severity', i))), td(get('object', i)), td(get('key', i), 'key'),
        td(get('rule', i) || get('kind', i)), td(get('note', i)),
        td(drillLink('sub', get('subscription_name', i)), 'mono'), td(drillLink('account', get('account_id', i)), 'mono'));
      frag.appendChild(tr);
    });
    body.textContent = '';
    body.appendChild(frag);
    if (people.length > size) pager(box, peoplePage, pages, function (p) { peoplePage = p; renderPeople(); });
  }

  // -- drill-down ------------------------------------------------------------------------------------------
  var panel = document.getElementById('drill-panel');
  function drillRows(kind, id) {
    var out = [], i;
    if (kind === 'sub') {
      for (i = 0; i < N; i++) if (get('subscription_name', i) === id || (get('key', i) === id && !CAT[get('object', i)])) out.push(i);
    } else {
      for (i = 0; i < N; i++) if (get('account_id', i) === id || (get('object', i) === 'Account' && get('key', i) === id)) out.push(i);
    }
    return out;
  }
  function renderDrill(kind, id) {
    if (!panel) return;
    panel.textContent = '';
    if (!id) return;
    var rows = drillRows(kind, id), byObj = {}, names = [];
    rows.forEach(function (i) { var o = get('object', i); if (!byObj[o]) { byObj[o] = []; names.push(o); } byObj[o].push(i); });
    var h = el('h3', null, (kind === 'sub' ? 'Subscription ' : 'Account ') + id + ' \u2014 ' + fmt(rows.length) + ' findings');
    var close = el('button', null, 'close'); close.type = 'button';
    close.addEventListener('click', function () { history.replaceState(null, '', '#drill'); renderDrill(null, null); });
    add(h, ' ', close);
    add(panel, h);
    var ext = kind === 'account' ? zuoraHref('Account', id) : null;
    var p = el('p');
    add(p, link('#findings?q=' + encodeURIComponent(id), 'show these in the findings table'));
    if (ext) add(p, ' \u00b7 ', link(ext, 'open the account in Zuora \u2197', true));
    add(panel, p);
    if (!rows.length) { add(panel, el('p', 'muted', 'No finding concerns ' + id + '.')); return; }
    var order = ['Account', 'Contact', 'Subscription', 'RatePlan', 'RatePlanCharge', 'RatePlanChargeTier', 'orders'];
    names.sort(function (a, b) { var x = order.indexOf(a), y = order.indexOf(b); return (x < 0 ? 99 : x) - (y < 0 ? 99 : y) || (a < b ? -1 : 1); });
    names.forEach(function (o) {
      add(panel, el('h3', 'small', o + ' (' + byObj[o].length + ')'));
      var tbl = el('table'), head = el('tr');
      ['Status', 'Severity', 'Key', 'Kind', 'Rule', 'Field', 'Local (before) \u2192 Zuora (after)', 'Action', 'Explanation'].forEach(function (t) { head.appendChild(el('th', null, t)); });
      var thead = el('thead'); thead.appendChild(head); tbl.appendChild(thead);
      var body = el('tbody');
      byObj[o].slice(0, 500).forEach(function (i) {
        var tr = el('tr'), kind2 = get('kind', i), action = get('action', i);
        add(tr, td(statusBadge(get('status', i))), td(sevBadge(get('severity', i))), td(keyCell(o, get('key', i)), 'key'),
          td(KIND_SHORT[kind2] || kind2), td(ruleCell(i)), td(get('field', i)),
          td(valuePair(get('local_value', i), get('zuora_value', i), kind2), 'val'),
          td(action === 'human' ? el('span', 'a-human', '\u2691 human') : action), td(get('note', i), 'expl'));
        body.appendChild(tr);
      });
      tbl.appendChild(body);
      var wrap = el('div', 'scroll'); wrap.appendChild(tbl);
      add(panel, wrap);
      if (byObj[o].length > 500) add(panel, el('p', 'muted', 'first 500 shown'));
    });
  }
  var dq = document.getElementById('drill-q'), dgo = document.getElementById('drill-go');
  function openDrill() {
    var v = dq.value.trim();
    if (!v) return;
    var isSub = false;
    for (var i = 0; i < N; i++) if (get('subscription_name', i) === v) { isSub = true; break; }
    location.hash = '#drill?' + (isSub ? 'sub' : 'account') + '=' + encodeURIComponent(v);
  }
  if (dgo) {
    dgo.addEventListener('click', openDrill);
    dq.addEventListener('keydown', function (ev) { if (ev.key === 'Enter') openDrill(); });
  }

  // -- routing -----------------------------------------------------------------------------------------------
  function route(scroll) {
    var h = location.hash || '';
    if (h.indexOf('#findings?') === 0) {
      state = readHash() || defaults();
      renderFindings();
      if (scroll) document.getElementById('findings').scrollIntoView();
    } else if (h.indexOf('#drill?') === 0) {
      var p = new URLSearchParams(h.slice('#drill?'.length));
      if (p.has('sub')) renderDrill('sub', p.get('sub'));
      else if (p.has('account')) renderDrill('account', p.get('account'));
      if (scroll) document.getElementById('drill').scrollIntoView();
    }
  }
  window.addEventListener('hashchange', function () { route(true); });
  renderFindings();
  renderPeople();
  route(true);
  root.setAttribute('data-ready', '1');
  window.__reportReadyMs = performance.now() - t0;
})();
