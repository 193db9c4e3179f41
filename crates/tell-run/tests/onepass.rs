//! The one pass of `tell run` (generation and capture together) writes the store that
//! `tell capture` writes for the same prompts: on the prompts for `mean`/`all`, on prompt +
//! response for the response positions, for every site kind (block sites, `ln_final`, `logits`).
//! The organism's suite, with its [capture] section varied.

use std::path::{Path, PathBuf};
use std::sync::atomic::AtomicBool;

use tell_capture::{capture, CaptureOptions};
use tell_run::{run_suite, Event, RunOptions, Stage};
use tell_store::{Positions, Store};

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for e in std::fs::read_dir(from).unwrap() {
        let e = e.unwrap();
        let target = to.join(e.file_name());
        if e.file_type().unwrap().is_dir() {
            copy_dir(&e.path(), &target);
        } else {
            std::fs::copy(e.path(), target).unwrap();
        }
    }
}

/// The organism's suite in `dir`, capturing `sites` at `positions`.
fn suite(dir: &Path, sites: &str, positions: &str) -> PathBuf {
    copy_dir(&root().join("probes/organism"), dir);
    let path = dir.join("suite.toml");
    let text = std::fs::read_to_string(&path).unwrap().replace(
        "sites = [\"resid_post\"]\nlayers = \"all\"\npositions = \"mean\"",
        &format!("sites = [{sites}]\nlayers = \"all\"\npositions = \"{positions}\""),
    );
    assert!(text.contains(positions));
    std::fs::write(&path, text).unwrap();
    path
}

/// `prompts.jsonl` of a run with each line's response tokens added as its `response`.
fn with_responses(run: &Path, out: &Path) {
    let prompts = std::fs::read_to_string(run.join("prompts.jsonl")).unwrap();
    let responses = std::fs::read_to_string(run.join("responses.jsonl")).unwrap();
    let mut text = String::new();
    for (p, r) in prompts.lines().zip(responses.lines()) {
        let mut p: serde_json::Value = serde_json::from_str(p).unwrap();
        let r: serde_json::Value = serde_json::from_str(r).unwrap();
        assert_eq!(p["id"], r["id"]);
        p["response"] = r["response_tokens"].clone();
        text.push_str(&format!("{p}\n"));
    }
    std::fs::write(out, text).unwrap();
}

/// Largest |a - b| over the largest |b| of every matrix, after checking keys and records match.
fn store_difference(a: &Path, b: &Path) -> f32 {
    let (a, b) = (Store::open(a).unwrap(), Store::open(b).unwrap());
    assert_eq!(a.keys(), b.keys());
    let (ra, rb) = (a.records().unwrap(), b.records().unwrap());
    assert_eq!(ra.len(), rb.len());
    for (x, y) in ra.iter().zip(&rb) {
        // The extra fields' order is the prompt line's, and serde_json (in with_responses)
        // rewrites a line with its keys sorted.
        let (mut x, mut y) = (x.meta.clone(), y.meta.clone());
        x.extra.sort();
        y.extra.sort();
        assert_eq!(x, y);
    }
    let mut worst = 0f32;
    for key in a.keys() {
        let (ma, mb) = (a.matrix(&key).unwrap(), b.matrix(&key).unwrap());
        assert_eq!((ma.rows, ma.cols), (mb.rows, mb.cols), "{key}");
        let scale = mb.data.iter().fold(0f32, |m, v| m.max(v.abs()));
        let diff = ma
            .data
            .iter()
            .zip(&mb.data)
            .fold(0f32, |m, (x, y)| m.max((x - y).abs()));
        worst = worst.max(diff / scale);
    }
    worst
}

#[test]
fn one_pass_captures_equal_tell_capture_of_the_same_prompts() {
    let model = root().join("checkpoints/organism");
    let tmp = tempfile::tempdir().unwrap();
    let cases = [
        ("\"resid_post\", \"logits\"", "mean"),
        ("\"resid_post\", \"ln_final\"", "all"),
        ("\"resid_post\", \"mlp_out\", \"logits\"", "response-mean"),
        ("\"attn_out\"", "response-first"),
        ("\"resid_post\"", "last"),
    ];
    for (i, (sites, positions)) in cases.into_iter().enumerate() {
        let dir = tmp.path().join(format!("case{i}"));
        let suite = suite(&dir.join("suite"), sites, positions);
        let run = dir.join("run");
        let opts = RunOptions {
            limit: Some(1),
            batch_size: 3,
            ..RunOptions::default()
        };
        let mut events = Vec::new();
        let r = run_suite(&suite, &model, &run, &opts, &mut |e| events.push(e)).unwrap();
        // Capture never starts on its own: it finishes inside the generation stage.
        assert!(
            !events.contains(&Event::Started(Stage::Capture)),
            "{events:?}"
        );
        assert_eq!(r.records, r.prompts);
        let pos = Positions::parse(positions).unwrap();
        let prompts = if matches!(pos, Positions::ResponseMean | Positions::ResponseFirst) {
            let p = dir.join("with-responses.jsonl");
            with_responses(&run, &p);
            p
        } else {
            run.join("prompts.jsonl")
        };
        let reference = dir.join("capture");
        let copts = CaptureOptions {
            sites: sites
                .split(',')
                .map(|s| s.trim().trim_matches('"').to_string())
                .collect(),
            layers: Some("all".into()),
            positions: pos,
            batch_size: 3,
            ..CaptureOptions::default()
        };
        capture(
            &model,
            &prompts,
            &reference,
            &copts,
            &AtomicBool::new(false),
        )
        .unwrap();
        let err = store_difference(&run.join("acts"), &reference);
        eprintln!("{positions} [{sites}]: one pass vs tell capture, worst rel err {err:e}");
        // Prompt positions come from the same prefill as capture's: bit-identical. Response
        // positions come from decoding steps, whose attention sums over the cache in another
        // order than a full forward does: about 1e-6 of the largest value (attn_out, the
        // smallest site, is the worst).
        let response = matches!(pos, Positions::ResponseMean | Positions::ResponseFirst);
        let tolerance = if response { 2e-6 } else { 0.0 };
        assert!(err <= tolerance, "{positions}: rel err {err}");
    }
}

