//! Database backups, written once for every [`Dialect`]: the whole copy
//! (dump mode, or SQLite's file) and tables mode. Also what the event-stream
//! source shares with them: the options and result, and how a source
//! snapshot is committed (`manifest.json` last, then the snapshot).

use std::sync::Arc;

use holdfast_engine::repository::Repository;
use holdfast_engine::{EngineError, Result};
use holdfast_format::manifest::{Manifest, ManifestTable};

use super::select::{Selection, TableFilter, TablesOptions, table_file};
use super::{Dialect, Export, Exportable, Out};
use crate::dump_scan::{ScanningReader, StreamScanner, TableRows};
use crate::progress::Progress;
use crate::writer::{FileFacts, FileSink, SnapshotWriter};
use holdfast_engine::snapshot_builder::SnapshotMeta;

use crate::spec::{BackupReport, BackupSettings};

/// Back up the whole database: the dialect's copy streamed into the
/// snapshot as one file, checked whole before anything is committed.
pub fn backup_whole(
    repo: &Arc<Repository>,
    d: &mut dyn Dialect,
    opts: BackupSettings,
    progress: &Progress,
) -> Result<BackupReport> {
    let mut manifest = Manifest::new(d.kind(), d.whole_mode(), d.display());
    d.describe(&mut manifest)?;
    let (file, mut copy) = d.whole_copy()?;
    let stored = opts
        .writer(repo, progress)
        .and_then(|mut w| w.add_file(&file, &mut copy).map(|facts| (w, facts)));
    let (writer, facts) = match stored {
        Ok(s) => s,
        Err(e) => {
            copy.abort();
            return Err(e);
        }
    };
    copy.finish(&mut manifest)?;
    manifest.add_file(&file, facts.size, &facts.sha256);
    commit_source(
        writer,
        manifest,
        opts.meta,
        Some(&file),
        Default::default(),
        Vec::new(),
    )
}

/// Back up the selected tables as CSV, all read at one instant, with the
/// schema to load them back and a manifest.
pub fn backup_tables(
    repo: &Arc<Repository>,
    d: &mut dyn Dialect,
    topts: &TablesOptions,
    opts: BackupSettings,
    progress: &Progress,
) -> Result<BackupReport> {
    let filter = TableFilter::new(topts)?;
    let mut manifest = Manifest::new(d.kind(), "tables", d.display());
    d.begin_snapshot()?;
    d.describe(&mut manifest)?;
    let database = d.database_for_messages();
    let tables = d.list_tables()?;
    let mut chosen = Vec::new();
    let mut left_out = Vec::new();
    for t in &tables {
        match filter.select(t.schema(), t.name(), &t.column_names()) {
            Selection::Left => left_out.push(t),
            s => chosen.push((t, s)),
        }
    }
    topts.check_tenant_found(chosen.iter().map(|(_, s)| *s), &database)?;
    if chosen.is_empty() && topts.queries.is_empty() {
        return Err(EngineError::Invalid(format!(
            "no table of {database} matches the selection; no snapshot was written"
        )));
    }
    let mut warnings = topts.query_warnings();
    let queries: Vec<(&str, &str)> = topts
        .queries
        .iter()
        .map(|(name, sql)| (name.as_str(), sql.trim().trim_end_matches(';').trim()))
        .collect();
    let mut columns = Vec::new();
    for (_, sql) in &queries {
        columns.push(d.describe_query(sql)?);
    }

    let mut writer = opts.writer(repo, progress)?;
    let kept: Vec<&_> = chosen.iter().map(|(t, _)| *t).collect();
    warnings.extend(d.write_schema(
        &kept,
        &left_out,
        &mut Out {
            writer: &mut writer,
            manifest: &mut manifest,
        },
    )?);

    let mut items = Vec::new();
    let mut entries = Vec::new();
    for (t, selection) in &chosen {
        let file = table_file("tables", &t.display_name());
        let tenant = topts
            .tenant
            .as_ref()
            .filter(|_| *selection == Selection::TenantRows);
        entries.push((t.display_name(), t.parts.clone(), t.columns.clone()));
        items.push(Export {
            file,
            what: Exportable::Table { table: t, tenant },
        });
    }
    for ((name, sql), columns) in queries.iter().zip(&columns) {
        entries.push((name.to_string(), vec![name.to_string()], columns.clone()));
        items.push(Export {
            file: table_file("queries", name),
            what: Exportable::Query { sql, columns },
        });
    }
    let exported = d.export(&items, &mut writer)?;
    for ((item, (name, parts, columns)), e) in items.iter().zip(entries).zip(exported) {
        manifest.add_file(&item.file, e.facts.size, &e.facts.sha256);
        manifest.tables.push(ManifestTable {
            name,
            parts,
            rows: e.rows,
            file: Some(item.file.clone()),
            columns,
        });
    }
    d.end_snapshot()?;

    topts.describe_in(&mut manifest);
    commit_source(
        writer,
        manifest,
        opts.meta,
        None,
        Default::default(),
        warnings,
    )
}

