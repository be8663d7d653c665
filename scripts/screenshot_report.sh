#!/usr/bin/env bash
# Screenshot an hf-dna HTML report with headless Chromium (Debian package `chromium`).
# usage: scripts/screenshot_report.sh REPORT.html OUT.png [WIDTH,HEIGHT]
# Install once: apt-get update && apt-get install -y chromium
set -euo pipefail
if [ $# -lt 2 ]; then
  echo "usage: $0 REPORT.html OUT.png [WIDTH,HEIGHT]" >&2
  exit 2
fi
html=$(realpath "$1")
out=$(realpath -m "$2")
size=${3:-1400,2400}
browser=$(command -v chromium || command -v chromium-browser || command -v google-chrome || true)
if [ -z "$browser" ]; then
  echo "Error: chromium not found (apt-get install -y chromium)" >&2
  exit 1
fi
profile=$(mktemp -d)
trap 'rm -rf "$profile"' EXIT
mkdir -p "$(dirname "$out")"
timeout 120 "$browser" --headless --no-sandbox --disable-gpu --disable-quic --no-first-run \
  --disable-background-networking --disable-component-update --disable-sync --hide-scrollbars \
  --virtual-time-budget=10000 --run-all-compositor-stages-before-draw \
  --user-data-dir="$profile" --screenshot="$out" --window-size="$size" "file://$html" >/dev/null 2>&1
test -s "$out" || { echo "Error: chromium wrote no screenshot" >&2; exit 1; }
echo "$out"
