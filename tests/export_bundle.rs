//! `holdfast export --format zip` of a tables-mode database snapshot: the
//! portable bundle. The snapshot is built through the library (no database
//! server needed), in the layout the tables-mode backups write; the real
//! binary exports it, and the real `unzip` and Python's `zipfile` read the
//! result as a recipient would.

mod common;

use std::fs;
use std::path::Path;
use std::process::Command;
use std::sync::Arc;

use common::*;
use holdfast_engine::blob_saver::SaverOptions;
use holdfast_engine::chunker::ChunkerParams;
use holdfast_engine::repository::Repository;
use holdfast_engine::snapshot_builder::SnapshotMeta;
use holdfast_format::manifest::{Manifest, ManifestColumn, ManifestTable, source_summary};
use holdfast_sources::progress::Progress;
use holdfast_sources::writer::SnapshotWriter;
use holdfast_storage::{Backend, LocalBackend};
use serde_json::{Value, json};

/// A table (or query result) to store: name, columns, CSV.
struct Table {
    name: &'static str,
    file: String,
    columns: Vec<(&'static str, &'static str)>,
    csv: Vec<u8>,
    rows: u64,
}

/// The awkward table: quotes, commas, newlines, unicode, NULL vs empty,
/// bytea hex, typed numbers/booleans/json.
const ORDERS_CSV: &str = "id,amount,paid,note,doc,data,created\n\
1,12.500000,t,\"Hello, \"\"world\"\"\",\"{\"\"b\"\": 1, \"\"a\"\": [1, 2]}\",\\x0aff,2024-05-01 12:00:00+00\n\
2,,f,\"\",,,\n\
3,-0.000001,,\"line one\nline two\",not json,\\x,\n\
4,12345678901234567890.123456,t,ünïcödé ✓ 😀,\"[true, null]\",\\xdeadbeef,2024-05-02 08:30:00+02\n\
5,NaN,f,=1+1,null,,\n";

fn tables() -> Vec<Table> {
    let mut big = b"n,label\n".to_vec();
    for i in 0..2500u32 {
        big.extend_from_slice(format!("{i},row {i}\n").as_bytes());
    }
    vec![
        Table {
            name: "public.orders",
            file: "tables/public.orders.csv".into(),
            columns: vec![
                ("id", "integer"),
                ("amount", "numeric(30,6)"),
                ("paid", "boolean"),
                ("note", "text"),
                ("doc", "jsonb"),
                ("data", "bytea"),
                ("created", "timestamp with time zone"),
            ],
            csv: ORDERS_CSV.as_bytes().to_vec(),
            rows: 5,
        },
        Table {
            name: "public.big",
            file: "tables/public.big.csv".into(),
            columns: vec![("n", "bigint"), ("label", "text")],
            csv: big,
            rows: 2500,
        },
        // A name Excel cannot take as it is: too long, with `:` and `[]`.
        Table {
            name: "reporting.quarterly:summary[2024]_by_region",
            file: "tables/reporting.quarterly_summary[2024]_by_region.csv".into(),
            columns: vec![("region", "text"), ("total", "double precision")],
            csv: b"region,total\nnorth,1.5e3\nsouth,\n".to_vec(),
            rows: 2,
        },
        Table {
            name: "active_customers",
            file: "queries/active_customers.csv".into(),
            columns: vec![("email", "text"), ("active", "boolean")],
            csv: b"email,active\na@example.com,true\n".to_vec(),
            rows: 1,
        },
    ]
}

/// A generated table's CSV, produced as it is read: `rows` rows of an id,
/// a name, a JSON document and a boolean.
struct RowGen {
    next: u64,
    rows: u64,
    buf: Vec<u8>,
    pos: usize,
}

impl RowGen {
    fn new(rows: u64) -> RowGen {
        RowGen {
            next: 0,
            rows,
            buf: b"id,name,doc,ok\n".to_vec(),
            pos: 0,
        }
    }
}

