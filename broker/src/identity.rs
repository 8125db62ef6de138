//! Who a visitor is, proven rather than claimed. Pure functions over strings and keys.
//!
//! Two kinds of user id (docs/PROTOCOL.md, "Users"):
//! - **publisher-vouched**: the publisher's own id for a signed-in reader, accepted only with a proof
//!   its server computed with the site secret: `<exp>.<hex HMAC-SHA256(secret, message)>`, where
//!   the message is `minepass-user-proof-v1 \n site \n user \n exp` (a canonical encoding with
//!   delimiters that cannot occur in the fields, so no proof can be re-split into another);
//! - **anonymous**: issued by the broker as `anon_<32 hex>` together with a secret the SDK keeps; the
//!   id *is* a hash of the site and the secret, so the broker stores nothing and a copy of the
//!   ledger proves nothing.

use hmac::{Hmac, Mac};
use rand::RngCore;
use sha2::{Digest, Sha256};

/// Prefix of broker-issued anonymous ids (a publisher must not use it for its own ids).
pub const ANONYMOUS_PREFIX: &str = "anon_";
/// Longest user id, in bytes of UTF-8.
pub const MAX_USER_BYTES: usize = 128;
/// Longest validity a user proof may claim from now.
pub const MAX_PROOF_SECONDS: i64 = 31 * 24 * 3600;

const PROOF_LABEL: &str = "minepass-user-proof-v1";
const ANONYMOUS_LABEL: &str = "minepass-anonymous-user-v1";
const SECRET_PREFIX: &str = "usec_";

/// Whether `user` is a well-formed id: 1-128 bytes of UTF-8 without control characters.
pub fn is_valid_user(user: &str) -> bool {
    (1..=MAX_USER_BYTES).contains(&user.len()) && !user.chars().any(char::is_control)
}

/// Whether `user` has the form of a broker-issued anonymous id.
pub fn is_anonymous(user: &str) -> bool {
    user.strip_prefix(ANONYMOUS_PREFIX)
        .is_some_and(|hex| hex.len() == 32 && hex.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f')))
}

/// A fresh anonymous identity for `site`: (user id, secret).
pub fn new_anonymous(site: &str) -> (String, String) {
    let mut secret = [0u8; 32];
    rand::thread_rng().fill_bytes(&mut secret);
    let secret = format!("{SECRET_PREFIX}{}", hex::encode(secret));
    (anonymous_id(site, &secret), secret)
}

fn anonymous_id(site: &str, secret: &str) -> String {
    let digest = Sha256::new()
        .chain_update(ANONYMOUS_LABEL)
        .chain_update(b"\n")
        .chain_update(site)
        .chain_update(b"\n")
        .chain_update(secret)
        .finalize();
    format!("{ANONYMOUS_PREFIX}{}", hex::encode(&digest[..16]))
}

/// Whether `secret` is the one issued with the anonymous id `user` at `site`.
pub fn is_anonymous_secret(site: &str, user: &str, secret: &str) -> bool {
    // Both sides are public-length hashes of the secret: a plain comparison leaks nothing useful,
    // but compare in constant time anyway.
    let expected = anonymous_id(site, secret);
    expected.len() == user.len()
        && expected.bytes().zip(user.bytes()).fold(0u8, |acc, (a, b)| acc | (a ^ b)) == 0
}

/// Why a user proof is refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ProofError {
    /// Not `<exp>.<64 hex digits>`.
    Malformed,
    /// Its `exp` has passed.
    Expired,
    /// Its `exp` is further away than [`MAX_PROOF_SECONDS`].
    TooLong,
    /// The HMAC does not match: another secret, site or user.
    Mismatch,
}

impl ProofError {
    pub fn describe(self) -> &'static str {
        match self {
            ProofError::Malformed => "user_proof must be <exp>.<64 hex digits of the HMAC>",
            ProofError::Expired => "the user proof has expired: the publisher's server must mint a new one",
            ProofError::TooLong => "the user proof is valid for more than 31 days",
            ProofError::Mismatch => "the user proof does not match this site and user",
        }
    }
}

fn proof_mac(secret: &str, site: &str, user: &str, exp: i64) -> Hmac<Sha256> {
    let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(secret.as_bytes()).expect("HMAC takes any key");
    mac.update(format!("{PROOF_LABEL}\n{site}\n{user}\n{exp}").as_bytes());
    mac
}

/// The proof a publisher's server gives the page for `user`, valid until `exp` (Unix seconds).
pub fn user_proof(secret: &str, site: &str, user: &str, exp: i64) -> String {
    format!("{exp}.{}", hex::encode(proof_mac(secret, site, user, exp).finalize().into_bytes()))
}

