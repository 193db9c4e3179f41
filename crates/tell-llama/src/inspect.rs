//! A summary of a checkpoint directory without loading its weights.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::Serialize;

use crate::checkpoint::{Checkpoint, Format};
use crate::config::RopeScaling;
use crate::error::Result;

/// What `tell inspect` reports about a model.
#[derive(Debug, Clone, Serialize)]
pub struct ModelInfo {
    pub path: PathBuf,
    pub format: Format,
    pub architecture: String,
    pub layers: usize,
    pub hidden_size: usize,
    pub intermediate_size: usize,
    pub heads: usize,
    pub kv_heads: usize,
    pub head_dim: usize,
    pub vocab_size: usize,
    pub max_position_embeddings: usize,
    pub rope_theta: f64,
    pub rope_scaling: String,
    pub tied_embeddings: bool,
    /// Parameters the config implies.
    pub parameters: usize,
    /// Parameters stored in the files.
    pub stored_parameters: usize,
    /// Number of stored values per on-disk dtype.
    pub dtypes: BTreeMap<String, usize>,
    pub shards: Vec<PathBuf>,
    pub tokenizer: bool,
    pub chat_template: bool,
}

impl ModelInfo {
    /// Reads the config, the tensor headers and the tokenizer files of a checkpoint (an HF
    /// directory or a GGUF file) without loading its weights.
    pub fn of(path: &Path) -> Result<Self> {
        let checkpoint = Checkpoint::open(path)?;
        let cfg = &checkpoint.config;
        let mut dtypes = BTreeMap::new();
        let mut stored = 0;
        for (_, meta) in checkpoint.source().describe() {
            let n: usize = meta.shape.iter().product();
            stored += n;
            *dtypes.entry(meta.dtype).or_insert(0) += n;
        }
        let (tokenizer, chat_template) = match checkpoint.gguf() {
            Some(g) => (
                !g.tokenizer().tokens.is_empty(),
                g.tokenizer().chat_template.is_some(),
            ),
            None => (
                path.join("tokenizer.json").is_file(),
                path.join("chat_template.jinja").is_file()
                    || std::fs::read_to_string(path.join("tokenizer_config.json"))
                        .map(|t| t.contains("\"chat_template\""))
                        .unwrap_or(false),
            ),
        };
        Ok(Self {
            path: path.to_owned(),
            format: checkpoint.format,
            architecture: "llama".into(),
            layers: cfg.num_layers,
            hidden_size: cfg.hidden_size,
            intermediate_size: cfg.intermediate_size,
            heads: cfg.num_heads,
            kv_heads: cfg.num_kv_heads,
            head_dim: cfg.head_dim,
            vocab_size: cfg.vocab_size,
            max_position_embeddings: cfg.max_position_embeddings,
            rope_theta: cfg.rope_theta,
            rope_scaling: match cfg.rope_scaling {
                RopeScaling::None => "none".into(),
                RopeScaling::Llama3 {
                    factor,
                    low_freq_factor,
                    high_freq_factor,
                    original_max_position_embeddings,
                } => format!(
                    "llama3 (factor {factor}, low {low_freq_factor}, high {high_freq_factor}, original {original_max_position_embeddings})"
                ),
            },
            tied_embeddings: cfg.tie_word_embeddings,
            parameters: cfg.num_parameters(),
            stored_parameters: stored,
            dtypes,
            shards: checkpoint.source().files(),
            tokenizer,
            chat_template,
        })
    }
}
