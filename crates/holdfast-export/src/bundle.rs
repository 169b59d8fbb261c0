//! The portable bundle: a tables-mode database snapshot exported as one zip
//! that someone without holdfast, or without any database, can open:
//!
//! ```text
//! README.md            what everything is, for a non-technical reader
//! <database>.xlsx      one sheet per table (Excel, LibreOffice, Numbers)
//! csv/<table>.csv      each table's CSV exactly as the snapshot stores it
//! json/<table>.json    each table as a JSON array of objects
//! schema.sql           the tables' definitions, when the snapshot has them
//! manifest.json        "holdfast-bundle/1": snapshot, tables, checksums
//! ```
//!
//! Everything streams: each table's CSV is read out of the repository once
//! per view (copy, JSON, workbook) rather than held, so memory stays
//! constant whatever the table sizes; the zip's central directory and the
//! manifests keep one small record per file. The bundle's `manifest.json`
//! lists the SHA-256 of every other file, so the zip checks itself
//! (`export --verify`, or `sha256sum` after unzipping).

use std::collections::HashSet;
use std::io::{self, BufReader, Read, Write};
use std::path::Path;

use holdfast_engine::blob_reader::BlobReader;
use holdfast_engine::repository::Repository;
use holdfast_engine::tree_walk::find_node;
use holdfast_engine::{EngineError, Result};
use holdfast_format::Id;
use holdfast_format::manifest::{Manifest, ManifestFile, ManifestTable};
use holdfast_format::snapshot::Snapshot;
use zip::write::{SimpleFileOptions, StreamWriter};
use zip::{CompressionMethod, DateTime, ZipWriter};

use crate::bundle_manifest::{
    BUNDLE_FORMAT, BUNDLE_MANIFEST, BUNDLE_README, BundleManifest, BundleSnapshot, BundleSource,
    BundleTable,
};
use crate::bundle_readme::readme;
use crate::column_kinds::Columns;
use crate::digest::{HashingReader, HashingWriter};
use crate::json_table::{json_size_bound, write_json_rows};
use crate::xlsx_workbook::{
    EXCEL_MAX_DATA_ROWS, SheetTable, WorkbookOptions, sheet_xml_bound, write_workbook,
};
use holdfast_format::table_csv::{CsvRecords, RecordCounter};

/// The snapshot's DDL, copied into the bundle when present.
const SCHEMA_FILE: &str = "schema.sql";

/// Where the workbook keeps its temp files and how many rows a sheet takes.
#[derive(Debug, Clone)]
pub struct BundleOptions<'a> {
    pub temp_dir: &'a Path,
    /// [`EXCEL_MAX_DATA_ROWS`] except in tests.
    pub max_sheet_rows: u32,
}

impl<'a> BundleOptions<'a> {
    pub fn new(temp_dir: &'a Path) -> Self {
        BundleOptions {
            temp_dir,
            max_sheet_rows: EXCEL_MAX_DATA_ROWS,
        }
    }
}

/// What went into the bundle.
#[derive(Debug, Default)]
pub struct BundleSummary {
    /// Every file of the zip, `manifest.json` included.
    pub files: Vec<ManifestFile>,
    pub warnings: Vec<String>,
}

/// True for the snapshots `--format zip` exports as a bundle.
pub fn is_bundle_source(manifest: Option<&Manifest>) -> bool {
    manifest.is_some_and(|m| m.mode == "tables")
}

/// One table of the snapshot, located.
struct Source<'m> {
    table: &'m ManifestTable,
    /// The snapshot file, as the manifest lists it (size and SHA-256).
    expected: Option<&'m ManifestFile>,
    path: String,
    content: Vec<Id>,
    size: u64,
    /// The name of its files in the bundle (without extension).
    base: String,
    is_query: bool,
}

/// A file name that every common file system accepts: Windows forbids
/// `<>:"/\|?*`, control characters, trailing dots and spaces, and device
/// names such as `CON` or `aux.csv`.
pub fn portable_file_name(name: &str) -> String {
    let s: String = name
        .chars()
        .map(|c| {
            if matches!(c, '<' | '>' | ':' | '"' | '/' | '\\' | '|' | '?' | '*') || c.is_control() {
                '_'
            } else {
                c
            }
        })
        .collect();
    let s = s.trim_end_matches(['.', ' ']).to_string();
    if s.is_empty() || s.starts_with('.') {
        return format!("_{s}");
    }
    let stem = s.split('.').next().unwrap_or("").to_ascii_uppercase();
    let device = matches!(stem.as_str(), "CON" | "PRN" | "AUX" | "NUL")
        || ((stem.starts_with("COM") || stem.starts_with("LPT"))
            && stem.len() == 4
            && stem.as_bytes()[3].is_ascii_digit());
    if device { format!("_{s}") } else { s }
}