impl std::io::Read for RowGen {
    fn read(&mut self, out: &mut [u8]) -> std::io::Result<usize> {
        while self.pos == self.buf.len() {
            if self.next == self.rows {
                return Ok(0);
            }
            self.buf.clear();
            self.pos = 0;
            let i = self.next;
            self.buf.extend_from_slice(
                format!(
                    "{i},\"customer {i}, \"\"vip\"\"\",\"{{\"\"n\"\": {i}}}\",{}\n",
                    if i.is_multiple_of(2) { 't' } else { 'f' }
                )
                .as_bytes(),
            );
            self.next += 1;
        }
        let n = out.len().min(self.buf.len() - self.pos);
        out[..n].copy_from_slice(&self.buf[self.pos..self.pos + n]);
        self.pos += n;
        Ok(n)
    }
}

/// Store a snapshot in `repo` as a database backup writes it: `fill` adds
/// the files (and records them in `m`), then the manifest goes in and the
/// snapshot is committed as made on `host`.
fn store_snapshot(
    repo: &Repo,
    host: &str,
    mut m: Manifest,
    fill: impl FnOnce(&mut SnapshotWriter, &mut Manifest),
) {
    let be: Arc<dyn Backend> = Arc::new(LocalBackend::new(&repo.path));
    let r = Arc::new(Repository::open(be, PASSWORD.as_bytes()).unwrap());
    let progress = Progress::silent();
    let mut w = SnapshotWriter::new(
        &r,
        ChunkerParams::ROWS,
        &SaverOptions::default(),
        false,
        &progress,
    )
    .unwrap();
    fill(&mut w, &mut m);
    w.add_bytes("manifest.json", &m.to_json()).unwrap();
    w.commit(SnapshotMeta {
        hostname: host.into(),
        extra: Some(source_summary(&m, None)),
        ..SnapshotMeta::default()
    })
    .unwrap();
}

/// Store a snapshot holding one generated table of `rows` rows.
fn store_generated_snapshot(repo: &Repo, rows: u64) {
    let mut m = Manifest::new("sqlite", "tables", "sqlite:///srv/app.db".into());
    m.database = Some("/srv/app.db".into());
    store_snapshot(repo, "app-host", m, |w, m| {
        let path = "tables/customers.csv";
        let f = w.add_file(path, RowGen::new(rows)).unwrap();
        m.add_file(path, f.size, &f.sha256);
        m.tables.push(ManifestTable {
            name: "customers".into(),
            parts: vec!["customers".into()],
            rows,
            file: Some(path.into()),
            columns: [
                ("id", "INTEGER"),
                ("name", "TEXT"),
                ("doc", "JSON"),
                ("ok", "BOOLEAN"),
            ]
            .iter()
            .map(|(n, t)| ManifestColumn {
                name: n.to_string(),
                sql_type: t.to_string(),
                generated: false,
            })
            .collect(),
        });
    });
}

/// Store a tables-mode PostgreSQL snapshot in `repo`, as the backup writes it.
fn store_tables_snapshot(repo: &Repo) {
    let mut m = Manifest::new(
        "postgres",
        "tables",
        "postgres://app@db.example.com:5432/shop".into(),
    );
    m.database = Some("shop".into());
    m.server_version = Some("16.2".into());
    m.extra.insert(
        "tenant".into(),
        json!({"column": "tenant_id", "value": "42"}),
    );
    store_snapshot(repo, "db-host", m, |w, m| {
        let schema = b"CREATE TABLE public.orders (id integer);\n";
        let f = w.add_bytes("schema.sql", schema).unwrap();
        m.add_file("schema.sql", f.size, &f.sha256);
        for t in tables() {
            let f = w.add_bytes(&t.file, &t.csv).unwrap();
            m.add_file(&t.file, f.size, &f.sha256);
            m.tables.push(ManifestTable {
                name: t.name.into(),
                parts: t.name.split('.').map(str::to_string).collect(),
                rows: t.rows,
                file: Some(t.file.clone()),
                columns: t
                    .columns
                    .iter()
                    .map(|(n, ty)| ManifestColumn {
                        name: n.to_string(),
                        sql_type: ty.to_string(),
                        generated: false,
                    })
                    .collect(),
            });
        }
    });
}

fn unzip(file: &Path, into: &Path) {
    run_ok(
        Command::new("unzip")
            .arg("-q")
            .arg(file)
            .arg("-d")
            .arg(into),
    );
}

