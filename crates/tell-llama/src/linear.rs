//! A bias-free linear map, its weight held in the form each backend multiplies fastest.

use burn::tensor::{backend::Backend, DType, Tensor, TensorData};

use crate::cpu::{self, HostF32};
use crate::error::Result;
use crate::gemm;
use crate::weights::TensorSource;

/// A bias-free linear map.
#[derive(Debug, Clone)]
pub struct Linear<B: Backend> {
    weight: Weight<B>,
    d_out: usize,
}

/// How a [`Linear`] holds its weight.
#[derive(Debug, Clone)]
enum Weight<B: Backend> {
    /// On `flex`: Hugging Face's `[out, in]` layout. Products of a few rows (decoding) stream it
    /// with [`cpu::small_matmul_t`] through `host` (its storage, shared, not a copy); larger ones
    /// hand `gemm` its transposed view (`gemm` packs it either way).
    Host { weight: Tensor<B, 2>, host: HostF32 },
    /// On other backends: `[in, out]`, so that `x @ w` needs no transposed view (burn-ndarray
    /// would copy one in every product).
    Device(Tensor<B, 2>),
    /// On CUDA: Hugging Face's `[out, in]` in the model's float type (bf16 by default), uploaded
    /// as read from the checkpoint; the product goes to cuBLAS ([`gemm::matmul`]) against its
    /// transposed view, which cuBLAS reads as it is (a flipped operation, no copy).
    OutIn(Tensor<B, 2>),
    /// On `flex` with the quantized kernels (AVX-512), for a GGUF weight stored in blocks
    /// ([`cpu::QuantKind`]): the blocks alone, read by [`cpu::matmul_q`] with results
    /// bit-identical to the f32 kernel on the dequantized weight, at the file's size in memory
    /// instead of four bytes per value. Stacked parts of different types (K-quant files
    /// store v or down in Q6_K beside Q4_K) stay separate products whose columns are joined.
    Quant(Vec<cpu::QuantRows>),
}

impl<B: Backend> Linear<B> {
    /// Loads HF `[out, in]` weights named `names` and stacks them along the output dimension, so
    /// that q/k/v (or gate/up) become one matrix product.
    pub fn load_fused(
        w: &dyn TensorSource,
        names: &[(String, usize)],
        d_in: usize,
        device: &B::Device,
    ) -> Result<Self> {
        Self::load_fused_as(w, names, d_in, device, gemm::model_dtype::<B>(device))
    }

    /// [`Self::load_fused`] with the weights held as `dtype` where the backend holds them in the
    /// model's float type (CUDA); `flex` and the other CPU backends hold f32 whatever `dtype`.
    pub fn load_fused_as(
        w: &dyn TensorSource,
        names: &[(String, usize)],
        d_in: usize,
        device: &B::Device,
        dtype: DType,
    ) -> Result<Self> {
        let d_out: usize = names.iter().map(|(_, o)| o).sum();
        if gemm::is_cuda::<B>() {
            // Read and uploaded part by part in `dtype`: no f32 copy of a half checkpoint.
            let mut parts = Vec::with_capacity(names.len());
            for (name, out) in names {
                parts.push(w.read_data(name, &[*out, d_in], dtype)?);
            }
            let data = stack_rows(parts, [d_out, d_in], dtype);
            return Ok(Self {
                weight: Weight::OutIn(Tensor::from_data(data, (device, dtype))),
                d_out,
            });
        }
        if cpu::is_flex::<B>() && cpu::quant_kernels() {
            let mut parts = Vec::with_capacity(names.len());
            for (name, out) in names {
                match w.read_quantized(name, &[*out, d_in])? {
                    Some(q) => parts.push(q),
                    None => break,
                }
            }
            if parts.len() == names.len() {
                // Neighbouring parts of one type become one product.
                let mut groups: Vec<Vec<cpu::QuantRows>> = Vec::new();
                for q in parts {
                    match groups.last_mut() {
                        Some(g) if g[0].kind() == q.kind() => g.push(q),
                        _ => groups.push(vec![q]),
                    }
                }
                let joined: Option<Vec<_>> =
                    groups.iter().map(|g| cpu::QuantRows::concat(g)).collect();
                if let Some(joined) = joined {
                    let rows: usize = joined.iter().map(|q| q.rows()).sum();
                    if rows == d_out && joined.iter().all(|q| q.cols() == d_in) {
                        return Ok(Self {
                            weight: Weight::Quant(joined),
                            d_out,
                        });
                    }
                }
            }
        }
        let mut data = Vec::with_capacity(d_in * d_out);
        for (name, out) in names {
            data.extend_from_slice(&w.read_f32(name, &[*out, d_in])?);
        }
        Ok(Self::from_out_in(data, d_out, d_in, device))
    }

