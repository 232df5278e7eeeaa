// The browser participant: join (microphone) or listen, Opus over a WebSocket.
// Wire: text frames are JSON control messages; binary frames are media packets
// (kind 0x01 | stream u8 | seq u16 | timestamp u32 | flags u8 | sizes | Opus frames),
// the same payload native clients send inside their encrypted datagrams.

import { makeEncoder, makeDecoder } from '/assets/codec.js';

const FRAME = 960;
// A frame whose peak is below this (-80 dBFS) is digital silence, as in the native sender.
const DIGITAL_SILENCE_PEAK = 1e-4;
// Digital silence sent after sound before the page falls silent: 80 ms.
const SILENCE_TAIL_FRAMES = 4;
const params = new URLSearchParams(location.search);
const forceWasm = params.get('codec') === 'wasm';
const recordSeconds = Number(params.get('record') || 0);
const $ = (id) => document.getElementById(id);

const session = {
  mode: null,          // 'join' | 'listen' | 'echo'
  ws: null,
  ctx: null,
  mic: null,
  capture: null,
  playback: null,
  encoder: null,
  decoder: null,
  you: null,
  roster: new Map(),
  talking: new Set(),
  levels: new Map(), // id → dBFS + 100, while they talk
  muted: false,
  deafened: false,     // hear nothing, and the microphone is off (others see it muted)
  ptt: false,          // push to talk: the microphone is open only while the key is held
  pttOpen: false,      // the key is held (or was, less than PTT_TAIL_MS ago)
  pttTimer: null,
  wanted: false,       // the user wants to be connected (reconnect after drops)
  retry: 0,
  retryTimer: null,
  stream: 0,
  seq: 0,
  lastSentTs: null,
  silentFrames: 0,     // consecutive captured frames of digital silence
  withheld: new Set(), // timestamps of frames not to send (deep inside a pause)
  rx: { highest: null, expected: 0, received: 0, loss: 0, packets: 0, nextTs: null },
  level: 0,
  sent: 0,
  reportTimer: null,
  pool: [],
  dumps: {},
};

function identity() {
  let id = localStorage.getItem('viz-identity');
  if (!id) {
    const b = crypto.getRandomValues(new Uint8Array(16));
    id = btoa(String.fromCharCode(...b)).replace(/[+/=]/g, (c) => ({ '+': '-', '/': '_', '=': '' })[c]);
    localStorage.setItem('viz-identity', id);
  }
  return id;
}

function setState(state, text) {
  const el = $('state');
  el.dataset.state = state;
  el.textContent = text;
}

function notice(text) {
  const el = $('notice');
  el.hidden = !text;
  el.textContent = text || '';
}

// ---------- audio ----------

async function startAudio(mode) {
  if (!window.isSecureContext) {
    throw new Error('This page needs HTTPS (or http://localhost) for audio. Ask the host to start viz serve with --tls-self-signed, or use an https tunnel.');
  }
  if (!window.AudioWorkletNode) throw new Error('This browser has no AudioWorklet; use a current Chrome, Edge, Firefox or Safari.');
  const ctx = new AudioContext({ sampleRate: 48000, latencyHint: 'interactive' });
  await ctx.audioWorklet.addModule('/assets/worklets.js');
  const playback = new AudioWorkletNode(ctx, 'viz-playback', {
    numberOfInputs: 0, outputChannelCount: [1], processorOptions: { recordSeconds },
  });
  playback.connect(ctx.destination);
  playback.port.onmessage = (e) => {
    if (e.data instanceof Float32Array) { if (session.pool.length < 16) session.pool.push(e.data); }
    else if (e.data.dump) session.dumps.output = e.data;
    else if (e.data.stats) session.playbackStats = e.data.stats;
  };
  session.ctx = ctx;
  session.playback = playback;
  fillOutputs().then(() => { if ($('output-device').value) chooseOutput(); });
  setVolume(Number($('volume').value));
  session.decoder = await makeDecoder({ forceWasm, onPcm: (pcm) => toSpeakers(pcm) });
  if (mode !== 'listen') {
    const chosen = $('input-device').value;
    const mic = await navigator.mediaDevices.getUserMedia({
      audio: {
        echoCancellation: true, noiseSuppression: true, autoGainControl: true, channelCount: 1,
        ...(chosen ? { deviceId: { exact: chosen } } : {}),
      },
    });
    listInputs(); // labels are only given once the microphone was allowed
    const source = ctx.createMediaStreamSource(mic);
    const capture = new AudioWorkletNode(ctx, 'viz-capture', {
      numberOfOutputs: 0, processorOptions: { recordSeconds },
    });
    source.connect(capture);
    capture.port.onmessage = (e) => onCaptured(e.data);
    session.mic = mic;
    session.capture = capture;
    session.captureFrames = 0;
    session.silentFrames = 0;
    session.withheld.clear();
    session.encoder = await makeEncoder({
      forceWasm, bitrate: 32000, frameSamples: FRAME, onPacket: (bytes, ts) => sendPacket(bytes, ts),
    });
  }
  await ctx.resume();
  $('codec-line').textContent =
    `Opus through ${session.decoder.kind}` + (session.encoder ? ` (encoding: ${session.encoder.kind})` : '') +
    `, ${ctx.sampleRate} Hz, output latency ${Math.round((ctx.outputLatency || ctx.baseLatency || 0) * 1000)} ms`;
}