/// A file name for a database's dump: its name, made safe.
pub fn dump_file_name(database: &str, ext: &str) -> String {
    let clean: String = database
        .chars()
        .map(|c| {
            if c == '/' || c == '\0' || c.is_control() {
                '_'
            } else {
                c
            }
        })
        .collect();
    let base = if clean.is_empty() || clean == "." || clean == ".." || clean == "manifest" {
        format!("database-{clean}")
    } else {
        clean
    };
    format!("{base}.{ext}")
}

/// The manifest's tables, in the order the dump holds them.
pub(crate) fn manifest_tables(tables: Vec<TableRows>) -> Vec<ManifestTable> {
    tables
        .into_iter()
        .map(|t| ManifestTable {
            name: t.display_name(),
            parts: t.parts,
            rows: t.rows,
            file: None,
            columns: Vec::new(),
        })
        .collect()
}

/// Finish a database or stream snapshot: write `manifest.json` (with the
/// warnings, if any), then the snapshot — its path is the (redacted)
/// address, its `holdfast.source` the manifest's summary plus `extra`.
pub(crate) fn commit_source(
    mut writer: SnapshotWriter,
    mut manifest: Manifest,
    mut meta: SnapshotMeta,
    main_file: Option<&str>,
    extra: serde_json::Map<String, serde_json::Value>,
    warnings: Vec<String>,
) -> Result<BackupReport> {
    if !warnings.is_empty() {
        manifest
            .extra
            .insert("warnings".into(), serde_json::json!(warnings));
    }
    writer.add_bytes(
        holdfast_format::manifest::MANIFEST_FILE,
        &manifest.to_json(),
    )?;
    meta.paths = vec![manifest.source.clone()];
    let mut summary = holdfast_format::manifest::source_summary(&manifest, main_file);
    if let Some(o) = summary.get_mut("source").and_then(|v| v.as_object_mut()) {
        o.extend(extra);
    }
    meta.add_extra(summary);
    let (snapshot_id, snapshot) = writer.commit(meta)?;
    Ok(BackupReport {
        warnings,
        table_rows: manifest
            .tables
            .into_iter()
            .map(|t| (t.name, t.rows))
            .collect(),
        ..BackupReport::new(snapshot_id, snapshot)
    })
}

/// Stream a tool's stdout through `scanner` into the snapshot as `file`;
/// the tool is killed if storing fails, and its exit status checked after.
pub(crate) fn store_tool_output<S: StreamScanner>(
    writer: &mut dyn FileSink,
    file: &str,
    child: crate::command::Spawned,
    stdout: impl std::io::Read,
    scanner: S,
) -> Result<(FileFacts, S)> {
    let mut reader = ScanningReader::new(stdout, scanner);
    let facts = child.alongside(|| writer.add_file(file, &mut reader))?;
    Ok((facts, reader.scanner))
}
