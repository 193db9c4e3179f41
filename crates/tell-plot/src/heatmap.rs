//! Heatmap: rows x columns of values on a diverging colour scale centred on zero, with row and
//! column labels and a colour bar (activation-patching maps: layers x token positions).

use crate::canvas::{
    draw_err, ellipsize, font, text_width, tick_label, write_figure, Figure, Title, INK, MUTED,
};
use crate::error::{PlotError, Result};
use plotters::coord::Shift;
use plotters::prelude::*;
use plotters::style::text_anchor::{HPos, Pos, VPos};
use std::path::Path;

/// A matrix of values to draw as coloured cells.
#[derive(Clone, Debug, PartialEq)]
pub struct Heatmap {
    /// Title above the map (shrunk, then wrapped, to fit the width).
    pub title: String,
    /// Title of the row axis (left), e.g. `layer`.
    pub row_title: String,
    /// Title of the column axis (bottom), e.g. `token position`.
    pub col_title: String,
    /// Label of each row, top to bottom.
    pub rows: Vec<String>,
    /// Label of each column, left to right (drawn vertically).
    pub cols: Vec<String>,
    /// Row-major values, `rows.len() * cols.len()`; a non-finite value is drawn grey.
    pub values: Vec<f64>,
    /// The colour scale runs from `-limit` (blue) through 0 (white) to `limit` (red), values
    /// beyond clamped; `None` takes the largest absolute finite value.
    pub limit: Option<f64>,
    /// Title of the colour bar, e.g. `fraction restored`.
    pub value_title: String,
}

/// Writes the heatmap as SVG and PNG.
pub fn write_heatmap(
    map: &Heatmap,
    svg_path: impl AsRef<Path>,
    png_path: impl AsRef<Path>,
) -> Result<()> {
    let fig = Map::new(map)?;
    write_figure(&fig, svg_path.as_ref(), png_path.as_ref())
}

/// Blue-white-red (ColorBrewer RdBu, reversed), 7 stops from -1 to 1.
const STOPS: [(u8, u8, u8); 7] = [
    (33, 102, 172),
    (103, 169, 207),
    (209, 229, 240),
    (247, 247, 247),
    (253, 219, 199),
    (239, 138, 98),
    (178, 24, 43),
];
const MISSING: RGBColor = RGBColor(200, 200, 200);

/// The colour of `t` in [-1, 1] on the diverging scale.
pub fn diverging_color(t: f64) -> (u8, u8, u8) {
    let t = if t.is_finite() {
        t.clamp(-1.0, 1.0)
    } else {
        0.0
    };
    let f = (t + 1.0) / 2.0 * (STOPS.len() - 1) as f64;
    let i = (f.floor() as usize).min(STOPS.len() - 2);
    let u = f - i as f64;
    let mix = |a: u8, b: u8| (a as f64 + (b as f64 - a as f64) * u).round() as u8;
    let (a, b) = (STOPS[i], STOPS[i + 1]);
    (mix(a.0, b.0), mix(a.1, b.1), mix(a.2, b.2))
}

const LABEL_SIZE: f64 = 13.0;
const DESC_SIZE: f64 = 15.0;
const MARGIN: i32 = 16;
const BAR_W: i32 = 20;
const BAR_STEPS: usize = 64;
const MIN_WIDTH: i32 = 640;
/// Longest column label drawn, in pixels (longer ones are cut with an ellipsis).
const MAX_COL_LABEL: u32 = 150;
/// Widest row label drawn, in pixels.
const MAX_ROW_LABEL: u32 = 200;

/// A validated heatmap with its layout (pixels).
struct Map<'a> {
    map: &'a Heatmap,
    title: Title,
    limit: f64,
    cell_w: i32,
    cell_h: i32,
    row_step: usize,
    col_step: usize,
    /// Left edge of the row axis title.
    row_title_x: i32,
    /// Left edge of the cells.
    left: i32,
    /// Top edge of the cells.
    top: i32,
    /// Height of the column-label block under the cells.
    col_label_h: i32,
    bar_h: i32,
    bar_label_w: i32,
    width: i32,
    height: i32,
}

