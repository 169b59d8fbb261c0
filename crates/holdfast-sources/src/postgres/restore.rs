//! `restore SNAPSHOT --to postgres://…/DB`: the dump loaded by psql in one
//! transaction (`--single-transaction`, `ON_ERROR_STOP`), so a failure
//! leaves nothing half-loaded; then every table's row count is compared
//! with the manifest.
//!
//! The target database is created when absent. An existing database must
//! be empty, unless `clean` — then it is dropped and created again.

use holdfast_engine::repository::Repository;
use holdfast_engine::{EngineError, Result};
use holdfast_format::snapshot::Snapshot;

use super::PgClient;
use super::copy_text::csv_to_copy_text;
use crate::command::Spawned;
use crate::db_restore::{FeedPart, RestoreReport, feed_parts, verify_counts};
use crate::dump_scan::postgres::quote_ident;
use crate::progress::Progress;
use holdfast_format::manifest::{Manifest, ManifestTable};

pub struct PgRestoreOptions {
    /// Drop and recreate a target database that is not empty.
    pub clean: bool,
}

/// Objects that make a database "not empty": relations, functions and
/// schemas besides the built-in ones.
const USER_OBJECTS: &str = "SELECT \
    (SELECT count(*) FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace \
      WHERE n.nspname <> 'information_schema' AND n.nspname !~ '^pg_') + \
    (SELECT count(*) FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace \
      WHERE n.nspname <> 'information_schema' AND n.nspname !~ '^pg_') + \
    (SELECT count(*) FROM pg_namespace n \
      WHERE n.nspname NOT IN ('public', 'information_schema') AND n.nspname !~ '^pg_');";

/// The database to connect to for CREATE/DROP DATABASE.
fn maintenance_db(client: &PgClient) -> Result<String> {
    let mut last = None;
    for db in ["postgres", "template1"] {
        match client.query(db, "SELECT 1;", &[]) {
            Ok(_) => return Ok(db.to_string()),
            Err(e) => last = Some(e),
        }
    }
    Err(last.expect("tried at least one"))
}

/// Count the rows of every manifest table in `database`.
pub fn count_rows(client: &PgClient, database: &str, manifest: &Manifest) -> Result<Vec<u64>> {
    if manifest.tables.is_empty() {
        return Ok(Vec::new());
    }
    let selects: Vec<String> = manifest
        .tables
        .iter()
        .enumerate()
        .map(|(i, t)| {
            let name: Vec<String> = t.parts.iter().map(|p| quote_ident(p)).collect();
            format!("SELECT {i}, count(*) FROM {}", name.join("."))
        })
        .collect();
    let sql = format!("{};", selects.join(" UNION ALL "));
    let rows = client.query(database, &sql, &[])?;
    let mut counts = vec![0u64; manifest.tables.len()];
    for r in rows {
        let (Some(i), Some(n)) = (
            r.first().and_then(|v| v.parse::<usize>().ok()),
            r.get(1).and_then(|v| v.parse::<u64>().ok()),
        ) else {
            return Err(EngineError::source(format!(
                "unexpected row count output {r:?}"
            )));
        };
        if let Some(c) = counts.get_mut(i) {
            *c = n;
        }
    }
    Ok(counts)
}

/// Make `client`'s database ready to load into: created when absent;
/// refused when it holds objects, unless `clean` (then dropped and created
/// again). Returns (database, created).
fn prepare_target(
    client: &mut PgClient,
    manifest: &Manifest,
    clean: bool,
) -> Result<(String, bool)> {
    let target = client.addr.database.clone();
    let maint = maintenance_db(client)?;
    let server = client.server_info(&maint)?;
    client.pick_tools(&server)?;
    let exists = client.query(
        &maint,
        "SELECT count(*) FROM pg_database WHERE datname = :'db';",
        &[("db", &target)],
    )?;
    let exists = exists
        .first()
        .and_then(|r| r.first())
        .map(|v| v != "0")
        .unwrap_or(false);
    let mut created = false;
    if exists {
        let objects = client.query(&target, USER_OBJECTS, &[])?;
        let objects: u64 = objects
            .first()
            .and_then(|r| r.first())
            .and_then(|v| v.parse().ok())
            .unwrap_or(0);
        if objects > 0 {
            if !clean {
                return Err(EngineError::Invalid(format!(
                    "the target database {target:?} is not empty ({objects} tables, functions or schemas): \
                     restore into a new database, or add --clean to drop and recreate it"
                )));
            }
            let force = if server.major() >= 13 {
                " WITH (FORCE)"
            } else {
                ""
            };
            client.query(
                &maint,
                &format!("DROP DATABASE :\"db\"{force};"),
                &[("db", &target)],
            )?;
        }
    }
    if !exists || clean {
        let encoding = manifest
            .extra
            .get("encoding")
            .and_then(|e| e.as_str())
            .unwrap_or("UTF8")
            .to_string();
        let still = client.query(
            &maint,
            "SELECT count(*) FROM pg_database WHERE datname = :'db';",
            &[("db", &target)],
        )?;
        if still
            .first()
            .and_then(|r| r.first())
            .map(|v| v == "0")
            .unwrap_or(true)
        {
            client.query(
                &maint,
                "CREATE DATABASE :\"db\" TEMPLATE template0 ENCODING :'enc';",
                &[("db", &target), ("enc", &encoding)],
            )?;
            created = true;
        }
    }

    Ok((target, created))
}

