-- See migrations/sqlite/0011_device_rates.sql.
CREATE TABLE device_rates (
    id BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    class TEXT NOT NULL,
    hashes_per_s BIGINT NOT NULL CHECK (hashes_per_s > 0),
    at BIGINT NOT NULL
);
CREATE INDEX device_rates_class_at ON device_rates (class, at DESC);
