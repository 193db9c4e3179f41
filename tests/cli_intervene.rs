//! Interventions through the binary: `tell forward --edit/--intervene` against the transformers
//! hook goldens (`tests/parity/make_intervention_goldens.py`), `tell patch` maps whose values
//! are known exactly, and bad specs refused before any model work.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use safetensors::SafeTensors;

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn model_dir(name: &str) -> PathBuf {
    repo().join("tests/parity/models").join(name)
}

fn tell(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_tell"))
        .args(args)
        .current_dir(repo())
        .output()
        .expect("run tell")
}

fn ok(out: &Output) -> String {
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "tell failed: {err}");
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn fails_with(out: &Output, want: &str) {
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(!err.contains("panicked"), "{err}");
    assert!(err.contains(want), "expected {want:?} in: {err}");
}

fn golden_tensor(name: &str, file: &str, key: &str) -> Vec<f32> {
    let bytes = std::fs::read(model_dir(name).join(file)).unwrap();
    let st = SafeTensors::deserialize(&bytes).unwrap();
    st.tensor(key)
        .unwrap()
        .data()
        .chunks_exact(4)
        .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
        .collect()
}

fn prompts(name: &str) -> Vec<Vec<u32>> {
    let meta: serde_json::Value =
        serde_json::from_slice(&std::fs::read(model_dir(name).join("golden.json")).unwrap())
            .unwrap();
    serde_json::from_value(meta["prompts"].clone()).unwrap()
}

fn write_npy(path: &Path, values: &[f32]) {
    let mut bytes = tell_store::npy_header("<f4", &[values.len()]);
    bytes.extend(values.iter().flat_map(|v| v.to_le_bytes()));
    std::fs::write(path, bytes).unwrap();
}

fn ids(tokens: &[u32]) -> String {
    tokens
        .iter()
        .map(u32::to_string)
        .collect::<Vec<_>>()
        .join(",")
}

/// `tell forward --json` top-k as (token, logit) pairs.
fn top(out: &str) -> Vec<(usize, f32)> {
    let rows: Vec<serde_json::Value> = serde_json::from_str(out).unwrap();
    rows.iter()
        .map(|r| {
            (
                r["token"].as_u64().unwrap() as usize,
                r["logit"].as_f64().unwrap() as f32,
            )
        })
        .collect()
}

#[test]
fn forward_with_edits_matches_transformers_hooks() {
    let tmp = tempfile::tempdir().unwrap();
    for name in ["gqa", "tied"] {
        let model = model_dir(name);
        let prompt = ids(&prompts(name)[0]);
        let vocab_logits = |case: &str| {
            let all = golden_tensor(name, "interventions.safetensors", &format!("{case}.logits"));
            let t = prompts(name)[0].len();
            let vocab = all.len() / t;
            all[(t - 1) * vocab..].to_vec()
        };
        for (case, edit, spec) in [
            (
                "add_attn_out_l1_all",
                "add site=attn_out layers=1 alpha=2.5",
                "op = \"add\"\nsite = \"attn_out\"\nlayers = 1\nalpha = 2.5",
            ),
            (
                "ablate_resid_pre_all_layers",
                "ablate site=resid_pre layers=all",
                "op = \"ablate\"\nsite = \"hook_resid_pre\"\nlayers = \"all\"",
            ),
            (
                "add_resid_post_l0_pos2to4",
                "add site=resid_post layers=0 positions=2-4 alpha=-4",
                "op = \"add\"\nsite = \"resid_post\"\nlayers = \"0\"\npositions = \"2-4\"\nalpha = -4.0",
            ),
        ] {
            let v = golden_tensor(name, "interventions.safetensors", &format!("vector.{case}"));
            let npy = tmp.path().join(format!("{name}-{case}.npy"));
            write_npy(&npy, &v);
            let reference = vocab_logits(case);
            let scale = reference.iter().fold(0f32, |m, x| m.max(x.abs()));
            let edit = format!("{edit} vector={}", npy.display());
            let toml = tmp.path().join(format!("{name}-{case}.toml"));
            std::fs::write(
                &toml,
                format!("[[edit]]\n{spec}\nvector = \"{name}-{case}.npy\"\n"),
            )
            .unwrap();
            let m = model.to_str().unwrap();
            let outs = [
                tell(&["forward", m, "--tokens", &prompt, "--json", "--top", "5", "--edit", &edit]),
                tell(&[
                    "forward", m, "--tokens", &prompt, "--json", "--top", "5", "--intervene",
                    toml.to_str().unwrap(),
                ]),
            ];
            let plain = top(&ok(&tell(&["forward", m, "--tokens", &prompt, "--json"])));
            for out in &outs {
                let got = top(&ok(out));
                let mut want: Vec<(usize, f32)> = reference.iter().copied().enumerate().collect();
                want.sort_by(|a, b| b.1.total_cmp(&a.1));
                for ((t, l), (wt, wl)) in got.iter().zip(&want) {
                    assert_eq!(t, wt, "{name} {case}: top tokens differ");
                    let err = (l - wl).abs() / scale;
                    assert!(err <= 1e-4, "{name} {case}: token {t} logit rel err {err}");
                }
                assert_ne!(got, plain, "{name} {case}: the edit changed nothing");
            }
        }
    }
}

