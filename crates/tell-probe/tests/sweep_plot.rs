//! Layer sweep: one row per (layer, family), best layer found, metrics.csv, SVG and PNG plots.

use tell_probe::synthetic::{generate, SynthSpec};
use tell_probe::{
    rank, read_metrics_csv, sweep, write_layer_plots, write_metrics_csv, CvOptions, Family,
    FitOptions, Matrix, SweepInput, L2,
};

#[test]
fn sweep_finds_the_informative_layer_and_writes_outputs() {
    let (n, d) = (160, 12);
    // Signal grows to layer 3 and fades again.
    let signals = [0.2, 1.0, 2.0, 4.0, 2.0, 0.5];
    let data: Vec<Vec<f32>> = signals
        .iter()
        .enumerate()
        .map(|(l, &s)| {
            generate(&SynthSpec {
                n_rows: n,
                n_features: d,
                group_size: 4,
                signal: s,
                group_noise: 0.3,
                row_noise: 1.0,
                seed: 100 + l as u64,
                label_seed: 1,
            })
            .x
        })
        .collect();
    let base = generate(&SynthSpec {
        n_rows: n,
        n_features: d,
        group_size: 4,
        signal: 0.0,
        group_noise: 0.3,
        row_noise: 1.0,
        seed: 0,
        label_seed: 1,
    });
    let inputs: Vec<SweepInput> = data
        .iter()
        .enumerate()
        .map(|(l, x)| SweepInput {
            site: "hook_resid_post".into(),
            layer: l,
            position: "last".into(),
            matrix: Matrix::new(x, n, d).unwrap(),
            control: None,
        })
        .collect();
    let fit = FitOptions {
        l2: L2::Fixed(1e-2),
        ..Default::default()
    };
    let cv = CvOptions {
        folds: 4,
        seeds: vec![0],
        n_bootstrap: 100,
        ..Default::default()
    };
    let res = sweep(
        &inputs,
        &base.labels,
        &base.groups,
        &Family::ALL,
        &fit,
        &cv,
        "none",
    )
    .unwrap();
    assert_eq!(res.rows.len(), 18);
    assert_eq!(res.best_row().layer, 3);
    let layer0 = res
        .rows
        .iter()
        .find(|r| r.layer == 0 && r.family == Family::Logreg)
        .unwrap();
    assert!(
        layer0.auroc < 0.75 && res.best_row().auroc > 0.9,
        "{layer0:?} {:?}",
        res.best_row()
    );

    let dir = std::env::temp_dir().join(format!("tell-probe-sweep-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    write_metrics_csv(dir.join("metrics.csv"), &res).unwrap();
    let csv = std::fs::read_to_string(dir.join("metrics.csv")).unwrap();
    let lines: Vec<&str> = csv.lines().collect();
    assert_eq!(lines.len(), 19);
    assert!(lines[0].starts_with("site,layer,position,family,auroc"));
    assert_eq!(lines.iter().filter(|l| l.ends_with(",1")).count(), 1);
    // Read back for `compare`: same rows (to the 6 decimals written), best first.
    let back = read_metrics_csv(dir.join("metrics.csv")).unwrap();
    assert_eq!(back.len(), 18);
    let ranked = rank(&back);
    assert_eq!(ranked[0].layer, 3);
    assert!((ranked[0].auroc - res.best_row().auroc).abs() < 1e-6);
    assert!(ranked.windows(2).all(|w| w[0].auroc >= w[1].auroc));
    write_layer_plots(
        &res,
        "synthetic sweep",
        dir.join("layers.svg"),
        dir.join("layers.png"),
    )
    .unwrap();
    let svg = std::fs::read_to_string(dir.join("layers.svg")).unwrap();
    assert!(svg.starts_with("<svg"));
    // Text as text: title, axes, one legend entry per family, the best layer.
    for text in [
        "synthetic sweep",
        "AUROC (95% CI)",
        "Recall @ 1% FPR",
        "layer",
        "logreg",
        "diffmean",
        "lda",
        "chance (AUROC 0.5)",
        "best: layer 3",
    ] {
        assert!(
            svg.contains(&format!("\n{text}\n</text>")),
            "layers.svg lacks {text:?}"
        );
    }
    // One AUROC band per family.
    assert_eq!(svg.matches("<polygon").count(), 3);
    let dec = png::Decoder::new(std::io::BufReader::new(
        std::fs::File::open(dir.join("layers.png")).unwrap(),
    ));
    let mut reader = dec.read_info().unwrap();
    let mut buf = vec![0; reader.output_buffer_size().unwrap()];
    let info = reader.next_frame(&mut buf).unwrap();
    assert_eq!(info.width, 1000);
    assert!(info.height > 600, "{}", info.height);
    let bpp = info.color_type.samples();
    let colours: std::collections::HashSet<&[u8]> = buf[..info.buffer_size()]
        .chunks(bpp)
        .map(|p| &p[..3])
        .collect();
    assert!(colours.len() > 50, "{} colours", colours.len());
    if let Ok(keep) = std::env::var("TELL_PROBE_KEEP_PLOT") {
        std::fs::copy(dir.join("layers.png"), format!("{keep}.png")).unwrap();
        std::fs::copy(dir.join("layers.svg"), format!("{keep}.svg")).unwrap();
    }
    std::fs::remove_dir_all(&dir).unwrap();
}
