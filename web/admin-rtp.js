// The admin page's plain-RTP and recording section: senders waiting for approval
// (pending) and accepted ones, RTP forwards with their SDP, and recordings. Rebuilt
// from GET /api/rtp and /api/recordings each second; buttons call the same API.

import { button as btn, cell as td } from './dom.js';

const $ = (id) => document.getElementById(id);

function ago(s) {
  if (s === null || s === undefined) return 'never';
  return s < 2 ? 'now' : `${Math.round(s)} s ago`;
}

// Rows are keyed by SSRC and replaced only when their content changes, so a button
// under the pointer stays put.
function senderRow(s, act) {
  const tr = document.createElement('tr');
  tr.dataset.ssrc = String(s.ssrc);
  tr.className = s.state;
  td(tr, s.ssrc_hex);
  td(tr, s.name);
  const state = document.createElement('span');
  state.className = `badge ${s.state}`;
  state.textContent = s.state === 'pending' ? 'pending: not mixed' : (s.participant_id ? 'in the room' : 'accepted');
  td(tr, state);
  td(tr, s.seen_from.length > 1 ? `${s.seen_from.join(', ')} (several!)` : (s.address || '—'));
  td(tr, s.state === 'accepted' ? (s.allowed_from === '*' ? 'anywhere' : (s.allowed_from || 'first address seen')) : '—');
  td(tr, String(s.packets));
  td(tr, s.wrong_address_packets ? `${s.wrong_address_packets} from ${s.last_wrong_address}` : '0');
  td(tr, ago(s.last_seen_s));
  const actions = document.createElement('span');
  if (s.state === 'pending') {
    // Accept from an address shown here, never from wherever its next packet comes:
    // someone else may be sending the same SSRC.
    const addresses = s.seen_from.length ? s.seen_from : [s.address];
    for (const address of addresses) {
      const label = addresses.length > 1 ? `Accept from ${address}` : 'Accept';
      actions.append(btn(label, 'accept primary', () =>
        act('PUT', `/rtp/senders/${s.ssrc}`, { address }, (r) => `${r.name} (${r.ssrc_hex}) accepted from ${r.allowed_from}`)));
    }
  } else {
    if (s.allowed_from !== '*') {
      actions.append(btn('Let it move', 'roam', () =>
        act('PUT', `/rtp/senders/${s.ssrc}`, { address: '*' }, (r) => `${r.ssrc_hex} may now send from anywhere`)));
    }
    if (s.wrong_address_packets && s.last_wrong_address) {
      actions.append(btn(`Accept ${s.last_wrong_address}`, 'rebind', () =>
        act('PUT', `/rtp/senders/${s.ssrc}`, { address: s.last_wrong_address }, (r) => `${r.ssrc_hex} now held to ${r.allowed_from}`)));
    }
    actions.append(btn('Revoke', 'revoke', () => act('DELETE', `/rtp/senders/${s.ssrc}`, null, (r) => r.message)));
  }
  td(tr, actions);
  return tr;
}

function syncRows(tbody, items, key, build) {
  const existing = new Map([...tbody.children].map((tr) => [tr.dataset.key, tr]));
  const seen = new Set();
  for (const item of items) {
    const k = key(item);
    seen.add(k);
    const json = JSON.stringify(item);
    const old = existing.get(k);
    if (old && old.dataset.json === json) continue;
    // Times and counters change every second; rebuild only when not hovered.
    if (old && old.matches(':hover')) continue;
    const tr = build(item);
    tr.dataset.key = k;
    tr.dataset.json = json;
    if (old) old.replaceWith(tr); else tbody.append(tr);
  }
  for (const [k, tr] of existing) if (!seen.has(k)) tr.remove();
}

export async function refreshRtp(api, act) {
  const [rtp, recordings] = await Promise.all([api('GET', '/rtp'), api('GET', '/recordings')]);
  const section = $('rtp-section');
  section.hidden = !rtp.input && rtp.forwards.length === 0 && recordings.length === 0;
  $('rtp-input').textContent = rtp.input
    ? `UDP ${rtp.input.port} (RTCP ${rtp.input.rtcp_port}), payload type ${rtp.input.payload_type}, ` +
      (rtp.input.open ? 'every SSRC is mixed (--rtp-open)' : 'only accepted SSRCs are mixed') +
      ` · ${rtp.input.counters.datagrams} datagrams, ${rtp.input.counters.pending} from pending senders, ` +
      `${rtp.input.counters.wrong_address} from wrong addresses, ` +
      `${rtp.input.counters.too_short + rtp.input.counters.bad_version + rtp.input.counters.csrc_past_end +
        rtp.input.counters.extension_past_end + rtp.input.counters.bad_padding + rtp.input.counters.not_opus +
        rtp.input.counters.wrong_payload_type} malformed or not Opus`
    : 'RTP input is off (start viz serve with --rtp-port)';
  const pending = rtp.senders.filter((s) => s.state === 'pending').length;
  $('rtp-pending').textContent = pending ? `(${pending} waiting for you)` : '';
  $('rtp-senders-table').hidden = rtp.senders.length === 0;
  syncRows($('rtp-senders').querySelector('tbody'), rtp.senders, (s) => String(s.ssrc), (s) => senderRow(s, act));
  syncRows($('rtp-forwards').querySelector('tbody'), rtp.forwards, (f) => String(f.id), (f) => {
    const tr = document.createElement('tr');
    td(tr, String(f.id));
    td(tr, f.source === 'mix' ? 'room mix' : `participant ${f.source}`);
    td(tr, f.target);
    td(tr, String(f.packets));
    const sdp = document.createElement('a');
    sdp.textContent = 'SDP';
    sdp.href = '#';
    sdp.onclick = async (e) => {
      e.preventDefault();
      const r = await fetch(`/api${f.sdp.replace(/^\/api/, '')}`, { headers: { Authorization: `Bearer ${sessionStorage.getItem('viz-admin-token')}` } });
      $('sdp-text').textContent = await r.text();
      $('sdp-box').hidden = false;
    };
    td(tr, sdp);
    td(tr, btn('Remove', 'remove', () => act('DELETE', `/rtp/forwards/${f.id}`, null, (r) => r.message)));
    return tr;
  });
  syncRows($('recordings').querySelector('tbody'), recordings, (r) => r.path, (r) => {
    const tr = document.createElement('tr');
    td(tr, r.source === 'mix' ? 'room mix' : `participant ${r.source}`);
    td(tr, r.path);
    td(tr, `${r.seconds} s`);
    const state = td(tr, r.error ? `not writing: ${r.error} (retrying; ${r.lost} packets lost)` : `${r.written} packets written`);
    if (r.error) state.classList.add('bad');
    return tr;
  });
}

export function setupRtp(act) {
  $('forward-add').onclick = () => {
    const source = $('forward-source').value.trim();
    const body = { target: $('forward-target').value.trim() };
    if (source && source !== 'mix') body.source = Number(source);
    act('POST', '/rtp/forwards', body, (f) => `forwarding ${f.source === 'mix' ? 'the mix' : `participant ${f.source}`} to ${f.target} (forward ${f.id})`);
  };
  $('sender-allow').onclick = () => {
    const ssrc = $('sender-ssrc').value.trim();
    const address = $('sender-address').value.trim();
    act('PUT', `/rtp/senders/${encodeURIComponent(ssrc)}`, address ? { address } : null,
      (r) => `${r.ssrc_hex} allowed${r.allowed_from ? ` from ${r.allowed_from}` : ''}`);
  };
  $('sdp-close').onclick = () => { $('sdp-box').hidden = true; };
}
