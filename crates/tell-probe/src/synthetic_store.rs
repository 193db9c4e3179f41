//! A seeded synthetic activation store with a class direction planted in chosen layers, for the
//! end-to-end tests of `tell probe` and for trying the CLI without a model.

use crate::error::Result;
use crate::rng::Rng;
use std::path::Path;
use tell_store::{
    ModelIdentity, Positions, RecordMeta, SiteLayerKey, SiteSpec, StoreDtype, StoreSpec,
    StoreWriter,
};

/// Shape of a planted store: every query has one record per condition (label per query:
/// odd queries positive), plus `n_control` negative-like records under condition `benign`.
#[derive(Clone, Debug)]
pub struct PlantedStore {
    /// Queries (groups).
    pub n_queries: usize,
    /// Conditions; one record per query and condition, id `q{q}-{condition}`.
    pub conditions: Vec<String>,
    /// Extra records with condition `benign`, query id `b{i}`, id `benign-{i}`, no label.
    pub n_control: usize,
    /// Site name (per-layer).
    pub site: String,
    /// Layers stored.
    pub layers: Vec<u32>,
    /// Signal strength per layer (class means this many noise sd apart along the direction).
    pub signal: Vec<f64>,
    /// Features.
    pub d: usize,
    /// Seed.
    pub seed: u64,
    /// Overwrites one value: (record, index into `layers`, feature, value), e.g. a NaN.
    pub poison: Option<(usize, usize, usize, f32)>,
}

impl PlantedStore {
    /// 40 queries x {baseline, mitigation}, 10 benign controls, layers 0..4 with the signal in
    /// layer 2 (strong) and layer 3 (weak), d = 16.
    pub fn example() -> Self {
        PlantedStore {
            n_queries: 40,
            conditions: vec!["baseline".into(), "mitigation".into()],
            n_control: 10,
            site: "hook_resid_post".into(),
            layers: vec![0, 1, 2, 3],
            signal: vec![0.0, 0.0, 4.0, 1.0],
            d: 16,
            seed: 7,
            poison: None,
        }
    }

    /// The label of query `q` (odd queries are positive).
    pub fn label(q: usize) -> bool {
        q % 2 == 1
    }
}

/// One written record: id, query id, condition and label (`None` for controls).
#[derive(Clone, Debug, PartialEq)]
pub struct PlantedRecord {
    /// Record id.
    pub id: String,
    /// Query id.
    pub query_id: String,
    /// Condition.
    pub condition: String,
    /// Label (`None` for benign controls).
    pub label: Option<bool>,
}

/// Writes the store into `dir` (replacing a store there) and returns its records in order.
pub fn write_planted_store(dir: &Path, spec: &PlantedStore) -> Result<Vec<PlantedRecord>> {
    let st = StoreSpec::new(
        ModelIdentity {
            name: "synthetic-planted".into(),
            hash: format!("{:064x}", spec.seed),
        },
        vec![SiteSpec::block(&spec.site, spec.d)],
        spec.layers.clone(),
        Positions::Last,
        StoreDtype::F32,
    );
    let mut w = StoreWriter::create(dir, st, true)?;
    let mut rng = Rng::new(spec.seed);
    let d = spec.d;
    let mut u: Vec<f64> = (0..d).map(|_| rng.normal()).collect();
    let norm = u.iter().map(|v| v * v).sum::<f64>().sqrt();
    u.iter_mut().for_each(|v| *v /= norm);
    let mut records = Vec::new();
    for q in 0..spec.n_queries {
        for c in &spec.conditions {
            records.push(PlantedRecord {
                id: format!("q{q}-{c}"),
                query_id: format!("q{q}"),
                condition: c.clone(),
                label: Some(PlantedStore::label(q)),
            });
        }
    }
    for i in 0..spec.n_control {
        records.push(PlantedRecord {
            id: format!("benign-{i}"),
            query_id: format!("b{i}"),
            condition: "benign".into(),
            label: None,
        });
    }
    // A per-query offset shared by the query's records, so rows of one query are correlated
    // (what grouped CV protects against).
    let mut offsets: std::collections::HashMap<String, Vec<f64>> = Default::default();
    for (i, r) in records.iter().enumerate() {
        let off = offsets
            .entry(r.query_id.clone())
            .or_insert_with(|| (0..d).map(|_| 0.5 * rng.normal()).collect())
            .clone();
        let sign = if r.label == Some(true) { 0.5 } else { -0.5 };
        let mut rows: Vec<Vec<f32>> = Vec::new();
        for (li, &s) in spec.signal.iter().enumerate().take(spec.layers.len()) {
            let mut row: Vec<f32> = (0..d)
                .map(|j| (off[j] + sign * s * u[j] + rng.normal()) as f32)
                .collect();
            if let Some((pr, pl, pj, v)) = spec.poison {
                if pr == i && pl == li && pj < d {
                    row[pj] = v;
                }
            }
            rows.push(row);
        }
        let keys: Vec<SiteLayerKey> = spec
            .layers
            .iter()
            .map(|&l| SiteLayerKey::new(&spec.site, l))
            .collect();
        let values: Vec<(SiteLayerKey, &[f32])> = keys
            .into_iter()
            .zip(rows.iter().map(|r| r.as_slice()))
            .collect();
        let meta = RecordMeta {
            id: r.id.clone(),
            query_id: r.query_id.clone(),
            condition: r.condition.clone(),
            tier: "free".into(),
            n_tokens: 4,
            n_response_tokens: 0,
            extra: vec![],
        };
        w.push_record(meta, &values)?;
    }
    w.finish()?;
    Ok(records)
}
