//! The schema, as numbered steps applied at start in one transaction each.
//! Portable SQL only: `TEXT` ids (UUIDv7), `TEXT` times (see `clock`),
//! `BIGINT` counters, JSON documents as `TEXT`.

use sqlx::Row;

use crate::{Catalog, CatalogError, Conflict, Result};

const STEPS: &[(i64, &str)] = &[
    (
        1,
        r#"
CREATE TABLE tenants (
    id TEXT PRIMARY KEY,
    name TEXT NOT NULL UNIQUE,
    repository TEXT NOT NULL,
    repository_password TEXT NOT NULL,
    created_at TEXT NOT NULL
);
CREATE TABLE tokens (
    id TEXT PRIMARY KEY,
    secret_hash TEXT NOT NULL UNIQUE,
    role TEXT NOT NULL,
    tenant_id TEXT REFERENCES tenants(id),
    label TEXT NOT NULL,
    created_at TEXT NOT NULL,
    created_by TEXT,
    revoked_at TEXT
);
CREATE TABLE sources (
    id TEXT PRIMARY KEY,
    tenant_id TEXT NOT NULL REFERENCES tenants(id),
    name TEXT NOT NULL,
    kind TEXT NOT NULL,
    target TEXT NOT NULL,
    options TEXT NOT NULL,
    schedule TEXT,
    retention TEXT NOT NULL,
    credentials TEXT,
    created_at TEXT NOT NULL,
    updated_at TEXT NOT NULL,
    deleted_at TEXT
);
CREATE INDEX sources_tenant ON sources (tenant_id, name);
CREATE TABLE backups (
    id TEXT PRIMARY KEY,
    tenant_id TEXT NOT NULL REFERENCES tenants(id),
    source_id TEXT NOT NULL REFERENCES sources(id),
    source_name TEXT NOT NULL,
    kind TEXT NOT NULL,
    status TEXT NOT NULL,
    requested_by TEXT,
    requested_by_label TEXT NOT NULL,
    snapshot_id TEXT,
    repository TEXT NOT NULL,
    size BIGINT,
    bytes_added BIGINT,
    counts TEXT,
    warnings TEXT NOT NULL,
    error TEXT,
    error_kind TEXT,
    attempts BIGINT NOT NULL,
    max_attempts BIGINT NOT NULL,
    run_after TEXT NOT NULL,
    lease_owner TEXT,
    lease_until TEXT,
    progress_at TEXT,
    queued_at TEXT NOT NULL,
    started_at TEXT,
    finished_at TEXT,
    deleted_at TEXT,
    slot TEXT
);
CREATE INDEX backups_tenant_id ON backups (tenant_id, id);
CREATE INDEX backups_queue ON backups (status, run_after);
CREATE UNIQUE INDEX backups_source_slot ON backups (source_id, slot);
CREATE TABLE restores (
    id TEXT PRIMARY KEY,
    tenant_id TEXT NOT NULL REFERENCES tenants(id),
    backup_id TEXT NOT NULL REFERENCES backups(id),
    target TEXT NOT NULL,
    status TEXT NOT NULL,
    requested_by TEXT,
    requested_by_label TEXT NOT NULL,
    verification TEXT,
    error TEXT,
    queued_at TEXT NOT NULL,
    started_at TEXT,
    finished_at TEXT
);
CREATE TABLE audit_log (
    seq BIGINT PRIMARY KEY,
    time TEXT NOT NULL,
    actor_token_id TEXT,
    actor_label TEXT NOT NULL,
    tenant_id TEXT,
    event TEXT NOT NULL,
    subject TEXT,
    metadata TEXT NOT NULL,
    prev_hash TEXT NOT NULL,
    hash TEXT NOT NULL
);
CREATE INDEX audit_tenant ON audit_log (tenant_id, seq);
"#,
    ),
    (
        2,
        r#"
CREATE TABLE job_slots (
    name TEXT NOT NULL,
    slot TEXT NOT NULL,
    node TEXT NOT NULL,
    claimed_at TEXT NOT NULL,
    PRIMARY KEY (name, slot)
);
ALTER TABLE restores ADD COLUMN source_id TEXT;
ALTER TABLE restores ADD COLUMN lease_owner TEXT;
ALTER TABLE restores ADD COLUMN lease_until TEXT;
CREATE INDEX restores_queue ON restores (status, queued_at)
"#,
    ),
    (
        3,
        r#"
CREATE INDEX backups_tenant_status ON backups (tenant_id, status, id);
CREATE INDEX backups_tenant_source ON backups (tenant_id, source_id, id);
CREATE INDEX audit_event ON audit_log (event, seq)
"#,
    ),
    (
        4,
        // A live source's name is unique within its tenant. Checking before
        // inserting is enough for SQLite's single writer, not for
        // PostgreSQL's concurrent transactions: the index decides there.
        r#"
CREATE UNIQUE INDEX sources_live_name ON sources (tenant_id, name) WHERE deleted_at IS NULL
"#,
    ),
    (
        5,
        // The trust boundary: each tenant's policy (what its operators may
        // reach on the host), and who set each source's and restore's
        // target. Sources from before: `admin` only when an admin token
        // created them and no other token changed them since (from the
        // audit log); everything else is held to the tenant's policy.
        r#"
ALTER TABLE tenants ADD COLUMN policy TEXT NOT NULL DEFAULT '{}';
ALTER TABLE sources ADD COLUMN defined_by TEXT NOT NULL DEFAULT 'operator';
UPDATE sources SET defined_by = 'admin'
 WHERE id IN (SELECT a.subject FROM audit_log a JOIN tokens t ON t.id = a.actor_token_id
               WHERE a.event = 'source_created' AND t.role = 'admin')
   AND id NOT IN (SELECT a.subject FROM audit_log a JOIN tokens t ON t.id = a.actor_token_id
                   WHERE a.event = 'source_updated' AND t.role <> 'admin');
ALTER TABLE restores ADD COLUMN defined_by TEXT NOT NULL DEFAULT 'operator'
"#,
    ),
    (
        6,
        // A tenant's own object storage credentials (sealed JSON), when an
        // admin gave it a bucket of its own.
        r#"
ALTER TABLE tenants ADD COLUMN storage_credentials TEXT
"#,
    ),
    (
        7,
        // Sign-in sessions of the web UI (see `sessions`), the indexes its
        // pages read by, and a running job's progress (bytes, files), which
        // its worker writes every few seconds.
        r#"
CREATE TABLE ui_sessions (
    id TEXT PRIMARY KEY,
    secret_hash TEXT NOT NULL UNIQUE,
    token_id TEXT NOT NULL REFERENCES tokens(id),
    csrf TEXT NOT NULL,
    created_at TEXT NOT NULL,
    expires_at TEXT NOT NULL,
    ended_at TEXT
);
CREATE INDEX audit_subject ON audit_log (subject, seq);
CREATE INDEX backups_tenant_kind ON backups (tenant_id, kind, id);
CREATE INDEX restores_backup ON restores (backup_id);
ALTER TABLE backups ADD COLUMN progress TEXT;
ALTER TABLE restores ADD COLUMN progress TEXT
"#,
    ),
    (
        8,
        // A restore over the source itself (replacing a database's
        // contents); the overview's "last successful restore" of each
        // source; and its last runs of each source read from the index
        // alone (a lookup into the table per run was half its time).
        r#"
ALTER TABLE restores ADD COLUMN in_place INTEGER NOT NULL DEFAULT 0;
CREATE INDEX restores_tenant_done ON restores (tenant_id, status, source_id, finished_at);
CREATE INDEX backups_tenant_source_runs ON backups
    (tenant_id, source_id, id, status, size, bytes_added, queued_at, started_at, finished_at);
DROP INDEX backups_tenant_source
"#,
    ),
    (
        9,
        // Restore drills: a restore into a scratch target the server owns,
        // verified and removed; listed apart from restores.
        r#"
ALTER TABLE restores ADD COLUMN drill INTEGER NOT NULL DEFAULT 0;
CREATE INDEX restores_tenant_drills ON restores (tenant_id, drill, id)
"#,
    ),
    (
        10,
        // Scheduled verification: `check` runs of a tenant's repository,
        // queued like restores; the backups whose snapshots they found
        // damaged are marked.
        r#"
CREATE TABLE verifications (
    id TEXT PRIMARY KEY,
    tenant_id TEXT NOT NULL REFERENCES tenants(id),
    repository TEXT NOT NULL,
    status TEXT NOT NULL,
    read_data TEXT NOT NULL,
    requested_by TEXT,
    requested_by_label TEXT NOT NULL,
    queued_at TEXT NOT NULL,
    started_at TEXT,
    finished_at TEXT,
    lease_owner TEXT,
    lease_until TEXT,
    summary TEXT,
    findings TEXT,
    damaged TEXT,
    error TEXT
);
CREATE INDEX verifications_tenant ON verifications (tenant_id, id);
CREATE INDEX verifications_due ON verifications (status, queued_at);
ALTER TABLE backups ADD COLUMN damaged_at TEXT;
ALTER TABLE backups ADD COLUMN damage TEXT
"#,
    ),
    (
        11,
        // Notifications: channels (URL and secret sealed), the outbox of
        // deliveries, and how far the audit log has been fanned out.
        r#"
CREATE TABLE channels (
    id TEXT PRIMARY KEY,
    tenant_id TEXT REFERENCES tenants(id),
    name TEXT NOT NULL,
    kind TEXT NOT NULL,
    url TEXT NOT NULL,
    url_shown TEXT NOT NULL,
    secret TEXT,
    events TEXT NOT NULL,
    settings TEXT NOT NULL,
    defined_by TEXT NOT NULL,
    created_at TEXT NOT NULL,
    updated_at TEXT NOT NULL,
    deleted_at TEXT,
    last_status TEXT,
    last_at TEXT,
    last_error TEXT
);
CREATE INDEX channels_tenant ON channels (tenant_id, name);
CREATE TABLE notifications (
    id TEXT PRIMARY KEY,
    channel_id TEXT NOT NULL REFERENCES channels(id),
    tenant_id TEXT,
    event TEXT NOT NULL,
    body TEXT NOT NULL,
    status TEXT NOT NULL,
    attempts BIGINT NOT NULL,
    run_after TEXT NOT NULL,
    lease_owner TEXT,
    lease_until TEXT,
    last_error TEXT,
    created_at TEXT NOT NULL,
    delivered_at TEXT
);
CREATE INDEX notifications_due ON notifications (status, run_after);
CREATE INDEX notifications_channel ON notifications (channel_id, id);
CREATE TABLE notify_cursor (
    name TEXT PRIMARY KEY,
    seq BIGINT NOT NULL
)
"#,
    ),
];