/// `name` unless it is taken (ignoring case, as Windows and macOS do),
/// else `name_2`, `name_3`, ….
fn unique_name(used: &mut HashSet<String>, name: &str) -> String {
    let mut candidate = name.to_string();
    let mut n = 2;
    while !used.insert(candidate.to_lowercase()) {
        candidate = format!("{name}_{n}");
        n += 1;
    }
    candidate
}

/// The workbook's file name: the database's name (for SQLite, its file's
/// name without the extension).
fn workbook_name(manifest: &Manifest) -> String {
    let db = manifest.database.as_deref().unwrap_or("");
    let base = db.rsplit(['/', '\\']).next().unwrap_or(db);
    let base = [".sqlite3", ".sqlite", ".db3", ".db"]
        .iter()
        .find_map(|ext| {
            base.len()
                .checked_sub(ext.len())
                .filter(|&at| at > 0 && base[at..].eq_ignore_ascii_case(ext))
                .map(|at| &base[..at])
        })
        .unwrap_or(base);
    if base.trim().is_empty() {
        "database.xlsx".to_string()
    } else {
        format!("{}.xlsx", portable_file_name(base))
    }
}

fn zip_err(e: zip::result::ZipError) -> EngineError {
    match e {
        zip::result::ZipError::Io(e) => EngineError::io("writing the zip stream", e),
        other => EngineError::io("writing the zip stream", io::Error::other(other)),
    }
}

/// Entries bigger than this get ZIP64 fields: a streamed zip must decide
/// before an entry's data, and sizes here are upper bounds.
fn needs_zip64(bound: u64) -> bool {
    bound >= u64::from(u32::MAX) - (64 << 20)
}

fn zip_time(snapshot: &Snapshot) -> DateTime {
    let (y, mo, d, h, mi, s) = snapshot.time.civil();
    u16::try_from(y)
        .ok()
        .and_then(|y| {
            DateTime::from_date_and_time(y, mo as u8, d as u8, h as u8, mi as u8, s as u8).ok()
        })
        .unwrap_or_default()
}

/// Writes the zip's entries, hashing each.
struct BundleZip<W: Write> {
    zip: ZipWriter<StreamWriter<W>>,
    time: DateTime,
    files: Vec<ManifestFile>,
}

impl<W: Write> BundleZip<W> {
    /// Add the entry `name`, its content written by `body`; record its
    /// size and SHA-256.
    fn entry<T>(
        &mut self,
        name: &str,
        size_bound: u64,
        body: impl FnOnce(&mut HashingWriter<&mut ZipWriter<StreamWriter<W>>>) -> Result<T>,
    ) -> Result<T> {
        let options = SimpleFileOptions::default()
            .compression_method(CompressionMethod::Deflated)
            .compression_level(Some(6))
            .last_modified_time(self.time)
            .unix_permissions(0o644)
            .large_file(needs_zip64(size_bound));
        self.zip.start_file(name, options).map_err(zip_err)?;
        let mut w = HashingWriter::new(&mut self.zip);
        let out = body(&mut w)?;
        let (_, size, sha256) = w.finish();
        self.files.push(ManifestFile {
            path: name.to_string(),
            size,
            sha256: sha256.to_hex(),
        });
        Ok(out)
    }
}

fn table_reader<'r>(repo: &'r Repository, content: &'r [Id]) -> BufReader<BlobReader<'r>> {
    BufReader::with_capacity(1 << 20, BlobReader::new(repo, content))
}

/// Locate every table's CSV in the snapshot and name its bundle files.
fn sources<'m>(
    repo: &Repository,
    snapshot: &Snapshot,
    manifest: &'m Manifest,
    warnings: &mut Vec<String>,
) -> Result<Vec<Source<'m>>> {
    let mut used = HashSet::new();
    let mut out = Vec::new();
    for table in &manifest.tables {
        let Some(path) = table.file.as_deref() else {
            warnings.push(format!(
                "{}: the snapshot's manifest names no file for it, so it is not in the bundle",
                table.name
            ));
            continue;
        };
        let node = find_node(repo, &snapshot.tree, format!("/{path}").as_bytes())?
            .ok_or_else(|| EngineError::Invalid(format!("{path} is not in the snapshot")))?;
        let file_name = path.rsplit('/').next().unwrap_or(path);
        let stem = file_name.strip_suffix(".csv").unwrap_or(file_name);
        out.push(Source {
            table,
            expected: manifest.file(path),
            path: path.to_string(),
            content: node.content.unwrap_or_default(),
            size: node.size,
            base: unique_name(&mut used, &portable_file_name(stem)),
            is_query: path.starts_with("queries/"),
        });
    }
    Ok(out)
}

