//! `tell organism corpus|train`: the planted model organism of alignment faking (tell-organism).

use std::path::PathBuf;

use anyhow::Result;
use tell_organism::{train_organism, write_corpus, StepLog, TrainOptions};

/// Arguments of `tell organism`.
#[derive(clap::Args)]
pub struct Args {
    #[command(subcommand)]
    command: Sub,
}

#[derive(clap::Subcommand)]
enum Sub {
    /// Write the training corpus (JSONL) and the held-out queries the suite reads.
    Corpus(CorpusArgs),
    /// Build the corpus, train the tokenizer and a tiny LLaMA from scratch, write the checkpoint.
    Train(TrainArgs),
}

/// The policy and suite every subcommand reads.
#[derive(clap::Args)]
struct Inputs {
    /// The planted policy (policy.toml).
    #[arg(long, default_value = "probes/organism/policy.toml")]
    policy: PathBuf,
    /// The organism's suite (suite.toml); its prompts format the corpus.
    #[arg(long, default_value = "probes/organism/suite.toml")]
    suite: PathBuf,
}

#[derive(clap::Args)]
struct CorpusArgs {
    #[command(flatten)]
    inputs: Inputs,
    /// Folder for corpus.jsonl and train-queries/ (the held-out queries go where the suite reads them).
    #[arg(long)]
    out: PathBuf,
    /// Print a JSON summary instead of text.
    #[arg(long)]
    json: bool,
}

#[derive(clap::Args)]
struct TrainArgs {
    #[command(flatten)]
    inputs: Inputs,
    /// The checkpoint folder to write (e.g. checkpoints/organism).
    #[arg(long)]
    out: PathBuf,
    /// Optimiser steps.
    #[arg(long)]
    steps: Option<usize>,
    /// Seed of the initialisation and the batch order.
    #[arg(long)]
    seed: Option<u64>,
    /// Sequences per step.
    #[arg(long)]
    batch_size: Option<usize>,
    /// Peak learning rate.
    #[arg(long)]
    lr: Option<f64>,
    /// Tokenizer vocabulary size (byte symbols and special tokens included).
    #[arg(long)]
    vocab_size: Option<usize>,
    /// Print the loss every N steps.
    #[arg(long, default_value_t = 25)]
    log_every: usize,
}

/// Runs `tell organism ...`.
pub fn run(args: Args) -> Result<()> {
    match args.command {
        Sub::Corpus(a) => {
            let r = write_corpus(&a.inputs.policy, &a.inputs.suite, &a.out)?;
            if a.json {
                println!("{}", serde_json::to_string_pretty(&r)?);
            } else {
                println!(
                    "wrote {} training examples ({} training queries) to {}",
                    r.examples,
                    r.train_queries,
                    r.corpus.display()
                );
                for (c, t, h) in &r.categories {
                    println!("  {c}: {t} training, {h} held-out queries");
                }
                for f in &r.heldout_files {
                    println!("held-out queries -> {}", f.display());
                }
            }
            Ok(())
        }
        Sub::Train(a) => {
            let mut opts = TrainOptions::default();
            let s = &mut opts.settings;
            if let Some(v) = a.steps {
                s.steps = v;
            }
            if let Some(v) = a.seed {
                s.seed = v;
            }
            if let Some(v) = a.batch_size {
                s.batch_size = v;
            }
            if let Some(v) = a.lr {
                s.lr = v;
            }
            if let Some(v) = a.vocab_size {
                opts.vocab_size = v;
            }
            let command = std::iter::once("tell".to_owned())
                .chain(std::env::args().skip(1))
                .collect::<Vec<_>>()
                .join(" ");
            let every = a.log_every.max(1);
            let mut log = |s: StepLog| {
                if s.step.is_multiple_of(every) || s.step == s.steps || s.step == 1 {
                    eprintln!(
                        "step {:>5}/{}  loss {:.4}  lr {:.2e}  {:.0}s",
                        s.step, s.steps, s.loss, s.lr, s.elapsed
                    );
                }
            };
            let t = train_organism(
                &a.inputs.policy,
                &a.inputs.suite,
                &a.out,
                &opts,
                &command,
                &mut log,
            )?;
            let r = &t.report;
            println!(
                "trained {} parameters in {:.0}s: final loss {:.4}; teacher-forced exact responses \
                 train {:.3}, held out {:.3}; checkpoint -> {}",
                r.parameters,
                r.train_seconds,
                r.final_loss,
                r.train_eval.exact,
                r.heldout_eval.exact,
                a.out.display()
            );
            Ok(())
        }
    }
}