pub(crate) async fn apply(catalog: &Catalog) -> Result<()> {
    let mut w = catalog.write().await?;
    if w.dialect == crate::Dialect::Postgres {
        // nodes starting together: one migrates, the others wait and see it done
        w.run(sqlx::query("SELECT pg_advisory_xact_lock(7265726)"))
            .await?;
    }
    w.run(sqlx::query(
        "CREATE TABLE IF NOT EXISTS holdfast_schema (version BIGINT PRIMARY KEY, applied_at TEXT NOT NULL)",
    ))
    .await?;
    let current: i64 = sqlx::query("SELECT COALESCE(MAX(version), 0) AS v FROM holdfast_schema")
        .fetch_one(&mut *w.tx)
        .await
        .and_then(|r| r.try_get::<i64, _>("v"))
        .map_err(CatalogError::db)?;
    let newest = STEPS.last().map(|s| s.0).unwrap_or(0);
    if current > newest {
        return w
            .abort(CatalogError::Conflict(Conflict::SchemaNewer {
                current,
                newest,
            }))
            .await;
    }
    for (version, sql) in STEPS.iter().filter(|s| s.0 > current) {
        for statement in sql.split(';').map(str::trim).filter(|s| !s.is_empty()) {
            sqlx::query(statement)
                .execute(&mut *w.tx)
                .await
                .map_err(|e| CatalogError::Database(format!("schema step {version}: {e}")))?;
        }
        w.run(
            sqlx::query("INSERT INTO holdfast_schema (version, applied_at) VALUES ($1, $2)")
                .bind(*version)
                .bind(crate::clock::now()),
        )
        .await?;
    }
    w.commit().await
}
