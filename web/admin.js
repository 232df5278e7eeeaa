// The admin page: everything goes through the REST API (docs/api.md) with the admin
// token as a bearer token; the table and graphs refresh every second.

import { refreshRtp, setupRtp } from './admin-rtp.js';
import { button, cell } from './dom.js';

const $ = (id) => document.getElementById(id);
let token = sessionStorage.getItem('viz-admin-token') || '';
let timer = null;
const editing = new Set(); // rows whose name field the admin is typing in

async function api(method, path, body) {
  const r = await fetch(`/api${path}`, {
    method,
    headers: { Authorization: `Bearer ${token}`, ...(body ? { 'Content-Type': 'application/json' } : {}) },
    body: body ? JSON.stringify(body) : undefined,
  });
  const data = await r.json().catch(() => ({}));
  if (!r.ok) throw Object.assign(new Error(data.error || `HTTP ${r.status}`), { status: r.status });
  return data;
}

function say(text, bad) {
  const el = $('action-result');
  el.textContent = text;
  el.classList.toggle('bad', !!bad);
}

async function act(method, path, body, done) {
  try {
    const r = await api(method, path, body);
    say(done(r));
    await refresh();
  } catch (e) {
    say(e.message, true);
  }
}

// Rows are built once per participant and updated in place every second, so a
// control the admin is using is never swapped out under the pointer.
function createRow(p) {
  const id = String(p.id);
  const tr = document.createElement('tr');
  tr.dataset.id = id;
  const fixed = p.kind === 'test source';
  const r = {};
  r.name = document.createElement('input');
  r.name.className = 'rename-input';
  r.name.disabled = fixed;
  r.name.onfocus = () => editing.add(id);
  r.name.onblur = () => setTimeout(() => editing.delete(id), 300);
  r.name.onkeydown = (e) => { if (e.key === 'Enter') r.rename.click(); };
  r.rename = button('Rename', 'rename', () => {
    editing.delete(id);
    act('PATCH', `/participants/${id}`, { name: r.name.value }, (x) => `renamed to ${x.name}`);
  });
  r.rename.disabled = fixed;
  const nameBox = document.createElement('span');
  nameBox.append(r.name, r.rename);
  cell(tr, nameBox);
  r.kind = cell(tr, '');
  r.address = cell(tr, '');
  r.transport = cell(tr, '');
  r.dot = document.createElement('span');
  cell(tr, r.dot).className = 'talking-cell';
  const meter = document.createElement('div');
  meter.className = 'meter small-meter';
  r.fill = document.createElement('div');
  r.fill.className = 'meter-fill';
  meter.append(r.fill);
  r.meter = meter;
  cell(tr, meter);
  r.loss = cell(tr, '');
  r.jitter = cell(tr, '');
  r.vol = document.createElement('input');
  Object.assign(r.vol, { type: 'range', min: 0, max: 200, step: 5, className: 'volume', disabled: fixed });
  r.volText = document.createElement('span');
  r.volText.className = 'volume-text';
  r.vol.oninput = () => { r.volText.textContent = `${r.vol.value} %`; };
  r.vol.onchange = () =>
    act('PATCH', `/participants/${id}`, { gain_percent: Number(r.vol.value) }, (x) => `${x.name}: volume ${x.gain_percent} %`);
  const volBox = document.createElement('span');
  volBox.append(r.vol, r.volText);
  cell(tr, volBox);
  r.selfMuted = document.createElement('span');
  r.selfMuted.className = 'small';
  r.mute = button('Mute', 'mute', () =>
    act('PATCH', `/participants/${id}`, { muted: !tr.vizMuted }, (x) => `${x.name}: ${x.muted ? 'muted' : 'unmuted'}`));
  r.mute.disabled = fixed;
  const muteBox = document.createElement('span');
  muteBox.append(r.mute, r.selfMuted);
  cell(tr, muteBox);
  r.kick = button('Kick', 'kick', () => {
    if (r.kick.dataset.armed) {
      act('DELETE', `/participants/${id}`, null, (x) => x.message);
    } else {
      r.kick.dataset.armed = '1';
      r.kick.textContent = 'Really kick?';
      setTimeout(() => { delete r.kick.dataset.armed; r.kick.textContent = 'Kick'; }, 4000);
    }
  });
  r.kick.disabled = fixed;
  cell(tr, r.kick);
  tr.vizRefs = r;
  return tr;
}

function updateRow(tr, p) {
  const r = tr.vizRefs;
  const id = tr.dataset.id;
  if (!editing.has(id) && document.activeElement !== r.name) r.name.value = p.name;
  r.kind.textContent = p.kind;
  r.address.textContent = p.address || '—';
  r.transport.textContent = p.transport;
  r.dot.className = 'talk-dot' + (p.talking ? ' talking' : '');
  r.dot.title = p.talking ? 'talking' : 'quiet';
  r.fill.style.width = `${Math.max(0, Math.min(100, (p.level_dbfs + 60) / 60 * 100))}%`;
  r.meter.title = `${p.level_dbfs.toFixed(1)} dBFS`;
  r.loss.textContent = `${p.loss_percent.toFixed(1)} %`;
  r.jitter.textContent = `${p.jitter_ms.toFixed(1)} ms`;
  if (document.activeElement !== r.vol) {
    r.vol.value = p.gain_percent;
    r.volText.textContent = `${p.gain_percent} %`;
  }
  r.vol.setAttribute('aria-label', `volume of ${p.name}`);
  tr.vizMuted = p.muted;
  r.mute.textContent = p.muted ? 'Unmute' : 'Mute';
  r.mute.classList.toggle('on', p.muted);
  r.selfMuted.textContent = p.deafened ? ' deafened' : (p.self_muted ? ' self-muted' : '');
}

