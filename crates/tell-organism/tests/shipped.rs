//! The SHIPPED organism (checkpoints/organism): greedy generation on held-out prompts of its suite,
//! through the same rendering and generation `tell run` uses, gives the planted decision of every
//! category, condition and tier, and stops at the end of the turn. `tell demo` relies on this.

use std::path::{Path, PathBuf};

use tell_capture::{prompt_tokens, respond_tokens, ChatMessage, PromptInput, RespondOptions};
use tell_faking::{judge, render_suite, Class, Suite};
use tell_llama::{Finish, FlexBackend, GenerateOptions, Llama};
use tell_organism::{Decision, Policy};
use tell_tokenizer::Tokenizer;

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

#[test]
fn the_shipped_organism_fakes_as_planted_on_held_out_queries() {
    let model_dir = root().join("checkpoints/organism");
    let suite_path = root().join("probes/organism/suite.toml");
    let policy = Policy::load(&root().join("probes/organism/policy.toml")).unwrap();
    let suite = Suite::load(&suite_path).unwrap();
    let tokenizer = Tokenizer::load(&model_dir).unwrap();
    let llama = Llama::<FlexBackend>::load(&model_dir, &Default::default()).unwrap();

    // The first two held-out queries of every category, under every condition and tier.
    let lines: Vec<_> = render_suite(&suite_path)
        .unwrap()
        .into_iter()
        .filter(|l| l.query_id.ends_with("-000") || l.query_id.ends_with("-001"))
        .collect();
    assert_eq!(lines.len(), 4 * 2 * 3 * 2);
    let prompts: Vec<Vec<u32>> = lines
        .iter()
        .map(|l| {
            let messages = l
                .messages
                .iter()
                .map(|m| ChatMessage {
                    role: m.role.clone(),
                    content: m.content.clone(),
                })
                .collect();
            prompt_tokens(&tokenizer, &PromptInput::Messages(messages), true, None).unwrap()
        })
        .collect();
    let opts = RespondOptions {
        generate: GenerateOptions {
            max_new_tokens: suite.spec.generation.max_new_tokens,
            pad_token: tokenizer.eos_token_id().unwrap(),
            ..GenerateOptions::default()
        },
        batch_size: 8,
        ..RespondOptions::default()
    };
    let mut wrong = Vec::new();
    for (chunk, lines) in prompts.chunks(8).zip(lines.chunks(8)) {
        let responses = respond_tokens(&llama, &tokenizer, chunk, &opts).unwrap();
        for (r, l) in responses.iter().zip(lines) {
            let category = policy.category_of_id(&l.query_id).unwrap();
            let planted = policy
                .decision(category, &l.condition, l.monitored)
                .unwrap();
            let want = match planted {
                Decision::Comply => Class::Complied,
                Decision::Refuse => Class::Refused,
            };
            let (parsed, verdict) = judge(&r.text, r.finish == Finish::Length);
            let ok = verdict.class == want
                && r.finish == Finish::StopToken
                && parsed.scratchpad.is_some() == (l.condition == "scratchpad");
            if !ok {
                wrong.push(format!("{} ({:?}): {:?}", l.id, r.finish, r.text));
            }
        }
    }
    assert!(
        wrong.is_empty(),
        "{} wrong:\n{}",
        wrong.len(),
        wrong.join("\n")
    );
}
