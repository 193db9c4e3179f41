//! `tell probe train | compare | apply` end to end through the binary, on stores written by the
//! test (`tell_probe::synthetic_store`: a class direction planted in layer 2, two conditions,
//! benign controls, two records per query), plus bad input: each a clear error, exit code 1.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use tell_probe::synthetic_store::{write_planted_store, PlantedRecord, PlantedStore};
use tell_probe::{Family, Matrix, ProbeArtifact};
use tell_store::{SiteLayerKey, Store};

fn tell(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_tell"))
        .args(args)
        .output()
        .expect("run tell")
}

fn tmp(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("tell-cli-probe-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).expect("temp dir");
    d
}

fn s(p: &Path) -> &str {
    p.to_str().expect("utf-8 path")
}

fn ok(out: &Output) -> String {
    assert!(
        out.status.success(),
        "stderr: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Asserts exit code 1, no panic, and the message; returns stderr.
fn fails(out: &Output, needle: &str) -> String {
    let err = String::from_utf8_lossy(&out.stderr).into_owned();
    assert_eq!(out.status.code(), Some(1), "stderr: {err}");
    assert!(!err.contains("panicked"), "{err}");
    assert!(err.contains(needle), "expected {needle:?} in: {err}");
    err
}

fn labels_csv(
    path: &Path,
    recs: &[&PlantedRecord],
    label: impl Fn(&PlantedRecord) -> &'static str,
) {
    let mut t = String::from("id,label\n");
    for r in recs {
        t.push_str(&format!("{},{}\n", r.id, label(r)));
    }
    std::fs::write(path, t).expect("labels");
}

fn deep_or_shallow(r: &PlantedRecord) -> &'static str {
    if r.label == Some(true) {
        "deep"
    } else {
        "shallow"
    }
}

/// Fast CV settings shared by the runs (1 seed, 100 bootstrap resamples).
const FAST: [&str; 4] = ["--seeds", "1", "--bootstrap", "100"];

#[test]
fn train_compare_apply_on_a_planted_store() {
    let dir = tmp("e2e");
    let acts = dir.join("acts");
    let recs = write_planted_store(&acts, &PlantedStore::example()).expect("store");
    let labelled: Vec<&PlantedRecord> = recs.iter().filter(|r| r.label.is_some()).collect();
    let labels = dir.join("labels.csv");
    labels_csv(&labels, &labelled, deep_or_shallow);
    let out = dir.join("run");
    let mut args = vec![
        "probe",
        "train",
        "--acts",
        s(&acts),
        "--labels",
        s(&labels),
        "--label",
        "label",
        "--positive",
        "deep",
        "--control-where",
        "condition=benign",
        "--transfer-by",
        "condition",
        "--out",
        s(&out),
    ];
    args.extend(FAST);
    let stdout = ok(&tell(&args));
    assert!(stdout.contains("best layer: 2 "), "{stdout}");
    assert!(
        stdout.contains("12 combinations on 80 records (40 groups, 10 control rows)"),
        "{stdout}"
    );

    // metrics.csv: exactly one row per (layer, family), the best one flagged, at layer 2.
    let metrics = std::fs::read_to_string(out.join("metrics.csv")).expect("metrics");
    let rows: Vec<Vec<&str>> = metrics
        .lines()
        .skip(1)
        .map(|l| l.split(',').collect())
        .collect();
    assert_eq!(rows.len(), 4 * 3);
    for layer in 0..4 {
        for f in Family::ALL {
            let n = rows
                .iter()
                .filter(|r| r[1] == layer.to_string() && r[3] == f.name())
                .count();
            assert_eq!(n, 1, "layer {layer} {}", f.name());
        }
    }
    let best: Vec<&Vec<&str>> = rows.iter().filter(|r| r[15] == "1").collect();
    assert_eq!(best.len(), 1);
    assert_eq!(best[0][1], "2");
    assert_eq!(best[0][11], "control:condition=benign");
    assert_eq!(best[0][13], "80");
    assert!(best[0][4].parse::<f64>().expect("auroc") > 0.95);
    let png = std::fs::read(out.join("layers.png")).expect("png");
    assert_eq!(&png[..8], b"\x89PNG\r\n\x1a\n");
    assert!(std::fs::read_to_string(out.join("layers.svg"))
        .expect("svg")
        .contains("<svg"));
    let transfer = std::fs::read_to_string(out.join("transfer.csv")).expect("transfer");
    let t: Vec<&str> = transfer.lines().collect();
    assert_eq!(t.len(), 1 + 2 * 2);
    assert!(t[2].contains(",baseline,mitigation,"), "{transfer}");

    // Probe files: best per family, the overall best also in the run directory; round trip.
    let top = ProbeArtifact::load(&out).expect("best probe");
    assert_eq!(
        (
            top.meta.site.as_str(),
            top.meta.layer,
            top.meta.position.as_str()
        ),
        ("hook_resid_post", 2, "last")
    );
    assert!(top.meta.label_definition.starts_with("label==deep"));
    for f in Family::ALL {
        let pdir = out.join("probes").join(f.name());
        let a = ProbeArtifact::load(&pdir).expect("probe");
        assert_eq!(a.meta.family, f);
        assert_eq!(a.meta.n_features, 16);
        let again = tmp(&format!("resave-{}", f.name()));
        a.save(&again).expect("save");
        assert_eq!(ProbeArtifact::load(&again).expect("reload"), a);
    }

    // compare: the table best first, and JSON.
    let table = ok(&tell(&["probe", "compare", s(&out)]));
    let lines: Vec<&str> = table.lines().collect();
    assert_eq!(lines.len(), 1 + 12);
    assert!(lines[1].contains("hook_resid_post"));
    assert_eq!(lines[1].split_whitespace().nth(2), Some("2"), "{table}");
    let json: serde_json::Value =
        serde_json::from_str(&ok(&tell(&["probe", "compare", s(&out), "--json"]))).expect("json");
    let arr = json.as_array().expect("array");
    assert_eq!(arr.len(), 12);
    assert_eq!(arr[0]["layer"], 2);

    // apply: every record scored; scores equal the probe applied to the store's matrix.
    let scores = dir.join("scores.csv");
    let stdout = ok(&tell(&[
        "probe",
        "apply",
        s(&out),
        "--acts",
        s(&acts),
        "--out",
        s(&scores),
    ]));
    assert!(stdout.contains("scored 90 records"), "{stdout}");
    let store = Store::open(&acts).expect("open");
    let m = store
        .matrix(&SiteLayerKey::new("hook_resid_post", 2))
        .expect("matrix");
    let expect = top
        .probe
        .apply(&Matrix::new(&m.data, m.rows, m.cols).expect("matrix"))
        .expect("apply");
    let text = std::fs::read_to_string(&scores).expect("scores");
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines[0], "record,id,score,predicted");
    assert_eq!(lines.len(), 1 + 90);
    let mut correct = 0;
    for (i, line) in lines[1..].iter().enumerate() {
        let f: Vec<&str> = line.split(',').collect();
        assert_eq!(f[0], i.to_string());
        assert_eq!(f[1], recs[i].id);
        let sc: f64 = f[2].parse().expect("score");
        assert_eq!(sc, expect[i]);
        assert_eq!(f[3] == "1", sc > top.meta.threshold);
        if let Some(l) = recs[i].label {
            correct += ((sc > 0.0) == l) as usize;
        }
    }
    assert!(correct >= 76, "{correct} of 80 right at threshold 0");

    // apply refuses stores the probe does not fit.
    let narrow = dir.join("narrow");
    write_planted_store(
        &narrow,
        &PlantedStore {
            d: 8,
            ..PlantedStore::example()
        },
    )
    .expect("store");
    fails(
        &tell(&[
            "probe",
            "apply",
            s(&out),
            "--acts",
            s(&narrow),
            "--out",
            s(&scores),
        ]),
        "blocks.2.hook_resid_post has width 8, the probe reads 16 features",
    );
    let other = dir.join("other-layers");
    write_planted_store(
        &other,
        &PlantedStore {
            layers: vec![0, 1],
            ..PlantedStore::example()
        },
    )
    .expect("store");
    fails(
        &tell(&[
            "probe",
            "apply",
            s(&out),
            "--acts",
            s(&other),
            "--out",
            s(&scores),
        ]),
        "it has no blocks.2.hook_resid_post",
    );

    // Labels per query, joined on query_id instead of id.
    let per_query = dir.join("per_query.csv");
    let mut t = String::from("query_id,faking\n");
    for q in 0..40 {
        t.push_str(&format!("q{q},{}\n", PlantedStore::label(q) as u8));
    }
    std::fs::write(&per_query, t).expect("labels");
    let out2 = dir.join("run2");
    let mut args = vec![
        "probe",
        "train",
        "--acts",
        s(&acts),
        "--labels",
        s(&per_query),
        "--label",
        "faking",
        "--join-on",
        "query_id",
        "--control-where",
        "condition=benign",
        "--families",
        "diffmean",
        "--layers",
        "1,2",
        "--out",
        s(&out2),
    ];
    args.extend(FAST);
    let stdout = ok(&tell(&args));
    assert!(stdout.contains("best layer: 2 "), "{stdout}");
    let n = std::fs::read_to_string(out2.join("metrics.csv"))
        .expect("metrics")
        .lines()
        .count();
    assert_eq!(n, 1 + 2);
}

fn train_args<'a>(acts: &'a Path, labels: &'a Path, out: &'a Path) -> Vec<&'a str> {
    let mut v = vec![
        "probe",
        "train",
        "--acts",
        s(acts),
        "--labels",
        s(labels),
        "--label",
        "label",
        "--positive",
        "deep",
        "--control-where",
        "condition=benign",
        "--out",
        s(out),
    ];
    v.extend(FAST);
    v
}