function stopAudio() {
  if (session.encoder) session.encoder.close();
  if (session.decoder) session.decoder.close();
  if (session.mic) session.mic.getTracks().forEach((t) => t.stop());
  if (session.ctx) session.ctx.close();
  Object.assign(session, { encoder: null, decoder: null, mic: null, ctx: null, capture: null, playback: null });
}

function onCaptured(msg) {
  if (!(msg instanceof Float32Array)) {
    if (msg.dump) session.dumps.input = msg;
    return;
  }
  let sum = 0;
  let peak = 0;
  for (let i = 0; i < msg.length; i++) {
    sum += msg[i] * msg[i];
    peak = Math.max(peak, Math.abs(msg[i]));
  }
  const rms = Math.sqrt(sum / msg.length);
  session.level = Math.max(rms, session.level * 0.8);
  const ts = session.captureFrames * FRAME;
  session.captureFrames++;
  // DTX as the native sender does it: the first 80 ms of digital silence are sent
  // (they end the word and leave the listener's decoder silent), the rest is not.
  session.silentFrames = peak < DIGITAL_SILENCE_PEAK ? session.silentFrames + 1 : 0;
  if (session.encoder && micOpen() && session.ws && session.ws.readyState === WebSocket.OPEN && session.you !== null) {
    if (session.silentFrames > SILENCE_TAIL_FRAMES) session.withheld.add(ts); // deleted when its packet comes out
    session.encoder.encode(msg, ts);
  }
  session.capture.port.postMessage(msg, [msg.buffer]); // back to the worklet's pool
}

// Whether what the microphone hears is sent: not muted, and with push to talk, only
// while the key is held.
function micOpen() {
  return !session.muted && !session.deafened && (!session.ptt || session.pttOpen);
}

function toSpeakers(pcm) {
  if (!session.playback) return;
  let buf = pcm;
  if (pcm.length === FRAME && session.pool.length) {
    buf = session.pool.pop();
    buf.set(pcm);
  }
  session.playback.port.postMessage(buf, [buf.buffer]);
}

// ---------- wire ----------

function sendPacket(opus, ts) {
  if (session.withheld.delete(ts)) return;
  // DTX (WebAssembly encoder): one- and two-byte packets only say "still silent"; the
  // room treats a pause as silence, so they are not sent.
  if (opus.length <= 2) return;
  const ws = session.ws;
  if (!ws || ws.readyState !== WebSocket.OPEN) return;
  const marker = session.lastSentTs === null || ts - session.lastSentTs > FRAME;
  session.lastSentTs = ts;
  const p = new Uint8Array(9 + opus.length);
  const v = new DataView(p.buffer);
  p[0] = 0x01;
  p[1] = session.stream;
  v.setUint16(2, session.seq);
  v.setUint32(4, (session.tsBase + ts) >>> 0);
  p[8] = marker ? 0x10 : 0;
  p.set(opus, 9);
  session.seq = (session.seq + 1) & 0xffff;
  ws.send(p);
  session.sent++;
}

