//! The cuBLAS product on burn-cuda tensors: their own device memory, cubecl's own stream, no copy
//! unless a layout cannot be read as it is, no synchronisation.
//!
//! Ordering: cubecl gives each GPU a server that owns its CUDA streams; kernel launches are tasks
//! queued to it. The product is queued there too ([`DeviceHandle::submit`]) and enqueued on the
//! stream of the calling stream id ([`Server::raw_stream`], added to cubecl-cuda in
//! `vendor/cubecl-cuda`), so it runs after the kernels that produce its inputs and before those
//! that read its output. Inputs are read through `get_resource`, which also orders them after
//! work of other streams that wrote them. Errors cannot be returned through burn's operation (it
//! has already returned its output): they are recorded, the output is filled with NaN, and
//! [`super::check`] reports them at the next forward pass or when the command ends.

use std::cell::RefCell;
use std::collections::HashMap;
use std::sync::Mutex;

use burn::tensor::DType;
use burn_cubecl::kernel::into_contiguous;
use burn_cubecl::ops::numeric::empty_device_contiguous_dtype;
use burn_cubecl::tensor::CubeTensor;
use cubecl::cuda::{CudaDevice, CudaRuntime};
use cubecl::device::Device as _;
use cubecl::device_handle::DeviceHandle;
use cubecl::server::{ComputeServer, Handle};
use cubecl::stream_id::StreamId;
use cudarc::cublas::result as cublas;
use cudarc::cublas::sys::{
    cublasComputeType_t, cublasGemmAlgo_t, cublasHandle_t, cublasMath_t, cublasOperation_t,
    cudaDataType,
};
use cudarc::driver::sys::CUstream;

/// cubecl's CUDA server (the vendored one, with `raw_stream`).
type Server = <CudaRuntime as cubecl::Runtime>::Server;

/// How one operand `[batch.., rows, cols]` lies in memory, as cuBLAS reads it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Operand {
    /// Matrices in the batch (the leading dimensions merged).
    pub batch: usize,
    pub rows: usize,
    pub cols: usize,
    /// Elements between consecutive rows (row-major) or columns (transposed).
    pub ld: usize,
    /// Elements between consecutive matrices of the batch.
    pub batch_stride: usize,
    /// Stored column by column: a transposed view of a row-major matrix.
    pub transposed: bool,
}

impl Operand {
    /// The layout of a tensor of `shape` with `strides` (in elements), if cuBLAS can read it
    /// without a copy: each matrix row-major or transposed with a leading dimension at least its
    /// width (cubecl pitches rows, so it may be larger), and the batch dimensions one stride.
    pub fn of(shape: &[usize], strides: &[usize]) -> Option<Self> {
        let r = shape.len();
        if r < 2 || strides.len() != r {
            return None;
        }
        let (rows, cols) = (shape[r - 2], shape[r - 1]);
        // The stride of a dimension of size 1 is never used: give it the value that fits.
        let sc = if cols == 1 { 1 } else { strides[r - 1] };
        let sr = if rows == 1 {
            cols.max(1)
        } else {
            strides[r - 2]
        };
        let (ld, transposed) = if sc == 1 && sr >= cols.max(1) {
            (sr, false)
        } else if sr == 1 && sc >= rows.max(1) {
            (sc, true)
        } else {
            return None;
        };
        // Batch dimensions of size > 1 must nest: each one's stride is the inner one's stride
        // times its size, so that the batch is one run of equally spaced matrices.
        let mut batch = 1;
        let mut batch_stride = None;
        let mut next = 0;
        for i in (0..r - 2).rev() {
            if shape[i] == 1 {
                continue;
            }
            match batch_stride {
                None => batch_stride = Some(strides[i]),
                Some(_) if strides[i] != next => return None,
                Some(_) => {}
            }
            batch *= shape[i];
            next = strides[i] * shape[i];
        }
        Some(Self {
            batch,
            rows,
            cols,
            ld,
            batch_stride: batch_stride.unwrap_or(rows * cols),
            transposed,
        })
    }
}

/// One product `C[batch, m, n] = A[batch, m, k] B[batch, k, n]`, all row-major as burn sees them.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Gemm {
    pub a: Operand,
    pub b: Operand,
    pub input: DType,
    pub output: DType,
}

