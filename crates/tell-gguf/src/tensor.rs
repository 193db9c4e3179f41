//! Tensor infos: ggml element types with their block geometry, and one tensor's name, shape,
//! type and place in the data section.

use crate::error::{GgufError, Result};

/// ggml supports at most four dimensions; more in a file means corruption.
pub const MAX_DIMS: u32 = 4;

/// The ggml tensor element types (ids as in ggml.h). All are known so that any file's tensor
/// sizes can be computed; only some can be dequantized (see [`GgmlType::can_dequantize`]).
#[allow(non_camel_case_types, missing_docs)]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum GgmlType {
    F32,
    F16,
    Q4_0,
    Q4_1,
    Q5_0,
    Q5_1,
    Q8_0,
    Q8_1,
    Q2_K,
    Q3_K,
    Q4_K,
    Q5_K,
    Q6_K,
    Q8_K,
    IQ2_XXS,
    IQ2_XS,
    IQ3_XXS,
    IQ1_S,
    IQ4_NL,
    IQ3_S,
    IQ2_S,
    IQ4_XS,
    I8,
    I16,
    I32,
    I64,
    F64,
    IQ1_M,
    BF16,
    TQ1_0,
    TQ2_0,
    MXFP4,
}

/// Elements per super-block of the K-quants.
pub const QK_K: usize = 256;

impl GgmlType {
    /// Map a type id from the file; `None` for ids this reader does not know.
    pub fn from_id(id: u32) -> Option<Self> {
        use GgmlType::*;
        Some(match id {
            0 => F32,
            1 => F16,
            2 => Q4_0,
            3 => Q4_1,
            6 => Q5_0,
            7 => Q5_1,
            8 => Q8_0,
            9 => Q8_1,
            10 => Q2_K,
            11 => Q3_K,
            12 => Q4_K,
            13 => Q5_K,
            14 => Q6_K,
            15 => Q8_K,
            16 => IQ2_XXS,
            17 => IQ2_XS,
            18 => IQ3_XXS,
            19 => IQ1_S,
            20 => IQ4_NL,
            21 => IQ3_S,
            22 => IQ2_S,
            23 => IQ4_XS,
            24 => I8,
            25 => I16,
            26 => I32,
            27 => I64,
            28 => F64,
            29 => IQ1_M,
            30 => BF16,
            34 => TQ1_0,
            35 => TQ2_0,
            39 => MXFP4,
            _ => return None,
        })
    }

    /// (elements per block, bytes per block), as in ggml's type traits.
    pub fn block_geometry(self) -> (usize, usize) {
        use GgmlType::*;
        match self {
            F32 | I32 => (1, 4),
            F16 | BF16 | I16 => (1, 2),
            I8 => (1, 1),
            I64 | F64 => (1, 8),
            Q4_0 => (32, 2 + 16),
            Q4_1 => (32, 2 + 2 + 16),
            Q5_0 => (32, 2 + 4 + 16),
            Q5_1 => (32, 2 + 2 + 4 + 16),
            Q8_0 => (32, 2 + 32),
            Q8_1 => (32, 4 + 4 + 32),
            IQ4_NL => (32, 2 + 16),
            MXFP4 => (32, 1 + 16),
            Q2_K => (QK_K, 2 + 2 + QK_K / 16 + QK_K / 4),
            Q3_K => (QK_K, 2 + QK_K / 4 + QK_K / 8 + 12),
            Q4_K => (QK_K, 2 + 2 + QK_K / 2 + 12),
            Q5_K => (QK_K, 2 + 2 + QK_K / 2 + QK_K / 8 + 12),
            Q6_K => (QK_K, 2 + QK_K / 2 + QK_K / 4 + QK_K / 16),
            Q8_K => (QK_K, 4 + QK_K + QK_K / 8),
            IQ2_XXS => (QK_K, 2 + QK_K / 4),
            IQ2_XS => (QK_K, 2 + QK_K / 4 + QK_K / 32),
            IQ3_XXS => (QK_K, 2 + QK_K / 4 + QK_K / 8),
            IQ1_S => (QK_K, 2 + QK_K / 8 + QK_K / 16),
            IQ3_S => (QK_K, 2 + QK_K / 4 + QK_K / 8 + QK_K / 32 + 4),
            IQ2_S => (QK_K, 2 + QK_K / 4 + QK_K / 16),
            IQ4_XS => (QK_K, 2 + 2 + QK_K / 2 + QK_K / 64),
            IQ1_M => (QK_K, QK_K / 8 + QK_K / 16 + QK_K / 32),
            TQ1_0 => (QK_K, 2 + 4 * 13),
            TQ2_0 => (QK_K, 2 + 64),
        }
    }

