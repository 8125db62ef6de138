//! Unlock tokens: JWTs signed with Ed25519 (`alg: EdDSA`), published as a JWKS so publishers can verify
//! them with any JWT library, and consumed once through the verify API.
//!
//! Keys live in the ledger database, so they survive restarts. `keys rotate` makes a new active key;
//! retired keys stay in the JWKS (and keep verifying) until every token they signed has expired.
//!
//! The JWT encoding here is deliberately small and strict: one algorithm, a `kid` that must name a
//! published key, and fixed claims. The integration tests verify these tokens with an independent JWT
//! library (jwt-simple) from the JWKS alone.

use std::collections::HashMap;
use std::sync::RwLock;
use std::time::Instant;

use anyhow::{Context, Result};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64;
use ed25519_dalek::{Signature, Signer, SigningKey, Verifier, VerifyingKey};
use rand::RngCore;
use serde::{Deserialize, Serialize};

use crate::store::{Ledger, now_ms};

/// How long an unlock token is valid.
pub const TOKEN_TTL_SECONDS: i64 = 3600;

/// The claims of an unlock token.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct UnlockClaims {
    /// The broker (its public URL).
    pub iss: String,
    /// The publisher's user id.
    pub sub: String,
    /// The site key: a token is valid only for its own site.
    pub aud: String,
    /// The unlocked content item.
    pub content: String,
    /// Work credited toward the item when the token was issued (decimal string, u128).
    pub work: String,
    pub iat: i64,
    pub exp: i64,
    /// Unique token id; the verify API accepts each once.
    pub jti: String,
    /// The user's spendable credits at this site when the token was issued (decimal string).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub credits: Option<String>,
    /// For a token that grants an offer bought with credits: what was bought.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub grant: Option<Grant>,
}

/// An offer bought with credits, as the grant token states it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Grant {
    pub offer: String,
    pub title: String,
    /// Credits spent (decimal string).
    pub price: String,
    #[serde(flatten)]
    pub kind: crate::store::rewards::OfferKind,
}

fn random_jti() -> String {
    let mut id = [0u8; 16];
    rand::thread_rng().fill_bytes(&mut id);
    hex::encode(id)
}

/// Why a token does not verify. Each has a stable code for the verify API.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TokenError {
    /// Not three base64url parts of valid JSON with the expected fields and `alg`.
    Malformed,
    /// The `kid` names no published key.
    UnknownKey,
    /// The signature does not match (forged or altered).
    BadSignature,
    /// Past its `exp`.
    Expired,
    /// Issued for another site.
    WrongAudience,
    /// Issued by another broker.
    WrongIssuer,
    /// Already consumed by the verify API.
    AlreadyUsed,
}

impl TokenError {
    pub fn code(self) -> &'static str {
        match self {
            TokenError::Malformed => "malformed",
            TokenError::UnknownKey => "unknown_key",
            TokenError::BadSignature => "bad_signature",
            TokenError::Expired => "expired",
            TokenError::WrongAudience => "wrong_audience",
            TokenError::WrongIssuer => "wrong_issuer",
            TokenError::AlreadyUsed => "already_used",
        }
    }
}

#[derive(Serialize, Deserialize)]
struct Header {
    alg: String,
    typ: String,
    kid: String,
}

struct Keys {
    active: (String, SigningKey),
    /// Every key whose tokens may still be valid, by kid.
    published: HashMap<String, VerifyingKey>,
}

impl Keys {
    async fn load(ledger: &Ledger) -> Result<Keys> {
        let now = now_ms();
        let mut active = None;
        let mut published = HashMap::new();
        for (kid, seed, _, retired) in ledger.signing_keys().await? {
            let key = SigningKey::from_bytes(&seed);
            match retired {
                None => active = Some((kid.clone(), key.clone())),
                Some(at) if at + TOKEN_TTL_SECONDS * 1000 < now => continue,
                Some(_) => {}
            }
            published.insert(kid, key.verifying_key());
        }
        Ok(Keys { active: active.context("no active signing key")?, published })
    }
}

/// How often a broker rereads the signing keys (a rotation elsewhere in the fleet is published by
/// every broker within this, and a token naming the new key verifies at once: see `refresh`).
pub const KEY_REFRESH_INTERVAL: std::time::Duration = std::time::Duration::from_secs(10);
/// The least time between two rereads on demand.
const MIN_REFRESH_INTERVAL: std::time::Duration = std::time::Duration::from_secs(1);

/// Issues and verifies unlock tokens.
pub struct Tokens {
    issuer: String,
    keys: RwLock<Keys>,
    /// When the keys were last read from the ledger.
    refreshed: std::sync::Mutex<Instant>,
}

