//! Work split over processes: `--shard i/n` on capture, generate and run, `tell store merge` and
//! `tell run --merge`. The merged store equals one process's capture (bit-identical at batch 1,
//! within 1e-6 otherwise), shards of a generation concatenate to the single generation (greedy
//! and sampled), a merged run's tables equal the single run's, and bad shard sets are refused
//! without touching the shards.

mod common;

use std::path::{Path, PathBuf};

use common::*;

const ORG: &str = "checkpoints/organism";

fn capture(prompts: &Path, out: &Path, batch: &str, extra: &[&str]) {
    let mut args = vec![
        "capture",
        ORG,
        "--prompts",
        prompts.to_str().unwrap(),
        "--out",
        out.to_str().unwrap(),
        "--sites",
        "resid_post,logits",
        "--positions",
        "mean",
        "--batch-size",
        batch,
    ];
    args.extend_from_slice(extra);
    ok(&tell(&args));
}

/// Every matrix of two stores: (keys equal, worst |a - b| / max |b|); records must match.
fn compare(a: &Path, b: &Path) -> f32 {
    let (a, b) = (
        tell_store::Store::open(a).unwrap(),
        tell_store::Store::open(b).unwrap(),
    );
    assert_eq!(a.keys(), b.keys());
    let (ra, rb) = (a.records().unwrap(), b.records().unwrap());
    assert_eq!(ra.len(), rb.len());
    for (x, y) in ra.iter().zip(&rb) {
        assert_eq!(x.meta, y.meta);
    }
    let mut worst = 0f32;
    for k in a.keys() {
        let (x, y) = (a.matrix(&k).unwrap().data, b.matrix(&k).unwrap().data);
        worst = worst.max(rel_err(&x, &y));
    }
    worst
}

fn dir_bytes(dir: &Path) -> Vec<(PathBuf, Vec<u8>)> {
    let mut out: Vec<(PathBuf, Vec<u8>)> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .map(|p| (p.clone(), std::fs::read(&p).unwrap()))
        .collect();
    out.sort();
    out
}

#[test]
fn merged_shards_equal_one_capture_and_bad_sets_are_refused() {
    let tmp = tempfile::tempdir().unwrap();
    let prompts = organism_prompts(tmp.path(), 20, 11);
    for batch in ["1", "4"] {
        let single = tmp.path().join(format!("single-{batch}"));
        capture(&prompts, &single, batch, &[]);
        let mut shards = Vec::new();
        for i in 0..3 {
            let s = tmp.path().join(format!("shard-{batch}-{i}"));
            capture(&prompts, &s, batch, &["--shard", &format!("{i}/3")]);
            shards.push(s);
        }
        // Shard 1 of 3 of 20 prompts holds prompts 6..13, each record with its prompt index.
        let rows = tell_store::Store::open(&shards[1])
            .unwrap()
            .records()
            .unwrap();
        assert_eq!(rows.len(), 7);
        assert_eq!(rows[0].meta.extra("prompt_index"), Some("6"));
        let merged = tmp.path().join(format!("merged-{batch}"));
        let mut args = vec!["store", "merge"];
        // Any order.
        for s in shards.iter().rev() {
            args.push(s.to_str().unwrap());
        }
        args.extend(["--out", merged.to_str().unwrap()]);
        ok(&tell(&args));
        let err = compare(&merged, &single);
        if batch == "1" {
            assert_eq!(err, 0.0, "batch 1: the merged store must be bit-identical");
        } else {
            assert!(err <= 1e-6, "batch {batch}: rel err {err}");
        }
    }
    // Bad sets: refused, naming the shard, the shards untouched, nothing written.
    let s = |i: usize| tmp.path().join(format!("shard-1-{i}"));
    let before: Vec<_> = (0..3).map(|i| dir_bytes(&s(i))).collect();
    let out = tmp.path().join("bad");
    let merge = |dirs: &[PathBuf]| {
        let mut args = vec!["store".to_string(), "merge".into()];
        args.extend(dirs.iter().map(|d| d.display().to_string()));
        args.extend(["--out".into(), out.display().to_string()]);
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        tell(&args)
    };
    fails_with(
        &merge(&[s(0), s(2)]),
        "shard 1/3 (prompts 6..13 of 20) is missing",
    );
    fails_with(
        &merge(&[s(0), s(1), s(2), s(0)]),
        &format!(
            "{} and {} are both shard 0/3",
            s(0).display(),
            s(0).display()
        ),
    );
    // Foreign: another capture's layout (other sites) of the same prompts.
    let other = tmp.path().join("other-1");
    ok(&tell(&[
        "capture",
        ORG,
        "--prompts",
        prompts.to_str().unwrap(),
        "--out",
        other.to_str().unwrap(),
        "--positions",
        "mean",
        "--shard",
        "1/3",
    ]));
    fails_with(&merge(&[s(0), other.clone(), s(2)]), "has sites");
    fails_with(
        &merge(&[s(0), single_of(tmp.path()), s(2)]),
        "is not a shard (it was captured without --shard)",
    );
    // A shard still being written: its manifest is not marked complete.
    let running = tmp.path().join("running-1");
    copy_dir(&s(1), &running);
    let m = running.join("manifest.json");
    let text = std::fs::read_to_string(&m)
        .unwrap()
        .replace("\"complete\": true", "\"complete\": false");
    std::fs::write(&m, text).unwrap();
    fails_with(
        &merge(&[s(0), running.clone(), s(2)]),
        &format!(
            "shard {} (shard 1/3 (prompts 6..13 of 20)) is not complete",
            running.display()
        ),
    );
    for (i, b) in before.iter().enumerate() {
        assert_eq!(&dir_bytes(&s(i)), b, "shard {i} changed");
    }
    assert!(!out.join("manifest.json").exists());
}

