//! Patch sources: the values of other prompts' runs that `patch` edits copy in.

use std::sync::Arc;

use tell_llama::burn::tensor::backend::Backend;
use tell_llama::{Batch, Llama, Logits, PatchValues, Site};

/// Runs each source sequence and keeps its values at `sites` as patch values (one per line).
pub fn patch_sources<B: Backend>(
    llama: &Llama<B>,
    sources: &[Vec<u32>],
    sites: &[Site],
    batch_size: usize,
) -> tell_llama::Result<Vec<Arc<PatchValues>>> {
    let d = llama.config().hidden_size;
    let mut out = Vec::with_capacity(sources.len());
    for chunk in sources.chunks(batch_size.max(1)) {
        let batch = Batch::left_padded(chunk, 0)?;
        let mut output = llama.forward(&batch, sites, Logits::None)?;
        let mut values: Vec<PatchValues> =
            chunk.iter().map(|s| PatchValues::new(s.len())).collect();
        for site in sites {
            let t = output
                .captures
                .take(site)
                .ok_or_else(|| tell_llama::Error::Input(format!("no capture at {site}")))?;
            let data = t
                .into_data()
                .convert::<f32>()
                .into_vec::<f32>()
                .map_err(|e| tell_llama::Error::Input(format!("reading {site}: {e:?}")))?;
            for (b, v) in values.iter_mut().enumerate() {
                let from = (b * batch.seq + batch.start(b)) * d;
                v.insert(*site, data[from..(b + 1) * batch.seq * d].to_vec())?;
            }
        }
        out.extend(values.into_iter().map(Arc::new));
    }
    Ok(out)
}
