//! Decoding with the KV cache gives the logits a full forward pass gives at the same position.

use std::path::Path;

use tell_llama::{generate, Batch, CpuBackend, GenerateOptions, Llama, Logits};

type B = CpuBackend;

fn model(name: &str) -> Llama<B> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../tests/parity/models")
        .join(name);
    Llama::load(&dir, &Default::default()).unwrap()
}

fn rel_err(a: &[f32], b: &[f32]) -> f32 {
    let scale = b.iter().fold(0f32, |m, v| m.max(v.abs()));
    a.iter().zip(b).fold(0f32, |m, (x, y)| m.max((x - y).abs())) / scale
}

#[test]
fn cached_decode_equals_full_forward() {
    for name in ["gqa", "llama3-rope", "head-dim"] {
        let model = model(name);
        let prompts = vec![vec![5, 9, 11, 3, 40], vec![7, 8], vec![60, 61, 62]];
        let extra = [[12u32, 13, 14], [15, 16, 17], [18, 19, 20]];
        let batch = Batch::left_padded(&prompts, 0).unwrap();
        let (_, mut cache) = model.prefill(&batch, &[], Logits::Last).unwrap();
        for step in 0..3 {
            let next: Vec<u32> = extra.iter().map(|e| e[step]).collect();
            let got = model.decode(&next, &mut cache).unwrap();
            let got = got.into_data().to_vec::<f32>().unwrap();
            for (row, p) in prompts.iter().enumerate() {
                let mut full = p.clone();
                full.extend_from_slice(&extra[row][..=step]);
                let want = model
                    .forward(&Batch::left_padded(&[full], 0).unwrap(), &[], Logits::Last)
                    .unwrap()
                    .logits
                    .unwrap()
                    .into_data()
                    .to_vec::<f32>()
                    .unwrap();
                let v = want.len();
                let err = rel_err(&got[row * v..(row + 1) * v], &want);
                assert!(err <= 1e-5, "{name} step {step} row {row}: {err}");
            }
        }
        assert_eq!(cache.len(), batch.seq + 3);
    }
}

#[test]
fn finished_rows_leave_the_batch_without_changing_the_others() {
    let model = model("gqa");
    let prompts = vec![vec![5, 9, 11], vec![7, 8, 30, 31, 32], vec![60]];
    let opts = GenerateOptions {
        max_new_tokens: 6,
        ..Default::default()
    };
    // Row 1 stops after two tokens through the stop check; the others run to the length limit.
    let batched = generate(&model, &prompts, &opts, |i, t| i == 1 && t.len() == 2).unwrap();
    assert_eq!(batched[1].tokens.len(), 2);
    for (i, p) in prompts.iter().enumerate() {
        let alone = generate(&model, std::slice::from_ref(p), &opts, |_, t| {
            i == 1 && t.len() == 2
        })
        .unwrap();
        assert_eq!(alone[0], batched[i], "row {i}");
    }
}

#[test]
fn sampling_is_deterministic_per_seed_and_batch_independent() {
    let model = model("tied");
    let prompts = vec![vec![5, 9, 11], vec![7, 8]];
    let opts = GenerateOptions {
        max_new_tokens: 8,
        temperature: 0.8,
        top_k: Some(20),
        top_p: Some(0.95),
        seed: 42,
        ..Default::default()
    };
    let a = generate(&model, &prompts, &opts, |_, _| false).unwrap();
    let b = generate(&model, &prompts, &opts, |_, _| false).unwrap();
    assert_eq!(a, b);
    let first_alone = generate(&model, &prompts[..1], &opts, |_, _| false).unwrap();
    assert_eq!(first_alone[0], a[0]);
    let other_seed = generate(
        &model,
        &prompts,
        &GenerateOptions { seed: 43, ..opts },
        |_, _| false,
    )
    .unwrap();
    assert_ne!(other_seed, a);
}

#[test]
fn queued_generation_refills_slots_without_changing_any_sequence() {
    let model = model("gqa");
    // Lengths 3, 5, 1, 7, 2, 4: prompts longer and shorter than the running cache join it.
    let prompts: Vec<Vec<u32>> = vec![
        vec![5, 9, 11],
        vec![7, 8, 30, 31, 32],
        vec![60],
        vec![1, 2, 3, 4, 5, 6, 7],
        vec![40, 41],
        vec![12, 13, 14, 15],
    ];
    let opts = GenerateOptions {
        max_new_tokens: 6,
        ..Default::default()
    };
    // Prompts 1 and 4 stop early, so their slots are refilled while the others run on.
    let early = |i: usize, t: &[u32]| (i == 1 && t.len() == 2) || (i == 4 && t.len() == 1);
    let mut queued = vec![None; prompts.len()];
    let mut order = Vec::new();
    tell_llama::generate_queued(&model, &prompts, 2, &opts, early, |i, g| {
        order.push(i);
        queued[i] = Some(g);
        std::ops::ControlFlow::Continue(())
    })
    .unwrap();
    assert_ne!(
        order,
        (0..prompts.len()).collect::<Vec<_>>(),
        "finished out of order"
    );
    for (i, p) in prompts.iter().enumerate() {
        let alone = generate(&model, std::slice::from_ref(p), &opts, |_, t| early(i, t)).unwrap();
        assert_eq!(Some(&alone[0]), queued[i].as_ref(), "prompt {i}");
    }
    // Sampling: a prompt draws from its own stream, whatever the batch size.
    let sampled = GenerateOptions {
        temperature: 0.8,
        top_k: Some(20),
        seed: 7,
        ..opts.clone()
    };
    let together = generate(&model, &prompts, &sampled, |_, _| false).unwrap();
    let mut queued = vec![None; prompts.len()];
    tell_llama::generate_queued(
        &model,
        &prompts,
        3,
        &sampled,
        |_, _| false,
        |i, g| {
            queued[i] = Some(g);
            std::ops::ControlFlow::Continue(())
        },
    )
    .unwrap();
    for (i, g) in together.iter().enumerate() {
        assert_eq!(Some(g), queued[i].as_ref(), "sampled prompt {i}");
    }
    // Break stops the run: only the sequences finished before it are reported.
    let mut seen = 0;
    tell_llama::generate_queued(&model, &prompts, 2, &opts, early, |_, _| {
        seen += 1;
        std::ops::ControlFlow::Break(())
    })
    .unwrap();
    assert_eq!(seen, 1);
}