fn new_kid() -> String {
    hex::encode(rand::random::<[u8; 8]>())
}

impl Tokens {
    /// Loads the keys from the ledger, creating the first one on first start.
    pub async fn load(ledger: &Ledger, issuer: String) -> Result<Tokens> {
        let legacy = ledger.seal_legacy_signing_keys().await?;
        if legacy > 0 {
            tracing::warn!("sealed {legacy} plaintext signing key(s) from an older ledger and retired them");
        }
        if ledger.signing_keys().await?.iter().all(|(_, _, _, retired)| retired.is_some()) {
            let mut seed = [0u8; 32];
            rand::thread_rng().fill_bytes(&mut seed);
            ledger.add_first_signing_key(&new_kid(), &seed).await?;
        }
        let keys = Keys::load(ledger).await?;
        Ok(Tokens { issuer, keys: RwLock::new(keys), refreshed: std::sync::Mutex::new(Instant::now()) })
    }

    /// Reloads the keys from the ledger: a rotation made by another broker of the fleet (or the
    /// CLI) becomes this broker's too. At most once per [`MIN_REFRESH_INTERVAL`] unless `force`,
    /// so that tokens naming unknown keys cannot turn into a read per request.
    pub async fn refresh(&self, ledger: &Ledger, force: bool) -> Result<bool> {
        {
            let mut refreshed = self.refreshed.lock().expect("refresh lock");
            if !force && refreshed.elapsed() < MIN_REFRESH_INTERVAL {
                return Ok(false);
            }
            *refreshed = Instant::now();
        }
        let keys = Keys::load(ledger).await?;
        *self.keys.write().expect("keys lock") = keys;
        Ok(true)
    }

    /// A signed token for `claims` (its `iss`, `iat`, `exp` and `jti` are set here).
    pub fn issue(
        &self,
        sub: &str,
        aud: &str,
        content: &str,
        work: u128,
        credits: u128,
    ) -> (String, UnlockClaims) {
        let iat = now_ms() / 1000;
        let claims = UnlockClaims {
            iss: self.issuer.clone(),
            sub: sub.to_owned(),
            aud: aud.to_owned(),
            content: content.to_owned(),
            work: work.to_string(),
            iat,
            exp: iat + TOKEN_TTL_SECONDS,
            jti: random_jti(),
            credits: Some(credits.to_string()),
            grant: None,
        };
        (self.sign(&claims), claims)
    }

    /// The claims of a grant token (an offer bought with credits) before it is signed: its `jti` is
    /// recorded with the spend, then [`Tokens::sign`] signs it.
    pub fn grant_claims(&self, sub: &str, aud: &str, grant: Grant) -> UnlockClaims {
        let iat = now_ms() / 1000;
        let content = match &grant.kind {
            crate::store::rewards::OfferKind::Content { content } => content.clone(),
            _ => String::new(),
        };
        UnlockClaims {
            iss: self.issuer.clone(),
            sub: sub.to_owned(),
            aud: aud.to_owned(),
            content,
            work: "0".into(),
            iat,
            exp: iat + TOKEN_TTL_SECONDS,
            jti: random_jti(),
            credits: None,
            grant: Some(grant),
        }
    }

    /// Signs `claims` with the active key.
    pub fn sign(&self, claims: &UnlockClaims) -> String {
        let keys = self.keys.read().expect("keys lock");
        let (kid, key) = &keys.active;
        let header = Header { alg: "EdDSA".into(), typ: "JWT".into(), kid: kid.clone() };
        let signing_input = format!(
            "{}.{}",
            B64.encode(serde_json::to_vec(&header).expect("header serialises")),
            B64.encode(serde_json::to_vec(claims).expect("claims serialise"))
        );
        let signature = key.sign(signing_input.as_bytes());
        format!("{signing_input}.{}", B64.encode(signature.to_bytes()))
    }

    /// Checks a token's form, key, signature, issuer, audience and expiry (not its single use).
    pub fn verify(&self, token: &str, audience: &str) -> Result<UnlockClaims, TokenError> {
        let mut parts = token.split('.');
        let (Some(header), Some(payload), Some(signature), None) =
            (parts.next(), parts.next(), parts.next(), parts.next())
        else {
            return Err(TokenError::Malformed);
        };
        let decode = |part: &str| B64.decode(part).map_err(|_| TokenError::Malformed);
        let parsed: Header = serde_json::from_slice(&decode(header)?).map_err(|_| TokenError::Malformed)?;
        if parsed.alg != "EdDSA" {
            return Err(TokenError::Malformed);
        }
        let signature = Signature::from_slice(&decode(signature)?).map_err(|_| TokenError::Malformed)?;
        let key =
            *self.keys.read().expect("keys lock").published.get(&parsed.kid).ok_or(TokenError::UnknownKey)?;
        let signed = &token[..header.len() + 1 + payload.len()];
        key.verify(signed.as_bytes(), &signature).map_err(|_| TokenError::BadSignature)?;
        let claims: UnlockClaims =
            serde_json::from_slice(&decode(payload)?).map_err(|_| TokenError::Malformed)?;
        if claims.iss != self.issuer {
            return Err(TokenError::WrongIssuer);
        }
        if claims.aud != audience {
            return Err(TokenError::WrongAudience);
        }
        if claims.exp <= now_ms() / 1000 {
            return Err(TokenError::Expired);
        }
        Ok(claims)
    }

