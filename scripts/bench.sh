#!/usr/bin/env bash
# holdfast against restic on the same data, in the same run.
#
#   scripts/bench.sh [DIR]
#
# DIR defaults to a copy of the Rust toolchain (rustc --print sysroot) in $BENCH_DATA/d1. For each tool
# and repetition, with a fresh repository:
#   first      first backup of DIR
#   unchanged  backup again, nothing changed
#   churn      backup after 1 % of the files changed (every 100th file gets 64 bytes appended); reverted after
#   restore    restore of the first snapshot into an empty directory
#   check      check (metadata only) and check --read-data of that repository
#   prune      after MANY snapshots (default 30, each after a 1 % churn) and forgetting every other one,
#              prune (default --max-unused 5 % for both)
#   prune-Nb   memory of prune with very many blobs: a synthetic repository of N small blobs (the
#              many_blobs example; MANY_BLOBS="1000000 3000000"), half of them dropped
# Timings are medians of $REPS runs; peak RSS from /usr/bin/time. The source stays in the page cache
# (vmtouch -l) so that both tools read it at memory speed and the comparison is of the tools. Nothing
# big is deleted between timed steps: ext4 slows down creating files right after deleting tens of
# thousands (the inode allocator skips recently deleted inodes), which would penalise whichever tool
# runs next. Repositories and restored trees are moved aside and deleted at the end.
# Output: a Markdown table on stdout and $BENCH_WORK/results.tsv.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$(pwd)

REPS=${REPS:-3}
MANY=${MANY:-30}
TOOLS=${TOOLS:-"holdfast restic"}
BENCH_DATA=${BENCH_DATA:-/tmp/holdfast-bench-data}
BENCH_WORK=${BENCH_WORK:-/tmp/holdfast-bench-work}
export HOLDFAST_PASSWORD=bench RESTIC_PASSWORD=bench RESTIC_CACHE_DIR=$BENCH_WORK/restic-cache
export LC_ALL=C

need() { command -v "$1" >/dev/null 2>&1 || { sudo=""; [ "$(id -u)" = 0 ] || sudo=sudo;
  $sudo apt-get install -y -qq "${2:-$1}" >/dev/null; }; }
need restic
need vmtouch
[ -x /usr/bin/time ] || need /usr/bin/time time

log() { printf '[%s] %s\n' "$(date +%H:%M:%S)" "$*" >&2; }

# HOLDFAST_BENCH_BIN: another build to measure (a before/after comparison runs the script twice).
if [ -n "${HOLDFAST_BENCH_BIN:-}" ]; then
  HF=$HOLDFAST_BENCH_BIN
else
  log "building holdfast (release)"
  cargo build --release --quiet
  HF=$ROOT/target/release/holdfast
fi

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
  log "deleting the previous run's work directory, then waiting ${SETTLE_S}s for ext4 to settle"
  rm -rf "$BENCH_WORK"
  sync
  sleep "$SETTLE_S"
fi
mkdir -p "$BENCH_WORK/trash"
trash() { for p in "$@"; do [ -e "$p" ] && mv "$p" "$BENCH_WORK/trash/$(date +%s%N)"; done; true; }
RESULTS=$BENCH_WORK/results.tsv
printf 'tool\trep\tstep\tseconds\tuser\tsys\tmax_rss_kb\trepo_bytes\n' >"$RESULTS"

vmtouch -qt "$SRC"            # read it in now, synchronously
vmtouch -ql "$SRC" &          # and keep it resident
VMTOUCH=$!
trap 'kill $VMTOUCH 2>/dev/null || true; revert_churn; rm -rf "$BENCH_WORK/trash"' EXIT
sleep 2

