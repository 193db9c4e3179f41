//! `tell tokenize MODEL --text TEXT [--chat] [--system TEXT] [--json]`: token ids and token strings
//! of a text (with `--chat`, of the rendered chat template), to look up positions before probing.

use std::io::Write as _;
use std::path::PathBuf;

use anyhow::{Context, Result};
use tell_tokenizer::{Message, Tokenizer};

/// Arguments of `tell tokenize`.
#[derive(clap::Args)]
pub struct Args {
    /// A directory with tokenizer files (tokenizer.json + tokenizer_config.json) or a .gguf file.
    model: PathBuf,
    /// The text to tokenize (with --chat, the user message).
    #[arg(long)]
    text: String,
    /// Render the chat template around the text (as a user turn, with the generation prompt) and
    /// tokenize the result without adding special tokens again.
    #[arg(long)]
    chat: bool,
    /// A system message before the user turn (needs --chat).
    #[arg(long, requires = "chat")]
    system: Option<String>,
    /// Do not add special tokens (BOS) when tokenizing plain text.
    #[arg(long, conflicts_with = "chat")]
    no_special: bool,
    /// Print JSON instead of a table.
    #[arg(long)]
    json: bool,
}

/// Runs `tell tokenize`.
pub fn run(args: Args) -> Result<()> {
    let tok = Tokenizer::load(&args.model)
        .with_context(|| format!("loading the tokenizer of {}", args.model.display()))?;
    let (text, ids) = if args.chat {
        let mut messages = Vec::new();
        if let Some(system) = args.system {
            messages.push(Message::system(system));
        }
        messages.push(Message::user(args.text));
        let text = tok.render_chat(&messages, true)?;
        let ids = tok.encode(&text, false)?;
        (text, ids)
    } else {
        let ids = tok.encode(&args.text, !args.no_special)?;
        (args.text, ids)
    };
    let mut rows = Vec::with_capacity(ids.len());
    for (pos, &id) in ids.iter().enumerate() {
        rows.push(serde_json::json!({
            "position": pos,
            "id": id,
            "token": tok.id_to_token(id).unwrap_or_default(),
            "text": tok.decode(&[id], false)?,
            "special": tok.is_special(id),
        }));
    }
    // Written through a locked handle with `?`, so a closed pipe (`| head`) is an error, not a panic.
    let mut out = std::io::stdout().lock();
    if args.json {
        let doc = serde_json::json!({
            "text": text,
            "ids": ids,
            "tokens": rows,
            "stop_token_ids": tok.stop_token_ids(),
        });
        writeln!(out, "{}", serde_json::to_string_pretty(&doc)?)?;
        return Ok(());
    }
    if args.chat {
        writeln!(out, "rendered: {text:?}")?;
    }
    writeln!(out, "{} tokens", ids.len())?;
    writeln!(out, "{:>5}  {:>7}  {:<24}  text", "pos", "id", "token")?;
    for (pos, (&id, r)) in ids.iter().zip(&rows).enumerate() {
        let token = r["token"].as_str().unwrap_or_default();
        let piece = r["text"].as_str().unwrap_or_default();
        writeln!(out, "{pos:>5}  {id:>7}  {token:<24}  {piece:?}")?;
    }
    Ok(())
}
