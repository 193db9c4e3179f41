//! Resume after a simulated crash, and refusal to resume or overwrite the wrong store.

mod common;
use common::*;
use std::fs;
use tell_store::*;

const N: usize = 30; // shards of 8: 8, 8, 8, 6

/// Crash after `k` committed shards with 3 more records buffered, leaving the debris a crash can
/// leave (a temp shard, a renamed but uncommitted shard, a records.csv already holding its rows,
/// a temp manifest); resume must clean up and finish byte-identical to an uninterrupted run.
fn crash_and_resume(k: usize, dtype: StoreDtype, positions: Positions) {
    let tmp = tempfile::tempdir().unwrap();
    let (reference, crashed) = (tmp.path().join("ref"), tmp.path().join("crashed"));
    write_store(&reference, spec(positions, dtype, 8), N);

    let mut w = StoreWriter::create(&crashed, spec(positions, dtype, 8), false).unwrap();
    push_range(&mut w, 0, 8 * k + 3);
    assert_eq!(w.completed_records(), 8 * k);
    assert_eq!(w.pending_records(), 3);
    drop(w); // the 3 buffered records are lost, as in a kill
    let next = shard_file_name(k);
    fs::write(crashed.join(format!("{next}.tmp")), b"half a shard").unwrap();
    fs::copy(reference.join(&next), crashed.join(&next)).unwrap();
    fs::copy(reference.join(RECORDS_FILE), crashed.join(RECORDS_FILE)).unwrap();
    fs::write(crashed.join("manifest.json.tmp"), b"{\"trunc").unwrap();

    // Readers see only committed data meanwhile.
    let store = Store::open(&crashed).unwrap();
    assert_eq!(store.len(), 8 * k);
    assert_eq!(store.records().unwrap().len(), 8 * k);

    let mut w = StoreWriter::resume(&crashed, spec(positions, dtype, 8), false).unwrap();
    let rep = w.resume_report().clone();
    assert_eq!(rep.completed_records, 8 * k);
    assert_eq!(rep.completed_shards, k);
    assert_eq!(rep.removed_files.len(), 3, "{:?}", rep.removed_files);
    assert_eq!(rep.dropped_rows, N - 8 * k);
    assert!(!rep.created);
    let done = w.completed_records();
    push_range(&mut w, done, N);
    w.finish().unwrap();
    assert_same_store(&reference, &crashed);
    assert!(verify(&crashed).unwrap().is_ok());
}

#[test]
fn resume_after_simulated_crash_is_byte_identical() {
    // k = 1: the stale records.csv already has a column (late_field, from record 10) that the
    // committed rows do not, so resume must narrow the header again.
    crash_and_resume(1, StoreDtype::F32, Positions::Last);
    crash_and_resume(3, StoreDtype::F32, Positions::Last);
    crash_and_resume(2, StoreDtype::Bf16, Positions::All);
    crash_and_resume(0, StoreDtype::F16, Positions::ResponseMean);
}

#[test]
fn resume_of_a_finished_store_reports_all_records() {
    let tmp = tempfile::tempdir().unwrap();
    write_store(tmp.path(), spec(Positions::Mean, StoreDtype::F32, 8), 12);
    let w =
        StoreWriter::resume(tmp.path(), spec(Positions::Mean, StoreDtype::F32, 8), false).unwrap();
    assert_eq!(w.completed_records(), 12);
    assert!(w.resume_report().removed_files.is_empty());
}

#[test]
fn resume_without_a_store_creates_one() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("new");
    let w = StoreWriter::resume(&dir, spec(Positions::Last, StoreDtype::F32, 8), false).unwrap();
    assert!(w.resume_report().created);
    assert_eq!(w.completed_records(), 0);
    assert!(dir.join(MANIFEST_FILE).exists());
    assert_eq!(
        fs::read_to_string(dir.join(RECORDS_FILE)).unwrap(),
        "record,id,query_id,condition,tier,n_tokens,n_response_tokens\n"
    );
}

