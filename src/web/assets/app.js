// torrent-stats web page: each source and the combined totals, health, rate and peer graphs
// (uPlot) of all sources or one, the calendar (bytes per day, month or hour from the
// daemon's ledger), quotas and their editor, settings, adding, retiring and purging sources.
// Plain JS, no build step. Talks to the daemon through `POST json` (Deluge-Web style
// JSON-RPC) and `GET events` (server-sent snapshots after every poll). Every URL is
// relative, so the page also works under a path prefix.
'use strict';

(function () {
  const COUNTERS = ['total_upload', 'total_download', 'total_payload_upload', 'total_payload_download'];
  const RATE_KEYS = ['upload_rate', 'download_rate', 'payload_upload_rate', 'payload_download_rate'];
  const PEER_KEYS = ['num_peers'];
  const LEVEL_NAMES = { 0: 'none', 1: 'read-only', 5: 'normal', 10: 'admin' };
  const ADMIN = 10;
  const NORMAL = 5;

  const $ = (id) => document.getElementById(id);

  // ---- State ---------------------------------------------------------------------------
  const state = {
    session: null, // {user, level}
    events: null, // EventSource
    retryTimer: 0,
    config: null, // {update_interval, length, save_interval}
    timeZone: null, // the ledger's IANA zone (stats.get_status), for the quotas' times
    intervals: [],
    resolution: 0,
    loadedUpdate: 0, // _last_update of the level shown
    loading: false,
    lastPolls: -1,
    snapshots: 0,
    health: null,
    sources: [], // stats.get_sources / the snapshot's `sources`
    graphSource: '', // the graphs' source: '' = all sources combined
    graphSourcesKey: null, // the sources the selector lists (rebuilt when they change)
    manageKey: null, // the sources the admin list shows
    sourceChange: null, // {action, name, opener} while the confirmation is open
    downSince: null, // when the first of the sources now down began failing
    lastSnapshotAt: 0,
    formDirty: false,
    charts: { rates: null, peers: null },
    data: { rates: [[], [], [], [], []], peers: [[], []] },
    errors: [],
    // The calendar card: its period and source ('' = combined), the slots shown.
    cal: { period: 'day', source: '', slots: [], loading: false, seq: 0, loads: 0, loadedAt: 0, sourcesKey: null, axisWidth: -1 },
    // The quotas card: stats.get_quotas' list (each with its `status`), the quota being
    // edited (its name; null: a new one), threshold events received.
    quotas: { list: [], key: null, editing: null, events: 0, loads: 0, loadedAt: 0 },
  };

  window.addEventListener('error', (e) => state.errors.push(String(e.message || e)));
  window.addEventListener('unhandledrejection', (e) => state.errors.push(String(e.reason)));

  // ---- Units ---------------------------------------------------------------------------
  const UNITS = ['B', 'KiB', 'MiB', 'GiB', 'TiB', 'PiB', 'EiB'];

  /** Bytes in binary units: "512 B", "1.50 KiB", "12.34 GiB". */
  function fmtBytes(n) {
    if (n === null || n === undefined || !isFinite(n)) return '–';
    let v = Number(n);
    if (Math.abs(v) < 1024) return `${Math.round(v)} B`;
    let i = 0;
    while (Math.abs(v) >= 1024 && i < UNITS.length - 1) {
      v /= 1024;
      i++;
    }
    return `${v.toFixed(2)} ${UNITS[i]}`;
  }

  /** An axis label: as few digits as the tick needs ("2 MiB/s", "1.5 KiB/s"). */
  function fmtAxisRate(n) {
    if (n === 0) return '0';
    let v = n;
    let i = 0;
    while (Math.abs(v) >= 1024 && i < UNITS.length - 1) {
      v /= 1024;
      i++;
    }
    return `${+v.toFixed(1)} ${UNITS[i]}/s`;
  }

  const fmtRate = (n) => (n === null || n === undefined ? '–' : `${fmtBytes(n)}/s`);
  const fmtInt = (n) => Number(n).toLocaleString('en-US');

  function fmtRatio(up, down) {
    if (!down) return up ? '∞' : '–';
    return (up / down).toFixed(3);
  }

  function fmtAgo(seconds) {
    const s = Math.max(0, Math.round(seconds));
    if (s < 60) return `${s} s ago`;
    if (s < 3600) return `${Math.floor(s / 60)} min ${s % 60} s ago`;
    if (s < 86400) return `${Math.floor(s / 3600)} h ${Math.floor((s % 3600) / 60)} min ago`;
    return `${Math.floor(s / 86400)} d ${Math.floor((s % 86400) / 3600)} h ago`;
  }

  function fmtTime(unix) {
    if (!unix) return 'never';
    const d = new Date(unix * 1000);
    const sameDay = new Date().toDateString() === d.toDateString();
    const text = sameDay ? d.toLocaleTimeString() : d.toLocaleString();
    return `${text} (${fmtAgo(Date.now() / 1000 - unix)})`;
  }

  /** Y axis steps in binary units: 1, 2, 5, 10, ... 500 of B, KiB, MiB, GiB, TiB. */
  const BINARY_INCRS = [];
  for (let k = 0; k < 5; k++) {
    for (const m of [1, 2, 5, 10, 20, 50, 100, 200, 500]) BINARY_INCRS.push(m * 1024 ** k);
  }

  // ---- JSON-RPC ------------------------------------------------------------------------
  class RpcError extends Error {
    constructor(message, code, cls) {
      super(message);
      this.code = code;
      this.cls = cls;
    }
  }

  let nextId = 1;
  async function call(method, ...params) {
    const res = await fetch('json', {
      method: 'POST',
      credentials: 'same-origin',
      headers: { 'Content-Type': 'application/json' },
      body: JSON.stringify({ method, params, id: nextId++ }),
    });
    let body;
    try {
      body = await res.json();
    } catch (_) {
      throw new RpcError(`HTTP ${res.status} ${res.statusText}`, 0, null);
    }
    if (body && body.error) {
      const err = new RpcError(body.error.message || 'call failed', body.error.code, body.error.class);
      if (err.code === 1 && method.indexOf('auth.') !== 0) sessionLost();
      throw err;
    }
    if (!res.ok) throw new RpcError(`HTTP ${res.status} ${res.statusText}`, 0, null);
    return body.result;
  }

  // ---- Views ---------------------------------------------------------------------------
  function show(view) {
    $('loading').hidden = true;
    $('login-view').hidden = view !== 'login';
    $('app-view').hidden = view !== 'app';
    $('who').hidden = view !== 'app';
  }

  function showLogin(message) {
    stopEvents();
    destroyCharts();
    state.session = null;
    show('login');
    $('login-error').textContent = message || '';
    $('login-password').value = '';
    const user = $('login-user');
    (user.value ? $('login-password') : user).focus();
    showLoginHint();
  }

  /** Who logs in first and where the password is, from the server (never the password). */
  async function showLoginHint() {
    try {
      const hint = await call('auth.login_hint');
      const p = $('login-hint');
      p.textContent = `First login: user ${hint.user}, password in ${hint.auth_file} on the daemon's machine.`;
      p.hidden = false;
    } catch (_) {
      // An older daemon: no hint.
    }
  }

  function sessionLost() {
    if (state.session) showLogin('Your session ended; log in again.');
  }

  async function startApp() {
    const session = await call('auth.get_session');
    if (!session) {
      showLogin();
      return;
    }
    state.session = session;
    const level = LEVEL_NAMES[session.level] || `level ${session.level}`;
    $('who-name').textContent = `${session.user} (${level})`;
    $('admin').hidden = session.level < ADMIN;
    $('sources-admin').hidden = session.level < ADMIN;
    state.manageKey = null;
    const canWrite = session.level >= NORMAL;
    $('settings-fields').disabled = !canWrite;
    $('settings-error').textContent = '';
    $('settings-ok').textContent = canWrite ? '' : 'Read-only account: settings cannot be changed.';
    show('app');
    const [totals, sessionTotals, health, config, sources] = await Promise.all([
      call('stats.get_totals'),
      call('stats.get_session_totals'),
      call('stats.get_status'),
      call('stats.get_config'),
      call('stats.get_sources'),
    ]);
    state.timeZone = health.time_zone || null;
    renderSources(sources);
    renderTotals(totals, sessionTotals, health);
    renderHealth(health);
    state.formDirty = false;
    applyConfig(config);
    $('quota-form').hidden = session.level < ADMIN;
    state.quotas.key = null;
    await Promise.all([loadIntervals(), loadCalendar(), loadQuotas()]);
    startEvents();
  }

  // ---- Totals and health -------------------------------------------------------------
  function setData(id, value, text, title) {
    const el = $(id);
    el.value = value === null || value === undefined ? '' : String(value);
    el.textContent = text;
    if (title) el.title = title;
    else el.removeAttribute('title');
  }

  /** The active sources whose counters are known (they answered a poll). */
  function knownSources() {
    return state.sources.filter((s) => !s.retired && s.health && s.health.measured && s.health.measured.length);
  }

  function renderTotals(totals, sessionTotals, health) {
    const several = state.sources.length > 1;
    $('totals-title').textContent = several ? `Combined totals (${state.sources.length} sources)` : 'Totals';
    $('combined-note').hidden = !several;
    const known = knownSources();
    const measured = health && health.measured && health.measured.length ? health.measured : COUNTERS;
    let anyUnmeasured = false;
    let anyPartial = false;
    for (const key of COUNTERS) {
      const row = document.querySelector(`tr[data-counter="${key}"]`);
      // With several sources: measured by none, by some only, or by all of them.
      const by = known.length ? known.filter((s) => s.health.measured.indexOf(key) >= 0).length : -1;
      const missing = by < 0 ? measured.indexOf(key) < 0 : by === 0;
      const partial = by > 0 && by < known.length;
      anyUnmeasured = anyUnmeasured || missing;
      anyPartial = anyPartial || partial;
      row.classList.toggle('unmeasured', missing);
      const tag = row.querySelector('.tag');
      tag.hidden = !missing && !partial;
      tag.textContent = partial ? 'some sources' : 'not measured';
      setData(`total-${key}`, totals[key], fmtBytes(totals[key]), `${fmtInt(totals[key])} bytes`);
      setData(`session-${key}`, sessionTotals[key], fmtBytes(sessionTotals[key]), `${fmtInt(sessionTotals[key])} bytes`);
    }
    $('unmeasured-note').hidden = !anyUnmeasured;
    $('partial-note').hidden = !anyPartial;
    // The ratio of the wire counters when every source measures them, else of the payload.
    const measuresWire = (m) => m.indexOf('total_upload') >= 0 && m.indexOf('total_download') >= 0;
    const wire = known.length ? known.every((s) => measuresWire(s.health.measured)) : measuresWire(measured);
    const [up, down] = wire ? ['total_upload', 'total_download'] : ['total_payload_upload', 'total_payload_download'];
    $('ratio-basis').textContent = wire ? '(up / down)' : '(payload up / down)';
    for (const [prefix, t] of [['total', totals], ['session', sessionTotals]]) {
      const ratio = t[down] ? t[up] / t[down] : null;
      setData(`${prefix}-ratio`, ratio === null ? '' : ratio, fmtRatio(t[up], t[down]));
    }
  }

  /** The active sources that are down (failing polls), in the table's order. */
  function downSources() {
    return state.sources.filter((s) => !s.retired && s.health && !s.health.source_up && s.health.failing_since);
  }

  function renderHealth(h) {
    state.health = h;
    $('source-name').textContent = h.source || '–';
    const active = state.sources.filter((s) => !s.retired);
    const several = active.length > 1;
    const downs = several ? downSources() : [];
    const down = several ? downs.length > 0 : !h.source_up && h.failing_since;
    const state_ = $('source-state');
    if (several) {
      const waiting = active.some((s) => !s.health.source_up && !s.health.failing_since);
      state_.textContent = downs.length
        ? `${downs.length} of ${active.length} down`
        : waiting ? 'waiting for the first poll' : 'all up';
      state_.className = `pill ${downs.length ? 'bad' : waiting ? 'warn' : 'good'}`;
    } else {
      state_.textContent = h.source_up ? 'up' : down ? 'down' : 'waiting for the first poll';
      state_.className = `pill ${h.source_up ? 'good' : down ? 'bad' : 'warn'}`;
    }
    $('source-down').hidden = !down;
    $('health').classList.toggle('is-down', !!down);
    if (down && several) {
      const names = downs.map((s) => s.name);
      $('source-down-title').textContent =
        names.length === 1 ? `Source ${names[0]} is down` : `Sources ${names.join(', ')} are down`;
      state.downSince = Math.min(...downs.map((s) => s.health.failing_since));
      $('source-down-error').textContent = downs.map((s) => `${s.name}: ${s.health.last_error || 'no answer'}`).join('; ');
    } else if (down) {
      $('source-down-title').textContent = 'The source is down';
      state.downSince = h.failing_since;
      $('source-down-error').textContent = h.last_error || 'no answer';
    }
    if (down) $('source-down-since').textContent = `since ${fmtTime(state.downSince)}`;
    $('save-failing').hidden = !h.save_failing;
    if (h.save_failing) $('save-failing-error').textContent = h.save_error || 'unknown error';
    $('source-session').textContent = h.session || (several ? 'one per source' : '–');
    $('source-measured').textContent = describeMeasured(h.measured);
    renderTimes();
    $('poll-counts').textContent =
      `${fmtInt(h.polls)} answered, ${fmtInt(h.poll_errors)} failed; ${fmtInt(h.save_errors)} failed saves`;
  }

  const COUNTER_NAMES = {
    total_upload: 'upload',
    total_download: 'download',
    total_payload_upload: 'payload upload',
    total_payload_download: 'payload download',
  };

  function describeMeasured(measured) {
    if (!measured || !measured.length) return '–';
    if (COUNTERS.every((k) => measured.indexOf(k) >= 0)) return 'wire and payload bytes, both ways';
    return measured.map((k) => COUNTER_NAMES[k] || k).join(', ') + ' only';
  }

  function renderTimes() {
    const h = state.health;
    if (!h) return;
    $('last-poll').textContent = fmtTime(h.last_poll);
    $('last-save').textContent = fmtTime(h.last_save);
    $('last-checkpoint').textContent = fmtTime(h.last_checkpoint);
    if (!$('source-down').hidden && state.downSince) $('source-down-since').textContent = `since ${fmtTime(state.downSince)}`;
  }

  function renderRatesNow(r) {
    const parts = [
      `↑ ${fmtRate(r.upload_rate)} (payload ${fmtRate(r.payload_upload_rate)})`,
      `↓ ${fmtRate(r.download_rate)} (payload ${fmtRate(r.payload_download_rate)})`,
      `${fmtInt(r.num_peers)} peers`,
    ];
    const el = $('rates-now');
    el.textContent = '';
    for (const text of parts) {
      const span = document.createElement('span');
      span.textContent = text;
      el.appendChild(span);
    }
  }

  // ---- Sources ---------------------------------------------------------------------------
  /** An element with attributes and text. */
  function el(tag, attrs, text) {
    const e = document.createElement(tag);
    for (const [k, v] of Object.entries(attrs || {})) e.setAttribute(k, v);
    if (text !== undefined) e.textContent = text;
    return e;
  }

  /** What a source measures, as `stats.get_status` says it. */
  function measuresOf(s) {
    const m = (s.health && s.health.measured) || [];
    if (!m.length) return 'unknown yet';
    return m.indexOf('total_upload') >= 0 ? 'wire bytes' : 'payload only';
  }

  /** The pair of counters a source's row shows: the wire ones, or the payload ones of a
   * payload-only source (and of a source not heard from whose files hold only payload). */
  function shownCounters(s) {
    const measures = measuresOf(s);
    const t = s.totals || {};
    const payload = measures === 'payload only' ||
      (measures === 'unknown yet' && !t.total_upload && !t.total_download &&
        (t.total_payload_upload || t.total_payload_download));
    return payload ? ['total_payload_upload', 'total_payload_download'] : ['total_upload', 'total_download'];
  }

  function sourceState(s) {
    const h = s.health || {};
    if (s.retired) return { text: 'retired', cls: 'muted', detail: 'not polled; its totals still count' };
    if (h.source_up) return { text: 'up', cls: 'good', detail: '' };
    if (h.failing_since) {
      return { text: 'down', cls: 'bad', detail: `${h.last_error || 'no answer'} (since ${fmtTime(h.failing_since)})` };
    }
    return { text: 'waiting', cls: 'warn', detail: 'no poll answered yet' };
  }

  function bytesData(s, part, key, values) {
    const v = values ? values[key] : null;
    return el('data', {
      value: v === null || v === undefined ? '' : String(v),
      'data-part': part,
      'data-counter': key,
      'data-testid': `source-${s.name}-${part}-${key}`,
      title: v === null || v === undefined ? '' : `${fmtInt(v)} bytes`,
    }, fmtBytes(v));
  }

  function sourceRow(s) {
    const tr = el('tr', { 'data-source': s.name, 'data-testid': `source-row-${s.name}` });
    tr.classList.toggle('retired', !!s.retired);
    const th = el('th', { scope: 'row' });
    th.append(el('span', { class: 'name', 'data-testid': `source-${s.name}-name` }, s.name),
      el('span', { class: 'block muted small', 'data-testid': `source-${s.name}-kind` }, s.kind));
    const st = sourceState(s);
    const state_ = el('td', { 'data-label': 'State' });
    state_.append(el('span', { class: `pill ${st.cls}`, 'data-testid': `source-${s.name}-state` }, st.text));
    if (st.detail) state_.append(el('span', { class: 'block small detail', 'data-testid': `source-${s.name}-detail` }, st.detail));
    const measures = measuresOf(s);
    const mtd = el('td', { 'data-label': 'Measures', 'data-testid': `source-${s.name}-measures` }, measures);
    const [up, down] = shownCounters(s);
    const cell = (label, key) => {
      const td = el('td', { class: 'num', 'data-label': label });
      const total = el('span', { class: 'block' });
      total.append(bytesData(s, 'total', key, s.totals));
      if (key.indexOf('payload') >= 0) total.append(' ', el('span', { class: 'tag' }, 'payload'));
      const session = el('span', { class: 'block muted small' }, 'session ');
      session.append(bytesData(s, 'session', key, s.retired ? null : s.session_totals));
      td.append(total, session);
      return td;
    };
    const rates = el('td', { class: 'num', 'data-label': 'Rates now', 'data-testid': `source-${s.name}-rates` });
    if (s.retired) rates.textContent = '–';
    else {
      const r = s.rates || {};
      rates.append(el('span', { class: 'block' }, `↑ ${fmtRate(r.upload_rate)}`),
        el('span', { class: 'block' }, `↓ ${fmtRate(r.download_rate)}`),
        el('span', { class: 'block muted small' }, `${fmtInt(r.num_peers || 0)} peers`));
    }
    const desc = el('td', { 'data-label': 'Description', class: 'break' });
    desc.append(el('code', { 'data-testid': `source-${s.name}-description` }, s.description || '–'));
    tr.append(th, state_, mtd, cell('Uploaded', up), cell('Downloaded', down), rates, desc);
    return tr;
  }

  function renderSources(sources) {
    if (!Array.isArray(sources)) return;
    state.sources = sources;
    const body = $('sources-body');
    body.textContent = '';
    for (const s of sources) body.appendChild(sourceRow(s));
    if (!sources.length) {
      const tr = el('tr');
      tr.append(el('td', { colspan: '7', class: 'muted' }, 'No sources.'));
      body.appendChild(tr);
    }
    const kinds = new Set(knownSources().map(measuresOf));
    $('sources-note').textContent =
      'Uploaded and downloaded: all time, then this session. “Wire bytes” include protocol overhead; ' +
      '“payload only” is the torrents’ data alone.' +
      (kinds.size > 1 ? ' The combined figures add what each source measures: a payload-only source adds to the payload rows only.' : '');
    updateGraphSources();
    updateLedgerSources();
    renderManage();
  }

  /** Reloads the sources, the combined totals and the health (after a change of sources). */
  async function refreshSources() {
    const [sources, totals, sessionTotals, health] = await Promise.all([
      call('stats.get_sources'),
      call('stats.get_totals'),
      call('stats.get_session_totals'),
      call('stats.get_status'),
    ]);
    renderSources(sources);
    renderTotals(totals, sessionTotals, health);
    renderHealth(health);
  }

  /** The graphs' source selector: all sources, then each (retired ones keep their past). */
  function updateGraphSources() {
    const key = state.sources.map((s) => `${s.name}${s.retired ? '*' : ''}`).join(',');
    if (key === state.graphSourcesKey) return;
    state.graphSourcesKey = key;
    const select = $('graph-source');
    select.textContent = '';
    select.appendChild(el('option', { value: '' }, 'All sources (combined)'));
    for (const s of state.sources) {
      select.appendChild(el('option', { value: s.name }, s.retired ? `${s.name} (retired)` : s.name));
    }
    const still = state.sources.some((s) => s.name === state.graphSource);
    if (!still && state.graphSource) {
      state.graphSource = '';
      state.lastPolls = -1;
      if (state.resolution) loadHistory().catch(report);
    }
    select.value = state.graphSource;
  }

  // ---- Sources settings (ADMIN) ------------------------------------------------------
  const NAME_RULE = /^[a-z0-9][a-z0-9_-]{0,31}$/;

  /** The admin list of sources with their retire or purge button. */
  function renderManage() {
    const key = state.sources.map((s) => `${s.name}:${s.kind}:${s.retired ? 1 : 0}`).join(',');
    if (key === state.manageKey) return;
    state.manageKey = key;
    const list = $('source-manage');
    list.textContent = '';
    for (const s of state.sources) {
      const li = el('li', { 'data-source': s.name });
      const label = el('span', { class: 'label' });
      label.append(el('strong', {}, s.name), ' ', el('span', { class: 'muted small' }, `${s.kind}${s.retired ? ', retired' : ''}`));
      li.append(label);
      if (s.retired) {
        li.append(el('button', {
          type: 'button', class: 'danger', 'data-action': 'purge', 'data-name': s.name,
          'aria-label': `Purge source ${s.name}…`, 'data-testid': `source-purge-${s.name}`,
        }, 'Purge…'));
      } else if (s.kind === 'engine') {
        li.append(el('span', { class: 'muted small' }, 'the embedded engine: edit the sources file and restart to remove it'));
      } else {
        li.append(el('button', {
          type: 'button', class: 'secondary', 'data-action': 'retire', 'data-name': s.name,
          'aria-label': `Retire source ${s.name}…`, 'data-testid': `source-retire-${s.name}`,
        }, 'Retire…'));
      }
      list.appendChild(li);
    }
  }

  function totalsText(t) {
    return `uploaded ${fmtBytes(t.total_upload)}, downloaded ${fmtBytes(t.total_download)}` +
      ` (payload ${fmtBytes(t.total_payload_upload)} / ${fmtBytes(t.total_payload_download)})`;
  }

  function onManageClick(ev) {
    const button = ev.target.closest('button[data-action]');
    if (!button) return;
    const name = button.dataset.name;
    const action = button.dataset.action;
    const s = state.sources.find((x) => x.name === name);
    if (!s) return;
    $('source-change-error').textContent = '';
    $('source-change-ok').textContent = '';
    state.sourceChange = { action, name, opener: button };
    if (action === 'retire') {
      $('source-dialog-title').textContent = `Retire source ${name}?`;
      $('source-dialog-text').textContent =
        `${name} is no longer polled. Its totals (${totalsText(s.totals)}) stay in the combined figures; ` +
        'adding a source under the same name counts it again.';
      $('source-confirm').textContent = 'Retire source';
    } else {
      $('source-dialog-title').textContent = `Purge source ${name}?`;
      $('source-dialog-text').textContent =
        `Its files are deleted and its totals leave the combined figures: the combined all-time totals drop by ` +
        `${totalsText(s.totals)}. This cannot be undone.`;
      $('source-confirm').textContent = 'Purge source';
    }
    const dialog = $('source-dialog');
    dialog.returnValue = '';
    dialog.showModal();
  }

  async function onSourceDialogClosed() {
    const change = state.sourceChange;
    state.sourceChange = null;
    if (!change) return;
    if ($('source-dialog').returnValue !== 'confirm') {
      if (document.body.contains(change.opener)) change.opener.focus();
      return;
    }
    const retire = change.action === 'retire';
    try {
      const totals = await call(retire ? 'stats.remove_source' : 'stats.purge_source', change.name);
      $('source-change-ok').textContent = retire
        ? `Source ${change.name} retired: no longer polled; its totals (${totalsText(totals)}) still count.`
        : `Source ${change.name} purged: its files are deleted; ${totalsText(totals)} left the combined figures.`;
      await refreshSources();
    } catch (e) {
      $('source-change-error').textContent = `${retire ? 'Not retired' : 'Not purged'}: ${e.message}`;
    }
    const next = $('source-manage').querySelector(`li[data-source="${change.name}"] button`);
    (next || $('source-add-name')).focus();
  }

  async function addSource(ev) {
    ev.preventDefault();
    const err = $('source-add-error');
    const ok = $('source-add-ok');
    err.textContent = '';
    ok.textContent = '';
    const nameInput = $('source-add-name');
    const specInput = $('source-add-spec');
    const name = nameInput.value.trim();
    const spec = specInput.value.trim();
    if (!NAME_RULE.test(name)) {
      err.textContent = 'Not added: the name must be 1 to 32 of a-z, 0-9, _ and -, starting with a letter or a digit.';
      nameInput.focus();
      return;
    }
    if (!spec) {
      err.textContent = 'Not added: the specification is empty.';
      specInput.focus();
      return;
    }
    const fields = $('source-add-fields');
    fields.disabled = true;
    try {
      // The daemon answers after the source's first poll (within 5 s).
      const added = await call('stats.add_source', name, spec);
      nameInput.value = '';
      specInput.value = '';
      const health = (added && added.health) || {};
      if (health.source_up) {
        ok.textContent = `Source ${name} added; it answers.`;
      } else if (health.last_error) {
        ok.textContent = `Source ${name} added, but its first poll failed: ${health.last_error}. It is polled again every interval.`;
      } else {
        ok.textContent = `Source ${name} added; its first poll follows.`;
      }
      await refreshSources();
    } catch (e) {
      err.textContent = `Not added: ${e.message}`;
    } finally {
      fields.disabled = false;
    }
    (err.textContent ? specInput : nameInput).focus();
  }

  // ---- Settings ------------------------------------------------------------------------
  const SETTINGS = ['update_interval', 'save_interval', 'length'];

  function applyConfig(config) {
    const previous = state.config;
    state.config = config;
    if (!state.formDirty) {
      for (const key of SETTINGS) $(`set-${key}`).value = config[key];
    }
    if (previous && previous.update_interval !== config.update_interval) loadIntervals();
    else if (previous && previous.length !== config.length) trimCharts();
  }

  async function saveSettings(ev) {
    ev.preventDefault();
    const err = $('settings-error');
    const ok = $('settings-ok');
    err.textContent = '';
    ok.textContent = '';
    const changes = {};
    for (const key of SETTINGS) {
      const input = $(`set-${key}`);
      const text = input.value.trim();
      if (!/^-?\d+$/.test(text)) {
        err.textContent = `Not saved: ${input.labels[0].textContent} must be a whole number.`;
        input.focus();
        return;
      }
      const n = parseInt(text, 10);
      if (!state.config || state.config[key] !== n) changes[key] = n;
    }
    if (!Object.keys(changes).length) {
      ok.textContent = 'Nothing to save: these are the current settings.';
      return;
    }
    const button = $('settings-save');
    button.disabled = true;
    try {
      await call('stats.set_config', changes);
      state.formDirty = false;
      applyConfig(await call('stats.get_config'));
      ok.textContent = `Saved: ${Object.entries(changes).map(([k, v]) => `${k} = ${v}`).join(', ')}.`;
    } catch (e) {
      err.textContent = `Not saved: ${e.message}`;
    } finally {
      button.disabled = false;
    }
  }

  // ---- Reset ---------------------------------------------------------------------------
  function openReset() {
    $('reset-result').textContent = '';
    $('reset-error').textContent = '';
    const dialog = $('reset-dialog');
    dialog.returnValue = '';
    dialog.showModal();
  }

  async function onResetClosed() {
    const dialog = $('reset-dialog');
    if (dialog.returnValue !== 'reset') {
      $('reset-open').focus();
      return;
    }
    try {
      const before = await call('stats.reset_totals');
      $('reset-result').textContent =
        `Totals reset. Before: uploaded ${fmtBytes(before.total_upload)}, downloaded ${fmtBytes(before.total_download)}` +
        ` (payload ${fmtBytes(before.total_payload_upload)} / ${fmtBytes(before.total_payload_download)}).`;
      const [totals, sessionTotals] = await Promise.all([call('stats.get_totals'), call('stats.get_session_totals')]);
      renderTotals(totals, sessionTotals, state.health);
    } catch (e) {
      $('reset-error').textContent = `Not reset: ${e.message}`;
    }
    $('reset-open').focus();
  }

  // ---- Graphs --------------------------------------------------------------------------
  function cssVar(name, fallback) {
    const v = getComputedStyle(document.documentElement).getPropertyValue(name).trim();
    return v || fallback;
  }

  function chartSize(el) {
    const width = Math.max(200, Math.floor(el.clientWidth));
    const height = window.innerWidth < 600 ? 200 : 260;
    return { width, height };
  }

  /** X axis labels in local time: seconds only when ticks are closer than a minute, the
   * date when the axis spans days. */
  function timeLabels(u, ticks, axisIdx, space, incr) {
    const withSeconds = incr < 60;
    const withDate = ticks.length > 1 && ticks[ticks.length - 1] - ticks[0] >= 86400;
    const opts = { hour: '2-digit', minute: '2-digit' };
    if (withSeconds) opts.second = '2-digit';
    return ticks.map((t) => {
      const d = new Date(t * 1000);
      const time = d.toLocaleTimeString([], opts);
      return withDate ? `${d.toLocaleDateString([], { month: 'short', day: 'numeric' })} ${time}` : time;
    });
  }

  /** X axis steps: whole seconds up to a week. */
  const TIME_INCRS = [1, 2, 5, 10, 15, 30, 60, 120, 300, 600, 900, 1800, 3600, 7200, 10800, 21600, 43200, 86400, 172800, 604800];

  function xAxis() {
    return { ...axisStyle(), space: 80, incrs: TIME_INCRS, values: timeLabels };
  }

  function axisStyle() {
    return {
      stroke: cssVar('--fg-muted', '#555'),
      grid: { stroke: cssVar('--grid', '#e5e5e5'), width: 1 },
      ticks: { stroke: cssVar('--grid', '#e5e5e5'), width: 1 },
    };
  }

  function makeRatesChart(el) {
    const up = cssVar('--up', '#2e7d32');
    const down = cssVar('--down', '#1565c0');
    const opts = {
      ...chartSize(el),
      cursor: { drag: { x: false, y: false } },
      scales: { x: { time: true }, y: { auto: true, range: (u, min, max) => [0, Math.max(1024, max * 1.1)] } },
      axes: [
        xAxis(),
        { ...axisStyle(), size: 78, incrs: BINARY_INCRS, values: (u, ticks) => ticks.map(fmtAxisRate) },
      ],
      series: [
        { label: 'Time', value: (u, t) => (t === null ? '–' : new Date(t * 1000).toLocaleTimeString()) },
        { label: 'Upload', stroke: up, width: 2, value: (u, v) => fmtRate(v) },
        { label: 'Download', stroke: down, width: 2, value: (u, v) => fmtRate(v) },
        { label: 'Payload up', stroke: up, width: 1, dash: [5, 4], value: (u, v) => fmtRate(v) },
        { label: 'Payload down', stroke: down, width: 1, dash: [5, 4], value: (u, v) => fmtRate(v) },
      ],
    };
    return new uPlot(opts, state.data.rates, el);
  }

  function makePeersChart(el) {
    const opts = {
      ...chartSize(el),
      height: window.innerWidth < 600 ? 150 : 180,
      cursor: { drag: { x: false, y: false } },
      scales: { x: { time: true }, y: { auto: true, range: (u, min, max) => [0, Math.max(5, Math.ceil(max * 1.2))] } },
      axes: [
        xAxis(),
        { ...axisStyle(), size: 78, values: (u, ticks) => ticks.map((t) => (Number.isInteger(t) ? String(t) : '')) },
      ],
      series: [
        { label: 'Time', value: (u, t) => (t === null ? '–' : new Date(t * 1000).toLocaleTimeString()) },
        { label: 'Peers', value: (u, v) => (v === null ? '–' : fmtInt(v)), stroke: cssVar('--peers', '#8e24aa'), width: 2, fill: cssVar('--peers-fill', 'rgba(142,36,170,0.08)') },
      ],
    };
    return new uPlot(opts, state.data.peers, el);
  }

  let resizeObserver = null;
  function ensureCharts() {
    if (typeof uPlot === 'undefined') {
      state.errors.push('uPlot did not load');
      return;
    }
    if (!state.charts.rates) state.charts.rates = makeRatesChart($('rates-chart'));
    if (!state.charts.peers) state.charts.peers = makePeersChart($('peers-chart'));
    if (!resizeObserver && 'ResizeObserver' in window) {
      // Resize on the next frame, not inside the observer's callback: a chart's new size
      // changes the layout the observer reports on.
      let frame = 0;
      resizeObserver = new ResizeObserver(() => {
        cancelAnimationFrame(frame);
        frame = requestAnimationFrame(resizeCharts);
      });
      resizeObserver.observe($('rates-chart'));
      resizeObserver.observe($('cal-chart'));
    }
  }

  function resizeCharts() {
    if (state.cal.slots.length) renderCalendarAxis();
    for (const [name, el] of [['rates', $('rates-chart')], ['peers', $('peers-chart')]]) {
      const chart = state.charts[name];
      if (!chart) continue;
      const size = chartSize(el);
      if (name === 'peers') size.height = window.innerWidth < 600 ? 150 : 180;
      if (size.width !== chart.width || size.height !== chart.height) chart.setSize(size);
    }
  }

  function destroyCharts() {
    for (const name of ['rates', 'peers']) {
      if (state.charts[name]) state.charts[name].destroy();
      state.charts[name] = null;
    }
    if (resizeObserver) resizeObserver.disconnect();
    resizeObserver = null;
  }

  function redraw() {
    ensureCharts();
    if (state.charts.rates) state.charts.rates.setData(state.data.rates);
    if (state.charts.peers) state.charts.peers.setData(state.data.peers);
  }

  async function loadIntervals() {
    const intervals = await call('stats.get_intervals');
    state.intervals = intervals;
    const select = $('resolution');
    const keep = intervals.indexOf(state.resolution) >= 0 ? state.resolution : intervals[0];
    select.textContent = '';
    for (const secs of intervals) {
      const opt = document.createElement('option');
      opt.value = String(secs);
      opt.textContent = describeInterval(secs);
      select.appendChild(opt);
    }
    select.value = String(keep);
    state.resolution = keep;
    await loadHistory();
  }

  function describeInterval(secs) {
    const len = state.config ? state.config.length : 150;
    return `${fmtSpan(secs)} (last ${fmtSpan(secs * len)})`;
  }

  /** A duration for people: "5 s", "2.5 min", "12.5 h", "3.5 d". */
  function fmtSpan(s) {
    const round = (v) => String(+v.toFixed(1));
    if (s < 120) return `${s} s`;
    if (s < 7200) return `${round(s / 60)} min`;
    if (s < 172800) return `${round(s / 3600)} h`;
    return `${round(s / 86400)} d`;
  }

  /** Reloads the shown resolution of the shown source (or all sources) from
   * `stats.get_stats` (lists are newest first). */
  async function loadHistory() {
    const interval = state.resolution;
    const source = state.graphSource;
    if (!interval) return;
    state.loading = true;
    try {
      const keys = RATE_KEYS.concat(PEER_KEYS);
      const h = await call('stats.get_stats', keys, interval, source || null);
      if (interval !== state.resolution || source !== state.graphSource) return; // changed again meanwhile
      const n = Math.max(0, ...keys.map((k) => (h[k] || []).length));
      const last = h._last_update || Date.now() / 1000;
      const xs = [];
      for (let i = n - 1; i >= 0; i--) xs.push(last - i * interval);
      const series = (k) => {
        const s = (h[k] || []).slice(0, n).reverse();
        while (s.length < n) s.unshift(null);
        return s;
      };
      state.data.rates = [xs, ...RATE_KEYS.map(series)];
      state.data.peers = [xs.slice(), ...PEER_KEYS.map(series)];
      state.loadedUpdate = last;
      redraw();
    } finally {
      if (interval === state.resolution && source === state.graphSource) state.loading = false;
    }
  }

  function trimCharts() {
    const len = state.config ? state.config.length : 150;
    for (const name of ['rates', 'peers']) {
      const d = state.data[name];
      const extra = d[0].length - len;
      if (extra > 0) state.data[name] = d.map((s) => s.slice(extra));
    }
    redraw();
  }

  /** The graphs' source in a snapshot (`null`: all sources, or it is gone). */
  function graphSourceOf(snap) {
    if (!state.graphSource) return null;
    return (snap.sources || []).find((s) => s.name === state.graphSource) || null;
  }

  /** The polls answered by the graphs' source (by all active sources: their sum). */
  function pollsOf(snap) {
    if (!state.graphSource) return snap.health.polls;
    const s = graphSourceOf(snap);
    return s ? s.health.polls : -1;
  }

  /** A new poll: one more point at the finest resolution; coarser ones reload when due.
   * The point is the combined rates (all sources) or the shown source's. */
  function onPoll(snap) {
    if (!state.resolution || state.loading) return;
    if (state.resolution !== state.intervals[0]) {
      if (snap.at - state.loadedUpdate >= state.resolution - 0.5) loadHistory().catch(report);
      return;
    }
    const source = graphSourceOf(snap);
    if (state.graphSource && !source) return;
    const rates = source ? source.rates : snap.rates;
    const x = (source ? source.health.last_poll : snap.health.last_poll) || snap.at;
    const xs = state.data.rates[0];
    // All sources: each source's poll is a snapshot; one point per interval, as the
    // history adds them up.
    const gap = source ? 0 : state.resolution / 2;
    if (xs.length && x <= xs[xs.length - 1] + gap) return;
    state.data.rates.forEach((s, i) => s.push(i === 0 ? x : rates[RATE_KEYS[i - 1]]));
    state.data.peers.forEach((s, i) => s.push(i === 0 ? x : rates[PEER_KEYS[i - 1]]));
    state.loadedUpdate = x;
    trimCharts();
  }

  // ---- Calendar (the daemon's ledger) ----------------------------------------------------
  /** The slots each period shows. */
  const CAL_SLOTS = { day: 31, month: 12, hour: 48 };
  const CAL_WHAT = { day: 'Day', month: 'Month', hour: 'Hour' };
  const WIRE_PAIR = ['total_download', 'total_upload'];
  const PAYLOAD_PAIR = ['total_payload_download', 'total_payload_upload'];

  const pad2 = (n) => String(n).padStart(2, '0');
  /** A date's label from its UTC fields: "2026-12-07". */
  const dayLabel = (d) => `${d.getUTCFullYear()}-${pad2(d.getUTCMonth() + 1)}-${pad2(d.getUTCDate())}`;
  const monthLabel = (d) => `${d.getUTCFullYear()}-${pad2(d.getUTCMonth() + 1)}`;
  /** "2026-12-07" or "2026-12" as a Date at UTC midnight. */
  function labelDate(label) {
    const [y, m, d] = label.split('-').map(Number);
    return new Date(Date.UTC(y, (m || 1) - 1, d || 1));
  }
  /** Today in the browser's time zone, as a Date at UTC midnight. */
  function todayDate() {
    const n = new Date();
    return new Date(Date.UTC(n.getFullYear(), n.getMonth(), n.getDate()));
  }
  const addDays = (d, n) => new Date(Date.UTC(d.getUTCFullYear(), d.getUTCMonth(), d.getUTCDate() + n));
  const addMonths = (d, n) => new Date(Date.UTC(d.getUTCFullYear(), d.getUTCMonth() + n, 1));

  /** The UTC offset of an hour label ("2026-10-25T02:00+01:00"), seconds. */
  function labelOffset(label) {
    const m = /([+-])(\d\d):(\d\d)$/.exec(label || '');
    if (!m) return null;
    return (m[1] === '-' ? -1 : 1) * (Number(m[2]) * 3600 + Number(m[3]) * 60);
  }

  /** An hour's label at UTC offset `off` (seconds), as the ledger writes them. */
  function hourLabel(start, off) {
    const d = new Date((start + off) * 1000);
    const a = Math.abs(off);
    const zone = `${off < 0 ? '-' : '+'}${pad2(Math.floor(a / 3600))}:${pad2(Math.floor((a % 3600) / 60))}`;
    return `${dayLabel(d)}T${pad2(d.getUTCHours())}:${pad2(d.getUTCMinutes())}${zone}`;
  }

  /** The `start` argument of `stats.get_calendar`: a little before the first slot (the
   * daemon's time zone may differ from the browser's). */
  function calendarStart(period) {
    if (period === 'hour') return Math.floor(Date.now() / 1000) - (CAL_SLOTS.hour + 1) * 3600;
    if (period === 'month') return `${monthLabel(addMonths(todayDate(), -CAL_SLOTS.month))}-01`;
    return dayLabel(addDays(todayDate(), -(CAL_SLOTS.day + 1)));
  }

  /** The last `CAL_SLOTS[period]` periods up to now, each with its row's bytes, or zeros
   * where the ledger holds none. Days and months are named by calendar arithmetic; hours
   * by their start, named with the UTC offset of a neighbouring row. */
  function calendarSlots(period, rows) {
    const n = CAL_SLOTS[period];
    const zero = (label, start) => ({ label, start, total_upload: 0, total_download: 0, total_payload_upload: 0, total_payload_download: 0 });
    const slots = [];
    if (period === 'hour') {
      const byStart = new Map(rows.map((r) => [r.start, r]));
      const last = rows.length ? rows[rows.length - 1] : null;
      const phase = last ? ((last.start % 3600) + 3600) % 3600 : 0;
      const now = Math.floor(Date.now() / 1000);
      let end = Math.floor((now - phase) / 3600) * 3600 + phase;
      if (last && last.start > end) end = last.start;
      let off = rows.length ? labelOffset(rows[0].label) : null;
      if (off === null) off = -new Date().getTimezoneOffset() * 60;
      for (let k = n - 1; k >= 0; k--) {
        const start = end - k * 3600;
        const row = byStart.get(start);
        if (row) off = labelOffset(row.label) ?? off;
        slots.push(row || zero(hourLabel(start, off), start));
      }
      return slots;
    }
    const byLabel = new Map(rows.map((r) => [r.label, r]));
    const month = period === 'month';
    let end = month ? addMonths(todayDate(), 0) : todayDate();
    const last = rows.length ? labelDate(rows[rows.length - 1].label) : null;
    if (last && last > end) end = last;
    for (let k = n - 1; k >= 0; k--) {
      const label = month ? monthLabel(addMonths(end, -k)) : dayLabel(addDays(end, -k));
      slots.push(byLabel.get(label) || zero(label, null));
    }
    return slots;
  }

  /** The counters shown: the wire pair, or the payload pair when only payload bytes were
   * counted (a payload-only source). */
  function calendarPair(slots) {
    const any = (keys) => slots.some((s) => keys.some((k) => s[k] > 0));
    return !any(WIRE_PAIR) && any(PAYLOAD_PAIR) ? PAYLOAD_PAIR : WIRE_PAIR;
  }

  /** A slot's short name under the bars: "12-07", "2026-12", "14:00". */
  function shortLabel(period, label) {
    if (period === 'hour') return label.slice(11, 16);
    if (period === 'day') return label.slice(5);
    return label;
  }

  function renderCalendar() {
    const c = state.cal;
    const slots = c.slots;
    const [downKey, upKey] = calendarPair(slots);
    const payload = downKey === PAYLOAD_PAIR[0];
    const max = Math.max(0, ...slots.map((s) => Math.max(s[downKey], s[upKey])));
    const chart = $('cal-chart');
    chart.textContent = '';
    chart.style.gridTemplateColumns = `repeat(${slots.length}, minmax(0, 1fr))`;
    let down = 0;
    let up = 0;
    slots.forEach((s) => {
      down += s[downKey];
      up += s[upKey];
      const slot = el('div', {
        class: 'bar-slot', 'data-label': s.label, 'data-down': String(s[downKey]), 'data-up': String(s[upKey]),
        title: `${s.label}: ↓ ${fmtBytes(s[downKey])}, ↑ ${fmtBytes(s[upKey])}`,
      });
      for (const [cls, v] of [['down', s[downKey]], ['up', s[upKey]]]) {
        const bar = el('span', { class: `bar ${cls}` });
        bar.style.height = max > 0 ? `${(v / max) * 100}%` : '0';
        if (v > 0) bar.classList.add('some');
        slot.appendChild(bar);
      }
      chart.appendChild(slot);
    });
    state.cal.axisWidth = -1;
    renderCalendarAxis();
    $('cal-max').textContent = max > 0 ? `max ${fmtBytes(max)}` : '';
    const what = { day: 'days', month: 'months', hour: 'hours' }[c.period];
    const summary = $('cal-summary');
    summary.textContent = '';
    for (const [cls, text] of [['', `last ${slots.length} ${what}`], ['key down', `↓ downloaded ${fmtBytes(down)}`],
      ['key up', `↑ uploaded ${fmtBytes(up)}`], ['', `ratio ${fmtRatio(up, down)}`]]) {
      summary.appendChild(el('span', cls ? { class: cls } : {}, text));
    }
    chart.setAttribute('aria-label', `${payload ? 'Payload bytes' : 'Bytes'} downloaded and uploaded per ${c.period}, last ${slots.length} ${what}: ` +
      `${fmtBytes(down)} down, ${fmtBytes(up)} up; the table below lists each`);
    $('cal-col').textContent = CAL_WHAT[c.period];
    const body = $('cal-body');
    body.textContent = '';
    const cell = (v) => {
      const td = el('td', { class: 'num' });
      td.appendChild(el('data', { value: String(v), title: `${fmtInt(v)} bytes` }, fmtBytes(v)));
      return td;
    };
    for (const s of slots.slice().reverse()) {
      const tr = el('tr', { 'data-label': s.label });
      tr.classList.toggle('empty', !s[downKey] && !s[upKey]);
      tr.append(el('th', { scope: 'row' }, s.label), cell(s[downKey]), cell(s[upKey]), cell(s[downKey] + s[upKey]),
        el('td', { class: 'num' }, fmtRatio(s[upKey], s[downKey])));
      body.appendChild(tr);
    }
    const foot = $('cal-foot');
    foot.textContent = '';
    const tr = el('tr');
    tr.append(el('th', { scope: 'row' }, 'Total'), cell(down), cell(up), cell(down + up), el('td', { class: 'num' }, fmtRatio(up, down)));
    foot.appendChild(tr);
    $('cal-note').textContent = `Periods of the daemon's calendar, in its time zone. ${payload
      ? 'Payload bytes: the source counts no wire bytes.'
      : 'Bytes on the wire, protocol overhead included.'}`;
  }

  /** The labels under the bars: as many as fit (about 56 px each), the newest one always;
   * drawn again when the chart's width changes. */
  function renderCalendarAxis() {
    const c = state.cal;
    const slots = c.slots;
    const chart = $('cal-chart');
    const width = chart.clientWidth;
    if (width === c.axisWidth) return;
    c.axisWidth = width;
    const axis = $('cal-axis');
    axis.textContent = '';
    axis.style.gridTemplateColumns = chart.style.gridTemplateColumns;
    const fit = Math.max(3, Math.floor((width || 600) / 56));
    const step = Math.max(1, Math.ceil(slots.length / fit));
    const half = Math.floor(step / 2);
    slots.forEach((s, i) => {
      if ((slots.length - 1 - i) % step !== 0) return;
      // Centred under its bar, over the columns up to the next label.
      const tick = el('span', {}, shortLabel(c.period, s.label));
      tick.style.gridColumn = `${Math.max(1, i + 1 - half)} / ${Math.min(slots.length, i + 1 + half) + 1}`;
      axis.appendChild(tick);
    });
  }

  /** Reloads the shown period of the shown source (or all) from `stats.get_calendar`. */
  async function loadCalendar() {
    const c = state.cal;
    const { period, source } = c;
    const seq = ++c.seq;
    c.loading = true;
    try {
      const rows = await call('stats.get_calendar', period, source || null, calendarStart(period));
      if (seq !== c.seq) return;
      c.slots = calendarSlots(period, rows);
      c.loadedAt = Date.now();
      c.loads++;
      $('cal-error').textContent = '';
      renderCalendar();
    } catch (e) {
      if (seq !== c.seq) return;
      if (e.code === 2) {
        $('calendar-card').hidden = true; // a daemon without the ledger
        return;
      }
      $('cal-error').textContent = `Calendar not loaded: ${e.message}`;
    } finally {
      if (seq === c.seq) c.loading = false;
    }
  }

  /** The calendar's and the quota editor's source selectors: all sources, then each. */
  function updateLedgerSources() {
    const key = state.sources.map((s) => `${s.name}${s.retired ? '*' : ''}`).join(',');
    if (key === state.cal.sourcesKey) return;
    state.cal.sourcesKey = key;
    for (const id of ['cal-source', 'q-source']) {
      const select = $(id);
      const keep = select.value;
      select.textContent = '';
      select.appendChild(el('option', { value: '' }, 'All sources (combined)'));
      for (const s of state.sources) {
        select.appendChild(el('option', { value: s.name }, s.retired ? `${s.name} (retired)` : s.name));
      }
      select.value = state.sources.some((s) => s.name === keep) ? keep : '';
    }
    if (state.cal.source && $('cal-source').value !== state.cal.source) {
      state.cal.source = '';
      if (state.session) loadCalendar().catch(report);
    }
  }

  // ---- Quotas ------------------------------------------------------------------------------
  /** The settings of a quota, as `stats.set_quotas` takes them. */
  const QUOTA_KEYS = ['name', 'source', 'direction', 'measure', 'period', 'reset_day', 'days', 'limit',
    'thresholds', 'command', 'action', 'upload_limit', 'download_limit'];

  function quotaSettings(q) {
    const out = {};
    for (const k of QUOTA_KEYS) if (q[k] !== null && q[k] !== undefined) out[k] = q[k];
    return out;
  }

  function describeQuota(q) {
    const dir = { download: 'downloads', upload: 'uploads', both: 'downloads + uploads' }[q.direction] || q.direction;
    const per = {
      day: 'a day', week: 'a week', month: `a month (from day ${q.reset_day || 1})`, rolling: `per ${q.days} days, rolling`,
    }[q.period] || q.period;
    let text = `${fmtBytes(q.limit)} ${per}: ${dir}, ${q.measure === 'payload' ? 'payload' : 'wire'} bytes, ` +
      `${q.source ? `source ${q.source}` : 'all sources'}`;
    if (q.action === 'pause') text += '; pauses the torrents at 100 %';
    if (q.action === 'limit') {
      text += `; at 100 % limits ${[q.upload_limit && `↑ ${fmtRate(q.upload_limit)}`, q.download_limit && `↓ ${fmtRate(q.download_limit)}`]
        .filter(Boolean).join(', ')}`;
    }
    return text;
  }

  /** Unix seconds as the browser's local "2026-12-19 14:00". */
  function fmtLocal(unix) {
    const d = new Date(unix * 1000);
    // In the ledger's time zone (stats.get_status), which the quotas' periods follow.
    if (state.timeZone) {
      try {
        const f = new Intl.DateTimeFormat('sv-SE', {
          timeZone: state.timeZone, year: 'numeric', month: '2-digit', day: '2-digit', hour: '2-digit', minute: '2-digit', hour12: false,
        });
        return `${f.format(d)} (${state.timeZone})`;
      } catch (e) {
        // A zone the browser does not know: its own below.
      }
    }
    return `${d.getFullYear()}-${pad2(d.getMonth() + 1)}-${pad2(d.getDate())} ${pad2(d.getHours())}:${pad2(d.getMinutes())}`;
  }

  /** The quota's item: built when the quotas change, its figures updated in place. */
  function quotaItem(q) {
    const li = el('li', { 'data-quota': q.name, 'data-testid': `quota-${q.name}` });
    const head = el('div', { class: 'quota-head' });
    head.append(el('strong', { class: 'quota-name' }, q.name), el('span', { class: 'muted small quota-period', 'data-part': 'period' }, ''));
    const meter = el('div', {
      class: 'meter', role: 'progressbar', 'aria-valuemin': '0', 'aria-valuemax': '100', 'aria-label': `Quota ${q.name}`, 'data-part': 'meter',
    });
    meter.append(el('span', { class: 'meter-proj', 'data-part': 'proj' }), el('span', { class: 'meter-fill', 'data-part': 'fill' }));
    li.append(head, meter,
      el('span', { class: 'block quota-used', 'data-part': 'used' }, ''),
      el('span', { class: 'block small quota-projection', 'data-part': 'projection' }, ''),
      el('span', { class: 'block muted small', 'data-part': 'settings' }, describeQuota(q)));
    if (q.command) li.append(el('code', { class: 'block small muted' }, `command: ${q.command}`));
    if (state.session && state.session.level >= ADMIN) {
      const actions = el('span', { class: 'quota-actions' });
      actions.append(
        el('button', { type: 'button', class: 'secondary', 'data-action': 'edit', 'data-name': q.name, 'aria-label': `Edit quota ${q.name}`, 'data-testid': `quota-edit-${q.name}` }, 'Edit'),
        el('button', { type: 'button', class: 'secondary', 'data-action': 'remove', 'data-name': q.name, 'aria-label': `Remove quota ${q.name}`, 'data-testid': `quota-remove-${q.name}` }, 'Remove'));
      head.append(actions);
    }
    return li;
  }

  function updateQuotaItem(li, st) {
    const part = (name) => li.querySelector(`[data-part="${name}"]`);
    const meter = part('meter');
    if (!st) {
      part('used').textContent = 'Not evaluated yet.';
      return;
    }
    const pct = st.limit ? (st.used / st.limit) * 100 : 0;
    li.classList.toggle('level-warn', pct >= 80 && pct < 100);
    li.classList.toggle('level-bad', pct >= 100);
    part('period').textContent = st.period;
    part('fill').style.width = `${Math.min(100, pct)}%`;
    part('proj').style.width = `${Math.min(100, st.limit ? (st.projected / st.limit) * 100 : 0)}%`;
    meter.classList.toggle('over', !st.reached && st.projected >= st.limit);
    const used = `${fmtBytes(st.used)} of ${fmtBytes(st.limit)} (${st.percent.toFixed(1)} %)`;
    meter.setAttribute('aria-valuenow', String(Math.min(100, +pct.toFixed(1))));
    meter.setAttribute('aria-valuetext', used);
    meter.dataset.used = String(st.used);
    meter.dataset.limit = String(st.limit);
    meter.dataset.projected = String(st.projected);
    part('used').textContent = `${used}, ${fmtBytes(st.left)} left`;
    let projection;
    if (st.reached) projection = 'Reached: the limit is used up for this period.';
    else {
      projection = `At this rate (${fmtRate(st.rate)}): ${fmtBytes(st.projected)} by the period's end; ` +
        (st.reached_at ? `reached on ${fmtLocal(st.reached_at)}` : 'not before the period ends');
    }
    part('projection').textContent = projection;
  }

  function renderQuotas() {
    const list = $('quota-list');
    const quotas = state.quotas.list;
    const key = JSON.stringify([state.session && state.session.level, quotas.map(quotaSettings)]);
    if (key !== state.quotas.key) {
      state.quotas.key = key;
      list.textContent = '';
      for (const q of quotas) list.appendChild(quotaItem(q));
    }
    $('quotas-empty').hidden = quotas.length > 0;
    for (const q of quotas) {
      const li = list.querySelector(`li[data-quota="${CSS.escape(q.name)}"]`);
      if (li) updateQuotaItem(li, q.status);
    }
  }

  async function loadQuotas() {
    try {
      state.quotas.list = await call('stats.get_quotas');
    } catch (e) {
      if (e.code === 2) {
        $('quotas-card').hidden = true; // a daemon without the ledger
        return;
      }
      throw e;
    }
    state.quotas.loads++;
    state.quotas.loadedAt = Date.now();
    renderQuotas();
  }

  /** A snapshot's quota states: the bars follow every poll. */
  function onQuotaStatuses(statuses) {
    if (!Array.isArray(statuses)) return;
    const known = state.quotas.list.map((q) => q.name).join('\n');
    if (statuses.map((s) => s.name).join('\n') !== known) {
      // Changed elsewhere (or not evaluated yet: then asked again at most every 10 s).
      if (statuses.length || Date.now() - state.quotas.loadedAt > 10000) loadQuotas().catch(report);
      return;
    }
    for (const q of state.quotas.list) q.status = statuses.find((s) => s.name === q.name) || q.status;
    renderQuotas();
  }

  function onQuotaEvent(ev) {
    let args;
    try {
      args = JSON.parse(ev.data);
    } catch (_) {
      return;
    }
    const [name, percent] = Array.isArray(args) ? args : [];
    const notice = $('quota-notice');
    notice.hidden = false;
    notice.className = `banner ${percent >= 100 ? 'bad' : 'warn'}`;
    notice.textContent = `Quota ${name} reached ${percent} % of its limit (${new Date().toLocaleTimeString()}).`;
    state.quotas.events++;
    loadQuotas().catch(report);
  }

  // The editor (ADMIN).
  const QUOTA_FIELDS = ['name', 'source', 'direction', 'measure', 'period', 'reset_day', 'days', 'limit',
    'thresholds', 'action', 'upload_limit', 'download_limit', 'command'];

  function quotaFieldsShown() {
    const period = $('q-period').value;
    const limit = $('q-action').value === 'limit';
    $('q-reset_day-field').hidden = period !== 'month';
    $('q-days-field').hidden = period !== 'rolling';
    $('q-upload_limit-field').hidden = !limit;
    $('q-download_limit-field').hidden = !limit;
  }

  /** Fills the editor with `q` (or empties it for a new quota). */
  function editQuota(q) {
    state.quotas.editing = q ? q.name : null;
    const defaults = { direction: 'both', measure: 'wire', period: 'month', action: 'none' };
    for (const k of QUOTA_FIELDS) {
      let v = q ? q[k] : defaults[k];
      if (k === 'thresholds') v = q ? (q.thresholds || []).join(', ') : '';
      $(`q-${k}`).value = v === null || v === undefined ? defaults[k] || '' : String(v);
    }
    $('quota-legend').textContent = q ? `Change quota ${q.name}` : 'Add a quota';
    $('quota-error').textContent = '';
    quotaFieldsShown();
  }

  /** A byte amount as typed: a whole number of bytes, or the text for the daemon to read. */
  const bytesField = (text) => (/^\d+$/.test(text) ? Number(text) : text);

  /** The quota the editor holds, or a message saying which field is wrong. */
  function quotaFromForm() {
    const v = (k) => $(`q-${k}`).value.trim();
    const q = { name: v('name'), direction: v('direction'), measure: v('measure'), period: v('period'), action: v('action') };
    if (!q.name) return 'the name is empty.';
    if (v('source')) q.source = v('source');
    if (!v('limit')) return 'the limit is empty.';
    q.limit = bytesField(v('limit'));
    const whole = (k, label) => {
      if (!v(k)) return null;
      if (!/^\d+$/.test(v(k))) return `${label} must be a whole number.`;
      q[k] = Number(v(k));
      return null;
    };
    const bad = (q.period === 'month' && whole('reset_day', 'the day the month starts on')) ||
      (q.period === 'rolling' && whole('days', 'days'));
    if (bad) return bad;
    if (v('thresholds')) {
      const parts = v('thresholds').split(/[\s,]+/).filter(Boolean);
      if (!parts.every((p) => /^\d+$/.test(p))) return 'the notices must be whole percents, e.g. 80, 100.';
      q.thresholds = parts.map(Number);
    }
    if (q.action === 'limit') {
      if (v('upload_limit')) q.upload_limit = bytesField(v('upload_limit'));
      if (v('download_limit')) q.download_limit = bytesField(v('download_limit'));
    }
    if (v('command')) q.command = v('command');
    return q;
  }

  /** Replaces the daemon's quotas by `quotas`; its answer is the new list. */
  async function setQuotas(quotas) {
    state.quotas.list = await call('stats.set_quotas', quotas.map(quotaSettings));
    state.quotas.loads++;
    renderQuotas();
  }

  async function saveQuota(ev) {
    ev.preventDefault();
    const err = $('quota-error');
    const ok = $('quota-ok');
    err.textContent = '';
    ok.textContent = '';
    const q = quotaFromForm();
    if (typeof q === 'string') {
      err.textContent = `Not saved: ${q}`;
      return;
    }
    const editing = state.quotas.editing;
    const list = state.quotas.list.slice();
    const at = list.findIndex((x) => x.name === (editing === null ? q.name : editing));
    if (at >= 0) list[at] = q;
    else list.push(q);
    const fields = $('quota-fields');
    fields.disabled = true;
    try {
      await setQuotas(list);
      ok.textContent = `Quota ${q.name} saved.`;
      editQuota(null);
    } catch (e) {
      err.textContent = `Not saved: ${e.message}`;
    } finally {
      fields.disabled = false;
    }
    (err.textContent ? $('q-limit') : $('q-name')).focus();
  }

  async function onQuotaListClick(ev) {
    const button = ev.target.closest('button[data-action]');
    if (!button) return;
    const name = button.dataset.name;
    const q = state.quotas.list.find((x) => x.name === name);
    if (!q) return;
    $('quota-change-error').textContent = '';
    $('quota-change-ok').textContent = '';
    $('quota-ok').textContent = '';
    if (button.dataset.action === 'edit') {
      editQuota(q);
      $('q-name').focus();
      return;
    }
    try {
      await setQuotas(state.quotas.list.filter((x) => x.name !== name));
      $('quota-change-ok').textContent = `Quota ${name} removed.`;
      if (state.quotas.editing === name) editQuota(null);
    } catch (e) {
      $('quota-change-error').textContent = `Not removed: ${e.message}`;
    }
  }

  // ---- Server-sent events ------------------------------------------------------------
  function onSnapshot(ev) {
    const snap = JSON.parse(ev.data);
    state.snapshots++;
    state.lastSnapshotAt = Date.now();
    renderSources(snap.sources);
    renderTotals(snap.totals, snap.session_totals, snap.health);
    renderHealth(snap.health);
    const shown = graphSourceOf(snap);
    renderRatesNow(shown ? shown.rates : snap.rates);
    $('conn-banner').hidden = !!snap.running;
    if (!snap.running) $('conn-banner').textContent = 'The Stats plugin is not running: the figures shown are the last ones counted.';
    if (state.config && snap.config) applyConfig(snap.config);
    const polls = pollsOf(snap);
    if (state.lastPolls >= 0 && polls > state.lastPolls) onPoll(snap);
    state.lastPolls = polls;
    onQuotaStatuses(snap.quotas);
    // The calendar's newest bar grows: reloaded once a minute while polls go on.
    if (!state.cal.loading && !$('calendar-card').hidden && Date.now() - state.cal.loadedAt >= 60000) loadCalendar().catch(report);
  }

  function startEvents() {
    stopEvents();
    state.lastPolls = -1;
    const es = new EventSource('events');
    state.events = es;
    es.addEventListener('snapshot', onSnapshot);
    es.addEventListener('QuotaThresholdEvent', onQuotaEvent);
    es.onopen = () => {
      $('conn-banner').hidden = true;
    };
    es.onerror = () => {
      if (state.events !== es) return;
      const banner = $('conn-banner');
      banner.hidden = false;
      if (es.readyState === EventSource.CLOSED) {
        // Refused (e.g. the session expired): check the session, then try again.
        banner.textContent = 'Live updates stopped; retrying…';
        stopEvents();
        state.retryTimer = setTimeout(async () => {
          try {
            if (await call('auth.check_session')) startApp().catch(report);
            else sessionLost();
          } catch (e) {
            startEvents();
          }
        }, 5000);
      } else {
        banner.textContent = 'Connection to the daemon lost; reconnecting…';
      }
    };
  }

  function stopEvents() {
    clearTimeout(state.retryTimer);
    if (state.events) state.events.close();
    state.events = null;
  }

  function report(e) {
    state.errors.push(String(e && e.message ? e.message : e));
    const banner = $('conn-banner');
    banner.hidden = false;
    banner.textContent = `Error: ${e && e.message ? e.message : e}`;
  }

  // ---- Wiring --------------------------------------------------------------------------
  async function onLogin(ev) {
    ev.preventDefault();
    const err = $('login-error');
    err.textContent = '';
    const button = $('login-submit');
    button.disabled = true;
    try {
      const ok = await call('auth.login', $('login-user').value, $('login-password').value);
      if (!ok) {
        err.textContent = 'Wrong user or password.';
        $('login-password').select();
        return;
      }
      $('login-password').value = '';
      await startApp();
      $('main').focus();
    } catch (e) {
      err.textContent = `Log in failed: ${e.message}`;
    } finally {
      button.disabled = false;
    }
  }

  async function onLogout() {
    try {
      await call('auth.logout');
    } catch (_) {
      // The session is gone either way.
    }
    showLogin('Logged out.');
  }

  function init() {
    $('login-form').addEventListener('submit', onLogin);
    $('logout').addEventListener('click', onLogout);
    $('settings-form').addEventListener('submit', saveSettings);
    $('settings-form').addEventListener('input', () => {
      state.formDirty = true;
      $('settings-ok').textContent = '';
    });
    $('reset-open').addEventListener('click', openReset);
    $('reset-dialog').addEventListener('close', () => onResetClosed().catch(report));
    $('resolution').addEventListener('change', (e) => {
      state.resolution = parseInt(e.target.value, 10);
      loadHistory().catch(report);
    });
    $('graph-source').addEventListener('change', (e) => {
      state.graphSource = e.target.value;
      state.lastPolls = -1;
      loadHistory().catch(report);
    });
    $('source-add-form').addEventListener('submit', (ev) => addSource(ev).catch(report));
    $('source-add-form').addEventListener('input', () => {
      $('source-add-ok').textContent = '';
    });
    $('source-manage').addEventListener('click', onManageClick);
    $('cal-period').addEventListener('change', (e) => {
      state.cal.period = e.target.value;
      loadCalendar().catch(report);
    });
    $('cal-source').addEventListener('change', (e) => {
      state.cal.source = e.target.value;
      loadCalendar().catch(report);
    });
    $('quota-form').addEventListener('submit', (ev) => saveQuota(ev).catch(report));
    $('quota-form').addEventListener('input', () => {
      $('quota-ok').textContent = '';
    });
    $('q-period').addEventListener('change', quotaFieldsShown);
    $('q-action').addEventListener('change', quotaFieldsShown);
    $('quota-new').addEventListener('click', () => {
      editQuota(null);
      $('q-name').focus();
    });
    $('quota-list').addEventListener('click', (ev) => onQuotaListClick(ev).catch(report));
    $('source-dialog').addEventListener('close', () => onSourceDialogClosed().catch(report));
    setInterval(renderTimes, 1000);
    call('auth.check_session')
      .then((ok) => (ok ? startApp() : showLogin()))
      .catch((e) => {
        showLogin(`Cannot reach the daemon: ${e.message}`);
      });
  }

  // Hooks for the browser test (cli/tests/daemon/web_browser.rs) and for curious users.
  window.__torrentStats = {
    points: () => state.data.rates[0].length,
    peerPoints: () => state.data.peers[0].length,
    chartPoints: () => (state.charts.rates ? state.charts.rates.data[0].length : 0),
    resolution: () => state.resolution,
    graphSource: () => state.graphSource,
    loading: () => state.loading,
    series: (i) => state.data.rates[i].slice(),
    intervals: () => state.intervals.slice(),
    snapshots: () => state.snapshots,
    loggedIn: () => !!state.session,
    errors: () => state.errors.slice(),
    calendar: () => ({
      period: state.cal.period, source: state.cal.source, loading: state.cal.loading, loads: state.cal.loads,
      slots: state.cal.slots.map((s) => ({ label: s.label, ...Object.fromEntries(COUNTERS.map((k) => [k, s[k]])) })),
    }),
    quotaLoads: () => state.quotas.loads,
    quotaEvents: () => state.quotas.events,
    fmtBytes,
  };

  if (document.readyState === 'loading') document.addEventListener('DOMContentLoaded', init);
  else init();
})();