    /// The same map with its weight replaced by `quant`, the same `[out, in]` values in GGUF
    /// blocks, where the quantized kernels run (`flex`, AVX-512); otherwise, or with another
    /// shape, the map is unchanged.
    pub fn with_quantized(self, quant: Option<cpu::QuantRows>) -> Self {
        let Weight::Host { weight, .. } = &self.weight else {
            return self;
        };
        let [d_out, d_in] = weight.dims();
        match quant {
            Some(q) if cpu::quant_kernels() && (q.rows(), q.cols()) == (d_out, d_in) => Self {
                weight: Weight::Quant(vec![q]),
                d_out,
            },
            _ => self,
        }
    }

    /// The map whose `[out, in]` weight is `quant` alone (a tied head reading the embedding's
    /// rows as held); only where the quantized kernels run (`flex`, AVX-512).
    pub fn from_quantized(quant: cpu::QuantRows) -> Self {
        Self {
            d_out: quant.rows(),
            weight: Weight::Quant(vec![quant]),
        }
    }

    /// Builds the map from HF-layout `[out, in]` values.
    pub fn from_out_in(values: Vec<f32>, d_out: usize, d_in: usize, device: &B::Device) -> Self {
        if cpu::is_flex::<B>() {
            return Self::from_out_in_tensor(Tensor::from_data(
                TensorData::new(values, [d_out, d_in]),
                device,
            ));
        }
        let mut data = vec![0f32; d_in * d_out];
        transpose_into(&mut data, d_out, &values, d_in);
        Self {
            weight: Weight::Device(Tensor::from_data(
                TensorData::new(data, [d_in, d_out]),
                device,
            )),
            d_out,
        }
    }

    /// The map whose `[out, in]` weight is `weight` (a tied LM head is the token embedding): on
    /// `flex` it shares the tensor's storage; elsewhere the transposed weight is a new tensor.
    pub fn from_out_in_tensor(weight: Tensor<B, 2>) -> Self {
        let [d_out, d_in] = weight.dims();
        if gemm::is_cuda::<B>() {
            return Self {
                weight: Weight::OutIn(weight),
                d_out,
            };
        }
        if let Some(host) = HostF32::of(&weight) {
            return Self {
                weight: Weight::Host { weight, host },
                d_out,
            };
        }
        let device = weight.device();
        let values = weight.into_data().convert::<f32>();
        let values = values.as_slice::<f32>().expect("f32 weights");
        let mut data = vec![0f32; d_in * d_out];
        transpose_into(&mut data, d_out, values, d_in);
        Self {
            weight: Weight::Device(Tensor::from_data(
                TensorData::new(data, [d_in, d_out]),
                &device,
            )),
            d_out,
        }
    }

    /// Whether the weight is held as quantized blocks (no f32 copy).
    pub fn is_quantized(&self) -> bool {
        matches!(self.weight, Weight::Quant(_))
    }

    /// `swiglu(x @ w)` over `[batch, seq, in]` for a fused gate/up map (`out` = gate rows, then
    /// up rows): `[batch, seq, out / 2]`, the same bits as [`Self::forward`] then
    /// [`cpu::swiglu`]. `Err(x)` where the fused kernel does not apply (not one block of
    /// quantized rows on the host, or rows few enough for the decoding kernels).
    pub fn forward_swiglu(&self, x: Tensor<B, 3>) -> Result<Tensor<B, 3>, Tensor<B, 3>> {
        let [b, t, _] = x.dims();
        let (Weight::Quant(parts), Some(host)) = (&self.weight, HostF32::of(&x)) else {
            return Err(x);
        };
        let [q] = parts.as_slice() else {
            return Err(x);
        };
        match cpu::matmul_q_swiglu(host.values(), b * t, q) {
            Some(y) => Ok(cpu::tensor(y, [b, t, self.d_out / 2], &x.device())),
            None => Err(x),
        }
    }

