// Opus for the page: WebCodecs AudioEncoder/AudioDecoder where the browser has them,
// otherwise libopus compiled to WebAssembly (web/vendor/opus.wasm from @evan/opus).
// Both sides produce and take plain Opus packets of 20 ms mono at 48 kHz.

const RATE = 48000;

export function webCodecsAvailable() {
  return typeof AudioEncoder === 'function' && typeof AudioDecoder === 'function';
}

// ---------- WebCodecs ----------

async function webCodecsEncoder({ bitrate, frameSamples, onPacket }) {
  const config = {
    codec: 'opus', sampleRate: RATE, numberOfChannels: 1, bitrate,
    // No DTX here: Chromium's encoder then withholds silent frames but stamps the next
    // packet as if they had never been, so after every pause the page's timestamps fell
    // further behind real time and the room dropped its speech as late (3 s heard, 5 s
    // lost, over and over). Pauses are withheld by the page itself (viz.js).
    opus: { frameDuration: frameSamples * 1e6 / RATE, useinbandfec: true, usedtx: false, complexity: 9 },
  };
  const support = await AudioEncoder.isConfigSupported(config);
  if (!support.supported) throw new Error('this browser cannot encode Opus with WebCodecs');
  const enc = new AudioEncoder({
    output: (chunk) => {
      const bytes = new Uint8Array(chunk.byteLength);
      chunk.copyTo(bytes);
      onPacket(bytes, Math.round(chunk.timestamp * RATE / 1e6));
    },
    error: (e) => console.error('encoder', e),
  });
  enc.configure(config);
  return {
    kind: 'WebCodecs',
    encode(pcm, sampleTime) {
      const data = new AudioData({
        format: 'f32-planar', sampleRate: RATE, numberOfFrames: pcm.length, numberOfChannels: 1,
        timestamp: Math.round(sampleTime * 1e6 / RATE), data: pcm,
      });
      enc.encode(data);
      data.close();
    },
    close() { try { enc.close(); } catch (_) { /* already closed */ } },
  };
}

async function webCodecsDecoder({ onPcm }) {
  const config = { codec: 'opus', sampleRate: RATE, numberOfChannels: 1 };
  const support = await AudioDecoder.isConfigSupported(config);
  if (!support.supported) throw new Error('this browser cannot decode Opus with WebCodecs');
  const dec = new AudioDecoder({
    output: (data) => {
      const pcm = new Float32Array(data.numberOfFrames);
      data.copyTo(pcm, { planeIndex: 0, format: 'f32-planar' });
      data.close();
      onPcm(pcm);
    },
    error: (e) => console.error('decoder', e),
  });
  dec.configure(config);
  return {
    kind: 'WebCodecs',
    decode(bytes, sampleTime) {
      dec.decode(new EncodedAudioChunk({ type: 'key', timestamp: Math.round(sampleTime * 1e6 / RATE), data: bytes }));
    },
    close() { try { dec.close(); } catch (_) { /* already closed */ } },
  };
}

// ---------- WebAssembly libopus ----------

let wasmModule = null;

async function loadWasm() {
  if (wasmModule) return wasmModule;
  const bytes = await (await fetch('/assets/opus.wasm')).arrayBuffer();
  let exports = null;
  const views = {};
  const refresh = () => { views.u8 = new Uint8Array(exports.memory.buffer); };
  const { instance } = await WebAssembly.instantiate(bytes, {
    wasi_snapshot_preview1: { fd_seek() { return 0; }, fd_write() { return 0; }, fd_close() { return 0; }, proc_exit() {} },
    env: { emscripten_notify_memory_growth() { refresh(); } },
  });
  exports = instance.exports;
  if (exports._initialize) exports._initialize();
  refresh();
  wasmModule = { exports, views };
  return wasmModule;
}

const CTL_SET_BITRATE = 4002, CTL_SET_COMPLEXITY = 4010, CTL_SET_INBAND_FEC = 4012;
const CTL_SET_PACKET_LOSS_PERC = 4014, CTL_SET_DTX = 4016, APPLICATION_VOIP = 2048;
const MAX_PACKET = 4000, MAX_FRAME = 5760;

function check(m, code, what) {
  if (code < 0) throw new Error(`opus ${what} failed (${code})`);
  return code;
}

async function wasmEncoder({ bitrate, frameSamples, onPacket }) {
  const m = await loadWasm();
  const w = m.exports;
  const state = w.malloc(w.opus_encoder_get_size(1));
  check(m, w.opus_encoder_init(state, RATE, 1, APPLICATION_VOIP), 'encoder init');
  w.opus_encoder_ctl_set(state, CTL_SET_BITRATE, bitrate);
  w.opus_encoder_ctl_set(state, CTL_SET_COMPLEXITY, 9);
  w.opus_encoder_ctl_set(state, CTL_SET_INBAND_FEC, 1);
  w.opus_encoder_ctl_set(state, CTL_SET_PACKET_LOSS_PERC, 5);
  w.opus_encoder_ctl_set(state, CTL_SET_DTX, 1);
  const pcmPtr = w.malloc(frameSamples * 2);
  const outPtr = w.malloc(MAX_PACKET);
  return {
    kind: 'WebAssembly',
    encode(pcm, sampleTime) {
      const pcm16 = new Int16Array(m.views.u8.buffer, pcmPtr, frameSamples);
      for (let i = 0; i < frameSamples; i++) {
        const x = Math.max(-1, Math.min(1, pcm[i]));
        pcm16[i] = x < 0 ? x * 0x8000 : x * 0x7fff;
      }
      const n = check(m, w.opus_encode(state, pcmPtr, frameSamples, outPtr, MAX_PACKET), 'encode');
      onPacket(m.views.u8.slice(outPtr, outPtr + n), sampleTime);
    },
    close() { w.free(pcmPtr); w.free(outPtr); w.free(state); },
  };
}

async function wasmDecoder({ onPcm }) {
  const m = await loadWasm();
  const w = m.exports;
  const state = w.malloc(w.opus_decoder_get_size(1));
  check(m, w.opus_decoder_init(state, RATE, 1), 'decoder init');
  const inPtr = w.malloc(MAX_PACKET);
  const pcmPtr = w.malloc(MAX_FRAME * 2);
  return {
    kind: 'WebAssembly',
    decode(bytes) {
      if (bytes.length > MAX_PACKET) return;
      m.views.u8.set(bytes, inPtr);
      const n = w.opus_decode(state, inPtr, bytes.length, pcmPtr, MAX_FRAME, 0);
      if (n <= 0) return;
      const pcm16 = new Int16Array(m.views.u8.buffer, pcmPtr, n);
      const pcm = new Float32Array(n);
      for (let i = 0; i < n; i++) pcm[i] = pcm16[i] / 0x8000;
      onPcm(pcm);
    },
    close() { w.free(inPtr); w.free(pcmPtr); w.free(state); },
  };
}

// ---------- choice ----------

export async function makeEncoder(opts) {
  if (!opts.forceWasm && webCodecsAvailable()) {
    try { return await webCodecsEncoder(opts); } catch (e) { console.warn('WebCodecs encoder unavailable:', e); }
  }
  return wasmEncoder(opts);
}

export async function makeDecoder(opts) {
  if (!opts.forceWasm && webCodecsAvailable()) {
    try { return await webCodecsDecoder(opts); } catch (e) { console.warn('WebCodecs decoder unavailable:', e); }
  }
  return wasmDecoder(opts);
}
