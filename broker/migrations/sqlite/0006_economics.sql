-- Partner economics. Partners own sites and are paid their share of the pool's earnings minus the
-- operator's commission. Money is integer satoshis. The books are double-entry and append-only:
-- `entries` with `postings` that sum to zero; corrections are reversing entries; each entry carries a
-- hash chained over every earlier entry and its postings, so `minepass-broker ledger check` detects
-- an edited, inserted or deleted row even when the triggers below were bypassed.

CREATE TABLE partners (
    id             INTEGER PRIMARY KEY,
    partner_key    TEXT    NOT NULL UNIQUE,
    name           TEXT    NOT NULL,
    -- SHA-256 of the partner's dashboard key (shown once).
    secret_hash    TEXT    NOT NULL,
    -- The operator's commission on this partner in basis points; NULL: the global default.
    commission_bps INTEGER CHECK (commission_bps BETWEEN 0 AND 10000),
    created_at     INTEGER NOT NULL
);

ALTER TABLE sites ADD COLUMN partner_id INTEGER REFERENCES partners(id);

-- A period's earnings: what the pool paid (`recorded`) or the PPS estimate (`estimate`).
CREATE TABLE periods (
    id            INTEGER PRIMARY KEY,
    name          TEXT    NOT NULL UNIQUE,
    -- [starts_at, ends_at), Unix ms, over the time pool answers arrived.
    starts_at     INTEGER NOT NULL,
    ends_at       INTEGER NOT NULL,
    earnings_sats INTEGER NOT NULL CHECK (earnings_sats >= 0),
    source        TEXT    NOT NULL CHECK (source IN ('recorded', 'estimate')),
    created_at    INTEGER NOT NULL,
    CHECK (starts_at < ends_at)
);

CREATE TABLE entries (
    id         INTEGER PRIMARY KEY,
    -- earnings | settlement | payout | reversal
    kind       TEXT    NOT NULL,
    period_id  INTEGER REFERENCES periods(id),
    reverses   INTEGER REFERENCES entries(id),
    memo       TEXT    NOT NULL,
    created_at INTEGER NOT NULL,
    -- hex SHA-256 of the previous entry's chain and this entry with its postings.
    chain      TEXT    NOT NULL
);

CREATE TABLE postings (
    id       INTEGER PRIMARY KEY,
    entry_id INTEGER NOT NULL REFERENCES entries(id),
    -- assets:wallet | income:mining | income:commission | partner:<id>:payable
    account  TEXT    NOT NULL,
    -- Satoshis, debit positive; an entry's postings sum to zero.
    amount   INTEGER NOT NULL
);
CREATE INDEX postings_by_account ON postings (account);

-- A payout the settlement made due; paid when a `payout` entry names it.
CREATE TABLE payouts (
    id          INTEGER PRIMARY KEY,
    partner_id  INTEGER NOT NULL REFERENCES partners(id),
    period_id   INTEGER NOT NULL REFERENCES periods(id),
    amount_sats INTEGER NOT NULL CHECK (amount_sats > 0),
    due_entry   INTEGER NOT NULL REFERENCES entries(id),
    paid_entry  INTEGER UNIQUE REFERENCES entries(id),
    created_at  INTEGER NOT NULL
);

CREATE TRIGGER entries_no_update BEFORE UPDATE ON entries BEGIN SELECT RAISE(ABORT, 'entries are append-only'); END;
CREATE TRIGGER entries_no_delete BEFORE DELETE ON entries BEGIN SELECT RAISE(ABORT, 'entries are append-only'); END;
CREATE TRIGGER postings_no_update BEFORE UPDATE ON postings BEGIN SELECT RAISE(ABORT, 'postings are append-only'); END;
CREATE TRIGGER postings_no_delete BEFORE DELETE ON postings BEGIN SELECT RAISE(ABORT, 'postings are append-only'); END;
CREATE TRIGGER periods_no_update BEFORE UPDATE ON periods BEGIN SELECT RAISE(ABORT, 'periods are append-only'); END;
CREATE TRIGGER periods_no_delete BEFORE DELETE ON periods BEGIN SELECT RAISE(ABORT, 'periods are append-only'); END;
-- A payout row changes once: when it is paid.
CREATE TRIGGER payouts_paid_once BEFORE UPDATE ON payouts
    WHEN OLD.paid_entry IS NOT NULL OR NEW.amount_sats != OLD.amount_sats OR NEW.partner_id != OLD.partner_id
BEGIN SELECT RAISE(ABORT, 'a payout is paid once and never changed'); END;
CREATE TRIGGER payouts_no_delete BEFORE DELETE ON payouts BEGIN SELECT RAISE(ABORT, 'payouts are append-only'); END;
CREATE TRIGGER shares_no_update BEFORE UPDATE ON shares BEGIN SELECT RAISE(ABORT, 'shares are append-only'); END;
CREATE TRIGGER shares_no_delete BEFORE DELETE ON shares BEGIN SELECT RAISE(ABORT, 'shares are append-only'); END;
CREATE TRIGGER pool_submissions_no_update BEFORE UPDATE ON pool_submissions BEGIN SELECT RAISE(ABORT, 'pool submissions are append-only'); END;
CREATE TRIGGER pool_answers_no_update BEFORE UPDATE ON pool_answers BEGIN SELECT RAISE(ABORT, 'pool answers are append-only'); END;

-- The consent dialog's answers, counted per site for the partner dashboard's consent rate. The SDK
-- sends only the site key and yes/no: no visitor id, no address is stored.
CREATE TABLE consent_answers (
    id      INTEGER PRIMARY KEY,
    site_id INTEGER NOT NULL REFERENCES sites(id),
    given   INTEGER NOT NULL,
    at      INTEGER NOT NULL
);
CREATE INDEX shares_by_site_time ON shares (site_id, created_at);
