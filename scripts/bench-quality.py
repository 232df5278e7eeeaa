#!/usr/bin/env python3
"""How a call sounds on a bad network: Viz's defaults against a stock GStreamer RTP
pipeline, through the same seeded impairment relay, scored with wideband PESQ.

For each condition (0 % loss; 5, 10 and 20 % loss with 0..20 ms jitter) and each input
(espeak-ng speech whose pauses are digital silence, and the same speech over a
-50 dBFS noise floor):

* Viz: `viz host --input speech.wav --loop`, `viz netsim` (the relay) and
  `viz join --output heard.wav`, three processes on loopback.
* GStreamer (libopus 1.3.1 here): `opusenc bitrate=32000 frame-size=20
  inband-fec=true ! rtpopuspay ! udpsink` to the same relay, then `udpsrc !
  rtpjitterbuffer latency=60 do-lost=true ! rtpopusdepay ! opusdec plc=true
  use-inband-fec=true ! wavenc`. (`do-lost` is what makes the jitter buffer tell the
  decoder about a loss; without it neither PLC nor FEC ever runs.)

The received audio is aligned to the reference (a full copy of the speech after the
call has settled) and scored with PESQ (ITU-T P.862.2 wideband, PyPI `pesq`) at
16 kHz. Beside the scores: Viz's mouth-to-ear delay for the same impairment (`viz demo
--json`, which measures it inside one process), the host's on-wire rate towards the
joiner (UDP payload bytes the relay carried, headers and control included) and the
CPU time of the host and joiner processes as a share of one core. Last, the on-wire
rate of a silent minute with DTX.

Needs: espeak-ng, sox, gst-launch-1.0 (gstreamer1.0-plugins-base/good), Python with
numpy, scipy and pesq (`pip install numpy scipy pesq`). Not part of CI: it takes about
ten minutes and its figures depend on the machine.

Usage: cargo build --release && scripts/bench-quality.py [--viz target/release/viz]
       [--seeds 1,2] [--only clean,5] [--keep DIR]
"""
import argparse
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time

import numpy as np
import scipy.io.wavfile as wavfile
import scipy.signal as sps
from pesq import pesq

RATE = 48_000
SENTENCES = [
    ("en-us", "The quick brown fox jumps over the lazy dog. Then it stops, and listens."),
    ("en-gb", "Meet me at the north gate in five minutes, and bring the map."),
    ("en-us+f3", "We lost the first round, but the second one is ours. Ready?"),
    ("en-gb-scotland", "Left side is clear. Two of them on the bridge, moving slowly."),
]
CONDITIONS = [("clean", 0, 0), ("5", 5, 20), ("10", 10, 20), ("20", 20, 20)]


def sh(cmd, **kw):
    return subprocess.run(cmd, check=True, capture_output=True, text=True, **kw)


def read_mono(path):
    rate, x = wavfile.read(path)
    x = x.astype(np.float64)
    if x.ndim > 1:
        x = x.mean(axis=1)
    if np.abs(x).max() > 1.5:
        x /= 32768.0
    if rate != RATE:
        x = sps.resample_poly(x, RATE, rate)
    return x


def write_mono(path, x):
    wavfile.write(path, RATE, (np.clip(x, -1, 1) * 32767).astype(np.int16))


def make_speech(work):
    """espeak-ng sentences with 0.2-0.7 s pauses of digital silence between them (and
    its own short pauses inside them), 48 kHz; and the same over a noise floor."""
    parts = []
    rng = np.random.default_rng(7)
    for i, (voice, text) in enumerate(SENTENCES):
        raw = os.path.join(work, f"s{i}.wav")
        sh(["espeak-ng", "-v", voice, "-s", "160", "-w", raw, text])
        x = read_mono(raw)
        x = x / np.abs(x).max() * 0.5
        x[np.abs(x) < 1e-4] = 0.0  # espeak's pauses are silence; make them digital zeros
        parts += [x, np.zeros(int(RATE * rng.uniform(0.2, 0.7)))]
    speech = np.concatenate(parts)
    # A steady, slightly coloured fan-like floor at about -50 dBFS.
    noise = sps.lfilter([1.0], [1.0, -0.9], rng.standard_normal(len(speech)))
    noise *= 10 ** (-50 / 20) / np.sqrt(np.mean(noise**2))
    paths = {}
    for name, x in [("silent pauses", speech), ("noise floor", speech + noise)]:
        path = os.path.join(work, name.replace(" ", "-") + ".wav")
        write_mono(path, x)
        paths[name] = path
    return paths, len(speech) / RATE


