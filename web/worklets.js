// Audio-thread code for the page. Nothing here allocates once running: frames travel
// in a fixed pool of buffers handed back and forth with transfer, and the jitter
// buffer and the optional test recording are allocated in the constructors.

const FRAME = 960; // 20 ms at 48 kHz

// Microphone → 20 ms frames for the encoder, with the input level.
class Capture extends AudioWorkletProcessor {
  constructor(options) {
    super();
    this.pool = [];
    for (let i = 0; i < 8; i++) this.pool.push(new Float32Array(FRAME));
    this.current = this.pool.pop();
    this.fill = 0;
    this.dropped = 0;
    this.started = false;
    const seconds = (options.processorOptions && options.processorOptions.recordSeconds) || 0;
    this.record = seconds > 0 ? new Float32Array(seconds * sampleRate) : null;
    this.recorded = 0;
    this.port.onmessage = (e) => {
      if (e.data instanceof Float32Array) this.pool.push(e.data);
      else if (e.data === 'dump' && this.record) {
        this.port.postMessage({ dump: this.record.subarray(0, this.recorded), start: this.recordStart });
      }
    };
  }

  process(inputs) {
    const input = inputs[0] && inputs[0][0];
    if (!input) return true;
    if (!this.started) {
      this.started = true;
      this.recordStart = currentFrame;
      this.port.postMessage({ start: currentFrame });
    }
    if (this.record) {
      const n = Math.min(input.length, this.record.length - this.recorded);
      this.record.set(input.subarray(0, n), this.recorded);
      this.recorded += n;
    }
    for (let i = 0; i < input.length; i++) {
      if (this.current) this.current[this.fill] = input[i];
      this.fill++;
      if (this.fill === FRAME) {
        if (this.current) this.port.postMessage(this.current, [this.current.buffer]);
        else this.dropped++;
        this.current = this.pool.pop() || null; // none free: the main thread is behind
        this.fill = 0;
      }
    }
    return true;
  }
}

// Decoded audio → speakers, through a small adaptive jitter buffer: it starts playing
// once `target` samples are queued, grows the target after an underrun (audio that
// came late), and trims the queue when it stayed above the target for a whole second.
// A queue that runs dry in a pause (the talker stopped: the page says 'gap' before the
// next talk spurt) is not an underrun; otherwise every pause grew the target, to
// 220 ms after a minute of speech. After three calm seconds the target comes down
// again, 5 ms a second, so it recovers from a jitter spike.
class Playback extends AudioWorkletProcessor {
  constructor(options) {
    super();
    this.ring = new Float32Array(sampleRate); // 1 s
    this.read = 0;
    this.write = 0;
    // Frames arrive 20 ms at a time, so the queue swings between `target - FRAME` and
    // `target`: its low-water mark is `target - FRAME`, which must keep 10 ms spare.
    this.minTarget = 0.03 * sampleRate;
    this.maxTarget = 0.3 * sampleRate;
    this.target = 0.04 * sampleRate;
    this.playing = false;
    this.underruns = 0;
    this.trimmed = 0;
    this.windowMin = Infinity;
    this.windowSum = 0; // queued samples summed over the window's render quanta while playing
    this.windowQuanta = 0;
    this.windowLeft = sampleRate;
    // The last whole second's low-water mark and mean queue, before any trim: what the
    // listener's delay was. (An instant's queue depends on when in the 20 ms a frame
    // cycle it is read and on bursts from a busy main thread.)
    this.lastLowWater = null;
    this.lastMean = null;
    this.calm = 0;
    this.dry = false; // the queue ran empty; whether that was an underrun is not known yet
    this.gain = 1; // the listener's volume
    const seconds = (options.processorOptions && options.processorOptions.recordSeconds) || 0;
    this.record = seconds > 0 ? new Float32Array(seconds * sampleRate) : null;
    this.recorded = 0;
    this.recordStart = -1;
    this.port.onmessage = (e) => {
      if (e.data instanceof Float32Array) this.push(e.data);
      else if (e.data && typeof e.data.gain === 'number') this.gain = e.data.gain;
      else if (e.data === 'gap') this.dry = false; // the queue ran dry in a pause
      else if (e.data === 'dump' && this.record) {
        this.port.postMessage({ dump: this.record.subarray(0, this.recorded), start: this.recordStart });
      } else if (e.data === 'stats') {
        this.port.postMessage({
          stats: { buffered_ms: this.queued() * 1000 / sampleRate, target_ms: this.target * 1000 / sampleRate,
            underruns: this.underruns, trimmed_ms: this.trimmed * 1000 / sampleRate, playing: this.playing,
            low_water_ms: this.lastLowWater === null ? null : this.lastLowWater * 1000 / sampleRate,
            mean_ms: this.lastMean === null ? null : this.lastMean * 1000 / sampleRate },
        });
      }
    };
  }

