//! What every plot shares: the embedded font, text measuring, the title block, colours, and
//! writing one figure through both backends (SVG text, PNG from an RGB buffer).

use crate::error::{PlotError, Result};
use crate::glyphs::GlyphText;
use plotters::coord::Shift;
use plotters::prelude::*;
use plotters::style::text_anchor::{HPos, Pos, VPos};
use plotters::style::{register_font, FontDesc, FontStyle};
use std::path::Path;
use std::sync::OnceLock;

/// Font family the plots ask for: DejaVu Sans is registered under it for the PNG, and SVG viewers
/// resolve it to their own sans-serif face.
pub(crate) const FAMILY: &str = "sans-serif";

/// Text colour.
pub(crate) const INK: RGBColor = RGBColor(30, 30, 30);
/// Secondary text and reference lines.
pub(crate) const MUTED: RGBColor = RGBColor(100, 100, 100);

/// Series colours (Tableau 10).
const PALETTE: [RGBColor; 10] = [
    RGBColor(31, 119, 180),
    RGBColor(214, 39, 40),
    RGBColor(44, 160, 44),
    RGBColor(148, 103, 189),
    RGBColor(255, 127, 14),
    RGBColor(23, 190, 207),
    RGBColor(140, 86, 75),
    RGBColor(227, 119, 194),
    RGBColor(127, 127, 127),
    RGBColor(188, 189, 34),
];

/// The colour of series `i`.
pub(crate) fn series_color(i: usize) -> RGBColor {
    PALETTE[i % PALETTE.len()]
}

/// Registers DejaVu Sans (regular and bold) with plotters once per process.
fn ensure_font() -> Result<()> {
    static OK: OnceLock<bool> = OnceLock::new();
    let ok = *OK.get_or_init(|| {
        register_font(FAMILY, FontStyle::Normal, dejavu::sans::regular()).is_ok()
            && register_font(FAMILY, FontStyle::Bold, dejavu::sans::bold()).is_ok()
    });
    if ok {
        Ok(())
    } else {
        Err(PlotError::Draw(
            "the embedded DejaVu Sans font did not load".into(),
        ))
    }
}

/// Regular text of `size` pixels.
pub(crate) fn font(size: f64) -> FontDesc<'static> {
    FontDesc::new(FontFamily::Name(FAMILY), size, FontStyle::Normal)
}

/// Bold text of `size` pixels.
pub(crate) fn bold(size: f64) -> FontDesc<'static> {
    FontDesc::new(FontFamily::Name(FAMILY), size, FontStyle::Bold)
}

/// Width in pixels of `text` set in `f`.
pub(crate) fn text_width(text: &str, f: &FontDesc) -> u32 {
    f.box_size(text)
        .map(|b| b.0)
        .unwrap_or((text.chars().count() as f64 * f.get_size() * 0.6) as u32)
}

/// Shortens `text` with an ellipsis until it is at most `max` pixels wide in `f`.
pub(crate) fn ellipsize(text: &str, f: &FontDesc, max: u32) -> String {
    if text_width(text, f) <= max {
        return text.to_string();
    }
    let mut chars: Vec<char> = text.chars().collect();
    while !chars.is_empty() {
        chars.pop();
        let s: String = chars.iter().collect::<String>() + "…";
        if text_width(&s, f) <= max {
            return s;
        }
    }
    "…".to_string()
}

/// A title laid out to fit a width: one line shrunk down to a minimum size, then wrapped.
pub(crate) struct Title {
    lines: Vec<String>,
    size: f64,
}

const TITLE_MAX: f64 = 22.0;
const TITLE_MIN: f64 = 15.0;
const TITLE_PAD: i32 = 14;

impl Title {
    /// Fits `text` into `width` pixels.
    pub(crate) fn fit(text: &str, width: u32) -> Title {
        let mut size = TITLE_MAX;
        while size > TITLE_MIN && text_width(text, &bold(size)) > width {
            size -= 1.0;
        }
        let f = bold(size);
        if text_width(text, &f) <= width {
            return Title {
                lines: vec![text.to_string()],
                size,
            };
        }
        // Greedy wrap at spaces; a word wider than the line is cut with an ellipsis.
        let mut lines: Vec<String> = Vec::new();
        let mut cur = String::new();
        for word in text.split_whitespace() {
            let cand = if cur.is_empty() {
                word.to_string()
            } else {
                format!("{cur} {word}")
            };
            if cur.is_empty() || text_width(&cand, &f) <= width {
                cur = cand;
            } else {
                lines.push(std::mem::take(&mut cur));
                cur = word.to_string();
            }
        }
        lines.push(cur);
        let lines = lines.iter().map(|l| ellipsize(l, &f, width)).collect();
        Title { lines, size }
    }