function onMedia(buf) {
  const b = new Uint8Array(buf);
  if (b.length < 10 || b[0] !== 0x01) return;
  const v = new DataView(buf);
  const seq = v.getUint16(2);
  const ts = v.getUint32(4);
  const count = (b[8] & 0x0f) + 1;
  const sizes = [];
  let at = 9;
  for (let i = 0; i < count - 1; i++) {
    if (at >= b.length) return;
    const first = b[at];
    if (first < 252) { sizes.push(first); at += 1; } else { if (at + 1 >= b.length) return; sizes.push(first + 4 * b[at + 1]); at += 2; }
  }
  countReceived(seq);
  // A packet that does not follow the last one in time starts a new talk spurt (or
  // follows a loss): the playout queue running dry before it was a pause, not a late
  // packet, and must not grow the playout delay.
  const marker = (b[8] & 0x10) !== 0;
  if (session.playback && session.rx.nextTs !== null && (marker || ts !== session.rx.nextTs)) {
    session.playback.port.postMessage('gap');
  }
  session.rx.nextTs = (ts + count * FRAME) >>> 0;
  for (let i = 0; i < count; i++) {
    const len = i < count - 1 ? sizes[i] : b.length - at;
    if (len <= 0 || at + len > b.length) return;
    if (session.decoder) session.decoder.decode(b.subarray(at, at + len), ts + i * FRAME);
    at += len;
  }
}

function countReceived(seq) {
  const rx = session.rx;
  rx.packets++;
  const ahead = rx.highest === null ? 1 : (seq - rx.highest) & 0xffff;
  if (ahead !== 0 && ahead < 0x8000) {
    rx.expected += ahead;
    rx.received++;
    rx.highest = seq;
  }
}

function sendJson(msg) {
  if (session.ws && session.ws.readyState === WebSocket.OPEN) session.ws.send(JSON.stringify(msg));
}

function report() {
  const rx = session.rx;
  if (rx.expected > 0) rx.loss = Math.max(0, 1 - rx.received / rx.expected);
  rx.expected = 0;
  rx.received = 0;
  sendJson({ type: 'report', loss: rx.loss });
  if (session.playback) session.playback.port.postMessage('stats');
}

function onControl(msg) {
  switch (msg.type) {
    case 'welcome':
      session.you = msg.you;
      session.retry = 0;
      $('room-name').textContent = msg.room;
      document.title = `${msg.room} · Viz`;
      setState('connected', msg.echo ? 'echo test: you hear yourself' : (session.mode === 'listen' ? 'listening' : 'connected'));
      break;
    case 'roster':
      for (const e of msg.entries) {
        // Somebody new: ask for the volume this page remembers for them.
        const stored = personVolume(e);
        if (!session.roster.has(e.id) && !e.you && stored !== 100) sendJson({ type: 'volume', id: e.id, percent: stored });
        session.roster.set(e.id, e);
      }
      drawRoster();
      break;
    case 'left':
      session.roster.delete(msg.id);
      session.talking.delete(msg.id);
      drawRoster();
      break;
    case 'talking':
      session.talking = new Set(msg.ids);
      drawTalking();
      break;
    case 'levels':
      session.levels = new Map(msg.levels);
      drawTalking();
      break;
    case 'bye':
      session.byeReason = msg.reason;
      if (!msg.reconnect) session.wanted = false;
      notice(msg.reason);
      break;
    default:
      break;
  }
}

function connect() {
  const proto = location.protocol === 'https:' ? 'wss:' : 'ws:';
  const ws = new WebSocket(`${proto}//${location.host}/ws`);
  ws.binaryType = 'arraybuffer';
  session.ws = ws;
  session.stream = crypto.getRandomValues(new Uint8Array(1))[0];
  session.tsBase = crypto.getRandomValues(new Uint32Array(1))[0];
  session.seq = crypto.getRandomValues(new Uint16Array(1))[0];
  session.lastSentTs = null;
  session.rx.highest = null;
  session.byeReason = null;
  setState('connecting', session.retry ? `reconnecting (attempt ${session.retry + 1})` : 'connecting');
  ws.onopen = () => {
    sendJson({
      type: 'hello', name: $('name').value, identity: identity(),
      sends: session.mode !== 'listen', receives: true, echo: session.mode === 'echo',
      password: $('password').value || null,
    });
  };
  ws.onmessage = (e) => {
    if (typeof e.data === 'string') {
      try { onControl(JSON.parse(e.data)); } catch (err) { console.warn('bad control message', err); }
    } else {
      onMedia(e.data);
    }
  };
  ws.onclose = () => {
    session.you = null;
    session.roster.clear();
    session.talking.clear();
    drawRoster();
    if (session.ws !== ws) return;
    if (!session.wanted) {
      finish(session.byeReason ? `disconnected: ${session.byeReason}` : 'disconnected');
      return;
    }
    const delay = Math.min(5000, 500 * 2 ** Math.min(session.retry, 4));
    session.retry++;
    setState('reconnecting', `connection lost; reconnecting in ${(delay / 1000).toFixed(1)} s`);
    session.retryTimer = setTimeout(connect, delay);
  };
}

