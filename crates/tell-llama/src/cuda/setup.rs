//! Before the first tensor: is there a driver and a GPU, where cubecl keeps its tuning results,
//! which float type the device creates; then a first kernel and product, and every panic of the
//! GPU stack turned into an error.

use std::panic::{self, AssertUnwindSafe};
use std::path::PathBuf;
use std::sync::{Arc, Mutex};

use burn::tensor::{
    backend::Backend, get_device_settings, set_default_dtypes, DType, IntDType, Tensor, TensorData,
};
use cubecl::config::cache::CacheConfig;
use cubecl::config::{CubeClRuntimeConfig, RuntimeConfig};

use crate::device::{OnDevice, Precision};
use crate::error::{Error, Result};

/// What the driver says about the chosen GPU.
#[derive(Debug, Clone)]
pub struct GpuInfo {
    /// Its ordinal.
    pub index: usize,
    /// GPUs visible.
    pub count: usize,
    /// Its name (`NVIDIA H200`).
    pub name: String,
    /// Its memory, bytes.
    pub memory: usize,
}

/// Checks, without panicking, that the CUDA driver loads and starts, that GPU `index` exists,
/// and that the libraries the GPU path loads at run time are there (NVRTC for cubecl's kernels,
/// cuBLAS for the products unless `TELL_CUBLAS=0`).
pub fn probe(index: usize) -> Result<GpuInfo> {
    use cudarc::driver::{result, sys};
    let fail = |what: String| Err(Error::Device(what));
    // SAFETY: only tries to open the library.
    if !unsafe { sys::is_culib_present() } {
        return fail(format!(
            "--device cuda:{index}: no CUDA driver: libcuda.so cannot be loaded (is the NVIDIA \
             driver installed? on a machine without a GPU use --device cpu)"
        ));
    }
    if let Err(e) = result::init() {
        return fail(format!(
            "--device cuda:{index}: the CUDA driver did not start (cuInit: {e}); no GPU is \
             visible to this process (check nvidia-smi and CUDA_VISIBLE_DEVICES) or the driver \
             is older than CUDA 13 needs"
        ));
    }
    let count = match result::device::get_count() {
        Ok(n) => n.max(0) as usize,
        Err(e) => return fail(format!("--device cuda:{index}: counting GPUs failed: {e}")),
    };
    if index >= count {
        return fail(format!(
            "--device cuda:{index}: {count} GPU(s) visible (cuda:0..cuda:{})",
            count.saturating_sub(1)
        ));
    }
    let dev = result::device::get(index as i32)
        .map_err(|e| Error::Device(format!("--device cuda:{index}: {e}")))?;
    let name = result::device::get_name(dev).unwrap_or_else(|_| "an NVIDIA GPU".into());
    // SAFETY: `dev` came from `device::get`.
    let memory = unsafe { result::device::total_mem(dev) }.unwrap_or(0);
    // SAFETY: only try to open the libraries.
    if !unsafe { cudarc::nvrtc::sys::is_culib_present() } {
        return fail(format!(
            "--device cuda:{index}: libnvrtc cannot be loaded; cubecl compiles its kernels with \
             NVRTC (install the CUDA 13 runtime libraries or add them to LD_LIBRARY_PATH)"
        ));
    }
    if super::cublas_enabled() && !unsafe { cudarc::cublas::sys::is_culib_present() } {
        return fail(format!(
            "--device cuda:{index}: libcublas cannot be loaded (install the CUDA 13 cuBLAS \
             library or add it to LD_LIBRARY_PATH; TELL_CUBLAS=0 runs the products with burn's \
             own, slower, matmul instead)"
        ));
    }
    Ok(GpuInfo {
        index,
        count,
        name,
        memory,
    })
}

/// Where cubecl's autotune results and compiled kernels persist between runs:
/// `$TELL_CUBECL_CACHE`, else `$XDG_CACHE_HOME/tell/cubecl`, else `~/.cache/tell/cubecl`.
pub fn cache_dir() -> PathBuf {
    if let Some(dir) = std::env::var_os("TELL_CUBECL_CACHE").filter(|d| !d.is_empty()) {
        return PathBuf::from(dir);
    }
    let base = std::env::var_os("XDG_CACHE_HOME")
        .filter(|d| !d.is_empty())
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cache")))
        .unwrap_or_else(std::env::temp_dir);
    base.join("tell").join("cubecl")
}

/// Makes cubecl keep its autotune results and compiled kernels in [`cache_dir`], unless a
/// `cubecl.toml` (or a `[cubecl]` section of `burn.toml`) found from the working directory
/// chooses a place itself. burn's autotuner spent 47-73 s in the first calls of new shapes on the
/// H200; with the results on disk a second run starts at once. Must run before cubecl reads its
/// configuration (the first GPU tensor); later calls change nothing.
pub fn configure_caches() {
    let storage = CubeClRuntimeConfig::storage();
    let mut state = storage.lock();
    if state.is_some() {
        return;
    }
    let mut config = CubeClRuntimeConfig::from_current_dir().override_from_env();
    let dir = cache_dir();
    if matches!(config.autotune.cache, CacheConfig::Target) {
        config.autotune.cache = CacheConfig::File(dir.clone());
    }
    if config.compilation.cache.is_none() {
        config.compilation.cache = Some(CacheConfig::File(dir));
    }
    *state = Some(Arc::new(config));
}

