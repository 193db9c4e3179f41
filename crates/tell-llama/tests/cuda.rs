//! The model on a GPU (burn-cuda, products through cuBLAS) against the CPU (`flex`), on the tiny
//! parity checkpoints: f32 within 1e-4 of the CPU, bf16 close (cosine >= 0.999), the unfused
//! backend equal to the fused one, the products' layouts (pitched, transposed views, batches)
//! against burn's CPU matmul, and decoding with the KV cache.
//!
//! Built with `--features cuda` only. Without a usable GPU (no driver, no device: CI) every test
//! prints why it skipped and passes; `run_on` must then answer with an error, not a panic. On a
//! machine without Rust: `cargo test --release -p tell-llama --features cuda --test cuda
//! --no-run` here, then run the printed executable there with `TELL_TEST_MODELS` pointing at
//! `tests/parity/models`.
#![cfg(feature = "cuda")]

use std::path::{Path, PathBuf};

use burn::tensor::{backend::Backend, DType, Distribution, Tensor};
use tell_llama::cuda::{self, CudaDevice, Fused, Plain};
use tell_llama::device::{run_on, DeviceSpec, OnDevice, Precision};
use tell_llama::{gemm, Batch, FlexBackend, Hook, KvCache, Llama, Logits, Site};

/// The first GPU, or `None` after printing why the test skips.
fn gpu(test: &str) -> Option<CudaDevice> {
    match cuda::probe(0) {
        Ok(info) => {
            cuda::configure_caches();
            eprintln!("{test}: on {} ({} GPU(s))", info.name, info.count);
            Some(CudaDevice::new(0))
        }
        Err(e) => {
            println!("{test}: skipped, no usable GPU: {e}");
            None
        }
    }
}

/// The tiny parity checkpoints: `$TELL_TEST_MODELS` (a test binary carried to a GPU machine
/// without this checkout's path), else the repository's `tests/parity/models`.
fn model_dir(name: &str) -> PathBuf {
    match std::env::var_os("TELL_TEST_MODELS") {
        Some(dir) => PathBuf::from(dir).join(name),
        None => Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../../tests/parity/models")
            .join(name),
    }
}

fn host<B: Backend, const D: usize>(t: Tensor<B, D>) -> Vec<f32> {
    t.into_data().convert::<f32>().to_vec::<f32>().unwrap()
}

/// Largest absolute difference relative to the largest reference value.
fn rel_err(got: &[f32], want: &[f32]) -> f32 {
    assert_eq!(got.len(), want.len());
    let scale = want.iter().fold(0f32, |m, v| m.max(v.abs())).max(1e-30);
    let err = got
        .iter()
        .zip(want)
        .fold(0f32, |m, (a, b)| m.max((a - b).abs()));
    err / scale
}

fn cosine(a: &[f32], b: &[f32]) -> f64 {
    let (mut ab, mut aa, mut bb) = (0f64, 0f64, 0f64);
    for (&x, &y) in a.iter().zip(b) {
        let (x, y) = (x as f64, y as f64);
        ab += x * y;
        aa += x * x;
        bb += y * y;
    }
    ab / (aa.sqrt() * bb.sqrt()).max(1e-300)
}

const PROMPTS: [&[u32]; 3] = [
    &[1, 5, 9, 13, 2, 7, 30, 31, 4],
    &[3, 8, 1],
    &[11, 12, 13, 14, 15],
];

/// Every layer's `resid_post` and the logits at every position, by name.
fn values<B: Backend>(model: &Llama<B>) -> Vec<(String, Vec<f32>)> {
    let seqs: Vec<Vec<u32>> = PROMPTS.iter().map(|p| p.to_vec()).collect();
    let batch = Batch::left_padded(&seqs, 0).unwrap();
    let sites: Vec<Site> = (0..model.config().num_layers)
        .map(|layer| Site::Block {
            layer,
            hook: Hook::ResidPost,
        })
        .collect();
    let out = model.forward(&batch, &sites, Logits::All).unwrap();
    let mut v = vec![("logits".to_string(), host(out.logits.unwrap()))];
    for s in &sites {
        v.push((format!("{s}"), host(out.captures.get(s).unwrap().clone())));
    }
    // Padded positions hold values no one reads; compare real positions only.
    let keep: Vec<bool> = batch.mask.clone();
    v.into_iter()
        .map(|(name, x)| {
            let width = x.len() / keep.len();
            let real = x
                .chunks_exact(width)
                .zip(&keep)
                .filter(|(_, &k)| k)
                .flat_map(|(row, _)| row.iter().copied())
                .collect();
            (name, real)
        })
        .collect()
}