impl<'a> Map<'a> {
    fn new(map: &'a Heatmap) -> Result<Self> {
        let (nr, nc) = (map.rows.len(), map.cols.len());
        if nr == 0 || nc == 0 {
            return Err(PlotError::invalid(
                "heatmap",
                format!("{nr} rows x {nc} columns: nothing to draw"),
            ));
        }
        if map.values.len() != nr * nc {
            return Err(PlotError::invalid(
                "heatmap",
                format!(
                    "{nr} rows x {nc} columns need {} values, got {}",
                    nr * nc,
                    map.values.len()
                ),
            ));
        }
        let limit = match map.limit {
            Some(l) if l.is_finite() && l > 0.0 => l,
            Some(l) => {
                return Err(PlotError::invalid(
                    "heatmap",
                    format!("colour limit must be positive and finite, got {l}"),
                ))
            }
            None => {
                let m = map
                    .values
                    .iter()
                    .filter(|v| v.is_finite())
                    .fold(0.0f64, |a, v| a.max(v.abs()));
                if m > 0.0 {
                    m
                } else {
                    1.0
                }
            }
        };
        let cell_w = (880 / nc as i32).clamp(4, 56);
        let cell_h = (600 / nr as i32).clamp(4, 40);
        // Label every k-th row/column so that labels do not overlap (about 16 px each).
        let row_step = (16 + cell_h - 1) as usize / cell_h as usize;
        let col_step = (16 + cell_w - 1) as usize / cell_w as usize;
        let lf = font(LABEL_SIZE);
        let row_label_w = map
            .rows
            .iter()
            .step_by(row_step)
            .map(|l| text_width(l, &lf).min(MAX_ROW_LABEL))
            .max()
            .unwrap_or(0) as i32;
        let col_label_h = map
            .cols
            .iter()
            .step_by(col_step)
            .map(|l| text_width(l, &lf).min(MAX_COL_LABEL))
            .max()
            .unwrap_or(0) as i32;
        let (map_w, map_h) = (nc as i32 * cell_w, nr as i32 * cell_h);
        let bar_h = map_h.clamp(160, 420);
        let bar_label_w = [-limit, limit]
            .iter()
            .map(|v| text_width(&tick(*v, limit), &lf))
            .max()
            .unwrap_or(0) as i32;
        // Left: margin, row title (rotated), gap, row labels, gap.
        let right_block = 28 + BAR_W + 6 + bar_label_w + 12 + DESC_SIZE as i32 + MARGIN;
        let natural = MARGIN + DESC_SIZE as i32 + 10 + row_label_w + 8 + map_w + right_block;
        let width = natural.max(MIN_WIDTH);
        // A small map is centred in the minimum width.
        let row_title_x = MARGIN + (width - natural) / 2;
        let left = row_title_x + DESC_SIZE as i32 + 10 + row_label_w + 8;
        let title = Title::fit(&map.title, width as u32 - 2 * MARGIN as u32);
        let top = title.height() + 8;
        let bottom = 8 + col_label_h + 12 + DESC_SIZE as i32 + MARGIN;
        let height = top + map_h.max(bar_h) + bottom;
        Ok(Map {
            map,
            title,
            limit,
            cell_w,
            cell_h,
            row_step,
            col_step,
            row_title_x,
            left,
            top,
            col_label_h,
            bar_h,
            bar_label_w,
            width,
            height,
        })
    }

    fn color(&self, v: f64) -> RGBColor {
        if !v.is_finite() {
            return MISSING;
        }
        let (r, g, b) = diverging_color(v / self.limit);
        RGBColor(r, g, b)
    }
}

/// Tick label of `v` on a colour bar running to `limit`: two significant digits of the limit.
fn tick(v: f64, limit: f64) -> String {
    tick_label(v, 10f64.powf(limit.log10().floor() - 1.0))
}

