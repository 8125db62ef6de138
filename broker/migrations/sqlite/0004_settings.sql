-- Broker-wide values that must outlive a restart, such as the key that signs resume tokens (so a
-- client reconnecting after a crash resumes its session).
CREATE TABLE settings (
    name  TEXT PRIMARY KEY,
    value TEXT NOT NULL
);
