// The ethmls page: a client of the account's daemon over its WebSocket API (JSON-RPC 2.0).
// Everything another account wrote is put in the page as text (textContent), never as HTML.
'use strict';

// The daemon's token, as the page was given it (`/?token=…`: a reload keeps working; the
// token changes at each start of the daemon, and no request leaves with a Referer).
const token = new URL(document.currentScript.src).searchParams.get('token');

const $ = (id) => document.getElementById(id);
const state = { me: '', names: {}, groups: [], current: null, unread: {}, acl: null, pending: 0 };
let socket = null;
let nextId = 1;
const calls = new Map();

// Others' text as the terminal shows it (`ethmls`'s out::clean): control characters (line
// breaks included) and the bidirectional overrides that could make a message look like
// another sender's or reorder what is read, written out as \u{…}.
function clean(text) {
  return String(text).replace(/[\u0000-\u001f\u007f-\u009f\u202a-\u202e\u2066-\u2069]/g,
    (c) => '\\u{' + c.charCodeAt(0).toString(16) + '}');
}

function el(tag, text, cls) {
  const e = document.createElement(tag);
  if (text !== undefined && text !== null) e.textContent = String(text);
  if (cls) e.className = cls;
  return e;
}

// An address as `0x1234…abcd` (a known account's name first), the full address on hover.
function who(address) {
  const a = String(address || '');
  const short = a.length > 12 ? a.slice(0, 6) + '…' + a.slice(-4) : a;
  const name = state.names[a];
  const span = el('span', name ? name + ' (' + short + ')' : short, 'address');
  span.title = a;
  return span;
}

function call(method, params) {
  return new Promise((resolve, reject) => {
    if (!socket || socket.readyState !== WebSocket.OPEN) {
      reject(new Error('not connected to the daemon'));
      return;
    }
    const id = nextId++;
    calls.set(id, { resolve, reject });
    socket.send(JSON.stringify({ jsonrpc: '2.0', id, method, params: params || {} }));
  });
}

function connect() {
  const url = 'ws://' + location.host + '/ws?token=' + encodeURIComponent(token);
  socket = new WebSocket(url);
  socket.onopen = async () => {
    $('connection').textContent = 'connected';
    await call('subscribe');
    await start();
  };
  socket.onclose = () => {
    $('connection').textContent = 'disconnected: retrying';
    for (const c of calls.values()) c.reject(new Error('the connection closed'));
    calls.clear();
    setTimeout(connect, 1000);
  };
  socket.onmessage = (m) => {
    let v;
    try { v = JSON.parse(m.data); } catch (_) { return; }
    if (v.method === 'event') { onEvent(v.params); return; }
    const c = calls.get(v.id);
    if (!c) return;
    calls.delete(v.id);
    if (v.error) {
      const e = new Error(v.error.message + (v.error.data && v.error.data.hint ? ' — ' + v.error.data.hint : ''));
      c.reject(e);
    } else {
      c.resolve(v.result);
    }
  };
}

async function start() {
  const status = await call('status');
  state.me = status.daemon.address;
  state.names[state.me] = status.daemon.account;
  $('me').replaceChildren(who(state.me));
  await Promise.all([loadGroups(), loadInvitations()]);
  // `#group=0x…` in the address opens that group.
  const wanted = new URLSearchParams(location.hash.slice(1)).get('group');
  if (!state.current && wanted) state.current = wanted.toLowerCase();
  if (state.current) await openGroup(state.current);
}

async function loadGroups() {
  const r = await call('group.list');
  state.groups = r.groups;
  renderGroups();
}

function renderGroups() {
  const list = $('groups');
  list.replaceChildren();
  for (const g of state.groups) {
    const li = el('li');
    const b = el('button', null, 'group');
    b.type = 'button';
    b.dataset.group = g.group;
    b.setAttribute('aria-current', String(g.group === state.current));
    const label = el('span');
    label.append(who(g.group), document.createTextNode(' · ' + g.members + (g.active ? '' : ' (left)')));
    b.append(label);
    const n = state.unread[g.group] || 0;
    if (n > 0) {
      const badge = el('span', n, 'unread');
      badge.setAttribute('aria-label', n + ' unread');
      b.append(badge);
    }
    b.onclick = () => openGroup(g.group);
    li.append(b);
    list.append(li);
  }
  if (state.groups.length === 0) list.append(el('li', 'No groups yet: create one, or accept an invitation.'));
}

async function loadInvitations() {
  const r = await call('group.requests');
  const list = $('invitations');
  list.replaceChildren();
  for (const i of r.invitations) {
    const li = el('li');
    li.dataset.id = i.id;
    li.append(el('span', 'From '), who(i.from), el('span', ' to '), who(i.group));
    if (i.note) li.append(el('div', clean(i.note), 'note'));
    const accept = el('button', 'Accept');
    accept.type = 'button';
    accept.className = 'accept';
    accept.onclick = () => pending('accepting the invitation', call('group.accept', { id: i.id, wait: 120 }))
      .then(loadGroups).finally(loadInvitations);
    const decline = el('button', 'Decline');
    decline.type = 'button';
    decline.className = 'decline';
    decline.onclick = () => call('group.decline', { id: i.id }).then(loadInvitations, showError);
    li.append(accept, decline);
    list.append(li);
  }
  if (r.invitations.length === 0) list.append(el('li', 'None.'));
}

