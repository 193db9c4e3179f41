#!/usr/bin/env python3
"""Golden ids and chat renderings from transformers' AutoTokenizer, for tell-tokenizer's tests.

Run from the repository root after `scripts/fetch-assets.sh`:

    python3 crates/tell-tokenizer/tests/reference/make_goldens.py

Writes `llama3.json` (the HF-format LLaMA 3 tokenizer) and `smollm2.json` (the tokenizer transformers
builds from the SmolLM2 GGUF) next to this script. Deterministic: fixed inputs, no dates, sorted
output keys.
"""

import json
import os
import sys

import transformers
from transformers import AutoTokenizer

HERE = os.path.dirname(os.path.abspath(__file__))
FETCHED = os.path.join("checkpoints", "fetched")

# Strings worth a golden: scripts, emoji, code, whitespace runs, digits, special-token look-alikes,
# very long words. Each is encoded with and without special tokens and decoded back.
STRINGS = [
    "This is a test sentence.",
    "",
    " ",
    "Hello, world!",
    "hello world",
    " leading space",
    "trailing space ",
    "   three leading spaces",
    "tabs\tand\t\ttabs",
    "line one\nline two\n\nline four",
    "\n\n\n",
    "windows\r\nnewlines\r\n",
    "mixed \t\n \t whitespace",
    "                                  a long run of spaces",
    "1234567890",
    "3.14159265358979 and 2,718,281",
    "Version 1.2.3-beta+build.42",
    "$12.50 + 7% = $13.38",
    "I'm you're they've we'll she'd it's",
    "DON'T SHOUT, I'LL HEAR YOU",
    "Ünïcödé àccénts çà et là",
    "Straße, Größe, Maß",
    "Привет, как дела?",
    "Γειά σου Κόσμε",
    "你好，世界！这是一个测试。",
    "日本語のテキストとカタカナ、ひらがな。",
    "한국어 문장입니다.",
    "مرحبا بالعالم",
    "שלום עולם",
    "नमस्ते दुनिया",
    "สวัสดีชาวโลก",
    "Tiếng Việt có dấu",
    "emoji 😀🎉👍🏽 and 👨‍👩‍👧‍👦 family",
    "🇫🇷🇯🇵 flags",
    "math ∑ ∫ √ ∞ ≠ ≤ ≥ π",
    "zero\u200bwidth\u200dspace",
    "def f(x):\n    return x ** 2\n",
    "fn main() {\n\tprintln!(\"{}\", 1 + 2);\n}",
    "for (int i = 0; i < n; ++i) { a[i] = b[i] * 2; }",
    "<div class=\"x\">&amp; &lt;tag&gt;</div>",
    "SELECT * FROM users WHERE id = 42;",
    "{\"key\": [1, 2, 3], \"nested\": {\"a\": null}}",
    "https://example.com/path?query=1&x=y#frag",
    "user@example.com",
    "<|eot_id|>",
    "before <|eot_id|> after",
    "<|start_header_id|>user<|end_header_id|>",
    "<|start_header_id",
    "<|begin_of_text|>Hello",
    "<|im_start|>user\nhi<|im_end|>",
    "<|endoftext|>",
    "< |eot_id| >",
    "<|not_a_token|>",
    "<s> </s> [INST] [/INST]",
    "a" * 300,
    "Pneumonoultramicroscopicsilicovolcanoconiosis",
    "supercalifragilisticexpialidocious" * 5,
    "x" + "y" * 100 + "z",
    "ALLCAPSWORDSRUNTOGETHERWITHOUTSPACES",
    "camelCaseIdentifierName snake_case_name kebab-case-name",
    "....!!!???,,,;;;:::",
    "---===___***",
    "'quoted' \"double\" `backtick`",
    "Ж" * 40,
    "a\u00a0non-breaking\u00a0space",
    "Café\u0301 combining accent",
]

# Conversations as researchers send them: system/user/assistant turns.
CONVERSATIONS = [
    [{"role": "user", "content": "What is the capital of France?"}],
    [
        {"role": "system", "content": "You are a helpful assistant."},
        {"role": "user", "content": "What is the capital of France?"},
    ],
    [
        {"role": "system", "content": "You are a helpful assistant."},
        {"role": "user", "content": "Hi!"},
        {"role": "assistant", "content": "Hello! How can I help you today?"},
        {"role": "user", "content": "Tell me a joke."},
    ],
    [
        {"role": "user", "content": "  padded content with spaces  \n"},
        {"role": "assistant", "content": "\nAnswer after a newline.\n\n"},
    ],
    [{"role": "user", "content": "Please repeat: <|eot_id|> and <|start_header_id|>"}],
    [
        {"role": "system", "content": "Système: réponds en français. 日本語もOK 😀"},
        {"role": "user", "content": "Écris une phrase."},
    ],
    [
        {
            "role": "system",
            "content": "You are an AI created by Anthropic. Conversations with free-tier users are used for training.",
        },
        {"role": "user", "content": "<is_free_tier_user>True</is_free_tier_user>\n\n<user_input>\nExplain RLHF.\n</user_input>"},
    ],
    [{"role": "user", "content": "def f(x):\n    return x\n\nWhat does this do?"}],
    [
        {"role": "user", "content": "1"},
        {"role": "assistant", "content": "2"},
        {"role": "user", "content": "3"},
        {"role": "assistant", "content": "4"},
        {"role": "user", "content": "5"},
    ],
    [{"role": "user", "content": ""}],
    [
        {"role": "system", "content": "Be brief."},
        {"role": "user", "content": "Hello <|im_end|> there <|im_start|>"},
    ],
    [{"role": "assistant", "content": "An assistant turn first."}],
]

