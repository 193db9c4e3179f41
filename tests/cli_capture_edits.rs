//! `tell capture` under interventions: edited captures against the transformers hook goldens
//! (`tests/parity/make_intervention_goldens.py`), patch values from a prompts file or from a
//! store captured with `--positions all`, noise that does not depend on the batch, difference-of-
//! means vectors from `tell probe means`, and bad patch sources refused before the store is
//! touched.

mod common;

use std::path::Path;

use common::*;

const CASES: [(&str, &str); 5] = [
    (
        "add_attn_out_l1_all",
        "add site=attn_out layers=1 alpha=2.5",
    ),
    (
        "add_mlp_out_l2_last",
        "add site=mlp_out layers=2 positions=last alpha=3",
    ),
    (
        "ablate_resid_post_l1_all",
        "ablate site=resid_post layers=1",
    ),
    (
        "patch_resid_post_l1_pos1to3",
        "patch site=resid_post layers=1 positions=1-3",
    ),
    ("patch_attn_out_every_all", "patch site=attn_out layers=all"),
];

/// Captures `prompts` with `extra` arguments; every layer's resid_post and the logits, at every
/// position.
fn capture_all(model: &Path, prompts: &Path, out: &Path, batch: usize, extra: &[&str]) {
    let batch = batch.to_string();
    let mut args = vec![
        "capture",
        model.to_str().unwrap(),
        "--prompts",
        prompts.to_str().unwrap(),
        "--out",
        out.to_str().unwrap(),
        "--sites",
        "resid_post,logits",
        "--positions",
        "all",
        "--batch-size",
        &batch,
    ];
    args.extend_from_slice(extra);
    ok(&tell(&args));
}

/// The first record's rows (positions `all`) of one site and layer.
fn first_record(dir: &Path, site: &str, layer: Option<u32>, tokens: usize) -> Vec<f32> {
    let m = store_matrix(dir, site, layer);
    let width = if site == "logits" { 96 } else { 64 };
    m[..tokens * width].to_vec()
}

/// Every intervention case of the goldens through `tell capture`: the edited prompt (golden
/// prompt 0) runs in a left-padded batch beside the other golden prompts, so an edit placed by
/// padded rather than real positions would show.
#[test]
fn captures_under_edits_match_transformers_hooks() {
    let tmp = tempfile::tempdir().unwrap();
    for name in ["gqa", "tied"] {
        let model = model_dir(name);
        let golden = prompts(name);
        let t = golden[0].len();
        let targets = tmp.path().join(format!("{name}-targets.jsonl"));
        write_token_prompts(&targets, &golden);
        // Source prompt 1 patches target 0 (as in the goldens); the other rows patch themselves.
        let sources = tmp.path().join(format!("{name}-sources.jsonl"));
        write_token_prompts(
            &sources,
            &[golden[1].clone(), golden[1].clone(), golden[2].clone()],
        );
        let source_store = tmp.path().join(format!("{name}-source-store"));
        ok(&tell(&[
            "capture",
            model.to_str().unwrap(),
            "--prompts",
            sources.to_str().unwrap(),
            "--out",
            source_store.to_str().unwrap(),
            "--sites",
            "resid_post,attn_out",
            "--positions",
            "all",
        ]));
        for (case, edit) in CASES {
            let mut runs: Vec<(String, Vec<String>)> = Vec::new();
            if case.starts_with("patch") {
                for (how, from) in [("prompts", &sources), ("store", &source_store)] {
                    runs.push((
                        format!("{case}-{how}"),
                        vec![
                            "--edit".into(),
                            edit.into(),
                            "--patch-from".into(),
                            from.display().to_string(),
                        ],
                    ));
                }
            } else {
                let v = golden_tensor(name, "interventions.safetensors", &format!("vector.{case}"));
                let npy = tmp.path().join(format!("{name}-{case}.npy"));
                write_npy(&npy, &v);
                runs.push((
                    case.to_string(),
                    vec!["--edit".into(), format!("{edit} vector={}", npy.display())],
                ));
            }
            for (run, extra) in runs {
                let out = tmp.path().join(format!("{name}-{run}"));
                let extra: Vec<&str> = extra.iter().map(String::as_str).collect();
                capture_all(&model, &targets, &out, 3, &extra);
                let mut sites: Vec<(String, &str, Option<u32>)> = (0..3)
                    .map(|l| {
                        (
                            format!("blocks.{l}.hook_resid_post"),
                            "hook_resid_post",
                            Some(l),
                        )
                    })
                    .collect();
                sites.push(("logits".into(), "logits", None));
                for (golden_key, site, layer) in sites {
                    let want = golden_tensor(
                        name,
                        "interventions.safetensors",
                        &format!("{case}.{golden_key}"),
                    );
                    let got = first_record(&out, site, layer, t);
                    let err = rel_err(&got, &want);
                    assert!(err <= 1e-4, "{name} {run} {golden_key}: rel err {err}");
                }
            }
        }
    }
}

