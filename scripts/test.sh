#!/usr/bin/env bash
# The whole test suite, on a fresh Debian machine that has only the Rust
# toolchain: installs what the tests need, then checks formatting, lints and
# runs every test (unit, property, CLI, restic interop).
set -euo pipefail
cd "$(dirname "$0")/.."

need=()
command -v restic >/dev/null 2>&1 || need+=(restic)
command -v mkfs.ext4 >/dev/null 2>&1 || need+=(e2fsprogs)
[ -x /usr/bin/time ] || need+=(time)
if ((${#need[@]})); then
  sudo=""
  [ "$(id -u)" = 0 ] || sudo="sudo"
  echo "installing: ${need[*]}" >&2
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq "${need[@]}" >/dev/null
fi

cargo fmt --all -- --check
cargo clippy --workspace --all-targets -- -D warnings
cargo test --workspace
