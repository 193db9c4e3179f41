//! The GPU path (`--features cuda`): burn-cuda for the model, cuBLAS for its products.
//!
//! - [`run`]: what [`crate::run_on`] does for `--device cuda[:N]`: checks the driver, makes
//!   cubecl's autotune and kernel caches persist, sets the float type, warms the device up, runs
//!   the task on the fused backend ([`Fused`], or [`Plain`] with `TELL_CUDA_FUSION=0`), and
//!   reports GPU errors as errors, never as panics.
//! - [`matmul`]: the products of [`crate::gemm::matmul`] (linear layers, attention scores and
//!   context) as cuBLAS GEMMs on the tensors' own memory and stream (`cublas.rs`), registered
//!   with burn-fusion as a custom operation (`fused.rs`) or called directly on [`Plain`].
//!   `TELL_CUBLAS=0` sends them to burn's own matmul instead (slower; for comparison).
//!
//! The measurements behind this design (cuBLAS at 771-805 TFLOP/s on burn tensors where burn's
//! matmul reached 185-209, ordering on cubecl's stream) are summarised in the README.

use std::any::{Any, TypeId};
use std::sync::OnceLock;

use burn::tensor::{backend::Backend, DType, Tensor, TensorPrimitive};
use burn_cubecl::tensor::CubeTensor;
use cubecl::cuda::CudaRuntime;

use crate::device::{OnDevice, Precision};
use crate::error::{Error, Result};

mod cublas;
mod fused;
mod setup;

pub use cubecl::cuda::CudaDevice;
pub use setup::{cache_dir, configure_caches, probe, GpuInfo};

/// burn-cuda as `tell` runs it: burn-fusion over cubecl, autotuned. The float type is set per
/// device at run time (`--compute-dtype`), so one backend type serves f32, bf16 and f16.
pub type Fused = burn::backend::Cuda<f32, i32>;

/// burn-cuda without burn-fusion: every operation its own kernel (`TELL_CUDA_FUSION=0`).
pub type Plain = burn_cubecl::CubeBackend<CudaRuntime, f32, i32, u8>;

/// Whether `B` is one of the CUDA backends.
pub fn is_cuda<B: Backend>() -> bool {
    let b = TypeId::of::<B>();
    b == TypeId::of::<Fused>() || b == TypeId::of::<Plain>()
}

/// Reads a switch from the environment once: on unless it is `0`, `false` or `off`.
fn switch(cell: &'static OnceLock<bool>, name: &str) -> bool {
    *cell.get_or_init(|| {
        !matches!(
            std::env::var(name).as_deref().map(str::trim),
            Ok("0" | "false" | "off")
        )
    })
}

/// Whether products go to cuBLAS (`TELL_CUBLAS`, on by default).
pub fn cublas_enabled() -> bool {
    static CELL: OnceLock<bool> = OnceLock::new();
    switch(&CELL, "TELL_CUBLAS")
}

/// Whether the fused backend runs (`TELL_CUDA_FUSION`, on by default).
pub fn fusion_enabled() -> bool {
    static CELL: OnceLock<bool> = OnceLock::new();
    switch(&CELL, "TELL_CUDA_FUSION")
}

/// `x` as type `T` when it is one (a backend's primitive as the concrete type it is).
fn cast<F: 'static, T: 'static>(x: F) -> std::result::Result<T, F> {
    let any: Box<dyn Any> = Box::new(x);
    match any.downcast::<T>() {
        Ok(t) => Ok(*t),
        Err(any) => Err(*any.downcast::<F>().expect("the value's own type")),
    }
}

/// `x` as the type it is known to be (`B` was compared with the concrete backends).
fn same<F: 'static, T: 'static>(x: F) -> T {
    cast(x).unwrap_or_else(|_| unreachable!("a CUDA backend's float tensor"))
}

/// `a @ b` through cuBLAS when `B` is a CUDA backend, the shapes are a batch of products with
/// equal leading dimensions, and the types are ones cuBLAS takes (bf16 or f16 in, their type or
/// f32 out; f32 in and out); otherwise the inputs back, for burn's matmul.
#[allow(clippy::type_complexity)]
pub fn matmul<B: Backend, const D: usize>(
    a: Tensor<B, D>,
    b: Tensor<B, D>,
    output: DType,
) -> std::result::Result<Tensor<B, D>, (Tensor<B, D>, Tensor<B, D>)> {
    if D < 2 || !is_cuda::<B>() || !cublas_enabled() {
        return Err((a, b));
    }
    let (da, db) = (a.dims(), b.dims());
    let types_ok = a.dtype() == b.dtype()
        && matches!(
            (a.dtype(), output),
            (DType::BF16, DType::BF16 | DType::F32)
                | (DType::F16, DType::F16 | DType::F32)
                | (DType::F32, DType::F32)
        );
    let shapes_ok = da[..D - 2] == db[..D - 2]
        && da[D - 1] == db[D - 2]
        && da
            .iter()
            .chain(&db)
            .all(|&n| n > 0 && n <= i32::MAX as usize);
    if !types_ok || !shapes_ok {
        return Err((a, b));
    }
    let mut shape = da.to_vec();
    shape[D - 1] = db[D - 1];
    let (pa, pb) = match (a.into_primitive(), b.into_primitive()) {
        (TensorPrimitive::Float(pa), TensorPrimitive::Float(pb)) => (pa, pb),
        (pa, pb) => return Err((Tensor::from_primitive(pa), Tensor::from_primitive(pb))),
    };
    let product: B::FloatTensorPrimitive = if TypeId::of::<B>() == TypeId::of::<Fused>() {
        let (fa, fb): (fused::FusedTensor, _) = (same(pa), same(pb));
        same(fused::matmul(fa, fb, shape, output))
    } else {
        let (ca, cb): (CubeTensor<CudaRuntime>, _) = (same(pa), same(pb));
        same(cublas::product(ca, cb, output))
    };
    Ok(Tensor::from_primitive(TensorPrimitive::Float(product)))
}

/// An error for the products that failed on the GPU since the last check, if any.
pub fn check() -> Result<()> {
    let failures = cublas::take_failures();
    match failures.first() {
        None => Ok(()),
        Some(first) => Err(Error::Device(format!(
            "{} GPU product(s) failed, the first: {first}; the values computed since are not \
             to be trusted (their outputs were filled with NaN)",
            failures.len()
        ))),
    }
}

/// Runs `task` on GPU `index` in `dtype`: see the module documentation.
pub fn run<T: OnDevice>(index: usize, dtype: Precision, task: T) -> Result<T::Output> {
    let info = setup::probe(index)?;
    setup::configure_caches();
    let device = CudaDevice::new(index);
    if fusion_enabled() {
        setup::run_with::<Fused, T>(&device, &info, dtype, task)
    } else {
        setup::run_with::<Plain, T>(&device, &info, dtype, task)
    }
}