impl Gemm {
    /// The product of two operands, if cuBLAS computes it for these types (A and B of one type;
    /// C of that type or f32; f32 inputs give f32 only).
    pub fn new(a: Operand, b: Operand, input: DType, output: DType) -> Option<Self> {
        let types_ok = matches!(
            (input, output),
            (DType::BF16, DType::BF16 | DType::F32)
                | (DType::F16, DType::F16 | DType::F32)
                | (DType::F32, DType::F32)
        );
        let fits = [a.batch, a.rows, a.cols, b.cols, a.ld, b.ld]
            .iter()
            .all(|&x| x <= i32::MAX as usize);
        (types_ok && fits && a.batch == b.batch && a.cols == b.rows).then_some(Self {
            a,
            b,
            input,
            output,
        })
    }

    /// The cuBLAS call on device pointers, on the handle's stream.
    ///
    /// Row-major `C = A B` is column-major `C^T = B^T A^T`: cuBLAS's first operand is our B (a
    /// row-major `[k, n]` read column-major is `B^T`, so `OP_N`; a transposed view is `B` itself,
    /// so `OP_T`), its second our A, and C comes out row-major with `ldc = n`.
    ///
    /// # Safety
    /// The pointers must be device memory of this context holding the operands as described,
    /// and `handle` a live cuBLAS handle of this thread.
    unsafe fn call(
        &self,
        handle: cublasHandle_t,
        a: u64,
        b: u64,
        c: u64,
    ) -> Result<(), cublas::CublasError> {
        let (m, n, k) = (self.a.rows, self.b.cols, self.a.cols);
        let op = |t: bool| {
            if t {
                cublasOperation_t::CUBLAS_OP_T
            } else {
                cublasOperation_t::CUBLAS_OP_N
            }
        };
        let ty = |d: DType| match d {
            DType::BF16 => cudaDataType::CUDA_R_16BF,
            DType::F16 => cudaDataType::CUDA_R_16F,
            _ => cudaDataType::CUDA_R_32F,
        };
        // f32 products without TF32 (or any reduced-precision path): exact parity with f32
        // references. Half inputs accumulate in f32 on the tensor cores.
        let compute = if self.input == DType::F32 {
            cublasComputeType_t::CUBLAS_COMPUTE_32F_PEDANTIC
        } else {
            cublasComputeType_t::CUBLAS_COMPUTE_32F
        };
        let (alpha, beta) = (1f32, 0f32);
        let alpha = &alpha as *const f32 as *const std::ffi::c_void;
        let beta = &beta as *const f32 as *const std::ffi::c_void;
        let (a, b) = (a as *const std::ffi::c_void, b as *const std::ffi::c_void);
        let c = c as *mut std::ffi::c_void;
        let algo = cublasGemmAlgo_t::CUBLAS_GEMM_DEFAULT;
        if self.a.batch == 1 {
            unsafe {
                cublas::gemm_ex(
                    handle,
                    op(self.b.transposed),
                    op(self.a.transposed),
                    n as i32,
                    m as i32,
                    k as i32,
                    alpha,
                    b,
                    ty(self.input),
                    self.b.ld as i32,
                    a,
                    ty(self.input),
                    self.a.ld as i32,
                    beta,
                    c,
                    ty(self.output),
                    n as i32,
                    compute,
                    algo,
                )
            }
        } else {
            unsafe {
                cublas::gemm_strided_batched_ex(
                    handle,
                    op(self.b.transposed),
                    op(self.a.transposed),
                    n as i32,
                    m as i32,
                    k as i32,
                    alpha,
                    b,
                    ty(self.input),
                    self.b.ld as i32,
                    self.b.batch_stride as i64,
                    a,
                    ty(self.input),
                    self.a.ld as i32,
                    self.a.batch_stride as i64,
                    beta,
                    c,
                    ty(self.output),
                    n as i32,
                    (m * n) as i64,
                    self.a.batch as i32,
                    compute,
                    algo,
                )
            }
        }
    }

    /// Bytes of the output.
    fn output_bytes(&self) -> usize {
        self.a.batch * self.a.rows * self.b.cols * self.output.size()
    }
}