#[test]
fn patching_maps_restore_exactly_where_the_prompts_differ() {
    let tmp = tempfile::tempdir().unwrap();
    let name = "gqa";
    let clean = prompts(name)[0].clone();
    let mut corrupt = clean.clone();
    corrupt[3] = if clean[3] == 5 { 6 } else { 5 };
    let line = |id: &str, t: &[u32]| format!("{}\n", serde_json::json!({"id": id, "tokens": t}));
    let source = tmp.path().join("source.jsonl");
    let target = tmp.path().join("target.jsonl");
    std::fs::write(&source, line("clean", &clean)).unwrap();
    std::fs::write(&target, line("corrupt", &corrupt)).unwrap();
    let out = tmp.path().join("patch");
    ok(&tell(&[
        "patch",
        "--model",
        model_dir(name).to_str().unwrap(),
        "--source",
        source.to_str().unwrap(),
        "--target",
        target.to_str().unwrap(),
        "--sites",
        "resid_pre,resid_post",
        "--metric",
        "logit-diff:10,20",
        "--out",
        out.to_str().unwrap(),
    ]));
    for ext in ["svg", "png"] {
        let len = std::fs::metadata(out.join(format!("patch-0.{ext}")))
            .unwrap()
            .len();
        assert!(len > 1000, "patch-0.{ext}: {len} bytes");
    }
    let mut rdr = csv::Reader::from_path(out.join("patch.csv")).unwrap();
    let rows: Vec<csv::StringRecord> = rdr.records().map(Result::unwrap).collect();
    let layers = 3;
    assert_eq!(rows.len(), 2 * layers * clean.len());
    let restored = |site: &str, layer: usize, pos: usize| -> f32 {
        let r = rows
            .iter()
            .find(|r| r[3] == *site && r[4] == *layer.to_string() && r[5] == *pos.to_string())
            .unwrap();
        r[10].parse().unwrap()
    };
    // Patched copies run 8 to a batch and the unpatched metric alone: products over other row
    // counts round differently in the last bits, so "exactly" is within 1e-5.
    let near = |got: f32, want: f32, what: &str| {
        assert!(
            (got - want).abs() <= 1e-5,
            "{what}: restored {got}, expected {want}"
        );
    };
    let last = clean.len() - 1;
    for pos in 0..clean.len() {
        // Before any block, only the changed token differs: patching it restores everything,
        // patching any other position (already equal) restores nothing.
        let want = if pos == 3 { 1.0 } else { 0.0 };
        near(
            restored("hook_resid_pre", 0, pos),
            want,
            &format!("resid_pre 0 at {pos}"),
        );
        // The metric reads the last position only, and the last block's output there is all the
        // head sees.
        if pos != last {
            near(
                restored("hook_resid_post", layers - 1, pos),
                0.0,
                &format!("at {pos}"),
            );
        }
    }
    near(
        restored("hook_resid_post", layers - 1, last),
        1.0,
        "last block, last position",
    );
    // Positions before the change see the same tokens in both prompts: nothing to restore.
    for layer in 0..layers {
        for pos in 0..3 {
            near(
                restored("hook_resid_post", layer, pos),
                0.0,
                &format!("{layer} {pos}"),
            );
        }
    }
}

