#!/usr/bin/env bash
# Database backups: holdfast against the pipelines in use today, same database, same run.
#
#   scripts/bench-db.sh
#
# Starts a PRIVATE PostgreSQL (initdb in a temporary directory, a free port, as the postgres user when
# run as root) and a private MariaDB (mariadb-install-db, likewise), never the system services, and
# stops both on exit. Then:
#
# PostgreSQL (database `bench`, pgbench -i -s $PG_SCALE):
#   pg-dump-null    pg_dump > /dev/null                         the dump tool alone: the floor
#   pg-dump-gzip    pg_dump | gzip > file                       today's pipeline (time, size)
#   first           holdfast backup postgres://… into a fresh repository
#                   pg_dump | restic backup --stdin into a fresh restic repository
#                   (each of these $REPS times, interleaved; the last repetition's repositories go on)
#   day             after `pgbench -t $DAY_TX -c 2` (a day of TPC-B-like transactions): the second
#                   backup into the same repositories: bytes ADDED (repository size before/after)
#   update1pct      after UPDATE pgbench_accounts SET abalance = abalance + 1 WHERE aid % 100 = 0:
#                   the third backup: bytes added
# MariaDB (database `bench`, one sysbench-like table sbtest1 of $MY_ROWS rows generated with SQL):
#   my-dump-null, my-dump-gzip, first (holdfast backup mysql://…, mariadb-dump | restic), then
#   day             the pgbench day translated to this table: $MY_DAY_TX TPC-B-like transactions (by
#                   default the pgbench day's share of rows, 0.86 %), each adding a random delta to
#                   the k of a uniformly random row and appending a row to sbtest_history: bytes added
#   update1pct (UPDATE sbtest1 SET k = k + 1 WHERE id % 100 = 0): bytes added.
# Then, for each database, the last holdfast snapshot (update1pct) is restored and drilled, $REPS times
# interleaved: restore = `holdfast restore latest --to …/restored` (created, loaded, row counts
# verified; dropped untimed afterwards), drill = `holdfast drill latest --server …` (a scratch database
# created, loaded, verified against the manifest, dropped). Target: a drill takes at most 1.2× the
# plain restore.
#
# Every pipeline dumps with the options holdfast itself passes to the dump tool (PG_DUMP_ARGS,
# MY_DUMP_ARGS below), so the floor and the restic comparison see the same bytes holdfast sees.
# $ALT_CHUNKS (default "1K:4K:32K"; empty for none) adds holdfast series with `--chunk-size` on the
# same dumps. Seed sweep (SEEDS, default 5; 0 skips): the last pair of dumps, saved as files, backed up
# with --stdin into SEEDS fresh repositories per chunk size (untimed): the chunker's gear table is keyed
# per repository, and on low-entropy dumps chunk sizes and dedup depend on it.
# Each timed step runs after `sync`, with the database files read into the page cache (vmtouch; this
# VM drops idle file pages), under /usr/bin/time (wall, user+sys of the whole pipeline, max RSS of
# its largest process, and the CPU time of the whole machine, which includes the database server's
# share); the load average and the share of CPU busy just before are recorded, since
# other builds may run on this machine. Timings: the minimum over $REPS repetitions.
# Output: a Markdown summary on stdout and in $BENCH_WORK/results.md, raw rows in
# $BENCH_WORK/results.tsv and seeds.tsv, the machine in $BENCH_WORK/machine.txt. The defaults take about
# 14 minutes on 2 cores and need ~6 GB in $BENCH_WORK.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$(pwd)

PG_SCALE=${PG_SCALE:-100}          # pgbench scale: 100 → 10 M account rows, plain dump ≈ 1 GB
DAY_TX=${DAY_TX:-43200}            # pgbench transactions per client (×2 clients: one per second for a day)
MY_ROWS=${MY_ROWS:-2000000}        # sysbench-like rows: 2 M → dump ≈ 400 MB
# MariaDB's day: the same share of rows as the pgbench day (2 × DAY_TX of PG_SCALE × 100,000 accounts)
MY_DAY_TX=${MY_DAY_TX:-$((MY_ROWS * DAY_TX * 2 / (PG_SCALE * 100000)))}
REPS=${REPS:-3}
PARTS=${PARTS:-"pg my"}
ALT_CHUNKS=${ALT_CHUNKS-1K:4K:32K} # extra holdfast series with --chunk-size (empty: none)
SEEDS=${SEEDS:-5}                  # fresh repositories (chunker seeds) for the seed sweep; 0 skips it
MAX_BUSY=${MAX_BUSY:-25}           # wait (up to QUIET_MAX_WAIT s) until less than this % of CPU is busy
QUIET_MAX_WAIT=${QUIET_MAX_WAIT:-300}
BENCH_WORK=${BENCH_WORK:-/tmp/holdfast-bench-db}
export HOLDFAST_PASSWORD=bench RESTIC_PASSWORD=bench RESTIC_CACHE_DIR=$BENCH_WORK/restic-cache
export LC_ALL=C

