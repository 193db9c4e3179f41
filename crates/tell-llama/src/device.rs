//! Where the model runs, chosen at run time: `--device cpu|cuda|cuda:N` and `--compute-dtype
//! f32|bf16|f16` map to a burn backend and a float type here, and nowhere else.
//!
//! Commands and crates stay generic over `B: Backend`: a command describes its work as an
//! [`OnDevice`] value and hands it to [`run_on`], which picks the backend type, prepares the device
//! (for CUDA: the driver check, the persistent autotune cache, the float type) and calls
//! [`OnDevice::run`] with it.
//!
//! ```no_run
//! use tell_llama::burn::tensor::backend::Backend;
//! use tell_llama::device::{run_on, DeviceSpec, OnDevice};
//!
//! struct Hello;
//! impl OnDevice for Hello {
//!     type Output = String;
//!     fn run<B: Backend>(self, device: &B::Device) -> String {
//!         format!("{device:?}")
//!     }
//! }
//! let spec: DeviceSpec = "cuda:0".parse()?;
//! println!("{}", run_on(spec, None, Hello)?);
//! # Ok::<(), tell_llama::Error>(())
//! ```

use std::fmt;
use std::str::FromStr;

use burn::tensor::backend::Backend;
use burn::tensor::{DType, FloatDType};

use crate::error::{Error, Result};

/// A device named on the command line: `cpu`, `cuda` (the first GPU) or `cuda:N`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum DeviceSpec {
    /// The CPU (burn's `flex` backend, f32).
    #[default]
    Cpu,
    /// An NVIDIA GPU by ordinal (burn-cuda, products through cuBLAS).
    Cuda(usize),
}

impl FromStr for DeviceSpec {
    type Err = Error;

    fn from_str(s: &str) -> Result<Self> {
        let bad = || {
            Error::Device(format!(
                "unknown device \"{s}\": use cpu, cuda (the first GPU) or cuda:N"
            ))
        };
        match s.trim().to_ascii_lowercase().as_str() {
            "cpu" => Ok(Self::Cpu),
            "cuda" | "gpu" => Ok(Self::Cuda(0)),
            other => match other.strip_prefix("cuda:") {
                Some(n) => n.parse().map(Self::Cuda).map_err(|_| bad()),
                None => Err(bad()),
            },
        }
    }
}

impl fmt::Display for DeviceSpec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Cpu => f.write_str("cpu"),
            Self::Cuda(n) => write!(f, "cuda:{n}"),
        }
    }
}

/// The float type of the weights and activations on the device (`--compute-dtype`).
///
/// On the CPU only [`Precision::F32`] runs. On a GPU the default is [`Precision::Bf16`]: bf16 and
/// f16 checkpoints keep their type, f32 checkpoints and GGUF weights are converted on upload;
/// norms, RoPE and softmax compute in f32 whatever the type; products accumulate in f32.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Precision {
    /// IEEE single precision (on a GPU: cuBLAS without TF32, for parity checks).
    F32,
    /// bfloat16.
    Bf16,
    /// IEEE half precision.
    F16,
}

impl Precision {
    /// Parses the CLI spelling (`f32`, `bf16`, `f16`).
    pub fn parse(s: &str) -> Result<Self> {
        match s.trim().to_ascii_lowercase().as_str() {
            "f32" | "float32" => Ok(Self::F32),
            "bf16" | "bfloat16" => Ok(Self::Bf16),
            "f16" | "float16" => Ok(Self::F16),
            _ => Err(Error::Device(format!(
                "unknown dtype \"{s}\": use f32, bf16 or f16"
            ))),
        }
    }

    /// The CLI spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::F32 => "f32",
            Self::Bf16 => "bf16",
            Self::F16 => "f16",
        }
    }

    /// The default for a device: f32 on the CPU, bf16 on a GPU.
    pub fn default_for(spec: DeviceSpec) -> Self {
        match spec {
            DeviceSpec::Cpu => Self::F32,
            DeviceSpec::Cuda(_) => Self::Bf16,
        }
    }

    /// The burn float type.
    pub fn float_dtype(self) -> FloatDType {
        match self {
            Self::F32 => FloatDType::F32,
            Self::Bf16 => FloatDType::BF16,
            Self::F16 => FloatDType::F16,
        }
    }

    /// The burn dtype.
    pub fn dtype(self) -> DType {
        self.float_dtype().into()
    }
}

impl fmt::Display for Precision {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Precision {
    type Err = Error;