async function start(mode) {
  notice('');
  session.mode = mode;
  session.wanted = true;
  session.retry = 0;
  localStorage.setItem('viz-name', $('name').value);
  try {
    await startAudio(mode);
  } catch (e) {
    stopAudio();
    session.wanted = false;
    notice(e.message || String(e));
    setState('idle', 'not connected');
    return;
  }
  $('join-form').hidden = true;
  $('in-call').hidden = false;
  // A listener has no microphone: no level to show and nothing to mute.
  $('mute').hidden = mode === 'listen';
  session.deafened = false;
  $('deafen').textContent = 'Deafen';
  $('deafen').setAttribute('aria-pressed', 'false');
  $('level-row').hidden = mode === 'listen';
  $('ptt-row').hidden = mode !== 'join';
  if (mode !== 'join') setPtt(false);
  connect();
  session.reportTimer = setInterval(report, 1000);
}

function finish(text) {
  clearInterval(session.reportTimer);
  clearTimeout(session.retryTimer);
  stopAudio();
  $('join-form').hidden = false;
  $('in-call').hidden = true;
  setState('idle', text);
}

function leave() {
  session.wanted = false;
  const ws = session.ws;
  session.ws = null;
  if (ws) ws.close(1000, 'leaving');
  finish('not connected');
}

function toggleDeafen() {
  session.deafened = !session.deafened;
  $('deafen').textContent = session.deafened ? 'Undeafen' : 'Deafen';
  $('deafen').setAttribute('aria-pressed', String(session.deafened));
  setVolume(Number($('volume').value));
  // Others see a deafened participant as deafened (and muted); undeafening leaves a mute as it was.
  sendJson({ type: 'mute', muted: session.muted || session.deafened, deafened: session.deafened });
}

function toggleMute() {
  session.muted = !session.muted;
  $('mute').textContent = session.muted ? 'Unmute' : 'Mute';
  $('mute').setAttribute('aria-pressed', String(session.muted));
  sendJson({ type: 'mute', muted: session.muted || session.deafened, deafened: session.deafened });
}

// After the key is let go the microphone stays open this long, so the word being
// finished is not cut.
const PTT_TAIL_MS = 250;
const PTT_KEY = ' ';

function showPtt() {
  $('ptt-state').hidden = !session.ptt;
  $('ptt-state').textContent = session.pttOpen ? 'Talking (key held)' : 'Hold Space to talk';
}

function setPtt(on) {
  session.ptt = on;
  session.pttOpen = false;
  showPtt();
}

function onKey(e, down) {
  if (!session.ptt || e.key !== PTT_KEY || e.target.tagName === 'INPUT' && e.target.type !== 'checkbox') return;
  e.preventDefault();
  if (e.repeat) return;
  clearTimeout(session.pttTimer);
  if (down) {
    session.pttOpen = true;
    showPtt();
  } else {
    session.pttTimer = setTimeout(() => { session.pttOpen = false; showPtt(); }, PTT_TAIL_MS);
  }
}

// Speakers: where the page plays, where the browser lets a page choose (setSinkId).
async function fillOutputs() {
  const select = $('output-device');
  if (!('setSinkId' in AudioContext.prototype)) return;
  const outputs = (await navigator.mediaDevices.enumerateDevices()).filter((d) => d.kind === 'audiooutput');
  const before = select.value || localStorage.getItem('viz-output') || '';
  select.replaceChildren(...outputs.map((d, i) => {
    const o = document.createElement('option');
    o.value = d.deviceId;
    o.textContent = d.label || `speakers ${i + 1}`;
    return o;
  }));
  if (outputs.some((d) => d.deviceId === before)) select.value = before;
  $('output-row').hidden = outputs.length < 2;
}