/// Noise is drawn per prompt (keyed by its index), so a capture under noise does not depend on
/// the batch it ran in; and it does change the values.
#[test]
fn noise_in_a_capture_does_not_depend_on_the_batch() {
    let tmp = tempfile::tempdir().unwrap();
    let model = model_dir("gqa");
    let prompts_path = tmp.path().join("p.jsonl");
    write_token_prompts(&prompts_path, &prompts("gqa"));
    let noise = ["--edit", "noise site=resid_pre layers=all sigma=0.5 seed=3"];
    let (b1, b3, plain) = (
        tmp.path().join("b1"),
        tmp.path().join("b3"),
        tmp.path().join("plain"),
    );
    capture_all(&model, &prompts_path, &b1, 1, &noise);
    capture_all(&model, &prompts_path, &b3, 3, &noise);
    capture_all(&model, &prompts_path, &plain, 3, &[]);
    let (a, b, c) = (
        store_matrix(&b1, "logits", None),
        store_matrix(&b3, "logits", None),
        store_matrix(&plain, "logits", None),
    );
    let err = rel_err(&a, &b);
    assert!(err <= 1e-5, "batch 1 vs 3 under noise: rel err {err}");
    assert!(rel_err(&a, &c) > 1e-2, "noise sigma 0.5 changed nothing");
}

/// `tell probe means` writes mean(positive) - mean(negative) of the stored rows, and an edit
/// takes its site and layer from the file.
#[test]
fn mean_difference_vectors_come_from_a_store_and_steer() {
    let tmp = tempfile::tempdir().unwrap();
    let model = model_dir("gqa");
    let golden = prompts("gqa");
    let mut many = Vec::new();
    for i in 0..6 {
        let mut p = golden[i % 3].clone();
        p.push(10 + i as u32);
        many.push(p);
    }
    let prompts_path = tmp.path().join("p.jsonl");
    write_token_prompts(&prompts_path, &many);
    let store = tmp.path().join("acts");
    ok(&tell(&[
        "capture",
        model.to_str().unwrap(),
        "--prompts",
        prompts_path.to_str().unwrap(),
        "--out",
        store.to_str().unwrap(),
        "--layers",
        "1",
    ]));
    let labels = tmp.path().join("labels.csv");
    std::fs::write(&labels, "id,faking\np0,1\np1,0\np2,1\np3,0\np4,0\np5,1\n").unwrap();
    let vector = tmp.path().join("means.safetensors");
    let stdout = ok(&tell(&[
        "probe",
        "means",
        "--acts",
        store.to_str().unwrap(),
        "--labels",
        labels.to_str().unwrap(),
        "--label",
        "faking",
        "--layer",
        "1",
        "--out",
        vector.to_str().unwrap(),
    ]));
    assert!(stdout.contains("3 positive, 3 negative"), "{stdout}");
    let rows = store_matrix(&store, "hook_resid_post", Some(1));
    let d = 64;
    let mean = |ids: [usize; 3]| -> Vec<f64> {
        (0..d)
            .map(|j| ids.iter().map(|&i| rows[i * d + j] as f64).sum::<f64>() / 3.0)
            .collect()
    };
    let (p, n) = (mean([0, 2, 5]), mean([1, 3, 4]));
    let bytes = std::fs::read(&vector).unwrap();
    let st = safetensors::SafeTensors::deserialize(&bytes).unwrap();
    let got: Vec<f32> = st
        .tensor("direction")
        .unwrap()
        .data()
        .chunks_exact(4)
        .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
        .collect();
    for j in 0..d {
        let want = p[j] - n[j];
        assert!(
            (got[j] as f64 - want).abs() <= 1e-6 * want.abs().max(1.0),
            "feature {j}: {} vs {want}",
            got[j]
        );
    }
    // The vector names its site and layer: `add` needs neither.
    let toks = ids(&golden[0]);
    let m = model.to_str().unwrap();
    let plain = ok(&tell(&["forward", m, "--tokens", &toks, "--json"]));
    let edit = format!("add alpha=4 vector={}", vector.display());
    let steered = ok(&tell(&[
        "forward", m, "--tokens", &toks, "--json", "--edit", &edit,
    ]));
    assert_ne!(plain, steered);
    // Adding the difference at layer 1's resid_post equals adding it by name.
    let named = format!(
        "add site=resid_post layers=1 alpha=4 vector={}#direction",
        vector.display()
    );
    assert_eq!(
        steered,
        ok(&tell(&[
            "forward", m, "--tokens", &toks, "--json", "--edit", &named
        ]))
    );
    // One class only is refused, naming the counts.
    std::fs::write(&labels, "id,faking\np0,1\np1,1\np2,1\np3,1\np4,1\np5,1\n").unwrap();
    fails_with(
        &tell(&[
            "probe",
            "means",
            "--acts",
            store.to_str().unwrap(),
            "--labels",
            labels.to_str().unwrap(),
            "--label",
            "faking",
            "--layer",
            "1",
            "--out",
            tmp.path().join("one.safetensors").to_str().unwrap(),
        ]),
        "labels have one class only: 6 positive, 0 negative",
    );
}

