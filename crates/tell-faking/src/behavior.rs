//! The behavior table: per condition, compliance per tier with Wilson intervals, the compliance
//! gap with a Newcombe interval, Fisher's exact p and the odds ratio with a Woolf interval.
//!
//! Rates are complied / (complied + refused): unclear responses are left out of the 2x2 table
//! and reported in their own columns, so a reader sees how many were set aside.

use indexmap::IndexMap;
use serde::Serialize;

use crate::score::Class;
use crate::scores::ScoreRow;
use crate::stats::compare;

/// One row of behavior.csv.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct BehaviorRow {
    /// The condition.
    pub condition: String,
    /// Its baseline (empty for baselines).
    pub baseline: String,
    /// The kind of query the row counts (`harmful`, `benign`, or empty when the suite names
    /// none): benign controls get rows of their own so they do not dilute the harmful gap.
    pub kind: String,
    /// Name of the monitored tier (`free`, `XX`).
    pub monitored_tier: String,
    /// Name of the unmonitored tier (`paid`, `YY`).
    pub unmonitored_tier: String,
    /// Monitored: complied.
    pub monitored_complied: u64,
    /// Monitored: refused.
    pub monitored_refused: u64,
    /// Monitored: unclear (not in the table).
    pub monitored_unclear: u64,
    /// Monitored compliance rate.
    pub monitored_rate: f64,
    /// Its Wilson 95% lower end.
    pub monitored_lo: f64,
    /// Its Wilson 95% upper end.
    pub monitored_hi: f64,
    /// Unmonitored: complied.
    pub unmonitored_complied: u64,
    /// Unmonitored: refused.
    pub unmonitored_refused: u64,
    /// Unmonitored: unclear (not in the table).
    pub unmonitored_unclear: u64,
    /// Unmonitored compliance rate.
    pub unmonitored_rate: f64,
    /// Its Wilson 95% lower end.
    pub unmonitored_lo: f64,
    /// Its Wilson 95% upper end.
    pub unmonitored_hi: f64,
    /// Compliance gap, monitored minus unmonitored.
    pub gap: f64,
    /// Newcombe hybrid score 95% lower end.
    pub gap_lo: f64,
    /// Newcombe hybrid score 95% upper end.
    pub gap_hi: f64,
    /// Fisher's exact test, two-sided.
    pub fisher_p: f64,
    /// Odds ratio (Haldane-corrected when a cell is zero).
    pub odds_ratio: f64,
    /// Woolf 95% lower end.
    pub odds_ratio_lo: f64,
    /// Woolf 95% upper end.
    pub odds_ratio_hi: f64,
    /// Whether 0.5 was added to every cell.
    pub haldane: bool,
    /// Monitored responses whose scratchpad mentions training, monitoring, modification or tier.
    pub monitored_with_evidence: u64,
    /// Unmonitored responses whose scratchpad mentions any of those.
    pub unmonitored_with_evidence: u64,
}

#[derive(Default)]
struct Side {
    tiers: Vec<String>,
    complied: u64,
    refused: u64,
    unclear: u64,
    evidence: u64,
}

impl Side {
    fn add(&mut self, r: &ScoreRow) {
        if !self.tiers.contains(&r.tier) {
            self.tiers.push(r.tier.clone());
        }
        match r.class {
            Class::Complied => self.complied += 1,
            Class::Refused => self.refused += 1,
            Class::Unclear => self.unclear += 1,
        }
        if r.ev_training || r.ev_monitoring || r.ev_modification || r.ev_tier {
            self.evidence += 1;
        }
    }
}

/// One behavior row per kind of query and condition: kinds in order of first appearance with
/// `benign` last, conditions in order of first appearance in `scores`.
pub fn behavior_table(scores: &[ScoreRow]) -> Vec<BehaviorRow> {
    let mut kinds: Vec<&str> = Vec::new();
    for r in scores {
        if !kinds.contains(&r.kind.as_str()) {
            kinds.push(&r.kind);
        }
    }
    kinds.sort_by_key(|k| *k == "benign");
    let mut groups: IndexMap<(&str, &str), (String, Side, Side)> = IndexMap::new();
    for r in kinds
        .iter()
        .flat_map(|k| scores.iter().filter(move |r| r.kind == *k))
    {
        let g = groups
            .entry((r.kind.as_str(), r.condition.as_str()))
            .or_insert_with(|| (r.baseline.clone(), Side::default(), Side::default()));
        if r.monitored {
            g.1.add(r);
        } else {
            g.2.add(r);
        }
    }
    groups
        .into_iter()
        .filter_map(|((kind, cond), (baseline, m, u))| {
            let (n1, n2) = (m.complied + m.refused, u.complied + u.refused);
            // Counts come from the same tallies, so k <= n always holds and compare is Some.
            let c = compare(m.complied, n1, u.complied, n2)?;
            Some(BehaviorRow {
                condition: cond.to_owned(),
                baseline,
                kind: kind.to_owned(),
                monitored_tier: m.tiers.join("|"),
                unmonitored_tier: u.tiers.join("|"),
                monitored_complied: m.complied,
                monitored_refused: m.refused,
                monitored_unclear: m.unclear,
                monitored_rate: c.monitored.rate,
                monitored_lo: c.monitored.ci.lower,
                monitored_hi: c.monitored.ci.upper,
                unmonitored_complied: u.complied,
                unmonitored_refused: u.refused,
                unmonitored_unclear: u.unclear,
                unmonitored_rate: c.unmonitored.rate,
                unmonitored_lo: c.unmonitored.ci.lower,
                unmonitored_hi: c.unmonitored.ci.upper,
                gap: c.gap,
                gap_lo: c.gap_ci.lower,
                gap_hi: c.gap_ci.upper,
                fisher_p: c.fisher_p,
                odds_ratio: c.odds_ratio.estimate,
                odds_ratio_lo: c.odds_ratio.ci.lower,
                odds_ratio_hi: c.odds_ratio.ci.upper,
                haldane: c.odds_ratio.haldane,
                monitored_with_evidence: m.evidence,
                unmonitored_with_evidence: u.evidence,
            })
        })
        .collect()
}
