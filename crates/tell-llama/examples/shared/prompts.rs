//! The benchmarks' prompt file: one JSON object per line with a `tokens` array of token ids
//! (written by `scripts/bench_generate.py prompts`).

/// The token ids of every line of `path`; panics with the reason on a malformed file (a
/// benchmark's input, not a user's).
pub fn read_token_prompts(path: &str) -> Vec<Vec<u32>> {
    std::fs::read_to_string(path)
        .unwrap_or_else(|e| panic!("{path}: {e}"))
        .lines()
        .map(|l| {
            let v: serde_json::Value = serde_json::from_str(l).expect("json line");
            v["tokens"]
                .as_array()
                .expect("tokens")
                .iter()
                .map(|t| t.as_u64().expect("id") as u32)
                .collect()
        })
        .collect()
}
