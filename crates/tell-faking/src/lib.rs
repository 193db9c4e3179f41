//! The alignment-faking experiment: suites of conditions x tiers x queries, prompt rendering,
//! response scoring, statistics per condition and shallow/deep labels per query.

pub mod stats;
