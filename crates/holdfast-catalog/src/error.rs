/// What can go wrong in the catalog. The service maps each variant to one
/// HTTP status (`Unavailable` → 503, `NotFound` → 404, `Conflict` → 409,
/// `Invalid` → 422).
#[derive(Debug, thiserror::Error)]
pub enum CatalogError {
    /// The database cannot be reached (connection refused, pool timed out).
    #[error("catalog unavailable: {0}")]
    Unavailable(String),
    #[error("{what} not found")]
    NotFound { what: &'static str },
    /// A unique name taken, or a state that does not allow the change.
    #[error("{0}")]
    Conflict(Conflict),
    #[error("invalid {field}: {message}")]
    Invalid { field: String, message: String },
    /// Any other database error.
    #[error("catalog error: {0}")]
    Database(String),
    /// A sealed secret that does not open under the server key.
    #[error("{0}")]
    Sealed(String),
}

impl CatalogError {
    pub(crate) fn db(e: sqlx::Error) -> CatalogError {
        match &e {
            sqlx::Error::Io(_)
            | sqlx::Error::PoolTimedOut
            | sqlx::Error::PoolClosed
            | sqlx::Error::Protocol(_)
            | sqlx::Error::WorkerCrashed => CatalogError::Unavailable(e.to_string()),
            // PostgreSQL going away: connection exceptions (class 08), and
            // an administrator's or a crash's shutdown, or one starting up
            sqlx::Error::Database(d)
                if d.code().is_some_and(|c| {
                    c.starts_with("08") || matches!(&*c, "57P01" | "57P02" | "57P03")
                }) =>
            {
                CatalogError::Unavailable(d.message().to_string())
            }
            sqlx::Error::Database(d) if d.is_unique_violation() => {
                CatalogError::Conflict(Conflict::Exists(d.message().to_string()))
            }
            _ => CatalogError::Database(e.to_string()),
        }
    }

    pub(crate) fn invalid(field: &str, message: impl Into<String>) -> CatalogError {
        CatalogError::Invalid {
            field: field.to_string(),
            message: message.into(),
        }
    }
}

/// Why a change conflicts with what the catalog holds: typed, so that the
/// service can say it in the reader's language and tests need not match
/// text.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Conflict {
    /// A live source or tenant of this name exists.
    #[error("a {what} named {name:?} exists")]
    NameTaken { what: &'static str, name: String },
    /// A run (backup, restore, deletion) whose lease passed to another
    /// worker, or that finished meanwhile.
    #[error("{what} {id} is no longer held by this worker{}", status.as_deref().map(|s| format!(" (status {s})")).unwrap_or_default())]
    NotHeld {
        what: &'static str,
        id: String,
        status: Option<String>,
    },
    /// A backup in a state that does not allow the action.
    #[error("backup {id} is {status}: {}", needs.text())]
    State {
        id: String,
        status: String,
        needs: Needs,
    },
    /// A job of this kind is already queued or running for the same thing
    /// (one verification of a repository at a time).
    #[error("{what} {id} is still {status}: wait until it has finished")]
    Pending {
        what: &'static str,
        id: String,
        status: String,
    },
    /// Another unique value taken (the database's words).
    #[error("already exists ({0})")]
    Exists(String),
    /// A catalog migrated by a newer holdfast.
    #[error(
        "the catalog has schema version {current}, newer than this holdfast knows ({newest}): upgrade holdfast"
    )]
    SchemaNewer { current: i64, newest: i64 },
    /// A copy's destination that holds rows.
    #[error("{url} is not empty ({rows} rows in {table}): copy only into a new catalog")]
    NotEmpty {
        url: String,
        rows: i64,
        table: &'static str,
    },
}

/// The state an action needs of a backup.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Needs {
    /// Retry: only a failed backup.
    Failed,
    /// Delete: once it has finished (succeeded or failed).
    Finished,
    /// Restore: only a succeeded backup.
    Succeeded,
}

impl Needs {
    pub fn text(self) -> &'static str {
        match self {
            Needs::Failed => "only a failed backup can be retried",
            Needs::Finished => "delete it once it has finished",
            Needs::Succeeded => "only a finished backup can be restored",
        }
    }
}

/// `what` `id` is not held by the worker that names it (it moved on to
/// `status`, or its lease passed to another).
pub(crate) fn not_held(what: &'static str, id: &str, status: Option<&str>) -> CatalogError {
    CatalogError::Conflict(Conflict::NotHeld {
        what,
        id: id.to_string(),
        status: status.map(str::to_string),
    })
}