fn cpu_values(name: &str) -> Vec<(String, Vec<f32>)> {
    let model = Llama::<FlexBackend>::load(&model_dir(name), &Default::default()).unwrap();
    values(&model)
}

#[test]
fn f32_on_the_gpu_matches_the_cpu() {
    let Some(device) = gpu("f32_on_the_gpu_matches_the_cpu") else {
        return;
    };
    for name in ["gqa", "llama3-rope", "tied", "head-dim", "bf16"] {
        let want = cpu_values(name);
        let model = Llama::<Fused>::load_as(&model_dir(name), &device, DType::F32).unwrap();
        assert_eq!(model.dtype(), DType::F32);
        for ((site, got), (_, want)) in values(&model).iter().zip(&want) {
            let err = rel_err(got, want);
            assert!(err <= 1e-4, "{name} {site}: relative error {err}");
        }
    }
    cuda::check().unwrap();
}

#[test]
fn bf16_on_the_gpu_is_close_to_the_cpu() {
    let Some(device) = gpu("bf16_on_the_gpu_is_close_to_the_cpu") else {
        return;
    };
    for (name, dtype) in [
        ("gqa", DType::BF16),
        ("llama3-rope", DType::BF16),
        ("gqa", DType::F16),
    ] {
        let want = cpu_values(name);
        let model = Llama::<Fused>::load_as(&model_dir(name), &device, dtype).unwrap();
        for ((site, got), (_, want)) in values(&model).iter().zip(&want) {
            let c = cosine(got, want);
            assert!(c >= 0.999, "{name} {dtype:?} {site}: cosine {c}");
        }
    }
    cuda::check().unwrap();
}

#[test]
fn the_unfused_backend_computes_the_same() {
    let Some(device) = gpu("the_unfused_backend_computes_the_same") else {
        return;
    };
    let fused = Llama::<Fused>::load_as(&model_dir("gqa"), &device, DType::F32).unwrap();
    let plain = Llama::<Plain>::load_as(&model_dir("gqa"), &device, DType::F32).unwrap();
    for ((site, a), (_, b)) in values(&fused).iter().zip(&values(&plain)) {
        let err = rel_err(a, b);
        assert!(err <= 1e-5, "{site}: relative error {err}");
    }
    cuda::check().unwrap();
}

/// `gemm::matmul` on the GPU against burn's CPU matmul for the layouts the model produces.
fn check_products<B: Backend>(device: &B::Device, what: &str) {
    let cpu = Default::default();
    let on_cpu =
        |t: &Tensor<B, 4>| Tensor::<FlexBackend, 4>::from_data(t.to_data().convert::<f32>(), &cpu);
    let rand = |shape: [usize; 4]| {
        Tensor::<B, 4>::random(
            shape,
            Distribution::Uniform(-1.0, 1.0),
            (device, DType::F32),
        )
    };
    // (a, b) pairs: contiguous; a transposed view (a weight, keys); a narrowed (pitched) view;
    // heads split from a fused projection and swapped (not readable as is: copied first).
    let a = rand([2, 3, 5, 7]);
    let b = rand([2, 3, 7, 4]);
    let kt = rand([2, 3, 4, 7]).swap_dims(2, 3);
    let wide = rand([2, 3, 5, 12]).slice([0..2, 0..3, 0..5, 2..9]);
    let heads = rand([2, 5, 3, 7]).swap_dims(1, 2);
    for (name, x, y) in [
        ("contiguous", a.clone(), b.clone()),
        ("transposed", a.clone(), kt),
        ("narrowed", wide, b.clone()),
        ("swapped heads", heads, b.clone()),
        (
            "transposed a",
            rand([2, 3, 7, 5]).swap_dims(2, 3),
            b.clone(),
        ),
    ] {
        let want = host(on_cpu(&x).matmul(on_cpu(&y)));
        for dtype in [DType::F32, DType::BF16] {
            let (xd, yd) = (x.clone().cast(dtype), y.clone().cast(dtype));
            let got = host(gemm::matmul(xd, yd, DType::F32));
            let err = rel_err(&got, &want);
            let tol = if dtype == DType::F32 { 1e-5 } else { 2e-2 };
            assert!(err <= tol, "{what} {name} {dtype:?}: relative error {err}");
        }
    }
    // A 2-D linear layer: x [m, k] by a weight [n, k] transposed, bf16 out.
    let x = Tensor::<B, 2>::random(
        [6, 8],
        Distribution::Uniform(-1.0, 1.0),
        (device, DType::BF16),
    );
    let w = Tensor::<B, 2>::random(
        [5, 8],
        Distribution::Uniform(-1.0, 1.0),
        (device, DType::BF16),
    );
    let want = host(
        Tensor::<FlexBackend, 2>::from_data(x.to_data().convert::<f32>(), &cpu).matmul(
            Tensor::<FlexBackend, 2>::from_data(w.to_data().convert::<f32>(), &cpu).transpose(),
        ),
    );
    let got = gemm::matmul(x, w.transpose(), DType::BF16);
    assert_eq!(got.dtype(), DType::BF16);
    let err = rel_err(&host(got), &want);
    assert!(err <= 1e-2, "{what} linear bf16: relative error {err}");
}

