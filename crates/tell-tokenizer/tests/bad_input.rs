//! Bad input gives typed errors, never a panic: missing files, malformed JSON, broken templates,
//! unsupported or inconsistent GGUF tokenizers. Also the side files of a small hand-made
//! tokenizer directory (config, chat_template.jinja, generation_config.json).

use std::path::Path;

use tell_gguf::GgufTokenizer;
use tell_tokenizer::{Message, Tokenizer, TokenizerError};

/// A tiny byte-level BPE tokenizer.json: "a", "b", "ab", "Ġ" and the special "<|end|>".
const TINY: &str = r#"{
  "version": "1.0", "truncation": null, "padding": null,
  "added_tokens": [{"id": 4, "content": "<|end|>", "single_word": false, "lstrip": false,
                    "rstrip": false, "normalized": false, "special": true}],
  "normalizer": null,
  "pre_tokenizer": {"type": "ByteLevel", "add_prefix_space": false, "trim_offsets": true, "use_regex": true},
  "post_processor": {"type": "ByteLevel", "add_prefix_space": true, "trim_offsets": false, "use_regex": true},
  "decoder": {"type": "ByteLevel", "add_prefix_space": true, "trim_offsets": true, "use_regex": true},
  "model": {"type": "BPE", "dropout": null, "unk_token": null, "continuing_subword_prefix": null,
            "end_of_word_suffix": null, "fuse_unk": false, "byte_fallback": false, "ignore_merges": false,
            "vocab": {"a": 0, "b": 1, "ab": 2, "Ġ": 3, "<|end|>": 4}, "merges": ["a b"]}
}"#;

fn write(dir: &Path, name: &str, text: &str) {
    std::fs::write(dir.join(name), text).unwrap();
}

fn tiny_dir() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    write(dir.path(), "tokenizer.json", TINY);
    dir
}

#[test]
fn missing_paths_are_not_found() {
    let err = Tokenizer::load("/nonexistent/tell/tokenizer").unwrap_err();
    assert!(matches!(err, TokenizerError::NotFound { .. }), "{err}");
    let empty = tempfile::tempdir().unwrap();
    let err = Tokenizer::load(empty.path()).unwrap_err();
    assert!(matches!(err, TokenizerError::NotFound { .. }), "{err}");
    assert!(err.to_string().contains("tokenizer.json"), "{err}");
}

#[test]
fn malformed_tokenizer_json_is_invalid_tokenizer() {
    for text in [
        "",
        "not json",
        "{\"model\": {\"type\": \"BPE\"",
        "{\"version\": \"1.0\"}",
        "[1, 2]",
    ] {
        let dir = tempfile::tempdir().unwrap();
        write(dir.path(), "tokenizer.json", text);
        let err = Tokenizer::load(dir.path()).unwrap_err();
        assert!(
            matches!(err, TokenizerError::InvalidTokenizer { .. }),
            "{text:?}: {err}"
        );
    }
}

#[test]
fn malformed_config_is_invalid_config() {
    for text in [
        "{",
        "[]",
        r#"{"bos_token": 5}"#,
        r#"{"add_bos_token": "yes"}"#,
        r#"{"chat_template": 3}"#,
    ] {
        let dir = tiny_dir();
        write(dir.path(), "tokenizer_config.json", text);
        let err = Tokenizer::load(dir.path()).unwrap_err();
        assert!(
            matches!(err, TokenizerError::InvalidConfig { .. }),
            "{text:?}: {err}"
        );
    }
    let dir = tiny_dir();
    write(
        dir.path(),
        "generation_config.json",
        r#"{"eos_token_id": ["x"]}"#,
    );
    let err = Tokenizer::load(dir.path()).unwrap_err();
    assert!(matches!(err, TokenizerError::InvalidConfig { .. }), "{err}");
}

#[test]
fn template_errors_are_typed() {
    let dir = tiny_dir();
    // No template at all.
    let tok = Tokenizer::load(dir.path()).unwrap();
    let err = tok.render_chat(&[Message::user("a")], true).unwrap_err();
    assert!(
        matches!(err, TokenizerError::NoChatTemplate { .. }),
        "{err}"
    );
    // A template that does not compile fails at load.
    write(
        dir.path(),
        "tokenizer_config.json",
        r#"{"chat_template": "{% if %}"}"#,
    );
    let err = Tokenizer::load(dir.path()).unwrap_err();
    assert!(matches!(err, TokenizerError::TemplateSyntax(_)), "{err}");
    // A template that raises fails at render, with its message.
    write(
        dir.path(),
        "tokenizer_config.json",
        r#"{"chat_template": "{% for m in messages %}{% if m.role == 'tool' %}{{ raise_exception('no tools here') }}{% endif %}{{ m.content }}{% endfor %}"}"#,
    );
    let tok = Tokenizer::load(dir.path()).unwrap();
    assert_eq!(
        tok.render_chat(&[Message::user("ab")], false).unwrap(),
        "ab"
    );
    let err = tok
        .render_chat(&[Message::new("tool", "x")], false)
        .unwrap_err();
    assert!(
        matches!(err, TokenizerError::TemplateRender(ref m) if m.contains("no tools here")),
        "{err}"
    );
    // Calling something undefined is a render error too.
    let mut tok = tok;
    tok.set_chat_template("{{ undefined_function() }}").unwrap();
    let err = tok.render_chat(&[Message::user("a")], false).unwrap_err();
    assert!(matches!(err, TokenizerError::TemplateRender(_)), "{err}");
}