# PostgreSQL: what holdfast's postgres source passes to pg_dump (crates/holdfast-sources/src/postgres/dialect.rs).
PG_DUMP_ARGS="--format=plain --no-owner --no-privileges --no-password"
# MariaDB: what holdfast's mysql source passes to mariadb-dump (crates/holdfast-sources/src/mysql/dialect.rs).
MY_DUMP_ARGS="--single-transaction --routines --triggers --events --hex-blob --default-character-set=utf8mb4 \
--skip-dump-date --order-by-primary --no-tablespaces --max-allowed-packet=1G"

log() { printf '[%s] %s\n' "$(date +%H:%M:%S)" "$*" >&2; }

# --- tools: only what scripts/test.sh installs (plus vmtouch, as scripts/bench.sh) ---
need=()
command -v restic >/dev/null 2>&1 || need+=(restic)
[ -x /usr/bin/time ] || need+=(time)
command -v setpriv >/dev/null 2>&1 || need+=(util-linux)
command -v vmtouch >/dev/null 2>&1 || need+=(vmtouch)
ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 || need+=(postgresql)
ls /usr/lib/postgresql/*/bin/pgbench >/dev/null 2>&1 || need+=(postgresql-contrib)
command -v mariadb-install-db >/dev/null 2>&1 || need+=(mariadb-server)
command -v mariadb-dump >/dev/null 2>&1 || need+=(mariadb-client)
if ((${#need[@]})); then
  sudo=""
  [ "$(id -u)" = 0 ] || sudo="sudo"
  log "installing: ${need[*]}"
  $sudo apt-get update -qq
  policy=""   # installing must not start the system database services
  if [ ! -e /usr/sbin/policy-rc.d ]; then
    printf '#!/bin/sh\nexit 101\n' | $sudo tee /usr/sbin/policy-rc.d >/dev/null
    $sudo chmod +x /usr/sbin/policy-rc.d
    policy=1
  fi
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq "${need[@]}" >/dev/null
  [ -z "$policy" ] || $sudo rm -f /usr/sbin/policy-rc.d
fi
PGBIN=$(ls -d /usr/lib/postgresql/*/bin | sort -V | tail -1)

# HOLDFAST_BENCH_BIN: another build to measure (a before/after comparison runs the script twice).
if [ -n "${HOLDFAST_BENCH_BIN:-}" ]; then
  HF=$HOLDFAST_BENCH_BIN
else
  log "building holdfast (release)"
  cargo build --release --quiet
  HF=$ROOT/target/release/holdfast
fi

# --- work directory and results ---
if [ -d "$BENCH_WORK" ]; then
  log "deleting the previous run's work directory"
  rm -rf "$BENCH_WORK"
fi
mkdir -p "$BENCH_WORK"
chmod 755 "$BENCH_WORK"
W=$BENCH_WORK
RESULTS=$W/results.tsv
printf 'part\tseries\tstep\trep\tseconds\tuser\tsys\tmax_rss_kb\tbytes\tadded_bytes\tdata_added\tmachine_cpu\tload1\tbusy_pct\n' >"$RESULTS"
printf 'part\tseed\tchunks\tdump_bytes\tblobs\trepo_bytes\tadded_bytes\tdata_added\n' >"$W/seeds.tsv"

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
cpu_ticks() { awk '/^cpu / {print $2+$3+$4+$7+$8+$9, $5+$6; exit}' /proc/stat; }
busy_pct() { # percent of all cores busy over one second
  local b0 i0 b1 i1
  read -r b0 i0 < <(cpu_ticks); sleep 1; read -r b1 i1 < <(cpu_ticks)
  awk -v b=$((b1 - b0)) -v i=$((i1 - i0)) 'BEGIN {printf "%.0f", (b + i) ? 100 * b / (b + i) : 0}'
}
BUSY=0
wait_quiet() { # the database servers' own background work (autovacuum, purge) counts too
  local t0=$SECONDS
  while :; do
    BUSY=$(busy_pct)
    [ "$BUSY" -lt "$MAX_BUSY" ] && return 0
    if [ $((SECONDS - t0)) -gt "$QUIET_MAX_WAIT" ]; then
      log "machine still ${BUSY}% busy after ${QUIET_MAX_WAIT}s; timing anyway (busy_pct column)"
      return 0
    fi
    sleep 2
  done
}
# bytes in the regular files under a path (not du: restic's 256 data/ directories alone are 1 MB)
size_of() { find "$1" -type f -printf '%s\n' | awk '{s += $1} END {printf "%.0f\n", s}'; }

