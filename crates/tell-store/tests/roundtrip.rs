//! Round trip of every positions mode and dtype: write, read back (matrix, chunks, single
//! records, records.csv), verify, and export to .npy read back byte for byte.

mod common;
use common::*;
use tell_store::*;

const N: usize = 23; // 3 shards of 8 (the last one short)

fn read_npy(path: &std::path::Path) -> (String, Vec<u8>) {
    let b = std::fs::read(path).unwrap();
    assert_eq!(&b[..8], b"\x93NUMPY\x01\x00");
    let hl = u16::from_le_bytes([b[8], b[9]]) as usize;
    assert_eq!((10 + hl) % 64, 0);
    (
        String::from_utf8(b[10..10 + hl].to_vec()).unwrap(),
        b[10 + hl..].to_vec(),
    )
}

fn f32s(b: &[u8]) -> Vec<f32> {
    b.chunks_exact(4)
        .map(|c| f32::from_le_bytes(c.try_into().unwrap()))
        .collect()
}

#[test]
fn every_positions_mode_and_dtype_round_trips() {
    for positions in Positions::ALL_MODES {
        for dtype in [StoreDtype::F32, StoreDtype::F16, StoreDtype::Bf16] {
            let tmp = tempfile::tempdir().unwrap();
            let dir = tmp.path().join("acts");
            let m = write_store(&dir, spec(positions, dtype, 8), N);
            assert_eq!(m.record_count, N);
            assert_eq!(m.shards.len(), 3);
            assert!(m.complete);
            assert_eq!(
                m.token_count,
                (0..N).map(|i| meta(i).n_tokens as u64).sum::<u64>()
            );

            let store = Store::open(&dir).unwrap();
            let recs = store.records().unwrap();
            assert_eq!(recs.len(), N);
            for (i, r) in recs.iter().enumerate() {
                assert_eq!(r.index, i);
                assert_eq!(r.meta, meta(i), "record {i} metadata");
            }
            let offsets = store.offsets().unwrap();
            assert_eq!(offsets.len(), N + 1);
            for (k, key) in store.keys().iter().enumerate() {
                let d = store.width(key).unwrap();
                let want: Vec<f32> = (0..N)
                    .flat_map(|i| expected(i, k, d, positions, dtype))
                    .collect();
                let mat = store.matrix(key).unwrap();
                assert_eq!(mat.cols, d);
                assert_eq!(mat.rows * d, want.len());
                assert_eq!(mat.data, want, "{positions} {dtype} {key}");
                // Single records slice back out exactly, through the offsets too.
                for i in [0, 7, 8, N - 1] {
                    let r = store.record(i, key).unwrap();
                    assert_eq!(r.data, expected(i, k, d, positions, dtype));
                    let (a, b) = (offsets[i] as usize, offsets[i + 1] as usize);
                    assert_eq!(&mat.data[a * d..b * d], r.data.as_slice());
                    if positions == Positions::All {
                        assert_eq!(r.rows, meta(i).n_tokens);
                    } else {
                        assert_eq!(r.rows, 1);
                    }
                }
            }
            let rep = verify(&dir).unwrap();
            assert!(rep.is_ok(), "{:?}", rep.problems);
            assert_eq!(rep.records, N);

            let out = tmp.path().join("npy");
            let ex = export_npy(&dir, &out).unwrap();
            assert_eq!(ex.records, N);
            for (k, key) in store.keys().iter().enumerate() {
                let d = store.width(key).unwrap();
                let (head, data) = read_npy(&out.join(format!("{}.npy", key.tensor_name())));
                let rows = offsets[N] as usize;
                assert!(head.contains(&format!("'shape': ({rows}, {d})")), "{head}");
                assert!(head.contains("'descr': '<f4'"));
                let want: Vec<f32> = (0..N)
                    .flat_map(|i| expected(i, k, d, positions, dtype))
                    .collect();
                assert_eq!(f32s(&data), want);
            }
            let offs_npy = out.join("offsets.npy");
            assert_eq!(offs_npy.exists(), positions == Positions::All);
            if positions == Positions::All {
                let (head, data) = read_npy(&offs_npy);
                assert!(head.contains("'descr': '<i8'"));
                let o: Vec<u64> = data
                    .chunks_exact(8)
                    .map(|c| i64::from_le_bytes(c.try_into().unwrap()) as u64)
                    .collect();
                assert_eq!(o, offsets);
            }
            assert_eq!(
                read_records(&out.join(RECORDS_FILE), &m.extra_columns).unwrap(),
                recs
            );
        }
    }
}

