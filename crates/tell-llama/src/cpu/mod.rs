//! CPU fast paths for the `flex` backend, used where burn's generic ops are slow for the shapes
//! of a decoder block; every other backend keeps the generic ops.
//!
//! - [`small_matmul_t`]: a linear layer over a few rows (decoding: one per sequence). The `gemm`
//!   crate under `flex` packs the whole weight matrix for every such product, which costs several
//!   times the product itself; here each weight row is read once, straight from the tensor's
//!   storage, for all rows of the batch.
//! - [`small_matmul_q`]: the same product with the weight still in its GGUF blocks (Q4_1, Q8_0),
//!   dequantized in registers on the way in: the same values, a fraction of the bytes to stream.
//! - [`matmul_q`]: the product on the same blocks for any number of rows: [`small_matmul_q`] for
//!   a few, and for many (prefill) panels of weight rows dequantized once into L2: faster than
//!   `gemm` on the f32 weight, and no f32 copy needed.
//! - [`attend`]: attention over the KV cache for any number of new positions, in blocks of query
//!   rows that read only the keys they may see (half the work of a causal prompt), with no
//!   `[heads, seq, len]` scores allocated.
//! - [`rms_norm`], [`rope_split`], [`swiglu`]: the element-wise glue of a block (RMSNorm,
//!   splitting the fused q/k/v product, RoPE, SwiGLU) in one pass each over contiguous memory,
//!   where burn's ops would walk strided views element by element or pay a dispatch and an
//!   allocation per small op.
//!
//! Each function works on plain slices and is checked against burn's ops in the tests.

use std::any::{Any, TypeId};

use burn::tensor::{backend::Backend, DType, Tensor, TensorData, TensorPrimitive};
use burn_flex::FlexTensor;

mod attention;
mod matmul;
mod ops;
mod panel;
mod quant;

pub use attention::attend;
pub use matmul::{small_matmul_q, small_matmul_t, SMALL_ROWS};
pub use ops::{rms_norm, rope_split, swiglu, Heads};
pub use panel::{matmul_q, matmul_q_swiglu};
#[cfg(test)]
pub(crate) use quant::test_blocks;
pub use quant::{QuantKind, QuantRows};

/// Whether this CPU runs the kernels on quantized weights (AVX-512F with VL, and F16C).
pub fn quant_kernels() -> bool {
    #[cfg(target_arch = "x86_64")]
    {
        std::arch::is_x86_feature_detected!("avx512f")
            && std::arch::is_x86_feature_detected!("avx512vl")
            && std::arch::is_x86_feature_detected!("f16c")
    }
    #[cfg(not(target_arch = "x86_64"))]
    false
}

/// Whether `B` is the `flex` backend, whose tensors [`HostF32`] reads.
pub fn is_flex<B: Backend>() -> bool {
    TypeId::of::<B::FloatTensorPrimitive>() == TypeId::of::<FlexTensor>()
}

/// The storage of a contiguous f32 `flex` tensor, shared with it (no copy).
#[derive(Debug, Clone)]
pub struct HostF32 {
    tensor: FlexTensor,
    start: usize,
    end: usize,
}

impl HostF32 {
    /// The tensor's values when it is a contiguous f32 tensor of the `flex` backend, else `None`.
    pub fn of<B: Backend, const D: usize>(t: &Tensor<B, D>) -> Option<Self> {
        let tensor = into_flex(t.clone()).ok()?;
        let (start, end) = tensor.layout().contiguous_offsets()?;
        Some(Self { tensor, start, end })
    }

    /// The values, row-major.
    pub fn values(&self) -> &[f32] {
        &self.tensor.storage::<f32>()[self.start..self.end]
    }
}

/// A tensor holding `values` (on `flex`, the vector becomes its storage without a copy).
pub fn tensor<B: Backend, const D: usize>(
    values: Vec<f32>,
    shape: [usize; D],
    device: &B::Device,
) -> Tensor<B, D> {
    Tensor::from_data(TensorData::new(values, shape), device)
}

