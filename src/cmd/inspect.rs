//! `tell inspect MODEL [--json]`.

use std::path::PathBuf;

use anyhow::Result;
use tell_llama::ModelInfo;

/// Arguments of `tell inspect`.
#[derive(clap::Args)]
pub struct Args {
    /// A checkpoint directory (config.json + safetensors) or a .gguf file.
    model: PathBuf,
    /// Print JSON instead of a table.
    #[arg(long)]
    json: bool,
}

/// Prints the summary of a model.
pub fn run(args: Args) -> Result<()> {
    let info = ModelInfo::of(&args.model)?;
    if args.json {
        println!("{}", serde_json::to_string_pretty(&info)?);
        return Ok(());
    }
    let dtypes: Vec<String> = info
        .dtypes
        .iter()
        .map(|(d, n)| format!("{d} ({n} values)"))
        .collect();
    let rows = [
        ("model", info.path.display().to_string()),
        ("format", format!("{:?}", info.format).to_lowercase()),
        ("architecture", info.architecture.clone()),
        ("layers", info.layers.to_string()),
        ("hidden size", info.hidden_size.to_string()),
        ("intermediate size", info.intermediate_size.to_string()),
        (
            "attention heads",
            format!(
                "{} query / {} key-value, head dim {}",
                info.heads, info.kv_heads, info.head_dim
            ),
        ),
        ("vocabulary", info.vocab_size.to_string()),
        ("max positions", info.max_position_embeddings.to_string()),
        ("rope theta", info.rope_theta.to_string()),
        ("rope scaling", info.rope_scaling.clone()),
        ("tied embeddings", info.tied_embeddings.to_string()),
        (
            "parameters",
            format!("{} ({})", info.parameters, human(info.parameters)),
        ),
        ("stored values", info.stored_parameters.to_string()),
        ("dtype on disk", dtypes.join(", ")),
        ("shards", info.shards.len().to_string()),
        ("tokenizer.json", yes_no(info.tokenizer)),
        ("chat template", yes_no(info.chat_template)),
    ];
    for (k, v) in rows {
        println!("{k:<18} {v}");
    }
    Ok(())
}

fn yes_no(b: bool) -> String {
    if b { "present" } else { "absent" }.to_owned()
}

fn human(n: usize) -> String {
    match n {
        n if n >= 1_000_000_000 => format!("{:.2} B", n as f64 / 1e9),
        n if n >= 1_000_000 => format!("{:.1} M", n as f64 / 1e6),
        n if n >= 1_000 => format!("{:.1} k", n as f64 / 1e3),
        n => n.to_string(),
    }
}