#[test]
fn bad_input_is_a_clear_error_with_exit_code_1() {
    let dir = tmp("bad");
    let acts = dir.join("acts");
    let recs = write_planted_store(&acts, &PlantedStore::example()).expect("store");
    let labelled: Vec<&PlantedRecord> = recs.iter().filter(|r| r.label.is_some()).collect();
    let out = dir.join("out");

    // Labels with one class.
    let one = dir.join("one.csv");
    labels_csv(&one, &labelled, |_| "deep");
    fails(
        &tell(&train_args(&acts, &one, &out)),
        "labels have one class only: 80 positive, 0 negative",
    );

    // A label file that misses records of the store: how many, and the first.
    let miss = dir.join("miss.csv");
    labels_csv(&miss, &labelled[5..], deep_or_shallow);
    fails(
        &tell(&train_args(&acts, &miss, &out)),
        "has no label for 5 of 80 records of the store (first: record 0, id \"q0-baseline\"",
    );

    let good = dir.join("good.csv");
    labels_csv(&good, &labelled, deep_or_shallow);

    // NaN and Inf in activations: named with the record, its id, the matrix and the feature.
    for (name, v, shown) in [("nan", f32::NAN, "NaN"), ("inf", f32::INFINITY, "inf")] {
        let bad = dir.join(name);
        write_planted_store(
            &bad,
            &PlantedStore {
                poison: Some((7, 1, 3, v)),
                ..PlantedStore::example()
            },
        )
        .expect("store");
        fails(
            &tell(&train_args(&bad, &good, &out)),
            &format!(
                "non-finite activation ({shown}) in blocks.1.hook_resid_post, record 7 \
                 (id \"q3-mitigation\"), feature 3"
            ),
        );
    }

    // Fewer groups (queries) than folds.
    let few = dir.join("few");
    let few_recs = write_planted_store(
        &few,
        &PlantedStore {
            n_queries: 4,
            ..PlantedStore::example()
        },
    )
    .expect("store");
    let few_labels = dir.join("few.csv");
    let l: Vec<&PlantedRecord> = few_recs.iter().filter(|r| r.label.is_some()).collect();
    labels_csv(&few_labels, &l, deep_or_shallow);
    fails(
        &tell(&train_args(&few, &few_labels, &out)),
        "fewer groups than folds: 4 distinct groups for 5 folds",
    );

    // A label column that is not there, and labels that need --positive.
    let mut args = train_args(&acts, &good, &out);
    args[7] = "nope";
    fails(&tell(&args), "no column \"nope\" (columns: id, label)");
    let mut args = train_args(&acts, &good, &out);
    args.drain(8..10);
    fails(&tell(&args), "name the positive value with --positive");
}