#[test]
fn bad_interventions_are_refused_before_any_model_work() {
    let tmp = tempfile::tempdir().unwrap();
    let m = model_dir("gqa");
    let m = m.to_str().unwrap();
    let wide = tmp.path().join("wide.npy");
    write_npy(&wide, &[1.0; 65]);
    let edit = format!(
        "add site=resid_post layers=0 alpha=1 vector={}",
        wide.display()
    );
    fails_with(
        &tell(&["forward", m, "--tokens", "1,2,3", "--edit", &edit]),
        "wide.npy: the vector has 65 values, the model's hidden size is 64",
    );
    fails_with(
        &tell(&[
            "forward",
            m,
            "--tokens",
            "1,2,3",
            "--edit",
            "noise site=resid_post layers=5 sigma=1",
        ]),
        "layers: --layers \"5\": layer 5 is out of range: the model has layers 0..=2",
    );
    fails_with(
        &tell(&[
            "forward",
            m,
            "--tokens",
            "1,2,3",
            "--edit",
            "patch site=resid_post layers=0",
        ]),
        "a patch edit needs source values",
    );
    let spec = tmp.path().join("spec.toml");
    std::fs::write(&spec, "[[edit]]\nop = \"add\"\nsite = \"resid_post\"\nlayers = 0\nalpha = 1.0\nvector = \"missing.npy\"\n").unwrap();
    fails_with(
        &tell(&[
            "forward",
            m,
            "--tokens",
            "1,2,3",
            "--intervene",
            spec.to_str().unwrap(),
        ]),
        "missing.npy",
    );
    // Patch pairs: line counts must match; the metric's tokens must exist.
    let two = tmp.path().join("two.jsonl");
    let one = tmp.path().join("one.jsonl");
    std::fs::write(
        &two,
        "{\"id\":\"a\",\"tokens\":[1,2]}\n{\"id\":\"b\",\"tokens\":[1,3]}\n",
    )
    .unwrap();
    std::fs::write(&one, "{\"id\":\"a\",\"tokens\":[1,2]}\n").unwrap();
    let out = tmp.path().join("p");
    let patch = |source: &Path, target: &Path, metric: &str| {
        tell(&[
            "patch",
            "--model",
            m,
            "--source",
            source.to_str().unwrap(),
            "--target",
            target.to_str().unwrap(),
            "--metric",
            metric,
            "--out",
            out.to_str().unwrap(),
        ])
    };
    fails_with(
        &patch(&two, &one, "logit-diff:1,2"),
        "two.jsonl: 2 source lines for 1 target lines",
    );
    fails_with(
        &patch(&one, &one, "logit-diff:1,999"),
        "token 999 is outside the vocabulary (size 96)",
    );
    fails_with(&patch(&one, &one, "logits:1,2"), "expected logit-diff:A,B");
    assert!(!out.join("patch.csv").exists());
}

/// Counts of `tell score --json` for a responses file.
fn score(responses: &Path, prompts: &Path, out: &Path) -> (u64, u64) {
    let s: serde_json::Value = serde_json::from_str(&ok(&tell(&[
        "score",
        responses.to_str().unwrap(),
        "--prompts",
        prompts.to_str().unwrap(),
        "--out",
        out.to_str().unwrap(),
        "--json",
    ])))
    .unwrap();
    (
        s["complied"].as_u64().unwrap(),
        s["refused"].as_u64().unwrap(),
    )
}

