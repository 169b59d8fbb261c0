#!/usr/bin/env python3
"""Rows for scripts/bench-api.sh: N finished backup runs over a year as TSV in the catalog's column order,
ids time-ordered like UUIDv7, NULL as \\N (what PostgreSQL's COPY and the SQLite loader below read)."""
import os
import sqlite3
import sys
import time


def rows(tenant, sources, n, repo):
    """`sources`: comma-separated ids; the runs go to each in turn."""
    sources = sources.split(",")
    start = int(time.time() * 1000) - 365 * 86400 * 1000
    null = "\\N"
    for i in range(n):
        source = sources[i % len(sources)]
        ms = start + i * (365 * 86400 * 1000 // n)
        h = f"{ms:012x}"
        uid = f"{h[:8]}-{h[8:12]}-7{os.urandom(2).hex()[1:]}-8{os.urandom(2).hex()[1:]}-{os.urandom(6).hex()}"
        t = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(ms / 1000)) + ".000Z"
        yield [uid, tenant, source, "echo", "scheduled", "done", null, "system", "ab" * 32, repo, "6", "100",
               '{"files":1}', "[]", null, null, "1", "3", t, null, null, t, t, t, t, null, t, null]


if __name__ == "__main__":
    mode = sys.argv[1]
    if mode == "tsv":  # tsv TENANT SOURCE[,SOURCE…] N REPO > file
        for r in rows(sys.argv[2], sys.argv[3], int(sys.argv[4]), sys.argv[5]):
            sys.stdout.write("\t".join(r) + "\n")
    elif mode == "sqlite":  # sqlite DB FILE.tsv
        c = sqlite3.connect(sys.argv[2], timeout=30)
        data = [[None if v == "\\N" else v for v in line.rstrip("\n").split("\t")] for line in open(sys.argv[3])]
        c.executemany("INSERT INTO backups VALUES (" + ",".join("?" * 28) + ")", data)
        c.commit()
