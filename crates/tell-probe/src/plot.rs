//! Layer plot: AUROC (with bootstrap intervals) and recall@FPR against layer, one line per
//! family, best layer marked. Built once as a scene of primitives, written as SVG (by hand) and
//! PNG (via [`crate::raster`]), so both files show the same picture.

use crate::error::{ProbeError, Result};
use crate::sweep::{SweepResult, SweepRow};
use std::fmt::Write as _;
use std::path::Path;

/// Text alignment relative to its position.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Anchor {
    /// Left-aligned.
    Start,
    /// Centred.
    Middle,
    /// Right-aligned.
    End,
}

/// A drawing primitive in pixel coordinates (y down).
#[derive(Clone, Debug, PartialEq)]
pub enum Prim {
    /// Polyline.
    Line {
        pts: Vec<(f64, f64)>,
        color: [u8; 3],
        width: f64,
        dash: Option<f64>,
    },
    /// Filled polygon.
    Polygon {
        pts: Vec<(f64, f64)>,
        color: [u8; 3],
        alpha: f64,
    },
    /// Filled circle.
    Circle {
        c: (f64, f64),
        r: f64,
        color: [u8; 3],
    },
    /// Text; baseline at `pos`, rotated 90 degrees counter-clockwise when `vertical`.
    Text {
        pos: (f64, f64),
        size: f64,
        text: String,
        anchor: Anchor,
        vertical: bool,
        color: [u8; 3],
    },
}

/// A picture: size and primitives in drawing order.
#[derive(Clone, Debug, PartialEq)]
pub struct Scene {
    /// Width in pixels.
    pub width: usize,
    /// Height in pixels.
    pub height: usize,
    /// Primitives, back to front.
    pub prims: Vec<Prim>,
}

const PALETTE: [[u8; 3]; 6] = [
    [31, 119, 180],
    [214, 39, 40],
    [44, 160, 44],
    [148, 103, 189],
    [255, 127, 14],
    [23, 190, 207],
];
const INK: [u8; 3] = [30, 30, 30];
const GRID: [u8; 3] = [225, 225, 225];

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

/// Builds the two-panel layer plot.
pub fn layer_scene(result: &SweepResult, title: &str) -> Scene {
    let (w, h) = (960usize, 720usize);
    let (left, right) = (90.0, 200.0);
    let panels = [(70.0, 340.0), (420.0, 660.0)]; // (top, bottom) of each panel
    let mut prims = Vec::new();
    let text = |pos, size, s: &str, anchor, vertical| Prim::Text {
        pos,
        size,
        text: s.to_string(),
        anchor,
        vertical,
        color: INK,
    };
    prims.push(text(
        (w as f64 / 2.0, 36.0),
        21.0,
        title,
        Anchor::Middle,
        false,
    ));
    let lmin = result.rows.iter().map(|r| r.layer).min().unwrap_or(0) as f64;
    let lmax = (result.rows.iter().map(|r| r.layer).max().unwrap_or(1) as f64).max(lmin + 1.0);
    let x_of = |l: f64| left + (l - lmin) / (lmax - lmin) * (w as f64 - left - right);
    let all = series(result);
    let fpr = result.rows.first().map_or(0.01, |r| r.fpr);
    let best = result.best_row();
    let auroc_lo = result
        .rows
        .iter()
        .map(|r| {
            if r.auroc_lo.is_finite() {
                r.auroc_lo
            } else {
                r.auroc
            }
        })
        .fold(1.0f64, f64::min);
    // AUROC axis from 0.5 (chance) unless something is worse.
    let ranges = [((auroc_lo.min(0.5) * 10.0).floor() / 10.0, 1.0), (0.0, 1.0)];
    let ylabels = [
        "AUROC (95% CI)".to_string(),
        format!("Recall @ {}% FPR", fpr * 100.0),
    ];
    for (pi, &(top, bottom)) in panels.iter().enumerate() {
        let (y0, y1) = ranges[pi];
        let y_of = move |v: f64| bottom - (v - y0) / (y1 - y0) * (bottom - top);
        // Grid and y ticks every 0.1.
        let mut v = y0;
        while v <= y1 + 1e-9 {
            let y = y_of(v);
            prims.push(Prim::Line {
                pts: vec![(left, y), (x_of(lmax), y)],
                color: GRID,
                width: 1.0,
                dash: None,
            });
            prims.push(text(
                (left - 8.0, y + 5.0),
                14.0,
                &format!("{v:.1}"),
                Anchor::End,
                false,
            ));
            v += 0.1;
        }
        let step = ((lmax - lmin) / 10.0).ceil().max(1.0);
        let mut l = lmin;
        while l <= lmax + 1e-9 {
            let x = x_of(l);
            prims.push(Prim::Line {
                pts: vec![(x, bottom), (x, bottom + 5.0)],
                color: INK,
                width: 1.0,
                dash: None,
            });
            prims.push(text(
                (x, bottom + 22.0),
                14.0,
                &format!("{l}"),
                Anchor::Middle,
                false,
            ));
            l += step;
        }
        // Best layer marker.
        let bx = x_of(best.layer as f64);
        prims.push(Prim::Line {
            pts: vec![(bx, top), (bx, bottom)],
            color: [120, 120, 120],
            width: 1.5,
            dash: Some(6.0),
        });
        for (si, (_, rows)) in all.iter().enumerate() {
            let c = PALETTE[si % PALETTE.len()];
            if pi == 0
                && rows
                    .iter()
                    .all(|r| r.auroc_lo.is_finite() && r.auroc_hi.is_finite())
            {
                let mut band: Vec<(f64, f64)> = rows
                    .iter()
                    .map(|r| (x_of(r.layer as f64), y_of(r.auroc_hi)))
                    .collect();
                band.extend(
                    rows.iter()
                        .rev()
                        .map(|r| (x_of(r.layer as f64), y_of(r.auroc_lo))),
                );
                prims.push(Prim::Polygon {
                    pts: band,
                    color: c,
                    alpha: 0.18,
                });
            }
            let val = |r: &SweepRow| if pi == 0 { r.auroc } else { r.recall_at_fpr };
            let pts: Vec<(f64, f64)> = rows
                .iter()
                .filter(|r| val(r).is_finite())
                .map(|r| (x_of(r.layer as f64), y_of(val(r))))
                .collect();
            prims.push(Prim::Line {
                pts: pts.clone(),
                color: c,
                width: 2.5,
                dash: None,
            });
            for p in pts {
                prims.push(Prim::Circle {
                    c: p,
                    r: 3.0,
                    color: c,
                });
            }
        }
        // Axes.
        prims.push(Prim::Line {
            pts: vec![(left, top), (left, bottom), (x_of(lmax), bottom)],
            color: INK,
            width: 1.5,
            dash: None,
        });
        prims.push(text(
            (left - 52.0, (top + bottom) / 2.0),
            15.0,
            &ylabels[pi],
            Anchor::Middle,
            true,
        ));
        prims.push(text(
            ((left + x_of(lmax)) / 2.0, bottom + 46.0),
            15.0,
            "layer",
            Anchor::Middle,
            false,
        ));
    }
    // Legend.
    let lx = x_of(lmax) + 24.0;
    for (si, (name, _)) in all.iter().enumerate() {
        let y = panels[0].0 + 20.0 + si as f64 * 26.0;
        let c = PALETTE[si % PALETTE.len()];
        prims.push(Prim::Line {
            pts: vec![(lx, y - 5.0), (lx + 28.0, y - 5.0)],
            color: c,
            width: 3.0,
            dash: None,
        });
        prims.push(text((lx + 36.0, y), 14.0, name, Anchor::Start, false));
    }
    let by = panels[0].0 + 30.0 + all.len() as f64 * 26.0;
    prims.push(Prim::Line {
        pts: vec![(lx, by - 5.0), (lx + 28.0, by - 5.0)],
        color: [120, 120, 120],
        width: 1.5,
        dash: Some(6.0),
    });
    prims.push(text(
        (lx + 36.0, by),
        14.0,
        &format!("best: L{}", best.layer),
        Anchor::Start,
        false,
    ));
    prims.push(text(
        (lx + 36.0, by + 22.0),
        14.0,
        best.family.name(),
        Anchor::Start,
        false,
    ));
    prims.push(text(
        (lx + 36.0, by + 44.0),
        14.0,
        &format!("AUROC {:.3}", best.auroc),
        Anchor::Start,
        false,
    ));
    Scene {
        width: w,
        height: h,
        prims,
    }
}

