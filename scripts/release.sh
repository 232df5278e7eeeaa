#!/usr/bin/env bash
# Builds what users download, into dist/:
#   viz-VERSION-x86_64-linux.tar.gz    (viz, README.md, LICENSE, licences of bundled code)
#   viz-VERSION-x86_64-windows.zip     (viz.exe, the same documents)
# Profile `dist` (Cargo.toml): the release build with fat LTO and one codegen unit, no
# debug information, symbols stripped.
#
#   scripts/release.sh             both
#   scripts/release.sh --linux     Linux only
#   scripts/release.sh --windows   Windows only (cross-built with mingw-w64)
#
# Needs, besides the Linux build packages in the README: Debian's mingw-w64, zip, and
# the Rust target (`rustup target add x86_64-pc-windows-gnu`).
set -euo pipefail
cd "$(dirname "$0")/.."

targets=()
case "${1:-}" in
    "") targets=(linux windows) ;;
    --linux) targets=(linux) ;;
    --windows) targets=(windows) ;;
    *) echo "usage: scripts/release.sh [--linux | --windows]" >&2; exit 2 ;;
esac

version=$(cargo metadata --no-deps --format-version 1 --locked |
    python3 -c 'import json, sys; print(next(p["version"] for p in json.load(sys.stdin)["packages"] if p["name"] == "viz"))')
opus_dir=$(cargo metadata --format-version 1 --locked |
    python3 -c 'import json, os, sys; print(next(os.path.dirname(p["manifest_path"]) for p in json.load(sys.stdin)["packages"] if p["name"] == "opusic-sys"))')/opus
ring_dir=$(cargo metadata --format-version 1 --locked |
    python3 -c 'import json, os, sys; print(next(os.path.dirname(p["manifest_path"]) for p in json.load(sys.stdin)["packages"] if p["name"] == "ring"))')

mkdir -p dist

# The documents every archive carries: Viz's licence and those of the C and assembly
# code linked into the binary (libopus, and ring's BoringSSL-derived code for TLS).
stage_documents() {
    local dir=$1
    mkdir -p "$dir/licenses"
    cp README.md LICENSE "$dir/"
    cp "$opus_dir/COPYING" "$dir/licenses/libopus-COPYING.txt"
    for f in LICENSE LICENSE-BoringSSL LICENSE-other-bits; do
        cp "$ring_dir/$f" "$dir/licenses/ring-$f.txt"
    done
}

size() { du -h "$1" | cut -f1; }

for target in "${targets[@]}"; do
    case $target in
        linux)
            cargo build --profile dist --locked -p viz
            name=viz-$version-x86_64-linux
            rm -rf "dist/$name"
            mkdir -p "dist/$name"
            cp target/dist/viz "dist/$name/"
            stage_documents "dist/$name"
            tar -C dist -czf "dist/$name.tar.gz" "$name"
            echo "dist/$name.tar.gz: $(size "dist/$name.tar.gz") (viz: $(size "dist/$name/viz"))"
            ;;
        windows)
            cargo build --profile dist --locked -p viz --target x86_64-pc-windows-gnu
            name=viz-$version-x86_64-windows
            rm -rf "dist/$name" "dist/$name.zip"
            mkdir -p "dist/$name"
            cp target/x86_64-pc-windows-gnu/dist/viz.exe "dist/$name/"
            stage_documents "dist/$name"
            (cd dist && zip -qr "$name.zip" "$name")
            echo "dist/$name.zip: $(size "dist/$name.zip") (viz.exe: $(size "dist/$name/viz.exe"))"
            ;;
    esac
done
