//! `tell probe train | compare | apply | means`: linear probes per layer on an activation store.

use std::path::PathBuf;

use anyhow::{bail, Result};
use clap::Subcommand;
use tell_probe::{
    apply_to_store, compare_rows, format_table, train_from_store, ControlSource, CvOptions, Family,
    FitOptions, TrainConfig, L2,
};

/// Arguments of `tell probe`.
#[derive(clap::Args)]
pub struct Args {
    #[command(subcommand)]
    command: ProbeCommand,
}

#[derive(Subcommand)]
enum ProbeCommand {
    /// Sweep every (site, layer, position) x family with grouped CV; write metrics.csv,
    /// layers.svg/png, the best probe per family and (optionally) a transfer matrix.
    Train(Box<TrainArgs>),
    /// Print the per-layer table of a train output directory (or metrics.csv), best first.
    Compare(CompareArgs),
    /// Score every record of a store with a saved probe; write record, id, score, predicted.
    Apply(ApplyArgs),
    /// Difference of the raw activation means of two label groups at one site and layer, as a
    /// steering vector for `--edit "add ... vector=FILE"` (a .safetensors naming its site, layer).
    Means(MeansArgs),
}

/// Arguments of `tell probe means`.
#[derive(clap::Args)]
struct MeansArgs {
    /// Activation store directory with one row per record (not `--positions all`).
    #[arg(long)]
    acts: PathBuf,
    /// Labels CSV (e.g. labels.csv from `tell labels`).
    #[arg(long)]
    labels: PathBuf,
    /// Column of the labels CSV that holds the label.
    #[arg(long)]
    label: String,
    /// Label value of the group the vector points to (default: 1/true/yes).
    #[arg(long)]
    positive: Option<String>,
    /// Columns joining the labels CSV to the store's records.csv (comma-separated).
    #[arg(long, value_delimiter = ',', default_value = "id")]
    join_on: Vec<String>,
    /// Store site, e.g. hook_resid_post.
    #[arg(long, default_value = "hook_resid_post")]
    site: String,
    /// Layer.
    #[arg(long)]
    layer: u32,
    /// Leave out records with no row in the labels file (default: refuse them).
    #[arg(long)]
    skip_unlabelled: bool,
    /// The .safetensors file to write (tensors direction, mean_positive, mean_negative).
    #[arg(long)]
    out: PathBuf,
}

/// Arguments of `tell probe train`.
#[derive(clap::Args)]
struct TrainArgs {
    /// Activation store directory (from `tell capture`).
    #[arg(long)]
    acts: PathBuf,
    /// Labels CSV (e.g. labels.csv from `tell labels`).
    #[arg(long)]
    labels: PathBuf,
    /// Column of the labels CSV that holds the label.
    #[arg(long)]
    label: String,
    /// Label value that means positive (default: 1/true/yes are positive, 0/false/no negative).
    #[arg(long)]
    positive: Option<String>,
    /// Columns joining the labels CSV to the store's records.csv (comma-separated).
    #[arg(long, value_delimiter = ',', default_value = "id")]
    join_on: Vec<String>,
    /// records.csv column whose values are the CV groups (no group is in train and test).
    #[arg(long, default_value = "query_id")]
    group_by: String,
    /// Probe families (comma-separated): logreg, diffmean, lda.
    #[arg(long, value_delimiter = ',', default_value = "logreg,diffmean,lda")]
    families: Vec<String>,
    /// Only these capture sites (comma-separated, e.g. hook_resid_post).
    #[arg(long, value_delimiter = ',')]
    sites: Option<Vec<String>>,
    /// Only these layers (comma-separated).
    #[arg(long, value_delimiter = ',')]
    layers: Option<Vec<u32>>,
    /// Cross-validation folds.
    #[arg(long, default_value_t = 5)]
    folds: usize,
    /// Number of CV seeds (one full k-fold each).
    #[arg(long, default_value_t = 3)]
    seeds: u64,
    /// False-positive rate at which recall is reported and the threshold is set.
    #[arg(long, default_value_t = 0.01)]
    fpr: f64,
    /// Fixed L2 strength of the logistic probe (default: chosen by inner grouped CV).
    #[arg(long)]
    l2: Option<f64>,
    /// Group-bootstrap resamples for the AUROC interval.
    #[arg(long, default_value_t = 1000)]
    bootstrap: usize,
    /// Control store (e.g. benign prompts) whose scores set the recall@FPR threshold.
    #[arg(long, conflicts_with = "control_where")]
    control: Option<PathBuf>,
    /// Control records of the same store, COLUMN=VALUE (left out of training; need no label).
    #[arg(long)]
    control_where: Option<String>,
    /// records.csv column (e.g. condition): train under each value, evaluate under each.
    #[arg(long)]
    transfer_by: Option<String>,
    /// Leave out records with no row in the labels file (default: refuse them).
    #[arg(long)]
    skip_unlabelled: bool,
    /// Output directory.
    #[arg(long)]
    out: PathBuf,
    /// Print a JSON summary instead of text.
    #[arg(long)]
    json: bool,
}