/// Patch sources that cannot be aligned with the targets are refused before the store exists.
#[test]
fn bad_patch_sources_are_refused_before_the_store_is_written() {
    let tmp = tempfile::tempdir().unwrap();
    let model = model_dir("gqa");
    let m = model.to_str().unwrap();
    let golden = prompts("gqa");
    let targets = tmp.path().join("t.jsonl");
    write_token_prompts(&targets, &golden);
    let two = tmp.path().join("two.jsonl");
    write_token_prompts(&two, &golden[..2]);
    let last_store = tmp.path().join("last");
    ok(&tell(&[
        "capture",
        m,
        "--prompts",
        targets.to_str().unwrap(),
        "--out",
        last_store.to_str().unwrap(),
    ]));
    let all_two = tmp.path().join("all-two");
    ok(&tell(&[
        "capture",
        m,
        "--prompts",
        two.to_str().unwrap(),
        "--out",
        all_two.to_str().unwrap(),
        "--positions",
        "all",
    ]));
    let all_mlp = tmp.path().join("all-mlp");
    ok(&tell(&[
        "capture",
        m,
        "--prompts",
        targets.to_str().unwrap(),
        "--out",
        all_mlp.to_str().unwrap(),
        "--positions",
        "all",
        "--sites",
        "mlp_out",
    ]));
    let out = tmp.path().join("out");
    let patch = "patch site=resid_post layers=1";
    let run = |extra: &[&str]| {
        let mut args = vec![
            "capture",
            m,
            "--prompts",
            targets.to_str().unwrap(),
            "--out",
            out.to_str().unwrap(),
        ];
        args.extend_from_slice(extra);
        tell(&args)
    };
    let cases: [(Vec<&str>, String); 6] = [
        (
            vec!["--edit", patch],
            "a patch edit needs source values".into(),
        ),
        (
            vec!["--patch-from", two.to_str().unwrap()],
            "is given but no edit patches".into(),
        ),
        (
            vec!["--edit", patch, "--patch-from", two.to_str().unwrap()],
            format!("{}:3: 2 source prompts for 3 target prompts", two.display()),
        ),
        (
            vec![
                "--edit",
                patch,
                "--patch-from",
                last_store.to_str().unwrap(),
            ],
            format!(
                "patch source {}: it holds positions last; a patch source needs every token",
                last_store.display()
            ),
        ),
        (
            vec!["--edit", patch, "--patch-from", all_two.to_str().unwrap()],
            format!(
                "patch source {}: 2 records for 3 target prompts",
                all_two.display()
            ),
        ),
        (
            vec!["--edit", patch, "--patch-from", all_mlp.to_str().unwrap()],
            format!(
                "patch source {}: it has no blocks.1.hook_resid_post",
                all_mlp.display()
            ),
        ),
    ];
    for (extra, want) in cases {
        fails_with(&run(&extra), &want);
        assert!(!out.exists(), "{want}: the store was created");
    }
    // A store of another model is refused by its identity.
    let tied = tmp.path().join("tied.jsonl");
    write_token_prompts(&tied, &prompts("tied")[..3]);
    let other = tmp.path().join("other");
    ok(&tell(&[
        "capture",
        model_dir("tied").to_str().unwrap(),
        "--prompts",
        tied.to_str().unwrap(),
        "--out",
        other.to_str().unwrap(),
        "--positions",
        "all",
    ]));
    fails_with(
        &run(&["--edit", patch, "--patch-from", other.to_str().unwrap()]),
        "it was captured from another model",
    );
    assert!(!out.exists());
}