    fn line_height(&self) -> i32 {
        (self.size * 1.3).round() as i32
    }

    /// Pixels the title block takes, padding included.
    pub(crate) fn height(&self) -> i32 {
        TITLE_PAD + self.lines.len() as i32 * self.line_height() + TITLE_PAD / 2
    }

    /// Draws the lines centred on `root`'s full width, from its top.
    pub(crate) fn draw<DB: DrawingBackend>(&self, root: &DrawingArea<DB, Shift>) -> Result<()> {
        let (w, _) = root.dim_in_pixel();
        let style = bold(self.size)
            .color(&INK)
            .pos(Pos::new(HPos::Center, VPos::Top));
        for (i, line) in self.lines.iter().enumerate() {
            let y = TITLE_PAD + i as i32 * self.line_height();
            root.draw_text(line, &style, (w as i32 / 2, y))
                .map_err(draw_err)?;
        }
        Ok(())
    }
}

/// A drawing library error as a [`PlotError`].
pub(crate) fn draw_err<E: std::error::Error + Send + Sync>(
    e: plotters::drawing::DrawingAreaErrorKind<E>,
) -> PlotError {
    PlotError::Draw(e.to_string())
}

/// A picture that can be drawn on any plotters backend.
pub(crate) trait Figure {
    /// Width and height in pixels.
    fn size(&self) -> (u32, u32);
    /// Draws the whole picture on `root` (already white).
    fn draw<DB: DrawingBackend>(&self, root: &DrawingArea<DB, Shift>) -> Result<()>;
}

/// Draws `fig` once as SVG and once into an RGB buffer written as PNG, so both files show the
/// same picture.
pub(crate) fn write_figure(fig: &impl Figure, svg: &Path, png: &Path) -> Result<()> {
    ensure_font()?;
    let (w, h) = fig.size();
    let mut s = String::new();
    {
        let root = SVGBackend::with_string(&mut s, (w, h)).into_drawing_area();
        root.fill(&WHITE).map_err(draw_err)?;
        fig.draw(&root)?;
        root.present().map_err(draw_err)?;
    }
    std::fs::write(svg, s).map_err(|e| PlotError::io(svg, e))?;
    let mut rgb = vec![255u8; w as usize * h as usize * 3];
    {
        let root = GlyphText(BitMapBackend::with_buffer(&mut rgb, (w, h))).into_drawing_area();
        root.fill(&WHITE).map_err(draw_err)?;
        fig.draw(&root)?;
        root.present().map_err(draw_err)?;
    }
    write_png(png, w, h, &rgb)
}

fn write_png(path: &Path, w: u32, h: u32, rgb: &[u8]) -> Result<()> {
    let file = std::fs::File::create(path).map_err(|e| PlotError::io(path, e))?;
    let mut enc = png::Encoder::new(std::io::BufWriter::new(file), w, h);
    enc.set_color(png::ColorType::Rgb);
    enc.set_depth(png::BitDepth::Eight);
    let io = |e: png::EncodingError| match e {
        png::EncodingError::IoError(e) => PlotError::io(path, e),
        other => PlotError::Draw(format!("png encoding: {other}")),
    };
    let mut writer = enc.write_header().map_err(io)?;
    writer.write_image_data(rgb).map_err(io)?;
    writer.finish().map_err(io)
}

/// The tick step plotters picks for at most `n` labels on `lo..hi`: the smallest of 1, 2 or 5
/// times a power of ten that puts at most `n` multiples of itself inside the range.
pub(crate) fn tick_step(lo: f64, hi: f64, n: usize) -> f64 {
    let span = hi - lo;
    if !(span > 0.0 && span.is_finite()) {
        return 1.0;
    }
    let ticks = |s: f64| (hi / s).floor() - (lo / s).ceil() + 1.0;
    let mut step = 10f64.powf((span / n.max(1) as f64).log10().floor() - 1.0);
    loop {
        for m in [1.0, 2.0, 5.0] {
            if ticks(step * m) <= n as f64 {
                return step * m;
            }
        }
        step *= 10.0;
    }
}

/// A tick label of `v` with the decimals that tell ticks `step` apart; no "-0".
pub(crate) fn tick_label(v: f64, step: f64) -> String {
    let d = (-(step.log10() + 1e-9).floor()).max(0.0) as usize;
    let s = format!("{v:.d$}");
    if s.starts_with('-') && s[1..].chars().all(|c| c == '0' || c == '.') {
        s[1..].to_string()
    } else {
        s
    }
}