/// Sheet names and every cell of every sheet of an xlsx, read with
/// Python's standard library only: {"sheets": [..], "cells": [{ref: [type,
/// value, style]}], "bold_fonts": n}.
fn read_xlsx(path: &Path) -> Value {
    let script = r#"
import json, re, sys, zipfile
import xml.etree.ElementTree as ET
ns = {"m": "http://schemas.openxmlformats.org/spreadsheetml/2006/main"}
z = zipfile.ZipFile(sys.argv[1])
wb = ET.fromstring(z.read("xl/workbook.xml"))
names = [s.get("name") for s in wb.find("m:sheets", ns)]
cells = []
for i in range(len(names)):
    root = ET.fromstring(z.read("xl/worksheets/sheet%d.xml" % (i + 1)))
    out = {}
    for c in root.iter("{%s}c" % ns["m"]):
        t = c.get("t", "n")
        if t == "inlineStr":
            v = "".join(x.text or "" for x in c.iter("{%s}t" % ns["m"]))
        else:
            v = c.find("m:v", ns)
            v = v.text if v is not None else None
        out[c.get("r")] = [t, v, c.get("s")]
    cells.append(out)
styles = z.read("xl/styles.xml").decode()
print(json.dumps({"sheets": names, "cells": cells, "bold_fonts": styles.count("<b/>")}))
"#;
    let out = run_ok(Command::new("python3").arg("-c").arg(script).arg(path));
    serde_json::from_str(&out).unwrap()
}

/// A cell's (type, value) from [`read_xlsx`].
fn typed(cell: &Value) -> (&str, &str) {
    (
        cell[0].as_str().unwrap_or("missing"),
        cell[1].as_str().unwrap_or(""),
    )
}

