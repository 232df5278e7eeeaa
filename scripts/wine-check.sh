#!/usr/bin/env bash
# Runs the Windows build of Viz under Wine, as CI does: device listing (WASAPI), a join
# with nobody there (the error and exit status), the main job (`viz.exe demo`, a
# measured call over loopback through the real Windows code paths: sockets, timers,
# threads, the engine, Opus), and a `viz.exe host` / `viz.exe join` pair of separate
# processes exchanging a 440 Hz tone. Exits non-zero if any of them fails.
#
#   scripts/wine-check.sh [PATH/TO/viz.exe]
#     default: target/x86_64-pc-windows-gnu/dist/viz.exe (scripts/release.sh --windows)
#
# Needs Debian's wine64 and mingw-w64 (for the test-only ProcessPrng shim, see
# scripts/wine/bcryptprimitives.c) and python3. Everything runs on 127.0.0.1.
set -euo pipefail
cd "$(dirname "$0")/.."

exe=${1:-target/x86_64-pc-windows-gnu/dist/viz.exe}
[[ -f $exe ]] || { echo "wine-check: no $exe (build it with scripts/release.sh or cargo build --target x86_64-pc-windows-gnu)" >&2; exit 2; }

work=$(mktemp -d)
trap 'wineserver -k >/dev/null 2>&1 || true; rm -rf "$work"' EXIT
export WINEPREFIX=$work/prefix WINEDEBUG=-all WINEDLLOVERRIDES="bcryptprimitives=n;mscoree=;mshtml=" DISPLAY=
mkdir -p "$work/bin"
cp "$exe" "$work/bin/viz.exe"
# The shim sits beside the exe under test only; it is not part of any release.
x86_64-w64-mingw32-gcc -shared -O2 -o "$work/bin/bcryptprimitives.dll" scripts/wine/bcryptprimitives.c

# What the exe imports must exist on every Windows: no MinGW runtime DLLs.
imports=$(x86_64-w64-mingw32-objdump -p "$work/bin/viz.exe" | awk '/DLL Name:/ {print tolower($3)}' | sort -u)
echo "viz.exe imports: $(echo $imports)"
for dll in $imports; do
    case $dll in
        libssp-0.dll | libgcc_s_seh-1.dll | libwinpthread-1.dll | libstdc++-6.dll)
            echo "wine-check: viz.exe needs $dll, which Windows does not have" >&2
            exit 1
            ;;
    esac
done

viz() { timeout --kill-after=5 "$1" wine "$work/bin/viz.exe" "${@:2}"; }

echo "== wine: first start of the prefix"
time (wineboot --init >/dev/null 2>&1 || true)

echo "== wine viz.exe --version"
viz 60 --version

echo "== wine viz.exe devices (WASAPI enumeration; Wine has no sound devices here)"
viz 60 devices 2>/dev/null | tee "$work/devices.txt"
grep -q "Output devices" "$work/devices.txt"

echo "== wine viz.exe join to a port where nothing listens: a clear error, exit status 1"
status=0
viz 30 join udp://127.0.0.1:9 --input silence --output null </dev/null >"$work/nobody.txt" 2>&1 || status=$?
cat "$work/nobody.txt"
[[ $status == 1 ]] && grep -q "no Viz host answered" "$work/nobody.txt" ||
    { echo "wine-check: expected exit 1 and 'no Viz host answered', got $status" >&2; exit 1; }

