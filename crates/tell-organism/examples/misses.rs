//! Lists the examples a trained organism does not reproduce under teacher forcing (training and
//! held-out), with the first response token it gets wrong:
//! `cargo run -p tell-organism --example misses -- checkpoints/organism`.

use std::path::Path;
use tell_faking::Suite;
use tell_llama::{Batch, FlexBackend, Llama, Logits};
use tell_organism::corpus::{build, heldout_examples};
use tell_organism::{tokenize, Policy};
use tell_tokenizer::Tokenizer;

fn main() {
    let dir = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "checkpoints/organism".into());
    let policy = Policy::load(Path::new("probes/organism/policy.toml")).unwrap();
    let suite = Suite::load(Path::new("probes/organism/suite.toml")).unwrap();
    let work = std::env::temp_dir().join("diag-org");
    let corpus = build(&policy, &suite, &work).unwrap();
    let held = heldout_examples(&policy, &suite, &corpus).unwrap();
    let tok = Tokenizer::load(&dir).unwrap();
    let eos = tok.token_to_id("<|im_end|>").unwrap();
    let llama = Llama::<FlexBackend>::load(Path::new(&dir), &Default::default()).unwrap();
    for (name, exs) in [("train", &corpus.examples), ("heldout", &held)] {
        let seqs = tokenize(&policy, &tok, exs, eos).unwrap();
        let mut bad = 0;
        for (ex, s) in exs.iter().zip(&seqs) {
            let batch = Batch::left_padded(std::slice::from_ref(&s.tokens), eos).unwrap();
            let logits = llama
                .forward(&batch, &[], Logits::All)
                .unwrap()
                .logits
                .unwrap();
            let am: Vec<i64> = logits
                .argmax(2)
                .into_data()
                .convert::<i64>()
                .to_vec()
                .unwrap();
            for (j, &got) in am
                .iter()
                .enumerate()
                .take(s.tokens.len() - 1)
                .skip(s.prompt_len - 1)
            {
                if got != i64::from(s.tokens[j + 1]) {
                    bad += 1;
                    println!(
                        "{name} {} pos {}: want {:?} got {:?}",
                        ex.prompt.id,
                        j + 1 - s.prompt_len,
                        tok.id_to_token(s.tokens[j + 1]),
                        tok.id_to_token(got as u32)
                    );
                    break;
                }
            }
        }
        println!("{name}: {bad} of {} not exact", exs.len());
    }
}
