//! verify catches damage; bad input gives typed errors naming the file or record, never a panic.

mod common;
use common::*;
use std::fs;
use tell_store::*;

fn problems_for(dir: &std::path::Path, file: &str) -> Vec<String> {
    let rep = verify(dir).unwrap();
    rep.problems
        .iter()
        .filter(|p| p.file == dir.join(file))
        .map(|p| p.message.clone())
        .collect()
}

#[test]
fn verify_detects_a_flipped_byte_in_a_shard() {
    for positions in [Positions::Last, Positions::All] {
        let tmp = tempfile::tempdir().unwrap();
        write_store(tmp.path(), spec(positions, StoreDtype::F16, 4), 10);
        assert!(verify(tmp.path()).unwrap().is_ok());
        let path = tmp.path().join("shard-00001.safetensors");
        let mut b = fs::read(&path).unwrap();
        let at = b.len() - 7; // inside the tensor data
        b[at] ^= 0x01;
        fs::write(&path, b).unwrap();
        let rep = verify(tmp.path()).unwrap();
        assert!(!rep.is_ok());
        assert_eq!(rep.problems.len(), 1, "{:?}", rep.problems);
        let msgs = problems_for(tmp.path(), "shard-00001.safetensors");
        assert!(msgs[0].contains("sha256"), "{msgs:?}");
        assert!(rep.problems[0]
            .to_string()
            .contains("shard-00001.safetensors"));
    }
}

#[test]
fn verify_detects_a_deleted_shard_and_readers_name_it() {
    let tmp = tempfile::tempdir().unwrap();
    write_store(tmp.path(), spec(Positions::Last, StoreDtype::F32, 4), 10);
    fs::remove_file(tmp.path().join("shard-00002.safetensors")).unwrap();
    let msgs = problems_for(tmp.path(), "shard-00002.safetensors");
    assert_eq!(msgs.len(), 1);
    assert!(msgs[0].contains("cannot read"), "{msgs:?}");
    let store = Store::open(tmp.path()).unwrap();
    let err = store
        .matrix(&SiteLayerKey::new("hook_resid_post", 0))
        .unwrap_err();
    assert!(matches!(err, Error::Io { .. }));
    assert!(err.to_string().contains("shard-00002.safetensors"), "{err}");
}

#[test]
fn verify_detects_records_csv_and_leftover_problems() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    write_store(dir, spec(Positions::All, StoreDtype::F32, 4), 10);
    // A record's token count that disagrees with the shard's offsets.
    let csv = fs::read_to_string(dir.join(RECORDS_FILE)).unwrap();
    let line5 = csv
        .lines()
        .find(|l| l.starts_with("5,r5,"))
        .unwrap()
        .to_string();
    let bad = line5.replacen(",4,3,", ",6,3,", 1);
    assert_ne!(bad, line5);
    fs::write(dir.join(RECORDS_FILE), csv.replace(&line5, &bad)).unwrap();
    fs::write(dir.join("shard-00009.safetensors.tmp"), b"x").unwrap();
    let rec = problems_for(dir, RECORDS_FILE);
    assert!(
        rec.iter().any(|m| m.contains("record 5 has n_tokens 6")),
        "{rec:?}"
    );
    assert!(
        rec.iter()
            .any(|m| m.contains("shard-00001.safetensors have")),
        "{rec:?}"
    );
    let tmpf = problems_for(dir, "shard-00009.safetensors.tmp");
    assert!(tmpf[0].contains("left over"));
    // A missing row.
    let csv = fs::read_to_string(dir.join(RECORDS_FILE)).unwrap();
    let at = csv.find("\n9,r9,").unwrap() + 1; // notes hold newlines: cut at record 9's row
    fs::write(dir.join(RECORDS_FILE), &csv[..at]).unwrap();
    let rec = problems_for(dir, RECORDS_FILE);
    assert!(
        rec.iter()
            .any(|m| m.contains("9 rows, the manifest commits 10")),
        "{rec:?}"
    );
}

#[test]
fn corrupt_manifest_is_an_error_naming_it() {
    let tmp = tempfile::tempdir().unwrap();
    write_store(tmp.path(), spec(Positions::Last, StoreDtype::F32, 4), 5);
    let path = tmp.path().join(MANIFEST_FILE);
    let text = fs::read_to_string(&path).unwrap();
    fs::write(
        &path,
        text.replace("\"record_count\": 5", "\"record_count\": 6"),
    )
    .unwrap();
    let err = Store::open(tmp.path()).unwrap_err();
    assert!(matches!(err, Error::Manifest { .. }));
    assert!(err.to_string().contains("manifest.json"), "{err}");
    assert!(err.to_string().contains("record_count"), "{err}");
    fs::write(&path, b"{ not json").unwrap();
    assert!(matches!(verify(tmp.path()), Err(Error::Manifest { .. })));
    assert!(matches!(
        Store::open(&tmp.path().join("nope")),
        Err(Error::Io { .. })
    ));
}

