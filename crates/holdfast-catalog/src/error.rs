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
    Conflict(String),
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
                CatalogError::Conflict(format!("already exists ({})", d.message()))
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