/// Make the target ready ([`prepare_target`]), then feed `parts` to one
/// psql session in one transaction (`--single-transaction`,
/// `ON_ERROR_STOP`): a failure rolls everything back, and a database this
/// restore created is dropped again. Returns (database, created, bytes).
fn load_into_target(
    repo: &Repository,
    snapshot: &Snapshot,
    manifest: &Manifest,
    client: &mut PgClient,
    clean: bool,
    parts: &[FeedPart],
    progress: &Progress,
) -> Result<(String, bool, u64)> {
    let (target, created) = prepare_target(client, manifest, clean)?;
    let mut cmd = client.command(&client.tools.psql, &target);
    cmd.args([
        "-X",
        "-q",
        "-w",
        "-v",
        "ON_ERROR_STOP=1",
        "--single-transaction",
        "-o",
        "/dev/null",
    ]);
    let fed = Spawned::start_feeding(cmd, "psql").and_then(|(mut loader, stdin)| {
        loader.set_consequence("the restore was rolled back");
        feed_parts(repo, snapshot, manifest, parts, loader, stdin, progress)
    });
    match fed {
        Ok(bytes) => Ok((target, created, bytes)),
        Err(e) => {
            if created {
                let _ = drop_database(client, &target);
            }
            Err(e)
        }
    }
}

pub fn restore_pg_dump(
    repo: &Repository,
    snapshot: &Snapshot,
    manifest: &Manifest,
    client: &mut PgClient,
    opts: &PgRestoreOptions,
    progress: &Progress,
) -> Result<RestoreReport> {
    let file = manifest
        .files
        .first()
        .map(|f| f.path.clone())
        .ok_or_else(|| EngineError::Invalid("the manifest lists no dump file".into()))?;
    let (target, created, bytes) = load_into_target(
        repo,
        snapshot,
        manifest,
        client,
        opts.clean,
        &[FeedPart::File(file)],
        progress,
    )?;

    let found = count_rows(client, &target, manifest)?;
    let tables = verify_counts(manifest, &found)?;
    Ok(RestoreReport {
        target: client.display(),
        database: target,
        created,
        bytes,
        tables,
        resumed_after: 0,
    })
}

/// Restore a tables-mode snapshot: one psql session, one transaction —
/// the pre-data DDL, every table's CSV through `COPY … FROM STDIN`, then
/// indexes, constraints and triggers, then the sequences' values. Any
/// failure (a bad row, a violated constraint, a file that does not match
/// the manifest) rolls the whole load back.
pub fn restore_pg_tables(
    repo: &Repository,
    snapshot: &Snapshot,
    manifest: &Manifest,
    client: &mut PgClient,
    opts: &PgRestoreOptions,
    progress: &Progress,
) -> Result<RestoreReport> {
    let tables: Vec<ManifestTable> = manifest.restorable_tables().into_iter().cloned().collect();
    let mut parts = vec![
        FeedPart::Text("SET client_encoding = 'UTF8';\n".into()),
        FeedPart::File("schema.sql".into()),
    ];
    for t in &tables {
        let Some(file) = &t.file else {
            return Err(EngineError::Invalid(format!(
                "the manifest names no file for table {}",
                t.name
            )));
        };
        let name: Vec<String> = t.parts.iter().map(|p| quote_ident(p)).collect();
        // generated columns are exported but computed again by the database
        let cols: Vec<String> = t.loaded_columns().map(|c| quote_ident(&c.name)).collect();
        let computed = t.generated_positions();
        // Text format, not the stored CSV: see csv_to_copy_text.
        parts.push(FeedPart::Text(format!(
            "COPY {} ({}) FROM STDIN;\n",
            name.join("."),
            cols.join(", ")
        )));
        parts.push(FeedPart::Converted {
            file: file.clone(),
            convert: Box::new(move |r, w| csv_to_copy_text(r, w, &computed)),
        });
        parts.push(FeedPart::Text("\\.\n".into()));
    }
    parts.push(FeedPart::File("schema-post.sql".into()));
    parts.push(FeedPart::File("sequences.sql".into()));

    let (target, created, bytes) = load_into_target(
        repo, snapshot, manifest, client, opts.clean, &parts, progress,
    )?;
    let mut only_tables = manifest.clone();
    only_tables.tables = tables;
    let found = count_rows(client, &target, &only_tables)?;
    let tables = verify_counts(&only_tables, &found)?;
    Ok(RestoreReport {
        target: client.display(),
        database: target,
        created,
        bytes,
        tables,
        resumed_after: 0,
    })
}

/// Drop a database this restore created (after a failed load, so a retry
/// starts from nothing).
fn drop_database(client: &PgClient, database: &str) -> Result<()> {
    let maint = maintenance_db(client)?;
    client.query(
        &maint,
        "DROP DATABASE IF EXISTS :\"db\";",
        &[("db", database)],
    )?;
    Ok(())
}
