#!/usr/bin/env bash
# Regenerates the README's pictures from a real run: the quickstart on a fresh `tuna serve`, the
# experiment page shot by headless Chromium (docs/dashboard.png), and two `tuna plot` files
# (docs/history.svg, docs/parallel.svg). Needs chromium and python3 (scripts/test.sh installs both).
set -euo pipefail
cd "$(dirname "$0")/.."
root=$PWD
cargo build --quiet
tuna="${CARGO_TARGET_DIR:-$root/target}/debug/tuna"
work=$(mktemp -d)
port=$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
(cd experiments && exec "$tuna" serve --listen "127.0.0.1:$port" --gpus none --data-dir "$work/data") 2>"$work/serve.log" &
server=$!
trap 'kill "$server" 2>/dev/null; wait "$server" 2>/dev/null; rm -rf "$work"' EXIT
export TUNA_SERVER="http://127.0.0.1:$port"
until "$tuna" list >/dev/null 2>&1; do sleep 0.2; done
"$tuna" submit experiments/quickstart.yaml
until "$tuna" get quickstart --json | grep -q '"phase": "Succeeded"'; do sleep 0.5; done
mkdir -p docs
chromium --headless --no-sandbox --disable-gpu --disable-quic --no-first-run --disable-background-networking \
  --disable-component-update --disable-sync --user-data-dir="$work/profile" --hide-scrollbars \
  --virtual-time-budget=5000 --window-size=1200,1500 --screenshot="$root/docs/dashboard.png" \
  "$TUNA_SERVER/experiments/quickstart" 2>/dev/null
"$tuna" plot quickstart --kind history -o docs/history.svg
"$tuna" plot quickstart --kind parallel -o docs/parallel.svg
