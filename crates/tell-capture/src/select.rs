//! Positions selected on the model's device, so that only what is stored crosses to the host.

use tell_llama::burn::tensor::{backend::Backend, Int, Tensor, TensorData};
use tell_llama::Batch;

/// For `--positions last`: each row's last prompt position of `value` (`[rows, seq, width]`,
/// left-padded like `batch`), as `[rows, width]` selected where the value lives; `None` when a
/// row has no prompt token (the host path reports that record).
pub(crate) fn last_positions<B: Backend>(
    value: &Tensor<B, 3>,
    batch: &Batch,
    prompt_lens: impl IntoIterator<Item = usize>,
) -> Option<Tensor<B, 2>> {
    let [rows, seq, width] = value.dims();
    let mut index = Vec::with_capacity(rows);
    for (b, prompt) in prompt_lens.into_iter().enumerate() {
        if prompt == 0 || batch.start(b) + prompt > seq {
            return None;
        }
        index.push((b * seq + batch.start(b) + prompt - 1) as i64);
    }
    if index.len() != rows {
        return None;
    }
    let device = value.device();
    let index = Tensor::<B, 1, Int>::from_data(TensorData::new(index, [rows]), &device);
    Some(value.clone().reshape([rows * seq, width]).select(0, index))
}