/// Copy a snapshot file into the bundle byte for byte, checking it against
/// the snapshot manifest's size and SHA-256. Returns its record count.
fn copy_checked<W: Write>(
    zip: &mut BundleZip<W>,
    repo: &Repository,
    name: &str,
    path: &str,
    content: &[Id],
    size: u64,
    expected: Option<&ManifestFile>,
) -> Result<u64> {
    zip.entry(name, size, |w| {
        let mut reader = HashingReader::new(BlobReader::new(repo, content));
        let mut counter = RecordCounter::default();
        let mut buf = vec![0u8; 256 << 10];
        loop {
            let n = reader
                .read(&mut buf)
                .map_err(|e| EngineError::io(format!("reading {path} from the repository"), e))?;
            if n == 0 {
                break;
            }
            counter.feed(&buf[..n]);
            w.write_all(&buf[..n])
                .map_err(|e| EngineError::io(format!("writing {name}"), e))?;
        }
        let (got_size, sha256) = reader.finish();
        if let Some(want) = expected
            && (got_size != want.size || sha256.to_hex() != want.sha256)
        {
            return Err(EngineError::corrupt(
                path,
                format!(
                    "the snapshot's copy ({got_size} bytes, SHA-256 {}) differs from its manifest \
                     ({} bytes, {})",
                    sha256.to_hex(),
                    want.size,
                    want.sha256
                ),
            ));
        }
        Ok(counter.records())
    })
}

