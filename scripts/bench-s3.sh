#!/usr/bin/env bash
# holdfast, restic and rustic backing up to the same Garage (S3) on loopback, in the same run.
#
#   scripts/bench-s3.sh [DIR]
#
# DIR defaults to the data set of scripts/bench.sh (a copy of the Rust toolchain). A private Garage
# server is started for the run (free loopback ports, a single-node layout, one bucket and key, data in
# $BENCH_WORK/garage) and stopped at the end. For each tool and repetition, a fresh repository under its
# own prefix:
#   first      first backup of DIR
#   unchanged  backup again, nothing changed
#   restore    restore of the first snapshot into an empty directory
# Timings are medians of $REPS runs; peak RSS from /usr/bin/time; requests from Garage's own metrics
# (api_s3_request_counter by endpoint) before and after each step. Garage runs on the same two cores, so
# its CPU is part of every figure. Output: a Markdown table on stdout and $BENCH_WORK/s3-results.tsv.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$(pwd)

REPS=${REPS:-3}
TOOLS=${TOOLS:-"holdfast restic rustic"}
BENCH_DATA=${BENCH_DATA:-/tmp/holdfast-bench-data}
BENCH_WORK=${BENCH_WORK:-/tmp/holdfast-bench-s3}
PASSWORD=bench
export LC_ALL=C

need() { command -v "$1" >/dev/null 2>&1 || { sudo=""; [ "$(id -u)" = 0 ] || sudo=sudo;
  $sudo apt-get install -y -qq "${2:-$1}" >/dev/null; }; }
need restic
need vmtouch
need curl
[ -x /usr/bin/time ] || need /usr/bin/time time
PATH="$HOME/.cargo/bin:$PATH"
command -v garage >/dev/null || cargo install garage --locked
command -v rustic >/dev/null || cargo install rustic-rs --locked --no-default-features

log() { printf '[%s] %s\n' "$(date +%H:%M:%S)" "$*" >&2; }

log "building holdfast (release)"
[ -n "${NO_BUILD:-}" ] || cargo build --release --quiet
HF=$ROOT/target/release/holdfast

SRC=${1:-}
if [ -z "$SRC" ]; then
  SRC=$BENCH_DATA/d1
  if [ ! -d "$SRC" ]; then
    log "making the data set: cp -a of $(rustc --print sysroot)"
    mkdir -p "$BENCH_DATA"
    cp -a "$(rustc --print sysroot)" "$SRC"
  fi
fi
SRC=$(cd "$SRC" && pwd)
FILES=$(find "$SRC" -type f | wc -l)
BYTES=$(find "$SRC" -type f -printf '%s\n' | awk '{s+=$1} END {printf "%.0f", s}')
log "source $SRC: $FILES files, $BYTES bytes"

SETTLE_S=${SETTLE_S:-300}
if [ -d "$BENCH_WORK" ]; then
  # ext4 creates files slowly for minutes after tens of thousands were
  # deleted (see scripts/bench.sh): that would land on the restores
  log "deleting the previous run's work directory, then waiting ${SETTLE_S}s for ext4 to settle"
  rm -rf "$BENCH_WORK"
  sync
  sleep "$SETTLE_S"
fi
mkdir -p "$BENCH_WORK/garage" "$BENCH_WORK/trash"
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
RPC=$(free_port); S3=$(free_port); ADMIN=$(free_port)
SECRET=$(head -c 32 /dev/urandom | od -An -tx1 | tr -d ' \n')
TOKEN=$(head -c 16 /dev/urandom | od -An -tx1 | tr -d ' \n')
G=$BENCH_WORK/garage
cat >"$G/garage.toml" <<EOF
metadata_dir = "$G/meta"
data_dir = "$G/data"
db_engine = "sqlite"
replication_factor = 1
rpc_bind_addr = "127.0.0.1:$RPC"
rpc_public_addr = "127.0.0.1:$RPC"
rpc_secret = "$SECRET"

[s3_api]
s3_region = "garage"
api_bind_addr = "127.0.0.1:$S3"
root_domain = ".s3.garage.localhost"