async function chooseOutput() {
  localStorage.setItem('viz-output', $('output-device').value);
  if (!session.ctx) return;
  try {
    await session.ctx.setSinkId($('output-device').value === 'default' ? '' : $('output-device').value);
    session.sinkId = $('output-device').value;
  } catch (e) {
    notice(`cannot play on those speakers: ${e.message}`);
  }
}

function setVolume(percent) {
  $('volume-text').textContent = `${percent} %`;
  localStorage.setItem('viz-volume', String(percent));
  if (session.playback) session.playback.port.postMessage({ gain: session.deafened ? 0 : percent / 100 });
}

// Fills the microphone list (names appear once the browser was allowed the microphone).
async function listInputs() {
  if (!navigator.mediaDevices || !navigator.mediaDevices.enumerateDevices) return;
  const select = $('input-device');
  const before = select.value || localStorage.getItem('viz-input') || '';
  const inputs = (await navigator.mediaDevices.enumerateDevices()).filter((d) => d.kind === 'audioinput');
  select.replaceChildren(...inputs.map((d, i) => {
    const o = document.createElement('option');
    o.value = d.deviceId;
    o.textContent = d.label || `microphone ${i + 1}`;
    return o;
  }));
  if (inputs.some((d) => d.deviceId === before)) select.value = before;
  $('input-row').hidden = inputs.length < 2;
}

// ---------- view ----------

// How loud this page hears a person (percent), remembered per identity.
function personVolume(e) {
  const v = Number(localStorage.getItem(`viz-volume-${e.key || e.id}`));
  return Number.isFinite(v) && localStorage.getItem(`viz-volume-${e.key || e.id}`) !== null ? v : 100;
}

function setPersonVolume(e, percent, text) {
  localStorage.setItem(`viz-volume-${e.key || e.id}`, String(percent));
  text.textContent = percent === 0 ? 'silenced' : `${percent} %`;
  sendJson({ type: 'volume', id: e.id, percent });
}

// Talking dots and levels change many times a second: they are updated in place, so a
// volume slider being dragged is not rebuilt under the pointer.
function drawTalking() {
  for (const li of $('roster').querySelectorAll('li[data-id]')) {
    const id = Number(li.dataset.id);
    const talking = session.talking.has(id);
    const dot = li.querySelector('.talk-dot');
    dot.className = 'talk-dot' + (talking ? ' talking' : '');
    dot.title = talking ? 'talking' : 'quiet';
    const fill = li.querySelector('.person-level .meter-fill');
    if (fill) {
      const level = talking ? (session.levels.get(id) || 0) : 0; // dBFS + 100
      fill.style.width = `${Math.min(100, Math.max(0, (level - 40) / 60 * 100))}%`;
    }
  }
}

function drawRoster() {
  const ul = $('roster');
  ul.replaceChildren();
  const entries = [...session.roster.values()].sort((a, b) => a.id - b.id);
  for (const e of entries) {
    const li = document.createElement('li');
    li.dataset.id = e.id;
    const dot = document.createElement('span');
    dot.className = 'talk-dot' + (session.talking.has(e.id) ? ' talking' : '');
    dot.title = session.talking.has(e.id) ? 'talking' : 'quiet';
    const name = document.createElement('span');
    name.className = 'name';
    name.textContent = e.name + (e.you ? ' (you)' : '');
    const tags = document.createElement('span');
    tags.className = 'tags';
    const t = [e.kind];
    if (!e.sends) t.push('listening');
    if (e.deafened) t.push('deafened');
    else if (e.self_muted) t.push('muted');
    if (e.admin_muted) t.push('muted by admin');
    if (e.gain_percent !== 100) t.push(`${e.gain_percent} %`);
    tags.textContent = t.join(' · ');
    li.append(dot, name, tags);
    if (!e.you && e.sends && session.ws && session.mode !== 'echo') {
      const meter = document.createElement('div');
      meter.className = 'meter small-meter person-level';
      meter.title = 'their level';
      const fill = document.createElement('div');
      fill.className = 'meter-fill';
      meter.append(fill);
      const volume = document.createElement('input');
      volume.type = 'range';
      volume.min = '0'; volume.max = '200'; volume.step = '10';
      volume.className = 'person-volume';
      volume.value = String(personVolume(e));
      volume.setAttribute('aria-label', `how loud you hear ${e.name}`);
      const text = document.createElement('span');
      text.className = 'person-volume-text';
      text.textContent = volume.value === '0' ? 'silenced' : `${volume.value} %`;
      volume.oninput = () => setPersonVolume(e, Number(volume.value), text);
      li.append(meter, volume, text);
    }
    ul.append(li);
  }
  drawTalking();
  if (!entries.length) {
    const li = document.createElement('li');
    li.className = 'empty';
    li.textContent = session.ws ? 'nobody yet' : 'join or listen to see who is here';
    ul.append(li);
  }
}