function messageItem(sender, text, notice) {
  const li = el('li', null, sender === state.me ? 'mine' : '');
  if (notice) {
    li.append(el('span', text, 'notice'));
    return li;
  }
  const s = who(sender);
  s.classList.add('sender');
  li.append(s, el('span', clean(text), 'text'));
  return li;
}

async function openGroup(g) {
  state.current = g;
  state.unread[g] = 0;
  renderGroups();
  $('title').replaceChildren(el('span', 'Group '), who(g));
  const [r, m] = await Promise.all([call('read', { group: g }), call('group.members', { group: g })]);
  const list = $('messages');
  list.replaceChildren();
  for (const msg of r.messages) list.append(messageItem(msg.sender, msg.text));
  list.scrollTop = list.scrollHeight;
  renderMembers(m);
  const active = r.active;
  for (const id of ['text', 'invite-address', 'update', 'recover']) $(id).disabled = !active;
  for (const b of document.querySelectorAll('#compose button, #invite button')) b.disabled = !active;
  if (!active) list.append(messageItem('', 'This account is no longer a member of the group.', true));
}

function renderMembers(m) {
  state.acl = m;
  const admin = m.owner === state.me || (m.admins || []).includes(state.me);
  const list = $('members');
  list.replaceChildren();
  for (const a of m.members) {
    const li = el('li');
    li.append(who(a));
    if (a === m.owner) li.append(el('span', ' owner'));
    else if ((m.admins || []).includes(a)) li.append(el('span', ' admin'));
    if (admin && a !== state.me && m.active) {
      const b = el('button', 'Remove', 'remove');
      b.type = 'button';
      b.setAttribute('aria-label', 'Remove ' + a);
      b.onclick = () => pending('removing ' + a, call('group.remove', { group: m.group, address: a }))
        .then(() => openGroup(m.group));
      li.append(b);
    }
    list.append(li);
  }
  $('recover').hidden = m.owner !== state.me;
}

// A change that takes blocks: shown under Pending with the seconds it has waited.
function pending(what, promise) {
  const li = el('li');
  const started = Date.now();
  const tick = () => { li.textContent = what + ': ' + Math.round((Date.now() - started) / 1000) + ' s'; };
  tick();
  const timer = setInterval(tick, 1000);
  $('pending').append(li);
  return promise.then(
    (r) => { clearInterval(timer); li.remove(); return r; },
    (e) => { clearInterval(timer); li.remove(); showError(e); throw e; });
}

function showError(e) {
  const li = el('li', String(e.message || e), 'error');
  $('problems').prepend(li);
}

function onEvent(e) {
  switch (e.event) {
    case 'message':
      if (e.group === state.current) {
        const list = $('messages');
        list.append(messageItem(e.sender, e.text));
        list.scrollTop = list.scrollHeight;
      } else {
        state.unread[e.group] = (state.unread[e.group] || 0) + 1;
        renderGroups();
      }
      break;
    case 'invitation_received':
    case 'invitation_declined':
      loadInvitations();
      break;
    case 'joined':
    case 'member_added':
    case 'member_removed':
    case 'removed':
    case 'commit_merged':
      loadGroups();
      if (e.group === state.current) openGroup(state.current);
      break;
    case 'daemon_recovered':
      $('connection').textContent = 'connected';
      break;
    case 'daemon_error':
      $('connection').textContent = 'connected; the daemon reports: ' + e.message;
      break;
    case 'fork_detected':
    case 'stalled':
    case 'intent_failed':
    case 'message_lost':
      showError(new Error(e.event.replace('_', ' ') + ': ' + (e.reason || '')));
      break;
    default:
      break;
  }
}

$('compose').onsubmit = (ev) => {
  ev.preventDefault();
  const input = $('text');
  const text = input.value;
  if (!text.trim() || !state.current) return;
  input.value = '';
  const g = state.current;
  call('send', { group: g, text }).then(() => {
    if (state.current === g) {
      const list = $('messages');
      list.append(messageItem(state.me, text));
      list.scrollTop = list.scrollHeight;
    }
  }, (e) => { input.value = text; showError(e); });
};

$('create').onsubmit = (ev) => {
  ev.preventDefault();
  const name = $('create-name').value;
  pending('creating ' + name, call('group.create', { name })).then((r) => {
    $('create-name').value = '';
    return loadGroups().then(() => openGroup(r.group));
  });
};

$('invite').onsubmit = (ev) => {
  ev.preventDefault();
  const address = $('invite-address').value.trim();
  call('group.invite', { group: state.current, address }).then(() => {
    $('invite-address').value = '';
    $('members').append(el('li', 'invited ' + address + ': waiting for the acceptance', 'notice'));
  }, showError);
};

$('update').onclick = () => pending('updating keys', call('group.update', { group: state.current }))
  .then(() => openGroup(state.current));
$('recover').onclick = () => pending('recovering', call('group.recover', { group: state.current }))
  .then(() => openGroup(state.current));

$('doctor').onclick = () => pending('doctor', call('doctor')).then((r) => {
  const list = $('problems');
  list.replaceChildren();
  for (const p of r.problems) list.append(el('li', p.problem + ' — ' + p.fix, 'error'));
  if (r.problems.length === 0) list.append(el('li', 'No problems found.'));
}).catch(() => {});

connect();
