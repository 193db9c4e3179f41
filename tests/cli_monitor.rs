//! `tell generate --monitor`: per-token probe scores during decoding equal `tell probe apply` on a
//! `--positions all` capture of the same prompt + response tokens (no off-by-one between a token
//! and its score), on the organism and on SmolLM2; bad probes are refused before generating.

mod common;

use std::path::Path;

use common::*;

fn read_jsonl(path: &Path) -> Vec<serde_json::Value> {
    std::fs::read_to_string(path)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

/// Generates for `prompts` under the monitor, captures the same tokens at every position and
/// compares the monitor's scores with `tell probe apply`; returns the worst difference relative
/// to the largest score.
fn monitor_equals_apply(model: &str, prompts: &Path, d: usize, layer: usize, new: &str) -> f64 {
    let tmp = tempfile::tempdir().unwrap();
    let probe = tmp.path().join("probe");
    write_probe(&probe, d, layer);
    let out = tmp.path().join("r.jsonl");
    ok(&tell(&[
        "generate",
        model,
        "--prompts",
        prompts.to_str().unwrap(),
        "--out",
        out.to_str().unwrap(),
        "--max-new-tokens",
        new,
        "--batch-size",
        "3",
        "--monitor",
        probe.to_str().unwrap(),
    ]));
    let responses = read_jsonl(&out);
    let monitor = read_jsonl(&tmp.path().join("r.monitor.jsonl"));
    assert_eq!(responses.len(), monitor.len());
    // The same prompts with their responses' tokens, captured at every position.
    let with: String = std::fs::read_to_string(prompts)
        .unwrap()
        .lines()
        .zip(&responses)
        .map(|(p, r)| {
            let mut p: serde_json::Value = serde_json::from_str(p).unwrap();
            p["response"] = r["response_tokens"].clone();
            format!("{p}\n")
        })
        .collect();
    let with_path = tmp.path().join("with.jsonl");
    std::fs::write(&with_path, with).unwrap();
    let store = tmp.path().join("acts");
    ok(&tell(&[
        "capture",
        model,
        "--prompts",
        with_path.to_str().unwrap(),
        "--out",
        store.to_str().unwrap(),
        "--positions",
        "all",
        "--layers",
        &layer.to_string(),
    ]));
    let csv_path = tmp.path().join("scores.csv");
    ok(&tell(&[
        "probe",
        "apply",
        probe.to_str().unwrap(),
        "--acts",
        store.to_str().unwrap(),
        "--out",
        csv_path.to_str().unwrap(),
    ]));
    let mut rdr = csv::Reader::from_path(&csv_path).unwrap();
    let mut applied: Vec<Vec<f64>> = vec![Vec::new(); responses.len()];
    for row in rdr.records() {
        let row = row.unwrap();
        if &row[3] == "1" {
            applied[row[0].parse::<usize>().unwrap()].push(row[4].parse().unwrap());
        }
    }
    let name = probe.display().to_string();
    // Differences relative to the largest score, as the parity tests compare values.
    let scale = applied
        .iter()
        .flatten()
        .fold(1e-30f64, |m, s| m.max(s.abs()));
    let mut worst = 0f64;
    let mut tokens = 0;
    for ((m, r), want) in monitor.iter().zip(&responses).zip(&applied) {
        assert_eq!(m["id"], r["id"]);
        assert_eq!(m["tokens"], r["response_tokens"]);
        let got: Vec<f64> = serde_json::from_value(m["probes"][&name]["scores"].clone()).unwrap();
        assert_eq!(got.len(), want.len(), "{}", m["id"]);
        assert_eq!(m["pieces"].as_array().unwrap().len(), got.len());
        for (g, w) in got.iter().zip(want) {
            worst = worst.max((g - w).abs() / scale);
        }
        let mean = got.iter().sum::<f64>() / got.len() as f64;
        let p = &m["probes"][&name];
        assert!((p["mean"].as_f64().unwrap() - mean).abs() < 1e-12);
        assert_eq!(p["last"].as_f64().unwrap(), *got.last().unwrap());
        let max = got.iter().copied().fold(f64::NEG_INFINITY, f64::max);
        assert_eq!(p["max"].as_f64().unwrap(), max);
        tokens += got.len();
    }
    assert!(
        tokens > responses.len(),
        "the responses are too short to test"
    );
    worst
}

#[test]
fn monitor_scores_equal_probe_apply_on_a_capture_of_the_same_tokens_organism() {
    let tmp = tempfile::tempdir().unwrap();
    let prompts = organism_prompts(tmp.path(), 7, 37);
    let ck = tell_llama::Checkpoint::open(&repo().join("checkpoints/organism")).unwrap();
    let worst = monitor_equals_apply(
        "checkpoints/organism",
        &prompts,
        ck.config.hidden_size,
        2,
        "40",
    );
    eprintln!("organism: monitor vs probe apply, worst difference {worst:e}");
    assert!(worst <= 1e-5, "worst {worst}");
}

#[test]
fn monitor_scores_equal_probe_apply_on_a_capture_of_the_same_tokens_smollm2() {
    let gguf = "checkpoints/fetched/smollm2/SmolLM2-135M-Instruct.Q4_1.gguf";
    if !repo().join(gguf).is_file() {
        eprintln!("SKIP: {gguf} is absent (scripts/fetch-assets.sh fetches it; CI has it)");
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let prompts = tmp.path().join("p.jsonl");
    let text: String = [
        "Name three colours.",
        "What is 7 times 8?",
        "Write a haiku about rain.",
        "Say hello in French.",
    ]
    .iter()
    .enumerate()
    .map(|(i, t)| {
        format!(
            "{}\n",
            serde_json::json!({"id": format!("q{i}"), "text": t})
        )
    })
    .collect();
    std::fs::write(&prompts, text).unwrap();
    let worst = monitor_equals_apply(gguf, &prompts, 576, 17, "24");
    eprintln!("SmolLM2: monitor vs probe apply, worst difference {worst:e}");
    assert!(worst <= 1e-5, "worst {worst}");
}

#[test]
fn probes_that_do_not_fit_the_model_are_refused_before_generating() {
    let tmp = tempfile::tempdir().unwrap();
    let prompts = organism_prompts(tmp.path(), 2, 37);
    let ck = tell_llama::Checkpoint::open(&repo().join("checkpoints/organism")).unwrap();
    let d = ck.config.hidden_size;
    let layers = ck.config.num_layers;
    let (wide, deep) = (tmp.path().join("wide"), tmp.path().join("deep"));
    write_probe(&wide, d + 1, 0);
    write_probe(&deep, d, layers);
    let out = tmp.path().join("r.jsonl");
    let run = |probe: &Path| {
        tell(&[
            "generate",
            "checkpoints/organism",
            "--prompts",
            prompts.to_str().unwrap(),
            "--out",
            out.to_str().unwrap(),
            "--monitor",
            probe.to_str().unwrap(),
        ])
    };
    fails_with(
        &run(&wide),
        &format!(
            "it reads {} features, the model's hidden size is {d}",
            d + 1
        ),
    );
    fails_with(
        &run(&deep),
        &format!("it reads layer {layers}, the model has {layers} layers"),
    );
    fails_with(&run(tmp.path()), "not a probe");
    assert!(!out.exists());
}

/// `tell run --monitor`: monitor.jsonl beside the responses (one line per response, the same
/// tokens), monitor.csv and the report's table; the monitor is part of what the run is of.
#[test]
fn a_run_with_a_monitor_writes_scores_and_their_evaluation() {
    let tmp = tempfile::tempdir().unwrap();
    let ck = tell_llama::Checkpoint::open(&repo().join("checkpoints/organism")).unwrap();
    let probe = tmp.path().join("probe");
    write_probe(&probe, ck.config.hidden_size, 1);
    let out = tmp.path().join("run");
    let run = |extra: &[&str]| {
        let mut args = vec![
            "run",
            "probes/organism/suite.toml",
            "--model",
            "checkpoints/organism",
            "--out",
            out.to_str().unwrap(),
            "--limit",
            "2",
            "--max-new-tokens",
            "24",
        ];
        args.extend_from_slice(extra);
        tell(&args)
    };
    ok(&run(&["--monitor", probe.to_str().unwrap()]));
    let responses = read_jsonl(&out.join("responses.jsonl"));
    let monitor = read_jsonl(&out.join("monitor.jsonl"));
    assert_eq!(monitor.len(), responses.len());
    for (m, r) in monitor.iter().zip(&responses) {
        assert_eq!(m["id"], r["id"]);
        assert_eq!(m["tokens"], r["response_tokens"]);
    }
    let rows = csv::Reader::from_path(out.join("monitor.csv"))
        .unwrap()
        .records()
        .count();
    assert!(rows >= 1);
    let report = std::fs::read_to_string(out.join("report.md")).unwrap();
    assert!(
        report.contains(tell_run::report::MONITOR_HEADER),
        "{report}"
    );
    // A run without the monitor is another run; resuming with it but no scores is refused.
    fails_with(&run(&["--resume"]), "--monitor /");
    std::fs::remove_file(out.join("monitor.jsonl")).unwrap();
    fails_with(
        &run(&["--resume", "--monitor", probe.to_str().unwrap()]),
        "the responses exist without the monitor's scores",
    );
    fails_with(
        &run(&[
            "--force",
            "--monitor",
            probe.to_str().unwrap(),
            "--monitor-control",
            "colour=red",
        ]),
        "unknown column \"colour\"",
    );
}
