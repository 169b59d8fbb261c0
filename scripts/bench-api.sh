#!/usr/bin/env bash
# The service's API under load: the backup list endpoint with $ROWS backup rows in the catalog, driven by
# wrk on loopback (p50/p99 latency, requests per second), and the time from `POST …/backups` to a worker
# starting the job on an idle server.
#
#   scripts/bench-api.sh                   # SQLite catalog (the embedded default)
#
# Starts its own `holdfast serve` (release build) on a free port in a temporary data directory. The rows
# are inserted straight into the catalog (as a year of nightly runs of many sources would leave them),
# then the list endpoint is read newest first, 50 per page, first page and a deep page (by cursor).
# Output: a Markdown summary on stdout and in $BENCH_WORK/results.md.
set -euo pipefail
cd "$(dirname "$0")/.."
ROWS=${ROWS:-100000}
DURATION=${DURATION:-15}
CONNECTIONS=${CONNECTIONS:-16}
BENCH_WORK=${BENCH_WORK:-/tmp/holdfast-bench-api}
command -v wrk >/dev/null || { echo "installing wrk"; DEBIAN_FRONTEND=noninteractive apt-get install -y -qq wrk >/dev/null; }
cargo build --release --quiet
HF=$(pwd)/target/release/holdfast
rm -rf "$BENCH_WORK"; mkdir -p "$BENCH_WORK"
PORT=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
BASE=http://127.0.0.1:$PORT
"$HF" serve --data-dir "$BENCH_WORK/data" --listen "127.0.0.1:$PORT" >"$BENCH_WORK/serve.out" 2>"$BENCH_WORK/serve.err" &
SERVE=$!
trap 'kill $SERVE 2>/dev/null || true' EXIT
for _ in $(seq 100); do grep -q "listening on" "$BENCH_WORK/serve.out" 2>/dev/null && break; sleep 0.1; done
TOKEN=$(grep -A1 "shown only this once" "$BENCH_WORK/serve.out" | tail -1)
api() { curl -sf -H "Authorization: Bearer $TOKEN" -H 'Content-Type: application/json' "$@"; }
TENANT=$(api -X POST "$BASE/api/v1/tenants" -d '{"name":"bench"}' | python3 -c 'import json,sys; print(json.load(sys.stdin)["id"])')
SOURCE=$(api -X POST "$BASE/api/v1/tenants/$TENANT/sources" \
  -d '{"name":"echo","kind":"command","target":"echo hello","schedule":null}' | python3 -c 'import json,sys; print(json.load(sys.stdin)["id"])')

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

# many rows: ROWS finished runs over a year, ids time-ordered like UUIDv7
python3 - "$BENCH_WORK/data/catalog.db" "$TENANT" "$SOURCE" "$ROWS" <<'EOF'
import sqlite3, sys, os, time
db, tenant, source, rows = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4])
c = sqlite3.connect(db, timeout=30)
repo = c.execute("SELECT repository FROM tenants WHERE id = ?", (tenant,)).fetchone()[0]
start = int(time.time() * 1000) - 365 * 86400 * 1000
batch = []
for i in range(rows):
    ms = start + i * (365 * 86400 * 1000 // rows)
    uid = f"{ms:012x}"; uid = f"{uid[:8]}-{uid[8:12]}-7{os.urandom(2).hex()[1:]}-8{os.urandom(2).hex()[1:]}-{os.urandom(6).hex()}"
    t = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(ms / 1000)) + ".000Z"
    batch.append((uid, tenant, source, "echo", "scheduled", "done", None, "system", "ab" * 32, repo, 6, 100,
                  '{"files":1}', "[]", None, None, 1, 3, t, None, None, t, t, t, t, None, t))
    if len(batch) == 10000:
        c.executemany("INSERT INTO backups VALUES (" + ",".join("?" * 27) + ")", batch); batch = []
if batch: c.executemany("INSERT INTO backups VALUES (" + ",".join("?" * 27) + ")", batch)
c.commit()
print(c.execute("SELECT COUNT(*) FROM backups").fetchone()[0], "rows")
EOF

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
run_wrk() { wrk -t2 -c"$CONNECTIONS" -d"${DURATION}s" --latency -H "Authorization: Bearer $TOKEN" "$1" >"$2"; }
run_wrk "$BASE/api/v1/tenants/$TENANT/backups?limit=50" "$BENCH_WORK/wrk-first.txt"
run_wrk "$BASE/api/v1/tenants/$TENANT/backups?limit=50&cursor=$DEEP" "$BENCH_WORK/wrk-deep.txt"
run_wrk "$BASE/api/v1/tenants/$TENANT/backups?limit=50&status=failed" "$BENCH_WORK/wrk-filter.txt"
summ() { awk '/^ +50%/{p50=$2} /^ +99%/{p99=$2} /Requests\/sec/{rps=$2} END{printf "| %s | %s | %s | %s |\n", name, p50, p99, rps}' name="$1" "$2"; }
{
  echo "date: $(date -Is); nproc: $(nproc); $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs); holdfast $(git rev-parse --short HEAD)"
  echo "catalog: SQLite (WAL); $ROWS backup rows; wrk -t2 -c$CONNECTIONS -d${DURATION}s on loopback, same machine"
  echo
  echo "| request | p50 | p99 | requests/s |"
  echo "|---|---:|---:|---:|"
  summ "first page (limit=50)" "$BENCH_WORK/wrk-first.txt"
  summ "page 1,000 (by cursor)" "$BENCH_WORK/wrk-deep.txt"
  summ "status=failed (no match: scans the tenant's rows)" "$BENCH_WORK/wrk-filter.txt"
  echo
  cat "$BENCH_WORK/start-latency.txt"
} | tee "$BENCH_WORK/results.md"
