//! `--device` and `--compute-dtype`, shared by the commands that run the model.

use anyhow::Result;
use tell_llama::{DeviceSpec, Precision};

/// Where the model runs and in which float type.
#[derive(clap::Args, Debug, Clone)]
pub struct DeviceArgs {
    /// Where the model runs: cpu, cuda (the first GPU) or cuda:N. A GPU needs a build with
    /// `--features cuda`.
    #[arg(long, default_value = "cpu")]
    pub device: String,
    /// Float type of the weights and activations: f32, bf16 or f16 (default: f32 on the CPU,
    /// bf16 on a GPU; the CPU runs f32 only).
    #[arg(long)]
    pub compute_dtype: Option<String>,
}

impl DeviceArgs {
    /// The parsed device and float type (`None`: the device's default).
    pub fn parse(&self) -> Result<(DeviceSpec, Option<Precision>)> {
        let spec: DeviceSpec = self.device.parse()?;
        let dtype = self
            .compute_dtype
            .as_deref()
            .map(Precision::parse)
            .transpose()?;
        Ok((spec, dtype))
    }
}