/// Checks a publisher's proof for `user` at `site` at time `now` (Unix seconds).
pub fn check_user_proof(
    secret: &str,
    site: &str,
    user: &str,
    proof: &str,
    now: i64,
) -> Result<(), ProofError> {
    let (exp, mac) = proof.split_once('.').ok_or(ProofError::Malformed)?;
    let exp_ok = !exp.is_empty() && exp.len() <= 12 && exp.bytes().all(|b| b.is_ascii_digit());
    let mac_ok = mac.len() == 64 && mac.bytes().all(|b| b.is_ascii_hexdigit());
    if !exp_ok || !mac_ok {
        return Err(ProofError::Malformed);
    }
    let exp: i64 = exp.parse().map_err(|_| ProofError::Malformed)?;
    let mac = hex::decode(mac).map_err(|_| ProofError::Malformed)?;
    // The MAC first: a forged proof learns nothing from which time check it would have failed.
    proof_mac(secret, site, user, exp).verify_slice(&mac).map_err(|_| ProofError::Mismatch)?;
    if exp <= now {
        return Err(ProofError::Expired);
    }
    if exp - now > MAX_PROOF_SECONDS {
        return Err(ProofError::TooLong);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_proof_holds_for_its_secret_site_user_and_time_only() {
        let now = 1_800_000_000;
        let proof = user_proof("secret_a", "site_1", "reader-42", now + 3600);
        assert_eq!(check_user_proof("secret_a", "site_1", "reader-42", &proof, now), Ok(()));
        assert_eq!(
            check_user_proof("secret_b", "site_1", "reader-42", &proof, now),
            Err(ProofError::Mismatch)
        );
        assert_eq!(
            check_user_proof("secret_a", "site_2", "reader-42", &proof, now),
            Err(ProofError::Mismatch)
        );
        assert_eq!(
            check_user_proof("secret_a", "site_1", "reader-43", &proof, now),
            Err(ProofError::Mismatch)
        );
        assert_eq!(
            check_user_proof("secret_a", "site_1", "reader-42", &proof, now + 3600),
            Err(ProofError::Expired)
        );
        let long = user_proof("secret_a", "site_1", "reader-42", now + MAX_PROOF_SECONDS + 1);
        assert_eq!(check_user_proof("secret_a", "site_1", "reader-42", &long, now), Err(ProofError::TooLong));
        // A later expiry under the same MAC is a different message.
        let (_, mac) = proof.split_once('.').unwrap();
        let stretched = format!("{}.{mac}", now + 7200);
        assert_eq!(
            check_user_proof("secret_a", "site_1", "reader-42", &stretched, now),
            Err(ProofError::Mismatch)
        );
        for bad in [
            "",
            ".",
            "123",
            "x.00",
            &format!("{}.{}", now, "0".repeat(63)),
            &format!("-1.{}", "0".repeat(64)),
        ] {
            assert_eq!(
                check_user_proof("secret_a", "site_1", "reader-42", bad, now),
                Err(ProofError::Malformed),
                "{bad}"
            );
        }
    }

    #[test]
    fn the_proof_matches_the_documented_construction() {
        // What every kit computes: hex(HMAC-SHA256(secret, "minepass-user-proof-v1\nsite\nuser\nexp")).
        let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(b"s3cret").unwrap();
        mac.update(b"minepass-user-proof-v1\nsite_x\nu\n1900000000");
        let expected = format!("1900000000.{}", hex::encode(mac.finalize().into_bytes()));
        assert_eq!(user_proof("s3cret", "site_x", "u", 1_900_000_000), expected);
    }

    #[test]
    fn an_anonymous_id_is_proven_by_its_secret_at_its_site_only() {
        let (user, secret) = new_anonymous("site_1");
        assert!(is_anonymous(&user) && is_valid_user(&user), "{user}");
        assert!(is_anonymous_secret("site_1", &user, &secret));
        assert!(!is_anonymous_secret("site_2", &user, &secret));
        let (other, other_secret) = new_anonymous("site_1");
        assert_ne!(user, other);
        assert!(!is_anonymous_secret("site_1", &user, &other_secret));
        assert!(!is_anonymous_secret("site_1", &user, ""));
        assert!(!is_anonymous("anon-123456"), "the old SDK's ids are not broker-issued");
        assert!(!is_anonymous(&user.to_uppercase()));
    }

    #[test]
    fn user_ids_are_1_to_128_bytes_without_control_characters() {
        assert!(is_valid_user("reader-42") && is_valid_user(&"é".repeat(64)));
        assert!(!is_valid_user("") && !is_valid_user(&"é".repeat(65)) && !is_valid_user("a\nb"));
    }
}