#[test]
fn a_tables_snapshot_exports_as_a_bundle_that_opens_everywhere_and_verifies() {
    let repo = Repo::new();
    store_tables_snapshot(&repo);
    let file = repo.dir.path().join("shop-bundle.zip");
    let out = repo.run(&[
        "export",
        "--json",
        "latest",
        "--format",
        "zip",
        "-o",
        file.to_str().unwrap(),
    ]);
    assert_ok(&out);
    let s = summary(&String::from_utf8_lossy(&out.stdout));
    assert_eq!(s["format"], "zip");
    assert_eq!(s["sha256"], sha256_hex(&fs::read(&file).unwrap()));
    assert_eq!(s["warnings"], json!([]), "{s}");

    let x = repo.dir.path().join("x");
    unzip(&file, &x);
    let mut names: Vec<String> = Vec::new();
    for d in ["", "csv", "json"] {
        for e in fs::read_dir(x.join(d)).unwrap() {
            let e = e.unwrap();
            if e.file_type().unwrap().is_file() {
                let n = e.file_name().to_string_lossy().into_owned();
                names.push(if d.is_empty() { n } else { format!("{d}/{n}") });
            }
        }
    }
    names.sort();
    assert_eq!(
        names,
        [
            "README.md",
            "csv/active_customers.csv",
            "csv/public.big.csv",
            "csv/public.orders.csv",
            "csv/reporting.quarterly_summary[2024]_by_region.csv",
            "json/active_customers.json",
            "json/public.big.json",
            "json/public.orders.json",
            "json/reporting.quarterly_summary[2024]_by_region.json",
            "manifest.json",
            "schema.sql",
            "shop.xlsx",
        ]
    );

    // 1. Every CSV byte for byte.
    for t in tables() {
        let stem = t.file.rsplit('/').next().unwrap();
        assert_eq!(
            fs::read(x.join("csv").join(stem)).unwrap(),
            t.csv,
            "{}",
            t.name
        );
    }

    // 2. JSON: null vs "", numbers (exact), booleans, embedded documents.
    let orders: Value =
        serde_json::from_slice(&fs::read(x.join("json/public.orders.json")).unwrap()).unwrap();
    assert_eq!(
        orders[0],
        json!({"id": 1, "amount": 12.5, "paid": true, "note": "Hello, \"world\"",
               "doc": {"b": 1, "a": [1, 2]}, "data": "\\x0aff",
               "created": "2024-05-01 12:00:00+00"})
    );
    assert_eq!(
        orders[1],
        json!({"id": 2, "amount": null, "paid": false, "note": "", "doc": null,
               "data": null, "created": null})
    );
    assert_eq!(orders[2]["note"], "line one\nline two");
    assert_eq!(orders[2]["doc"], "not json");
    assert_eq!(orders[2]["paid"], Value::Null);
    assert_eq!(orders[2]["data"], "\\x");
    assert_eq!(orders[3]["note"], "ünïcödé ✓ 😀");
    assert_eq!(orders[3]["doc"], json!([true, null]));
    assert_eq!(orders[4]["amount"], "NaN");
    assert_eq!(orders[4]["note"], "=1+1");
    // The text keeps every digit of a numeric, and documents their key order.
    let text = fs::read_to_string(x.join("json/public.orders.json")).unwrap();
    assert!(
        text.contains("\"amount\": 12345678901234567890.123456,"),
        "{text}"
    );
    assert!(
        text.contains("\"doc\": {\"b\": 1, \"a\": [1, 2]}"),
        "{text}"
    );
    assert!(text.contains("\"amount\": -0.000001,"), "{text}");
    let big: Value =
        serde_json::from_slice(&fs::read(x.join("json/public.big.json")).unwrap()).unwrap();
    assert_eq!(big.as_array().unwrap().len(), 2500);
    assert_eq!(big[2499], json!({"n": 2499, "label": "row 2499"}));
    let q: Value =
        serde_json::from_slice(&fs::read(x.join("json/active_customers.json")).unwrap()).unwrap();
    assert_eq!(q, json!([{"email": "a@example.com", "active": true}]));

    // 3. The workbook: valid sheet names, bold headers, typed cells.
    let wb = read_xlsx(&x.join("shop.xlsx"));
    assert_eq!(
        wb["sheets"],
        json!([
            "public.orders",
            "public.big",
            "reporting.quarterly_summary_202",
            "active_customers"
        ])
    );
    let orders_sheet = &wb["cells"][0];
    assert_eq!(orders_sheet["A1"][1], "id");
    assert!(orders_sheet["A1"][2].is_string(), "the header has a style");
    assert!(wb["bold_fonts"].as_u64().unwrap() >= 1);
    assert_eq!(orders_sheet["A2"], json!(["n", "1", null]));
    assert_eq!(typed(&orders_sheet["B2"]), ("n", "12.5"));
    assert_eq!(typed(&orders_sheet["C2"]), ("b", "1"));
    assert_eq!(
        typed(&orders_sheet["D2"]),
        ("inlineStr", "Hello, \"world\"")
    );
    assert_eq!(orders_sheet["D4"][1], "line one\nline two");
    assert_eq!(orders_sheet["D5"][1], "ünïcödé ✓ 😀");
    // Too many digits for a double: text, every digit kept.
    assert_eq!(
        typed(&orders_sheet["B5"]),
        ("inlineStr", "12345678901234567890.123456")
    );
    // A formula-looking text stays text.
    assert_eq!(typed(&orders_sheet["D6"]), ("inlineStr", "=1+1"));
    // NULL and the empty string are both an empty cell.
    assert!(orders_sheet.get("B3").is_none());
    assert!(orders_sheet.get("D3").is_none());
    assert_eq!(typed(&wb["cells"][1]["A2501"]), ("n", "2499"));
    assert_eq!(wb["cells"][1]["B2501"][1], "row 2499");
    assert!(wb["cells"][1].get("A2502").is_none());
    assert_eq!(typed(&wb["cells"][2]["B2"]), ("n", "1500"));

    // 4. The README names every table with its row count, and explains.
    let readme = fs::read_to_string(x.join("README.md")).unwrap();
    for (name, rows) in [
        ("public.orders", "5"),
        ("public.big", "2,500"),
        ("reporting.quarterly:summary[2024]_by_region", "2"),
        ("active_customers (saved query result)", "1"),
    ] {
        assert!(
            readme.contains(&format!("| {name} | {rows} |")),
            "{name}: {readme}"
        );
    }
    for words in [
        "shop.xlsx",
        "Excel",
        "LibreOffice",
        "Numbers",
        "NULL",
        "sha256sum",
        "SHA-256",
        "postgres://app@db.example.com:5432/shop",
        "`tenant_id` is `42`",
        "PostgreSQL 16.2",
        "2,508 row(s)",
    ] {
        assert!(readme.contains(words), "{words}: {readme}");
    }

    // 5. The bundle manifest: every table, every other file's checksum.
    let m: Value = serde_json::from_slice(&fs::read(x.join("manifest.json")).unwrap()).unwrap();
    assert_eq!(m["format"], "holdfast-bundle/1");
    assert_eq!(m["snapshot"]["id"], repo.snapshot_ids()[0]);
    assert_eq!(m["source"]["kind"], "postgres");
    assert_eq!(m["source"]["database"], "shop");
    assert_eq!(m["source"]["tenant"]["value"], "42");
    assert_eq!(m["workbook"], "shop.xlsx");
    let t0 = &m["tables"][0];
    assert_eq!(t0["name"], "public.orders");
    assert_eq!(t0["rows"], 5);
    assert_eq!(t0["csv"], "csv/public.orders.csv");
    assert_eq!(t0["json"], "json/public.orders.json");
    assert_eq!(t0["sheets"], json!(["public.orders"]));
    assert_eq!(
        t0["columns"][1],
        json!({"name": "amount", "type": "numeric(30,6)"})
    );
    assert_eq!(m["tables"][3]["kind"], "query");
    let listed: Vec<&str> = m["files"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["path"].as_str().unwrap())
        .collect();
    let mut expected: Vec<&str> = names
        .iter()
        .map(String::as_str)
        .filter(|n| *n != "manifest.json")
        .collect();
    let mut sorted = listed.clone();
    sorted.sort();
    expected.sort();
    assert_eq!(sorted, expected);
    for f in m["files"].as_array().unwrap() {
        let data = fs::read(x.join(f["path"].as_str().unwrap())).unwrap();
        assert_eq!(f["sha256"], sha256_hex(&data), "{f}");
        assert_eq!(f["size"], data.len(), "{f}");
    }
    // The sidecar lists every file of the zip, the bundle manifest too.
    let side: Value = serde_json::from_slice(
        &fs::read(repo.dir.path().join("shop-bundle.zip.manifest.json")).unwrap(),
    )
    .unwrap();
    assert_eq!(side["format"], "holdfast-export/1");
    assert_eq!(side["files"].as_array().unwrap().len(), names.len());

    // 6. --verify: intact with and without the sidecar, and a flipped byte fails.
    let v = summary(&repo.ok(&["export", "--json", "--verify", file.to_str().unwrap()]));
    assert_eq!(v["ok"], true);
    assert_eq!(v["bundle"], true);
    assert_eq!(v["files_checked"], names.len());
    let sidecar = repo.dir.path().join("shop-bundle.zip.manifest.json");
    let kept = fs::read(&sidecar).unwrap();
    fs::remove_file(&sidecar).unwrap();
    let v = summary(&repo.ok(&["export", "--json", "--verify", file.to_str().unwrap()]));
    assert_eq!(v["ok"], true);
    assert_eq!(v["files_checked"], names.len() - 1);

    let good = fs::read(&file).unwrap();
    let mut bad = good.clone();
    // A byte inside the compressed data of an early entry (the first CSV).
    bad[200] ^= 0x55;
    fs::write(&file, &bad).unwrap();
    for with_sidecar in [false, true] {
        if with_sidecar {
            fs::write(&sidecar, &kept).unwrap();
        }
        let out = repo.run(&["export", "--verify", file.to_str().unwrap()]);
        assert!(
            !out.status.success(),
            "a damaged bundle verified (sidecar: {with_sidecar})"
        );
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.contains("does not match its manifest"), "{err}");
        assert!(err.contains("csv/"), "the damaged file is named: {err}");
        assert!(!err.contains("not in the artifact"), "reported once: {err}");
    }
    fs::write(&file, &good).unwrap();
    repo.ok(&["export", "--verify", file.to_str().unwrap()]);

    // A file swapped inside the bundle, with its zip CRC intact, is caught
    // by the bundle manifest alone.
    fs::remove_file(&sidecar).unwrap();
    let swapped = repo.dir.path().join("swapped.zip");
    fs::copy(&file, &swapped).unwrap();
    fs::write(x.join("csv/public.orders.csv"), b"id\n666\n").unwrap();
    run_ok(
        Command::new("zip")
            .current_dir(&x)
            .arg("-q")
            .arg(&swapped)
            .arg("csv/public.orders.csv"),
    );
    let out = repo.run(&["export", "--verify", swapped.to_str().unwrap()]);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("csv/public.orders.csv") && err.contains("bundle's manifest.json"),
        "{err}"
    );
}