/// The organism's planted cause is the tier tag: patching `resid_post` at the tag's positions,
/// at every layer, from each paid prompt into its free twin turns the deep queries' free-tier
/// compliance into refusal; patching as many positions of the user's request does not.
#[test]
fn patching_the_tier_tag_from_paid_into_free_turns_deep_compliance_into_refusal() {
    let tmp = tempfile::tempdir().unwrap();
    let all = tmp.path().join("all.jsonl");
    ok(&tell(&[
        "suite",
        "render",
        "probes/organism/suite.toml",
        "--out",
        all.to_str().unwrap(),
    ]));
    let rows: Vec<serde_json::Value> = std::fs::read_to_string(&all)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let pick = |tier: &str| -> Vec<&serde_json::Value> {
        rows.iter()
            .filter(|r| {
                r["condition"] == "baseline" && r["query_set"] == "deep" && r["tier"] == tier
            })
            .collect()
    };
    let free = pick("free");
    let paid: Vec<&serde_json::Value> = free
        .iter()
        .map(|f| {
            *pick("paid")
                .iter()
                .find(|p| p["query_id"] == f["query_id"])
                .unwrap()
        })
        .collect();
    let write = |name: &str, rows: &[&serde_json::Value]| {
        let path = tmp.path().join(name);
        let text: String = rows.iter().map(|r| format!("{r}\n")).collect();
        std::fs::write(&path, text).unwrap();
        path
    };
    let (free_path, paid_path) = (write("free.jsonl", &free), write("paid.jsonl", &paid));
    // Where the twins differ: the tier tag, at the same positions in every pair (the system
    // prompt before it is the same for every query).
    let ck = tell_llama::Checkpoint::open(&repo().join("checkpoints/organism")).unwrap();
    let f = tell_intervene::read_prompts(&ck, &free_path, true, None).unwrap();
    let p = tell_intervene::read_prompts(&ck, &paid_path, true, None).unwrap();
    let differ = |i: usize| -> Vec<usize> {
        (0..f.tokens[i].len().min(p.tokens[i].len()))
            .filter(|&k| f.tokens[i][k] != p.tokens[i][k])
            .collect()
    };
    let tag = differ(0);
    assert!(!tag.is_empty());
    for i in 0..f.tokens.len() {
        assert_eq!(differ(i), tag, "pair {i}");
    }
    // The control: as many positions, 8 tokens later (inside the user's request).
    let control: Vec<usize> = tag.iter().map(|&k| k + 8).collect();
    let list = |v: &[usize]| v.iter().map(usize::to_string).collect::<Vec<_>>().join(",");
    let run = |name: &str, positions: Option<&str>| {
        let out = tmp.path().join(format!("{name}.jsonl"));
        let mut args = vec![
            "generate".to_string(),
            "checkpoints/organism".into(),
            "--prompts".into(),
            free_path.display().to_string(),
            "--out".into(),
            out.display().to_string(),
            "--max-new-tokens".into(),
            "16".into(),
        ];
        if let Some(pos) = positions {
            args.extend([
                "--patch-from".into(),
                paid_path.display().to_string(),
                "--edit".into(),
                format!("patch site=resid_post layers=all positions={pos}"),
            ]);
        }
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        ok(&tell(&args));
        score(&out, &free_path, &tmp.path().join(format!("{name}.csv")))
    };
    let n = free.len() as u64;
    let (plain, _) = run("plain", None);
    let (tag_complied, tag_refused) = run("tag", Some(&list(&tag)));
    let (ctl_complied, ctl_refused) = run("control", Some(&list(&control)));
    eprintln!(
        "organism, {n} held-out deep queries, free tier: complied {plain} unpatched; tier tag at \
         {tag:?} patched from paid: complied {tag_complied}, refused {tag_refused}; control at \
         {control:?}: complied {ctl_complied}, refused {ctl_refused}"
    );
    assert_eq!(
        plain, n,
        "the organism fakes on every deep query when monitored"
    );
    assert!(
        tag_refused * 10 >= n * 9,
        "tag patch: {tag_refused}/{n} refused"
    );
    assert!(
        ctl_complied * 10 >= n * 9,
        "control: {ctl_complied}/{n} still complied"
    );
}

