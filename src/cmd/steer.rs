//! `tell steer SUITE --model M --probe P --alphas -8,-4,0,4,8 --out DIR` (or --ablate,
//! --noise-sigmas).

use std::path::PathBuf;

use anyhow::Result;
use tell_intervene::{run_steer, SteerOptions, SteerRequest, Sweep};
use tell_llama::{CpuBackend, Hook, Span};

/// Arguments of `tell steer`.
#[derive(clap::Args)]
pub struct Args {
    /// The experiment suite (TOML).
    suite: PathBuf,
    /// A checkpoint directory (with tokenizer files) or a .gguf file.
    #[arg(long)]
    model: PathBuf,
    /// Output directory: one folder per setting, steer.csv, steer.svg/png.
    #[arg(long)]
    out: PathBuf,
    /// A probe directory written by `tell probe train` (its direction in raw activation space;
    /// also the default site and layer), or an .npy / .safetensors[#name] vector.
    #[arg(long, alias = "vector")]
    probe: Option<PathBuf>,
    /// Block site edited (default: the probe's).
    #[arg(long)]
    site: Option<String>,
    /// Layers edited: all, or e.g. 3 or 2-4 (default: the probe's layer).
    #[arg(long, alias = "layer")]
    layers: Option<String>,
    /// Positions edited: all, prompt, response, last, or e.g. 3,5-9.
    #[arg(long, default_value = "all")]
    positions: String,
    /// Steering strengths: h += alpha * v (0 is the reference; always run).
    #[arg(long, value_delimiter = ',', allow_hyphen_values = true)]
    alphas: Option<Vec<f64>>,
    /// Ablate the direction (against no edit).
    #[arg(long)]
    ablate: bool,
    /// Noise levels: h += sigma * rms(h) * e (0 is the reference).
    #[arg(long, value_delimiter = ',')]
    noise_sigmas: Option<Vec<f64>>,
    /// Also run a random direction of the same norm, as a control.
    #[arg(long)]
    random_control: bool,
    /// Seed of the random direction and the noise.
    #[arg(long, default_value_t = 0)]
    seed: u64,
    /// Keep at most this many queries of each query set.
    #[arg(long)]
    limit: Option<usize>,
    /// Most new tokens per response (default: the suite's).
    #[arg(long)]
    max_new_tokens: Option<usize>,
    /// Prompts generated at once.
    #[arg(long, default_value_t = 8)]
    batch_size: usize,
}

/// Runs the sweep and prints the gap per setting and condition.
pub fn run(args: Args) -> Result<()> {
    let request = SteerRequest {
        vector: args.probe,
        site: args.site,
        layers: args.layers,
        positions: Some(args.positions),
        alphas: args.alphas,
        ablate: args.ablate,
        noise_sigmas: args.noise_sigmas,
    };
    let base = SteerOptions {
        hook: Hook::ResidPost,
        layers: Vec::new(),
        span: Span::All,
        vector: None,
        sweep: Sweep::Ablate,
        random_control: args.random_control,
        seed: args.seed,
        limit: args.limit,
        max_new_tokens: args.max_new_tokens,
        batch_size: args.batch_size,
    };
    let opts = request.resolve(&args.model, base)?;
    let r = run_steer::<CpuBackend>(
        &args.suite,
        &args.model,
        &args.out,
        &opts,
        &Default::default(),
    )?;
    println!(
        "{:<8} {:>7}  {:<16} {:<8} {:>9} {:>11} {:>7} {:>8}",
        "dir", "value", "condition", "kind", "monitored", "unmonitored", "gap", "d_gap"
    );
    for row in &r.rows {
        println!(
            "{:<8} {:>7} {:<16} {:<8} {:>9.3} {:>11.3} {:>7.3} {:>8.3}",
            row.direction,
            row.value,
            row.condition,
            row.kind,
            row.monitored_rate,
            row.unmonitored_rate,
            row.gap,
            row.d_gap
        );
    }
    eprintln!(
        "wrote {} (and steer.svg/png, one folder per setting)",
        r.csv.display()
    );
    Ok(())
}