[admin]
api_bind_addr = "127.0.0.1:$ADMIN"
admin_token = "$TOKEN"
metrics_token = "$TOKEN"
EOF
chmod 600 "$G/garage.toml"
garage -c "$G/garage.toml" server >"$G/server.log" 2>&1 &
GARAGE=$!
VMTOUCH=
trap 'kill $GARAGE 2>/dev/null || true; [ -n "$VMTOUCH" ] && kill $VMTOUCH 2>/dev/null; rm -rf "$BENCH_WORK/trash"' EXIT
gcli() { garage -c "$G/garage.toml" "$@"; }
for _ in $(seq 100); do gcli status >/dev/null 2>&1 && break; sleep 0.2; done
NODE=$(gcli node id -q | cut -d@ -f1)
gcli layout assign -z dc1 -c 50G "$NODE" >/dev/null
gcli layout apply --version 1 >/dev/null
gcli bucket create bench >/dev/null
KEYS=$(gcli key create bench-key)
export AWS_ACCESS_KEY_ID=$(echo "$KEYS" | awk '/Key ID:/ {print $3}')
export AWS_SECRET_ACCESS_KEY=$(echo "$KEYS" | awk '/Secret key:/ {print $3}')
export AWS_DEFAULT_REGION=garage
gcli bucket allow --read --write --owner bench --key bench-key >/dev/null
ENDPOINT=http://127.0.0.1:$S3
log "garage on $ENDPOINT"

RESULTS=$BENCH_WORK/s3-results.tsv
printf 'tool\trep\tstep\tseconds\tuser\tsys\tmax_rss_kb\tput\tget\thead\tlist\tdelete\tother\n' >"$RESULTS"

# requests so far, by kind: put get head list delete other
requests() {
  curl -s -H "Authorization: Bearer $TOKEN" "http://127.0.0.1:$ADMIN/metrics" |
    awk '/^api_s3_request_counter\{/ {
      match($0, /api_endpoint="[^"]*"/); ep = substr($0, RSTART + 14, RLENGTH - 15); n = $NF
      if (ep == "PutObject" || ep == "UploadPart" || ep == "CreateMultipartUpload" || ep == "CompleteMultipartUpload") put += n
      else if (ep == "GetObject") get += n
      else if (ep == "HeadObject" || ep == "HeadBucket") head += n
      else if (ep ~ /^ListObjects/) list += n
      else if (ep ~ /^DeleteObject/) del += n
      else other += n
    } END { printf "%d %d %d %d %d %d\n", put, get, head, list, del, other }'
}

vmtouch -qt "$SRC"
vmtouch -ql "$SRC" &
VMTOUCH=$!
sleep 2

rustic_profile() { # $1 prefix -> a rustic config dir
  local d=$BENCH_WORK/rustic-$1
  mkdir -p "$d/rustic"
  cat >"$d/rustic/bench.toml" <<EOF
[repository]
repository = "opendal:s3"
password = "$PASSWORD"
cache-dir = "$BENCH_WORK/rustic-cache-$1"

[repository.options]
bucket = "bench"
root = "/$1"
endpoint = "$ENDPOINT"
region = "garage"
EOF
  echo "$d"
}

# run TOOL PREFIX ARGS...: the tool on the repository under PREFIX
run() {
  local tool=$1 prefix=$2; shift 2
  case $tool in
    holdfast) HOLDFAST_REPO="s3:$ENDPOINT/bench/$prefix" HOLDFAST_PASSWORD=$PASSWORD "$HF" "$@" ;;
    restic) RESTIC_REPOSITORY="s3:$ENDPOINT/bench/$prefix" RESTIC_PASSWORD=$PASSWORD \
        RESTIC_CACHE_DIR=$BENCH_WORK/restic-cache-$prefix restic "$@" ;;
    rustic) XDG_CONFIG_HOME=$(rustic_profile "$prefix") rustic -P bench "$@" ;;
  esac
}