#[test]
fn side_files_set_specials_bos_template_and_stops() {
    let dir = tiny_dir();
    write(
        dir.path(),
        "tokenizer_config.json",
        r#"{"bos_token": {"content": "<|end|>"}, "eos_token": "<|end|>", "add_bos_token": true,
            "chat_template": "config template"}"#,
    );
    write(
        dir.path(),
        "chat_template.jinja",
        "{{ bos_token }}{% for m in messages %}{{ m.content }}{% endfor %}",
    );
    write(
        dir.path(),
        "generation_config.json",
        r#"{"eos_token_id": [3, 4]}"#,
    );
    let tok = Tokenizer::load(dir.path().join("tokenizer.json")).unwrap();
    assert_eq!(tok.encode("ab", false).unwrap(), [2]);
    // add_bos_token stated in the config: the post-processor is rebuilt with BOS.
    assert_eq!(tok.encode("ab", true).unwrap(), [4, 2]);
    assert_eq!(tok.encode("ab a<|end|>", false).unwrap(), [2, 3, 0, 4]);
    assert_eq!(tok.decode(&[2, 3, 0, 4], true).unwrap(), "ab a");
    assert_eq!(tok.decode(&[2, 3, 0, 4], false).unwrap(), "ab a<|end|>");
    assert!(tok.is_special(4) && !tok.is_special(2));
    // chat_template.jinja wins over the config's template.
    assert_eq!(
        tok.encode_chat(&[Message::user("ab")], false).unwrap(),
        [4, 2]
    );
    assert_eq!(tok.stop_token_ids(), [3, 4]);
    let err = tok.decode(&[2, 99], false).unwrap_err();
    assert!(
        matches!(
            err,
            TokenizerError::UnknownId {
                id: 99,
                vocab_size: 5
            }
        ),
        "{err}"
    );
}

fn tiny_gguf() -> GgufTokenizer {
    GgufTokenizer {
        model: "gpt2".into(),
        pre: Some("llama-bpe".into()),
        tokens: ["a", "b", "ab", "Ġ", "<|end|>", "<think>", "€"]
            .map(String::from)
            .to_vec(),
        token_types: Some(vec![1, 1, 1, 1, 3, 4, 1]),
        scores: None,
        merges: Some(vec!["a b".into()]),
        bos_token_id: Some(4),
        eos_token_id: Some(4),
        eot_token_id: None,
        unknown_token_id: None,
        padding_token_id: None,
        add_bos_token: Some(true),
        add_eos_token: None,
        add_space_prefix: None,
        chat_template: None,
    }
}

#[test]
fn tiny_gguf_builds_like_transformers() {
    let tok = Tokenizer::from_gguf(&tiny_gguf()).unwrap();
    assert_eq!(tok.encode("ab a", false).unwrap(), [2, 3, 0]);
    assert_eq!(tok.encode("ab", true).unwrap(), [4, 2]);
    // Control and user-defined tokens stay whole; `<|endoftext|>` is GPT2Tokenizer's default
    // special token, added after the vocabulary as transformers adds it.
    assert_eq!(tok.encode("<|end|><think>", false).unwrap(), [4, 5]);
    assert_eq!(tok.token_to_id("<|endoftext|>"), Some(7));
    assert!(tok.is_special(4) && !tok.is_special(5));
    // "€" is outside the byte alphabet: re-spelled as its UTF-8 bytes.
    assert_eq!(tok.token_to_id("âĤ¬"), Some(6));
    assert_eq!(tok.decode(&[6], false).unwrap(), "€");
    assert!(matches!(
        tok.render_chat(&[Message::user("a")], false).unwrap_err(),
        TokenizerError::NoChatTemplate { .. }
    ));
}

#[test]
fn bad_gguf_tokenizers_are_typed_errors() {
    let mut g = tiny_gguf();
    g.model = "llama".into();
    let err = Tokenizer::from_gguf(&g).unwrap_err();
    assert!(
        matches!(err, TokenizerError::UnsupportedGguf { ref model } if model == "llama"),
        "{err}"
    );

    let mut g = tiny_gguf();
    g.merges = None;
    assert!(matches!(
        Tokenizer::from_gguf(&g).unwrap_err(),
        TokenizerError::InvalidGguf { .. }
    ));

    for bad in ["a", "a b c", "x y"] {
        let mut g = tiny_gguf();
        g.merges = Some(vec![bad.into()]);
        let err = Tokenizer::from_gguf(&g).unwrap_err();
        assert!(
            matches!(err, TokenizerError::InvalidGguf { .. }),
            "{bad:?}: {err}"
        );
    }

    let mut g = tiny_gguf();
    g.bos_token_id = Some(1000);
    let err = Tokenizer::from_gguf(&g).unwrap_err();
    assert!(
        matches!(err, TokenizerError::InvalidGguf { ref reason } if reason.contains("1000")),
        "{err}"
    );

    let mut g = tiny_gguf();
    g.chat_template = Some("{% endfor %}".into());
    assert!(matches!(
        Tokenizer::from_gguf(&g).unwrap_err(),
        TokenizerError::TemplateSyntax(_)
    ));
}

#[test]
fn corrupt_gguf_files_are_gguf_errors() {
    let dir = tempfile::tempdir().unwrap();
    for (name, bytes) in [
        ("empty.gguf", &b""[..]),
        ("magic.gguf", &b"NOPE\x03\x00\x00\x00"[..]),
        ("short.gguf", &b"GGUF\x03\x00\x00\x00\x01"[..]),
    ] {
        let path = dir.path().join(name);
        std::fs::write(&path, bytes).unwrap();
        let err = Tokenizer::load(&path).unwrap_err();
        assert!(matches!(err, TokenizerError::Gguf(_)), "{name}: {err}");
    }
}