/// A run stopped after generation (no store) captures alone on resume, and a resumed run whose
/// outputs all exist runs no model.
#[test]
fn a_run_without_its_store_captures_alone_on_resume() {
    let model = root().join("checkpoints/organism");
    let tmp = tempfile::tempdir().unwrap();
    let suite = suite(&tmp.path().join("suite"), "\"resid_post\"", "mean");
    let run = tmp.path().join("run");
    let opts = RunOptions {
        limit: Some(1),
        ..RunOptions::default()
    };
    run_suite(&suite, &model, &run, &opts, &mut |_| {}).unwrap();
    let one_pass = tmp.path().join("one-pass-acts");
    std::fs::rename(run.join("acts"), &one_pass).unwrap();
    let again = RunOptions {
        resume: true,
        ..opts
    };
    let mut events = Vec::new();
    let r = run_suite(&suite, &model, &run, &again, &mut |e| events.push(e)).unwrap();
    assert!(r.skipped.contains(&Stage::Generate));
    assert!(
        events.contains(&Event::Started(Stage::Capture)),
        "{events:?}"
    );
    let err = store_difference(&run.join("acts"), &one_pass);
    assert!(err <= 1e-6, "rel err {err}");
    let mut events = Vec::new();
    run_suite(&suite, &model, &run, &again, &mut |e| events.push(e)).unwrap();
    for s in [Stage::Generate, Stage::Capture] {
        assert!(events
            .iter()
            .any(|e| matches!(e, Event::Skipped(x, _) if *x == s)));
    }
}

/// A run under an intervention: generation and capture both see the edit (noise drawn per
/// prompt, so the one pass equals `tell capture` under the same edit), and run.json records it,
/// so a plain run in the same directory is not resumed from it.
#[test]
fn a_run_under_an_intervention_edits_generation_and_capture_alike() {
    let model = root().join("checkpoints/organism");
    let tmp = tempfile::tempdir().unwrap();
    let suite = suite(&tmp.path().join("suite"), "\"resid_post\"", "last");
    let cfg = tell_llama::Checkpoint::open(&model).unwrap().config;
    let spec = tell_intervene::Spec::from_args(&[
        "noise site=resid_pre layers=all sigma=0.5 seed=7".into(),
    ])
    .unwrap();
    let iv = std::sync::Arc::new(spec.resolve(&cfg).unwrap());
    let (plain, noisy) = (tmp.path().join("plain"), tmp.path().join("noisy"));
    let opts = RunOptions {
        limit: Some(1),
        batch_size: 3,
        ..RunOptions::default()
    };
    run_suite(&suite, &model, &plain, &opts, &mut |_| {}).unwrap();
    let edited = RunOptions {
        intervention: Some(iv.clone()),
        ..opts.clone()
    };
    run_suite(&suite, &model, &noisy, &edited, &mut |_| {}).unwrap();
    let read = |p: &Path| std::fs::read_to_string(p.join("responses.jsonl")).unwrap();
    assert_ne!(
        read(&plain),
        read(&noisy),
        "noise sigma 0.5 changed no response"
    );
    let reference = tmp.path().join("capture");
    let copts = CaptureOptions {
        sites: vec!["resid_post".into()],
        layers: Some("all".into()),
        positions: Positions::Last,
        batch_size: 2,
        intervention: Some(iv),
        ..CaptureOptions::default()
    };
    capture(
        &model,
        &noisy.join("prompts.jsonl"),
        &reference,
        &copts,
        &AtomicBool::new(false),
    )
    .unwrap();
    let err = store_difference(&noisy.join("acts"), &reference);
    assert!(err <= 1e-6, "rel err {err}");
    assert!(store_difference(&plain.join("acts"), &reference) > 1e-3);
    let resume_plain = RunOptions {
        resume: true,
        ..opts
    };
    let err = run_suite(&suite, &model, &noisy, &resume_plain, &mut |_| {})
        .unwrap_err()
        .to_string();
    assert!(err.contains("interventions sha256:"), "{err}");
    assert!(err.contains("here, none asked"), "{err}");
}
