//! The books' statements (`sql/`) compiled for SQLite.

pub(crate) type Db = sqlx::Sqlite;
pub(crate) const PG: bool = false;

// The same statements are compiled once per backend, on purpose.
#[allow(clippy::duplicate_mod)]
#[path = "../sql/mod.rs"]
pub(crate) mod sql;