#[test]
fn tables_snapshots_default_to_the_bundle_and_a_subtree_stays_a_plain_zip() {
    let repo = Repo::new();
    store_tables_snapshot(&repo);
    // No format and no file name to go by: the bundle, on standard output.
    let out = repo.cmd().args(["export", "latest"]).output().unwrap();
    assert_ok(&out);
    let file = repo.dir.path().join("stdout.zip");
    fs::write(&file, &out.stdout).unwrap();
    let x = repo.dir.path().join("x");
    unzip(&file, &x);
    assert!(x.join("shop.xlsx").is_file());
    assert!(x.join("README.md").is_file());

    // --subtree exports that directory as it is stored.
    let sub = repo.dir.path().join("tables.zip");
    repo.ok(&[
        "export",
        "latest",
        "--format",
        "zip",
        "--subtree",
        "/tables",
        "-o",
        sub.to_str().unwrap(),
    ]);
    let y = repo.dir.path().join("y");
    unzip(&sub, &y);
    assert_eq!(
        fs::read(y.join("tables/public.orders.csv")).unwrap(),
        ORDERS_CSV.as_bytes()
    );
    assert!(!y.join("README.md").exists());
    repo.ok(&["export", "--verify", sub.to_str().unwrap()]);
}

/// Peak RSS in KiB of `holdfast export latest -o FILE`.
fn export_peak_rss(repo: &Repo, file: &Path) -> u64 {
    let rss_file = file.with_extension("rss");
    let mut cmd = Command::new("/usr/bin/time");
    clean(&mut cmd);
    let out = cmd
        .arg("-o")
        .arg(&rss_file)
        .args(["-f", "%M"])
        .arg(holdfast_bin())
        .args(["export", "latest", "-o"])
        .arg(file)
        .env("HOLDFAST_REPO", &repo.path)
        .env("HOLDFAST_PASSWORD", PASSWORD)
        .output()
        .unwrap();
    assert_ok(&out);
    fs::read_to_string(&rss_file)
        .unwrap()
        .trim()
        .lines()
        .last()
        .unwrap()
        .parse()
        .unwrap()
}

