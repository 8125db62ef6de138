-- Hash rates the broker measured from verified shares of finished sessions, by device class
-- (`estimate::class_key`: engine/cores/build): the consent dialog's unlock-time estimate for the next
-- visitor of that class. No user, site or address: a device class and a number.
CREATE TABLE device_rates (
    id INTEGER PRIMARY KEY,
    class TEXT NOT NULL,
    hashes_per_s INTEGER NOT NULL CHECK (hashes_per_s > 0),
    at INTEGER NOT NULL
);
CREATE INDEX device_rates_class_at ON device_rates (class, at DESC);
