//! Keys at rest: the operator's key-encryption key (KEK) and what it protects.
//!
//! The ledger never holds a secret it could be used with on its own: unlock-token signing seeds,
//! content keys and site secrets are stored sealed under the KEK (AES-256-GCM, a random 96-bit nonce
//! per value, and the value's purpose, such as `signing-key/<kid>`, as associated data, so a sealed
//! value cannot be moved to another row). The KEK itself lives outside the database: a file
//! (`--key-file`), an environment variable (`MINEPASS_KEY`), or, for the zero-configuration default,
//! `<data>/master.key`, generated on first start with a warning to back it up apart from the ledger.
//!
//! A ledger remembers a check value sealed under its KEK, so starting with the wrong key fails at
//! once with a clear error instead of issuing tokens nobody can verify.

use std::path::{Path, PathBuf};

use aes_gcm::aead::{Aead, KeyInit, Payload};
use aes_gcm::{Aes256Gcm, Nonce};
use anyhow::{Context, Result, bail};
use hmac::{Hmac, Mac};
use rand::RngCore;
use sha2::Sha256;

/// Format tag of a sealed value: `mpk1 ‖ nonce (12) ‖ ciphertext ‖ tag (16)`.
const SEALED_TAG: &[u8; 4] = b"mpk1";
const NONCE_BYTES: usize = 12;
const CHECK_PURPOSE: &str = "kek-check";
const CHECK_PLAINTEXT: &[u8] = b"minepass key-encryption key";

/// Where the KEK comes from, in order of precedence.
#[derive(Debug, Clone)]
pub enum KeySource {
    /// 64 hex digits (from `MINEPASS_KEY`).
    Hex(String),
    /// A file holding 64 hex digits (`--key-file`).
    File(PathBuf),
    /// `<data>/master.key`, created on first start if the ledger has no sealed values yet.
    Default(PathBuf),
}

/// The KEK, able to seal and open values. Cheap to share behind an `Arc`; never serialised.
pub struct Vault {
    cipher: Aes256Gcm,
    /// For derived keys (HMAC-SHA256 over a label).
    kek: [u8; 32],
}

impl std::fmt::Debug for Vault {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Vault(..)")
    }
}

/// What [`Vault::load`] did, for the operator.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Loaded {
    /// An existing key was read.
    Existing,
    /// A new key was written to this file (first start of the embedded default).
    Generated(PathBuf),
}

impl Vault {
    pub fn from_bytes(kek: [u8; 32]) -> Vault {
        Vault { cipher: Aes256Gcm::new(&kek.into()), kek }
    }

    /// A random key held only in memory (tests, throwaway brokers).
    pub fn ephemeral() -> Vault {
        Vault::from_bytes(rand::random())
    }

    /// Reads the KEK from `source`; with [`KeySource::Default`] a missing file is created, but only
    /// for a ledger that has never sealed anything (`ledger_has_check`): otherwise a lost key must
    /// be restored, not silently replaced.
    pub fn load(source: &KeySource, ledger_has_check: bool) -> Result<(Vault, Loaded)> {
        match source {
            KeySource::Hex(text) => {
                Ok((Vault::from_bytes(parse_key(text).context("MINEPASS_KEY")?), Loaded::Existing))
            }
            KeySource::File(path) => Ok((read_key_file(path)?, Loaded::Existing)),
            KeySource::Default(path) if path.exists() => Ok((read_key_file(path)?, Loaded::Existing)),
            KeySource::Default(path) => {
                if ledger_has_check {
                    bail!(
                        "{} is missing, and this ledger's keys are sealed under it: restore the key file \
                         from your backup (or pass --key-file / MINEPASS_KEY)",
                        path.display()
                    );
                }
                let kek: [u8; 32] = rand::random();
                write_key_file(path, &kek)?;
                Ok((Vault::from_bytes(kek), Loaded::Generated(path.clone())))
            }
        }
    }

    /// Seals `plaintext` for `purpose` (which must be given again to open it).
    pub fn seal(&self, purpose: &str, plaintext: &[u8]) -> Vec<u8> {
        let mut nonce = [0u8; NONCE_BYTES];
        rand::thread_rng().fill_bytes(&mut nonce);
        let ciphertext = self
            .cipher
            .encrypt(Nonce::from_slice(&nonce), Payload { msg: plaintext, aad: aad(purpose).as_bytes() })
            .expect("AES-GCM encryption of a small value cannot fail");
        [&SEALED_TAG[..], &nonce, &ciphertext].concat()
    }

    /// Opens a value sealed for `purpose`; an error if it was sealed under another key, for another
    /// purpose, or altered.
    pub fn open(&self, purpose: &str, sealed: &[u8]) -> Result<Vec<u8>> {
        let Some(rest) = sealed.strip_prefix(&SEALED_TAG[..]) else {
            bail!("{purpose}: not a sealed value");
        };
        if rest.len() < NONCE_BYTES + 16 {
            bail!("{purpose}: sealed value too short");
        }
        let (nonce, ciphertext) = rest.split_at(NONCE_BYTES);
        self.cipher
            .decrypt(Nonce::from_slice(nonce), Payload { msg: ciphertext, aad: aad(purpose).as_bytes() })
            .map_err(|_| anyhow::anyhow!("{purpose}: cannot be opened with this key-encryption key"))
    }