    /// True for the types [`crate::dequantize`] converts to f32.
    pub fn can_dequantize(self) -> bool {
        use GgmlType::*;
        matches!(
            self,
            F32 | F16 | BF16 | Q8_0 | Q4_0 | Q4_1 | Q5_0 | Q5_1 | Q4_K | Q6_K
        )
    }

    /// Bytes needed for `n_elements` of this type; `None` when `n_elements` is not a whole
    /// number of blocks or the size overflows.
    pub fn bytes_for(self, n_elements: u64) -> Option<u64> {
        let (block, size) = self.block_geometry();
        if !n_elements.is_multiple_of(block as u64) {
            return None;
        }
        (n_elements / block as u64).checked_mul(size as u64)
    }
}

/// One tensor's description from the file header.
///
/// `dims` are in ggml order, **innermost first**: `dims[0]` is the length of a row (the
/// fastest-varying index). A GGUF matrix with `dims == [in, out]` is therefore the HF/PyTorch
/// matrix of shape `[out, in]` stored row-major; [`TensorInfo::shape_hf`] gives that order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TensorInfo {
    /// Tensor name as stored (e.g. `blk.0.attn_q.weight`).
    pub name: String,
    /// Dimensions, innermost first (ggml `ne` order).
    pub dims: Vec<u64>,
    /// Element type.
    pub dtype: GgmlType,
    /// Offset of the first byte relative to the start of the data section.
    pub offset: u64,
    /// Total number of elements (product of `dims`; checked not to overflow).
    pub n_elements: u64,
    /// Size of the tensor's data in bytes.
    pub n_bytes: u64,
}

impl TensorInfo {
    /// Build and validate an info: non-zero dims whose product does not overflow, and a row
    /// length that is a whole number of blocks (ggml quantizes row by row).
    pub(crate) fn new(name: String, dims: Vec<u64>, dtype: GgmlType, offset: u64) -> Result<Self> {
        let bad = |reason| GgufError::BadShape {
            tensor: name.clone(),
            dims: dims.clone(),
            reason,
        };
        let mut n: u64 = 1;
        // A zero dim would let the others be anything (the product stays 0) and hand callers
        // absurd shapes; no real model stores empty tensors.
        if dims.contains(&0) {
            return Err(bad("a dimension is zero"));
        }
        for &d in &dims {
            n = n
                .checked_mul(d)
                .ok_or_else(|| bad("element count overflows u64"))?;
        }
        let (block, _) = dtype.block_geometry();
        let row = dims.first().copied().unwrap_or(1);
        if !row.is_multiple_of(block as u64) {
            return Err(bad(
                "row length (dims[0]) is not a multiple of the type's block size",
            ));
        }
        let n_bytes = dtype
            .bytes_for(n)
            .ok_or_else(|| bad("byte size overflows u64"))?;
        Ok(Self {
            name,
            dims,
            dtype,
            offset,
            n_elements: n,
            n_bytes,
        })
    }

    /// The shape in HF/PyTorch order (outermost first): `dims` reversed, as `usize`.
    pub fn shape_hf(&self) -> Vec<usize> {
        // Every dim is <= n_elements <= data bytes * 256, which fits usize once the tensor's
        // bytes were checked to lie inside the mapped file.
        self.dims.iter().rev().map(|&d| d as usize).collect()
    }
}
