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
command -v setpriv >/dev/null 2>&1 || need+=(util-linux)
# Exports must open with the everyday tools.
command -v bsdtar >/dev/null 2>&1 || need+=(libarchive-tools)
command -v unzip >/dev/null 2>&1 || need+=(unzip)
command -v zip >/dev/null 2>&1 || need+=(zip)
# The export bundle's workbook is read back with Python's zipfile.
command -v python3 >/dev/null 2>&1 || need+=(python3)
# schemathesis (the API fuzzer) and moto (an S3 server with object lock)
# go into a virtual environment.
python3 -c 'import ensurepip, venv' >/dev/null 2>&1 || need+=(python3-venv)
command -v zstd >/dev/null 2>&1 || need+=(zstd)
# A self-signed certificate for the service's TLS test.
command -v openssl >/dev/null 2>&1 || need+=(openssl)
# Private database servers for the source tests (started by the tests
# themselves in temporary directories, never the system services).
ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 || need+=(postgresql)
command -v mariadb-install-db >/dev/null 2>&1 || need+=(mariadb-server)
command -v mariadb-dump >/dev/null 2>&1 || need+=(mariadb-client)
# The web UI's tests drive Debian's Chromium over WebDriver, and run
# axe-core (from npm) in its pages.
command -v chromium >/dev/null 2>&1 || need+=(chromium)
command -v chromedriver >/dev/null 2>&1 || need+=(chromium-driver)
command -v npm >/dev/null 2>&1 || need+=(npm)
# Virtual-hosted S3 addressing is tested in a private mount namespace.
command -v unshare >/dev/null 2>&1 || need+=(util-linux)
if ((${#need[@]})); then
  sudo=""
  [ "$(id -u)" = 0 ] || sudo="sudo"
  echo "installing: ${need[*]}" >&2
  $sudo apt-get update -qq
  # Installing must not start the system database services: the tests
  # run their own instances.
  policy=""
  if [ ! -e /usr/sbin/policy-rc.d ]; then
    printf '#!/bin/sh\nexit 101\n' | $sudo tee /usr/sbin/policy-rc.d >/dev/null
    $sudo chmod +x /usr/sbin/policy-rc.d
    policy=1
  fi
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq "${need[@]}" >/dev/null
  [ -z "$policy" ] || $sudo rm -f /usr/sbin/policy-rc.d
fi

# Garage, the S3-compatible server the object-storage tests run against
# (built once, kept in ~/.cargo/bin: about ten minutes on two cores).
if ! command -v garage >/dev/null 2>&1 && [ ! -x "$HOME/.cargo/bin/garage" ]; then
  echo "installing garage (cargo install garage --locked)" >&2
  cargo install garage --locked
fi

# rustic, the second oracle of the format (restic's in Rust, on OpenDAL):
# it checks and restores what holdfast wrote on Garage (about eight minutes).
if ! command -v rustic >/dev/null 2>&1 && [ ! -x "$HOME/.cargo/bin/rustic" ]; then
  echo "installing rustic (cargo install rustic-rs --locked --no-default-features)" >&2
  cargo install rustic-rs --locked --no-default-features
fi

# schemathesis fuzzes the served OpenAPI document (tests/serve_fuzz.rs);
# moto's S3 server has the object lock Garage lacks (tests/s3_object_lock.rs);
# aiosmtpd is the SMTP server (STARTTLS) of tests/notify.rs.
# Pinned versions in a virtual environment of their own, kept between runs.
venv="${HOLDFAST_TEST_VENV:-$HOME/.cache/holdfast-test-venv}"
[ -x "$venv/bin/pip" ] || python3 -m venv "$venv"
if [ ! -x "$venv/bin/schemathesis" ]; then
  echo "installing schemathesis into $venv" >&2
  "$venv/bin/pip" install -q 'schemathesis==4.32.5'
fi
if [ ! -x "$venv/bin/moto_server" ]; then
  echo "installing moto into $venv" >&2
  "$venv/bin/pip" install -q 'moto[server]==5.2.6'
fi
if ! "$venv/bin/python" -c 'import aiosmtpd, cryptography' 2>/dev/null; then
  echo "installing aiosmtpd into $venv" >&2
  "$venv/bin/pip" install -q 'aiosmtpd==1.4.6' cryptography
fi
export HOLDFAST_SCHEMATHESIS="$venv/bin/schemathesis"
export HOLDFAST_TEST_VENV="$venv"

# axe-core, the accessibility checker the browser tests run in each page
# (a pinned version, kept between runs).
node_dir="$HOME/.cache/holdfast-test-node"
if [ ! -f "$node_dir/node_modules/axe-core/axe.min.js" ]; then
  echo "installing axe-core into $node_dir" >&2
  mkdir -p "$node_dir"
  npm install --prefix "$node_dir" --silent --no-audit --no-fund axe-core@4.10.3 >/dev/null
fi
export HOLDFAST_AXE_JS="$node_dir/node_modules/axe-core/axe.min.js"

# A fresh build needs several GB; say how much the machine has, so that a
# "no space left" further down is read for what it is.
echo "disk free for the build and the tests:" >&2
df -h . "${TMPDIR:-/tmp}" >&2 || true
# A clean build gains nothing from incremental state, which costs GBs.
export CARGO_INCREMENTAL="${CARGO_INCREMENTAL:-0}"

cargo fmt --all -- --check
cargo clippy --workspace --all-targets -- -D warnings
cargo test --workspace