function drawParticipants(list) {
  const tbody = $('participants').querySelector('tbody');
  const people = list.filter((p) => p.kind !== 'test source').length;
  const testSource = list.length > people ? ' and the test source' : '';
  $('count').textContent = `(${people} ${people === 1 ? 'person' : 'people'}${testSource})`;
  const existing = new Map([...tbody.children].map((tr) => [tr.dataset.id, tr]));
  const seen = new Set();
  for (const p of list) {
    const id = String(p.id);
    seen.add(id);
    let tr = existing.get(id);
    if (!tr) {
      tr = createRow(p);
      tbody.append(tr);
    }
    updateRow(tr, p);
  }
  for (const [id, tr] of existing) if (!seen.has(id)) tr.remove();
}

function drawGraph(canvas, history, series, fixedMax) {
  const g = canvas.getContext('2d');
  const w = canvas.width, h = canvas.height, pad = 28;
  g.clearRect(0, 0, w, h);
  const points = history.slice(-300);
  const max = fixedMax || Math.max(1, ...points.flatMap((p) => series.map((s) => p[s.key]))) * 1.15;
  g.strokeStyle = '#ccc';
  g.fillStyle = '#666';
  g.font = '11px sans-serif';
  for (let i = 0; i <= 2; i++) {
    const y = pad / 2 + (h - pad) * (1 - i / 2);
    g.beginPath(); g.moveTo(pad, y); g.lineTo(w, y); g.stroke();
    g.fillText((max * i / 2).toFixed(max < 10 ? 1 : 0), 0, y + 4);
  }
  for (const s of series) {
    g.strokeStyle = s.color;
    g.lineWidth = 1.5;
    g.beginPath();
    points.forEach((p, i) => {
      // The newest point at the right edge; one pixel column per second of history.
      const x = pad + (w - pad) * (1 - (points.length - 1 - i) / 299);
      const y = pad / 2 + (h - pad) * (1 - Math.min(p[s.key], max) / max);
      if (i === 0) g.moveTo(x, y); else g.lineTo(x, y);
    });
    g.stroke();
  }
}

function drawSettings(room) {
  $('room-name').textContent = room.name;
  document.title = `${room.name} · Viz admin`;
  if (document.activeElement !== $('room-rename')) $('room-rename').value = room.name;
  const rows = [
    ['Password', room.password_required ? 'required' : 'none'],
    ['Audio', `${room.sample_rate / 1000} kHz mono, ${room.frame_ms} ms frames, ${room.bitrate / 1000} kb/s, FEC ${room.fec ? 'on' : 'off'}, DTX ${room.dtx ? 'on' : 'off'}`],
    ['Pass-through', room.pass_through ? 'on (a lone speaker is forwarded unchanged)' : 'off'],
    ['Jitter buffer', `up to ${room.jitter_max_ms} ms`],
    ['Test source', room.test_source ? 'on' : 'off'],
    ['Native clients', `UDP port ${room.udp_port}, fingerprint ${room.fingerprint}`],
  ];
  $('settings').replaceChildren(...rows.flatMap(([k, v]) => {
    const dt = document.createElement('dt'); dt.textContent = k;
    const dd = document.createElement('dd'); dd.textContent = v;
    return [dt, dd];
  }));
}

async function refresh() {
  try {
    const [list, stats, room] = await Promise.all([api('GET', '/participants'), api('GET', '/stats'), api('GET', '/room')]);
    drawParticipants(list);
    drawSettings(room);
    drawGraph($('graph-mix'), stats.history, [
      { key: 'mix_mean_ms', color: '#2a7' }, { key: 'mix_p99_ms', color: '#e90' }, { key: 'mix_max_ms', color: '#c33' }]);
    drawGraph($('graph-people'), stats.history, [
      { key: 'participants', color: '#2a7' }, { key: 'active_sources', color: '#e90' }]);
    drawGraph($('graph-loss'), stats.history, [
      { key: 'loss_max_percent', color: '#c33' }, { key: 'loss_mean_percent', color: '#2a7' }]);
    await refreshRtp(api, act);
    $('state').dataset.state = 'connected';
    $('state').textContent = `live · up ${Math.floor(stats.uptime_s / 60)} min`;
  } catch (e) {
    if (e.status === 401 || e.status === 429) { logout(e.message); return; }
    $('state').dataset.state = 'reconnecting';
    $('state').textContent = `server not answering (${e.message})`;
  }
}

function logout(why) {
  clearInterval(timer);
  sessionStorage.removeItem('viz-admin-token');
  $('panel').hidden = true;
  $('login').hidden = false;
  $('login-error').hidden = !why;
  $('login-error').textContent = why || '';
  $('state').dataset.state = 'idle';
  $('state').textContent = 'not logged in';
}

async function login() {
  token = $('token').value.trim() || token;
  try {
    await api('GET', '/participants');
  } catch (e) {
    logout(e.message);
    return;
  }
  sessionStorage.setItem('viz-admin-token', token);
  $('login').hidden = true;
  $('panel').hidden = false;
  await refresh();
  clearInterval(timer);
  timer = setInterval(refresh, 1000);
}

setupRtp(act);
$('login-button').onclick = login;
$('token').onkeydown = (e) => { if (e.key === 'Enter') login(); };
$('room-rename-button').onclick = () => act('PATCH', '/room', { name: $('room-rename').value }, (r) => `room renamed to ${r.name}`);
const fromHash = new URLSearchParams(location.hash.slice(1)).get('token');
if (fromHash) { token = fromHash; history.replaceState(null, '', location.pathname); }
if (token) login();