# --- machine ---
{
  echo "date: $(date -Is)"
  echo "nproc: $(nproc)"
  echo "cpu: $(awk -F': ' '/model name/ {print $2; exit}' /proc/cpuinfo); flags: $(grep -o -w -E 'sha_ni|aes|vaes|avx2|avx512f' /proc/cpuinfo | sort -u | tr '\n' ' ')"
  echo "ram: $(awk '/MemTotal/ {printf "%.1f GiB", $2 / 1048576}' /proc/meminfo)"
  echo "kernel: $(uname -sr)"
  echo "os: $(. /etc/os-release && echo "$PRETTY_NAME")"
  echo "disk: $(df -h "$W" | awk 'NR == 2 {print $1, $2}') $(findmnt -no FSTYPE,OPTIONS -T "$W")"
  echo "holdfast: $(git rev-parse --short HEAD) release build, $(rustc --version)"
  echo "restic: $(restic version)"
  echo "postgresql: $("$PGBIN/postgres" --version); $("$PGBIN/pg_dump" --version); $("$PGBIN/pgbench" --version)"
  echo "mariadb: $(mariadbd --version 2>/dev/null | head -1); $(mariadb-dump --version)"
  echo "gzip: $(gzip --version | head -1)"
  echo "settings: PG_SCALE=$PG_SCALE DAY_TX=$DAY_TX MY_ROWS=$MY_ROWS MY_DAY_TX=$MY_DAY_TX REPS=$REPS ALT_CHUNKS='$ALT_CHUNKS' SEEDS=$SEEDS"
  echo "load average at start: $(cut -d' ' -f1-3 /proc/loadavg)"
} | tee "$W/machine.txt" >&2