    fn from_str(s: &str) -> Result<Self> {
        Self::parse(s)
    }
}

/// Work that runs on whichever backend [`run_on`] chooses: a generic closure.
pub trait OnDevice {
    /// What the work returns.
    type Output;

    /// Runs on backend `B`, on `device`.
    fn run<B: Backend>(self, device: &B::Device) -> Self::Output;
}

/// Runs `task` on the device `spec` with float type `dtype` (`None`: the device's default).
///
/// Errors, before `task` starts: a dtype the device does not run, `cuda` in a build without the
/// `cuda` feature (the message says how to build it), or no usable CUDA driver or GPU. Errors of
/// the task itself are its `Output`'s; GPU errors that surface after it returned (a cuBLAS
/// product that failed) are returned here.
pub fn run_on<T: OnDevice>(
    spec: DeviceSpec,
    dtype: Option<Precision>,
    task: T,
) -> Result<T::Output> {
    let dtype = dtype.unwrap_or(Precision::default_for(spec));
    match spec {
        DeviceSpec::Cpu => {
            if dtype != Precision::F32 {
                return Err(Error::Device(format!(
                    "--compute-dtype {dtype} runs on a GPU (--device cuda); on the CPU the model \
                     computes in f32"
                )));
            }
            Ok(task.run::<crate::CpuBackend>(&Default::default()))
        }
        DeviceSpec::Cuda(index) => run_cuda(index, dtype, task),
    }
}

#[cfg(feature = "cuda")]
fn run_cuda<T: OnDevice>(index: usize, dtype: Precision, task: T) -> Result<T::Output> {
    crate::cuda::run(index, dtype, task)
}

#[cfg(not(feature = "cuda"))]
fn run_cuda<T: OnDevice>(index: usize, _dtype: Precision, _task: T) -> Result<T::Output> {
    Err(Error::Device(format!(
        "--device cuda:{index}: this `tell` was built without CUDA support; build it with \
         `cargo build --release --features cuda` (no CUDA toolkit is needed to build; running \
         needs an NVIDIA driver, NVRTC and cuBLAS)"
    )))
}

/// Whether this build can run on a GPU (`--features cuda`).
pub const CUDA_BUILT: bool = cfg!(feature = "cuda");

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn device_names_parse() {
        assert_eq!("cpu".parse::<DeviceSpec>().unwrap(), DeviceSpec::Cpu);
        assert_eq!("cuda".parse::<DeviceSpec>().unwrap(), DeviceSpec::Cuda(0));
        assert_eq!("CUDA:3".parse::<DeviceSpec>().unwrap(), DeviceSpec::Cuda(3));
        for bad in ["cuda:", "cuda:x", "tpu", "cuda:-1"] {
            let err = bad.parse::<DeviceSpec>().unwrap_err().to_string();
            assert!(err.contains("unknown device"), "{bad}: {err}");
        }
        assert_eq!(DeviceSpec::Cuda(2).to_string(), "cuda:2");
    }

    #[test]
    fn dtypes_parse_and_default_per_device() {
        assert_eq!(Precision::parse("BF16").unwrap(), Precision::Bf16);
        assert_eq!(Precision::parse("f32").unwrap(), Precision::F32);
        let err = Precision::parse("f8").unwrap_err().to_string();
        assert!(err.contains("unknown dtype \"f8\""), "{err}");
        assert_eq!(Precision::default_for(DeviceSpec::Cpu), Precision::F32);
        assert_eq!(Precision::default_for(DeviceSpec::Cuda(0)), Precision::Bf16);
    }

    struct Name;
    impl OnDevice for Name {
        type Output = &'static str;
        fn run<B: Backend>(self, _device: &B::Device) -> &'static str {
            std::any::type_name::<B>()
        }
    }

    #[test]
    fn the_cpu_runs_f32_only() {
        let name = run_on(DeviceSpec::Cpu, None, Name).unwrap();
        assert_eq!(name, std::any::type_name::<crate::CpuBackend>());
        let err = run_on(DeviceSpec::Cpu, Some(Precision::Bf16), Name)
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("on the CPU the model computes in f32"),
            "{err}"
        );
    }

    #[cfg(not(feature = "cuda"))]
    #[test]
    fn cuda_without_the_feature_says_how_to_build() {
        let err = run_on(DeviceSpec::Cuda(0), None, Name)
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("cargo build --release --features cuda"),
            "{err}"
        );
    }
}
