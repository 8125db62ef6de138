//! Partner economics as exact integer math: splitting a period's earnings among partners by their
//! pool-accepted work, the operator's commission, payout thresholds with carry-over, and the PPS
//! estimate of earnings. Pure: the ledger stores what this computes.
//!
//! Money is satoshis (`u64`; 21·10^14 fits with room to spare), work is expected hashes (`u128`),
//! products are computed in 256 bits. Every satoshi of a period's earnings ends up either in a
//! partner's payable balance or in the operator's commission: `Σ net + commission == earnings`.

use minepass::target::U256;

/// Basis points: 10,000 = 100 %.
pub const BPS_DENOMINATOR: u64 = 10_000;

/// One partner's part of a period.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PartnerInput {
    pub partner: i64,
    /// Pool-accepted work of the partner's sites in the period.
    pub work: u128,
    /// The operator's commission on this partner, in basis points (≤ 10,000).
    pub commission_bps: u32,
    /// Net earnings below the payout threshold carried over from earlier periods.
    pub carried: u64,
}

/// One partner's result.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PartnerShare {
    pub partner: i64,
    /// The partner's share of the earnings, by work (largest remainder).
    pub gross: u64,
    /// The operator's commission taken from `gross`.
    pub commission: u64,
    /// `gross − commission`, credited to the partner.
    pub net: u64,
    /// Paid out this period (`carried + net` when that reaches the threshold, else 0).
    pub payout: u64,
    /// Carried to the next period.
    pub carry: u64,
}

/// A period's settlement.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Settlement {
    pub earnings: u64,
    pub partners: Vec<PartnerShare>,
    /// The operator's total commission. When no partner did any work, the whole earnings.
    pub commission: u64,
}

/// Why a settlement cannot be computed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SettlementError {
    CommissionOver100Percent { partner: i64 },
    DuplicatePartner { partner: i64 },
}

impl std::fmt::Display for SettlementError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            SettlementError::CommissionOver100Percent { partner } => {
                write!(f, "partner {partner}: commission over 10,000 basis points")
            }
            SettlementError::DuplicatePartner { partner } => write!(f, "partner {partner} appears twice"),
        }
    }
}

impl std::error::Error for SettlementError {}

/// Splits `total` among `weights` in proportion, exactly: each gets the floor of its quota, and the
/// units left over go one each to the largest remainders (ties to the smaller key), so the parts sum
/// to `total` and the result does not depend on the order of `weights`. All-zero weights get nothing
/// (the caller decides where such a total goes).
pub fn largest_remainder(total: u64, weights: &[(i64, u128)]) -> Vec<(i64, u64)> {
    let sum: U256 = weights.iter().map(|(_, w)| U256::from(*w)).fold(U256::zero(), |a, b| a + b);
    if sum.is_zero() {
        return weights.iter().map(|(key, _)| (*key, 0)).collect();
    }
    let mut parts: Vec<(i64, u64, U256)> = weights
        .iter()
        .map(|(key, w)| {
            let (quotient, remainder) = (U256::from(total) * U256::from(*w)).div_mod(sum);
            (*key, quotient.low_u64(), remainder)
        })
        .collect();
    let assigned: u64 = parts.iter().map(|(_, q, _)| q).sum();
    let mut left = total - assigned;
    let mut order: Vec<usize> = (0..parts.len()).collect();
    order.sort_by(|&a, &b| parts[b].2.cmp(&parts[a].2).then(parts[a].0.cmp(&parts[b].0)));
    for index in order {
        if left == 0 {
            break;
        }
        parts[index].1 += 1;
        left -= 1;
    }
    parts.into_iter().map(|(key, q, _)| (key, q)).collect()
}