function drawLevel() {
  const pct = Math.min(100, Math.max(0, (20 * Math.log10(session.level + 1e-6) + 60) / 60 * 100));
  $('level').style.width = `${session.muted ? 0 : pct}%`;
  session.level *= 0.9;
  requestAnimationFrame(drawLevel);
}

async function loadRoom() {
  try {
    const r = await fetch('/api/room');
    if (!r.ok) return;
    const room = await r.json();
    $('room-name').textContent = room.name;
    document.title = `${room.name} · Viz`;
    $('password-row').hidden = !room.password_required;
  } catch (_) { /* the server may be down; joining reports it */ }
}

// ---------- hooks for tests and the curious ----------

function pcm16Base64(f32) {
  const i16 = new Int16Array(f32.length);
  for (let i = 0; i < f32.length; i++) i16[i] = Math.max(-32768, Math.min(32767, Math.round(f32[i] * 32767)));
  const bytes = new Uint8Array(i16.buffer);
  let s = '';
  for (let i = 0; i < bytes.length; i += 0x8000) s += String.fromCharCode(...bytes.subarray(i, i + 0x8000));
  return btoa(s);
}

async function dump(node, key) {
  if (!node) return null;
  session.dumps[key] = null;
  node.port.postMessage('dump');
  for (let i = 0; i < 100 && !session.dumps[key]; i++) await new Promise((r) => setTimeout(r, 20));
  const d = session.dumps[key];
  return d ? { start: d.start, pcm: pcm16Base64(d.dump) } : null;
}

window.vizTest = {
  state: () => ({
    state: $('state').dataset.state, text: $('state').textContent, notice: $('notice').textContent, you: session.you,
    sent: session.sent, received: session.rx.packets, level: session.level,
    encoder: session.encoder && session.encoder.kind, decoder: session.decoder && session.decoder.kind,
    roster: [...session.roster.values()], talking: [...session.talking], playback: session.playbackStats || null,
    micOpen: micOpen(),
    microphone: session.mic ? session.mic.getAudioTracks()[0].getSettings().deviceId : null,
    speakers: session.ctx && 'sinkId' in session.ctx ? session.ctx.sinkId : null,
  }),
  // What the microphone gave and what the speakers played, as 16-bit PCM (base64),
  // each with the AudioContext frame of its first sample (same clock for both).
  recordings: async () => ({ input: await dump(session.capture, 'input'), output: await dump(session.playback, 'output') }),
  dropSocket: () => { if (session.ws) session.ws.close(4000, 'test drop'); },
};

$('name').value = localStorage.getItem('viz-name') || '';
// Say it before anyone clicks: over plain HTTP from another machine the browser
// refuses the microphone and the audio worklets, so nothing here can work.
if (!window.isSecureContext) {
  $('https-needed').hidden = false;
  for (const b of ['join', 'listen', 'echo']) $(b).disabled = true;
}
$('join').onclick = () => start('join');
$('listen').onclick = () => start('listen');
$('echo').onclick = () => start('echo');
$('leave').onclick = leave;
$('mute').onclick = toggleMute;
$('deafen').onclick = toggleDeafen;
$('ptt').onchange = () => setPtt($('ptt').checked);
$('volume').value = localStorage.getItem('viz-volume') || '100';
$('volume').oninput = () => setVolume(Number($('volume').value));
$('input-device').onchange = () => localStorage.setItem('viz-input', $('input-device').value);
$('output-device').onchange = chooseOutput;
window.addEventListener('keydown', (e) => onKey(e, true));
window.addEventListener('keyup', (e) => onKey(e, false));
listInputs();
drawRoster();
requestAnimationFrame(drawLevel);
loadRoom();