/// Applies `f` to the values of `t` in place when `t` is an f32 `flex` tensor (copying them first
/// only if the storage is shared or strided); returns `Err(t)` untouched on other backends.
pub fn update_in_place<B: Backend, const D: usize>(
    t: Tensor<B, D>,
    f: impl FnOnce(&mut [f32]),
) -> Result<Tensor<B, D>, Tensor<B, D>> {
    if !is_flex::<B>() {
        return Err(t);
    }
    let mut flex = into_flex(t)?;
    if flex.layout().contiguous_offsets() != Some((0, flex.layout().num_elements())) {
        flex = flex.to_contiguous();
    }
    let n = flex.layout().num_elements();
    f(&mut flex.storage_mut::<f32>()[..n]);
    let any: Box<dyn Any> = Box::new(flex);
    let p = *any
        .downcast::<B::FloatTensorPrimitive>()
        .expect("B is flex, so its float primitive is a FlexTensor");
    Ok(Tensor::from_primitive(TensorPrimitive::Float(p)))
}

/// The f32 `flex` tensor behind `t`; `t` back when `B` is another backend or `t` is not f32.
fn into_flex<B: Backend, const D: usize>(t: Tensor<B, D>) -> Result<FlexTensor, Tensor<B, D>> {
    if !is_flex::<B>() || t.dtype() != DType::F32 {
        return Err(t);
    }
    match t.into_primitive() {
        TensorPrimitive::Float(p) => {
            let any: Box<dyn Any> = Box::new(p);
            Ok(*any
                .downcast::<FlexTensor>()
                .expect("B is flex, so its float primitive is a FlexTensor"))
        }
        q => Err(Tensor::from_primitive(q)),
    }
}

/// The SIMD flavour the CPU runs the kernels with.
#[derive(Clone, Copy)]
enum Kernel {
    #[cfg(target_arch = "x86_64")]
    Avx512,
    #[cfg(target_arch = "x86_64")]
    Avx2,
    Portable,
}

impl Kernel {
    fn detect() -> Self {
        #[cfg(target_arch = "x86_64")]
        {
            if std::arch::is_x86_feature_detected!("avx512f") {
                return Self::Avx512;
            }
            if std::arch::is_x86_feature_detected!("avx2")
                && std::arch::is_x86_feature_detected!("fma")
            {
                return Self::Avx2;
            }
        }
        Self::Portable
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    pub type F = burn_flex::Flex;

    /// Deterministic values in [-1, 1].
    pub fn values(len: usize, seed: u32) -> Vec<f32> {
        (0..len)
            .map(|i| {
                let h = (i as u32).wrapping_mul(2_654_435_761).wrapping_add(seed) >> 8;
                (h % 2001) as f32 / 1000.0 - 1.0
            })
            .collect()
    }

    #[test]
    fn host_view_shares_flex_storage_and_refuses_views_it_cannot_read() {
        let device = Default::default();
        let t = tensor::<F, 2>(values(12, 3), [3, 4], &device);
        let host = HostF32::of(&t).expect("contiguous flex tensor");
        assert_eq!(host.values(), &values(12, 3)[..]);
        assert!(HostF32::of(&t.clone().swap_dims(0, 1)).is_none());
        let nd = tensor::<crate::NdArrayBackend, 2>(values(12, 3), [3, 4], &Default::default());
        assert!(HostF32::of(&nd).is_none());
    }

    #[test]
    fn update_in_place_writes_flex_tensors_and_returns_others() {
        let device = Default::default();
        let t = tensor::<F, 2>(vec![1.0, 2.0, 3.0, 4.0], [2, 2], &device);
        let shared = t.clone();
        let t = update_in_place(t, |v| v.iter_mut().for_each(|x| *x *= 10.0)).unwrap();
        assert_eq!(
            t.into_data().to_vec::<f32>().unwrap(),
            [10.0, 20.0, 30.0, 40.0]
        );
        // The other handle kept its values (copy on write).
        assert_eq!(
            shared.clone().into_data().to_vec::<f32>().unwrap(),
            [1.0, 2.0, 3.0, 4.0]
        );
        let transposed = update_in_place(shared.swap_dims(0, 1), |v| v[0] = -1.0).unwrap();
        assert_eq!(
            transposed.into_data().to_vec::<f32>().unwrap(),
            [-1.0, 3.0, 2.0, 4.0]
        );
        let nd = tensor::<crate::NdArrayBackend, 1>(vec![1.0], [1], &Default::default());
        assert!(update_in_place(nd, |_| ()).is_err());
    }
}
