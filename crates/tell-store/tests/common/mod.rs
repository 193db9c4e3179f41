//! Shared test fixtures: a small spec and deterministic records.
#![allow(dead_code)]

use std::path::Path;
use tell_store::*;

/// A model identity for tests.
pub fn model(hash: &str) -> ModelIdentity {
    ModelIdentity {
        name: format!("test-model-{hash}"),
        hash: model_hash(&[hash.as_bytes()]),
    }
}

/// Two per-block sites at layers 0 and 3, plus a global site.
pub fn spec(positions: Positions, dtype: StoreDtype, shard_records: usize) -> StoreSpec {
    let mut s = StoreSpec::new(
        model("a"),
        vec![
            SiteSpec::block("hook_resid_post", 8),
            SiteSpec::block("hook_attn_out", 4),
            SiteSpec::global("ln_final", 6),
        ],
        vec![0, 3],
        positions,
        dtype,
    );
    s.shard_records = shard_records;
    s.args = serde_json::json!(["tell", "capture", "test"]);
    s
}

/// Deterministic value in [-50, 50) with a mix of magnitudes, so f16/bf16 rounding shows.
pub fn value(record: usize, key: usize, j: usize) -> f32 {
    let mut x = (record as u64)
        .wrapping_mul(0x9E37_79B9_7F4A_7C15)
        .wrapping_add((key as u64) << 32)
        .wrapping_add(j as u64 + 1);
    x ^= x >> 29;
    x = x.wrapping_mul(0xBF58_476D_1CE4_E5B9);
    x ^= x >> 32;
    let u = (x % 1_000_003) as f32 / 1_000_003.0;
    (u - 0.5) * 100.0 * if j.is_multiple_of(3) { 0.001 } else { 1.0 }
}

/// Metadata of record `i`: varying token counts, quoting-hostile extras, a column that first
/// appears at record 10.
pub fn meta(i: usize) -> RecordMeta {
    let mut extra = vec![
        (
            "label".to_string(),
            ["deep", "shallow", "none"][i % 3].to_string(),
        ),
        ("note".to_string(), format!("say \"hi\", {i}\nline two")),
    ];
    if i >= 10 && i.is_multiple_of(2) {
        extra.push(("late_field".to_string(), format!("late{i}")));
    }
    RecordMeta {
        id: format!("r{i}"),
        query_id: format!("q{}", i / 4),
        condition: ["baseline", "scratchpad"][i % 2].to_string(),
        tier: ["free", "paid"][(i / 2) % 2].to_string(),
        n_tokens: 4 + i % 5,
        n_response_tokens: 1 + i % 3,
        extra,
    }
}

/// The per-token block `[n_tokens, d]` of record `i` for key number `k`.
pub fn block(i: usize, k: usize, d: usize) -> Vec<f32> {
    let n = meta(i).n_tokens;
    (0..n * d).map(|j| value(i, k, j)).collect()
}

/// Pushes records `from..to` via `push_tokens` (pooling done by the store).
pub fn push_range(w: &mut StoreWriter, from: usize, to: usize) {
    let keys: Vec<(SiteLayerKey, usize)> = w.keys().to_vec();
    for i in from..to {
        let blocks: Vec<Vec<f32>> = keys
            .iter()
            .enumerate()
            .map(|(k, (_, d))| block(i, k, *d))
            .collect();
        let vals: Vec<(SiteLayerKey, &[f32])> = keys
            .iter()
            .zip(&blocks)
            .map(|((key, _), b)| (key.clone(), b.as_slice()))
            .collect();
        w.push_tokens(meta(i), &vals).unwrap();
    }
}

/// Writes a complete store of `n` records.
pub fn write_store(dir: &Path, spec: StoreSpec, n: usize) -> Manifest {
    let mut w = StoreWriter::create(dir, spec, false).unwrap();
    push_range(&mut w, 0, n);
    w.finish().unwrap()
}

/// Expected stored values of key `k` for record `i`, after pooling and dtype rounding.
pub fn expected(i: usize, k: usize, d: usize, positions: Positions, dtype: StoreDtype) -> Vec<f32> {
    let m = meta(i);
    let pooled = pool(
        positions,
        &block(i, k, d),
        d,
        m.prompt_tokens(),
        m.n_response_tokens,
    )
    .unwrap();
    pooled.into_iter().map(|v| round(v, dtype)).collect()
}

/// `v` as the store keeps it: half's conversions for f16/bf16.
pub fn round(v: f32, dtype: StoreDtype) -> f32 {
    match dtype {
        StoreDtype::F32 => v,
        StoreDtype::F16 => half::f16::from_f32(v).to_f32(),
        StoreDtype::Bf16 => half::bf16::from_f32(v).to_f32(),
    }
}

/// Every file of a store directory, name -> bytes (for byte-for-byte comparisons).
pub fn files(dir: &Path) -> std::collections::BTreeMap<String, Vec<u8>> {
    std::fs::read_dir(dir)
        .unwrap()
        .map(|e| {
            let e = e.unwrap();
            (
                e.file_name().into_string().unwrap(),
                std::fs::read(e.path()).unwrap(),
            )
        })
        .collect()
}

/// Asserts two stores hold identical shards and records.csv, and equivalent manifests.
pub fn assert_same_store(a: &Path, b: &Path) {
    let (fa, fb) = (files(a), files(b));
    assert_eq!(fa.keys().collect::<Vec<_>>(), fb.keys().collect::<Vec<_>>());
    for (name, bytes) in &fa {
        if name != MANIFEST_FILE {
            assert!(bytes == &fb[name], "{name} differs");
        }
    }
    let (ma, mb) = (Manifest::load(a).unwrap(), Manifest::load(b).unwrap());
    assert_eq!(ma.shards, mb.shards);
    assert_eq!(ma.record_count, mb.record_count);
    assert_eq!(ma.extra_columns, mb.extra_columns);
}
