/* Agent console for escalated QuickBooks bank-feed chats.
 *
 * Plain browser JavaScript, no build step. Everything that comes from the server is put on the page
 * with textContent / createElement only (never innerHTML): customers' words are shown literally.
 * Sections: wording, state, DOM helpers, formatting, api(), sign-in, queue, stats, ticket, actions,
 * live updates (server-sent events), start-up.
 */
'use strict';

(() => {
  // ------------------------------------------------------------------ wording
  const DIAGNOSES = {
    bank_unavailable: "Bank isn't answering (site down or busy)",
    credentials: "Bank sign-in details don't match",
    verification: 'Bank wants extra verification (MFA / security question)',
    account_not_found: "Account not found at the bank",
    consent_expired: 'Open-banking consent has expired',
    connection_failure: 'General connection failure',
    out_of_scope: 'Not a bank-feed problem',
  };
  const REASONS = {
    all_steps_tried: 'Tried every fix', user_request: 'Asked for a person', no_fix_left: 'No fix left that could help',
    still_failing_after_a_day: 'Still failing after a day', relapsed_after_every_step: 'Broke again after every fix',
  };
  const STEPS = {
    site_check: "Check the bank's website", refresh: 'Refresh the connection',
    credential_check: 'Check sign-in details', clear_cache: 'Clear the browser cache',
    private_window: 'Try a private window', manual_upload: 'Upload transactions manually',
    wait_a_day: 'Wait a day for the bank', answer_security_check: "Answer the bank's security check",
    fix_account_mapping: 'Re-link the account', renew_consent: 'Renew the bank consent',
  };
  const OUTCOMES = {
    did_not_help: "didn't help", already_tried: 'already tried before',
    bank_site_shows_problem: 'bank site shows a problem', fixed: 'fixed it', fixed_then_failed_again: 'fixed it, then failed again',
  };
  const CHANNELS = { socketio: 'Web chat', rest: 'API', slack: 'Slack', msteams: 'Teams', botframework: 'Teams' };
  const SITE_STATUS = { up: 'Up', maintenance: 'Maintenance', down: 'Down', slow: 'Slow', unknown: 'Unknown' };
  const EVENT_TYPES = ['ticket_created', 'ticket_assigned', 'message_created', 'ticket_returned', 'ticket_closed', 'outcome_recorded'];
  const BASE_TITLE = 'Bank-feed console';

  // ------------------------------------------------------------------ state
  const state = {
    me: null, csrf: null, tickets: [], openId: null, renderedId: null, detail: null, msgIds: new Set(), drafts: new Map(),
    events: null, lastEventId: null, reconnectTimer: null, refreshTimer: null, refreshTicket: false,
    queueSeq: 0, ticketSeq: 0, knownWaiting: null,
  };

  // ------------------------------------------------------------------ DOM helpers
  const $ = (id) => document.getElementById(id);

  /** Builds an element. props: className, text, attrs ({name: value}), dataset; children: nodes or strings (as text). */
  function h(tag, props = {}, ...children) {
    const el = document.createElement(tag);
    if (props.className) el.className = props.className;
    if (props.text != null) el.textContent = String(props.text);
    for (const [k, v] of Object.entries(props.attrs || {})) if (v != null && v !== false) el.setAttribute(k, v === true ? '' : String(v));
    Object.assign(el.dataset, props.dataset || {});
    for (const c of children.flat()) if (c != null && c !== false) el.append(typeof c === 'string' ? document.createTextNode(c) : c);
    return el;
  }
  const clear = (el) => { el.replaceChildren(); return el; };
  const show = (el, on = true) => { el.hidden = !on; };

  function announce(text) {
    const el = $('announcer');
    el.textContent = '';
    setTimeout(() => { el.textContent = text; }, 50);
  }

  let toastTimer = null;
  function toast(text, kind = 'info') {
    const el = $('toast');
    el.textContent = text;
    el.dataset.kind = kind;
    show(el);
    clearTimeout(toastTimer);
    toastTimer = setTimeout(() => show(el, false), kind === 'info' ? 4000 : 7000);
  }

  // ------------------------------------------------------------------ formatting
  const toDate = (iso) => { const d = iso ? new Date(iso) : null; return d && !isNaN(d) ? d : null; };

  function elapsed(seconds) {
    const s = Math.max(0, Math.floor(seconds));
    if (s < 60) return `${s}s`;
    if (s < 3600) return `${Math.floor(s / 60)}m ${String(s % 60).padStart(2, '0')}s`;
    if (s < 86400) return `${Math.floor(s / 3600)}h ${String(Math.floor(s / 60) % 60).padStart(2, '0')}m`;
    return `${Math.floor(s / 86400)}d ${Math.floor(s / 3600) % 24}h`;
  }
  const secondsSince = (iso) => { const d = toDate(iso); return d ? (Date.now() - d) / 1000 : 0; };

  function clock(iso) {
    const d = toDate(iso);
    if (!d) return '';
    const time = d.toLocaleTimeString([], { hour: '2-digit', minute: '2-digit' });
    return d.toDateString() === new Date().toDateString() ? time : `${d.toLocaleDateString([], { day: 'numeric', month: 'short' })} ${time}`;
  }
  const fullTime = (iso) => { const d = toDate(iso); return d ? d.toLocaleString() : ''; };
  const humanize = (s) => String(s || '').replace(/_/g, ' ').replace(/^\w/, (c) => c.toUpperCase());
  const diagnosisText = (d) => (d ? DIAGNOSES[d] || humanize(d) : 'Not diagnosed');
  const reasonText = (r) => (r ? REASONS[r] || humanize(r) : '');
  const channelText = (c) => CHANNELS[c] || humanize(c) || 'Unknown channel';
  const stepText = (s) => STEPS[s] || humanize(s);
  const codeText = (c) => (c ? `Error ${c}` : 'No error code');

  // The contract's nested agent objects, or the store's flat fields.
  const ticketAgent = (t) => t.assigned_agent || (t.assigned_agent_id ? { id: t.assigned_agent_id, display_name: t.assigned_agent_name } : null);
  const messageAgent = (m) => m.agent || (m.agent_id ? { id: m.agent_id, display_name: m.agent_name } : null);
  const isMine = (t) => t.status === 'assigned' && !!ticketAgent(t) && state.me && ticketAgent(t).id === state.me.id;
  const agentName = (a) => (a ? (state.me && a.id === state.me.id ? 'You' : a.display_name || a.username || 'A teammate') : 'A teammate');

  // ------------------------------------------------------------------ api()
  class ApiError extends Error {
    constructor(status, message) { super(message); this.status = status; }
  }

  async function api(method, path, body) {
    const opts = { method, credentials: 'same-origin', headers: { Accept: 'application/json' } };
    if (method !== 'GET') {
      opts.headers['Content-Type'] = 'application/json';
      if (state.csrf) opts.headers['X-CSRF-Token'] = state.csrf; // the session's CSRF token
      opts.body = JSON.stringify(body || {});
    }
    let res;
    try {
      res = await fetch(`/agent/api${path}`, opts);
    } catch (_) {
      throw new ApiError(0, "Can't reach the server. Check the connection and try again.");
    }
    let data = null;
    if (res.status !== 204) { try { data = await res.json(); } catch (_) { data = null; } }
    if (!res.ok) {
      if (res.status === 401 && path !== '/login' && state.me) sessionEnded();
      throw new ApiError(res.status, (data && data.error) || `The server answered ${res.status}.`);
    }
    return data;
  }

  // ------------------------------------------------------------------ sign-in
  function showLogin(message) {
    show($('boot'), false);
    show($('app-view'), false);
    show($('login-view'));
    const err = $('login-error');
    err.textContent = message || '';
    show(err, !!message);
    ($('login-username').value ? $('login-password') : $('login-username')).focus();
  }

  function showApp() {
    show($('boot'), false);
    show($('login-view'), false);
    show($('app-view'));
    $('me-name').textContent = state.me.display_name || state.me.username;
    connectEvents();
    refreshAll();
    const fromHash = /^#ticket-(\d+)$/.exec(location.hash);
    if (fromHash) openTicket(Number(fromHash[1]));
  }

  async function onLogin(event) {
    event.preventDefault();
    const username = $('login-username').value.trim();
    const password = $('login-password').value;
    if (!username || !password) return showLogin('Enter your username and password.');
    $('login-submit').disabled = true;
    try {
      const data = await api('POST', '/login', { username, password });
      state.me = data.agent; // the token is ignored: the HttpOnly cookie carries the session
      state.csrf = data.csrf_token || null;
      $('login-password').value = '';
      showApp();
    } catch (err) {
      $('login-password').value = '';
      showLogin(err.status === 401 ? 'Wrong username or password.' : err.message);
    } finally {
      $('login-submit').disabled = false;
    }
  }

  /** Forgets everything on screen (a shared desk must not show the last person's chats). */
  function resetConsole() {
    if (state.events) state.events.close();
    clearTimeout(state.reconnectTimer);
    Object.assign(state, { me: null, csrf: null, tickets: [], events: null, lastEventId: null, knownWaiting: null });
    state.queueSeq++; // answers still on their way are dropped
    state.drafts.clear();
    closeTicketView();
    ['list-waiting', 'list-mine', 'list-others', 'summary-facts', 'steps-tried', 'steps-skipped', 'steps-remaining'].forEach((id) => clear($(id)));
    $('reply-text').value = '';
    document.title = BASE_TITLE;
  }

  async function onLogout() {
    try { await api('POST', '/logout'); } catch (_) { /* signed out locally either way */ }
    resetConsole();
    showLogin();
  }

  function sessionEnded() {
    resetConsole();
    showLogin('Your session has ended. Sign in again.');
  }

  // ------------------------------------------------------------------ queue
  async function loadQueue() {
    const seq = ++state.queueSeq;
    const data = await api('GET', '/tickets?status=waiting,assigned');
    if (seq !== state.queueSeq) return;
    state.tickets = data.tickets || [];
    renderQueue();
  }

  function renderQueue() {
    const byTime = (key) => (a, b) => (toDate(a[key]) || 0) - (toDate(b[key]) || 0);
    const waiting = state.tickets.filter((t) => t.status === 'waiting')
      .sort((a, b) => (a.queue_position ?? 1e9) - (b.queue_position ?? 1e9) || byTime('created_at')(a, b));
    const assigned = state.tickets.filter((t) => t.status === 'assigned').sort(byTime('assigned_at'));
    const groups = { waiting, mine: assigned.filter(isMine), others: assigned.filter((t) => !isMine(t)) };
    const focusedId = document.activeElement && document.activeElement.dataset.ticketId;
    for (const [name, list] of Object.entries(groups)) {
      $(`count-${name}`).textContent = String(list.length);
      $(`count-${name}`).toggleAttribute('data-zero', !list.length);
      const ul = clear($(`list-${name}`));
      if (!list.length) ul.append(h('li', { className: 'queue-empty', text: name === 'waiting' ? 'No one is waiting.' : 'None.' }));
      list.forEach((t) => ul.append(queueRow(t)));
    }
    if (focusedId) { const again = document.querySelector(`[data-ticket-id="${CSS.escape(focusedId)}"]`); if (again) again.focus(); }
    document.title = waiting.length ? `(${waiting.length}) ${BASE_TITLE}` : BASE_TITLE;
    if (state.knownWaiting && waiting.some((t) => !state.knownWaiting.has(t.id))) announce('A new chat is waiting in the queue.');
    state.knownWaiting = new Set(waiting.map((t) => t.id));
    tick();
  }

  function queueRow(t) {
    const waiting = t.status === 'waiting';
    const last = t.last_message;
    const needsReply = isMine(t) && last && last.sender === 'user';
    const timer = waiting
      ? h('span', { className: 'q-time', dataset: { since: t.created_at || '', prefix: 'waiting ', warn: '1' } })
      : h('span', { className: 'q-time', dataset: { since: t.assigned_at || '', prefix: isMine(t) ? 'yours ' : `${agentName(ticketAgent(t))} · ` } });
    const tags = [
      waiting && t.queue_position != null ? h('span', { className: 'tag tag-pos', text: `#${t.queue_position} in queue` }) : null,
      h('span', { className: 'tag', text: channelText(t.channel) }),
      t.reason ? h('span', { className: `tag tag-reason-${t.reason}`, text: reasonText(t.reason) }) : null,
      needsReply ? h('span', { className: 'tag tag-reply', text: 'Customer wrote' }) : null,
    ];
    const preview = last
      ? h('span', { className: 'q-preview' }, h('span', { className: 'q-preview-who', text: `${senderLabel(last.sender, messageAgent(last))}: ` }), String(last.text || ''))
      : h('span', { className: 'q-preview muted', text: 'No messages since the hand-off yet.' });
    const button = h('button', {
      className: 'q-row',
      attrs: { type: 'button', 'aria-current': t.id === state.openId ? 'true' : null },
      dataset: { ticketId: String(t.id) },
    },
    h('span', { className: 'q-line1' }, h('span', { className: 'q-bank', text: t.bank || 'Unknown bank' }),
      h('span', { className: 'q-code', text: t.error_code ? `Error ${t.error_code}` : 'no code' }), timer),
    h('span', { className: 'q-diag', text: diagnosisText(t.diagnosis) }),
    h('span', { className: 'q-tags' }, tags),
    preview);
    button.addEventListener('click', () => openTicket(t.id));
    return h('li', { className: needsReply ? 'needs-reply' : '' }, button);
  }

  /** Every second: the "waiting 3m 05s" counters, with a warning colour for long waits. */
  function tick() {
    document.querySelectorAll('[data-since]').forEach((el) => {
      const secs = secondsSince(el.dataset.since);
      el.textContent = el.dataset.since ? el.dataset.prefix + elapsed(secs) : el.dataset.prefix.replace(/ · $/, '');
      if (el.dataset.warn) el.dataset.level = secs >= 900 ? 'late' : secs >= 300 ? 'slow' : 'ok';
    });
  }

  // ------------------------------------------------------------------ stats
  async function loadStats() {
    const s = await api('GET', '/stats');
    const by = s.resolved_by || {};
    $('stat-open').textContent = String(s.open ?? '–');
    $('stat-waiting').textContent = String(s.waiting ?? '–');
    $('stat-median').textContent = s.median_wait_seconds == null ? '–' : elapsed(s.median_wait_seconds);
    $('stat-resolved').textContent = `${by.bot ?? 0} / ${by.human ?? 0}`;
    $('stat-resolved').title = `Cancelled by the customer: ${by.user_cancelled ?? 0} · tickets in total: ${s.tickets_total ?? 0}`;
  }

  // ------------------------------------------------------------------ outages (the outage radar)
  async function loadOutages() {
    const data = await api('GET', '/outages');
    const list = clear($('list-outages'));
    const shown = (data.recent || []).slice(0, 8);
    $('count-outages').textContent = String((data.active || []).length);
    if (!shown.length) list.append(h('li', { className: 'muted', text: 'No suspected outages in the last 7 days.' }));
    for (const o of shown) {
      const when = o.active ? `since ${clock(o.started_at)}` : `${clock(o.started_at)}–${clock(o.cleared_at)}`;
      list.append(h('li', { className: o.active ? 'outage outage-active' : 'outage' },
        h('strong', { text: o.bank }), ' ', h('span', { className: 'tag', text: o.active ? 'ongoing' : 'cleared' }),
        h('div', { className: 'muted', text: `${when} · ${o.report_count} reports · ${o.probe_failures} failed checks` })));
    }
    drawTimeline((data.timeline || {}).banks || {});
  }

  function drawTimeline(banks) {
    const svg = clear($('outage-chart'));
    const NS = 'http://www.w3.org/2000/svg';
    const series = Object.values(banks);
    if (!series.length) return;
    const n = series[0].reports.length;
    const reports = Array.from({ length: n }, (_, i) => series.reduce((a, b) => a + b.reports[i], 0));
    const probes = Array.from({ length: n }, (_, i) => series.reduce((a, b) => a + b.probe_failures[i], 0));
    const top = Math.max(1, ...reports, ...probes);
    const w = 240 / n;
    reports.forEach((v, i) => {
      const bar = document.createElementNS(NS, 'rect');
      const height = (v / top) * 56;
      for (const [k, val] of Object.entries({ x: i * w + 1, y: 58 - height, width: w - 2, height, class: 'chart-bar' })) bar.setAttribute(k, val);
      svg.append(bar);
    });
    probes.forEach((v, i) => {
      if (!v) return;
      const dot = document.createElementNS(NS, 'circle');
      for (const [k, val] of Object.entries({ cx: i * w + w / 2, cy: 58 - (v / top) * 56, r: 1.8, class: 'chart-dot' })) dot.setAttribute(k, val);
      svg.append(dot);
    });
  }

  // ------------------------------------------------------------------ banks not in the directory
  async function loadUnknownBanks() {
    const data = await api('GET', '/unknown-banks?limit=10');
    const names = data.unknown_banks || [];
    const list = clear($('list-unknown-banks'));
    $('count-unknown-banks').textContent = String(names.length);
    if (!names.length) list.append(h('li', { className: 'muted', text: 'None so far.' }));
    for (const n of names) {
      const added = h('button', { className: 'btn btn-quiet btn-small', text: 'Mark added', attrs: { type: 'button', 'aria-label': `Mark ${n.name} as added to the directory` } });
      added.addEventListener('click', () => dismissUnknownBank(n.name).catch(showError));
      list.append(h('li', { className: 'unknown-bank' },
        h('div', {}, h('strong', { text: n.name }), ' ', added),
        h('div', { className: 'muted', text: `${n.count} ${n.count === 1 ? 'customer' : 'customers'} · last ${n.last_seen} · first ${n.first_seen}` })));
    }
  }

  async function dismissUnknownBank(name) {
    await api('POST', '/unknown-banks/dismiss', { name });
    toast(`${name} marked as added.`);
    await loadUnknownBanks();
  }

  // ------------------------------------------------------------------ ticket
  function openTicket(id) {
    if (state.openId != null && state.openId !== id) state.drafts.set(state.openId, $('reply-text').value);
    state.openId = id;
    state.detail = null;
    history.replaceState(null, '', `#ticket-${id}`);
    document.querySelectorAll('.q-row').forEach((b) => b.setAttribute('aria-current', String(b.dataset.ticketId === String(id))));
    $('reply-text').value = state.drafts.get(id) || '';
    loadTicket().then(() => $('ticket-title').focus()).catch(showError);
  }

  async function loadTicket() {
    const id = state.openId;
    if (id == null) return;
    const seq = ++state.ticketSeq;
    let data;
    try {
      data = await api('GET', `/tickets/${id}`);
    } catch (err) {
      if (err.status === 404 && seq === state.ticketSeq) { closeTicketView(); toast('That ticket no longer exists.', 'warn'); return; }
      throw err;
    }
    if (seq !== state.ticketSeq || id !== state.openId) return;
    state.detail = data;
    renderTicket(data);
  }

  function closeTicketView() {
    Object.assign(state, { openId: null, renderedId: null, detail: null });
    state.ticketSeq++;
    state.msgIds.clear();
    clear($('transcript'));
    show($('ticket-view'), false);
    show($('ticket-empty'));
    history.replaceState(null, '', location.pathname);
  }

  function renderTicket(data) {
    const t = data.ticket;
    show($('ticket-empty'), false);
    show($('ticket-view'));
    $('ticket-title').textContent = `#${t.id} · ${t.bank || 'Unknown bank'} · ${codeText(t.error_code)}`;
    $('ticket-meta').textContent = [channelText(t.channel), `conversation ${t.conversation_id}`,
      `escalated ${clock(t.created_at)}`, reasonText(t.reason)].filter(Boolean).join(' · ');
    renderBanner(t);
    renderActions(t);
    renderSummary(data.summary || t.summary || {}, t);
    if (state.renderedId !== t.id) renderTranscript(data);
    else (data.messages || []).forEach((m) => appendMessage(m)); // anything the event stream missed
    updateComposer(t);
  }

  function renderBanner(t) {
    const holder = agentName(ticketAgent(t));
    const text = {
      waiting: `Waiting for a specialist${t.queue_position != null ? ` (#${t.queue_position} in queue)` : ''}. Claim it to reply.`,
      assigned: isMine(t) ? '' : `${holder} is handling this chat.`,
      returned_to_bot: 'Handed back to the bot. The assistant is talking to the customer again.',
      closed: `Closed${t.resolution_note ? `: ${t.resolution_note}` : '.'}`,
    }[t.status] ?? `Status: ${humanize(t.status)}`;
    $('ticket-banner').textContent = text;
    $('ticket-banner').dataset.status = t.status;
    show($('ticket-banner'), !!text);
  }

  function renderActions(t) {
    show($('btn-claim'), t.status === 'waiting');
    show($('btn-handback'), isMine(t));
    show($('btn-close'), t.status === 'waiting' || isMine(t));
  }

  function renderSummary(s, t) {
    const checks = Object.entries(s.check_results || t.check_results || {});
    const checkNodes = checks.length ? checks.map(([bank, r]) => h('div', { className: 'check' },
      h('span', { className: `pill pill-${(r && r.status) || 'unknown'}`, text: SITE_STATUS[r && r.status] || humanize(r && r.status) || 'Unknown' }),
      ` ${bank}`,
      r && (r.reason || r.http_status) ? h('span', { className: 'muted', text: ` — ${[r.reason && humanize(r.reason), r.http_status && `HTTP ${r.http_status}`].filter(Boolean).join(', ')}` }) : null))
      : [h('span', { className: 'muted', text: 'Not checked' })];
    const facts = [
      ['Diagnosis', diagnosisText(s.diagnosis || t.diagnosis)],
      ['Bank', s.bank || t.bank || 'Unknown'],
      ['Error code', s.error_code || t.error_code || 'None given'],
      ['Bank-site check', checkNodes],
      ['Why escalated', reasonText(s.reason || t.reason) || '—'],
      ...(s.credential_findings && s.credential_findings.length ? [['Sign-in check', s.credential_findings.join('; ')]] : []),
      ['Channel', channelText(t.channel)],
    ];
    const dl = clear($('summary-facts'));
    facts.forEach(([k, v]) => dl.append(h('div', { className: 'fact' }, h('dt', { text: k }), h('dd', {}, v))));
    const outcomes = s.step_outcomes || {};
    // steps_tried: what somebody did (walked through with the bot, or tried by the customer before);
    // skipped steps are listed apart with the reason, so nothing skipped reads as tried
    const tried = s.steps_tried || t.steps_tried || [];
    const skipped = s.steps_skipped || {};
    fillSteps($('steps-tried'), tried, (step) => (outcomes[step] ? OUTCOMES[outcomes[step]] || humanize(outcomes[step]) : ''), 'Nothing yet');
    fillSteps($('steps-skipped'), Object.keys(skipped), (step) => skipped[step], 'Nothing skipped');
    const left = s.steps_remaining || [];
    fillSteps($('steps-remaining'), left, () => '', tried.length && !Object.keys(skipped).length ? 'Every fix has been tried' : 'Nothing left');
  }

  function fillSteps(ol, steps, note, emptyText) {
    clear(ol);
    if (!steps.length) ol.append(h('li', { className: 'muted step-none', text: emptyText }));
    steps.forEach((step) => { const n = note(step); ol.append(h('li', {}, stepText(step), n ? h('span', { className: 'step-note', text: ` — ${n}` }) : null)); });
  }

  function senderLabel(sender, agent) {
    if (sender === 'user') return 'Customer';
    if (sender === 'bot') return 'Assistant (bot)';
    if (sender === 'agent') return agent ? agentName(agent) : 'Specialist';
    return humanize(sender) || 'System';
  }

  function messageEl({ id, sender, text, at, agent }) {
    const kind = ['user', 'bot', 'agent'].includes(sender) ? sender : 'system';
    const mine = kind === 'agent' && agent && state.me && agent.id === state.me.id;
    const d = toDate(at);
    return h('li', { className: `msg msg-${kind}${mine ? ' msg-mine' : ''}`, dataset: id != null ? { msgId: String(id) } : {} },
      h('div', { className: 'msg-head' },
        h('span', { className: 'msg-who', text: senderLabel(sender, agent) }),
        d ? h('time', { text: clock(at), attrs: { datetime: d.toISOString(), title: fullTime(at) } }) : null),
      h('div', { className: 'msg-text', text: text == null ? '' : String(text) }));
  }

  function renderTranscript(data) {
    const log = clear($('transcript'));
    state.msgIds.clear();
    state.renderedId = data.ticket.id;
    log.setAttribute('aria-busy', 'true'); // don't read the whole history aloud
    (data.transcript || data.ticket.transcript || []).forEach((line) => log.append(messageEl(line)));
    log.append(h('li', { className: 'divider', attrs: { role: 'separator' } },
      h('span', { text: `Handed to a specialist${data.ticket.created_at ? ` · ${clock(data.ticket.created_at)}` : ''}` })));
    (data.messages || []).forEach((m) => appendMessage(m));
    log.scrollTop = log.scrollHeight;
    setTimeout(() => log.removeAttribute('aria-busy'), 0);
  }

  /** Adds a live message once (the POST answer and the event stream can both bring it). */
  function appendMessage(m, scroll = false) {
    if (m == null || (m.id != null && state.msgIds.has(String(m.id)))) return;
    if (m.id != null) state.msgIds.add(String(m.id));
    const log = $('transcript');
    const nearBottom = log.scrollHeight - log.scrollTop - log.clientHeight < 80;
    log.append(messageEl({ id: m.id, sender: m.sender, text: m.text, at: m.created_at, agent: messageAgent(m) }));
    if (scroll || nearBottom) log.scrollTop = log.scrollHeight;
  }

  function updateComposer(t) {
    const mine = isMine(t);
    const ta = $('reply-text');
    ta.disabled = !mine;
    $('reply-send').disabled = !mine;
    ta.placeholder = mine ? 'Write to the customer…'
      : t.status === 'waiting' ? 'Claim this ticket to reply.'
        : t.status === 'assigned' ? `${agentName(ticketAgent(t))} is handling this chat.` : 'This chat is no longer with a specialist.';
  }

  // ------------------------------------------------------------------ actions
  const openTicketData = () => (state.detail && state.detail.ticket) || null;

  async function claim() {
    const id = state.openId;
    $('btn-claim').disabled = true;
    try {
      await api('POST', `/tickets/${id}/claim`);
      toast('The chat is yours. The customer has been told you joined.');
      await loadTicket();
      $('reply-text').focus();
    } catch (err) {
      if (err.status === 409) toast(`Someone else took it. ${err.message}`, 'warn');
      else toast(err.message, 'error');
      await loadTicket().catch(() => {});
    } finally {
      $('btn-claim').disabled = false;
      scheduleRefresh();
    }
  }

  async function sendReply() {
    const t = openTicketData();
    const ta = $('reply-text');
    const text = ta.value.trim();
    if (!t || !isMine(t) || !text || $('reply-send').disabled) return;
    const err = $('reply-error');
    show(err, false);
    $('reply-send').disabled = true;
    try {
      const data = await api('POST', `/tickets/${t.id}/messages`, { text });
      ta.value = '';
      state.drafts.delete(t.id);
      appendMessage(data.message, true);
    } catch (e) {
      err.textContent = `Not sent: ${e.message}`;
      show(err);
      if (e.status === 409 || e.status === 403) loadTicket().catch(() => {});
    } finally {
      $('reply-send').disabled = !isMine(openTicketData() || {});
      ta.focus();
    }
  }

  function onReplyKey(event) {
    if (event.key === 'Enter' && !event.shiftKey && !event.isComposing && !event.altKey) {
      event.preventDefault();
      sendReply();
    }
  }

  function openDialog(dialog) {
    const form = dialog.querySelector('form');
    form.reset();
    show(form.querySelector('.form-error'), false);
    dialog.showModal();
    dialog.querySelector('textarea').focus();
  }

  /** Hand back / close: POSTs {note}, then refreshes. */
  async function submitDialog(event, dialog, action, required) {
    event.preventDefault();
    const form = dialog.querySelector('form');
    const err = form.querySelector('.form-error');
    const note = dialog.querySelector('textarea').value.trim();
    if (required && !note) {
      err.textContent = 'Write a resolution note before closing.';
      show(err);
      dialog.querySelector('textarea').focus();
      return;
    }
    const submit = form.querySelector('[type=submit]');
    submit.disabled = true;
    try {
      await api('POST', `/tickets/${state.openId}/${action}`, { note });
      dialog.close();
      toast(action === 'close' ? 'Ticket closed.' : 'Handed back to the bot.');
      await loadTicket();
    } catch (e) {
      err.textContent = e.message;
      show(err);
    } finally {
      submit.disabled = false;
      scheduleRefresh();
    }
  }

  function showError(err) {
    if (err && err.status !== 401) toast(err.message || String(err), 'error');
  }

  // ------------------------------------------------------------------ live updates
  function setLive(mode) {
    const el = $('live-status');
    el.dataset.state = mode;
    el.textContent = { live: 'Live', connecting: 'Connecting…', reconnecting: 'Reconnecting…', offline: 'Offline — retrying' }[mode];
  }

  function connectEvents() {
    if (state.events) state.events.close();
    const after = state.lastEventId ? `?after=${encodeURIComponent(state.lastEventId)}` : '';
    const es = new EventSource(`/agent/api/events${after}`, { withCredentials: true });
    state.events = es;
    setLive('connecting');
    es.onopen = () => { setLive('live'); scheduleRefresh(true); }; // catch up on anything missed meanwhile
    es.onerror = () => {
      if (es !== state.events) return;
      if (es.readyState === EventSource.CLOSED) { setLive('offline'); scheduleReconnect(); } else setLive('reconnecting');
    };
    EVENT_TYPES.forEach((type) => es.addEventListener(type, onEvent));
    // the server ends the stream when the session is signed out, expired or the agent deactivated
    es.addEventListener('session_ended', () => { es.close(); if (es === state.events) sessionEnded(); });
  }

  /** The browser gave up (e.g. an error status): check the session, then open a new stream. */
  function scheduleReconnect() {
    clearTimeout(state.reconnectTimer);
    state.reconnectTimer = setTimeout(async () => {
      try {
        await api('GET', '/me');
        if (state.me) connectEvents();
      } catch (err) {
        if (err.status !== 401) scheduleReconnect();
      }
    }, 3000);
  }

  function onEvent(event) {
    if (event.lastEventId) state.lastEventId = event.lastEventId;
    let payload;
    try { payload = JSON.parse(event.data); } catch (_) { return; }
    const ticketId = payload.ticket_id == null ? null : Number(payload.ticket_id);
    if (ticketId != null && ticketId === state.openId) {
      const message = event.type === 'message_created' ? eventMessage(payload) : null;
      if (message && state.renderedId === ticketId) appendMessage(message);
      else if (event.type !== 'outcome_recorded') loadTicket().catch(showError);
    }
    scheduleRefresh();
  }

  /** The message an event carries (the message object; `message_id` accepted for its id), or null. */
  function eventMessage(payload) {
    const d = payload.data || {};
    const id = d.id ?? d.message_id;
    return id == null || d.text == null ? null : { ...d, id, created_at: d.created_at || payload.created_at };
  }

  /** Reloads queue and numbers (and the open ticket if asked), at most a few times a second. */
  function scheduleRefresh(withTicket = false) {
    if (withTicket) state.refreshTicket = true;
    clearTimeout(state.refreshTimer);
    state.refreshTimer = setTimeout(() => {
      if (state.refreshTicket && state.openId != null) loadTicket().catch(showError);
      state.refreshTicket = false;
      refreshAll();
    }, 250);
  }

  function refreshAll() {
    if (!state.me) return;
    loadQueue().catch(showError);
    loadStats().catch(showError);
    loadOutages().catch(showError);
    loadUnknownBanks().catch(showError);
  }

  // ------------------------------------------------------------------ start-up
  function bind() {
    $('login-form').addEventListener('submit', onLogin);
    $('logout').addEventListener('click', onLogout);
    $('btn-claim').addEventListener('click', claim);
    $('btn-handback').addEventListener('click', () => openDialog($('handback-dialog')));
    $('btn-close').addEventListener('click', () => openDialog($('close-dialog')));
    $('handback-form').addEventListener('submit', (e) => submitDialog(e, $('handback-dialog'), 'return', false));
    $('close-form').addEventListener('submit', (e) => submitDialog(e, $('close-dialog'), 'close', true));
    document.querySelectorAll('dialog [data-cancel]').forEach((b) => b.addEventListener('click', () => b.closest('dialog').close()));
    $('reply-form').addEventListener('submit', (e) => { e.preventDefault(); sendReply(); });
    $('reply-text').addEventListener('keydown', onReplyKey);
    $('toast').addEventListener('click', () => show($('toast'), false));
    // keep the newest message in view when the log is resized (window, reply box), unless scrolled up
    const log = $('transcript');
    log.addEventListener('scroll', () => { state.stick = log.scrollHeight - log.scrollTop - log.clientHeight < 80; });
    new ResizeObserver(() => { if (state.stick !== false) log.scrollTop = log.scrollHeight; }).observe(log);
    setInterval(tick, 500);
    setInterval(() => { if (state.me) { loadOutages().catch(showError); loadUnknownBanks().catch(showError); } }, 60_000);
  }

  async function start() {
    bind();
    try {
      const data = await api('GET', '/me');
      state.me = data.agent;
      state.csrf = data.csrf_token || null;
      showApp();
    } catch (err) {
      showLogin(err.status === 401 ? '' : err.message);
    }
  }

  document.addEventListener('DOMContentLoaded', start);
})();