# --- private servers ---
PG_PID="" MY_PID=""
alive() { local st; st=$(awk '{print $3}' "/proc/$1/stat" 2>/dev/null) && [ -n "$st" ] && [ "$st" != Z ]; }
cleanup() {
  set +e
  if [ -n "$PG_PID" ]; then kill -INT "$PG_PID" 2>/dev/null; fi   # fast shutdown
  if [ -n "$MY_PID" ]; then kill "$MY_PID" 2>/dev/null; fi
  for p in $PG_PID $MY_PID; do
    for _ in $(seq 1 300); do alive "$p" || break; sleep 0.1; done
    alive "$p" && kill -9 "$p" 2>/dev/null
    wait "$p" 2>/dev/null
  done
  rm -rf "$W/pg" "$W/my"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# run as postgres when we are root (initdb and postgres refuse to run as root); a prefix, not a
# function, so that `$!` of a backgrounded server is the server's own pid (setpriv execs it)
AS_DB_USER=()
[ "$(id -u)" = 0 ] && AS_DB_USER=(setpriv --reuid=postgres --regid=postgres --clear-groups)

PG_USER=bench PG_DB=bench PG_PW=pg-bench-$RANDOM$RANDOM
start_pg() {
  mkdir -p "$W/pg"
  chmod 777 "$W/pg"
  printf '%s' "$PG_PW" >"$W/pg/pw"
  chmod 644 "$W/pg/pw"
  "${AS_DB_USER[@]}" "$PGBIN/initdb" -D "$W/pg/data" -U "$PG_USER" --auth=scram-sha-256 -E UTF8 --locale=C.UTF-8 \
    --pwfile="$W/pg/pw" >"$W/pg-initdb.log" 2>&1
  PG_PORT=$(free_port)
  # fsync off: only to load the data set quickly; a dump only reads.
  "${AS_DB_USER[@]}" "$PGBIN/postgres" -D "$W/pg/data" -p "$PG_PORT" -k "$W/pg" -c listen_addresses=127.0.0.1 \
    -c fsync=off -c full_page_writes=off -c shared_buffers=256MB -c max_wal_size=4GB \
    >"$W/pg-server.log" 2>&1 &
  PG_PID=$!
  for _ in $(seq 1 600); do
    "$PGBIN/pg_isready" -q -h 127.0.0.1 -p "$PG_PORT" && break
    kill -0 "$PG_PID" 2>/dev/null || { log "postgres died (see $W/pg-server.log)"; exit 1; }
    sleep 0.1
  done
  export PGHOST=127.0.0.1 PGPORT=$PG_PORT PGUSER=$PG_USER PGPASSWORD=$PG_PW
  log "PostgreSQL $PGBIN on port $PG_PORT (pid $PG_PID)"
}
psql_() { "$PGBIN/psql" -X -q -At -v ON_ERROR_STOP=1 "$@"; }

MY_USER=bench MY_DB=bench MY_PW=my-bench-$RANDOM$RANDOM
start_my() {
  local me
  me=$(id -un)
  mkdir -p "$W/my"
  mariadb-install-db --no-defaults --datadir="$W/my/data" --user="$me" \
    --auth-root-authentication-method=normal --skip-test-db >"$W/my-install.log" 2>&1
  MY_PORT=$(free_port)
  mariadbd --no-defaults --datadir="$W/my/data" --socket="$W/my/sock" --port="$MY_PORT" \
    --pid-file="$W/my/pid" --log-error="$W/my-server.log" --bind-address=127.0.0.1 --skip-name-resolve \
    --innodb-buffer-pool-size=1G --innodb-log-file-size=512M --innodb-flush-log-at-trx-commit=0 \
    --character-set-server=utf8mb4 --collation-server=utf8mb4_general_ci --user="$me" >/dev/null 2>&1 &
  MY_PID=$!
  for _ in $(seq 1 600); do
    mariadb --no-defaults --socket="$W/my/sock" -uroot -e 'select 1' >/dev/null 2>&1 && break
    kill -0 "$MY_PID" 2>/dev/null || { log "mariadbd died (see $W/my-server.log)"; exit 1; }
    sleep 0.1
  done
  mariadb --no-defaults --socket="$W/my/sock" -uroot -e \
    "CREATE USER '$MY_USER'@'%' IDENTIFIED BY '$MY_PW'; GRANT ALL ON *.* TO '$MY_USER'@'%'; CREATE DATABASE $MY_DB;"
  export MYSQL_PWD=$MY_PW
  log "MariaDB on port $MY_PORT (pid $MY_PID)"
}
mysql_() { mariadb --no-defaults --protocol=tcp -h 127.0.0.1 -P "$MY_PORT" -u "$MY_USER" -N -B "$@"; }

# --- measuring ---
# timed PART SERIES STEP REP WARM BYTES_PATH CMD: CMD is a bash string (pipefail). BYTES_PATH is a file
# or repository whose size is recorded after the step (and whose growth is the added bytes).
timed() {
  local part=$1 series=$2 step=$3 rep=$4 warm=$5 path=$6 cmd=$7
  local tf=$W/time.out before=0 after=0 load
  [ -n "$path" ] && [ -e "$path" ] && before=$(size_of "$path")
  sync
  wait_quiet
  [ -z "$warm" ] || vmtouch -qt "$warm"
  load=$(cut -d' ' -f1 /proc/loadavg)
  printf '\n### %s %s %s rep %s: %s\n' "$part" "$series" "$step" "$rep" "$cmd" >>"$W/commands.log"
  local out=$W/step.out rc=0
  local b0 i0 b1 i1
  read -r b0 i0 < <(cpu_ticks)
  /usr/bin/time -o "$tf" -f '%e\t%U\t%S\t%M' bash -o pipefail -c "$cmd" >"$out" 2>&1 || rc=$?
  read -r b1 i1 < <(cpu_ticks)
  # CPU time of the whole machine during the step: the pipeline plus the database server's work
  local mcpu
  mcpu=$(awk -v d=$((b1 - b0)) -v h="$(getconf CLK_TCK)" 'BEGIN {printf "%.2f", d / h}')
  grep -v '"message_type":"status"' "$out" >>"$W/commands.log" || true
  if [ "$rc" != 0 ]; then
    log "FAILED: $part $series $step (see $W/commands.log)"; tail -5 "$out" >&2; exit 1
  fi
  [ -n "$path" ] && after=$(size_of "$path")
  # the uncompressed bytes of new blobs, from the tool's --json summary (holdfast and restic)
  local added
  added=$(grep '"message_type":"summary"' "$out" | grep -o '"data_added":[0-9]*' | tail -1 | cut -d: -f2 || true)
  printf '%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n' "$part" "$series" "$step" "$rep" "$(cat "$tf")" "$after" \
    "$((after - before))" "${added:-}" "$mcpu" "$load" "$BUSY" >>"$RESULTS"
  log "$part $series $step rep $rep: $(cut -f1 "$tf")s, machine CPU ${mcpu}s, rss $(cut -f4 "$tf") KB, bytes $after (+$((after - before))), load $load, busy $BUSY%"
}

# series: holdfast (default chunk sizes), holdfast-<chunks> for each ALT_CHUNKS, restic
SERIES="holdfast"
for c in $ALT_CHUNKS; do SERIES="$SERIES holdfast-$c"; done
SERIES="$SERIES restic"
init_repo() { # SERIES REPO
  case $1 in
    restic) restic -r "$2" init --repository-version 2 >/dev/null 2>&1 ;;
    *) "$HF" -r "$2" init >/dev/null ;;
  esac
}
# backup_cmd SERIES REPO DUMP_CMD SOURCE_URL
backup_cmd() {
  local series=$1 repo=$2 dump=$3 url=$4
  case $series in
    restic) echo "$dump | restic -r $repo --json backup --host bench --stdin --stdin-filename $PG_DB.sql" ;;
    holdfast) echo "$HF -r $repo --json backup --host bench $url" ;;
    holdfast-*) echo "$HF -r $repo --json backup --host bench --chunk-size ${series#holdfast-} $url" ;;
  esac
}