fn single_of(dir: &Path) -> PathBuf {
    dir.join("single-1")
}

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for e in std::fs::read_dir(from).unwrap() {
        let e = e.unwrap();
        std::fs::copy(e.path(), to.join(e.file_name())).unwrap();
    }
}

/// Shards of a generation, concatenated, are the single generation: greedy and sampled (each
/// prompt samples from the stream of its global index).
#[test]
fn shards_of_a_generation_concatenate_to_the_single_generation() {
    let tmp = tempfile::tempdir().unwrap();
    let prompts = organism_prompts(tmp.path(), 10, 11);
    for temperature in ["0", "0.9"] {
        let gen = |out: &Path, extra: &[&str]| {
            let mut args = vec![
                "generate",
                ORG,
                "--prompts",
                prompts.to_str().unwrap(),
                "--out",
                out.to_str().unwrap(),
                "--max-new-tokens",
                "20",
                "--temperature",
                temperature,
                "--seed",
                "5",
            ];
            args.extend_from_slice(extra);
            ok(&tell(&args));
            std::fs::read_to_string(out).unwrap()
        };
        let single = gen(&tmp.path().join("single.jsonl"), &[]);
        let mut joined = String::new();
        for i in 0..4 {
            joined.push_str(&gen(
                &tmp.path().join(format!("s{i}.jsonl")),
                &["--shard", &format!("{i}/4"), "--batch-size", "2"],
            ));
        }
        assert_eq!(joined, single, "temperature {temperature}");
    }
    fails_with(
        &tell(&[
            "generate",
            ORG,
            "--prompts",
            prompts.to_str().unwrap(),
            "--out",
            tmp.path().join("x.jsonl").to_str().unwrap(),
            "--shard",
            "4/4",
        ]),
        "expected INDEX/COUNT with 0 <= INDEX < COUNT",
    );
}

/// Shard runs merged by `tell run --merge` give the single run's tables.
#[test]
fn a_merged_run_has_the_single_runs_tables() {
    let tmp = tempfile::tempdir().unwrap();
    let run = |out: &Path, extra: &[&str]| {
        let mut args = vec![
            "run",
            "probes/organism/suite.toml",
            "--model",
            ORG,
            "--out",
            out.to_str().unwrap(),
            "--limit",
            "3",
            "--max-new-tokens",
            "40",
        ];
        args.extend_from_slice(extra);
        tell(&args)
    };
    let single = tmp.path().join("single");
    ok(&run(&single, &[]));
    let shards: Vec<PathBuf> = (0..3)
        .map(|i| tmp.path().join(format!("shard{i}")))
        .collect();
    for (i, s) in shards.iter().enumerate() {
        ok(&run(s, &["--shard", &format!("{i}/3")]));
        assert!(!s.join("behavior.csv").exists(), "a shard makes no tables");
    }
    let merged = tmp.path().join("merged");
    let mut extra = vec!["--merge"];
    extra.extend(shards.iter().map(|s| s.to_str().unwrap()));
    ok(&run(&merged, &extra));
    for f in [
        "responses.jsonl",
        "scores.csv",
        "behavior.csv",
        "labels.csv",
    ] {
        assert_eq!(
            std::fs::read_to_string(merged.join(f)).unwrap(),
            std::fs::read_to_string(single.join(f)).unwrap(),
            "{f}"
        );
    }
    let err = compare(&merged.join("acts"), &single.join("acts"));
    assert!(err <= 1e-6, "acts: rel err {err}");
    // A shard of other settings is refused, naming it.
    let other = tmp.path().join("other");
    ok(&tell(&[
        "run",
        "probes/organism/suite.toml",
        "--model",
        ORG,
        "--out",
        other.to_str().unwrap(),
        "--limit",
        "3",
        "--max-new-tokens",
        "41",
        "--shard",
        "1/3",
    ]));
    let mut extra = vec![
        "--merge",
        shards[0].to_str().unwrap(),
        other.to_str().unwrap(),
    ];
    extra.push(shards[2].to_str().unwrap());
    fails_with(
        &run(&tmp.path().join("bad"), &extra),
        &format!(
            "--merge {}: a run of other settings (max_new_tokens 41 here, 40 asked)",
            other.display()
        ),
    );
}
