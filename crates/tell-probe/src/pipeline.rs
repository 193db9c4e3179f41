//! The work behind `tell probe train | compare | apply`: store + labels in, sweep, metrics, plots,
//! probe files and transfer matrix out. The binary only parses arguments and calls these.

use crate::artifact::{ProbeArtifact, ProbeMeta, Provenance};
use crate::cv::{train, Control, CvOptions};
use crate::data::{group_ids, Matrix};
use crate::error::{ProbeError, Result};
use crate::probe::{Family, FitOptions};
use crate::store_io::{
    column_values, gather, join_labels, layer_keys, load_finite, open_pooled, read_labels,
    ControlSource,
};
use crate::sweep::{rank, sweep, write_metrics_csv, SweepInput, SweepResult, SweepRow};
use crate::transfer::{transfer, Subset, TransferMatrix};
use crate::{plot::write_layer_plots, read_metrics_csv};
use std::collections::BTreeSet;
use std::io::Write;
use std::path::{Path, PathBuf};
use tell_store::{RecordRow, SiteLayerKey};

/// Everything `tell probe train` needs.
#[derive(Clone, Debug)]
pub struct TrainConfig {
    /// Activation store directory.
    pub acts: PathBuf,
    /// Labels CSV.
    pub labels: PathBuf,
    /// Label column.
    pub label: String,
    /// Value of the label column that means positive (`None`: 1/0, true/false, yes/no).
    pub positive: Option<String>,
    /// Columns joining the labels to records.csv (default `id`).
    pub join_on: Vec<String>,
    /// records.csv column whose values are the CV groups (default `query_id`).
    pub group_by: String,
    /// Probe families to sweep.
    pub families: Vec<Family>,
    /// Restrict to these sites (`None`: all per-layer sites).
    pub sites: Option<Vec<String>>,
    /// Restrict to these layers (`None`: all).
    pub layers: Option<Vec<u32>>,
    /// Fit options (family is set per combination).
    pub fit: FitOptions,
    /// Cross-validation options.
    pub cv: CvOptions,
    /// Control set for the recall@FPR threshold.
    pub control: ControlSource,
    /// Leave out records the labels file has no row for, instead of refusing them; for probes
    /// on a subset of a store (e.g. only the queries faked under a baseline).
    pub skip_unlabelled: bool,
    /// records.csv column whose values define the transfer matrix subsets (e.g. `condition`).
    pub transfer_by: Option<String>,
    /// Output directory.
    pub out: PathBuf,
}

/// What `train_from_store` wrote.
#[derive(Clone, Debug)]
pub struct TrainOutcome {
    /// The sweep (all rows, best index).
    pub sweep: SweepResult,
    /// Training rows (records with labels, control rows excluded) and their groups.
    pub n_rows: usize,
    /// Distinct groups among them.
    pub n_groups: usize,
    /// Control rows used for thresholds (0 without a control set).
    pub n_control: usize,
    /// Best probe per family: (family, directory).
    pub probes: Vec<(Family, PathBuf)>,
    /// The transfer matrix and its CSV, when asked for.
    pub transfer: Option<(TransferMatrix, PathBuf)>,
}

/// Train rows' positions in the store, their labels and groups, and the control rows.
struct Rows {
    train: Vec<usize>,
    labels: Vec<bool>,
    groups: Vec<u32>,
    control_rows: Vec<usize>,
}

