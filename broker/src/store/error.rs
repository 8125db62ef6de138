//! [`StoreError`]: why the store or the books refused a write. Each refusal names what it is about
//! with the stable code the HTTP API answers (`http/error.rs` maps them once); the CLI prints the
//! message. Decided by the database where a race could change the answer (a unique key, an update
//! that found no row), never by a read before the write.

/// A refused write; nothing changed.
#[derive(Debug)]
pub enum StoreError {
    /// No such site, partner or content item (the code says which: `site`, `partner`, `content`).
    NotFound(&'static str),
    /// A value out of its form or range; the code names it (`bad_name`, `bad_commission`, …).
    Invalid(&'static str),
    /// A row with this key exists already (`period_exists`, `site_exists`).
    Conflict(&'static str),
    /// The database or a value in it failed.
    Internal(anyhow::Error),
}

impl std::fmt::Display for StoreError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            StoreError::NotFound(what) => write!(f, "no such {what}"),
            StoreError::Invalid(code) => write!(f, "invalid value ({code})"),
            StoreError::Conflict(code) => write!(f, "already exists ({code})"),
            StoreError::Internal(error) => write!(f, "{error:#}"),
        }
    }
}

impl std::error::Error for StoreError {}

impl From<anyhow::Error> for StoreError {
    fn from(error: anyhow::Error) -> StoreError {
        StoreError::Internal(error)
    }
}

impl From<sqlx::Error> for StoreError {
    fn from(error: sqlx::Error) -> StoreError {
        StoreError::Internal(error.into())
    }
}

/// Whether `error` is a unique-key violation (the database decided a race or a duplicate).
pub(crate) fn is_unique_violation(error: &anyhow::Error) -> bool {
    error
        .downcast_ref::<sqlx::Error>()
        .and_then(|e| e.as_database_error())
        .is_some_and(|e| e.is_unique_violation())
}