#[test]
fn a_key_matching_two_rows_is_refused_not_counted_twice() {
    let dir = tmp("dup");
    let acts = dir.join("acts");
    let recs = write_planted_store(&acts, &PlantedStore::example()).expect("store");
    let labelled: Vec<&PlantedRecord> = recs.iter().filter(|r| r.label.is_some()).collect();
    let out = dir.join("out");

    // A labels file that gives q1-baseline (line 4) a second row at the end (line 82).
    let mut twice = labelled.clone();
    twice.push(labelled[2]);
    let dup = dir.join("dup.csv");
    labels_csv(&dup, &twice, deep_or_shallow);
    fails(
        &tell(&train_args(&acts, &dup, &out)),
        &format!(
            "labels {}: lines 4 and 82 both have id \"q1-baseline\": a label row must match one \
             key, so each key needs exactly one row",
            dup.display()
        ),
    );

    // A store from an older tell, whose prompts file repeated ids: each query's two records
    // are both `q{n}-baseline`. One label row per id must not label both.
    let old = dir.join("old");
    let old_recs = write_planted_store(
        &old,
        &PlantedStore {
            conditions: vec!["baseline".into(), "baseline".into()],
            ..PlantedStore::example()
        },
    )
    .expect("store");
    assert_eq!(
        (old_recs[0].id.as_str(), old_recs[1].id.as_str()),
        ("q0-baseline", "q0-baseline")
    );
    let mut once: Vec<&PlantedRecord> = old_recs.iter().filter(|r| r.label.is_some()).collect();
    once.dedup_by(|a, b| a.id == b.id);
    assert_eq!(once.len(), 40);
    let per_id = dir.join("per-id.csv");
    labels_csv(&per_id, &once, deep_or_shallow);
    fails(
        &tell(&train_args(&old, &per_id, &out)),
        &format!(
            "store {}: records 0 and 1 both have id \"q0-baseline\", so a label row would be \
             joined to both; recapture from a prompts file whose ids are unique",
            old.display()
        ),
    );
    assert!(!out.join("metrics.csv").exists());
}
