//! Curves against a setting: stacked panels sharing the x axis (the probe's layer plot) and the
//! one-panel sweep plot with error bars and a zero line (steering alpha, noise sigma).

use crate::canvas::{
    draw_err, ellipsize, font, series_color, text_width, tick_label, tick_step, write_figure,
    Figure, Title, INK, MUTED,
};
use crate::error::{PlotError, Result};
use plotters::coord::Shift;
use plotters::element::DashedPathElement;
use plotters::prelude::*;
use plotters::style::text_anchor::{HPos, Pos, VPos};
use std::path::Path;

/// One named curve: points (x, y) and, optionally, an interval (low, high) per point.
#[derive(Clone, Debug, PartialEq)]
pub struct Series {
    /// Legend name; series with the same name share a colour across panels.
    pub name: String,
    /// Points in drawing order; points with a non-finite coordinate are skipped.
    pub points: Vec<(f64, f64)>,
    /// Interval (low, high) per point, same length as `points`; non-finite ends are skipped.
    pub intervals: Option<Vec<(f64, f64)>>,
}

/// A horizontal reference line, e.g. chance at 0.5 or zero.
#[derive(Clone, Debug, PartialEq)]
pub struct Reference {
    /// Its y value.
    pub y: f64,
    /// Legend text; empty for none.
    pub label: String,
}

/// A vertical marker line across every panel, e.g. the best layer.
#[derive(Clone, Debug, PartialEq)]
pub struct Marker {
    /// Its x value.
    pub x: f64,
    /// Legend text.
    pub label: String,
}

/// One panel: a y axis with its series.
#[derive(Clone, Debug, PartialEq)]
pub struct Panel {
    /// Y axis title.
    pub y_label: String,
    /// Y range shown at least; it grows to fit the data, intervals and reference.
    pub y_range: Option<(f64, f64)>,
    /// Horizontal reference line.
    pub reference: Option<Reference>,
    /// The curves.
    pub series: Vec<Series>,
}

/// How intervals are drawn.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum IntervalStyle {
    /// A shaded band between the lows and the highs (dense x, e.g. layers).
    Band,
    /// An error bar at each point (few settings, e.g. alphas).
    Bars,
}

/// Stacked panels sharing one x axis, with a legend on the right.
#[derive(Clone, Debug, PartialEq)]
pub struct LinePlot {
    /// Title above the panels (shrunk, then wrapped, to fit the width).
    pub title: String,
    /// X axis title, under each panel.
    pub x_label: String,
    /// Whole-number x ticks only (layers).
    pub integer_x: bool,
    /// Panels, top to bottom.
    pub panels: Vec<Panel>,
    /// How intervals are drawn.
    pub intervals: IntervalStyle,
    /// Vertical marker across all panels.
    pub marker: Option<Marker>,
    /// Extra lines of text under the legend.
    pub notes: Vec<String>,
}

/// A sweep: named series of a metric against a setting, with optional error bars and a zero line.
#[derive(Clone, Debug, PartialEq)]
pub struct SweepCurves {
    /// Title.
    pub title: String,
    /// X axis title (the setting, e.g. `steering alpha`).
    pub x_label: String,
    /// Y axis title (the metric, e.g. `compliance gap`).
    pub y_label: String,
    /// One series per condition and tier; `intervals` become error bars.
    pub series: Vec<Series>,
}

/// Writes stacked line panels as SVG and PNG.
pub fn write_line_plot(
    plot: &LinePlot,
    svg_path: impl AsRef<Path>,
    png_path: impl AsRef<Path>,
) -> Result<()> {
    let fig = Lines::new(plot)?;
    write_figure(&fig, svg_path.as_ref(), png_path.as_ref())
}

/// Writes sweep curves (error bars, zero line, legend) as SVG and PNG.
pub fn write_sweep_curves(
    sweep: &SweepCurves,
    svg_path: impl AsRef<Path>,
    png_path: impl AsRef<Path>,
) -> Result<()> {
    write_line_plot(&sweep.to_line_plot(), svg_path, png_path)
}

impl SweepCurves {
    /// The same picture as a one-panel [`LinePlot`] (error bars, reference line at zero).
    pub fn to_line_plot(&self) -> LinePlot {
        LinePlot {
            title: self.title.clone(),
            x_label: self.x_label.clone(),
            integer_x: false,
            panels: vec![Panel {
                y_label: self.y_label.clone(),
                y_range: None,
                reference: Some(Reference {
                    y: 0.0,
                    label: String::new(),
                }),
                series: self.series.clone(),
            }],
            intervals: IntervalStyle::Bars,
            marker: None,
            notes: Vec::new(),
        }
    }
}