    /// `x @ w` over `[batch, seq, in]`.
    pub fn forward(&self, x: Tensor<B, 3>) -> Tensor<B, 3> {
        let [b, t, d] = x.dims();
        let (m, out) = (b * t, self.d_out);
        // The product on the host values of `x`, as a `[b, t, out]` tensor.
        let on_host = |x: Tensor<B, 3>, product: &dyn Fn(&[f32]) -> Vec<f32>| {
            let device = x.device();
            let y = match HostF32::of(&x) {
                Some(x) => product(x.values()),
                None => {
                    let x = x.into_data().convert::<f32>();
                    product(x.as_slice::<f32>().expect("f32 activations"))
                }
            };
            cpu::tensor(y, [b, t, out], &device)
        };
        match &self.weight {
            Weight::Quant(parts) => on_host(x, &|x| {
                let product = |q: &cpu::QuantRows| {
                    cpu::matmul_q(x, m, q)
                        .expect("quantized weights are kept only where their kernels run")
                };
                if let [q] = parts.as_slice() {
                    return product(q);
                }
                // Each part's `[m, rows]` into its columns of `[m, out]`.
                let mut y = vec![0f32; m * out];
                let mut col = 0;
                for q in parts {
                    let part = product(q);
                    for (dst, src) in y.chunks_exact_mut(out).zip(part.chunks_exact(q.rows())) {
                        dst[col..col + q.rows()].copy_from_slice(src);
                    }
                    col += q.rows();
                }
                y
            }),
            Weight::Host { host, .. } if m <= cpu::SMALL_ROWS => {
                on_host(x, &|x| cpu::small_matmul_t(x, m, d, host.values(), out))
            }
            Weight::Host { weight, .. } => x
                .reshape([m, d])
                .matmul(weight.clone().transpose())
                .reshape([b, t, out]),
            Weight::Device(weight) => x
                .reshape([m, d])
                .matmul(weight.clone())
                .reshape([b, t, out]),
            Weight::OutIn(weight) => {
                let dtype = weight.dtype();
                let x = x.reshape([m, d]).cast(dtype);
                gemm::matmul(x, weight.clone().transpose(), dtype).reshape([b, t, out])
            }
        }
    }
}

/// Parts of a weight, each `[rows_i, cols]` in `dtype`, stacked into one `[rows, cols]`.
fn stack_rows(mut parts: Vec<TensorData>, shape: [usize; 2], dtype: DType) -> TensorData {
    if parts.len() == 1 {
        return parts.pop().expect("one part");
    }
    fn join<T: burn::tensor::Element>(parts: Vec<TensorData>, shape: [usize; 2]) -> TensorData {
        let mut all: Vec<T> = Vec::with_capacity(shape[0] * shape[1]);
        for part in parts {
            all.extend(
                part.into_vec::<T>()
                    .expect("parts are read in the requested dtype"),
            );
        }
        TensorData::new(all, shape)
    }
    match dtype {
        DType::BF16 => join::<burn::tensor::bf16>(parts, shape),
        DType::F16 => join::<burn::tensor::f16>(parts, shape),
        _ => join::<f32>(parts, shape),
    }
}