fn select_rows(cfg: &TrainConfig, records: &[RecordRow]) -> Result<Rows> {
    let is_control: Vec<bool> = match &cfg.control {
        ControlSource::Where { column, value } => {
            let all: Vec<&RecordRow> = records.iter().collect();
            let vals = column_values(&cfg.acts, &all, column)?;
            vals.iter().map(|v| v == value).collect()
        }
        _ => vec![false; records.len()],
    };
    let control_rows: Vec<usize> = (0..records.len()).filter(|&i| is_control[i]).collect();
    if matches!(cfg.control, ControlSource::Where { .. }) && control_rows.is_empty() {
        return Err(ProbeError::StoreMismatch {
            store: cfg.acts.display().to_string(),
            reason: format!("no record matches --control-where {}", cfg.control.name()),
        });
    }
    let table = read_labels(
        &cfg.labels,
        &cfg.join_on,
        &cfg.label,
        cfg.positive.as_deref(),
    )?;
    let train: Vec<usize> = (0..records.len())
        .filter(|&i| !is_control[i])
        .filter(|&i| !cfg.skip_unlabelled || table.get(&records[i].meta).is_some())
        .collect();
    let recs: Vec<&RecordRow> = train.iter().map(|&i| &records[i]).collect();
    let labels = join_labels(&cfg.acts, &table, &recs)?;
    let n_pos = labels.iter().filter(|&&l| l).count();
    if n_pos == 0 || n_pos == labels.len() {
        return Err(ProbeError::OneClass {
            n_pos,
            n_neg: labels.len() - n_pos,
            context: format!("label {} over {} records", table.definition(), labels.len()),
        });
    }
    let groups = group_ids(&column_values(&cfg.acts, &recs, &cfg.group_by)?);
    let n_groups = groups.iter().collect::<BTreeSet<_>>().len();
    if n_groups < cfg.cv.folds {
        return Err(ProbeError::TooFewGroups {
            groups: n_groups,
            folds: cfg.cv.folds,
        });
    }
    Ok(Rows {
        train,
        labels,
        groups,
        control_rows,
    })
}

/// One (site, layer) matrix gathered to the training rows, plus its control rows.
struct Loaded {
    key: SiteLayerKey,
    x: Vec<f32>,
    d: usize,
    control: Option<Vec<f32>>,
}

