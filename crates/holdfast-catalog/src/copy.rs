//! Copying a whole catalog into a new, empty one: how a single node on
//! SQLite grows into several on PostgreSQL (`holdfast catalog copy`).
//!
//! Invariants: the destination is at the same schema version (both were
//! opened, so both are migrated) and holds no rows; every row is copied
//! verbatim — sealed secrets stay sealed under the same server key, the
//! audit chain's hashes stay as they were, so `audit verify` passes on the
//! copy and the audit anchors still match; the copy is one transaction on
//! the destination, so a failure leaves it empty. Tables go in the order
//! their foreign keys need.

use sqlx::any::AnyTypeInfoKind;
use sqlx::{AssertSqlSafe, Column, Row};

use crate::{Catalog, CatalogError, Conflict, Result};

/// Every table, parents first, with the column that orders its rows.
const TABLES: &[(&str, &str)] = &[
    ("tenants", "id"),
    ("tokens", "id"),
    ("sources", "id"),
    ("backups", "id"),
    ("restores", "id"),
    ("verifications", "id"),
    ("channels", "id"),
    ("notifications", "id"),
    ("notify_cursor", "name"),
    ("audit_log", "seq"),
    ("job_slots", "name, slot"),
    ("ui_sessions", "id"),
];

/// Rows copied per table.
pub type CopyReport = Vec<(&'static str, u64)>;

/// A value as the catalog stores it: portable SQL has only these.
enum Value {
    Int(Option<i64>),
    Text(Option<String>),
}

/// Column `i` of `row` by its declared type; by its value where the
/// driver does not say (a NULL of an undeclared column is text: every
/// column but the counters is).
fn value(row: &sqlx::any::AnyRow, i: usize, kind: AnyTypeInfoKind) -> Result<Value> {
    let int = || row.try_get::<Option<i64>, _>(i).map(Value::Int);
    let text = || row.try_get::<Option<String>, _>(i).map(Value::Text);
    match kind {
        AnyTypeInfoKind::BigInt | AnyTypeInfoKind::Integer | AnyTypeInfoKind::SmallInt => int(),
        AnyTypeInfoKind::Text => text(),
        _ => int().or_else(|_| text()),
    }
    .map_err(CatalogError::db)
}

impl Catalog {
    /// Copy every row of this catalog into `dest`, which must be empty.
    pub async fn copy_into(&self, dest: &Catalog) -> Result<CopyReport> {
        for (table, _) in TABLES {
            let n: i64 = sqlx::query(AssertSqlSafe(format!("SELECT count(*) AS n FROM {table}")))
                .fetch_one(dest.pool())
                .await
                .map_err(CatalogError::db)?
                .try_get("n")
                .map_err(CatalogError::db)?;
            if n > 0 {
                return Err(CatalogError::Conflict(Conflict::NotEmpty {
                    url: dest.shown_url().to_string(),
                    rows: n,
                    table,
                }));
            }
        }
        let mut w = dest.write().await?;
        let mut report = Vec::new();
        for (table, order) in TABLES {
            let rows = sqlx::query(AssertSqlSafe(format!(
                "SELECT * FROM {table} ORDER BY {order}"
            )))
            .fetch_all(self.pool())
            .await
            .map_err(CatalogError::db)?;
            for row in &rows {
                let names: Vec<String> =
                    row.columns().iter().map(|c| c.name().to_string()).collect();
                let values: Vec<Value> = row
                    .columns()
                    .iter()
                    .enumerate()
                    .map(|(i, c)| value(row, i, c.type_info().kind()))
                    .collect::<Result<_>>()?;
                let placeholders: Vec<String> =
                    (1..=names.len()).map(|i| format!("${i}")).collect();
                let sql = format!(
                    "INSERT INTO {table} ({}) VALUES ({})",
                    names.join(", "),
                    placeholders.join(", ")
                );
                // built from the fixed table list and the source's own
                // column names (the schema), never from outside input
                let mut q = sqlx::query(AssertSqlSafe(sql));
                for v in values {
                    q = match v {
                        Value::Int(v) => q.bind(v),
                        Value::Text(v) => q.bind(v),
                    };
                }
                q.execute(&mut *w.tx).await.map_err(CatalogError::db)?;
            }
            report.push((*table, rows.len() as u64));
        }
        w.commit().await?;
        Ok(report)
    }
}