#[test]
fn records_csv_has_union_of_columns_in_first_seen_order() {
    let tmp = tempfile::tempdir().unwrap();
    write_store(tmp.path(), spec(Positions::Last, StoreDtype::F32, 4), 14);
    let csv = std::fs::read_to_string(tmp.path().join(RECORDS_FILE)).unwrap();
    let header = csv.lines().next().unwrap();
    assert_eq!(
        header,
        "record,id,query_id,condition,tier,n_tokens,n_response_tokens,label,note,late_field"
    );
    let m = Manifest::load(tmp.path()).unwrap();
    assert_eq!(m.extra_columns, ["label", "note", "late_field"]);
    // Record 11 lacks late_field: empty cell, read back as absent.
    let recs = Store::open(tmp.path()).unwrap().records().unwrap();
    assert_eq!(recs[11].meta.extra("late_field"), None);
    assert_eq!(recs[12].meta.extra("late_field"), Some("late12"));
}

#[test]
fn manifest_and_info_describe_the_store() {
    let tmp = tempfile::tempdir().unwrap();
    let m = write_store(tmp.path(), spec(Positions::All, StoreDtype::Bf16, 5), 12);
    let info = Store::open(tmp.path()).unwrap().info();
    assert_eq!(info.records, 12);
    assert_eq!(info.shards, 3);
    assert_eq!(info.dtype, StoreDtype::Bf16);
    assert_eq!(
        info.tensors,
        [
            "blocks.0.hook_resid_post",
            "blocks.3.hook_resid_post",
            "blocks.0.hook_attn_out",
            "blocks.3.hook_attn_out",
            "ln_final"
        ]
    );
    assert_eq!(info.tokens, m.token_count);
    assert_eq!(
        info.response_tokens,
        (0..12)
            .map(|i| meta(i).n_response_tokens as u64)
            .sum::<u64>()
    );
    let json = serde_json::to_value(&info).unwrap();
    assert_eq!(json["positions"], "all");
    assert_eq!(json["dtype"], "bf16");
    let raw: serde_json::Value =
        serde_json::from_slice(&std::fs::read(tmp.path().join(MANIFEST_FILE)).unwrap()).unwrap();
    assert_eq!(raw["format_version"], 1);
    assert_eq!(raw["shards"][1]["first_record"], 5);
    assert_eq!(raw["shards"][1]["records"], 5);
    assert_eq!(raw["sites"][0]["d"], 8);
    assert_eq!(raw["args"][1], "capture");
    assert_eq!(raw["shards"][0]["sha256"].as_str().unwrap().len(), 64);
    // Shard tensors as the format section says.
    let bytes = std::fs::read(tmp.path().join("shard-00001.safetensors")).unwrap();
    let st = safetensors::SafeTensors::deserialize(&bytes).unwrap();
    let t = st.tensor("blocks.3.hook_resid_post").unwrap();
    let toks: usize = (5..10).map(|i| meta(i).n_tokens).sum();
    assert_eq!(t.shape(), [toks, 8]);
    assert_eq!(t.dtype(), safetensors::Dtype::BF16);
    assert_eq!(st.tensor("offsets").unwrap().shape(), [6]);
}

#[test]
fn byte_cap_closes_shards_early() {
    let tmp = tempfile::tempdir().unwrap();
    let mut s = spec(Positions::Last, StoreDtype::F32, 100);
    // One record is (8+8+4+4+6) * 4 = 120 bytes; a cap of 300 closes a shard every 3 records.
    s.max_shard_bytes = 300;
    let m = write_store(tmp.path(), s, 7);
    assert_eq!(
        m.shards.iter().map(|s| s.records).collect::<Vec<_>>(),
        [3, 3, 1]
    );
}