# nightly PART WARM DUMP URL STEP: one backup into each series' running repository
nightly() {
  local part=$1 warm=$2 dump=$3 url=$4 step=$5 s
  for s in $SERIES; do
    timed "$part" "$s" "$step" 1 "$warm" "$W/repo-$part-$s" "$(backup_cmd "$s" "$W/repo-$part-$s" "$dump" "$url")"
  done
}

# firsts PART WARM DUMP URL GZ: dump-null, dump-gzip and a first backup per series, REPS times
# interleaved; the last repetition's repositories stay as repo-PART-SERIES.
firsts() {
  local part=$1 warm=$2 dump=$3 url=$4 rep s repo
  for rep in $(seq 1 "$REPS"); do
    timed "$part" "$part-dump" null "$rep" "$warm" "" "$dump > /dev/null"
    rm -f "$W/$part.sql.gz"
    timed "$part" "$part-dump" gzip "$rep" "$warm" "$W/$part.sql.gz" "$dump | gzip > $W/$part.sql.gz"
    for s in $SERIES; do
      repo=$W/repo-$part-$s
      rm -rf "$repo" "$RESTIC_CACHE_DIR"
      init_repo "$s" "$repo"
      timed "$part" "$s" first "$rep" "$warm" "$repo" "$(backup_cmd "$s" "$repo" "$dump" "$url")"
    done
  done
}

# seed_sweep PART: the last pair of dumps (A → B, saved as files) backed up with --stdin into SEEDS fresh
# repositories per chunk size: FastCDC's gear table is keyed by a per-repository seed, and on
# low-entropy dumps the chunk sizes (so the dedup) depend on it. Untimed.
seed_sweep() {
  local part=$1 i cs repo out
  if [ "$SEEDS" = 0 ]; then rm -f "$W/$part-A.sql" "$W/$part-B.sql"; return 0; fi
  log "$part: seed sweep ($SEEDS repositories per chunk size)"
  for i in $(seq 1 "$SEEDS"); do
    for cs in 2K:8K:64K $ALT_CHUNKS; do
      repo=$W/seed-repo
      rm -rf "$repo"
      "$HF" -r "$repo" init >/dev/null
      out=$("$HF" -r "$repo" --json backup --host bench --stdin --rows --stdin-filename bench.sql --chunk-size "$cs" <"$W/$part-A.sql" \
        | grep '"message_type":"summary"')
      local blobs_a repo_a added_b data_b
      blobs_a=$(echo "$out" | grep -o '"data_blobs":[0-9]*' | cut -d: -f2)
      repo_a=$(size_of "$repo")
      out=$("$HF" -r "$repo" --json backup --host bench --stdin --rows --stdin-filename bench.sql --chunk-size "$cs" <"$W/$part-B.sql" \
        | grep '"message_type":"summary"')
      data_b=$(echo "$out" | grep -o '"data_added":[0-9]*' | cut -d: -f2)
      added_b=$(($(size_of "$repo") - repo_a))
      printf '%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n' "$part" "$i" "$cs" "$(stat -c %s "$W/$part-A.sql")" "$blobs_a" \
        "$repo_a" "$added_b" "$data_b" >>"$W/seeds.tsv"
      log "$part seed $i $cs: $blobs_a chunks, repository $repo_a, B added $added_b ($data_b uncompressed)"
    done
  done
  rm -rf "$W/seed-repo" "$W/$part-A.sql" "$W/$part-B.sql"
}

