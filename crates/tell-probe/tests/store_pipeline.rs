//! `train_from_store` / `apply_to_store` / `compare_rows` on a synthetic store with a planted
//! direction (library level; `tests/cli_probe.rs` at the root runs the same through the binary).

use std::path::PathBuf;
use tell_probe::synthetic_store::{write_planted_store, PlantedStore};
use tell_probe::{
    apply_to_store, compare_rows, train_from_store, ControlSource, CvOptions, Family, FitOptions,
    ProbeArtifact, ProbeError, TrainConfig,
};

fn tmp(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("tell-probe-pipeline-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

fn config(acts: PathBuf, labels: PathBuf, out: PathBuf) -> TrainConfig {
    TrainConfig {
        acts,
        labels,
        label: "label".into(),
        positive: Some("deep".into()),
        join_on: vec!["id".into()],
        group_by: "query_id".into(),
        families: Family::ALL.to_vec(),
        sites: None,
        layers: None,
        fit: FitOptions::default(),
        cv: CvOptions {
            seeds: vec![0],
            n_bootstrap: 100,
            ..CvOptions::default()
        },
        control: ControlSource::Where {
            column: "condition".into(),
            value: "benign".into(),
        },
        skip_unlabelled: false,
        transfer_by: Some("condition".into()),
        out,
    }
}

#[test]
fn pipeline_finds_planted_layer_saves_and_applies() {
    let dir = tmp("ok");
    let acts = dir.join("acts");
    let recs = write_planted_store(&acts, &PlantedStore::example()).unwrap();
    let labels = dir.join("labels.csv");
    let mut text = String::from("id,label\n");
    for r in recs.iter().filter(|r| r.label.is_some()) {
        let l = if r.label == Some(true) {
            "deep"
        } else {
            "shallow"
        };
        text.push_str(&format!("{},{l}\n", r.id));
    }
    std::fs::write(&labels, text).unwrap();
    let out = dir.join("out");
    let o = train_from_store(&config(acts.clone(), labels, out.clone())).unwrap();
    assert_eq!(o.sweep.rows.len(), 12);
    assert_eq!(o.n_rows, 80);
    assert_eq!(o.n_groups, 40);
    assert_eq!(o.n_control, 10);
    let best = o.sweep.best_row();
    assert_eq!(best.layer, 2);
    assert!(best.auroc > 0.95, "{best:?}");
    assert_eq!(best.threshold_source, "control:condition=benign");
    // Noise layers sit near chance.
    for r in o.sweep.rows.iter().filter(|r| r.layer < 2) {
        assert!(r.auroc < 0.75, "{r:?}");
    }
    let ranked = compare_rows(&out).unwrap();
    assert_eq!(ranked.len(), 12);
    assert_eq!(ranked[0].layer, 2);
    let (tm, path) = o.transfer.unwrap();
    assert_eq!(tm.names, vec!["baseline", "mitigation"]);
    assert_eq!(std::fs::read_to_string(path).unwrap().lines().count(), 5);
    assert!(
        tm.auroc[0][1] > 0.9 && tm.auroc[1][0] > 0.9,
        "{:?}",
        tm.auroc
    );
    for f in Family::ALL {
        let a = ProbeArtifact::load(out.join("probes").join(f.name())).unwrap();
        assert_eq!(a.meta.family, f);
        assert_eq!(a.meta.layer, 2);
        assert_eq!(a.meta.n_features, 16);
        assert_eq!(a.meta.training_data_hash.len(), 64);
        assert!(a.meta.label_definition.starts_with("label==deep"));
    }
    let scores = dir.join("scores.csv");
    let ap = apply_to_store(&out, &acts, &scores).unwrap();
    assert_eq!(ap.n_records, 90);
    let text = std::fs::read_to_string(&scores).unwrap();
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines.len(), 91);
    let mut correct = 0;
    for (line, r) in lines[1..].iter().zip(&recs) {
        let f: Vec<&str> = line.split(',').collect();
        assert_eq!(f[1], r.id);
        let s: f64 = f[2].parse().unwrap();
        assert_eq!(f[3] == "1", s > ap.threshold);
        if let Some(l) = r.label {
            correct += ((s > 0.0) == l) as usize;
        }
    }
    assert!(correct >= 76, "{correct} of 80");
}

#[test]
fn bad_inputs_name_their_cause() {
    let dir = tmp("bad");
    let acts = dir.join("acts");
    let recs = write_planted_store(&acts, &PlantedStore::example()).unwrap();
    let labelled: Vec<_> = recs.iter().filter(|r| r.label.is_some()).collect();
    let write = |name: &str, rows: &[(String, &str)]| {
        let p = dir.join(name);
        let mut t = String::from("id,label\n");
        for (id, l) in rows {
            t.push_str(&format!("{id},{l}\n"));
        }
        std::fs::write(&p, t).unwrap();
        p
    };
    // Missing records: drop the first three labels.
    let some: Vec<(String, &str)> = labelled[3..]
        .iter()
        .map(|r| (r.id.clone(), "deep"))
        .collect();
    let e = train_from_store(&config(
        acts.clone(),
        write("miss.csv", &some),
        dir.join("o1"),
    ));
    match e {
        Err(ProbeError::UnlabelledRecords {
            count, first_id, ..
        }) => {
            assert_eq!(count, 3);
            assert_eq!(first_id, "q0-baseline");
        }
        other => panic!("{other:?}"),
    }
    // The same file with skip_unlabelled: the three records are left out, not refused.
    let mixed: Vec<(String, &str)> = labelled[3..]
        .iter()
        .map(|r| {
            let l = if r.label == Some(true) {
                "deep"
            } else {
                "shallow"
            };
            (r.id.clone(), l)
        })
        .collect();
    let mut cfg = config(acts.clone(), write("mixed.csv", &mixed), dir.join("o0"));
    cfg.skip_unlabelled = true;
    cfg.transfer_by = None;
    let o = train_from_store(&cfg).unwrap();
    assert_eq!(o.n_rows, 77);
    // q0's two records and q1-baseline went: 39 queries remain.
    assert_eq!(o.n_groups, 39);
    // One class.
    let all: Vec<(String, &str)> = labelled.iter().map(|r| (r.id.clone(), "deep")).collect();
    let e = train_from_store(&config(
        acts.clone(),
        write("one.csv", &all),
        dir.join("o2"),
    ));
    assert!(
        matches!(
            e,
            Err(ProbeError::OneClass {
                n_pos: 80,
                n_neg: 0,
                ..
            })
        ),
        "{e:?}"
    );
    // Unparseable label without --positive.
    let mut cfg = config(acts.clone(), write("one2.csv", &all), dir.join("o3"));
    cfg.positive = None;
    let msg = train_from_store(&cfg).unwrap_err().to_string();
    assert!(msg.contains("--positive"), "{msg}");
}

#[test]
fn control_store_sets_thresholds_and_must_match() {
    let dir = tmp("ctrl");
    let acts = dir.join("acts");
    let spec = PlantedStore {
        n_control: 0,
        ..PlantedStore::example()
    };
    let recs = write_planted_store(&acts, &spec).unwrap();
    let labels = dir.join("labels.csv");
    let mut text = String::from("id,label\n");
    for r in &recs {
        let l = if r.label == Some(true) {
            "deep"
        } else {
            "shallow"
        };
        text.push_str(&format!("{},{l}\n", r.id));
    }
    std::fs::write(&labels, text).unwrap();
    let only_controls = PlantedStore {
        n_queries: 0,
        n_control: 12,
        ..PlantedStore::example()
    };
    let ctrl = dir.join("ctrl");
    write_planted_store(&ctrl, &only_controls).unwrap();
    let mut cfg = config(acts.clone(), labels.clone(), dir.join("out"));
    cfg.control = ControlSource::Store(ctrl);
    cfg.transfer_by = None;
    cfg.families = vec![Family::Diffmean];
    let o = train_from_store(&cfg).unwrap();
    assert_eq!(o.n_control, 12);
    assert_eq!(o.n_rows, 80);
    assert_eq!(o.sweep.best_row().threshold_source, "control:ctrl");
    assert_eq!(o.sweep.best_row().layer, 2);
    let narrow = dir.join("narrow");
    write_planted_store(
        &narrow,
        &PlantedStore {
            d: 8,
            ..only_controls
        },
    )
    .unwrap();
    cfg.control = ControlSource::Store(narrow);
    let msg = train_from_store(&cfg).unwrap_err().to_string();
    assert!(
        msg.contains("control blocks.0.hook_resid_post has width 8, the training store 16"),
        "{msg}"
    );
}