/// Runs the whole `tell probe train`: join, sweep, metrics.csv, plots, best probe per family
/// (under `out/probes/<family>/`, the overall best also in `out/`), transfer matrix.
pub fn train_from_store(cfg: &TrainConfig) -> Result<TrainOutcome> {
    let store = open_pooled(&cfg.acts)?;
    let records = store.records()?;
    let position = store.manifest().positions.as_str().to_string();
    let keys = layer_keys(&store, cfg.sites.as_deref(), cfg.layers.as_deref())?;
    let rows = select_rows(cfg, &records)?;
    let control_store = match &cfg.control {
        ControlSource::Store(dir) => {
            let s = open_pooled(dir)?;
            let r = s.records()?;
            Some((s, r))
        }
        _ => None,
    };
    let mut loaded = Vec::with_capacity(keys.len());
    for key in &keys {
        let m = load_finite(&store, key, &records)?;
        let control = match (&control_store, rows.control_rows.is_empty()) {
            (Some((cs, crec)), _) => {
                let cpos = cs.manifest().positions.as_str();
                let mismatch = |reason: String| ProbeError::StoreMismatch {
                    store: cs.dir().display().to_string(),
                    reason,
                };
                if cpos != position {
                    return Err(mismatch(format!(
                        "control store has positions {cpos}, the training store {position}"
                    )));
                }
                let cw = cs
                    .width(key)
                    .map_err(|_| mismatch(format!("control store has no {key}")))?;
                if cw != m.cols {
                    return Err(mismatch(format!(
                        "control {key} has width {cw}, the training store {}",
                        m.cols
                    )));
                }
                Some(load_finite(cs, key, crec)?.data)
            }
            (None, false) => Some(gather(&m, &rows.control_rows)),
            (None, true) => None,
        };
        loaded.push(Loaded {
            key: key.clone(),
            x: gather(&m, &rows.train),
            d: m.cols,
            control,
        });
    }
    let n = rows.train.len();
    let mut inputs = Vec::with_capacity(loaded.len());
    for l in &loaded {
        inputs.push(SweepInput {
            site: l.key.site.clone(),
            layer: l.key.layer.unwrap_or(0) as usize,
            position: position.clone(),
            matrix: Matrix::new(&l.x, n, l.d)?,
            control: match &l.control {
                Some(c) => Some(Matrix::new(c, c.len() / l.d.max(1), l.d)?),
                None => None,
            },
        });
    }
    let control_name = cfg.control.name();
    let result = sweep(
        &inputs,
        &rows.labels,
        &rows.groups,
        &cfg.families,
        &cfg.fit,
        &cfg.cv,
        &control_name,
    )?;
    std::fs::create_dir_all(&cfg.out).map_err(|e| ProbeError::io(&cfg.out, e))?;
    write_metrics_csv(cfg.out.join("metrics.csv"), &result)?;
    let table = read_labels(
        &cfg.labels,
        &cfg.join_on,
        &cfg.label,
        cfg.positive.as_deref(),
    )?;
    let title = format!("probe: {} ({position})", table.definition());
    write_layer_plots(
        &result,
        &title,
        cfg.out.join("layers.svg"),
        cfg.out.join("layers.png"),
    )?;
    let definition = table.definition();
    let input_of = |row: &SweepRow| {
        inputs
            .iter()
            .position(|i| i.site == row.site && i.layer == row.layer)
            .unwrap_or(0)
    };
    let mut probes = Vec::new();
    for &family in &cfg.families {
        let Some(best) = rank(&result.rows)
            .into_iter()
            .find(|r| r.family == family)
            .cloned()
        else {
            continue;
        };
        let inp = &inputs[input_of(&best)];
        let control = inp.control.map(|matrix| Control {
            name: &control_name,
            matrix,
        });
        let fit = FitOptions {
            family,
            ..cfg.fit.clone()
        };
        let report = train(
            &inp.matrix,
            &rows.labels,
            &rows.groups,
            control.as_ref(),
            &fit,
            &cfg.cv,
        )?;
        let prov = Provenance {
            site: &inp.site,
            layer: inp.layer,
            position: &inp.position,
            label_definition: &definition,
        };
        let art =
            ProbeArtifact::from_report(&report, &prov, &inp.matrix, &rows.labels, &rows.groups);
        let dir = cfg.out.join("probes").join(family.name());
        art.save(&dir)?;
        if family == result.best_row().family {
            art.save(&cfg.out)?;
        }
        probes.push((family, dir));
    }
    let transfer_out = match &cfg.transfer_by {
        Some(column) => {
            let best = result.best_row();
            let inp = &inputs[input_of(best)];
            let recs: Vec<&RecordRow> = rows.train.iter().map(|&i| &records[i]).collect();
            let vals = column_values(&cfg.acts, &recs, column)?;
            let mut names: Vec<String> = Vec::new();
            for v in &vals {
                if !names.contains(v) {
                    names.push(v.clone());
                }
            }
            let subsets: Vec<Subset> = names
                .iter()
                .map(|name| Subset {
                    name: name.clone(),
                    mask: vals.iter().map(|v| v == name).collect(),
                })
                .collect();
            let control = inp.control.map(|matrix| Control {
                name: &control_name,
                matrix,
            });
            let fit = FitOptions {
                family: best.family,
                ..cfg.fit.clone()
            };
            let tm = transfer(
                &inp.matrix,
                &rows.labels,
                &rows.groups,
                &subsets,
                control.as_ref(),
                &fit,
                &cfg.cv,
            )?;
            let path = cfg.out.join("transfer.csv");
            write_transfer_csv(&path, column, best, &tm)?;
            Some((tm, path))
        }
        None => None,
    };
    Ok(TrainOutcome {
        n_rows: n,
        n_groups: rows.groups.iter().collect::<BTreeSet<_>>().len(),
        n_control: inputs
            .first()
            .and_then(|i| i.control.map(|c| c.n_rows()))
            .unwrap_or(0),
        sweep: result,
        probes,
        transfer: transfer_out,
    })
}

/// Header of `transfer.csv` (one row per train subset x test subset).
pub const TRANSFER_HEADER: &str =
    "column,site,layer,position,family,train,test,auroc,auroc_lo,auroc_hi,recall_at_fpr";

fn write_transfer_csv(path: &Path, column: &str, at: &SweepRow, tm: &TransferMatrix) -> Result<()> {
    let mut out = format!("{TRANSFER_HEADER}\n");
    for (i, a) in tm.names.iter().enumerate() {
        for (j, b) in tm.names.iter().enumerate() {
            out.push_str(&format!(
                "{},{},{},{},{},{},{},{:.6},{:.6},{:.6},{:.6}\n",
                csv_field(column),
                csv_field(&at.site),
                at.layer,
                csv_field(&at.position),
                at.family.name(),
                csv_field(a),
                csv_field(b),
                tm.auroc[i][j],
                tm.auroc_ci[i][j].lo,
                tm.auroc_ci[i][j].hi,
                tm.recall_at_fpr[i][j]
            ));
        }
    }
    write_text(path, &out)
}