impl Figure for Map<'_> {
    fn size(&self) -> (u32, u32) {
        (self.width as u32, self.height as u32)
    }

    fn draw<DB: DrawingBackend>(&self, root: &DrawingArea<DB, Shift>) -> Result<()> {
        let m = self.map;
        let (nr, nc) = (m.rows.len(), m.cols.len());
        let (cw, ch) = (self.cell_w, self.cell_h);
        let (x0, y0) = (self.left, self.top);
        let (map_w, map_h) = (nc as i32 * cw, nr as i32 * ch);
        self.title.draw(root)?;
        for r in 0..nr {
            for c in 0..nc {
                let (x, y) = (x0 + c as i32 * cw, y0 + r as i32 * ch);
                root.draw(&Rectangle::new(
                    [(x, y), (x + cw, y + ch)],
                    self.color(m.values[r * nc + c]).filled(),
                ))
                .map_err(draw_err)?;
            }
        }
        root.draw(&Rectangle::new(
            [(x0, y0), (x0 + map_w, y0 + map_h)],
            INK.stroke_width(1),
        ))
        .map_err(draw_err)?;
        // Row labels, right-aligned against the cells; column labels vertical, hanging below.
        let lf = font(LABEL_SIZE);
        let row_style = lf.color(&INK).pos(Pos::new(HPos::Right, VPos::Center));
        for r in (0..nr).step_by(self.row_step) {
            let y = y0 + r as i32 * ch + ch / 2;
            root.draw(&PathElement::new(
                [(x0 - 4, y), (x0, y)],
                INK.stroke_width(1),
            ))
            .map_err(draw_err)?;
            let label = ellipsize(&m.rows[r], &lf, MAX_ROW_LABEL);
            root.draw_text(&label, &row_style, (x0 - 7, y))
                .map_err(draw_err)?;
        }
        let col_style = lf
            .color(&INK)
            .transform(FontTransform::Rotate270)
            .pos(Pos::new(HPos::Right, VPos::Center));
        for c in (0..nc).step_by(self.col_step) {
            let x = x0 + c as i32 * cw + cw / 2;
            root.draw(&PathElement::new(
                [(x, y0 + map_h), (x, y0 + map_h + 4)],
                INK.stroke_width(1),
            ))
            .map_err(draw_err)?;
            let label = ellipsize(&m.cols[c], &lf, MAX_COL_LABEL);
            root.draw_text(&label, &col_style, (x, y0 + map_h + 8))
                .map_err(draw_err)?;
        }
        // Axis titles.
        let df = font(DESC_SIZE);
        let col_title = df.color(&INK).pos(Pos::new(HPos::Center, VPos::Top));
        root.draw_text(
            &m.col_title,
            &col_title,
            (x0 + map_w / 2, y0 + map_h + 8 + self.col_label_h + 10),
        )
        .map_err(draw_err)?;
        let row_title = df
            .color(&INK)
            .transform(FontTransform::Rotate270)
            .pos(Pos::new(HPos::Center, VPos::Top));
        root.draw_text(&m.row_title, &row_title, (self.row_title_x, y0 + map_h / 2))
            .map_err(draw_err)?;
        // Colour bar: +limit at the top, -limit at the bottom.
        let bx = x0 + map_w + 28;
        let bh = self.bar_h;
        for k in 0..BAR_STEPS {
            let ya = y0 + (k as i32 * bh) / BAR_STEPS as i32;
            let yb = y0 + ((k as i32 + 1) * bh) / BAR_STEPS as i32;
            let t = 1.0 - (k as f64 + 0.5) / BAR_STEPS as f64 * 2.0;
            let (r, g, b) = diverging_color(t);
            root.draw(&Rectangle::new(
                [(bx, ya), (bx + BAR_W, yb)],
                RGBColor(r, g, b).filled(),
            ))
            .map_err(draw_err)?;
        }
        root.draw(&Rectangle::new(
            [(bx, y0), (bx + BAR_W, y0 + bh)],
            INK.stroke_width(1),
        ))
        .map_err(draw_err)?;
        let tick_style = lf.color(&INK).pos(Pos::new(HPos::Left, VPos::Center));
        for j in 0..=4 {
            let v = self.limit * (1.0 - j as f64 / 2.0);
            let y = y0 + j * bh / 4;
            root.draw(&PathElement::new(
                [(bx + BAR_W, y), (bx + BAR_W + 4, y)],
                INK.stroke_width(1),
            ))
            .map_err(draw_err)?;
            root.draw_text(&tick(v, self.limit), &tick_style, (bx + BAR_W + 6, y))
                .map_err(draw_err)?;
        }
        let bar_title = df
            .color(&MUTED)
            .transform(FontTransform::Rotate270)
            .pos(Pos::new(HPos::Center, VPos::Top));
        root.draw_text(
            &m.value_title,
            &bar_title,
            (bx + BAR_W + 6 + self.bar_label_w + 10, y0 + bh / 2),
        )
        .map_err(draw_err)?;
        Ok(())
    }
}
