//! Plots for `tell`, drawn with `plotters` and written as SVG and PNG side by side.
//!
//! * [`write_line_plot`]: stacked panels sharing an x axis, shaded intervals or error bars, a
//!   reference line per panel and a vertical marker (the probe's layer plot, `layers.svg/png`).
//! * [`write_sweep_curves`]: a metric against a setting (steering alpha, noise sigma), one series
//!   per condition and tier, error bars and a zero line.
//! * [`write_heatmap`]: rows x columns on a diverging colour scale with a colour bar
//!   (activation-patching maps: layers x token positions).
//!
//! Inputs are plain data (no other `tell` crate). Text is set in DejaVu Sans, embedded from the
//! `dejavu` crate and registered with plotters' `ab_glyph` text backend, so the PNG renders the
//! same on a machine with no system fonts; the SVG names `sans-serif`.

mod canvas;
pub mod error;
mod glyphs;
pub mod heatmap;
pub mod lines;

pub use error::{PlotError, Result};
pub use heatmap::{diverging_color, write_heatmap, Heatmap};
pub use lines::{
    write_line_plot, write_sweep_curves, IntervalStyle, LinePlot, Marker, Panel, Reference, Series,
    SweepCurves,
};