# restores PART REPO URL_BASE PWFILE MAINT_DB: the repository's latest snapshot restored into a new
# database and drilled on the same server (connecting to MAINT_DB), REPS times interleaved (the
# restored database dropped untimed).
restores() {
  local part=$1 repo=$2 base=$3 pw=$4 maint=$5 rep
  for rep in $(seq 1 "$REPS"); do
    timed "$part" holdfast restore "$rep" "" "" \
      "$HF -r $repo --json restore latest --to ${base}restored_$rep --source-password-file $pw"
    case $part in
      pg) psql_ -d postgres -c "DROP DATABASE restored_$rep" ;;
      my) mysql_ -e "DROP DATABASE restored_$rep" ;;
    esac
    timed "$part" holdfast drill "$rep" "" "" \
      "$HF -r $repo --json drill latest --server $base$maint --server-password-file $pw"
  done
}

run_pg() {
  start_pg
  psql_ -d postgres -c "CREATE DATABASE $PG_DB"
  log "pgbench -i -s $PG_SCALE"
  local t0=$SECONDS
  "$PGBIN/pgbench" -i -s "$PG_SCALE" -q "$PG_DB" >"$W/pgbench-init.log" 2>&1
  psql_ -d "$PG_DB" -c "VACUUM ANALYZE"
  log "pgbench -i took $((SECONDS - t0)) s"
  local dump="$PGBIN/pg_dump $PG_DUMP_ARGS -d $PG_DB" url="postgres://$PG_USER@127.0.0.1:$PG_PORT/$PG_DB"
  local warm=$W/pg/data
  {
    echo "pg.database_bytes: $(psql_ -d "$PG_DB" -c "select pg_database_size('$PG_DB')")"
    echo "pg.accounts_rows: $(psql_ -d "$PG_DB" -c 'select count(*) from pgbench_accounts')"
  } | tee -a "$W/machine.txt" >&2
  firsts pg "$warm" "$dump" "$url"
  # a day of writes
  log "pgbench -t $DAY_TX -c 2 (a day of writes)"
  t0=$SECONDS
  "$PGBIN/pgbench" -t "$DAY_TX" -c 2 "$PG_DB" >"$W/pgbench-day.log" 2>&1
  {
    echo "pg.day: pgbench -t $DAY_TX -c 2 took $((SECONDS - t0)) s; $(grep -E '^tps' "$W/pgbench-day.log" | head -1)"
    echo "pg.day: distinct accounts touched: $(psql_ -d "$PG_DB" -c 'select count(distinct aid) from pgbench_history'), history rows: $(psql_ -d "$PG_DB" -c 'select count(*) from pgbench_history')"
  } | tee -a "$W/machine.txt" >&2
  nightly pg "$warm" "$dump" "$url" day
  [ "$SEEDS" = 0 ] || $dump >"$W/pg-A.sql"
  # a 1 % uniform update
  log "UPDATE 1 % of pgbench_accounts"
  psql_ -d "$PG_DB" -c "UPDATE pgbench_accounts SET abalance = abalance + 1 WHERE aid % 100 = 0"
  nightly pg "$warm" "$dump" "$url" update1pct
  $dump >"$W/pg-B.sql"
  echo "pg.dump_bytes (last): $(stat -c %s "$W/pg-B.sql")" | tee -a "$W/machine.txt" >&2
  seed_sweep pg
  restores pg "$W/repo-pg-holdfast" "postgres://$PG_USER@127.0.0.1:$PG_PORT/" "$W/pg/pw" postgres
}