fn csv_field(s: &str) -> String {
    if s.contains([',', '"', '\n']) {
        format!("\"{}\"", s.replace('"', "\"\""))
    } else {
        s.to_string()
    }
}

fn write_text(path: &Path, text: &str) -> Result<()> {
    let mut f = std::fs::File::create(path).map_err(|e| ProbeError::io(path, e))?;
    f.write_all(text.as_bytes())
        .map_err(|e| ProbeError::io(path, e))
}

/// Reads `DIR/metrics.csv` (or the given CSV file) and returns its rows best first.
pub fn compare_rows(path: &Path) -> Result<Vec<SweepRow>> {
    let file = if path.is_dir() {
        path.join("metrics.csv")
    } else {
        path.to_path_buf()
    };
    let rows = read_metrics_csv(&file)?;
    Ok(rank(&rows).into_iter().cloned().collect())
}

/// The per-layer table of `tell probe compare`, one line per row in the given order.
pub fn format_table(rows: &[SweepRow]) -> String {
    let mut s = format!(
        "{:>4}  {:<20} {:>5} {:<14} {:<8} {:>7} {:>17} {:>8} {:>10} {:>8}\n",
        "rank",
        "site",
        "layer",
        "position",
        "family",
        "auroc",
        "95% interval",
        "bal_acc",
        "recall@fpr",
        "fpr"
    );
    for (i, r) in rows.iter().enumerate() {
        s.push_str(&format!(
            "{:>4}  {:<20} {:>5} {:<14} {:<8} {:>7.4} {:>17} {:>8.4} {:>10.4} {:>8}\n",
            i + 1,
            r.site,
            r.layer,
            r.position,
            r.family.name(),
            r.auroc,
            format!("[{:.4}, {:.4}]", r.auroc_lo, r.auroc_hi),
            r.balanced_accuracy,
            r.recall_at_fpr,
            r.fpr
        ));
    }
    s
}

/// What `apply_to_store` wrote.
#[derive(Clone, Debug)]
pub struct ApplyOutcome {
    /// The probe that was applied.
    pub probe: ProbeArtifact,
    /// Records scored.
    pub n_records: usize,
    /// Records above the probe's threshold.
    pub n_flagged: usize,
    /// Threshold used (the probe's; 0 when it has none).
    pub threshold: f64,
}

/// Header of the scores CSV written by [`apply_to_store`].
pub const SCORES_HEADER: &str = "record,id,score,predicted";

/// Header of the per-token scores CSV written by [`apply_to_store`] for a store of every token:
/// `position` counts from the record's first token, `response` is 1 for the response's tokens.
pub const TOKEN_SCORES_HEADER: &str = "record,id,position,response,score,predicted";

/// Scores every record of a store with a saved probe and writes `record,id,score,predicted`
/// (predicted = score above the probe's threshold); a store of every token (`--positions all`)
/// gets one row per token instead ([`TOKEN_SCORES_HEADER`]). Refuses a store whose position, site/layer
/// or width does not match the probe.
pub fn apply_to_store(probe_dir: &Path, acts: &Path, out: &Path) -> Result<ApplyOutcome> {
    let art = ProbeArtifact::load(probe_dir)?;
    let store = tell_store::Store::open(acts)?;
    if store.manifest().positions == tell_store::Positions::All {
        return apply_to_tokens(art, &store, probe_dir, acts, out);
    }
    let store = open_pooled(acts)?;
    let meta = &art.meta;
    let pos = store.manifest().positions.as_str();
    if pos != meta.position {
        return Err(misfit(
            acts,
            probe_dir,
            format!("it holds position {pos}, the probe reads {}", meta.position),
        ));
    }
    let key = probe_key(&store, meta, probe_dir, acts)?;
    let records = store.records()?;
    let m = load_finite(&store, &key, &records)?;
    let scores = art.probe.apply(&Matrix::new(&m.data, m.rows, m.cols)?)?;
    let threshold = threshold_of(meta);
    let mut text = format!("{SCORES_HEADER}\n");
    let mut n_flagged = 0;
    for (r, &s) in records.iter().zip(&scores) {
        let flag = s > threshold;
        n_flagged += flag as usize;
        text.push_str(&format!(
            "{},{},{s},{}\n",
            r.index,
            csv_field(&r.meta.id),
            flag as u8
        ));
    }
    if let Some(parent) = out.parent().filter(|p| !p.as_os_str().is_empty()) {
        std::fs::create_dir_all(parent).map_err(|e| ProbeError::io(parent, e))?;
    }
    write_text(out, &text)?;
    Ok(ApplyOutcome {
        n_records: records.len(),
        n_flagged,
        threshold,
        probe: art,
    })
}