/// Writes `src` (`[d_out, d_in]`, HF `[out, in]`) transposed into `dst` (`[d_in, d_out]`).
fn transpose_into(dst: &mut [f32], d_out: usize, src: &[f32], d_in: usize) {
    for (o, row) in src.chunks_exact(d_in).enumerate() {
        for (i, v) in row.iter().enumerate() {
            dst[i * d_out + o] = *v;
        }
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;
    use std::path::PathBuf;

    use super::*;
    use crate::cpu::{test_blocks, QuantKind, QuantRows};
    use crate::error::Error;
    use crate::weights::TensorMeta;

    type F = burn_flex::Flex;

    /// Tensors in memory: every one as f32, some also as blocks of the same values.
    struct Source {
        values: HashMap<String, Vec<f32>>,
        blocks: HashMap<String, QuantRows>,
    }

    impl Source {
        /// Parts `(name, rows, kind, with blocks)`, `k` values per row.
        fn new(parts: &[(&str, usize, QuantKind, bool)], k: usize) -> Self {
            let (mut values, mut blocks) = (HashMap::new(), HashMap::new());
            for &(name, rows, kind, quantized) in parts {
                let n = rows * k / kind.dtype().block_geometry().0;
                let bytes = test_blocks(kind, n);
                let f = tell_gguf::dequantize(kind.dtype(), &bytes, (rows * k) as u64, name);
                values.insert(name.to_string(), f.unwrap());
                if quantized {
                    let q = QuantRows::new(kind, rows, k, bytes).unwrap();
                    blocks.insert(name.to_string(), q);
                }
            }
            Self { values, blocks }
        }
    }

    impl TensorSource for Source {
        fn read_f32(&self, name: &str, _shape: &[usize]) -> Result<Vec<f32>> {
            self.values
                .get(name)
                .cloned()
                .ok_or_else(|| Error::Input(format!("no tensor {name}")))
        }
        fn read_quantized(&self, name: &str, _shape: &[usize]) -> Result<Option<QuantRows>> {
            Ok(self.blocks.get(name).cloned())
        }
        fn describe(&self) -> Vec<(String, TensorMeta)> {
            Vec::new()
        }
        fn files(&self) -> Vec<PathBuf> {
            Vec::new()
        }
    }

    fn forward(linear: &Linear<F>, b: usize, t: usize, k: usize) -> Vec<f32> {
        let x = crate::cpu::tests::values(b * t * k, 12);
        let x = Tensor::<F, 3>::from_data(TensorData::new(x, [b, t, k]), &Default::default());
        linear.forward(x).into_data().to_vec::<f32>().unwrap()
    }

    #[test]
    fn blocks_replace_the_f32_weight_with_the_same_results() {
        use QuantKind::{Q4_1, Q4_K, Q6_K};
        let names = [
            ("a".to_string(), 40),
            ("b".to_string(), 24),
            ("c".to_string(), 8),
        ];
        let device = Default::default();
        // One type throughout, and a K-quant mix (q/k in Q4_K, v in Q6_K).
        for (kinds, k) in [([Q4_1; 3], 64), ([Q4_K, Q4_K, Q6_K], 256)] {
            let parts = |with: [bool; 3]| -> Vec<(&str, usize, QuantKind, bool)> {
                (0..3)
                    .map(|i| (["a", "b", "c"][i], names[i].1, kinds[i], with[i]))
                    .collect()
            };
            let all = Source::new(&parts([true; 3]), k);
            let quant = Linear::<F>::load_fused(&all, &names, k, &device).unwrap();
            // One part without blocks: the whole map keeps f32.
            let some = Source::new(&parts([true, true, false]), k);
            let f32s = Linear::<F>::load_fused(&some, &names, k, &device).unwrap();
            assert!(!f32s.is_quantized());
            if !cpu::quant_kernels() {
                assert!(!quant.is_quantized(), "no kernels, no blocks");
                return;
            }
            assert!(quant.is_quantized());
            // Decoding-sized and panel-sized products: the bits of the f32 kernel.
            for (b, t) in [(1, 1), (1, 3), (2, 10)] {
                assert_eq!(
                    forward(&quant, b, t, k),
                    forward(&f32s, b, t, k),
                    "{b} x {t}"
                );
            }
            // Past `SMALL_ROWS` the f32 map hands the product to `gemm`, which sums in its own
            // order.
            let (q, f) = (forward(&quant, 4, 20, k), forward(&f32s, 4, 20, k));
            for (x, y) in q.iter().zip(&f) {
                assert!((x - y).abs() <= 1e-4 * (1.0 + y.abs()), "{x} vs {y}");
            }
        }
        let k = 64;
        let both = Source::new(&[("a", 40, Q4_1, true), ("b", 24, Q4_1, true)], k);
        // A tied head: blocks of the right shape replace the embedding's storage, others do not.
        let embed =
            Tensor::<F, 2>::from_data(TensorData::new(both.values["a"].clone(), [40, k]), &device);
        let head = Linear::from_out_in_tensor(embed.clone());
        assert!(head
            .clone()
            .with_quantized(both.blocks.get("a").cloned())
            .is_quantized());
        assert!(!head
            .with_quantized(both.blocks.get("b").cloned())
            .is_quantized());
    }
}