/// The operand layout of a tensor, copied to a contiguous one first if cuBLAS cannot read it.
fn readable(t: CubeTensor<CudaRuntime>) -> (CubeTensor<CudaRuntime>, Operand) {
    if let Some(op) = Operand::of(&t.meta.shape, &t.meta.strides) {
        return (t, op);
    }
    let t = into_contiguous(t);
    let op = Operand::of(&t.meta.shape, &t.meta.strides)
        .expect("a contiguous tensor is a row-major batch");
    (t, op)
}

/// `a @ b` (`[.., m, k]` by `[.., k, n]`, equal leading dimensions, one float type) as a new
/// contiguous `[.., m, n]` tensor of type `output`, computed by cuBLAS in order on the calling
/// stream id's CUDA stream. The caller has checked shapes and types ([`Gemm::new`] on the
/// shapes); a product cuBLAS refuses is recorded and its output filled with NaN.
pub(crate) fn product(
    a: CubeTensor<CudaRuntime>,
    b: CubeTensor<CudaRuntime>,
    output: DType,
) -> CubeTensor<CudaRuntime> {
    let (a, la) = readable(a);
    let (b, lb) = readable(b);
    let mut shape = a.meta.shape.to_vec();
    let r = shape.len();
    shape[r - 1] = lb.cols;
    let c = empty_device_contiguous_dtype(
        a.client.clone(),
        a.device.clone(),
        shape.clone().into(),
        output,
    );
    let Some(gemm) = Gemm::new(la, lb, a.dtype, output) else {
        record(format!(
            "cuBLAS cannot compute {:?} x {:?} ({:?} -> {output:?})",
            a.meta.shape, b.meta.shape, a.dtype
        ));
        return c;
    };
    let stream = StreamId::current();
    // Inputs made on another stream id's pool: the server orders the product after their
    // writers, but their memory may be reused by that stream once their handles drop, so the
    // task waits for the product before it lets them go (rare: one thread drives the model).
    let foreign = a.handle.stream != stream || b.handle.stream != stream;
    let handles = [a.handle.clone(), b.handle.clone(), c.handle.clone()];
    server(&a.device).submit(move |server: &mut Server| {
        if let Err(e) = run(server, stream, &gemm, handles, foreign) {
            record(e);
        }
    });
    c
}

/// The server of a GPU (its queue of tasks).
fn server(device: &CudaDevice) -> DeviceHandle<Server> {
    DeviceHandle::<Server>::new(device.to_id())
}

/// On the server: the operands' memory, the stream, the call.
fn run(
    server: &mut Server,
    stream_id: StreamId,
    gemm: &Gemm,
    [a, b, c]: [Handle; 3],
    foreign: bool,
) -> Result<(), String> {
    let resource = |server: &mut Server, h: Handle| {
        server
            .get_resource(h.binding(), stream_id)
            .map_err(|e| format!("cuBLAS product: the operands' memory: {e:?}"))
    };
    let (ra, rb, rc) = (
        resource(server, a)?,
        resource(server, b)?,
        resource(server, c)?,
    );
    let stream = server
        .raw_stream(stream_id)
        .map_err(|e| format!("cuBLAS product: the CUDA stream: {e:?}"))?;
    let (pa, pb, pc) = (ra.resource().ptr, rb.resource().ptr, rc.resource().ptr);
    let called = handle_for(stream).and_then(|h| unsafe { gemm.call(h, pa, pb, pc) });
    if let Err(e) = called {
        // The output is read by later kernels as if it were right: make it visibly wrong.
        unsafe {
            let _ = cudarc::driver::result::memset_d8_async(pc, 0xFF, gemm.output_bytes(), stream);
        }
        return Err(format!(
            "cuBLAS product {}x[{}x{}]@[{}x{}] ({:?} -> {:?}) failed: {e}",
            gemm.a.batch,
            gemm.a.rows,
            gemm.a.cols,
            gemm.b.rows,
            gemm.b.cols,
            gemm.input,
            gemm.output
        ));
    }
    if foreign {
        unsafe { cudarc::driver::result::stream::synchronize(stream) }
            .map_err(|e| format!("cuBLAS product: waiting for the stream: {e}"))?;
    }
    Ok(())
}