const WIDTH: u32 = 1000;
const PANEL_H: u32 = 300;
const SINGLE_PANEL_H: u32 = 460;
const LEGEND_ROW: i32 = 24;
const LABEL_SIZE: f64 = 14.0;
const DESC_SIZE: f64 = 15.0;
const LEGEND_SIZE: f64 = 14.0;

/// A validated line plot with its layout.
struct Lines<'a> {
    plot: &'a LinePlot,
    title: Title,
    /// Series names in first-seen order (colour index = position).
    names: Vec<String>,
    legend_w: u32,
    x_range: (f64, f64),
    y_ranges: Vec<(f64, f64)>,
    /// X offset per series name when error bars would overlap.
    dodge: Vec<f64>,
}

fn finite(p: &(f64, f64)) -> bool {
    p.0.is_finite() && p.1.is_finite()
}

impl<'a> Lines<'a> {
    fn new(plot: &'a LinePlot) -> Result<Self> {
        if plot.panels.is_empty() {
            return Err(PlotError::invalid("line plot", "no panels"));
        }
        let mut names: Vec<String> = Vec::new();
        let mut xs: Vec<f64> = Vec::new();
        for p in &plot.panels {
            for s in &p.series {
                if let Some(iv) = &s.intervals {
                    if iv.len() != s.points.len() {
                        return Err(PlotError::invalid(
                            "line plot",
                            format!(
                                "series {:?} has {} points but {} intervals",
                                s.name,
                                s.points.len(),
                                iv.len()
                            ),
                        ));
                    }
                }
                if !names.contains(&s.name) {
                    names.push(s.name.clone());
                }
                xs.extend(s.points.iter().filter(|p| finite(p)).map(|p| p.0));
            }
        }
        if xs.is_empty() {
            return Err(PlotError::invalid("line plot", "no finite points"));
        }
        let xmin = xs.iter().copied().fold(f64::INFINITY, f64::min);
        let xmax = xs.iter().copied().fold(f64::NEG_INFINITY, f64::max);
        let xmin = plot.marker.as_ref().map_or(xmin, |m| xmin.min(m.x));
        let xmax = plot.marker.as_ref().map_or(xmax, |m| xmax.max(m.x));
        // Smallest gap between distinct x values: error bars of several series at one x are
        // spread over a fifth of it.
        let mut sorted = xs.clone();
        sorted.sort_by(f64::total_cmp);
        sorted.dedup();
        let gap = sorted
            .windows(2)
            .map(|w| w[1] - w[0])
            .fold(f64::INFINITY, f64::min);
        let gap = if gap.is_finite() {
            gap
        } else {
            (xmax - xmin).max(1.0)
        };
        let bars = plot.intervals == IntervalStyle::Bars
            && plot
                .panels
                .iter()
                .any(|p| p.series.iter().any(|s| s.intervals.is_some()));
        let n = names.len();
        let dodge: Vec<f64> = (0..n)
            .map(|i| {
                if bars && n > 1 {
                    (i as f64 / (n - 1) as f64 - 0.5) * gap / 5.0
                } else {
                    0.0
                }
            })
            .collect();
        // Room at both ends: a marker or point on the last layer stays clear of the frame.
        let pad = if xmax > xmin {
            let pad = (xmax - xmin) * 0.04 + if bars { gap / 10.0 } else { 0.0 };
            if plot.integer_x {
                pad.max(0.3)
            } else {
                pad
            }
        } else {
            1.0
        };
        let x_range = (xmin - pad, xmax + pad);
        let y_ranges = plot.panels.iter().map(y_range).collect();
        // Legend column: wide enough for its longest line, within bounds.
        let lf = font(LEGEND_SIZE);
        let mut texts: Vec<&str> = names.iter().map(String::as_str).collect();
        texts.extend(plot.notes.iter().map(String::as_str));
        texts.extend(plot.marker.iter().map(|m| m.label.as_str()));
        texts.extend(
            plot.panels
                .iter()
                .filter_map(|p| p.reference.as_ref().map(|r| r.label.as_str())),
        );
        let widest = texts.iter().map(|t| text_width(t, &lf)).max().unwrap_or(0);
        let legend_w = (widest + 76).clamp(160, 320);
        Ok(Lines {
            plot,
            title: Title::fit(&plot.title, WIDTH - 40),
            names,
            legend_w,
            x_range,
            y_ranges,
            dodge,
        })
    }

