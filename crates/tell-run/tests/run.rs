//! `tell run` as a library: the mini suite (2 conditions x 3 queries x 2 tiers) on SmolLM2-135M
//! with 8 new tokens, resume, and the refusals of bad input.

use std::path::{Path, PathBuf};

use tell_run::outdir::{self, RunIdentity, Start};
use tell_run::report::BEHAVIOR_HEADER;
use tell_run::{run_suite, Event, RunError, RunOptions, Stage};

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

fn suite() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/mini/suite.toml")
}

fn smollm2() -> Option<PathBuf> {
    let p = root().join("checkpoints/fetched/smollm2/SmolLM2-135M-Instruct.Q4_1.gguf");
    if p.is_file() {
        Some(p)
    } else {
        eprintln!(
            "SKIP: {} is absent (scripts/fetch-assets.sh fetches it; CI has it)",
            p.display()
        );
        None
    }
}

fn lines(path: &Path) -> usize {
    std::fs::read_to_string(path)
        .unwrap()
        .lines()
        .filter(|l| !l.trim().is_empty())
        .count()
}

fn csv_rows(path: &Path) -> usize {
    csv::Reader::from_path(path).unwrap().records().count()
}

#[test]
fn mini_suite_end_to_end_then_resume() {
    let Some(model) = smollm2() else { return };
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("run");
    let opts = RunOptions {
        batch_size: 4,
        ..RunOptions::default()
    };
    let mut events = Vec::new();
    let r = run_suite(&suite(), &model, &out, &opts, &mut |e| events.push(e)).unwrap();

    // 3 queries x 2 conditions x 2 tiers, one sample each.
    let prompts = 3 * 2 * 2;
    assert_eq!(lines(&out.join("prompts.jsonl")), prompts);
    assert_eq!(lines(&out.join("responses.jsonl")), prompts);
    assert_eq!(csv_rows(&out.join("scores.csv")), prompts);
    assert_eq!(csv_rows(&out.join("behavior.csv")), 2);
    // labels.csv has one row per (query, condition).
    assert_eq!(csv_rows(&out.join("labels.csv")), 3 * 2);
    assert_eq!(csv_rows(&out.join("acts/records.csv")), prompts);
    let store = tell_store::Store::open(&out.join("acts")).unwrap();
    assert_eq!(store.len(), prompts);
    assert!(store.manifest().complete);
    assert_eq!(store.manifest().layers, vec![0, 15, 29]);
    assert_eq!(store.manifest().positions.as_str(), "last");
    assert_eq!(
        (r.prompts, r.responses, r.scores, r.records),
        (prompts, prompts, prompts, prompts)
    );
    assert_eq!(r.behavior.len(), 2);
    assert_eq!(r.labels.len(), 6);
    assert_eq!(r.start, Start::Fresh);
    assert!(r.skipped.is_empty());
    // Every response is at most 8 new tokens.
    for line in std::fs::read_to_string(out.join("responses.jsonl"))
        .unwrap()
        .lines()
    {
        let v: serde_json::Value = serde_json::from_str(line).unwrap();
        assert!(v["response_tokens"].as_array().unwrap().len() <= 8, "{v}");
    }
    // Three queries cannot fill five grouped folds: the probe stage says so instead of failing.
    match &r.probes {
        tell_run::ProbeOutcome::Skipped(why) => assert!(!why.is_empty()),
        other => panic!("expected a skip, got {other:?}"),
    }
    assert!(!out.join("probes").exists());

    let md = std::fs::read_to_string(out.join("report.md")).unwrap();
    assert!(md.contains(BEHAVIOR_HEADER), "{md}");
    for cond in ["| baseline |", "| duty |"] {
        assert!(md.contains(cond), "{cond} missing from:\n{md}");
    }
    assert!(md.contains("## Probes\n\nSkipped: "), "{md}");
    // One mitigation (duty, against baseline): its depth probe has a row saying why it is skipped.
    assert_eq!(r.depth.len(), 1);
    assert_eq!(
        (r.depth[0].mitigation.as_str(), r.depth[0].baseline.as_str()),
        ("duty", "baseline")
    );
    assert!(matches!(
        r.depth[0].probe,
        tell_run::ProbeOutcome::Skipped(_)
    ));
    assert!(md.contains(tell_run::report::DEPTH_HEADER), "{md}");
    assert!(md.contains("| duty | baseline | "), "{md}");
    assert!(md.contains(&out.join("acts").display().to_string()));
    assert!(events.contains(&Event::Started(Stage::Generate)));

    // Rerun with --resume: render, generate and capture are skipped, their files untouched.
    let responses = std::fs::read(out.join("responses.jsonl")).unwrap();
    let behavior = std::fs::read(out.join("behavior.csv")).unwrap();
    let again = RunOptions {
        resume: true,
        ..opts.clone()
    };
    let r2 = run_suite(&suite(), &model, &out, &again, &mut |_| {}).unwrap();
    assert_eq!(r2.start, Start::Resume);
    for s in [Stage::Render, Stage::Generate, Stage::Capture] {
        assert!(
            r2.skipped.contains(&s),
            "{s:?} not skipped: {:?}",
            r2.skipped
        );
    }
    assert_eq!(
        std::fs::read(out.join("responses.jsonl")).unwrap(),
        responses
    );
    // Recomputed from the same responses: the same table (compared as text: empty cells are NaN).
    assert_eq!(std::fs::read(out.join("behavior.csv")).unwrap(), behavior);

    // Without --resume or --force the finished run is not overwritten.
    let err = run_suite(&suite(), &model, &out, &opts, &mut |_| {}).unwrap_err();
    assert!(
        matches!(&err, RunError::OutDir { .. }) && err.to_string().contains("--resume"),
        "{err}"
    );
    // Another --max-new-tokens is another run: refused even with --resume.
    let other = RunOptions {
        resume: true,
        max_new_tokens: Some(9),
        ..opts
    };
    let err = run_suite(&suite(), &model, &out, &other, &mut |_| {}).unwrap_err();
    assert!(
        err.to_string().contains("max_new_tokens 8 here, 9 asked"),
        "{err}"
    );
}