  queued() { return (this.write - this.read + this.ring.length) % this.ring.length; }

  push(pcm) {
    if (this.dry) {
      // Audio that should already have been played: an underrun.
      this.dry = false;
      this.underruns++;
      this.target = Math.min(this.maxTarget, this.target + 0.01 * sampleRate);
      this.calm = 0;
    }
    // The queue as a frame arrives is what jitter left of it: the low-water mark that
    // trimming and shrinking go by. (Measured in process(), every talk spurt's end, when
    // the queue drains with nothing more to come, read as a queue about to run dry, so
    // a queue lifted by a burst was never trimmed while the talker talked in sentences.)
    if (this.playing) this.windowMin = Math.min(this.windowMin, this.queued());
    const free = this.ring.length - 1 - this.queued();
    const n = Math.min(pcm.length, free);
    for (let i = 0; i < n; i++) {
      this.ring[this.write] = pcm[i];
      this.write = (this.write + 1) % this.ring.length;
    }
    this.port.postMessage(pcm, [pcm.buffer]); // hand the buffer back for reuse
  }

  process(_inputs, outputs) {
    const out = outputs[0][0];
    const have = this.queued();
    if (!this.playing && have >= this.target) this.playing = true;
    if (this.playing && have < out.length) {
      this.playing = false;
      this.dry = true;
    }
    if (this.playing) {
      for (let i = 0; i < out.length; i++) {
        out[i] = this.ring[this.read];
        this.read = (this.read + 1) % this.ring.length;
      }
      this.windowSum += this.queued();
      this.windowQuanta++;
    } else {
      out.fill(0);
    }
    this.windowLeft -= out.length;
    if (this.windowLeft <= 0) {
      this.windowLeft = sampleRate;
      this.calm++;
      // Three calm seconds in which the queue never fell below 10 ms: try a smaller
      // target, and so on every such second after.
      const played = this.windowMin !== Infinity;
      this.lastLowWater = played ? this.windowMin : null;
      this.lastMean = this.windowQuanta > 0 ? this.windowSum / this.windowQuanta : null;
      const headroom = played && this.windowMin > 0.01 * sampleRate;
      if (this.calm >= 3 && headroom) this.target = Math.max(this.minTarget, this.target - 0.005 * sampleRate);
      // Low-water mark more than 10 ms above where the target puts it for a whole
      // second: drop the excess, so the delay follows the target down within a second
      // (half at a time lagged 20-40 ms behind a shrinking target).
      const low = Math.max(0, this.target - FRAME);
      if (this.playing && played && this.windowMin > low + 0.01 * sampleRate) {
        const drop = Math.floor(this.windowMin - low);
        this.read = (this.read + drop) % this.ring.length;
        this.trimmed += drop;
      }
      this.windowMin = Infinity;
      this.windowSum = 0;
      this.windowQuanta = 0;
    }
    if (this.gain !== 1) for (let i = 0; i < out.length; i++) out[i] *= this.gain;
    if (this.record) {
      if (this.recordStart < 0) this.recordStart = currentFrame;
      const n = Math.min(out.length, this.record.length - this.recorded);
      this.record.set(out.subarray(0, n), this.recorded);
      this.recorded += n;
    }
    for (let c = 1; c < outputs[0].length; c++) outputs[0][c].set(out);
    return true;
  }
}

registerProcessor('viz-capture', Capture);
registerProcessor('viz-playback', Playback);