CHURN_LIST=$BENCH_WORK/churn.list
CHURN_SAVE=$BENCH_WORK/churn-originals
find "$SRC" -type f | sort | awk 'NR % 100 == 0' >"$CHURN_LIST"
apply_churn() {
  mkdir -p "$CHURN_SAVE"
  local i=0
  while IFS= read -r f; do
    cp -p "$f" "$CHURN_SAVE/$i"
    head -c 64 /dev/urandom >>"$f"
    i=$((i + 1))
  done <"$CHURN_LIST"
}
revert_churn() {
  [ -d "$CHURN_SAVE" ] || return 0
  local i=0
  while IFS= read -r f; do
    [ -f "$CHURN_SAVE/$i" ] && cp -p "$CHURN_SAVE/$i" "$f"
    i=$((i + 1))
  done <"$CHURN_LIST"
  rm -rf "$CHURN_SAVE"
}

# timed TOOL REP STEP REPO CMD…: run CMD, record wall/user/sys/RSS and the repository size
timed() {
  local tool=$1 rep=$2 step=$3 repo=$4
  shift 4
  local tf=$BENCH_WORK/time.out
  sync
  /usr/bin/time -o "$tf" -f '%e\t%U\t%S\t%M' "$@" >"$BENCH_WORK/$tool-$step.log" 2>&1 ||
    { log "FAILED: $tool $step (see $BENCH_WORK/$tool-$step.log)"; tail -5 "$BENCH_WORK/$tool-$step.log" >&2; exit 1; }
  local size
  size=$(du -sb "$repo" | cut -f1)
  printf '%s\t%s\t%s\t%s\t%s\n' "$tool" "$rep" "$step" "$(cat "$tf")" "$size" >>"$RESULTS"
  log "$tool rep $rep $step: $(cut -f1 "$tf")s, rss $(cut -f4 "$tf") KB"
}

for rep in $(seq 1 "$REPS"); do
  for tool in $TOOLS; do
    repo=$BENCH_WORK/repo-$tool
    target=$BENCH_WORK/restore-$tool
    trash "$repo" "$target" "$RESTIC_CACHE_DIR"
    case $tool in
      holdfast)
        "$HF" -r "$repo" init >/dev/null
        backup=("$HF" -r "$repo" -q backup "$SRC")
        list=("$HF" -r "$repo" snapshots --json)
        restore=("$HF" -r "$repo" -q restore)
        check=("$HF" -r "$repo" -q check)
        forget=("$HF" -r "$repo" -q forget)
        prune=("$HF" -r "$repo" -q prune)
        ;;
      restic)
        restic -r "$repo" init >/dev/null
        backup=(restic -r "$repo" -q backup "$SRC")
        list=(restic -r "$repo" snapshots --json)
        restore=(restic -r "$repo" -q restore)
        check=(restic -r "$repo" -q check)
        forget=(restic -r "$repo" -q forget)
        prune=(restic -r "$repo" -q prune)
        ;;
    esac
    timed "$tool" "$rep" first "$repo" "${backup[@]}"
    timed "$tool" "$rep" unchanged "$repo" "${backup[@]}"
    apply_churn
    timed "$tool" "$rep" churn "$repo" "${backup[@]}"
    revert_churn
    id=$("${list[@]}" | python3 -c 'import json,sys; print(json.load(sys.stdin)[0]["id"])')
    # this VM drops file pages idle for ~30 s: read the repository back in
    vmtouch -qt "$repo"
    timed "$tool" "$rep" restore "$repo" "${restore[@]}" "$id" --target "$target"
    if [ "$rep" = 1 ]; then
      if diff -rq --no-dereference "$SRC" "$target$SRC" >"$BENCH_WORK/$tool-verify.log" 2>&1; then
        log "$tool restore verified (diff -r clean)"
      else
        log "WARNING: $tool restore differs from the source (see $BENCH_WORK/$tool-verify.log)"
      fi
    fi
    trash "$target"
    vmtouch -qt "$repo"
    timed "$tool" "$rep" check "$repo" "${check[@]}"
    vmtouch -qt "$repo"
    timed "$tool" "$rep" check-read-data "$repo" "${check[@]}" --read-data
    if [ "$rep" = 1 ]; then
      # prune: many snapshots, every other one forgotten
      for n in $(seq 1 "$MANY"); do
        apply_churn
        "${backup[@]}" >/dev/null
        revert_churn
      done
      ids=$("${list[@]}" | python3 -c 'import json,sys; s=json.load(sys.stdin); print(" ".join(x["id"] for x in s[::2]))')
      "${forget[@]}" $ids >/dev/null
      vmtouch -qt "$repo"
      timed "$tool" "$rep" prune "$repo" "${prune[@]}"
      "${check[@]}" >/dev/null || log "WARNING: $tool check failed after prune"
    fi
  done