/// The message of the last panic caught by [`quietly`].
static LAST_PANIC: Mutex<Option<String>> = Mutex::new(None);

/// Runs `f`, turning a panic into its message (with its location), printed by nobody: the GPU
/// stack (cubecl, cudarc) panics on errors a command should report as errors. With
/// `RUST_BACKTRACE` set the usual report is printed as well.
fn quietly<R>(f: impl FnOnce() -> R) -> std::result::Result<R, String> {
    let verbose = std::env::var_os("RUST_BACKTRACE").is_some_and(|v| v != "0");
    let previous = panic::take_hook();
    panic::set_hook(Box::new(move |info| {
        let message = info
            .payload()
            .downcast_ref::<&str>()
            .map(|s| s.to_string())
            .or_else(|| info.payload().downcast_ref::<String>().cloned())
            .unwrap_or_else(|| "a panic without a message".into());
        let at = info
            .location()
            .map(|l| format!(" (at {}:{})", l.file(), l.line()))
            .unwrap_or_default();
        *LAST_PANIC.lock().unwrap_or_else(|e| e.into_inner()) = Some(format!("{message}{at}"));
        if verbose {
            eprintln!("{info}\n{}", std::backtrace::Backtrace::force_capture());
        }
    }));
    let result = panic::catch_unwind(AssertUnwindSafe(f));
    drop(panic::take_hook());
    panic::set_hook(previous);
    result.map_err(|_| {
        LAST_PANIC
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .take()
            .unwrap_or_else(|| "a panic".into())
    })
}

/// A message for a panic of the GPU stack, with advice where the cause is known.
fn explain(info: &GpuInfo, message: &str) -> String {
    let lower = message.to_ascii_lowercase();
    let advice = if lower.contains("out of memory") || lower.contains("outofmemory") {
        format!(
            "; the GPU ({}, {:.0} GiB) ran out of memory: lower --batch-size, or the prompts' \
             length",
            info.name,
            info.memory as f64 / (1u64 << 30) as f64
        )
    } else {
        String::new()
    };
    format!("cuda:{} ({}): {message}{advice}", info.index, info.name)
}

/// Sets the device's float type, runs a first kernel and product, then the task, and checks
/// that the GPU finished without error.
pub(super) fn run_with<B: Backend, T: OnDevice>(
    device: &B::Device,
    info: &GpuInfo,
    dtype: Precision,
    task: T,
) -> Result<T::Output> {
    let wanted = dtype.float_dtype();
    // Setting the type starts the device (cubecl's server, the CUDA context): a panic there is
    // an error too.
    let set = quietly(|| {
        if set_default_dtypes::<B>(device, wanted, IntDType::I32).is_err() {
            let current = get_device_settings::<B>(device).float_dtype;
            if current != wanted {
                return Err(format!(
                    "cuda:{} already runs {current:?} in this process; --compute-dtype {dtype} \
                     needs a new one",
                    info.index
                ));
            }
        }
        Ok(())
    });
    match set {
        Ok(Ok(())) => {}
        Ok(Err(message)) => return Err(Error::Device(message)),
        Err(message) => return Err(Error::Device(explain(info, &message))),
    }
    // A first kernel (NVRTC, the driver) and a first product (cuBLAS, its stream): exact in
    // every float type.
    let first = quietly(|| {
        let a = Tensor::<B, 2>::from_data(
            TensorData::new(vec![1f32, 2.0, 3.0, 4.0], [2, 2]),
            (device, dtype.dtype()),
        );
        let y = crate::gemm::matmul(a.clone(), a.transpose() * 2, DType::F32);
        y.into_data().convert::<f32>().to_vec::<f32>()
    });
    match first {
        Ok(Ok(v)) if v == [10.0, 22.0, 22.0, 50.0] => {}
        Ok(Ok(v)) => {
            return Err(Error::Device(format!(
                "cuda:{} ({}): a first product gave {v:?} instead of [10, 22, 22, 50]",
                info.index, info.name
            )))
        }
        Ok(Err(e)) => return Err(Error::Device(explain(info, &format!("{e:?}")))),
        Err(message) => return Err(Error::Device(explain(info, &message))),
    }
    super::check()?;
    let output = quietly(|| task.run::<B>(device)).map_err(|m| Error::Device(explain(info, &m)))?;
    quietly(|| B::sync(device))
        .map_err(|m| Error::Device(explain(info, &m)))?
        .map_err(|e| Error::Device(explain(info, &format!("{e:?}"))))?;
    super::check()?;
    Ok(output)
}
