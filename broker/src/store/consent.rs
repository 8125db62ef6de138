//! Consent answers, recorded under counting rules a client cannot inflate: once per answer id, and
//! at most [`CONSENT_ANSWERS_PER_VISITOR`] per visitor (a daily-salted hash of the address) per site
//! per UTC day, each in a numbered slot so that the unique index, not a count read before the
//! insert, enforces the cap under any concurrency (also across brokers).

use anyhow::{Context, Result};
use sha2::Sha256;

use super::{Ledger, now_ms, on_backend, postgres, sqlite};

/// Most consent answers counted per visitor (address) per site per UTC day: a household or an office
/// behind one address answers a few times; one client cannot move a site's rate by more.
pub const CONSENT_ANSWERS_PER_VISITOR: u32 = 5;

/// One answer as it is stored.
pub(crate) struct Answer<'a> {
    pub site_id: i64,
    pub given: bool,
    pub at: i64,
    pub answer_id: &'a str,
    pub day: i64,
    pub visitor: &'a str,
}

/// What became of a consent answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ConsentCount {
    Counted,
    /// A repeated answer id, or the visitor's answers for today are all counted already.
    NotCounted,
    UnknownSite,
}

impl Ledger {
    /// Records a consent dialog's answer for a site under the counting rules.
    pub async fn record_consent_answer(
        &self,
        site_key: &str,
        given: bool,
        answer_id: &str,
        address: std::net::IpAddr,
    ) -> Result<ConsentCount> {
        let Some(site) = self.site_by_key(site_key).await? else { return Ok(ConsentCount::UnknownSite) };
        let at = now_ms();
        let day = at.div_euclid(86_400_000);
        let salt = self.consent_salt(day).await?;
        let visitor = consent_visitor(&salt, site_key, address);
        let answer = Answer { site_id: site.id, given, at, answer_id, day, visitor: &visitor };
        for slot in 0..CONSENT_ANSWERS_PER_VISITOR {
            if on_backend!(self, consent::insert(&answer, i64::from(slot)))? {
                return Ok(ConsentCount::Counted);
            }
        }
        Ok(ConsentCount::NotCounted)
    }

    /// Today's random salt for visitor hashes; salts of earlier days are deleted, so yesterday's
    /// hashes can no longer be linked to an address by anyone.
    async fn consent_salt(&self, day: i64) -> Result<String> {
        let name = format!("consent_salt/{day}");
        let salt = hex::encode(rand::random::<[u8; 32]>());
        // Once a day, by whoever makes the new salt: the older ones go (day numbers have the same
        // number of digits until the year 2243, so names sort as days).
        if on_backend!(self, settings::insert_if_absent(&name, &salt))? {
            on_backend!(self, settings::delete_prefixed_before("consent_salt/", &name))?;
        }
        self.setting(&name).await?.context("the consent salt vanished")
    }

    /// (answers, yes) for a partner's sites (`None`: every site) since `since`: only answers counted
    /// under the rules (rows from before them have no visitor).
    pub async fn consent_counts(&self, partner: Option<i64>, since: i64) -> Result<(u64, u64)> {
        let (answers, yes) = on_backend!(self, consent::counts(partner, since))?;
        Ok((answers as u64, yes as u64))
    }
}

/// The visitor of a consent answer: a hash of the site and the address under the day's salt. IPv6
/// addresses count by their /64 (one subscriber's network), IPv4-mapped ones as IPv4.
fn consent_visitor(salt: &str, site_key: &str, address: std::net::IpAddr) -> String {
    use hmac::{Hmac, Mac};
    let network = match address {
        std::net::IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => v4.to_string(),
            None => format!("{:x}", u128::from(v6) >> 64),
        },
        std::net::IpAddr::V4(v4) => v4.to_string(),
    };
    let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(salt.as_bytes()).expect("HMAC takes any key");
    mac.update(format!("{site_key}\n{network}").as_bytes());
    hex::encode(&mac.finalize().into_bytes()[..16])
}
