//! The store's statements (`sql/`) compiled for PostgreSQL.

pub(crate) type Db = sqlx::Postgres;
pub(crate) const PG: bool = true;

// The same statements are compiled once per backend, on purpose.
#[allow(clippy::duplicate_mod)]
#[path = "../sql/mod.rs"]
pub(crate) mod sql;
