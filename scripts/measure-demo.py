#!/usr/bin/env python3
"""Reproduces the figures in README.md: runs `viz demo --json` over the scenarios
there (20 s each, seeds 1-3) and prints one line per run.

Usage: cargo build --release && scripts/measure-demo.py [path/to/viz]
"""
import json
import subprocess
import sys

VIZ = sys.argv[1] if len(sys.argv) > 1 else "target/release/viz"


def run(args):
    cmd = [VIZ, "demo", "--json", "--duration", "20", "--out-dir", "/tmp/viz-measure"] + args
    return json.loads(subprocess.run(cmd, capture_output=True, text=True, check=True).stdout)


def latency(d):
    return f"lat {d['latency_ms']:.1f} ms ({d['latency_min_ms']:.0f}..{d['latency_max_ms']:.0f})"


for name, args in [
    ("clean 20 ms", []),
    ("clean 10 ms", ["--frame-ms", "10"]),
    ("5% loss, 20 ms jitter", ["--loss", "5", "--jitter-ms", "20"]),
]:
    for seed in (1, 2, 3):
        r = run(args + ["--seed", str(seed)])
        parts = [
            f"{d['direction']}: {latency(d)} corr {d['correlation']:.2f} lost {d['packets_lost_network']} "
            f"fec {d['frames_fec_recovered']} plc {d['frames_concealed']} late {d['frames_late']} "
            f"talk {d['kbps_talking']:.1f} avg {d['kbps_average']:.1f} kb/s"
            for d in r["directions"]
        ]
        print(f"{name:22s} seed {seed}: " + " | ".join(parts) + f" | cpu {r['cpu_host_pct']:.2f} / {r['cpu_joiner_pct']:.2f} %")

for name, args in [("silence", ["--input", "silence"]), ("40 ms frames", ["--frame-ms", "40"]), ("batch 2", ["--batch", "2"])]:
    r = run(args)
    parts = [f"{d['direction']}: talk {d['kbps_talking']:.1f} avg {d['kbps_average']:.2f} control {d['kbps_control']:.2f} kb/s" for d in r["directions"]]
    print(f"{name:22s}: " + " | ".join(parts) + f" | cpu {r['cpu_host_pct']:.2f} / {r['cpu_joiner_pct']:.2f} %")