/// Arguments of `tell probe compare`.
#[derive(clap::Args)]
struct CompareArgs {
    /// Output directory of `tell probe train` (or its metrics.csv).
    dir: PathBuf,
    /// Print JSON rows instead of a table.
    #[arg(long)]
    json: bool,
}

/// Arguments of `tell probe apply`.
#[derive(clap::Args)]
struct ApplyArgs {
    /// Probe directory (probe.json + probe.safetensors), e.g. a train output directory.
    probe: PathBuf,
    /// Activation store to score.
    #[arg(long)]
    acts: PathBuf,
    /// Scores CSV to write.
    #[arg(long)]
    out: PathBuf,
}

/// Runs one `tell probe` subcommand.
pub fn run(args: Args) -> Result<()> {
    match args.command {
        ProbeCommand::Train(a) => train(*a),
        ProbeCommand::Compare(a) => compare(a),
        ProbeCommand::Apply(a) => apply(a),
        ProbeCommand::Means(a) => means(a),
    }
}

fn means(a: MeansArgs) -> Result<()> {
    let site = if a.site.starts_with("hook_") || a.site.contains('.') {
        a.site
    } else {
        format!("hook_{}", a.site)
    };
    let cfg = tell_probe::means::MeansConfig {
        acts: a.acts,
        labels: a.labels,
        label: a.label,
        positive: a.positive,
        join_on: a.join_on,
        site,
        layer: a.layer,
        skip_unlabelled: a.skip_unlabelled,
        out: a.out,
    };
    let d = tell_probe::means::means_from_store(&cfg)?;
    println!(
        "mean difference at blocks.{}.{}: {} positive, {} negative records, norm {:.4} -> {}",
        cfg.layer,
        cfg.site,
        d.n_positive,
        d.n_negative,
        d.norm(),
        cfg.out.display()
    );
    Ok(())
}

fn train(a: TrainArgs) -> Result<()> {
    let families = a
        .families
        .iter()
        .map(|f| Family::parse(f))
        .collect::<Result<Vec<_>, _>>()?;
    if a.seeds == 0 {
        bail!("--seeds must be at least 1");
    }
    let control = match (a.control, a.control_where) {
        (Some(dir), _) => ControlSource::Store(dir),
        (None, Some(w)) => ControlSource::parse_where(&w)?,
        (None, None) => ControlSource::None,
    };
    let mut fit = FitOptions::default();
    if let Some(l2) = a.l2 {
        fit.l2 = L2::Fixed(l2);
    }
    let cfg = TrainConfig {
        acts: a.acts,
        labels: a.labels,
        label: a.label,
        positive: a.positive,
        join_on: a.join_on,
        group_by: a.group_by,
        families,
        sites: a.sites,
        layers: a.layers,
        fit,
        cv: CvOptions {
            folds: a.folds,
            seeds: (0..a.seeds).collect(),
            fpr: a.fpr,
            n_bootstrap: a.bootstrap,
            ..CvOptions::default()
        },
        control,
        skip_unlabelled: a.skip_unlabelled,
        transfer_by: a.transfer_by,
        out: a.out,
    };
    let o = train_from_store(&cfg)?;
    let best = o.sweep.best_row();
    if a.json {
        let v = serde_json::json!({
            "out": cfg.out, "rows": o.n_rows, "groups": o.n_groups, "control_rows": o.n_control,
            "combinations": o.sweep.rows.len(), "best": best,
            "probes": o.probes.iter().map(|(f, d)| (f.name().to_string(), serde_json::json!(d)))
                .collect::<serde_json::Map<_, _>>(),
            "transfer": o.transfer.as_ref().map(|(_, p)| p),
        });
        println!("{}", serde_json::to_string_pretty(&v)?);
        return Ok(());
    }
    println!(
        "{} combinations on {} records ({} groups, {} control rows) -> {}",
        o.sweep.rows.len(),
        o.n_rows,
        o.n_groups,
        o.n_control,
        cfg.out.join("metrics.csv").display()
    );
    println!(
        "best layer: {} (site {}, position {}, {}): AUROC {:.4} [{:.4}, {:.4}], recall@{} FPR {:.4}",
        best.layer,
        best.site,
        best.position,
        best.family.name(),
        best.auroc,
        best.auroc_lo,
        best.auroc_hi,
        best.fpr,
        best.recall_at_fpr
    );
    for (f, d) in &o.probes {
        println!("probe {}: {}", f.name(), d.display());
    }
    if let Some((_, p)) = &o.transfer {
        println!("transfer matrix: {}", p.display());
    }
    Ok(())
}

fn compare(a: CompareArgs) -> Result<()> {
    let rows = compare_rows(&a.dir)?;
    if a.json {
        println!("{}", serde_json::to_string_pretty(&rows)?);
    } else {
        print!("{}", format_table(&rows));
    }
    Ok(())
}

fn apply(a: ApplyArgs) -> Result<()> {
    let o = apply_to_store(&a.probe, &a.acts, &a.out)?;
    let m = &o.probe.meta;
    println!(
        "scored {} records with {} (layer {}, {}, {}): {} above threshold {:.6} -> {}",
        o.n_records,
        m.family.name(),
        m.layer,
        m.site,
        m.position,
        o.n_flagged,
        o.threshold,
        a.out.display()
    );
    Ok(())
}