thread_local! {
    /// cuBLAS handles of this thread (the server's), one per CUDA stream: handles are not
    /// thread-safe, and each is bound to its stream once. They live as long as the process.
    static HANDLES: RefCell<HashMap<usize, cublasHandle_t>> = RefCell::new(HashMap::new());
}

/// The cuBLAS handle of `stream`, created (in the current context) on first use.
fn handle_for(stream: CUstream) -> Result<cublasHandle_t, cublas::CublasError> {
    HANDLES.with(|handles| {
        let mut handles = handles.borrow_mut();
        if let Some(&h) = handles.get(&(stream as usize)) {
            return Ok(h);
        }
        let h = cublas::create_handle()?;
        unsafe {
            cublas::set_stream(h, stream as _)?;
            // No TF32 for f32 products, whatever NVIDIA_TF32_OVERRIDE or the library default.
            cudarc::cublas::sys::cublasSetMathMode(h, cublasMath_t::CUBLAS_DEFAULT_MATH)
                .result()?;
        }
        handles.insert(stream as usize, h);
        Ok(h)
    })
}

/// Failures of products that already returned their output, oldest first.
static FAILURES: Mutex<Vec<String>> = Mutex::new(Vec::new());

fn record(message: String) {
    FAILURES
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .push(message);
}

/// Takes the recorded failures.
pub(crate) fn take_failures() -> Vec<String> {
    std::mem::take(&mut *FAILURES.lock().unwrap_or_else(|e| e.into_inner()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn op(batch: usize, rows: usize, cols: usize, ld: usize, bs: usize, t: bool) -> Operand {
        Operand {
            batch,
            rows,
            cols,
            ld,
            batch_stride: bs,
            transposed: t,
        }
    }

    #[test]
    fn layouts_cublas_reads_as_they_are() {
        // Contiguous and pitched rows.
        assert_eq!(
            Operand::of(&[4, 8], &[8, 1]),
            Some(op(1, 4, 8, 8, 32, false))
        );
        assert_eq!(
            Operand::of(&[4, 8], &[16, 1]),
            Some(op(1, 4, 8, 16, 32, false))
        );
        // A transposed view of a `[8, 4]` weight (`w.transpose()`).
        assert_eq!(
            Operand::of(&[4, 8], &[1, 4]),
            Some(op(1, 4, 8, 4, 32, true))
        );
        // Batches: `[b, h, t, d]` contiguous, and keys transposed for the scores.
        assert_eq!(
            Operand::of(&[2, 3, 5, 4], &[60, 20, 4, 1]),
            Some(op(6, 5, 4, 4, 20, false))
        );
        assert_eq!(
            Operand::of(&[2, 3, 4, 5], &[60, 20, 1, 4]),
            Some(op(6, 4, 5, 4, 20, true))
        );
        // Size-1 dimensions take any stride.
        assert_eq!(
            Operand::of(&[1, 8], &[3, 1]),
            Some(op(1, 1, 8, 8, 8, false))
        );
        assert_eq!(
            Operand::of(&[1, 3, 5, 4], &[7, 20, 4, 1]),
            Some(op(3, 5, 4, 4, 20, false))
        );
        // Not readable: heads interleaved with positions (`[b, t, h, d]` swapped to
        // `[b, h, t, d]`), overlapping rows, a strided column.
        assert_eq!(Operand::of(&[2, 3, 5, 4], &[60, 4, 12, 1]), None);
        assert_eq!(Operand::of(&[4, 8], &[4, 1]), None);
        assert_eq!(Operand::of(&[4, 8], &[16, 2]), None);
    }

    #[test]
    fn products_check_types_and_shapes() {
        let a = op(1, 4, 8, 8, 32, false);
        let b = op(1, 8, 3, 3, 24, false);
        assert!(Gemm::new(a, b, DType::BF16, DType::F32).is_some());
        assert!(Gemm::new(a, b, DType::F32, DType::F32).is_some());
        assert!(Gemm::new(a, b, DType::F32, DType::BF16).is_none());
        assert!(Gemm::new(a, b, DType::I32, DType::I32).is_none());
        assert!(Gemm::new(b, a, DType::BF16, DType::BF16).is_none());
        let g = Gemm::new(a, b, DType::BF16, DType::BF16).unwrap();
        assert_eq!(g.output_bytes(), 4 * 3 * 2);
    }
}