def score(reference, heard, settle_s):
    """PESQ-WB of the best-aligned full copy of `reference` in `heard`, past `settle_s`."""
    ref, deg = read_mono(reference), read_mono(heard)
    start = int(settle_s * RATE)
    if len(deg) < start + len(ref):
        return None, None
    window = deg[start:]
    corr = sps.correlate(window, ref, mode="valid", method="fft")
    lag = int(np.argmax(np.abs(corr)))
    seg = window[lag : lag + len(ref)]
    r16, d16 = sps.resample_poly(ref, 1, 3), sps.resample_poly(seg, 1, 3)
    return pesq(16_000, r16, d16, "wb"), (start + lag) / RATE


def cpu_seconds(pid):
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


class Ports:
    next = 19_000 + (os.getpid() % 500) * 8

    @classmethod
    def take(cls, n):
        cls.next += n
        return [cls.next - n + i for i in range(n)]


def relay(viz, listen, to, loss, jitter, seed, seconds):
    return subprocess.Popen(
        [viz, "netsim", "--listen", f"127.0.0.1:{listen}", "--to", f"127.0.0.1:{to}", "--loss", str(loss),
         "--jitter-ms", str(jitter), "--seed", str(seed), "--duration", str(seconds)],
        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)


def relay_bytes_down(relay_stderr):
    for line in relay_stderr.splitlines():
        if line.startswith("server -> client"):
            return int(line.split("(")[1].split()[0])
    return 0


def run_viz(viz, speech, loss, jitter, seed, seconds, work, extra=()):
    host_port, relay_port = Ports.take(2)
    heard = os.path.join(work, "viz-heard.wav")
    env = dict(os.environ, HOME=work, XDG_CONFIG_HOME=work)
    host = subprocess.Popen(
        [viz, "host", "--port", str(host_port), "--bind", "127.0.0.1", "--input", speech, "--loop", "--output", "null",
         "--quiet", "--name", "host", *extra], stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
        env=env)
    net = relay(viz, relay_port, host_port, loss, jitter, seed, seconds + 5)
    time.sleep(0.5)
    t0 = time.time()
    join = subprocess.Popen(
        [viz, "join", f"127.0.0.1:{relay_port}", "--input", "silence", "--output", heard, "--duration", str(seconds),
         "--quiet", "--name", "joiner", "--no-reconnect", *extra], stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE, env=env)
    cpu_host0 = cpu_seconds(host.pid)
    time.sleep(seconds * 0.9)
    cpu_host = cpu_seconds(host.pid) - cpu_host0
    cpu_join = cpu_seconds(join.pid)
    wall = time.time() - t0
    _, join_err = join.communicate(timeout=seconds + 30)
    host.send_signal(signal.SIGINT)
    host.communicate(timeout=10)
    net.send_signal(signal.SIGINT)
    _, net_err = net.communicate(timeout=10)
    if join.returncode != 0:
        raise RuntimeError(f"viz join failed: {join_err}")
    return {
        "heard": heard,
        "kbps": relay_bytes_down(net_err) * 8 / 1000 / seconds,
        "cpu_host": 100 * cpu_host / wall,
        "cpu_join": 100 * cpu_join / wall,
    }


