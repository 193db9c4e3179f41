//! Interventions against transformers forward hooks (goldens from
//! `tests/parity/make_intervention_goldens.py`), and the edits that must change nothing.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use burn::tensor::Tensor;
use safetensors::SafeTensors;
use tell_llama::{
    Batch, CpuBackend, Edit, Edits, Hook, Intervention, Llama, Logits, PatchValues, RowEdit, Site,
    Span,
};

type B = CpuBackend;

const MODELS: [&str; 3] = ["gqa", "llama3-rope", "tied"];

fn model_dir(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../tests/parity/models")
        .join(name)
}

fn read_json(path: PathBuf) -> serde_json::Value {
    serde_json::from_slice(&std::fs::read(&path).unwrap()).unwrap()
}

fn f32s(bytes: &[u8]) -> Vec<f32> {
    bytes
        .chunks_exact(4)
        .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
        .collect()
}

fn tensor_of(bytes: &[u8], key: &str) -> Vec<f32> {
    let st = SafeTensors::deserialize(bytes).unwrap();
    f32s(st.tensor(key).unwrap_or_else(|_| panic!("no {key}")).data())
}

fn values(t: &Tensor<B, 3>) -> Vec<f32> {
    t.to_data().to_vec::<f32>().unwrap()
}

fn rel_err(actual: &[f32], reference: &[f32]) -> f32 {
    assert_eq!(actual.len(), reference.len(), "lengths differ");
    let scale = reference.iter().fold(0f32, |m, v| m.max(v.abs()));
    let diff = actual
        .iter()
        .zip(reference)
        .fold(0f32, |m, (a, b)| m.max((a - b).abs()));
    diff / scale
}

fn all_sites(layers: usize) -> Vec<Site> {
    let mut sites: Vec<Site> = (0..layers)
        .flat_map(|layer| Hook::ALL.map(|hook| Site::Block { layer, hook }))
        .collect();
    sites.push(Site::LnFinal);
    sites
}

fn prompts(name: &str) -> Vec<Vec<u32>> {
    serde_json::from_value(read_json(model_dir(name).join("golden.json"))["prompts"].clone())
        .unwrap()
}

/// Every block site of one prompt run alone, as patch values.
fn patch_source(model: &Llama<B>, prompt: &[u32]) -> PatchValues {
    let layers = model.config().num_layers;
    let batch = Batch::left_padded(&[prompt.to_vec()], 0).unwrap();
    let sites = all_sites(layers);
    let mut out = model.forward(&batch, &sites, Logits::None).unwrap();
    let mut src = PatchValues::new(prompt.len());
    for site in sites {
        if let Site::Block { .. } = site {
            src.insert(site, values(&out.captures.take(&site).unwrap()))
                .unwrap();
        }
    }
    src
}

fn edit_of(case: &serde_json::Value, vector: Option<Vec<f32>>) -> Edit {
    let hook = Hook::parse(case["hook"].as_str().unwrap()).unwrap();
    let layers: Vec<usize> = serde_json::from_value(case["layers"].clone()).unwrap();
    let span = match &case["positions"] {
        serde_json::Value::String(s) => Span::parse(s).unwrap(),
        list => {
            let p: Vec<usize> = serde_json::from_value(list.clone()).unwrap();
            Span::Ranges(p.iter().map(|&p| p..p + 1).collect())
        }
    };
    match case["op"].as_str().unwrap() {
        "add" => Edit::add(
            hook,
            layers,
            span,
            case["alpha"].as_f64().unwrap() as f32,
            vector.unwrap(),
        ),
        "ablate" => Edit::ablate(hook, layers, span, &vector.unwrap()).unwrap(),
        "patch" => Edit::patch(hook, layers, span),
        op => panic!("unknown op {op}"),
    }
}

#[test]
fn add_ablate_and_patch_match_transformers_hooks() {
    let device = Default::default();
    let mut worst = 0f32;
    for name in MODELS {
        let dir = model_dir(name);
        let model = Llama::<B>::load(&dir, &device).unwrap();
        let meta = read_json(dir.join("interventions.json"));
        let bytes = std::fs::read(dir.join("interventions.safetensors")).unwrap();
        let prompts = prompts(name);
        let source = Arc::new(patch_source(&model, &prompts[1]));
        let sites = all_sites(model.config().num_layers);
        for (case, spec) in meta["cases"].as_object().unwrap() {
            let vector = spec["alpha"]
                .as_f64()
                .map(|_| ())
                .or((spec["op"] == "ablate").then_some(()))
                .map(|()| tensor_of(&bytes, &format!("vector.{case}")));
            let iv = Intervention {
                edits: vec![edit_of(spec, vector)],
            };
            let target = &prompts[0];
            let rows = [RowEdit {
                prompt_len: target.len(),
                key: 0,
                patch: Some(source.clone()),
            }];
            let batch = Batch::left_padded(std::slice::from_ref(target), 0).unwrap();
            let edits = Edits {
                intervention: &iv,
                rows: &rows,
            };
            let out = model
                .forward_with(&batch, &sites, Logits::All, Some(edits))
                .unwrap();
            let err = rel_err(
                &values(out.logits.as_ref().unwrap()),
                &tensor_of(&bytes, &format!("{case}.logits")),
            );
            assert!(err <= 1e-4, "{name} {case} logits: rel err {err}");
            worst = worst.max(err);
            for site in &sites {
                let reference = tensor_of(&bytes, &format!("{case}.{site}"));
                let err = rel_err(&values(out.captures.get(site).unwrap()), &reference);
                assert!(err <= 1e-4, "{name} {case} {site}: rel err {err}");
                worst = worst.max(err);
            }
        }
    }
    eprintln!("interventions vs transformers hooks: worst relative error {worst:.2e}");
}