/// Settles one period: `earnings` split by work, commission per partner (rounded down: the
/// partner's favour), payout when `carried + net ≥ threshold`.
pub fn settle(
    earnings: u64,
    partners: &[PartnerInput],
    threshold: u64,
) -> Result<Settlement, SettlementError> {
    let mut seen = std::collections::HashSet::new();
    for p in partners {
        if p.commission_bps as u64 > BPS_DENOMINATOR {
            return Err(SettlementError::CommissionOver100Percent { partner: p.partner });
        }
        if !seen.insert(p.partner) {
            return Err(SettlementError::DuplicatePartner { partner: p.partner });
        }
    }
    let weights: Vec<(i64, u128)> = partners.iter().map(|p| (p.partner, p.work)).collect();
    let gross = largest_remainder(earnings, &weights);
    let mut commission_total = 0u64;
    let mut shares = Vec::with_capacity(partners.len());
    for (input, (_, gross)) in partners.iter().zip(gross) {
        let commission =
            ((u128::from(gross) * u128::from(input.commission_bps)) / u128::from(BPS_DENOMINATOR)) as u64;
        let net = gross - commission;
        commission_total += commission;
        let pending = input.carried.saturating_add(net);
        let (payout, carry) = if pending >= threshold && pending > 0 { (pending, 0) } else { (0, pending) };
        shares.push(PartnerShare { partner: input.partner, gross, commission, net, payout, carry });
    }
    let distributed: u64 = shares.iter().map(|s| s.gross).sum();
    // No partner work at all: nothing to split by, the operator keeps the period's earnings.
    commission_total += earnings - distributed;
    shares.sort_by_key(|s| s.partner);
    Ok(Settlement { earnings, partners: shares, commission: commission_total })
}