# Ten seconds: five 2 s windows. On a busy machine Wine's threads run late (Wine
# does not map thread priorities to Linux without RLIMIT_NICE), the jitter buffer
# stretches to absorb it and a window whose delay changed midway correlates poorly;
# with three windows one CI run had none left at 0.5 to measure the delay from.
echo "== wine viz.exe demo --duration 10 --json"
viz 120 demo --duration 10 --json >"$work/demo.json"
python3 - "$work/demo.json" <<'PY'
import json, sys
r = json.load(open(sys.argv[1]))
print(json.dumps({k: r[k] for k in ("seconds", "cpu_host_pct", "cpu_joiner_pct")}))
for d in r["directions"]:
    print(f'{d["direction"]}: mouth-to-ear {d["latency_ms"]} ms, correlation {d["correlation"]}, '
          f'packets {d["packets_received"]}/{d["packets_sent"]}, concealed {d["frames_concealed"]}, '
          f'windows {[round(w["correlation"], 2) for w in d["windows"]]}')
    assert d["packets_sent"] > 200, "too few packets sent"
    assert d["packets_received"] >= 0.95 * d["packets_sent"], "packets lost on clean loopback"
    assert d["latency_ms"] is not None and 0 < d["latency_ms"] < 200, "no plausible mouth-to-ear latency"
    # Median waveform correlation over 2 s windows (five in 10 s). Alone on the machine
    # runs give 0.75-0.95; with a build running beside it a late frame or two is
    # concealed and one window can fall to 0.3. Unrelated audio scores near 0; the
    # native demo test under 5 % loss uses the same bound.
    assert d["correlation"] is not None and d["correlation"] > 0.4, "what was heard does not match what was sent"
print("demo under Wine: ok")
PY

echo "== wine viz.exe host + wine viz.exe join (440 Hz tone)"
port=$((20000 + RANDOM % 20000))
export VIZ_CONFIG_DIR='C:\viz-host'
viz 60 host --port "$port" --bind 127.0.0.1 --no-websocket --input tone:440 --output null --duration 20 --name wine-host \
    </dev/null >"$work/host.log" 2>&1 &
host_pid=$!
sleep 3
export VIZ_CONFIG_DIR='C:\viz-join'
join_status=0
viz 60 join "udp://127.0.0.1:$port" --input silence --output 'C:\heard.wav' --duration 6 --name wine-join \
    </dev/null >"$work/join.log" 2>&1 || join_status=$?
wait "$host_pid" || true
echo "-- host:"; cat "$work/host.log"
echo "-- join (exit $join_status):"; cat "$work/join.log"
[[ $join_status == 0 ]] || { echo "wine-check: viz.exe join failed" >&2; exit 1; }
python3 - "$WINEPREFIX/drive_c/heard.wav" <<'PY'
import math, struct, sys, wave
w = wave.open(sys.argv[1])
rate, n = w.getframerate(), w.getnframes()
raw = w.readframes(n)
width = w.getsampwidth()
if width == 2:
    x = [s / 32768 for s in struct.unpack(f"<{n * w.getnchannels()}h", raw)]
else:
    x = list(struct.unpack(f"<{n * w.getnchannels()}f", raw))
x = x[rate:]  # skip the first second (jitter buffer settling)
def power(f, w):
    # Goertzel: the power of the sine at frequency f in window w (amplitude squared over two).
    k = 2 * math.cos(2 * math.pi * f / rate)
    s1 = s2 = 0.0
    for v in w:
        s1, s2 = v + k * s1 - s2, s1
    return 2 * (s1 * s1 + s2 * s2 - k * s1 * s2) / len(w) ** 2
# In 100 ms windows (a 10 Hz wide bin), as the other tests measure a tone's share of a
# band: the joiner's jitter buffer changes its delay by whole pitch periods, and 440 Hz
# has a period of 109.09 samples, so each step shifts the tone's phase a little. One
# Goertzel bin 0.2 Hz wide over five seconds reads those shifts as lost energy.
win = rate // 10
windows = [x[i:i + win] for i in range(0, len(x) - win + 1, win)]
total = sum(v * v for v in x) / len(x)
tone = sum(power(440, w) for w in windows) / max(len(windows), 1)
share = tone / total if total > 0 else 0
rms_db = 10 * math.log10(total + 1e-20)
print(f"heard {len(x) / rate:.1f} s after the first, level {rms_db:.1f} dBFS, 440 Hz share {share:.3f}")
assert len(x) > 3 * rate, "recording too short"
assert rms_db > -40, "nothing heard"
assert share > 0.8, "what was heard is not the host's 440 Hz tone"
print("host/join under Wine: ok")
PY
echo "wine-check passed"