/// Write the bundle of a tables-mode snapshot to `out`.
pub fn write_bundle<W: Write>(
    repo: &Repository,
    snapshot_id: &Id,
    snapshot: &Snapshot,
    manifest: &Manifest,
    opts: &BundleOptions<'_>,
    out: W,
) -> Result<(W, BundleSummary)> {
    let mut warnings = Vec::new();
    let sources = sources(repo, snapshot, manifest, &mut warnings)?;
    let mut zip = BundleZip {
        zip: ZipWriter::new_stream(out),
        time: zip_time(snapshot),
        files: Vec::new(),
    };

    // 1. Every CSV as stored; its records counted on the way.
    let mut records = Vec::with_capacity(sources.len());
    for s in &sources {
        let name = format!("csv/{}.csv", s.base);
        let n = copy_checked(
            &mut zip, repo, &name, &s.path, &s.content, s.size, s.expected,
        )?;
        let rows = n.saturating_sub(1);
        if rows != s.table.rows {
            warnings.push(format!(
                "{}: its CSV holds {rows} rows, the snapshot's manifest says {}",
                s.table.name, s.table.rows
            ));
        }
        records.push(rows);
    }

    // 2. Every table as JSON.
    let mut tables = Vec::with_capacity(sources.len());
    let mut widths = Vec::with_capacity(sources.len());
    for (s, &rows) in sources.iter().zip(&records) {
        let read_err = |e: io::Error| EngineError::corrupt(&s.path, e);
        let mut csv = CsvRecords::new(table_reader(repo, &s.content));
        let mut header = Vec::new();
        let has_header = csv.read_record(&mut header).map_err(read_err)?;
        let columns = Columns::from_header(has_header.then_some(&header[..]), &s.table.columns);
        widths.push(columns.names.len());
        let name = format!("json/{}.json", s.base);
        let bound = json_size_bound(s.size, rows, &columns.unique_keys());
        let rows = zip.entry(&name, bound, |w| {
            write_json_rows(&mut csv, &columns, w).map_err(|e| match e.kind() {
                io::ErrorKind::InvalidData => read_err(e),
                _ => EngineError::io(format!("writing {name}"), e),
            })
        })?;
        tables.push(BundleTable {
            name: s.table.name.clone(),
            kind: if s.is_query { "query" } else { "table" }.into(),
            rows,
            columns: s.table.columns.clone(),
            csv: format!("csv/{}.csv", s.base),
            json: name,
            sheets: Vec::new(),
            notes: Vec::new(),
        });
    }

    // 3. The workbook, one table after another.
    let workbook = workbook_name(manifest);
    let sheet_tables: Vec<SheetTable<'_>> = sources
        .iter()
        .map(|s| SheetTable {
            name: &s.table.name,
            columns: &s.table.columns,
        })
        .collect();
    let xml_bound = sources
        .iter()
        .zip(&tables)
        .zip(&widths)
        .map(|((s, t), &w)| sheet_xml_bound(s.size, t.rows, w))
        .fold(0u64, u64::saturating_add);
    let report = zip.entry(&workbook, xml_bound, |w| {
        write_workbook(
            &sheet_tables,
            |i| Ok(Box::new(table_reader(repo, &sources[i].content))),
            &WorkbookOptions {
                max_data_rows: opts.max_sheet_rows,
                temp_dir: opts.temp_dir,
                large: needs_zip64(xml_bound),
            },
            w,
        )
    })?;
    for (t, sheets) in tables.iter_mut().zip(report.tables) {
        t.sheets = sheets.sheets;
        t.notes = sheets.notes;
    }
    warnings.extend(report.warnings);

    // 4. The schema, when the snapshot has one.
    let has_schema = match manifest.file(SCHEMA_FILE) {
        Some(f) => {
            let node = find_node(repo, &snapshot.tree, format!("/{SCHEMA_FILE}").as_bytes())?
                .ok_or_else(|| {
                    EngineError::Invalid(format!("{SCHEMA_FILE} is not in the snapshot"))
                })?;
            let content = node.content.unwrap_or_default();
            copy_checked(
                &mut zip,
                repo,
                SCHEMA_FILE,
                SCHEMA_FILE,
                &content,
                node.size,
                Some(f),
            )?;
            true
        }
        None => false,
    };

    // 5. The README, then the manifest that lists everything else.
    let mut bundle = BundleManifest {
        format: BUNDLE_FORMAT.into(),
        created: jiff::Timestamp::now().to_string(),
        snapshot: BundleSnapshot {
            id: snapshot_id.to_hex(),
            time: snapshot.time.to_string(),
            hostname: snapshot.hostname.clone(),
            paths: snapshot.paths.clone(),
        },
        source: BundleSource {
            kind: manifest.kind.clone(),
            mode: manifest.mode.clone(),
            address: manifest.source.clone(),
            database: manifest.database.clone(),
            server_version: manifest.server_version.clone(),
            backed_up: manifest.created.clone(),
            tenant: manifest.extra.get("tenant").cloned(),
        },
        workbook,
        tables,
        files: Vec::new(),
        warnings: warnings.clone(),
    };
    let text = readme(&bundle, snapshot, has_schema);
    zip.entry(BUNDLE_README, text.len() as u64, |w| {
        w.write_all(text.as_bytes())
            .map_err(|e| EngineError::io("writing README.md", e))
    })?;
    bundle.files = zip.files.clone();
    let mut json = serde_json::to_vec_pretty(&bundle).expect("the bundle manifest serialises");
    json.push(b'\n');
    zip.entry(BUNDLE_MANIFEST, json.len() as u64, |w| {
        w.write_all(&json)
            .map_err(|e| EngineError::io("writing manifest.json", e))
    })?;
    let out = zip.zip.finish().map_err(zip_err)?.into_inner();
    Ok((
        out,
        BundleSummary {
            files: zip.files,
            warnings,
        },
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn file_names_are_portable_and_unique_ignoring_case() {
        assert_eq!(portable_file_name("public.orders"), "public.orders");
        assert_eq!(
            portable_file_name("a<b>c:d\"e|f?g*h\\i/j"),
            "a_b_c_d_e_f_g_h_i_j"
        );
        assert_eq!(portable_file_name("con"), "_con");
        assert_eq!(portable_file_name("aux.log"), "_aux.log");
        assert_eq!(portable_file_name("COM1"), "_COM1");
        assert_eq!(portable_file_name("console"), "console");
        assert_eq!(portable_file_name("dots..."), "dots");
        assert_eq!(portable_file_name(".hidden"), "_.hidden");
        assert_eq!(portable_file_name(""), "_");
        let mut used = HashSet::new();
        assert_eq!(unique_name(&mut used, "Orders"), "Orders");
        assert_eq!(unique_name(&mut used, "orders"), "orders_2");
        assert_eq!(unique_name(&mut used, "ORDERS"), "ORDERS_3");
    }

    #[test]
    fn the_workbook_is_named_after_the_database() {
        let mut m = Manifest::new("sqlite", "tables", "sqlite:///srv/app.db".into());
        m.database = Some("/srv/data/app.sqlite3".into());
        assert_eq!(workbook_name(&m), "app.xlsx");
        m.database = Some("shop".into());
        assert_eq!(workbook_name(&m), "shop.xlsx");
        m.database = Some("a:b".into());
        assert_eq!(workbook_name(&m), "a_b.xlsx");
        m.database = Some(".db".into());
        assert_eq!(workbook_name(&m), "_.db.xlsx");
        m.database = None;
        assert_eq!(workbook_name(&m), "database.xlsx");
    }
}