done

if [ -n "${MANY_BLOBS-1000000 3000000}" ]; then
  cargo build --release --quiet -p holdfast-engine --example many_blobs
  for n in ${MANY_BLOBS-1000000 3000000}; do
    gen=$BENCH_WORK/many-$n
    ids=$(HOLDFAST_PASSWORD=$RESTIC_PASSWORD "$ROOT/target/release/examples/many_blobs" "$gen" "$n")
    first=$(echo "$ids" | head -1)
    for tool in $TOOLS; do
      repo=$BENCH_WORK/many-$n-$tool
      cp -a "$gen" "$repo"
      case $tool in
        holdfast) "$HF" -r "$repo" -q forget "$first" >/dev/null; prune=("$HF" -r "$repo" -q prune) ;;
        restic) restic -r "$repo" -q forget "$first" >/dev/null; prune=(restic -r "$repo" -q prune) ;;
      esac
      vmtouch -qt "$repo"
      timed "$tool" 1 "prune-${n}b" "$repo" "${prune[@]}"
      trash "$repo"
    done
    trash "$gen"
  done
fi

python3 - "$RESULTS" "$BYTES" "$FILES" <<'EOF'
import csv, statistics, sys
rows = list(csv.DictReader(open(sys.argv[1]), delimiter="\t"))
src_bytes, files = int(sys.argv[2]), int(sys.argv[3])
med = {}
for (tool, step) in {(r["tool"], r["step"]) for r in rows}:
    rs = [r for r in rows if r["tool"] == tool and r["step"] == step]
    med[tool, step] = {k: statistics.median(float(r[k]) for r in rs) for k in ("seconds", "user", "sys", "max_rss_kb", "repo_bytes")}
tools = sorted({t for t, _ in med}, key=lambda t: t != "holdfast")
steps = ["first", "unchanged", "churn", "restore", "check", "check-read-data", "prune"] + sorted({s for _, s in med if s.startswith("prune-")}, key=lambda s: int(s[6:-1]))
print(f"Source: {files} files, {src_bytes / 1e6:.1f} MB. Medians of {len({r['rep'] for r in rows})} runs (prune: one run).\n")
print("| step | " + " | ".join(f"{t} s | {t} CPU s | {t} RSS MB" for t in tools) + " | speed-up |")
print("|---|" + "---:|" * (3 * len(tools) + 1))
for s in steps:
    if not any((t, s) in med for t in tools):
        continue
    cells = []
    for t in tools:
        m = med.get((t, s))
        cells += [f"{m['seconds']:.2f}", f"{m['user'] + m['sys']:.2f}", f"{m['max_rss_kb'] / 1024:.0f}"] if m else ["–"] * 3
    sp = ""
    if ("holdfast", s) in med and ("restic", s) in med:
        sp = f"{med['restic', s]['seconds'] / med['holdfast', s]['seconds']:.2f}×"
    print(f"| {s} | " + " | ".join(cells) + f" | {sp} |")
print()
for t in tools:
    m = med.get((t, "first"))
    if m:
        print(f"- {t}: first backup {src_bytes / m['seconds'] / 1e6:.0f} MB/s, repository after first backup {m['repo_bytes'] / 1e6:.1f} MB")
EOF
