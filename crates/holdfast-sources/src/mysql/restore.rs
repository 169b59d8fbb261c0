//! `restore SNAPSHOT --to mysql://…/DB`: the dump fed to the `mariadb` (or
//! `mysql`) client, then every table's row count compared with the
//! manifest.
//!
//! The target database is created when absent, with the character set and
//! collation the dumped database had. An existing database must be empty,
//! unless `clean` — then it is dropped and created again.
//!
//! MySQL commits every CREATE TABLE on its own, so a load cannot run in one
//! transaction as PostgreSQL's does. Instead, when the load fails (the
//! client stops at the first failed statement, or the dump read back does
//! not match its SHA-256), the database is put back as it was before the
//! load: dropped if the restore created it, emptied (dropped and created
//! again) if it existed empty.

use holdfast_engine::repository::Repository;
use holdfast_engine::{EngineError, Result};
use holdfast_format::snapshot::Snapshot;

use super::{MyClient, sql_string};
use crate::command::Spawned;
use crate::db_restore::{FeedPart, RestoreReport, feed_parts, verify_counts};
use crate::dump_scan::mysql::quote_ident;
use crate::progress::Progress;
use holdfast_format::manifest::Manifest;

pub struct MyRestoreOptions {
    /// Drop and recreate a target database that is not empty.
    pub clean: bool,
}

/// Tables counted per statement: a statement opens all of its tables at
/// once, and servers limit open tables.
const COUNT_BATCH: usize = 100;

/// A database's default character set and collation.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Charset {
    character_set: String,
    collation: String,
}

/// The database's character set, if it exists (and we may see it).
fn existing(client: &MyClient, db: &str) -> Result<Option<Charset>> {
    let rows = client.query(
        None,
        &format!(
            "SELECT DEFAULT_CHARACTER_SET_NAME, DEFAULT_COLLATION_NAME \
             FROM information_schema.SCHEMATA WHERE SCHEMA_NAME = {};",
            sql_string(db)
        ),
    )?;
    Ok(rows.into_iter().next().map(|mut r| {
        r.resize(2, String::new());
        Charset {
            character_set: std::mem::take(&mut r[0]),
            collation: std::mem::take(&mut r[1]),
        }
    }))
}

/// Tables, views, routines and events in `db`: what makes it "not empty".
fn object_count(client: &MyClient, db: &str) -> Result<u64> {
    let name = sql_string(db);
    let rows = client.query(
        None,
        &format!(
            "SELECT \
               (SELECT COUNT(*) FROM information_schema.TABLES WHERE TABLE_SCHEMA = {name}) + \
               (SELECT COUNT(*) FROM information_schema.ROUTINES WHERE ROUTINE_SCHEMA = {name}) + \
               (SELECT COUNT(*) FROM information_schema.EVENTS WHERE EVENT_SCHEMA = {name});"
        ),
    )?;
    rows.first()
        .and_then(|r| r.first())
        .and_then(|v| v.parse().ok())
        .ok_or_else(|| EngineError::source(format!("unexpected object count output {rows:?}")))
}

fn create_database(client: &MyClient, db: &str, cs: &Charset) -> Result<()> {
    let mut sql = format!(
        "CREATE DATABASE {} CHARACTER SET {}",
        quote_ident(db),
        quote_ident(&cs.character_set)
    );
    if !cs.collation.is_empty() {
        sql.push_str(&format!(" COLLATE {}", quote_ident(&cs.collation)));
    }
    sql.push(';');
    client.query(None, &sql).map(drop)
}

fn drop_database(client: &MyClient, db: &str) -> Result<()> {
    client
        .query(None, &format!("DROP DATABASE {};", quote_ident(db)))
        .map(drop)
}

/// The character set the dumped database had (`utf8mb4` for manifests
/// that do not say).
fn dumped_charset(manifest: &Manifest) -> Charset {
    let get = |k: &str| {
        manifest
            .extra
            .get(k)
            .and_then(|v| v.as_str())
            .unwrap_or("")
            .to_string()
    };
    let character_set = get("character_set");
    if character_set.is_empty() {
        return Charset {
            character_set: "utf8mb4".into(),
            collation: String::new(),
        };
    }
    Charset {
        character_set,
        collation: get("collation"),
    }
}

/// Count the rows of every manifest table in `database`.
pub fn count_rows(client: &MyClient, database: &str, manifest: &Manifest) -> Result<Vec<u64>> {
    if manifest.tables.is_empty() {
        return Ok(Vec::new());
    }
    let selects: Vec<String> = manifest
        .tables
        .iter()
        .enumerate()
        .map(|(i, t)| {
            let name = t.parts.last().map(String::as_str).unwrap_or(&t.name);
            format!("SELECT {i}, COUNT(*) FROM {}", quote_ident(name))
        })
        .collect();
    let sql: String = selects
        .chunks(COUNT_BATCH)
        .map(|c| format!("{};\n", c.join(" UNION ALL ")))
        .collect();
    let rows = client.query(Some(database), &sql)?;
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

/// Make the target database ready (created when absent; refused when not
/// empty unless `clean`), feed it `parts` through the client, and undo the
/// load if it fails — MySQL cannot roll DDL back, so the database is
/// dropped (and recreated empty if it existed before). Returns (database,
/// created, bytes fed).
pub(super) fn load_into_target(
    repo: &Repository,
    snapshot: &Snapshot,
    manifest: &Manifest,
    client: &MyClient,
    clean: bool,
    parts: &[FeedPart],
    progress: &Progress,
) -> Result<(String, bool, u64)> {
    let loader_program = client.tools.client()?.to_path_buf();
    let target = client.addr.database.clone();

    // What the database is before the load, to put it back on failure:
    // None when the restore creates it.
    let mut before = existing(client, &target)?;
    if before.is_some() {
        let objects = object_count(client, &target)?;
        if objects > 0 {
            if !clean {
                return Err(EngineError::Invalid(format!(
                    "the target database {target:?} is not empty ({objects} tables, views, routines or events): \
                     restore into a new database, or add --clean to drop and recreate it"
                )));
            }
            drop_database(client, &target)?;
            before = None;
        }
    }
    let created = before.is_none();
    if created {
        create_database(client, &target, &dumped_charset(manifest))?;
    }

    let mut cmd = client.command(&loader_program);
    cmd.args([
        "--batch",
        "--default-character-set=utf8mb4",
        "--max-allowed-packet=1G",
        super::CONNECT_TIMEOUT,
    ])
    .arg(format!("--database={target}"));
    let name = loader_program
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| "mysql".into());
    let loaded = Spawned::start_feeding(cmd, &name).and_then(|(mut loader, stdin)| {
        loader.set_consequence("the restore was rolled back");
        feed_parts(repo, snapshot, manifest, parts, loader, stdin, progress)
    });
    match loaded {
        Ok(bytes) => Ok((target, created, bytes)),
        Err(e) => {
            // Put the database back as it was before the load.
            let undo = drop_database(client, &target).and_then(|()| match &before {
                Some(cs) => create_database(client, &target, cs),
                None => Ok(()),
            });
            Err(match undo {
                Ok(()) => e,
                Err(u) => EngineError::source(format!(
                    "{e}\n(but removing the partial restore failed: {u}; the database {target:?} \
                     may hold part of the dump)"
                )),
            })
        }
    }
}

pub fn restore_mysql_dump(
    repo: &Repository,
    snapshot: &Snapshot,
    manifest: &Manifest,
    client: &MyClient,
    opts: &MyRestoreOptions,
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