    /// The JSON Web Key Set of every published key.
    pub fn jwks(&self) -> serde_json::Value {
        let keys = self.keys.read().expect("keys lock");
        let mut kids: Vec<&String> = keys.published.keys().collect();
        kids.sort();
        let keys: Vec<serde_json::Value> = kids
            .into_iter()
            .map(|kid| {
                serde_json::json!({
                    "kty": "OKP", "crv": "Ed25519", "alg": "EdDSA", "use": "sig", "kid": kid,
                    "x": B64.encode(keys.published[kid].as_bytes()),
                })
            })
            .collect();
        serde_json::json!({ "keys": keys })
    }
}

/// Creates a new active signing key in the ledger, retiring the current one.
pub async fn rotate(ledger: &Ledger) -> Result<String> {
    let mut seed = [0u8; 32];
    rand::thread_rng().fill_bytes(&mut seed);
    let kid = new_kid();
    ledger.rotate_signing_key(&kid, &seed).await?;
    Ok(kid)
}

#[cfg(test)]
mod tests {
    use super::*;

    async fn tokens() -> (Tokens, tempfile::TempDir) {
        let dir = tempfile::tempdir().unwrap();
        let ledger =
            Ledger::open(&dir.path().join("l.sqlite"), std::sync::Arc::new(crate::vault::Vault::ephemeral()))
                .await
                .unwrap();
        (Tokens::load(&ledger, "http://broker".into()).await.unwrap(), dir)
    }

    #[tokio::test]
    async fn a_token_verifies_for_its_site_and_fails_with_a_distinct_reason_otherwise() {
        let (tokens, _dir) = tokens().await;
        let (token, claims) = tokens.issue("alice", "site_a", "article", 1 << 20, 7);
        assert_eq!(tokens.verify(&token, "site_a"), Ok(claims.clone()));
        assert_eq!(tokens.verify(&token, "site_b"), Err(TokenError::WrongAudience));
        // Forged: same header and signature, altered claims.
        let mut parts: Vec<String> = token.split('.').map(String::from).collect();
        let mut forged = claims.clone();
        forged.work = "999999999999".into();
        parts[1] = B64.encode(serde_json::to_vec(&forged).unwrap());
        assert_eq!(tokens.verify(&parts.join("."), "site_a"), Err(TokenError::BadSignature));
        assert_eq!(tokens.verify("a.b", "site_a"), Err(TokenError::Malformed));
        assert_eq!(tokens.verify("x.y.z", "site_a"), Err(TokenError::Malformed));
        let (other, _dir2) = self::tokens().await;
        let (foreign, _) = other.issue("alice", "site_a", "article", 1, 0);
        assert_eq!(tokens.verify(&foreign, "site_a"), Err(TokenError::UnknownKey));
        assert_eq!(tokens.jwks()["keys"].as_array().unwrap().len(), 1);
        let expired = UnlockClaims { exp: now_ms() / 1000 - 1, ..claims };
        assert_eq!(tokens.verify(&tokens.sign(&expired), "site_a"), Err(TokenError::Expired));
    }

    #[tokio::test]
    async fn rotated_keys_stay_published_and_keep_verifying_their_tokens() {
        let dir = tempfile::tempdir().unwrap();
        let ledger =
            Ledger::open(&dir.path().join("l.sqlite"), std::sync::Arc::new(crate::vault::Vault::ephemeral()))
                .await
                .unwrap();
        let before = Tokens::load(&ledger, "iss".into()).await.unwrap();
        let (old_token, _) = before.issue("u", "s", "c", 1, 0);
        rotate(&ledger).await.unwrap();
        let after = Tokens::load(&ledger, "iss".into()).await.unwrap();
        assert_eq!(after.jwks()["keys"].as_array().unwrap().len(), 2);
        assert!(after.verify(&old_token, "s").is_ok());
        let (new_token, _) = after.issue("u", "s", "c", 1, 0);
        assert_ne!(new_token.split('.').next(), old_token.split('.').next(), "a new kid signs");
    }
}
