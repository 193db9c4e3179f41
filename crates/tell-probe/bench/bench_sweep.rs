//! Benchmark: logistic-probe layer sweep (grouped 5-fold CV) on synthetic activations, written
//! so that `bench/sweep_sklearn.py` can do the same work on the same data and folds.
//!
//! `cargo run --release -p tell-probe --example bench_sweep -- OUT_DIR LAYERS ROWS FEATURES L2|cv`

use std::io::Write;
use std::time::Instant;
use tell_probe::synthetic::{generate, SynthSpec};
use tell_probe::{
    grouped_kfold, sweep, Calibration, CvOptions, Family, FitOptions, Matrix, SweepInput, L2,
};

fn arg<T: std::str::FromStr>(args: &[String], i: usize, default: T) -> T {
    args.get(i).and_then(|s| s.parse().ok()).unwrap_or(default)
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().collect();
    let out = std::path::PathBuf::from(
        args.get(1)
            .cloned()
            .unwrap_or("/tmp/tell-probe-bench".into()),
    );
    let layers: usize = arg(&args, 2, 33);
    let rows: usize = arg(&args, 3, 2000);
    let d: usize = arg(&args, 4, 4096);
    let l2_arg = args.get(5).cloned().unwrap_or("1e-2".into());
    let tol: f64 = arg(&args, 6, 1e-4);
    // Optional: comma-separated families (default logreg) for timing the other probes.
    let families: Vec<Family> = match args.get(7) {
        Some(f) => f.split(',').map(Family::parse).collect::<Result<_, _>>()?,
        None => vec![Family::Logreg],
    };
    std::fs::create_dir_all(&out)?;
    // Signal peaks in the middle layers, as probing papers usually find.
    let t0 = Instant::now();
    let mut data: Vec<Vec<f32>> = Vec::with_capacity(layers);
    let mut labels = Vec::new();
    let mut groups = Vec::new();
    for l in 0..layers {
        let x = (l as f64 - 0.6 * layers as f64) / (0.2 * layers as f64);
        let s = generate(&SynthSpec {
            n_rows: rows,
            n_features: d,
            group_size: 4,
            signal: 1.0 + 4.0 * (-x * x).exp(),
            group_noise: 0.5,
            row_noise: 1.0,
            // Shared labels and direction; each layer its own noise.
            seed: 1000 + l as u64,
            label_seed: 7,
        });
        if l == 0 {
            labels = s.labels.clone();
            groups = s.groups.clone();
        }
        assert_eq!(
            labels, s.labels,
            "labels must match across layers (group-level seed)"
        );
        data.push(s.x);
    }
    eprintln!(
        "generated {layers} x {rows} x {d} in {:.1}s",
        t0.elapsed().as_secs_f64()
    );
    if std::env::var("TELL_BENCH_NO_WRITE").is_err() {
        let mut f = std::io::BufWriter::new(std::fs::File::create(out.join("x.f32"))?);
        for x in &data {
            for v in x {
                f.write_all(&v.to_le_bytes())?;
            }
        }
        std::fs::write(
            out.join("labels.u8"),
            labels.iter().map(|&l| l as u8).collect::<Vec<u8>>(),
        )?;
        let folds = grouped_kfold(&labels, &groups, 5, 0)?;
        let mut fold_of = vec![0u8; rows];
        for (k, f) in folds.iter().enumerate() {
            f.test.iter().for_each(|&r| fold_of[r] = k as u8);
        }
        std::fs::write(out.join("folds.u8"), fold_of)?;
        // Inner folds of the L2 choice (what `L2::CrossValidated` draws on each outer training
        // set), so scikit-learn can search the same splits: 255 = row not in the outer train.
        let mut inner = vec![255u8; 5 * rows];
        for (k, f) in folds.iter().enumerate() {
            let y: Vec<bool> = f.train.iter().map(|&r| labels[r]).collect();
            let g: Vec<u32> = f.train.iter().map(|&r| groups[r]).collect();
            for (j, fi) in grouped_kfold(&y, &g, 3, tell_probe::probe::INNER_SEED)?
                .iter()
                .enumerate()
            {
                fi.test
                    .iter()
                    .for_each(|&i| inner[k * rows + f.train[i]] = j as u8);
            }
        }
        std::fs::write(out.join("inner_folds.u8"), inner)?;
    }
    let l2 = if l2_arg == "cv" {
        L2::default()
    } else {
        L2::Fixed(l2_arg.parse()?)
    };
    let fit = FitOptions {
        family: Family::Logreg,
        l2,
        tol,
        max_iter: 1000,
        ..Default::default()
    };
    // TELL_BENCH_FULL=1: the CLI defaults (3 seeds, 1000 group-bootstrap resamples).
    let cv = if std::env::var("TELL_BENCH_FULL").is_ok() {
        CvOptions::default()
    } else {
        CvOptions {
            folds: 5,
            seeds: vec![0],
            fpr: 0.01,
            n_bootstrap: 0,
            ci_level: 0.95,
            // scikit-learn does no threshold calibration either: identical work.
            calibration: Calibration::Skip,
        }
    };
    let inputs: Vec<SweepInput> = data
        .iter()
        .enumerate()
        .map(|(l, x)| SweepInput {
            site: "hook_resid_post".into(),
            layer: l,
            position: "last".into(),
            matrix: Matrix::new(x, rows, d).expect("shape"),
            control: None,
        })
        .collect();
    let t = Instant::now();
    let res = sweep(&inputs, &labels, &groups, &families, &fit, &cv, "none")?;
    let secs = t.elapsed().as_secs_f64();
    let aurocs: Vec<f64> = res.rows.iter().map(|r| r.auroc).collect();
    let json = serde_json::json!({
        "tool": "tell-probe", "layers": layers, "rows": rows, "features": d, "folds": 5,
        "l2": l2_arg, "tol": tol, "seconds": secs, "auroc": aurocs,
        "threads": rayon::current_num_threads(), "best_layer": res.best_row().layer,
    });
    std::fs::write(out.join("rust.json"), serde_json::to_string_pretty(&json)?)?;
    for r in &res.rows {
        eprintln!(
            "layer {:2} {:8} AUROC {:.4} [{:.4}, {:.4}] recall@1% {:.3}",
            r.layer,
            r.family.name(),
            r.auroc,
            r.auroc_lo,
            r.auroc_hi,
            r.recall_at_fpr
        );
    }
    println!(
        "tell-probe: {layers} layers in {secs:.2}s, best layer {}",
        res.best_row().layer
    );
    Ok(())
}