run_my() {
  start_my
  log "MariaDB: sbtest1 with $MY_ROWS rows"
  local t0=$SECONDS
  # sysbench's oltp table: c is ten groups of 11 random digits, pad five (sysbench oltp_common.lua)
  local g="LPAD(FLOOR(RAND() * 100000000000), 11, '0')"
  local c="CONCAT_WS('-', $g, $g, $g, $g, $g, $g, $g, $g, $g, $g)" pad="CONCAT_WS('-', $g, $g, $g, $g, $g)"
  mysql_ "$MY_DB" -e "CREATE TABLE sbtest1 (id INT NOT NULL AUTO_INCREMENT, k INT NOT NULL DEFAULT 0,
    c CHAR(120) NOT NULL DEFAULT '', pad CHAR(60) NOT NULL DEFAULT '', PRIMARY KEY (id), KEY k_1 (k)) ENGINE=InnoDB"
  local done=0 n
  while [ "$done" -lt "$MY_ROWS" ]; do
    n=$((MY_ROWS - done)); [ "$n" -gt 500000 ] && n=500000
    mysql_ "$MY_DB" -e "INSERT INTO sbtest1 (k, c, pad) SELECT FLOOR(1 + RAND() * $MY_ROWS), $c, $pad FROM seq_1_to_$n"
    done=$((done + n))
  done
  # the day's transactions append here (pgbench_history's shape)
  mysql_ "$MY_DB" -e "CREATE TABLE sbtest_history (id BIGINT NOT NULL AUTO_INCREMENT PRIMARY KEY,
    sbtest_id INT NOT NULL, delta INT NOT NULL, mtime DATETIME(6) NOT NULL, filler CHAR(22)) ENGINE=InnoDB"
  mysql_ "$MY_DB" -e "ANALYZE TABLE sbtest1" >/dev/null
  log "table generated in $((SECONDS - t0)) s"
  echo "my.rows: $(mysql_ "$MY_DB" -e 'select count(*) from sbtest1'); data+index bytes: $(mysql_ -e "select sum(data_length + index_length) from information_schema.tables where table_schema = '$MY_DB'")" \
    | tee -a "$W/machine.txt" >&2
  local dump="mariadb-dump --no-defaults --protocol=tcp -h 127.0.0.1 -P $MY_PORT -u $MY_USER $MY_DUMP_ARGS -- $MY_DB"
  local url="mysql://$MY_USER@127.0.0.1:$MY_PORT/$MY_DB" warm=$W/my/data
  firsts my "$warm" "$dump" "$url"
  # a day of writes: TPC-B's account update and history insert, on uniformly random rows
  log "MariaDB: a day of $MY_DAY_TX transactions"
  mysql_ "$MY_DB" -e "INSERT INTO sbtest_history (sbtest_id, delta, mtime)
    SELECT FLOOR(1 + RAND() * $MY_ROWS), FLOOR(RAND() * 10001) - 5000,
      TIMESTAMP '2026-01-01 00:00:00' + INTERVAL seq * 86400 DIV $MY_DAY_TX SECOND FROM seq_1_to_$MY_DAY_TX"
  mysql_ "$MY_DB" -e "UPDATE sbtest1 s JOIN (SELECT sbtest_id, SUM(delta) AS d FROM sbtest_history GROUP BY sbtest_id) h
    ON s.id = h.sbtest_id SET s.k = s.k + h.d"
  echo "my.day: $MY_DAY_TX transactions, distinct rows updated: $(mysql_ "$MY_DB" -e 'select count(distinct sbtest_id) from sbtest_history')" \
    | tee -a "$W/machine.txt" >&2
  nightly my "$warm" "$dump" "$url" day
  [ "$SEEDS" = 0 ] || $dump >"$W/my-A.sql"
  log "UPDATE 1 % of sbtest1"
  mysql_ "$MY_DB" -e "UPDATE sbtest1 SET k = k + 1 WHERE id % 100 = 0"
  nightly my "$warm" "$dump" "$url" update1pct
  $dump >"$W/my-B.sql"
  echo "my.dump_bytes (last): $(stat -c %s "$W/my-B.sql")" | tee -a "$W/machine.txt" >&2
  seed_sweep my
  printf '%s' "$MY_PW" >"$W/my-pw"
  restores my "$W/repo-my-holdfast" "mysql://$MY_USER@127.0.0.1:$MY_PORT/" "$W/my-pw" mysql
}

for part in $PARTS; do
  case $part in
    pg) run_pg ;;
    my) run_my ;;
    *) log "unknown part $part"; exit 1 ;;
  esac
done

python3 - "$RESULTS" "$W/machine.txt" "$W/seeds.tsv" <<'EOF' | tee "$W/results.md"
import csv, statistics, sys
rows = list(csv.DictReader(open(sys.argv[1]), delimiter="\t"))
seeds = list(csv.DictReader(open(sys.argv[3]), delimiter="\t"))
def pick(part, series, step):
    rs = [r for r in rows if (r["part"], r["series"], r["step"]) == (part, series, step)]
    return min(rs, key=lambda r: float(r["seconds"])) if rs else None