fn hex(c: [u8; 3]) -> String {
    format!("#{:02x}{:02x}{:02x}", c[0], c[1], c[2])
}

fn esc(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}

/// Serialises the scene as standalone SVG.
pub fn to_svg(scene: &Scene) -> String {
    let mut s = format!(
        "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"{w}\" height=\"{h}\" viewBox=\"0 0 {w} {h}\" \
         font-family=\"DejaVu Sans, Helvetica, Arial, sans-serif\">\n<rect width=\"100%\" height=\"100%\" fill=\"white\"/>\n",
        w = scene.width,
        h = scene.height
    );
    let pts = |p: &[(f64, f64)]| {
        p.iter()
            .map(|(x, y)| format!("{x:.1},{y:.1}"))
            .collect::<Vec<_>>()
            .join(" ")
    };
    for p in &scene.prims {
        let _ = match p {
            Prim::Line { pts: p, color, width, dash } => writeln!(
                s,
                "<polyline points=\"{}\" fill=\"none\" stroke=\"{}\" stroke-width=\"{width}\" stroke-linejoin=\"round\"{}/>",
                pts(p),
                hex(*color),
                dash.map_or(String::new(), |d| format!(" stroke-dasharray=\"{d} {d}\""))
            ),
            Prim::Polygon { pts: p, color, alpha } => {
                writeln!(s, "<polygon points=\"{}\" fill=\"{}\" fill-opacity=\"{alpha}\"/>", pts(p), hex(*color))
            }
            Prim::Circle { c, r, color } => {
                writeln!(s, "<circle cx=\"{:.1}\" cy=\"{:.1}\" r=\"{r}\" fill=\"{}\"/>", c.0, c.1, hex(*color))
            }
            Prim::Text { pos, size, text, anchor, vertical, color } => {
                let a = match anchor {
                    Anchor::Start => "start",
                    Anchor::Middle => "middle",
                    Anchor::End => "end",
                };
                let rot = if *vertical { format!(" transform=\"rotate(-90 {:.1} {:.1})\"", pos.0, pos.1) } else { String::new() };
                writeln!(
                    s,
                    "<text x=\"{:.1}\" y=\"{:.1}\" font-size=\"{size}\" text-anchor=\"{a}\" fill=\"{}\"{rot}>{}</text>",
                    pos.0,
                    pos.1,
                    hex(*color),
                    esc(text)
                )
            }
        };
    }
    s.push_str("</svg>\n");
    s
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
    let scene = layer_scene(result, title);
    let svg = svg_path.as_ref();
    std::fs::write(svg, to_svg(&scene)).map_err(|e| ProbeError::io(svg, e))?;
    crate::raster::write_png(&scene, png_path)
}
