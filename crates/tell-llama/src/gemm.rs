//! The matrix products of the generic (device) path, in one seam: on burn-cuda they go to cuBLAS
//! (`crate::cuda`, built with the `cuda` feature), on every other backend to burn's `matmul`.
//! The `flex` CPU path has its own kernels (`crate::cpu`) and does not come here.

use burn::tensor::{backend::Backend, get_device_settings, DType, Tensor};

/// `a @ b` over the last two dimensions (the leading ones are batch dimensions, equal in both),
/// returned as `out`. On CUDA the product accumulates in f32 whatever the inputs (bf16, f16, or
/// f32 without TF32) and is written in `out` directly: bf16 inputs can give f32 scores without a
/// bf16 rounding in between. Elsewhere it is burn's `matmul` followed by a cast (none for f32).
pub fn matmul<B: Backend, const D: usize>(
    a: Tensor<B, D>,
    b: Tensor<B, D>,
    out: DType,
) -> Tensor<B, D> {
    #[cfg(feature = "cuda")]
    let (a, b) = match crate::cuda::matmul(a, b, out) {
        Ok(product) => return product,
        Err(inputs) => inputs,
    };
    a.matmul(b).cast(out)
}

/// Whether `B` is a CUDA backend of this build (burn-cuda, fused or not).
pub fn is_cuda<B: Backend>() -> bool {
    #[cfg(feature = "cuda")]
    {
        crate::cuda::is_cuda::<B>()
    }
    #[cfg(not(feature = "cuda"))]
    {
        false
    }
}

/// The float type a model on `device` holds its weights and activations in: f32 on `flex` (its
/// kernels read f32), else the device's default float type, which [`crate::run_on`] sets from
/// `--compute-dtype` (f32 unless set).
pub fn model_dtype<B: Backend>(device: &B::Device) -> DType {
    if crate::cpu::is_flex::<B>() {
        return DType::F32;
    }
    get_device_settings::<B>(device).float_dtype.into()
}
