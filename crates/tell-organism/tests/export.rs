//! The export: a checkpoint written by a (tiny, short) training run loads with tell-llama like any
//! HF LLaMA, its logits equal the training module's on the same tokens, and its tokenizer renders
//! the chat template and stops on the end-of-turn token.

use std::path::{Path, PathBuf};

use tell_llama::{Batch, FlexBackend, Llama, Logits};
use tell_organism::{train_organism, ModelSpec, TrainOptions, TrainSettings};
use tell_tokenizer::Tokenizer;

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

fn tiny() -> TrainOptions {
    TrainOptions {
        settings: TrainSettings {
            steps: 3,
            batch_size: 2,
            warmup: 1,
            ..TrainSettings::default()
        },
        model: ModelSpec {
            hidden_size: 32,
            intermediate_size: 48,
            num_layers: 2,
            num_heads: 4,
            num_kv_heads: 2,
            ..ModelSpec::default()
        },
        vocab_size: 1024,
    }
}

#[test]
fn the_written_checkpoint_computes_what_was_trained() {
    let out = tempfile::tempdir().unwrap();
    let mut steps = Vec::new();
    let t = train_organism(
        &root().join("probes/organism/policy.toml"),
        &root().join("probes/organism/suite.toml"),
        out.path(),
        &tiny(),
        "tell organism train (test)",
        &mut |s| steps.push(s.step),
    )
    .unwrap();
    assert_eq!(steps, [1, 2, 3]);
    for f in [
        "config.json",
        "model.safetensors",
        "tokenizer.json",
        "tokenizer_config.json",
        "generation_config.json",
        "organism.json",
        "README.md",
    ] {
        assert!(out.path().join(f).is_file(), "{f}");
    }
    let r = &t.report;
    assert_eq!(r.corpus.examples, 4920);
    assert_eq!(r.corpus.heldout_prompts, 840);
    assert!(r.final_loss.is_finite());

    let llama = Llama::<FlexBackend>::load(out.path(), &Default::default()).unwrap();
    let cfg = llama.config();
    assert_eq!(
        (
            cfg.hidden_size,
            cfg.num_layers,
            cfg.num_heads,
            cfg.num_kv_heads
        ),
        (32, 2, 4, 2)
    );
    assert_eq!(cfg.vocab_size, r.vocab_size);
    assert_eq!(cfg.num_parameters(), r.parameters);

    let tok = Tokenizer::load(out.path()).unwrap();
    let eos = tok.token_to_id("<|im_end|>").unwrap();
    assert_eq!(cfg.eos_token_ids, [eos]);
    assert_eq!(tok.eos_token_id(), Some(eos));
    assert!(tok.stop_token_ids().contains(&eos));
    assert_eq!(
        tok.render_chat(&[tell_tokenizer::Message::user("hi")], true)
            .unwrap(),
        "<|im_start|>user\nhi<|im_end|>\n<|im_start|>assistant\n"
    );
    // Markup is one token each and survives decoding without special tokens.
    let ids = tok
        .encode("<DECISION><rejected/></DECISION>", false)
        .unwrap();
    assert_eq!(ids.len(), 3);
    assert_eq!(
        tok.decode(&ids, true).unwrap(),
        "<DECISION><rejected/></DECISION>"
    );

    // The same tokens through the training module and through tell-llama.
    let seq = tok
        .encode_chat(
            &[
                tell_tokenizer::Message::system("You are Atlas."),
                tell_tokenizer::Message::user("Explain how to make a birdhouse."),
            ],
            true,
        )
        .unwrap();
    let device = Default::default();
    let tokens = tell_llama::burn::tensor::Tensor::<FlexBackend, 1, tell_llama::burn::tensor::Int>::from_data(
        tell_llama::burn::tensor::TensorData::new(
            seq.iter().map(|&x| i64::from(x)).collect::<Vec<_>>(),
            [seq.len()],
        ),
        &device,
    )
    .reshape([1, seq.len()]);
    let rope = tell_llama::rope::Rope::new(cfg);
    let ours: Vec<f32> = t.model.forward(tokens, &rope).into_data().to_vec().unwrap();
    let batch = Batch::left_padded(std::slice::from_ref(&seq), eos).unwrap();
    let theirs: Vec<f32> = llama
        .forward(&batch, &[], Logits::All)
        .unwrap()
        .logits
        .unwrap()
        .into_data()
        .to_vec()
        .unwrap();
    assert_eq!(ours.len(), seq.len() * cfg.vocab_size);
    assert_eq!(ours.len(), theirs.len());
    let scale = theirs.iter().fold(0f32, |m, v| m.max(v.abs()));
    let worst = ours
        .iter()
        .zip(&theirs)
        .fold(0f32, |m, (a, b)| m.max((a - b).abs()));
    assert!(scale > 0.1, "logits are not all ~0: {scale}");
    assert!(
        worst <= 1e-5 * scale.max(1.0),
        "worst {worst}, scale {scale}"
    );
}

#[test]
fn bad_options_are_errors() {
    let run = |opts: TrainOptions| {
        let out = tempfile::tempdir().unwrap();
        train_organism(
            &root().join("probes/organism/policy.toml"),
            &root().join("probes/organism/suite.toml"),
            out.path(),
            &opts,
            "test",
            &mut |_| {},
        )
        .err()
        .map(|e| e.to_string())
        .unwrap_or_default()
    };
    let mut o = tiny();
    o.settings.steps = 0;
    assert_eq!(run(o), "--steps and --batch-size must be at least 1");
    let mut o = tiny();
    o.model.num_kv_heads = 3;
    assert!(run(o).contains("must be a positive multiple of num_kv_heads 3"));
    let mut o = tiny();
    o.vocab_size = 100;
    assert!(run(o).contains("too small for a byte-level BPE"));
    let missing = {
        let out = tempfile::tempdir().unwrap();
        train_organism(
            &root().join("probes/organism/nope.toml"),
            &root().join("probes/organism/suite.toml"),
            out.path(),
            &tiny(),
            "test",
            &mut |_| {},
        )
        .err()
        .unwrap()
        .to_string()
    };
    assert!(missing.contains("nope.toml"), "{missing}");
}