#[test]
fn bundle_memory_does_not_grow_with_the_table() {
    if !Path::new("/usr/bin/time").exists() {
        panic!("/usr/bin/time is needed (scripts/test.sh installs the `time` package)");
    }
    let small_repo = Repo::new();
    store_generated_snapshot(&small_repo, 20_000);
    let large_repo = Repo::new();
    store_generated_snapshot(&large_repo, 400_000);
    let small_file = small_repo.dir.path().join("small.zip");
    let large_file = large_repo.dir.path().join("app.zip");
    let small = export_peak_rss(&small_repo, &small_file);
    let large = export_peak_rss(&large_repo, &large_file);
    eprintln!("peak RSS: 20k rows {small} KiB, 400k rows {large} KiB");
    assert!(
        large < small + 32 * 1024,
        "20x the rows needed {large} KiB against {small} KiB"
    );
    assert!(large < 256 * 1024, "400k rows needed {large} KiB");

    // The large bundle is whole: every row in the JSON and on the sheet.
    large_repo.ok(&["export", "--verify", large_file.to_str().unwrap()]);
    let x = large_repo.dir.path().join("x");
    unzip(&large_file, &x);
    let m: Value = serde_json::from_slice(&fs::read(x.join("manifest.json")).unwrap()).unwrap();
    assert_eq!(m["workbook"], "app.xlsx");
    assert_eq!(m["tables"][0]["rows"], 400_000);
    let json = fs::read_to_string(x.join("json/customers.json")).unwrap();
    assert!(
        json.ends_with(
            "\n  {\"id\": 399999, \"name\": \"customer 399999, \\\"vip\\\"\", \"doc\": {\"n\": 399999}, \"ok\": false}\n]\n"
        ),
        "{}",
        &json[json.len() - 200..]
    );
    let sheet = Command::new("unzip")
        .arg("-p")
        .arg(x.join("app.xlsx"))
        .arg("xl/worksheets/sheet1.xml")
        .output()
        .unwrap();
    let sheet = String::from_utf8(sheet.stdout).unwrap();
    assert!(sheet.contains(r#"<c r="A400001"><v>399999</v></c>"#));
    assert!(sheet.contains(r#"<c r="D400001" t="b"><v>0</v></c>"#));
    assert!(!sheet.contains(r#"r="A400002""#));
}