/// [`apply_to_store`] on a store captured with `--positions all`: one score per token (what
/// `tell generate --monitor` computes during decoding), whatever position the probe was trained
/// on.
fn apply_to_tokens(
    art: ProbeArtifact,
    store: &tell_store::Store,
    probe_dir: &Path,
    acts: &Path,
    out: &Path,
) -> Result<ApplyOutcome> {
    let meta = &art.meta;
    let key = probe_key(store, meta, probe_dir, acts)?;
    let threshold = threshold_of(meta);
    let mut text = format!("{TOKEN_SCORES_HEADER}\n");
    let (mut n_records, mut n_flagged) = (0, 0);
    for r in store.records()? {
        let m = store.record(r.index, &key)?;
        let x = Matrix::new(&m.data, m.rows, m.cols)?;
        let scores = art.probe.apply(&x).map_err(|e| {
            misfit(
                acts,
                probe_dir,
                format!("record {} (id {:?}): {e}", r.index, r.meta.id),
            )
        })?;
        let prompt = r.meta.prompt_tokens();
        for (t, &s) in scores.iter().enumerate() {
            let flag = s > threshold;
            n_flagged += flag as usize;
            text.push_str(&format!(
                "{},{},{t},{},{s},{}\n",
                r.index,
                csv_field(&r.meta.id),
                (t >= prompt) as u8,
                flag as u8
            ));
        }
        n_records += 1;
    }
    if let Some(parent) = out.parent().filter(|p| !p.as_os_str().is_empty()) {
        std::fs::create_dir_all(parent).map_err(|e| ProbeError::io(parent, e))?;
    }
    write_text(out, &text)?;
    Ok(ApplyOutcome {
        n_records,
        n_flagged,
        threshold,
        probe: art,
    })
}

/// The error of a store the probe at `probe_dir` does not fit.
fn misfit(acts: &Path, probe_dir: &Path, reason: String) -> ProbeError {
    ProbeError::StoreMismatch {
        store: acts.display().to_string(),
        reason: format!(
            "{reason}; the probe {} does not fit it",
            probe_dir.display()
        ),
    }
}

/// The store matrix the probe reads, checked to exist with the probe's width.
fn probe_key(
    store: &tell_store::Store,
    meta: &ProbeMeta,
    probe_dir: &Path,
    acts: &Path,
) -> Result<SiteLayerKey> {
    let key = SiteLayerKey::new(&meta.site, meta.layer as u32);
    let width = store.width(&key).map_err(|_| {
        let have: Vec<String> = store.keys().iter().map(|k| k.tensor_name()).collect();
        misfit(
            acts,
            probe_dir,
            format!("it has no {key} (it has: {})", have.join(", ")),
        )
    })?;
    if width != meta.n_features {
        return Err(misfit(
            acts,
            probe_dir,
            format!(
                "{key} has width {width}, the probe reads {} features",
                meta.n_features
            ),
        ));
    }
    Ok(key)
}

/// The probe's threshold (0, its natural boundary, when it has none).
fn threshold_of(meta: &ProbeMeta) -> f64 {
    if meta.threshold.is_finite() {
        meta.threshold
    } else {
        0.0
    }
}