# timed TOOL REP STEP PREFIX ARGS...
timed() {
  local tool=$1 rep=$2 step=$3 prefix=$4; shift 4
  local before after t
  before=$(requests)
  t=$BENCH_WORK/time.$$
  /usr/bin/time -f '%e %U %S %M' -o "$t" bash -c "$(declare -f run rustic_profile); \
    HF=$HF ENDPOINT=$ENDPOINT PASSWORD=$PASSWORD BENCH_WORK=$BENCH_WORK run $tool $prefix $*" \
    >/dev/null 2>"$BENCH_WORK/last.err" || { cat "$BENCH_WORK/last.err" >&2; exit 1; }
  sleep 1 # Garage's counters are updated as requests end
  after=$(requests)
  read -r e u s m <"$t"
  read -r -a b <<<"$before"
  read -r -a a <<<"$after"
  printf '%s\t%s\t%s\t%s\t%s\t%s\t%s' "$tool" "$rep" "$step" "$e" "$u" "$s" "$m" >>"$RESULTS"
  for i in 0 1 2 3 4 5; do printf '\t%s' $((a[i] - b[i])) >>"$RESULTS"; done
  printf '\n' >>"$RESULTS"
  log "$tool rep $rep $step: ${e}s, RSS ${m} KB, requests put/get/head/list/delete $((a[0]-b[0]))/$((a[1]-b[1]))/$((a[2]-b[2]))/$((a[3]-b[3]))/$((a[4]-b[4]))"
}

for rep in $(seq "$REPS"); do
  for tool in $TOOLS; do
    prefix=$tool-$rep
    run "$tool" "$prefix" init >/dev/null 2>&1
    timed "$tool" "$rep" first "$prefix" backup "$SRC"
    timed "$tool" "$rep" unchanged "$prefix" backup "$SRC"
    target=$BENCH_WORK/restore-$tool-$rep
    case $tool in
      rustic) timed "$tool" "$rep" restore "$prefix" restore latest "$target" ;;
      *) timed "$tool" "$rep" restore "$prefix" restore latest --target "$target" ;;
    esac
    if [ "$rep" = 1 ]; then
      diff -r "$SRC" "$target$SRC" >/dev/null || { log "$tool: the restored tree differs"; exit 1; }
    fi
    mv "$target" "$BENCH_WORK/trash/"
  done
done

python3 - "$RESULTS" "$BYTES" <<'EOF'
import csv, statistics, sys
rows = list(csv.DictReader(open(sys.argv[1]), delimiter="\t"))
total = int(sys.argv[2])
tools = []
for r in rows:
    if r["tool"] not in tools:
        tools.append(r["tool"])
def med(tool, step, key):
    v = [float(r[key]) for r in rows if r["tool"] == tool and r["step"] == step]
    return statistics.median(v) if v else float("nan")
print("| step | " + " | ".join(f"{t} s | {t} RSS MB" for t in tools) + " | holdfast vs " + " / ".join(t for t in tools if t != "holdfast") + " |")
print("|---|" + "---:|---:|" * len(tools) + "---:|")
for step in ["first", "unchanged", "restore"]:
    cells = []
    for t in tools:
        cells += [f"{med(t, step, 'seconds'):.2f}", f"{med(t, step, 'max_rss_kb') / 1024:.0f}"]
    ratio = " / ".join(f"{med(t, step, 'seconds') / med('holdfast', step, 'seconds'):.2f}×" for t in tools if t != "holdfast")
    print(f"| {step} | " + " | ".join(cells) + f" | {ratio} |")
print()
print("First backup throughput: " + ", ".join(f"{t} {total / med(t, 'first', 'seconds') / 1e6:.0f} MB/s" for t in tools) + ".")
print()
print("| requests (median) | " + " | ".join(tools) + " |")
print("|---|" + "---:|" * len(tools))
for step in ["first", "unchanged", "restore"]:
    cells = []
    for t in tools:
        k = ["put", "get", "head", "list", "delete"]
        cells.append(" / ".join(f"{med(t, step, x):.0f}" for x in k))
    print(f"| {step} (put / get / head / list / delete) | " + " | ".join(cells) + " |")
EOF