    fn color_of(&self, name: &str) -> (usize, RGBColor) {
        let i = self.names.iter().position(|n| n == name).unwrap_or(0);
        (i, series_color(i))
    }

    fn panel_h(&self) -> u32 {
        if self.plot.panels.len() == 1 {
            SINGLE_PANEL_H
        } else {
            PANEL_H
        }
    }

    fn draw_panel<DB: DrawingBackend>(
        &self,
        area: &DrawingArea<DB, Shift>,
        panel: &Panel,
        (y0, y1): (f64, f64),
    ) -> Result<()> {
        let (x0, x1) = self.x_range;
        let mut chart = ChartBuilder::on(area)
            .margin_top(12)
            .margin_bottom(6)
            .margin_left(12)
            .margin_right(16)
            .x_label_area_size(52)
            .y_label_area_size(78)
            .build_cartesian_2d(x0..x1, y0..y1)
            .map_err(draw_err)?;
        let integer_x = self.plot.integer_x;
        let n_x_labels = if integer_x {
            ((x1 - x0).round() as usize + 1).clamp(2, 12)
        } else {
            10
        };
        let n_y_labels = 8;
        let (xstep, ystep) = (tick_step(x0, x1, n_x_labels), tick_step(y0, y1, n_y_labels));
        let x_fmt = move |v: &f64| {
            if integer_x && (v - v.round()).abs() > 1e-9 {
                String::new()
            } else {
                tick_label(*v, xstep)
            }
        };
        let y_fmt = move |v: &f64| tick_label(*v, ystep);
        chart
            .configure_mesh()
            .x_desc(self.plot.x_label.as_str())
            .y_desc(panel.y_label.as_str())
            .x_labels(n_x_labels)
            .y_labels(n_y_labels)
            .x_label_formatter(&x_fmt)
            .y_label_formatter(&y_fmt)
            .label_style(font(LABEL_SIZE).color(&INK))
            .axis_desc_style(font(DESC_SIZE).color(&INK))
            .bold_line_style(RGBColor(222, 222, 222))
            .light_line_style(TRANSPARENT)
            .axis_style(INK.stroke_width(1))
            .draw()
            .map_err(draw_err)?;
        if let Some(r) = &panel.reference {
            chart
                .draw_series(std::iter::once(PathElement::new(
                    vec![(x0, r.y), (x1, r.y)],
                    MUTED.stroke_width(1),
                )))
                .map_err(draw_err)?;
        }
        if let Some(m) = &self.plot.marker {
            chart
                .draw_series(std::iter::once(DashedPathElement::new(
                    vec![(m.x, y0), (m.x, y1)],
                    6,
                    5,
                    MUTED.stroke_width(2),
                )))
                .map_err(draw_err)?;
        }
        for s in &panel.series {
            let (i, color) = self.color_of(&s.name);
            let dx = self.dodge[i];
            let pts: Vec<(f64, f64)> = s
                .points
                .iter()
                .filter(|p| finite(p))
                .map(|&(x, y)| (x + dx, y))
                .collect();
            if let Some(iv) = &s.intervals {
                let spans: Vec<(f64, f64, f64, f64)> = s
                    .points
                    .iter()
                    .zip(iv)
                    .filter(|(p, (lo, hi))| finite(p) && lo.is_finite() && hi.is_finite())
                    .map(|(&(x, y), &(lo, hi))| (x + dx, y, lo, hi))
                    .collect();
                match self.plot.intervals {
                    IntervalStyle::Band if spans.len() >= 2 => {
                        let mut poly: Vec<(f64, f64)> =
                            spans.iter().map(|&(x, _, _, hi)| (x, hi)).collect();
                        poly.extend(spans.iter().rev().map(|&(x, _, lo, _)| (x, lo)));
                        chart
                            .draw_series(std::iter::once(Polygon::new(
                                poly,
                                color.mix(0.14).filled(),
                            )))
                            .map_err(draw_err)?;
                    }
                    IntervalStyle::Band => {}
                    IntervalStyle::Bars => {
                        // A vertical line from low to high with 10-pixel caps.
                        let style = color.stroke_width(2);
                        for &(x, _, lo, hi) in &spans {
                            chart
                                .draw_series([PathElement::new(vec![(x, lo), (x, hi)], style)])
                                .map_err(draw_err)?;
                            for end in [lo, hi] {
                                chart
                                    .draw_series([EmptyElement::at((x, end))
                                        + PathElement::new(vec![(-5, 0), (5, 0)], style)])
                                    .map_err(draw_err)?;
                            }
                        }
                    }
                }
            }
            chart
                .draw_series(std::iter::once(PathElement::new(
                    pts.clone(),
                    color.stroke_width(3),
                )))
                .map_err(draw_err)?;
            chart
                .draw_series(pts.iter().map(|&p| Circle::new(p, 4, color.filled())))
                .map_err(draw_err)?;
        }
        Ok(())
    }