mb = lambda b: f"{int(b) / 1e6:.1f}"
print("```\n" + open(sys.argv[2]).read().strip() + "\n```\n")
for part, name in (("pg", "PostgreSQL"), ("my", "MariaDB")):
    if not any(r["part"] == part for r in rows):
        continue
    series = [s for s in dict.fromkeys(r["series"] for r in rows if r["part"] == part) if s != f"{part}-dump"]
    null, gz = pick(part, f"{part}-dump", "null"), pick(part, f"{part}-dump", "gzip")
    floor = float(null["seconds"])
    n = len([r for r in rows if r["part"] == part and r["step"] == "null"])
    print(f"### {name} (times: min of {n}; first = repository size, later steps = bytes the repository grew by)\n")
    print("| pipeline | step | s | CPU s | machine CPU s | RSS MB | stored / added MB | new chunks MB (uncompressed) | × dump to /dev/null |")
    print("|---|---|---:|---:|---:|---:|---:|---:|---:|")
    for label, r, size in (("dump > /dev/null", null, ""), ("dump \\| gzip", gz, mb(gz["bytes"]))):
        print(f"| {label} | first | {float(r['seconds']):.2f} | {float(r['user']) + float(r['sys']):.2f} | {float(r['machine_cpu']):.2f} | {int(r['max_rss_kb']) / 1024:.0f} | {size} | | {float(r['seconds']) / floor:.2f} |")
    for s in series:
        for step in ("first", "day", "update1pct", "restore", "drill"):
            r = pick(part, s, step)
            if r:
                size = mb(r["bytes"]) if step == "first" else mb(r["added_bytes"])
                new = mb(r["data_added"]) if r["data_added"] else ""
                print(f"| {s} | {step} | {float(r['seconds']):.2f} | {float(r['user']) + float(r['sys']):.2f} | {float(r['machine_cpu']):.2f} | {int(r['max_rss_kb']) / 1024:.0f} | {size} | {new} | {float(r['seconds']) / floor:.2f} |")
    print()
    for s in series:
        if s == "restic":
            continue
        for step in ("day", "update1pct"):
            h, rr = pick(part, s, step), pick(part, "restic", step)
            if h and rr:
                ratio = int(h["added_bytes"]) / max(1, int(rr["added_bytes"]))
                print(f"- {s} {step}: added {mb(h['added_bytes'])} MB vs restic {mb(rr['added_bytes'])} MB: ratio {ratio:.2f} (target ≤ 0.5: {'met' if ratio <= 0.5 else 'MISSED'})")
        rs, dr = pick(part, s, "restore"), pick(part, s, "drill")
        if rs and dr:
            q = float(dr["seconds"]) / float(rs["seconds"])
            print(f"- {s} drill: {float(dr['seconds']):.2f} s vs restore {float(rs['seconds']):.2f} s: {q:.2f}× (target ≤ 1.2: {'met' if q <= 1.2 else 'MISSED'})")
        f = pick(part, s, "first")
        t = float(f["seconds"]) / floor
        print(f"- {s} first backup: {float(f['seconds']):.2f} s = {t:.2f}× the dump to /dev/null (target ≤ 1.3: {'met' if t <= 1.3 else 'MISSED'})")
    print()
    ss = [r for r in seeds if r["part"] == part]
    if ss:
        last = "update1pct"
        rr = pick(part, "restic", last)
        print(f"Seed sweep ({name}, the last pair of dumps, {len({r['seed'] for r in ss})} fresh repositories per chunk size):\n")
        print("| chunk sizes | mean chunk KiB (min–max) | stored MB (min–max) | added MB (min–max) | added / restic's (median, min–max) | new chunks % of dump (min–max) |")
        print("|---|---:|---:|---:|---:|---:|")
        for cs in dict.fromkeys(r["chunks"] for r in ss):
            g = [r for r in ss if r["chunks"] == cs]
            avg = [int(r["dump_bytes"]) / int(r["blobs"]) / 1024 for r in g]
            st = [int(r["repo_bytes"]) / 1e6 for r in g]
            ad = [int(r["added_bytes"]) / 1e6 for r in g]
            ra = [int(r["added_bytes"]) / int(rr["added_bytes"]) for r in g]
            nw = [100 * int(r["data_added"]) / int(r["dump_bytes"]) for r in g]
            f = lambda v, d=1: f"{statistics.median(v):.{d}f} ({min(v):.{d}f}–{max(v):.{d}f})"
            print(f"| {cs} | {f(avg)} | {f(st)} | {f(ad)} | {f(ra, 2)} | {f(nw, 0)} |")
        print()
EOF
log "results: $W/results.md, $W/results.tsv"
