-- Trust: secrets at rest sealed under the operator's key-encryption key (KEK), sealed content,
-- proven users and consent answers that cannot be inflated.

-- Signing seeds are kept sealed under the KEK (`sealed_seed`). `legacy_seed` holds a plaintext seed
-- of a ledger from before this migration until the broker's next start seals it, erases it and
-- retires that key (a plaintext copy may live on in old backups).
CREATE TABLE signing_keys_sealed (
    kid         TEXT    PRIMARY KEY,
    sealed_seed BLOB,
    legacy_seed BLOB,
    created_at  INTEGER NOT NULL,
    retired_at  INTEGER,
    CHECK (sealed_seed IS NOT NULL OR legacy_seed IS NOT NULL)
);
INSERT INTO signing_keys_sealed (kid, legacy_seed, created_at, retired_at)
    SELECT kid, seed, created_at, retired_at FROM signing_keys;
DROP TABLE signing_keys;
ALTER TABLE signing_keys_sealed RENAME TO signing_keys;

-- A site's secret, sealed under the KEK: the key of the HMAC that vouches for the publisher's user
-- ids (the hash alone, kept for the Bearer lookup, cannot check a proof). NULL for sites created
-- before this migration until their secret is rotated.
ALTER TABLE sites ADD COLUMN sealed_secret BLOB;
-- The longest consent lifetime (expires_at - given_at) the site accepts in a hello.
ALTER TABLE sites ADD COLUMN consent_max_hours INTEGER NOT NULL DEFAULT 168;

-- Sealed content: per item, numbered key versions. The item key is sealed under the KEK; the
-- gated HTML is encrypted under the item key (AES-256-GCM, WebCrypto's layout). A re-seal adds a
-- version; older versions keep opening pages that embed their ciphertext until retired.
CREATE TABLE content_seals (
    content_id INTEGER NOT NULL REFERENCES content(id),
    version    INTEGER NOT NULL,
    sealed_key BLOB    NOT NULL,
    nonce      BLOB    NOT NULL,
    ciphertext BLOB    NOT NULL,
    created_at INTEGER NOT NULL,
    retired_at INTEGER,
    PRIMARY KEY (content_id, version)
);

-- Consent answers under the counting rules: one per consent id, and at most a few per visitor
-- (a daily-salted hash of the address, unlinkable once the salt is deleted) per site per day, each
-- in its own slot so that the database, not a check before the insert, enforces the cap. Rows from
-- before this migration have no visitor and are not counted.
ALTER TABLE consent_answers ADD COLUMN answer_id TEXT;
ALTER TABLE consent_answers ADD COLUMN day INTEGER;
ALTER TABLE consent_answers ADD COLUMN visitor TEXT;
ALTER TABLE consent_answers ADD COLUMN slot INTEGER;
CREATE UNIQUE INDEX consent_answers_once ON consent_answers (site_id, answer_id);
CREATE UNIQUE INDEX consent_answers_per_visitor ON consent_answers (site_id, day, visitor, slot);