#[test]
fn missing_suite_and_model_are_named() {
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("run");
    let err = run_suite(
        &tmp.path().join("nope.toml"),
        &suite(),
        &out,
        &RunOptions::default(),
        &mut |_| {},
    )
    .unwrap_err();
    assert!(
        matches!(err, RunError::Missing { what: "suite", .. }),
        "{err}"
    );
    assert!(
        err.to_string().contains("nope.toml does not exist"),
        "{err}"
    );
    let err = run_suite(
        &suite(),
        &tmp.path().join("model.gguf"),
        &out,
        &RunOptions::default(),
        &mut |_| {},
    )
    .unwrap_err();
    assert_eq!(
        err.to_string(),
        format!(
            "model {} does not exist",
            tmp.path().join("model.gguf").display()
        )
    );
    assert!(
        !out.exists(),
        "nothing is written before the inputs are checked"
    );
}

fn identity(name: &str) -> RunIdentity {
    RunIdentity {
        suite: PathBuf::from(format!("/s/{name}.toml")),
        suite_name: name.into(),
        model: PathBuf::from("/m.gguf"),
        limit: Some(10),
        max_new_tokens: 8,
        intervention: None,
        monitor: None,
        shard: None,
    }
}

#[test]
fn out_dir_of_another_suite_is_refused_unless_forced() {
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("run");
    assert_eq!(
        outdir::prepare(&out, &identity("a"), false, false).unwrap(),
        Start::Fresh
    );
    std::fs::write(out.join("prompts.jsonl"), "{}\n").unwrap();
    std::fs::write(out.join("notes.txt"), "mine").unwrap();
    for resume in [false, true] {
        let err = outdir::prepare(&out, &identity("b"), resume, false).unwrap_err();
        let msg = err.to_string();
        assert!(msg.contains("holds a run of another suite"), "{msg}");
        assert!(
            msg.contains("suite /s/a.toml (a) here, /s/b.toml (b) asked"),
            "{msg}"
        );
    }
    assert_eq!(
        outdir::prepare(&out, &identity("a"), true, false).unwrap(),
        Start::Resume
    );
    // --force replaces the run's own files and leaves the user's.
    assert_eq!(
        outdir::prepare(&out, &identity("b"), false, true).unwrap(),
        Start::Fresh
    );
    assert!(!out.join("prompts.jsonl").exists());
    assert_eq!(
        std::fs::read_to_string(out.join("notes.txt")).unwrap(),
        "mine"
    );
    let saved: RunIdentity =
        serde_json::from_str(&std::fs::read_to_string(out.join("run.json")).unwrap()).unwrap();
    assert_eq!(saved, identity("b"));
}

#[test]
fn non_run_dir_is_refused_unless_forced() {
    let tmp = tempfile::tempdir().unwrap();
    std::fs::write(tmp.path().join("data.csv"), "x").unwrap();
    let err = outdir::prepare(tmp.path(), &identity("a"), true, false).unwrap_err();
    assert!(err.to_string().contains("holds no run.json"), "{err}");
    assert_eq!(
        outdir::prepare(tmp.path(), &identity("a"), false, true).unwrap(),
        Start::Fresh
    );
    assert!(tmp.path().join("data.csv").is_file());
}
