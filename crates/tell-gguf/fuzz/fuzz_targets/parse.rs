//! Fuzz the whole read path: header, metadata, tensor infos, tensor bytes, dequantization,
//! the LLaMA config/tokenizer view and HF tensor loading. Any panic, out-of-bounds access or
//! oversized allocation (libFuzzer's -rss_limit_mb / -malloc_limit_mb) is a bug.
#![no_main]

use libfuzzer_sys::fuzz_target;
use tell_gguf::{GgufFile, LlamaGguf};

fuzz_target!(|data: &[u8]| {
    let Ok(file) = GgufFile::from_bytes(data.to_vec()) else {
        return;
    };
    for t in file.tensors() {
        let bytes = file
            .tensor_bytes(t)
            .expect("validated tensors lie inside the file");
        assert_eq!(bytes.len() as u64, t.n_bytes);
        if let Ok((v, _)) = file.tensor_f32(&t.name) {
            assert_eq!(v.len() as u64, t.n_elements);
        }
    }
    if let Ok(model) = LlamaGguf::from_file(file) {
        for t in model.file.tensors() {
            let _ = model.tensor_hf_from_info(t);
        }
    }
});