    /// Opens a sealed 32-byte key.
    pub fn open_key(&self, purpose: &str, sealed: &[u8]) -> Result<[u8; 32]> {
        self.open(purpose, sealed)?.try_into().map_err(|_| anyhow::anyhow!("{purpose}: not a 32-byte key"))
    }

    /// A key derived from the KEK for `label` (HMAC-SHA256): stored nowhere, the same on every broker
    /// that shares the KEK.
    pub fn derive(&self, label: &str) -> [u8; 32] {
        let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(&self.kek).expect("HMAC takes any key length");
        mac.update(b"minepass/derived/");
        mac.update(label.as_bytes());
        mac.finalize().into_bytes().into()
    }

    /// The check value a ledger keeps to recognise its key.
    pub fn check_value(&self) -> Vec<u8> {
        self.seal(CHECK_PURPOSE, CHECK_PLAINTEXT)
    }

    /// Whether `check` (a ledger's check value) was made with this key.
    pub fn verify_check(&self, check: &[u8]) -> Result<()> {
        match self.open(CHECK_PURPOSE, check) {
            Ok(opened) if opened == CHECK_PLAINTEXT => Ok(()),
            _ => bail!(
                "the key-encryption key does not match this ledger (its signing keys, content keys and site \
                 secrets are sealed under another key): use the key file this ledger was created with"
            ),
        }
    }
}

fn aad(purpose: &str) -> String {
    format!("minepass/sealed/v1/{purpose}")
}

fn parse_key(text: &str) -> Result<[u8; 32]> {
    let bytes = hex::decode(text.trim()).context("the key-encryption key must be 64 hex digits")?;
    bytes.try_into().map_err(|_| anyhow::anyhow!("the key-encryption key must be 64 hex digits (32 bytes)"))
}

fn read_key_file(path: &Path) -> Result<Vault> {
    let text = std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
    Ok(Vault::from_bytes(parse_key(&text).with_context(|| path.display().to_string())?))
}

fn write_key_file(path: &Path, kek: &[u8; 32]) -> Result<()> {
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    }
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    use std::io::Write;
    let mut file = options.open(path).with_context(|| format!("creating {}", path.display()))?;
    writeln!(file, "{}", hex::encode(kek))?;
    file.sync_all()?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_sealed_value_opens_only_with_its_key_and_its_purpose_and_unaltered() {
        let vault = Vault::ephemeral();
        let sealed = vault.seal("signing-key/k1", b"seed bytes");
        assert_eq!(vault.open("signing-key/k1", &sealed).unwrap(), b"seed bytes");
        assert!(vault.open("signing-key/k2", &sealed).is_err(), "moved to another row");
        assert!(Vault::ephemeral().open("signing-key/k1", &sealed).is_err(), "another key");
        let mut altered = sealed.clone();
        *altered.last_mut().unwrap() ^= 1;
        assert!(vault.open("signing-key/k1", &altered).is_err());
        assert!(vault.open("signing-key/k1", b"mpk1short").is_err());
        assert_ne!(vault.seal("p", b"x"), vault.seal("p", b"x"), "a fresh nonce every time");
        assert!(!sealed.windows(10).any(|w| w == b"seed bytes"), "no plaintext in the sealed form");
    }

    #[test]
    fn derived_keys_depend_on_the_kek_and_the_label() {
        let vault = Vault::from_bytes([7; 32]);
        assert_eq!(vault.derive("resume"), Vault::from_bytes([7; 32]).derive("resume"));
        assert_ne!(vault.derive("resume"), vault.derive("other"));
        assert_ne!(vault.derive("resume"), Vault::from_bytes([8; 32]).derive("resume"));
    }

    #[test]
    fn the_default_key_is_generated_once_and_never_replaced_for_a_ledger_that_uses_it() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("master.key");
        let source = KeySource::Default(path.clone());
        let (vault, loaded) = Vault::load(&source, false).unwrap();
        assert_eq!(loaded, Loaded::Generated(path.clone()));
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            assert_eq!(std::fs::metadata(&path).unwrap().permissions().mode() & 0o777, 0o600);
        }
        let check = vault.check_value();
        let (again, loaded) = Vault::load(&source, true).unwrap();
        assert_eq!(loaded, Loaded::Existing);
        again.verify_check(&check).unwrap();
        let error = Vault::ephemeral().verify_check(&check).unwrap_err().to_string();
        assert!(error.contains("does not match this ledger"), "{error}");
        std::fs::remove_file(&path).unwrap();
        let error = Vault::load(&source, true).unwrap_err().to_string();
        assert!(error.contains("restore the key file"), "{error}");
        assert!(Vault::load(&KeySource::Hex(hex::encode([3u8; 32])), true).is_ok());
        assert!(Vault::load(&KeySource::Hex("abcd".into()), true).is_err());
    }
}
