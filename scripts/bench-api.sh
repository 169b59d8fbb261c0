#!/usr/bin/env bash
# The service's API and web UI under load: the backup list endpoint, the UI's overview and backup list with
# $ROWS backup rows of $SOURCES sources in the catalog, driven by wrk on loopback (p50/p99 latency,
# requests per second); the UI pages' weight gzip-compressed; and the time from `POST …/backups` to a worker
# starting the job on an idle server.
#
#   scripts/bench-api.sh                   # SQLite catalog (the embedded default)
#   CATALOG=postgres scripts/bench-api.sh  # a private PostgreSQL catalog (initdb in a temporary directory,
#                                          # a free port; as the postgres user when run as root)
#
# Starts its own `holdfast serve` (release build) on a free port in a temporary data directory. The rows
# are inserted straight into the catalog (as a year of nightly runs of many sources would leave them),
# then the list endpoint is read newest first, 50 per page, first page and a deep page (by cursor).
# Output: a Markdown summary on stdout and in $BENCH_WORK/results.md.
set -euo pipefail
cd "$(dirname "$0")/.."
ROWS=${ROWS:-100000}
SOURCES=${SOURCES:-100}
CATALOG=${CATALOG:-sqlite}
DURATION=${DURATION:-15}
CONNECTIONS=${CONNECTIONS:-16}
BENCH_WORK=${BENCH_WORK:-/tmp/holdfast-bench-api}
command -v wrk >/dev/null || { echo "installing wrk"; DEBIAN_FRONTEND=noninteractive apt-get install -y -qq wrk >/dev/null; }
cargo build --release --quiet
HF=$(pwd)/target/release/holdfast
rm -rf "$BENCH_WORK"; mkdir -p "$BENCH_WORK"
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
PORT=$(free_port)
BASE=http://127.0.0.1:$PORT
PG_PID=
SERVE=
cleanup() { [ -n "$SERVE" ] && kill "$SERVE" 2>/dev/null; [ -n "$PG_PID" ] && kill "$PG_PID" 2>/dev/null; true; }
trap cleanup EXIT
if [ "$CATALOG" = postgres ]; then
  PGBIN=$(ls -d /usr/lib/postgresql/*/bin | sort -V | tail -1)
  AS_DB_USER=()
  [ "$(id -u)" = 0 ] && AS_DB_USER=(setpriv --reuid=postgres --regid=postgres --clear-groups)
  PG_PW=bench-$RANDOM$RANDOM
  mkdir -p "$BENCH_WORK/pg"; chmod 777 "$BENCH_WORK/pg"
  printf '%s' "$PG_PW" >"$BENCH_WORK/pg/pw"; chmod 644 "$BENCH_WORK/pg/pw"
  "${AS_DB_USER[@]}" "$PGBIN/initdb" -D "$BENCH_WORK/pg/data" -U hf --auth=scram-sha-256 -E UTF8 --locale=C.UTF-8 \
    --pwfile="$BENCH_WORK/pg/pw" >"$BENCH_WORK/pg-initdb.log" 2>&1
  PG_PORT=$(free_port)
  "${AS_DB_USER[@]}" "$PGBIN/postgres" -D "$BENCH_WORK/pg/data" -p "$PG_PORT" -k "$BENCH_WORK/pg" \
    -c listen_addresses=127.0.0.1 -c shared_buffers=256MB >"$BENCH_WORK/pg-server.log" 2>&1 &
  PG_PID=$!
  for _ in $(seq 600); do "$PGBIN/pg_isready" -q -h 127.0.0.1 -p "$PG_PORT" && break; sleep 0.1; done
  PGPASSWORD=$PG_PW "$PGBIN/createdb" -h 127.0.0.1 -p "$PG_PORT" -U hf catalog
  # the password reaches holdfast in its environment, never its argv
  export HOLDFAST_CATALOG_URL="postgres://hf:$PG_PW@127.0.0.1:$PG_PORT/catalog"
fi
# command sources run named commands from the configuration only
printf '[commands]\nhello = "echo hello"\n' >"$BENCH_WORK/config.toml"
HOLDFAST_CONFIG="$BENCH_WORK/config.toml" "$HF" serve --data-dir "$BENCH_WORK/data" --listen "127.0.0.1:$PORT" \
  >"$BENCH_WORK/serve.out" 2>"$BENCH_WORK/serve.err" &
SERVE=$!
for _ in $(seq 100); do grep -q "listening on" "$BENCH_WORK/serve.out" 2>/dev/null && break; sleep 0.1; done
TOKEN=$(grep -A1 "shown only this once" "$BENCH_WORK/serve.out" | tail -1)
api() { curl -sf -H "Authorization: Bearer $TOKEN" -H 'Content-Type: application/json' "$@"; }
TENANT=$(api -X POST "$BASE/api/v1/tenants" -d '{"name":"bench"}' | python3 -c 'import json,sys; print(json.load(sys.stdin)["id"])')
SOURCE=$(api -X POST "$BASE/api/v1/tenants/$TENANT/sources" \
  -d '{"name":"echo","kind":"command","target":"hello","schedule":null}' | python3 -c 'import json,sys; print(json.load(sys.stdin)["id"])')

# time from POST to a worker starting the job, on the idle server (20 runs, one at a time)
python3 - "$BASE" "$TOKEN" "$TENANT" "$SOURCE" >"$BENCH_WORK/start-latency.txt" <<'EOF'
import json, sys, time, urllib.request
from datetime import datetime
base, token, tenant, source = sys.argv[1:]
def call(method, path, body=None):
    req = urllib.request.Request(base + path, method=method, data=json.dumps(body).encode() if body else None,
                                 headers={"Authorization": "Bearer " + token, "Content-Type": "application/json"})
    return json.load(urllib.request.urlopen(req))
def ts(s): return datetime.fromisoformat(s.replace("Z", "+00:00")).timestamp()
lat = []
for _ in range(20):
    b = call("POST", f"/api/v1/tenants/{tenant}/backups", {"source_id": source})
    while True:
        r = call("GET", f"/api/v1/backups/{b['id']}")
        if r["status"] in ("done", "failed"): break
        time.sleep(0.02)
    lat.append(ts(r["started_at"]) - ts(r["queued_at"]))
    time.sleep(0.3)
lat.sort()
print(f"queued → started: median {lat[len(lat)//2]*1000:.0f} ms, max {lat[-1]*1000:.0f} ms over {len(lat)} runs")
EOF

# SOURCES sources in all (one tenant's overview), then ROWS finished runs over a year spread over them
# (scripts/bench-api-rows.py), loaded by COPY on PostgreSQL and by executemany on SQLite
ALL_SOURCES=$SOURCE
for i in $(seq 2 "$SOURCES"); do
  id=$(api -X POST "$BASE/api/v1/tenants/$TENANT/sources" \
    -d "{\"name\":\"source-$i\",\"kind\":\"command\",\"target\":\"hello\",\"schedule\":\"0 $((i % 24)) * * *\"}" |
    python3 -c 'import json,sys; print(json.load(sys.stdin)["id"])')
  ALL_SOURCES="$ALL_SOURCES,$id"
done
REPO=$(api "$BASE/api/v1/tenants/$TENANT" | python3 -c 'import json,sys; print(json.load(sys.stdin)["repository"])')
python3 scripts/bench-api-rows.py tsv "$TENANT" "$ALL_SOURCES" "$ROWS" "$REPO" >"$BENCH_WORK/rows.tsv"
if [ "$CATALOG" = postgres ]; then
  PGPASSWORD=$PG_PW "$PGBIN/psql" -X -q -h 127.0.0.1 -p "$PG_PORT" -U hf -d catalog \
    -c "\\copy backups FROM '$BENCH_WORK/rows.tsv'" -c "ANALYZE backups"
else
  python3 scripts/bench-api-rows.py sqlite "$BENCH_WORK/data/catalog.db" "$BENCH_WORK/rows.tsv"
fi

DEEP=$(api "$BASE/api/v1/tenants/$TENANT/backups?limit=50" >/dev/null; python3 - "$BASE" "$TOKEN" "$TENANT" <<'EOF'
import json, sys, urllib.request
base, token, tenant = sys.argv[1:]
cursor = None
for _ in range(1000):  # page 1000: 50,000 rows down
    url = f"{base}/api/v1/tenants/{tenant}/backups?limit=50" + (f"&cursor={cursor}" if cursor else "")
    page = json.load(urllib.request.urlopen(urllib.request.Request(url, headers={"Authorization": "Bearer " + token})))
    cursor = page["next_cursor"]
print(cursor)
EOF
)
# each run after 2 s of warm-up at the same concurrency (the pool opens its connections; on PostgreSQL each
# costs a SCRAM handshake), as a server that has been up for a while would be
run_wrk() {
  wrk -t2 -c"$CONNECTIONS" -d2s -H "Authorization: Bearer $TOKEN" "$1" >/dev/null
  wrk -t2 -c"$CONNECTIONS" -d"${DURATION}s" --latency -H "Authorization: Bearer $TOKEN" "$1" >"$2"
}
run_wrk "$BASE/api/v1/tenants/$TENANT/backups?limit=50" "$BENCH_WORK/wrk-first.txt"
run_wrk "$BASE/api/v1/tenants/$TENANT/backups?limit=50&cursor=$DEEP" "$BENCH_WORK/wrk-deep.txt"
run_wrk "$BASE/api/v1/tenants/$TENANT/backups?limit=50&status=failed" "$BENCH_WORK/wrk-filter.txt"
# the web UI, signed in: a session cookie instead of the token
COOKIE=$(curl -s -o /dev/null -D - -X POST "$BASE/ui/signin" --data-urlencode "token=$TOKEN" --data-urlencode "next=/" |
  sed -n 's/^[Ss]et-[Cc]ookie: \(hf_session=[^;]*\).*/\1/p')
run_wrk_ui() {
  wrk -t2 -c"$CONNECTIONS" -d2s -H "Cookie: $COOKIE" "$1" >/dev/null
  wrk -t2 -c"$CONNECTIONS" -d"${DURATION}s" --latency -H "Cookie: $COOKIE" "$1" >"$2"
}
run_wrk_ui "$BASE/?tenant=$TENANT" "$BENCH_WORK/wrk-ui-overview.txt"
# and as people use it: two at a time
CONNECTIONS_SAVED=$CONNECTIONS; CONNECTIONS=2
run_wrk_ui "$BASE/?tenant=$TENANT" "$BENCH_WORK/wrk-ui-overview-2.txt"
CONNECTIONS=$CONNECTIONS_SAVED
run_wrk_ui "$BASE/ui/backups?tenant=$TENANT" "$BENCH_WORK/wrk-ui-backups.txt"
# page weight as a browser downloads it through a compressing proxy: the page, its stylesheet and script
weight() {
  local page css js
  page=$(curl -s -H "Cookie: $COOKIE" "$1" | gzip -9 | wc -c)
  css=$(curl -s "$BASE/ui/static/app.css" | gzip -9 | wc -c)
  js=$(curl -s "$BASE/ui/static/app.js" | gzip -9 | wc -c)
  echo "$(( (page + css + js) / 1024 )) KB ($page + $css + $js bytes)"
}
W_OVERVIEW=$(weight "$BASE/?tenant=$TENANT")
W_BACKUPS=$(weight "$BASE/ui/backups?tenant=$TENANT")
summ() { awk '/^ +50%/{p50=$2} /^ +99%/{p99=$2} /Requests\/sec/{rps=$2} END{printf "| %s | %s | %s | %s |\n", name, p50, p99, rps}' name="$1" "$2"; }
{
  echo "date: $(date -Is); nproc: $(nproc); $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs); holdfast $(git rev-parse --short HEAD)"
  echo "catalog: $CATALOG; $ROWS backup rows of $SOURCES sources; wrk -t2 -c$CONNECTIONS -d${DURATION}s on loopback, same machine"
  echo
  echo "| request | p50 | p99 | requests/s |"
  echo "|---|---:|---:|---:|"
  summ "first page (limit=50)" "$BENCH_WORK/wrk-first.txt"
  summ "page 1,000 (by cursor)" "$BENCH_WORK/wrk-deep.txt"
  summ "status=failed (no match: scans the tenant's rows)" "$BENCH_WORK/wrk-filter.txt"
  summ "UI overview ($SOURCES sources, last 30 runs each)" "$BENCH_WORK/wrk-ui-overview.txt"
  summ "UI overview, 2 connections" "$BENCH_WORK/wrk-ui-overview-2.txt"
  summ "UI backup list (first page)" "$BENCH_WORK/wrk-ui-backups.txt"
  echo
  echo "page weight, gzip -9 (page + stylesheet + script): overview $W_OVERVIEW; backup list $W_BACKUPS"
  echo
  cat "$BENCH_WORK/start-latency.txt"
} | tee "$BENCH_WORK/results.md"
