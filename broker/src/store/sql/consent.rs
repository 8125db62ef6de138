//! Consent answers in their counting slots.

use anyhow::Result;

use super::Conns;
use crate::store::consent::Answer;

/// Inserts the answer in `slot`; false if the answer id was counted already or the slot is taken
/// (the unique indexes decide).
pub(crate) async fn insert(db: &Conns, answer: &Answer<'_>, slot: i64) -> Result<bool> {
    let done = sqlx::query(
        "INSERT INTO consent_answers (site_id, given, at, answer_id, day, visitor, slot)
         VALUES ($1, $2, $3, $4, $5, $6, $7) ON CONFLICT DO NOTHING",
    )
    .bind(answer.site_id)
    .bind(answer.given)
    .bind(answer.at)
    .bind(answer.answer_id)
    .bind(answer.day)
    .bind(answer.visitor)
    .bind(slot)
    .execute(&db.write)
    .await?;
    Ok(done.rows_affected() == 1)
}

/// (answers, yes) for a partner's sites (`None`: every site) since `since`, counting only answers
/// recorded under the rules (older rows have no visitor).
pub(crate) async fn counts(db: &Conns, partner: Option<i64>, since: i64) -> Result<(i64, i64)> {
    Ok(sqlx::query_as(
        "SELECT COUNT(*), COUNT(*) FILTER (WHERE c.given) FROM consent_answers c JOIN sites st ON st.id = c.site_id
         WHERE ($1 IS NULL OR st.partner_id = $1) AND c.at >= $2 AND c.visitor IS NOT NULL",
    )
    .bind(partner)
    .bind(since)
    .fetch_one(&db.read)
    .await?)
}