/// The PPS estimate of what `work` (pool-accepted expected hashes) earns: `work × reward /
/// (difficulty × 2^32)` satoshis, rounded down, with the network difficulty as an integer (bdiff).
/// An estimate: the pool's fee and luck are not in it.
pub fn pps_estimate(work: u128, block_reward_sats: u64, network_difficulty: u128) -> u64 {
    if network_difficulty == 0 {
        return 0;
    }
    let numerator = U256::from(work) * U256::from(block_reward_sats);
    let denominator = U256::from(network_difficulty) << 32;
    let sats = numerator / denominator;
    if sats > U256::from(u64::MAX) { u64::MAX } else { sats.low_u64() }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn partner(id: i64, work: u128, bps: u32, carried: u64) -> PartnerInput {
        PartnerInput { partner: id, work, commission_bps: bps, carried }
    }

    #[test]
    fn a_worked_example() {
        // 1,000 sats, work 1:1:1, 30 % commission on all, threshold 300.
        let partners = [partner(1, 5, 3000, 0), partner(2, 5, 3000, 100), partner(3, 5, 3000, 0)];
        let s = settle(1000, &partners, 300).unwrap();
        // 333.33 each: the one left-over sat goes to the smallest id on a tie.
        assert_eq!(s.partners.iter().map(|p| p.gross).collect::<Vec<_>>(), vec![334, 333, 333]);
        assert_eq!(s.partners.iter().map(|p| p.commission).collect::<Vec<_>>(), vec![100, 99, 99]);
        assert_eq!(s.partners.iter().map(|p| p.net).collect::<Vec<_>>(), vec![234, 234, 234]);
        // Partner 2 had 100 carried: 334 ≥ 300 is paid; the others carry 234.
        assert_eq!(
            s.partners.iter().map(|p| (p.payout, p.carry)).collect::<Vec<_>>(),
            vec![(0, 234), (334, 0), (0, 234)]
        );
        assert_eq!(s.commission, 298);
    }

    #[test]
    fn no_work_leaves_the_earnings_with_the_operator_and_bad_input_is_refused() {
        let s = settle(500, &[partner(1, 0, 1000, 7)], 100).unwrap();
        assert_eq!((s.commission, s.partners[0].gross, s.partners[0].carry), (500, 0, 7));
        assert_eq!(
            settle(1, &[partner(1, 1, 10_001, 0)], 0),
            Err(SettlementError::CommissionOver100Percent { partner: 1 })
        );
        assert_eq!(
            settle(1, &[partner(1, 1, 0, 0), partner(1, 2, 0, 0)], 0),
            Err(SettlementError::DuplicatePartner { partner: 1 })
        );
    }

    #[test]
    fn pps_follows_the_formula() {
        // Work of exactly one block at difficulty 1 (2^32 hashes) earns one block reward.
        assert_eq!(pps_estimate(1 << 32, 312_500_000, 1), 312_500_000);
        // Today's scale: 1 TH at difficulty 1e14 earns 3.125e8 × 1e12 / (1e14 × 2^32) ≈ 0.7 sat.
        assert_eq!(pps_estimate(1_000_000_000_000, 312_500_000, 100_000_000_000_000), 0);
        assert_eq!(pps_estimate(u128::MAX, u64::MAX, 1), u64::MAX, "saturates instead of overflowing");
        assert_eq!(pps_estimate(1, 1, 0), 0);
    }

    fn partners_strategy() -> impl Strategy<Value = Vec<PartnerInput>> {
        prop::collection::vec((any::<u128>(), 0u32..=10_000, 0u64..=1 << 50), 0..12).prop_map(|rows| {
            rows.into_iter()
                .enumerate()
                .map(|(i, (work, bps, carried))| partner(i as i64 + 1, work >> (i % 4 * 30), bps, carried))
                .collect()
        })
    }

    proptest! {
        #[test]
        fn every_satoshi_is_accounted_for(earnings in any::<u64>(), partners in partners_strategy(), threshold in 0u64..=1 << 40) {
            let s = settle(earnings, &partners, threshold).unwrap();
            let net: u128 = s.partners.iter().map(|p| u128::from(p.net)).sum();
            prop_assert_eq!(net + u128::from(s.commission), u128::from(earnings));
            let gross: u128 = s.partners.iter().map(|p| u128::from(p.gross)).sum();
            if partners.iter().any(|p| p.work > 0) {
                prop_assert_eq!(gross, u128::from(earnings));
            }
            for (p, input) in s.partners.iter().zip(&partners) {
                // Commission bounds: never more than the partner's rate, never more than a sat under it.
                prop_assert!(u128::from(p.commission) * 10_000 <= u128::from(p.gross) * u128::from(input.commission_bps));
                prop_assert!((u128::from(p.commission) + 1) * 10_000 > u128::from(p.gross) * u128::from(input.commission_bps));
                // Carry-over: what was owed is paid or carried, never lost; nothing is paid under the threshold.
                prop_assert_eq!(u128::from(p.payout) + u128::from(p.carry), u128::from(input.carried) + u128::from(p.net));
                prop_assert!(p.payout == 0 || p.payout >= threshold);
                prop_assert!(p.payout == 0 || p.carry == 0);
            }
        }

        #[test]
        fn the_result_does_not_depend_on_the_order_of_partners(earnings in any::<u64>(), partners in partners_strategy(), seed in any::<u64>()) {
            let mut shuffled = partners.clone();
            let n = shuffled.len();
            for i in (1..n).rev() {
                let j = (seed.wrapping_mul(i as u64 + 7) % (i as u64 + 1)) as usize;
                shuffled.swap(i, j);
            }
            prop_assert_eq!(settle(earnings, &partners, 1000).unwrap(), settle(earnings, &shuffled, 1000).unwrap());
        }

        #[test]
        fn largest_remainder_is_within_one_unit_of_the_exact_quota(total in any::<u64>(), weights in prop::collection::vec(any::<u128>(), 1..10)) {
            let keyed: Vec<(i64, u128)> = weights.iter().enumerate().map(|(i, w)| (i as i64, *w)).collect();
            let parts = largest_remainder(total, &keyed);
            let sum: U256 = weights.iter().fold(U256::zero(), |a, w| a + U256::from(*w));
            if !sum.is_zero() {
                prop_assert_eq!(parts.iter().map(|(_, p)| u128::from(*p)).sum::<u128>(), u128::from(total));
                for ((_, part), w) in parts.iter().zip(&weights) {
                    let exact_floor = (U256::from(total) * U256::from(*w)) / sum;
                    prop_assert!(U256::from(*part) == exact_floor || U256::from(*part) == exact_floor + U256::one());
                }
            }
        }
    }
}