    fn draw_legend<DB: DrawingBackend>(&self, area: &DrawingArea<DB, Shift>) -> Result<()> {
        let lf = font(LEGEND_SIZE);
        let max_text = self.legend_w - 56;
        let style = lf.color(&INK).pos(Pos::new(HPos::Left, VPos::Center));
        let x = 8;
        let mut y = 30;
        let sample = |y: i32| [(x, y), (x + 34, y)];
        for name in &self.names {
            let (_, color) = self.color_of(name);
            area.draw(&PathElement::new(sample(y), color.stroke_width(3)))
                .map_err(draw_err)?;
            area.draw(&Circle::new((x + 17, y), 4, color.filled()))
                .map_err(draw_err)?;
            area.draw_text(&ellipsize(name, &lf, max_text), &style, (x + 44, y))
                .map_err(draw_err)?;
            y += LEGEND_ROW;
        }
        for r in self.plot.panels.iter().filter_map(|p| p.reference.as_ref()) {
            if r.label.is_empty() {
                continue;
            }
            area.draw(&PathElement::new(sample(y), MUTED.stroke_width(1)))
                .map_err(draw_err)?;
            area.draw_text(&ellipsize(&r.label, &lf, max_text), &style, (x + 44, y))
                .map_err(draw_err)?;
            y += LEGEND_ROW;
        }
        if let Some(m) = &self.plot.marker {
            area.draw(&DashedPathElement::new(
                sample(y),
                6,
                5,
                MUTED.stroke_width(2),
            ))
            .map_err(draw_err)?;
            area.draw_text(&ellipsize(&m.label, &lf, max_text), &style, (x + 44, y))
                .map_err(draw_err)?;
            y += LEGEND_ROW;
        }
        if !self.plot.notes.is_empty() {
            y += LEGEND_ROW / 2;
            let note = lf.color(&MUTED).pos(Pos::new(HPos::Left, VPos::Center));
            for n in &self.plot.notes {
                area.draw_text(&ellipsize(n, &lf, self.legend_w - 16), &note, (x, y))
                    .map_err(draw_err)?;
                y += LEGEND_ROW - 2;
            }
        }
        Ok(())
    }
}

/// The y range of a panel: its data, intervals and reference, padded, grown to `y_range`.
fn y_range(p: &Panel) -> (f64, f64) {
    let mut ys: Vec<f64> = Vec::new();
    for s in &p.series {
        ys.extend(s.points.iter().filter(|q| finite(q)).map(|q| q.1));
        if let Some(iv) = &s.intervals {
            for (q, &(lo, hi)) in s.points.iter().zip(iv) {
                if finite(q) {
                    ys.extend([lo, hi].into_iter().filter(|v| v.is_finite()));
                }
            }
        }
    }
    if let Some(r) = &p.reference {
        ys.push(r.y);
    }
    let (mut lo, mut hi) = (
        ys.iter().copied().fold(f64::INFINITY, f64::min),
        ys.iter().copied().fold(f64::NEG_INFINITY, f64::max),
    );
    if !lo.is_finite() || !hi.is_finite() {
        (lo, hi) = (0.0, 1.0);
    }
    let pad = if hi > lo { (hi - lo) * 0.06 } else { 0.5 };
    (lo, hi) = (lo - pad, hi + pad);
    if let Some((a, b)) = p.y_range {
        lo = lo.min(a);
        hi = hi.max(b);
    }
    (lo, hi)
}

impl Figure for Lines<'_> {
    fn size(&self) -> (u32, u32) {
        let h = self.title.height() as u32 + self.plot.panels.len() as u32 * self.panel_h() + 8;
        (WIDTH, h)
    }

    fn draw<DB: DrawingBackend>(&self, root: &DrawingArea<DB, Shift>) -> Result<()> {
        self.title.draw(root)?;
        let body = root.margin(self.title.height() as u32, 8, 0, 0);
        let (charts, legend) = body.split_horizontally(WIDTH - self.legend_w);
        let areas = charts.split_evenly((self.plot.panels.len(), 1));
        for ((area, panel), &yr) in areas.iter().zip(&self.plot.panels).zip(&self.y_ranges) {
            self.draw_panel(area, panel, yr)?;
        }
        self.draw_legend(&legend)?;
        Ok(())
    }
}