#[test]
fn bad_records_are_refused_and_leave_no_trace() {
    let tmp = tempfile::tempdir().unwrap();
    let mut w =
        StoreWriter::create(tmp.path(), spec(Positions::Last, StoreDtype::F32, 4), false).unwrap();
    let keys: Vec<(SiteLayerKey, usize)> = w.keys().to_vec();
    let rows: Vec<Vec<f32>> = keys.iter().map(|(_, d)| vec![1.0; *d]).collect();
    let good = |skip: Option<usize>| -> Vec<(SiteLayerKey, &[f32])> {
        keys.iter()
            .zip(&rows)
            .enumerate()
            .filter(|(i, _)| Some(*i) != skip)
            .map(|(_, ((k, _), r))| (k.clone(), r.as_slice()))
            .collect()
    };
    let short = vec![1.0f32; 7];
    let mut inconsistent_d = good(None);
    inconsistent_d[0].1 = &short;
    let mut unknown = good(None);
    unknown.push((SiteLayerKey::new("hook_resid_post", 9), &rows[0]));
    let mut twice = good(None);
    twice.push(twice[0].clone());
    let mut clash = meta(0);
    clash.extra.push(("id".into(), "x".into()));
    let mut too_many = meta(0);
    too_many.n_response_tokens = too_many.n_tokens + 1;
    let mut no_prompt = meta(0);
    no_prompt.n_response_tokens = no_prompt.n_tokens;
    for (m, vals, needle) in [
        (
            meta(0),
            inconsistent_d,
            "blocks.0.hook_resid_post has 7 values, expected 1 row(s) x d 8",
        ),
        (meta(0), good(Some(4)), "no values for ln_final"),
        (meta(0), unknown, "blocks.9.hook_resid_post is not one of"),
        (meta(0), twice, "given twice"),
        (clash, good(None), "clashes with a fixed column"),
        (too_many, good(None), "exceeds n_tokens"),
        (no_prompt, good(None), "need at least one prompt token"),
    ] {
        let err = w.push_record(m, &vals).unwrap_err();
        assert!(matches!(err, Error::Record { index: 0, .. }), "{err}");
        assert!(err.to_string().contains(needle), "{err} lacks {needle}");
        assert!(err.to_string().contains("record 0 (id \"r0\")"), "{err}");
    }
    assert_eq!(w.pending_records(), 0);
    // Pooling errors name the key; response positions need a response.
    let tmp2 = tempfile::tempdir().unwrap();
    let mut w2 = StoreWriter::create(
        tmp2.path(),
        spec(Positions::ResponseFirst, StoreDtype::F32, 4),
        false,
    )
    .unwrap();
    let mut no_resp = meta(0);
    no_resp.n_response_tokens = 0;
    let err = w2.push_record(no_resp, &good(None)).unwrap_err();
    assert!(err.to_string().contains("no response tokens"), "{err}");
    let blocks: Vec<Vec<f32>> = keys.iter().map(|(_, d)| vec![0.5; 3 * d]).collect();
    let vals: Vec<(SiteLayerKey, &[f32])> = keys
        .iter()
        .zip(&blocks)
        .map(|((k, _), b)| (k.clone(), b.as_slice()))
        .collect();
    let err = w2.push_tokens(meta(0), &vals).unwrap_err(); // meta(0) has 4 tokens, blocks 3
    assert!(
        err.to_string()
            .contains("blocks.0.hook_resid_post: pooling: block holds 24 values"),
        "{err}"
    );
    // The writer still works after refusals.
    push_range(&mut w, 0, 5);
    let m = w.finish().unwrap();
    assert_eq!(m.record_count, 5);
    assert_eq!(
        Store::open(tmp.path()).unwrap().records().unwrap()[0].meta,
        meta(0)
    );
}

#[test]
fn bad_specs_are_refused() {
    let tmp = tempfile::tempdir().unwrap();
    let base = spec(Positions::Last, StoreDtype::F32, 4);
    let mut cases = Vec::new();
    let mut s = base.clone();
    s.sites.clear();
    cases.push((s, "no capture sites"));
    let mut s = base.clone();
    s.sites[1].d = 0;
    cases.push((s, "width 0"));
    let mut s = base.clone();
    s.layers = vec![1, 1];
    cases.push((s, "layer 1 listed twice"));
    let mut s = base.clone();
    s.shard_records = 0;
    cases.push((s, "shard_records"));
    let mut s = base.clone();
    s.sites[1].name = "hook_resid_post".into();
    cases.push((s, "listed twice"));
    for (s, needle) in cases {
        let err = StoreWriter::create(tmp.path(), s, false).err().unwrap();
        assert!(matches!(err, Error::Spec(_)), "{err}");
        assert!(err.to_string().contains(needle), "{err} lacks {needle}");
    }
    assert!(Positions::parse("first").is_err());
    assert_eq!(
        Positions::parse("response-mean").unwrap(),
        Positions::ResponseMean
    );
    assert!(StoreDtype::parse("f64").is_err());
}

#[test]
fn empty_store_export_and_unknown_names_are_errors() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("acts");
    StoreWriter::create(&dir, spec(Positions::Last, StoreDtype::F32, 4), false)
        .unwrap()
        .finish()
        .unwrap();
    let err = export_npy(&dir, &tmp.path().join("out")).unwrap_err();
    assert!(matches!(err, Error::EmptyStore { .. }), "{err}");
    assert!(!tmp.path().join("out").exists());
    assert!(verify(&dir).unwrap().is_ok());

    write_store(
        &tmp.path().join("b"),
        spec(Positions::Last, StoreDtype::F32, 4),
        3,
    );
    let store = Store::open(&tmp.path().join("b")).unwrap();
    let err = store
        .matrix(&SiteLayerKey::new("hook_mlp_out", 0))
        .unwrap_err();
    assert!(err.to_string().contains("blocks.0.hook_mlp_out"), "{err}");
    assert!(err.to_string().contains("blocks.3.hook_attn_out"), "{err}");
    let err = store
        .record(3, &SiteLayerKey::global("ln_final"))
        .unwrap_err();
    assert!(
        matches!(
            err,
            Error::RecordOutOfRange {
                index: 3,
                count: 3,
                ..
            }
        ),
        "{err}"
    );
}
