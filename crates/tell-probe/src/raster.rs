//! A small anti-aliased rasteriser for the plot scene (lines, polygons, circles, bitmap text),
//! encoded with the `png` crate, so the PNG builds offline with no font or GUI stack.

use crate::error::{ProbeError, Result};
use crate::font::{glyph, ADVANCE, GLYPH_H, GLYPH_W};
use crate::plot::{Anchor, Prim, Scene};
use std::path::Path;

struct Canvas {
    w: usize,
    h: usize,
    px: Vec<[f32; 3]>,
}

impl Canvas {
    fn blend(&mut self, x: i64, y: i64, c: [u8; 3], a: f32) {
        if x < 0 || y < 0 || x >= self.w as i64 || y >= self.h as i64 || a <= 0.0 {
            return;
        }
        let p = &mut self.px[y as usize * self.w + x as usize];
        for k in 0..3 {
            p[k] = p[k] * (1.0 - a) + c[k] as f32 / 255.0 * a;
        }
    }

    fn segment(&mut self, a: (f64, f64), b: (f64, f64), width: f64, c: [u8; 3], alpha: f32) {
        let r = width / 2.0;
        let (x0, x1) = (
            (a.0.min(b.0) - r - 1.0).floor(),
            (a.0.max(b.0) + r + 1.0).ceil(),
        );
        let (y0, y1) = (
            (a.1.min(b.1) - r - 1.0).floor(),
            (a.1.max(b.1) + r + 1.0).ceil(),
        );
        let (dx, dy) = (b.0 - a.0, b.1 - a.1);
        let len2 = (dx * dx + dy * dy).max(1e-12);
        for y in y0 as i64..=y1 as i64 {
            for x in x0 as i64..=x1 as i64 {
                let (px, py) = (x as f64 + 0.5, y as f64 + 0.5);
                let t = (((px - a.0) * dx + (py - a.1) * dy) / len2).clamp(0.0, 1.0);
                let (qx, qy) = (a.0 + t * dx - px, a.1 + t * dy - py);
                let d = (qx * qx + qy * qy).sqrt();
                let cov = (r + 0.5 - d).clamp(0.0, 1.0) as f32;
                self.blend(x, y, c, cov * alpha);
            }
        }
    }

    fn polygon(&mut self, pts: &[(f64, f64)], c: [u8; 3], alpha: f32) {
        if pts.len() < 3 {
            return;
        }
        let (mut x0, mut x1, mut y0, mut y1) = (f64::MAX, f64::MIN, f64::MAX, f64::MIN);
        for p in pts {
            x0 = x0.min(p.0);
            x1 = x1.max(p.0);
            y0 = y0.min(p.1);
            y1 = y1.max(p.1);
        }
        // 2x2 supersampling of an even-odd inside test.
        let inside = |x: f64, y: f64| {
            let mut c = false;
            let mut j = pts.len() - 1;
            for i in 0..pts.len() {
                let (a, b) = (pts[i], pts[j]);
                if (a.1 > y) != (b.1 > y) && x < (b.0 - a.0) * (y - a.1) / (b.1 - a.1) + a.0 {
                    c = !c;
                }
                j = i;
            }
            c
        };
        for y in y0.floor() as i64..=y1.ceil() as i64 {
            for x in x0.floor() as i64..=x1.ceil() as i64 {
                let mut n = 0;
                for (ox, oy) in [(0.25, 0.25), (0.75, 0.25), (0.25, 0.75), (0.75, 0.75)] {
                    n += inside(x as f64 + ox, y as f64 + oy) as u32;
                }
                self.blend(x, y, c, alpha * n as f32 / 4.0);
            }
        }
    }

