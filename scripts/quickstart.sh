#!/usr/bin/env bash
# Build holdfast and back up a directory into a local repository on the
# embedded default (./holdfast-data/repo), creating the repository and a
# random password file (0600, ./holdfast-data/password) on first use.
#   ./scripts/quickstart.sh [DIR]      (default: the current directory)
set -euo pipefail
src="${1:-.}"
cd "$(dirname "$0")/.."
root="$(pwd)"
cargo build --release --quiet
bin="$root/target/release/holdfast"
data="$root/holdfast-data"
mkdir -p "$data" && chmod 700 "$data"
export HOLDFAST_REPO="$data/repo" HOLDFAST_PASSWORD_FILE="$data/password"
if [ ! -s "$HOLDFAST_PASSWORD_FILE" ]; then
  (umask 077; head -c 32 /dev/urandom | base64 > "$HOLDFAST_PASSWORD_FILE")
fi
[ -f "$HOLDFAST_REPO/config" ] || "$bin" init
cd - >/dev/null
"$bin" backup "$src"
"$bin" snapshots
