//! Layer plot: AUROC (with bootstrap intervals, chance at 0.5) and recall@FPR against layer, one
//! line per family, best layer marked. The sweep rows become plain [`tell_plot::LinePlot`] data;
//! `tell-plot` draws it (plotters, embedded DejaVu Sans) as SVG and PNG.

use crate::error::{ProbeError, Result};
use crate::sweep::{SweepResult, SweepRow};
use std::path::Path;
use tell_plot::{IntervalStyle, LinePlot, Marker, Panel, Reference, Series};

/// Series of the plot: rows sharing family, site and position, sorted by layer.
fn series(result: &SweepResult) -> Vec<(String, Vec<&SweepRow>)> {
    let mut keys: Vec<(String, String, String)> = Vec::new();
    for r in &result.rows {
        let k = (
            r.family.name().to_string(),
            r.site.clone(),
            r.position.clone(),
        );
        if !keys.contains(&k) {
            keys.push(k);
        }
    }
    let one_site = keys.iter().all(|k| k.1 == keys[0].1 && k.2 == keys[0].2);
    keys.into_iter()
        .map(|(f, s, p)| {
            let mut rows: Vec<&SweepRow> = result
                .rows
                .iter()
                .filter(|r| r.family.name() == f && r.site == s && r.position == p)
                .collect();
            rows.sort_by_key(|r| r.layer);
            let name = if one_site { f } else { format!("{f} {s} {p}") };
            (name, rows)
        })
        .collect()
}

/// The layer plot as plotting data: an AUROC panel (intervals as bands, chance line) over a
/// recall@FPR panel, the best layer marked and named in the legend.
pub fn layer_plot(result: &SweepResult, title: &str) -> LinePlot {
    let all = series(result);
    let fpr = result.rows.first().map_or(0.01, |r| r.fpr);
    let best = result.best_row();
    let curve = |rows: &[&SweepRow], val: fn(&SweepRow) -> f64| -> Vec<(f64, f64)> {
        rows.iter().map(|r| (r.layer as f64, val(r))).collect()
    };
    let auroc = all
        .iter()
        .map(|(name, rows)| Series {
            name: name.clone(),
            points: curve(rows, |r| r.auroc),
            intervals: Some(rows.iter().map(|r| (r.auroc_lo, r.auroc_hi)).collect()),
        })
        .collect();
    let recall = all
        .iter()
        .map(|(name, rows)| Series {
            name: name.clone(),
            points: curve(rows, |r| r.recall_at_fpr),
            intervals: None,
        })
        .collect();
    let mut notes = vec![best.family.name().to_string()];
    if result
        .rows
        .iter()
        .any(|r| r.site != best.site || r.position != best.position)
    {
        notes.push(format!("{} {}", best.site, best.position));
    }
    notes.push(format!("AUROC {:.3}", best.auroc));
    if best.auroc_lo.is_finite() && best.auroc_hi.is_finite() {
        notes.push(format!(
            "95% CI {:.3} to {:.3}",
            best.auroc_lo, best.auroc_hi
        ));
    }
    LinePlot {
        title: title.to_string(),
        x_label: "layer".into(),
        integer_x: true,
        panels: vec![
            Panel {
                y_label: "AUROC (95% CI)".into(),
                y_range: Some((0.5, 1.0)),
                reference: Some(Reference {
                    y: 0.5,
                    label: "chance (AUROC 0.5)".into(),
                }),
                series: auroc,
            },
            Panel {
                y_label: format!("Recall @ {}% FPR", fpr * 100.0),
                y_range: Some((0.0, 1.0)),
                reference: None,
                series: recall,
            },
        ],
        intervals: IntervalStyle::Band,
        marker: Some(Marker {
            x: best.layer as f64,
            label: format!("best: layer {}", best.layer),
        }),
        notes,
    }
}

/// Writes the layer plot as SVG and PNG.
pub fn write_layer_plots(
    result: &SweepResult,
    title: &str,
    svg_path: impl AsRef<Path>,
    png_path: impl AsRef<Path>,
) -> Result<()> {
    if result.rows.is_empty() {
        return Err(ProbeError::InvalidOption {
            name: "plot",
            reason: "no sweep rows".into(),
        });
    }
    tell_plot::write_line_plot(&layer_plot(result, title), svg_path, png_path)?;
    Ok(())
}