    #[allow(clippy::too_many_arguments)]
    fn text(
        &mut self,
        x: f64,
        y: f64,
        size: f64,
        s: &str,
        anchor: Anchor,
        vertical: bool,
        c: [u8; 3],
    ) {
        // Integer pixel scale keeps the bitmap glyphs crisp; size is the cap height in pixels.
        let k = ((size / GLYPH_H as f64).round() as i64).max(1);
        let len = (s.chars().count() * ADVANCE) as i64 * k - k;
        let off = match anchor {
            Anchor::Start => 0,
            Anchor::Middle => len / 2,
            Anchor::End => len,
        };
        for (ci, ch) in s.chars().enumerate() {
            let g = glyph(ch);
            for (row, bits) in g.iter().enumerate() {
                for col in 0..GLYPH_W {
                    if bits >> (GLYPH_W - 1 - col) & 1 == 0 {
                        continue;
                    }
                    let u = (ci * ADVANCE + col) as i64 * k - off;
                    let v = row as i64 * k - GLYPH_H as i64 * k;
                    for dy in 0..k {
                        for dx in 0..k {
                            let (px, py) = if vertical {
                                (x as i64 + v + dy, y as i64 - u - dx)
                            } else {
                                (x as i64 + u + dx, y as i64 + v + dy)
                            };
                            self.blend(px, py, c, 1.0);
                        }
                    }
                }
            }
        }
    }
}

fn dashed(pts: &[(f64, f64)], dash: f64) -> Vec<((f64, f64), (f64, f64))> {
    let mut out = Vec::new();
    for w in pts.windows(2) {
        let (a, b) = (w[0], w[1]);
        let len = ((b.0 - a.0).powi(2) + (b.1 - a.1).powi(2)).sqrt();
        let n = (len / dash).ceil().max(1.0) as usize;
        for i in (0..n).step_by(2) {
            let t0 = i as f64 / n as f64;
            let t1 = ((i + 1) as f64 / n as f64).min(1.0);
            let p = |t: f64| (a.0 + t * (b.0 - a.0), a.1 + t * (b.1 - a.1));
            out.push((p(t0), p(t1)));
        }
    }
    out
}

/// Rasterises the scene and writes it as an 8-bit RGB PNG.
pub fn write_png(scene: &Scene, path: impl AsRef<Path>) -> Result<()> {
    let path = path.as_ref();
    let mut cv = Canvas {
        w: scene.width,
        h: scene.height,
        px: vec![[1.0; 3]; scene.width * scene.height],
    };
    for p in &scene.prims {
        match p {
            Prim::Line {
                pts,
                color,
                width,
                dash,
            } => {
                let segs: Vec<_> = match dash {
                    Some(d) => dashed(pts, *d),
                    None => pts.windows(2).map(|w| (w[0], w[1])).collect(),
                };
                for (a, b) in segs {
                    cv.segment(a, b, *width, *color, 1.0);
                }
            }
            Prim::Polygon { pts, color, alpha } => cv.polygon(pts, *color, *alpha as f32),
            Prim::Circle { c, r, color } => cv.segment(*c, *c, 2.0 * r, *color, 1.0),
            Prim::Text {
                pos,
                size,
                text,
                anchor,
                vertical,
                color,
            } => cv.text(pos.0, pos.1, *size, text, *anchor, *vertical, *color),
        }
    }
    let bytes: Vec<u8> = cv
        .px
        .iter()
        .flat_map(|p| p.map(|v| (v.clamp(0.0, 1.0) * 255.0).round() as u8))
        .collect();
    let perr = |e: &dyn std::fmt::Display| ProbeError::Png {
        path: path.display().to_string(),
        reason: e.to_string(),
    };
    let file = std::fs::File::create(path).map_err(|e| ProbeError::io(path, e))?;
    let mut enc = png::Encoder::new(
        std::io::BufWriter::new(file),
        scene.width as u32,
        scene.height as u32,
    );
    enc.set_color(png::ColorType::Rgb);
    enc.set_depth(png::BitDepth::Eight);
    let mut w = enc.write_header().map_err(|e| perr(&e))?;
    w.write_image_data(&bytes).map_err(|e| perr(&e))?;
    w.finish().map_err(|e| perr(&e))
}
