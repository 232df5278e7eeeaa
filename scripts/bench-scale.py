#!/usr/bin/env python3
"""How far one room scales: `viz serve` pinned to one core, `viz loadtest` on the
other, at 40, 100, 200, 500, 1000 and 2000 participants with 10 speakers. Prints a
line per run as it goes, then the README's table.

Each run starts a fresh server (UDP only, /metrics on loopback), lets the load tool
join its clients at 100 a second, measures for --duration seconds after the last
one joined, and reads the server's figures from its /metrics and its CPU time from
/proc: whole tick (mix + encrypt + send) and mixer p99, join success and time, loss
both ways, and the kernel's receive-buffer drops. Run nothing else meanwhile: the
kernel's drop counter covers every UDP socket of the machine.

Usage: cargo build --release -p viz && scripts/bench-scale.py [--viz PATH]
       [--duration 30] [--sizes 40,100,200,500,1000,2000] [--speakers 10]
       [--server-cores 0] [--load-cores 1] [--serve-arg=--send-threads=0 ...]
       [--json FILE]
"""
import argparse
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time


def start_server(viz, cores, port, http_port, workdir, extra):
    env = dict(os.environ, VIZ_CONFIG_DIR=os.path.join(workdir, "config"))
    cmd = ["taskset", "-c", cores, viz, "serve", "-p", str(port), "--no-websocket",
           "--http", f"127.0.0.1:{http_port}", "--public-metrics",
           "--state-dir", os.path.join(workdir, "state"), "--stats-interval", "3600"] + extra
    log = open(os.path.join(workdir, "serve.log"), "w")
    proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, env=env)
    deadline = time.time() + 20
    while time.time() < deadline:
        with open(os.path.join(workdir, "serve.log")) as f:
            text = f.read()
        if "Web page:" in text:
            return proc, text
        if proc.poll() is not None:
            sys.exit(f"viz serve exited:\n{text}")
        time.sleep(0.1)
    proc.kill()
    sys.exit("viz serve did not start within 20 s")


def run_size(args, n, index):
    workdir = tempfile.mkdtemp(prefix=f"viz-scale-{n}-")
    port, http_port = 18443 + index, 18411 + index
    server, banner = start_server(args.viz, args.server_cores, port, http_port, workdir, args.serve_arg)
    ramp = max(2.0, n / 100.0)
    env = dict(os.environ, VIZ_CONFIG_DIR=os.path.join(workdir, "load"))
    cmd = ["taskset", "-c", args.load_cores, args.viz, "loadtest", f"127.0.0.1:{port}",
           "--clients", str(n), "--speakers", str(args.speakers), "--ramp", str(ramp),
           "--duration", str(args.duration), "--metrics", f"http://127.0.0.1:{http_port}/metrics",
           "--server-pid", str(server.pid), "--json"]
    load = subprocess.run(cmd, capture_output=True, text=True, env=env)
    server.send_signal(signal.SIGINT)
    try:
        server.wait(timeout=15)
    except subprocess.TimeoutExpired:
        server.kill()
    out = load.stdout
    try:
        report = json.loads(out[out.index("{"):out.rindex("}") + 1])
    except ValueError:
        sys.exit(f"no report from viz loadtest at {n} (exit {load.returncode}):\n{out}\n{load.stderr}")
    buffer = re.search(r"UDP buffer:\s+(\d+) KiB", banner)
    report["receive_buffer_kib"] = int(buffer.group(1)) if buffer else None
    shutil.rmtree(workdir, ignore_errors=True)
    return report


def row(n, r):
    s = r.get("server") or {}
    def pct(v):
        return "n/a" if v is None else f"{v:.3f}"
    return {
        "participants": n,
        "joined": f"{r['joined']}/{r['clients']}",
        "join_p95_ms": r["join_ms_p95"],
        "cpu_percent": s.get("cpu_percent"),
        "tick_p99_ms": s.get("tick_p99_ms_median_window"),
        "tick_p99_worst_ms": s.get("tick_p99_ms_worst_window"),
        "mix_p99_ms": s.get("mix_p99_ms_median_window"),
        "loss_to_server": pct(r.get("loss_to_server_percent")),
        "loss_to_clients": pct(r["loss_to_clients_percent"]),
        "kernel_drops": s.get("kernel_drops"),
        "kernel_drops_in_window": s.get("kernel_drops_in_window"),
        "datagrams_in_per_s": s.get("datagrams_in_per_s"),
        "late_ticks": s.get("late_ticks"),
    }


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--viz", default="target/release/viz")
    p.add_argument("--duration", type=float, default=30)
    p.add_argument("--sizes", default="40,100,200,500,1000,2000")
    p.add_argument("--speakers", type=int, default=10)
    p.add_argument("--server-cores", default="0")
    p.add_argument("--load-cores", default="1")
    p.add_argument("--serve-arg", action="append", default=[], help="one more argument for viz serve (repeatable)")
    p.add_argument("--json", help="also write every report to this file")
    args = p.parse_args()
    if shutil.which("taskset") is None:
        sys.exit("needs taskset (util-linux)")
    rows, reports = [], {}
    for i, n in enumerate(int(s) for s in args.sizes.split(",")):
        r = run_size(args, n, i)
        reports[n] = r
        rows.append(row(n, r))
        print(json.dumps(rows[-1]), flush=True)
    if args.json:
        with open(args.json, "w") as f:
            json.dump(reports, f, indent=1)
    print()
    print(f"| participants / speakers | joined | join p95 | server CPU (one core) | whole tick p99 "
          f"(worst 5 s) | mixer p99 | loss to server | loss to clients | kernel drops (in the window) | datagrams in /s |")
    print("| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |")
    for r in rows:
        def ms(v):
            return "n/a" if v is None else f"{v:.1f} ms"
        cpu = "n/a" if r["cpu_percent"] is None else f"{r['cpu_percent']:.1f} %"
        print(f"| {r['participants']} / {args.speakers} | {r['joined']} | {r['join_p95_ms']:.0f} ms | {cpu} | "
              f"{ms(r['tick_p99_ms'])} ({ms(r['tick_p99_worst_ms'])}) | {ms(r['mix_p99_ms'])} | "
              f"{r['loss_to_server']} % | {r['loss_to_clients']} % | {r['kernel_drops']} ({r['kernel_drops_in_window']}) | "
              f"{'n/a' if r['datagrams_in_per_s'] is None else round(r['datagrams_in_per_s'])} |")


if __name__ == "__main__":
    main()