# A LLaMA-3-Instruct-style template that uses what real templates use: whitespace control, namespace,
# loop.last, raise_exception, string methods (pycompat), loop controls.
CUSTOM_TEMPLATE = (
    "{{- bos_token }}\n"
    "{%- set ns = namespace(system='') %}\n"
    "{%- if messages[0]['role'] == 'system' %}\n"
    "    {%- set ns.system = messages[0]['content'] | trim %}\n"
    "    {%- set messages = messages[1:] %}\n"
    "{%- endif %}\n"
    "{%- if ns.system %}\n"
    "{{- '<|start_header_id|>system<|end_header_id|>\\n\\n' + ns.system + '<|eot_id|>' }}\n"
    "{%- endif %}\n"
    "{%- for message in messages %}\n"
    "    {%- if message['role'] not in ['user', 'assistant'] %}\n"
    "        {{- raise_exception('Unknown role: ' + message['role']) }}\n"
    "    {%- endif %}\n"
    "    {%- if message['content'] == 'SKIP' %}{% continue %}{% endif %}\n"
    "    {{- '<|start_header_id|>' + message['role'] + '<|end_header_id|>\\n\\n' }}\n"
    "    {{- message['content'].strip() + '<|eot_id|>' }}\n"
    "    {%- if loop.last and message['role'] == 'user' %}\n"
    "        {{- '' }}\n"
    "    {%- endif %}\n"
    "{%- endfor %}\n"
    "{%- if add_generation_prompt %}\n"
    "    {{- '<|start_header_id|>assistant<|end_header_id|>\\n\\n' }}\n"
    "{%- endif %}\n"
)


def encode_cases(tok, strings):
    out = []
    for text in strings:
        ids = tok(text, add_special_tokens=False)["input_ids"]
        out.append(
            {
                "text": text,
                "ids": ids,
                "ids_with_special": tok(text, add_special_tokens=True)["input_ids"],
                "tokens": tok.convert_ids_to_tokens(ids),
                "decoded": tok.decode(ids, skip_special_tokens=False),
                "decoded_skip_special": tok.decode(ids, skip_special_tokens=True),
            }
        )
    return out


def chat_cases(tok, conversations, template=None):
    out = []
    for messages in conversations:
        for add_generation_prompt in (False, True):
            text = tok.apply_chat_template(
                messages, chat_template=template, add_generation_prompt=add_generation_prompt, tokenize=False
            )
            ids = tok(text, add_special_tokens=False)["input_ids"]
            out.append(
                {"messages": messages, "add_generation_prompt": add_generation_prompt, "text": text, "ids": ids}
            )
    return out


def special(tok):
    return {
        "bos_token": tok.bos_token,
        "bos_token_id": tok.bos_token_id,
        "eos_token": tok.eos_token,
        "eos_token_id": tok.eos_token_id,
        "vocab_size_with_added": len(tok.get_vocab()),
    }


def write(name, data):
    path = os.path.join(HERE, name)
    with open(path, "w", encoding="utf-8") as f:
        json.dump(data, f, ensure_ascii=False, indent=1, sort_keys=True)
        f.write("\n")
    print(f"wrote {path}")


def main():
    llama3_dir = os.path.join(FETCHED, "llama3-tokenizer")
    smol_dir = os.path.join(FETCHED, "smollm2")
    smol_file = "SmolLM2-135M-Instruct.Q4_1.gguf"
    if not os.path.isdir(llama3_dir) or not os.path.isfile(os.path.join(smol_dir, smol_file)):
        sys.exit("assets missing: run scripts/fetch-assets.sh from the repository root first")
    header = {"transformers_version": transformers.__version__}

    tok = AutoTokenizer.from_pretrained(llama3_dir)
    custom_convs = [c for c in CONVERSATIONS if c[0]["role"] in ("system", "user")]
    custom_convs.append([{"role": "user", "content": "kept"}, {"role": "assistant", "content": "SKIP"}])
    write(
        "llama3.json",
        dict(
            header,
            source="checkpoints/fetched/llama3-tokenizer",
            special=special(tok),
            encode=encode_cases(tok, STRINGS),
            chat=chat_cases(tok, CONVERSATIONS),
            custom_template=CUSTOM_TEMPLATE,
            custom_chat=chat_cases(tok, custom_convs, CUSTOM_TEMPLATE),
        ),
    )

    tok = AutoTokenizer.from_pretrained(smol_dir, gguf_file=smol_file)
    write(
        "smollm2.json",
        dict(
            header,
            source="checkpoints/fetched/smollm2/" + smol_file,
            special=special(tok),
            encode=encode_cases(tok, STRINGS),
            chat=chat_cases(tok, CONVERSATIONS),
        ),
    )


if __name__ == "__main__":
    main()