/// The logits and every capture of a padded batch of all golden prompts, with `edits`.
fn run_batch(model: &Llama<B>, prompts: &[Vec<u32>], edits: Option<Edits<'_>>) -> Vec<Vec<f32>> {
    let batch = Batch::left_padded(prompts, 0).unwrap();
    let sites = all_sites(model.config().num_layers);
    let out = model
        .forward_with(&batch, &sites, Logits::All, edits)
        .unwrap();
    let mut all = vec![values(&out.logits.unwrap())];
    all.extend(sites.iter().map(|s| values(out.captures.get(s).unwrap())));
    all
}

#[test]
fn zero_alpha_empty_spec_and_self_patch_are_bit_identical_to_no_intervention() {
    let device = Default::default();
    for name in MODELS {
        let model = Llama::<B>::load(&model_dir(name), &device).unwrap();
        let prompts = prompts(name);
        let plain = run_batch(&model, &prompts, None);
        let layers: Vec<usize> = (0..model.config().num_layers).collect();
        let d = model.config().hidden_size;
        let vector: Vec<f32> = (0..d).map(|i| (i as f32 * 0.37).sin()).collect();
        let mut edits = Vec::new();
        for hook in Hook::ALL {
            edits.push(Edit::add(
                hook,
                layers.clone(),
                Span::All,
                0.0,
                vector.clone(),
            ));
            edits.push(Edit::patch(hook, layers.clone(), Span::All));
        }
        let cases = [
            ("empty", Intervention::default()),
            (
                "alpha 0 and self-patch at every site",
                Intervention { edits },
            ),
        ];
        // Each row's patch source is that row's own values in this same batch.
        let batch = Batch::left_padded(&prompts, 0).unwrap();
        let sites: Vec<Site> = all_sites(layers.len())
            .into_iter()
            .filter(|s| matches!(s, Site::Block { .. }))
            .collect();
        let mut out = model.forward(&batch, &sites, Logits::None).unwrap();
        let mut sources: Vec<PatchValues> =
            prompts.iter().map(|p| PatchValues::new(p.len())).collect();
        for site in &sites {
            let v = values(&out.captures.take(site).unwrap());
            for (b, p) in prompts.iter().enumerate() {
                let start = (b * batch.seq + batch.start(b)) * d;
                let end = (b + 1) * batch.seq * d;
                assert_eq!(end - start, p.len() * d);
                sources[b].insert(*site, v[start..end].to_vec()).unwrap();
            }
        }
        let rows: Vec<RowEdit> = prompts
            .iter()
            .zip(sources)
            .enumerate()
            .map(|(i, (p, src))| RowEdit {
                prompt_len: p.len(),
                key: i as u64,
                patch: Some(Arc::new(src)),
            })
            .collect();
        for (what, iv) in &cases {
            let edits = Edits {
                intervention: iv,
                rows: &rows,
            };
            let edited = run_batch(&model, &prompts, Some(edits));
            assert!(edited == plain, "{name}: {what} changed a value");
        }
    }
}

#[test]
fn bad_interventions_are_errors_before_any_work() {
    let device = Default::default();
    let model = Llama::<B>::load(&model_dir("gqa"), &device).unwrap();
    let d = model.config().hidden_size;
    let batch = Batch::left_padded(&[vec![5, 6, 7]], 0).unwrap();
    let row = [RowEdit {
        prompt_len: 3,
        key: 0,
        patch: None,
    }];
    let run = |iv: Intervention, rows: &[RowEdit]| {
        let edits = Edits {
            intervention: &iv,
            rows,
        };
        model
            .forward_with(&batch, &[], Logits::Last, Some(edits))
            .unwrap_err()
            .to_string()
    };
    let wide = Edit::add(Hook::ResidPost, vec![0], Span::All, 1.0, vec![1.0; d + 1]);
    let err = run(Intervention { edits: vec![wide] }, &row);
    assert!(
        err.contains(&format!(
            "the vector has {} values, the model's hidden size is {d}",
            d + 1
        )),
        "{err}"
    );
    let deep = Edit::add(Hook::ResidPost, vec![7], Span::All, 1.0, vec![1.0; d]);
    let err = run(Intervention { edits: vec![deep] }, &row);
    assert!(err.contains("layer 7 is out of range"), "{err}");
    let patch = Edit::patch(Hook::ResidPost, vec![0], Span::All);
    let err = run(
        Intervention {
            edits: vec![patch.clone()],
        },
        &row,
    );
    assert!(err.contains("without patch values"), "{err}");
    let err = run(Intervention { edits: vec![patch] }, &[]);
    assert!(
        err.contains("an intervention for 0 rows on a batch of 1"),
        "{err}"
    );
}