def run_gstreamer(speech, loss, jitter, seed, seconds, work, viz):
    rx_port, relay_port = Ports.take(2)
    heard = os.path.join(work, "gst-heard.wav")
    caps = "application/x-rtp,media=audio,clock-rate=48000,encoding-name=OPUS,payload=96"
    rx = subprocess.Popen(
        ["gst-launch-1.0", "-q", "-e", "udpsrc", f"port={rx_port}", "address=127.0.0.1", f"caps={caps}", "!",
         "rtpjitterbuffer", "latency=60", "do-lost=true", "!", "rtpopusdepay", "!", "opusdec", "plc=true",
         "use-inband-fec=true", "!", "audioconvert", "!", "audio/x-raw,format=S16LE,channels=1", "!", "wavenc", "!",
         "filesink", f"location={heard}"], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    net = relay(viz, relay_port, rx_port, loss, jitter, seed, seconds + 5)
    time.sleep(0.5)
    tx = subprocess.Popen(
        ["gst-launch-1.0", "-q", "filesrc", f"location={speech}", "!", "wavparse", "!", "audioconvert", "!",
         "audioresample", "!", "audio/x-raw,rate=48000,channels=1", "!", "opusenc", "bitrate=32000", "frame-size=20",
         "inband-fec=true", "!", "rtpopuspay", "!", "udpsink", "host=127.0.0.1", f"port={relay_port}"],
        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    tx.communicate(timeout=seconds + 30)
    time.sleep(0.5)
    rx.send_signal(signal.SIGINT)
    rx.communicate(timeout=10)
    net.send_signal(signal.SIGINT)
    net.communicate(timeout=10)
    return {"heard": heard}


def demo_delay(viz, speech, loss, jitter, seed):
    out = sh([viz, "demo", "--json", "--duration", "10", "--input", speech, "--loss", str(loss), "--jitter-ms",
              str(jitter), "--seed", str(seed), "--out-dir", tempfile.mkdtemp(prefix="viz-bench-demo-")]).stdout
    return json.loads(out)["directions"][0]["latency_ms"]


def silent_minute(viz, work, seconds):
    silence = os.path.join(work, "silence.wav")
    write_mono(silence, np.zeros(RATE * 5))
    r = run_viz(viz, silence, 0, 0, 1, seconds, work)
    return r["kbps"]


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--viz", default="target/release/viz")
    ap.add_argument("--seeds", default="1")
    ap.add_argument("--only", default=",".join(c[0] for c in CONDITIONS), help="conditions: clean,5,10,20")
    ap.add_argument("--inputs", default="silent pauses,noise floor")
    ap.add_argument("--silent-seconds", type=float, default=60)
    ap.add_argument("--viz-args", default="", help="extra flags for both viz processes, e.g. --no-dred")
    ap.add_argument("--keep", help="keep the generated and heard audio in this directory")
    args = ap.parse_args()
    for tool in ("espeak-ng", "gst-launch-1.0"):
        if not shutil.which(tool):
            sys.exit(f"bench-quality: {tool} is not installed")
    work = args.keep or tempfile.mkdtemp(prefix="viz-bench-quality-")
    os.makedirs(work, exist_ok=True)
    speeches, speech_s = make_speech(work)
    # One copy of the speech to settle (call set-up, the first jitter estimate), then
    # a second, complete copy to score; gst gets the two copies as one file.
    seconds = round(2 * speech_s + 2.5, 1)
    extra = args.viz_args.split()
    seeds = [int(s) for s in args.seeds.split(",")]
    print(f"speech {speech_s:.1f} s, {seconds} s per run, seeds {seeds}, viz {args.viz} {args.viz_args}".rstrip())
    print("| input | loss + jitter | Viz PESQ-WB | GStreamer PESQ-WB | Viz mouth-to-ear | Viz on-wire | Viz CPU host / joiner |")
    print("| --- | --- | --- | --- | --- | --- | --- |")
    for input_name in args.inputs.split(","):
        speech = speeches[input_name]
        twice = os.path.join(work, "twice-" + os.path.basename(speech))
        x = read_mono(speech)
        write_mono(twice, np.concatenate([np.zeros(RATE), x, x]))
        for name, loss, jitter in CONDITIONS:
            if name not in args.only.split(","):
                continue
            viz_scores, gst_scores, kbps, cpu_h, cpu_j, delays = [], [], [], [], [], []
            for seed in seeds:
                v = run_viz(args.viz, speech, loss, jitter, seed, seconds, work, extra)
                viz_scores.append(score(speech, v["heard"], speech_s * 0.5)[0])
                kbps.append(v["kbps"])
                cpu_h.append(v["cpu_host"])
                cpu_j.append(v["cpu_join"])
                g = run_gstreamer(twice, loss, jitter, seed, seconds, work, args.viz)
                gst_scores.append(score(speech, g["heard"], speech_s * 0.5)[0])
                delays.append(demo_delay(args.viz, speech, loss, jitter, seed))
                if args.keep:
                    for src, tag in [(v["heard"], "viz"), (g["heard"], "gst")]:
                        shutil.copy(src, os.path.join(work, f"{tag}-{input_name.replace(' ', '-')}-{name}-{seed}.wav"))

            def fmt(xs, f="{:.2f}"):
                xs = [x for x in xs if x is not None]
                if not xs:
                    return "n/a"
                lo, hi = min(xs), max(xs)
                return f.format(lo) if f.format(lo) == f.format(hi) else f.format(lo) + "–" + f.format(hi)

            cond = "0 %" if loss == 0 else f"{loss} % + {jitter} ms"
            print(f"| {input_name} | {cond} | {fmt(viz_scores)} | {fmt(gst_scores)} | {fmt(delays, '{:.0f}')} ms "
                  f"| {fmt(kbps, '{:.1f}')} kb/s | {fmt(cpu_h, '{:.1f}')} / {fmt(cpu_j, '{:.1f}')} % |", flush=True)
    if args.silent_seconds > 0:
        rate = silent_minute(args.viz, work, args.silent_seconds)
        print(f"\nsilence for {args.silent_seconds:.0f} s with DTX: {rate:.2f} kb/s on the wire (host -> joiner)")


if __name__ == "__main__":
    main()