#[test]
fn store_of_another_model_is_refused_unless_forced() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    fs::write(dir.join("notes.txt"), b"mine").unwrap();
    write_store(dir, spec(Positions::Last, StoreDtype::F32, 4), 10);
    let mut other = spec(Positions::Last, StoreDtype::F32, 4);
    other.model = model("b");
    for err in [
        StoreWriter::resume(dir, other.clone(), false)
            .err()
            .unwrap(),
        StoreWriter::create(dir, other.clone(), false)
            .err()
            .unwrap(),
    ] {
        match &err {
            Error::OtherModel {
                path,
                found,
                requested,
            } => {
                assert_eq!(path, dir);
                assert!(found.contains("test-model-a"), "{found}");
                assert!(requested.contains("test-model-b"), "{requested}");
            }
            e => panic!("expected OtherModel, got {e}"),
        }
        assert!(err.to_string().contains("another model"));
    }
    // Untouched by the refusals.
    assert_eq!(Store::open(dir).unwrap().len(), 10);
    let w = StoreWriter::resume(dir, other, true).unwrap();
    assert_eq!(w.completed_records(), 0);
    assert!(!dir.join("shard-00001.safetensors").exists());
    assert_eq!(
        fs::read(dir.join("notes.txt")).unwrap(),
        b"mine",
        "force only removes store files"
    );
}

#[test]
fn create_over_an_existing_store_is_refused() {
    let tmp = tempfile::tempdir().unwrap();
    write_store(tmp.path(), spec(Positions::Last, StoreDtype::F32, 4), 5);
    let err = StoreWriter::create(tmp.path(), spec(Positions::Last, StoreDtype::F32, 4), false)
        .err()
        .unwrap();
    assert!(matches!(err, Error::StoreExists { .. }), "{err}");
    let w =
        StoreWriter::create(tmp.path(), spec(Positions::Last, StoreDtype::F32, 4), true).unwrap();
    assert_eq!(w.completed_records(), 0);
    assert_eq!(Store::open(tmp.path()).unwrap().len(), 0);
}

#[test]
fn resume_with_another_layout_names_the_mismatch() {
    let tmp = tempfile::tempdir().unwrap();
    let base = spec(Positions::Last, StoreDtype::F32, 4);
    write_store(tmp.path(), base.clone(), 5);
    let mut layers = base.clone();
    layers.layers = vec![0, 4];
    let mut dtype = base.clone();
    dtype.dtype = StoreDtype::F16;
    let mut positions = base.clone();
    positions.positions = Positions::All;
    let mut sites = base.clone();
    sites.sites[0].d = 16;
    for (s, field, found, requested) in [
        (layers, "layers", "[0, 3]", "[0, 4]"),
        (dtype, "dtype", "f32", "f16"),
        (positions, "positions", "last", "all"),
        (
            sites,
            "sites",
            "hook_resid_post(d=8)",
            "hook_resid_post(d=16)",
        ),
    ] {
        match StoreWriter::resume(tmp.path(), s, false).err().unwrap() {
            Error::SpecMismatch {
                field: f,
                found: fo,
                requested: r,
                ..
            } => {
                assert_eq!(f, field);
                assert!(fo.contains(found), "{fo}");
                assert!(r.contains(requested), "{r}");
            }
            e => panic!("expected SpecMismatch for {field}, got {e}"),
        }
    }
}

#[test]
fn resume_with_a_missing_committed_shard_names_it() {
    let tmp = tempfile::tempdir().unwrap();
    write_store(tmp.path(), spec(Positions::Last, StoreDtype::F32, 4), 10);
    fs::remove_file(tmp.path().join("shard-00001.safetensors")).unwrap();
    let err = StoreWriter::resume(tmp.path(), spec(Positions::Last, StoreDtype::F32, 4), false)
        .err()
        .unwrap();
    assert!(err.to_string().contains("shard-00001.safetensors"), "{err}");
}