#[test]
fn products_read_every_layout_the_model_makes() {
    let Some(device) = gpu("products_read_every_layout_the_model_makes") else {
        return;
    };
    check_products::<Fused>(&device, "fused");
    check_products::<Plain>(&device, "plain");
    cuda::check().unwrap();
}

#[test]
fn decoding_with_the_cache_matches_the_cpu() {
    let Some(device) = gpu("decoding_with_the_cache_matches_the_cpu") else {
        return;
    };
    fn decode<B: Backend>(model: &Llama<B>) -> Vec<Vec<f32>> {
        let seqs: Vec<Vec<u32>> = PROMPTS.iter().map(|p| p.to_vec()).collect();
        let batch = Batch::left_padded(&seqs, 0).unwrap();
        let (out, mut cache): (_, KvCache<B>) = model.prefill(&batch, &[], Logits::Last).unwrap();
        let mut steps = vec![host(out.logits.unwrap())];
        for step in 0..3u32 {
            let next: Vec<u32> = (0..cache.rows() as u32).map(|r| 1 + r + step).collect();
            steps.push(host(model.decode(&next, &mut cache).unwrap()));
        }
        cache.retain(&[2, 0]);
        steps.push(host(model.decode(&[4, 5], &mut cache).unwrap()));
        steps
    }
    let cpu = Llama::<FlexBackend>::load(&model_dir("gqa"), &Default::default()).unwrap();
    let gpu = Llama::<Fused>::load_as(&model_dir("gqa"), &device, DType::F32).unwrap();
    for (i, (got, want)) in decode(&gpu).iter().zip(&decode(&cpu)).enumerate() {
        let err = rel_err(got, want);
        assert!(err <= 1e-4, "step {i}: relative error {err}");
    }
    cuda::check().unwrap();
}

/// The device seam, as the commands use it.
struct Logits3<'a>(&'a Path);

impl OnDevice for Logits3<'_> {
    type Output = Vec<f32>;
    fn run<B: Backend>(self, device: &B::Device) -> Vec<f32> {
        let model = Llama::<B>::load(self.0, device).unwrap();
        let batch = Batch::left_padded(&[vec![1, 2, 3]], 0).unwrap();
        host(
            model
                .forward(&batch, &[], Logits::Last)
                .unwrap()
                .logits
                .unwrap(),
        )
    }
}

#[test]
fn run_on_a_gpu_or_a_clear_error() {
    let dir = model_dir("gqa");
    match cuda::probe(0) {
        Ok(_) => {
            let gpu = run_on(DeviceSpec::Cuda(0), Some(Precision::F32), Logits3(&dir)).unwrap();
            let cpu = run_on(DeviceSpec::Cpu, None, Logits3(&dir)).unwrap();
            assert!(rel_err(&gpu, &cpu) <= 1e-4);
            let err = run_on(DeviceSpec::Cuda(999), None, Logits3(&dir)).unwrap_err();
            assert!(err.to_string().contains("GPU(s) visible"), "{err}");
        }
        Err(probe) => {
            println!("run_on_a_gpu_or_a_clear_error: no usable GPU ({probe}); checking the error");
            let err = run_on(DeviceSpec::Cuda(0), None, Logits3(&dir)).unwrap_err();
            assert_eq!(err.to_string(), probe.to_string());
        }
    }
}