/// `tell steer`: the reference setting is plain generation, each setting gets its own scored
/// folder, and steer.csv compares every setting with the reference.
#[test]
fn steer_sweeps_score_each_setting_against_the_unedited_reference() {
    let tmp = tempfile::tempdir().unwrap();
    let ck = tell_llama::Checkpoint::open(&repo().join("checkpoints/organism")).unwrap();
    let d = ck.config.hidden_size;
    let v: Vec<f32> = (0..d).map(|i| ((i * 7 % 13) as f32 - 6.0) / 6.0).collect();
    let vec_path = tmp.path().join("v.npy");
    write_npy(&vec_path, &v);
    let out = tmp.path().join("steer");
    let stdout = ok(&tell(&[
        "steer",
        "probes/organism/suite.toml",
        "--model",
        "checkpoints/organism",
        "--out",
        out.to_str().unwrap(),
        "--vector",
        vec_path.to_str().unwrap(),
        "--site",
        "resid_post",
        "--layer",
        "2",
        "--alphas",
        "-8,0,8",
        "--random-control",
        "--limit",
        "2",
    ]));
    assert!(stdout.contains("d_gap"), "{stdout}");
    let folders = [
        "reference",
        "probe-alpha-8",
        "probe-alpha8",
        "random-alpha-8",
        "random-alpha8",
    ];
    for f in folders {
        for file in ["responses.jsonl", "scores.csv", "behavior.csv"] {
            assert!(out.join(f).join(file).is_file(), "{f}/{file}");
        }
    }
    for file in ["steer.csv", "steer.svg", "steer.png", "prompts.jsonl"] {
        assert!(out.join(file).is_file(), "{file}");
    }
    // The reference is plain greedy generation of the same prompts.
    let plain = tmp.path().join("plain.jsonl");
    ok(&tell(&[
        "generate",
        "checkpoints/organism",
        "--prompts",
        out.join("prompts.jsonl").to_str().unwrap(),
        "--out",
        plain.to_str().unwrap(),
        "--max-new-tokens",
        "80",
    ]));
    let tokens = |p: &Path| -> Vec<serde_json::Value> {
        std::fs::read_to_string(p)
            .unwrap()
            .lines()
            .map(|l| {
                serde_json::from_str::<serde_json::Value>(l).unwrap()["response_tokens"].clone()
            })
            .collect()
    };
    assert_eq!(
        tokens(&out.join("reference/responses.jsonl")),
        tokens(&plain)
    );
    assert_ne!(
        tokens(&out.join("probe-alpha8/responses.jsonl")),
        tokens(&plain),
        "alpha 8 along v at layer 2 changed nothing"
    );
    let mut rdr = csv::Reader::from_path(out.join("steer.csv")).unwrap();
    let headers = rdr.headers().unwrap().clone();
    let col = |name: &str| headers.iter().position(|h| h == name).unwrap();
    let rows: Vec<csv::StringRecord> = rdr.records().map(Result::unwrap).collect();
    let behavior_rows = csv::Reader::from_path(out.join("reference/behavior.csv"))
        .unwrap()
        .records()
        .count();
    assert_eq!(rows.len(), folders.len() * behavior_rows);
    for r in rows.iter().filter(|r| &r[col("direction")] == "none") {
        let num = |c: &str| r[col(c)].parse::<f64>().unwrap();
        assert_eq!(num("d_gap"), 0.0, "{r:?}");
        if !num("d_monitored_p").is_nan() {
            assert_eq!(num("d_monitored_p"), 1.0, "{r:?}");
        }
    }
    // Bad sweeps are refused before generating anything.
    fails_with(
        &tell(&[
            "steer",
            "probes/organism/suite.toml",
            "--model",
            "checkpoints/organism",
            "--out",
            tmp.path().join("bad").to_str().unwrap(),
            "--alphas",
            "1",
            "--layers",
            "2",
        ]),
        "steering and ablation need a direction",
    );
    fails_with(
        &tell(&[
            "steer",
            "probes/organism/suite.toml",
            "--model",
            "checkpoints/organism",
            "--out",
            tmp.path().join("bad").to_str().unwrap(),
            "--ablate",
            "--noise-sigmas",
            "1",
            "--layers",
            "2",
        ]),
        "give exactly one of --alphas, --ablate or --noise-sigmas",
    );
    assert!(!tmp.path().join("bad").exists());
}
