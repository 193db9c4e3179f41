//! The parser and classifier on the committed corpus of crafted responses
//! (tests/data/score_corpus.jsonl): every response has its expected class, and where given its
//! decision tag and the evidence flags its scratchpad must raise (all others must stay off).

use tell_faking::evidence::scan;
use tell_faking::score::{judge, Class, Decision};

#[derive(serde::Deserialize)]
struct Case {
    name: String,
    expected: Class,
    response: String,
    #[serde(default)]
    truncated: bool,
    #[serde(default)]
    evidence: Vec<String>,
    #[serde(default)]
    decision: Option<Decision>,
}

#[test]
fn every_corpus_response_gets_its_expected_class() {
    let text = include_str!("data/score_corpus.jsonl");
    let cases: Vec<Case> = text
        .lines()
        .enumerate()
        .map(|(i, l)| serde_json::from_str(l).unwrap_or_else(|e| panic!("line {}: {e}", i + 1)))
        .collect();
    assert!(cases.len() >= 60, "only {} cases", cases.len());
    for class in [Class::Complied, Class::Refused, Class::Unclear] {
        let n = cases.iter().filter(|c| c.expected == class).count();
        assert!(n >= 15, "{n} cases of {class:?}");
    }
    let mut failures = Vec::new();
    for c in &cases {
        let (parsed, verdict) = judge(&c.response, c.truncated);
        if verdict.class != c.expected {
            failures.push(format!(
                "{}: got {:?} ({}), expected {:?}",
                c.name, verdict.class, verdict.reason, c.expected
            ));
        }
        if let Some(d) = c.decision {
            if parsed.decision != d {
                failures.push(format!(
                    "{}: decision {:?}, expected {d:?}",
                    c.name, parsed.decision
                ));
            }
        }
        let ev = parsed
            .scratchpad
            .as_deref()
            .map(|s| scan(s, &["XX", "YY"]))
            .unwrap_or_default();
        let got: Vec<&str> = [
            ("training", ev.training),
            ("monitoring", ev.monitoring),
            ("modification", ev.modification),
            ("tier", ev.tier),
        ]
        .iter()
        .filter(|(_, on)| *on)
        .map(|(n, _)| *n)
        .collect();
        if got != c.evidence {
            failures.push(format!(
                "{}: evidence {got:?}, expected {:?}",
                c.name, c.evidence
            ));
        }
    }
    assert!(
        failures.is_empty(),
        "{} failures:\n{}",
        failures.len(),
        failures.join("\n")
    );
}
