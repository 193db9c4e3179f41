//! Every plot is written as SVG and PNG: the PNG decodes at the expected size and is not blank,
//! the SVG carries the title and labels as text and one element per cell or series, titles fit.
//! Set `TELL_PLOT_KEEP=/some/dir` to keep the files for a look.

use std::collections::HashSet;
use std::path::{Path, PathBuf};
use tell_plot::{
    write_heatmap, write_line_plot, write_sweep_curves, Heatmap, IntervalStyle, LinePlot, Marker,
    Panel, PlotError, Reference, Series, SweepCurves,
};

fn out_dir(name: &str) -> PathBuf {
    let dir = match std::env::var("TELL_PLOT_KEEP") {
        Ok(d) => PathBuf::from(d),
        Err(_) => std::env::temp_dir().join(format!("tell-plot-{}", std::process::id())),
    };
    std::fs::create_dir_all(&dir).unwrap();
    let _ = name;
    dir
}

/// Decoded RGB(A) pixels: width, height, bytes per pixel, data.
fn decode(path: &Path) -> (u32, u32, usize, Vec<u8>) {
    let dec = png::Decoder::new(std::io::BufReader::new(std::fs::File::open(path).unwrap()));
    let mut reader = dec.read_info().unwrap();
    let mut buf = vec![0; reader.output_buffer_size().unwrap()];
    let info = reader.next_frame(&mut buf).unwrap();
    buf.truncate(info.buffer_size());
    let bpp = info.color_type.samples();
    (info.width, info.height, bpp, buf)
}

fn pixel(img: &(u32, u32, usize, Vec<u8>), x: u32, y: u32) -> [u8; 3] {
    let (w, _, bpp, data) = img;
    let i = (y as usize * *w as usize + x as usize) * bpp;
    [data[i], data[i + 1], data[i + 2]]
}

fn colours(img: &(u32, u32, usize, Vec<u8>)) -> HashSet<[u8; 3]> {
    let (w, h, _, _) = *img;
    (0..h)
        .flat_map(|y| (0..w).map(move |x| (x, y)))
        .map(|(x, y)| pixel(img, x, y))
        .collect()
}

/// No ink in the outer `band` pixels of the left and right edges between rows `y0..y1`.
fn edges_blank(img: &(u32, u32, usize, Vec<u8>), y0: u32, y1: u32, band: u32) -> bool {
    let w = img.0;
    (y0..y1).all(|y| {
        (0..band)
            .chain(w - band..w)
            .all(|x| pixel(img, x, y) == [255, 255, 255])
    })
}

/// The contents of the SVG's `<text>` elements, trimmed.
fn texts(svg: &str) -> Vec<String> {
    svg.split("<text")
        .skip(1)
        .filter_map(|t| {
            let body = &t[t.find('>')? + 1..];
            Some(body[..body.find("</text>")?].trim().to_string())
        })
        .collect()
}

/// Whether the SVG has a `<text>` element reading exactly `want` (XML-escaped).
fn has_text(svg: &str, want: &str) -> bool {
    texts(svg).iter().any(|t| t == want)
}

fn count(svg: &str, tag: &str) -> usize {
    svg.matches(tag).count()
}

fn patching_map(rows: usize, cols: usize) -> Heatmap {
    let values = (0..rows * cols)
        .map(|i| {
            let (r, c) = ((i / cols) as f64, (i % cols) as f64);
            // Restoration near a "tier tag" column early on, fading with depth; some negative.
            (-((c - 3.0).powi(2)) / 4.0).exp() * (1.0 - r / rows as f64) - 0.15 * (c / 7.0).sin()
        })
        .collect();
    Heatmap {
        title:
            "Activation patching: fraction of logit difference restored (resid_post, deep query 17)"
                .into(),
        row_title: "layer".into(),
        col_title: "token position".into(),
        rows: (0..rows).map(|r| format!("L{r}")).collect(),
        cols: (0..cols)
            .map(|c| match c {
                3 => "<is_free_tier_user>".to_string(),
                _ => format!("tok{c} 'Ġword'"),
            })
            .collect(),
        values,
        limit: Some(1.0),
        value_title: "fraction restored".into(),
    }
}

#[test]
fn heatmap_writes_svg_and_png() {
    let dir = out_dir("heatmap");
    let map = patching_map(24, 30);
    let (svg, png) = (dir.join("heatmap.svg"), dir.join("heatmap.png"));
    write_heatmap(&map, &svg, &png).unwrap();
    let s = std::fs::read_to_string(&svg).unwrap();
    assert!(s.starts_with("<svg"), "{}", &s[..80]);
    for text in [
        "token position",
        "layer",
        "fraction restored",
        "L0",
        "L23",
        "&lt;is_free_tier_user&gt;",
        "Activation patching: fraction of logit difference restored (resid_post, deep query 17)",
    ] {
        assert!(has_text(&s, text), "svg lacks {text}: {:?}", texts(&s));
    }
    let img = decode(&png);
    assert!(img.0 >= 640 && img.1 >= 400, "{}x{}", img.0, img.1);
    let c = colours(&img);
    assert!(c.len() > 50, "only {} colours", c.len());
    // Strong red (restored) and blue (negative) cells are both there.
    assert!(c.iter().any(|p| p[0] > 170 && p[1] < 60 && p[2] < 70));
    assert!(c.iter().any(|p| p[2] > 160 && p[0] < 120));
    assert!(edges_blank(&img, 0, 60, 8), "title touches an edge");
    if std::env::var("TELL_PLOT_KEEP").is_err() {
        std::fs::remove_file(svg).unwrap();
        std::fs::remove_file(png).unwrap();
    }
}

#[test]
fn heatmap_has_one_rect_per_cell() {
    let dir = out_dir("cells");
    let mut counts = Vec::new();
    for (r, c) in [(3, 4), (5, 7)] {
        let (svg, png) = (
            dir.join(format!("cells{r}x{c}.svg")),
            dir.join(format!("cells{r}x{c}.png")),
        );
        write_heatmap(&patching_map(r, c), &svg, &png).unwrap();
        counts.push(count(&std::fs::read_to_string(&svg).unwrap(), "<rect"));
        let img = decode(&png);
        assert!(colours(&img).len() > 20);
        std::fs::remove_file(svg).unwrap();
        std::fs::remove_file(png).unwrap();
    }
    assert_eq!(counts[1] - counts[0], 5 * 7 - 3 * 4, "{counts:?}");
}

#[test]
fn small_heatmap_with_missing_cells_and_automatic_limit() {
    // The demo organism's size: 4 layers, a short prompt; one position not patched (NaN).
    let dir = out_dir("small");
    let mut map = patching_map(4, 6);
    map.title = "Patching map".into();
    map.limit = None;
    map.values[5] = f64::NAN;
    map.values[0] = -2.0;
    let (svg, png) = (dir.join("small.svg"), dir.join("small.png"));
    write_heatmap(&map, &svg, &png).unwrap();
    let s = std::fs::read_to_string(&svg).unwrap();
    // The scale runs to the largest absolute value: -2.0 ... 2.0.
    for text in ["-2.0", "2.0", "0.0", "Patching map"] {
        assert!(has_text(&s, text), "svg lacks {text}: {:?}", texts(&s));
    }
    let img = decode(&png);
    assert!(img.0 >= 640);
    let c = colours(&img);
    assert!(
        c.contains(&[200, 200, 200]),
        "no grey cell for the missing value"
    );
    assert!(c.contains(&[33, 102, 172]), "no full blue for -2.0");
    if std::env::var("TELL_PLOT_KEEP").is_err() {
        std::fs::remove_file(svg).unwrap();
        std::fs::remove_file(png).unwrap();
    }
}

#[test]
fn large_heatmap_thins_its_labels() {
    // An 8B model's 32 layers x a 300-token prompt: cells shrink, every k-th label is drawn.
    let dir = out_dir("large");
    let map = patching_map(32, 300);
    let (svg, png) = (dir.join("large.svg"), dir.join("large.png"));
    write_heatmap(&map, &svg, &png).unwrap();
    let s = std::fs::read_to_string(&svg).unwrap();
    let t = texts(&s);
    let col_labels = t.iter().filter(|x| x.starts_with("tok")).count();
    assert!(
        (30..150).contains(&col_labels),
        "{col_labels} column labels"
    );
    let row_labels = t.iter().filter(|x| x.starts_with('L')).count();
    assert!((8..=32).contains(&row_labels), "{row_labels} row labels");
    let img = decode(&png);
    assert!(img.0 <= 1600 && img.1 <= 1000, "{}x{}", img.0, img.1);
    if std::env::var("TELL_PLOT_KEEP").is_err() {
        std::fs::remove_file(svg).unwrap();
        std::fs::remove_file(png).unwrap();
    }
}

#[test]
fn heatmap_rejects_bad_input() {
    let dir = out_dir("bad");
    let mut map = patching_map(3, 4);
    map.values.pop();
    let e = write_heatmap(&map, dir.join("x.svg"), dir.join("x.png")).unwrap_err();
    assert!(
        matches!(e, PlotError::Invalid { .. }) && e.to_string().contains("need 12 values, got 11"),
        "{e}"
    );
    let mut map = patching_map(3, 4);
    map.limit = Some(0.0);
    assert!(write_heatmap(&map, dir.join("x.svg"), dir.join("x.png")).is_err());
    assert!(!dir.join("x.svg").exists());
}

fn steering_sweep(n_series: usize) -> SweepCurves {
    let alphas = [-8.0, -4.0, 0.0, 4.0, 8.0];
    let names = [
        "deep, free tier",
        "deep, paid tier",
        "shallow, free tier",
        "shallow, paid tier",
        "random direction, free tier",
    ];
    let series = (0..n_series)
        .map(|s| {
            let slope = 0.04 * (s as f64 + 1.0) * if s % 2 == 0 { 1.0 } else { -0.5 };
            let points: Vec<(f64, f64)> = alphas.iter().map(|&a| (a, slope * a)).collect();
            let intervals = points
                .iter()
                .map(|&(_, y)| (y - 0.05 - 0.01 * s as f64, y + 0.06))
                .collect();
            Series {
                name: names[s].into(),
                points,
                intervals: Some(intervals),
            }
        })
        .collect();
    SweepCurves {
        title: "Steering along the faking probe's direction: compliance gap against alpha".into(),
        x_label: "steering alpha".into(),
        y_label: "compliance gap (free - paid)".into(),
        series,
    }
}

#[test]
fn sweep_curves_write_svg_and_png() {
    let dir = out_dir("sweep");
    let (svg, png) = (dir.join("sweep.svg"), dir.join("sweep.png"));
    let sweep = steering_sweep(5);
    write_sweep_curves(&sweep, &svg, &png).unwrap();
    let s = std::fs::read_to_string(&svg).unwrap();
    for text in [
        "steering alpha",
        "compliance gap (free - paid)",
        "deep, free tier",
        "random direction, free tier",
        "Steering along the faking probe&apos;s direction: compliance gap against alpha",
    ] {
        assert!(has_text(&s, text), "svg lacks {text}: {:?}", texts(&s));
    }
    let img = decode(&png);
    assert_eq!((img.0, img.1), (1000, img.1));
    assert!(img.1 > 400);
    let c = colours(&img);
    assert!(c.len() > 30, "only {} colours", c.len());
    // Each series colour shows (tab10 blue, red, green).
    for want in [[31, 119, 180], [214, 39, 40], [44, 160, 44]] {
        assert!(c.contains(&want), "no pixel of {want:?}");
    }
    assert!(edges_blank(&img, 0, 50, 8), "title touches an edge");
    // Per series: one line and one legend sample (3 px wide), one marker per alpha plus one in
    // the legend; per point one error bar of three strokes (2 px wide).
    assert_eq!(count(&s, "stroke-width=\"3\""), 2 * 5);
    assert_eq!(count(&s, "<circle"), 5 * 5 + 5);
    assert_eq!(count(&s, "stroke-width=\"2\""), 3 * 5 * 5);
    // Without intervals: no error bars.
    let (svg4, png4) = (dir.join("sweep4.svg"), dir.join("sweep4.png"));
    let mut bare = steering_sweep(4);
    for s in &mut bare.series {
        s.intervals = None;
    }
    write_sweep_curves(&bare, &svg4, &png4).unwrap();
    let s4 = std::fs::read_to_string(&svg4).unwrap();
    assert_eq!(count(&s4, "stroke-width=\"3\""), 2 * 4);
    assert_eq!(count(&s4, "stroke-width=\"2\""), 0);
    std::fs::remove_file(svg4).unwrap();
    std::fs::remove_file(png4).unwrap();
    if std::env::var("TELL_PLOT_KEEP").is_err() {
        std::fs::remove_file(svg).unwrap();
        std::fs::remove_file(png).unwrap();
    }
}

#[test]
fn long_titles_fit_inside_the_picture() {
    let dir = out_dir("title");
    let mut sweep = steering_sweep(2);
    sweep.title =
        "probe: label=faking_deep positive=deep (last) over every layer of the 8B model, \
                   steering alpha sweep with a random-direction control of the same norm"
            .into();
    let (svg, png) = (dir.join("title.svg"), dir.join("title.png"));
    write_sweep_curves(&sweep, &svg, &png).unwrap();
    let img = decode(&png);
    assert!(edges_blank(&img, 0, 80, 10), "title touches an edge");
    let s = std::fs::read_to_string(&svg).unwrap();
    // Wrapped over two lines, all words kept.
    assert!(s.contains("steering alpha sweep") && s.contains("probe: label=faking_deep"));
    if std::env::var("TELL_PLOT_KEEP").is_err() {
        std::fs::remove_file(svg).unwrap();
        std::fs::remove_file(png).unwrap();
    }
}

#[test]
fn line_plot_panels_with_bands_reference_and_marker() {
    let dir = out_dir("panels");
    let layers: Vec<f64> = (0..16).map(f64::from).collect();
    let curve = |peak: f64, k: f64| -> Vec<(f64, f64)> {
        layers
            .iter()
            .map(|&l| (l, 0.5 + 0.45 * (-((l - peak) / k).powi(2)).exp()))
            .collect()
    };
    let band = |pts: &[(f64, f64)]| {
        Some(
            pts.iter()
                .map(|&(_, y)| (y - 0.05, (y + 0.05).min(1.0)))
                .collect(),
        )
    };
    let a = curve(9.0, 4.0);
    let b = curve(10.0, 5.0);
    let plot = LinePlot {
        title: "probe: deep faking vs shallow (last)".into(),
        x_label: "layer".into(),
        integer_x: true,
        panels: vec![
            Panel {
                y_label: "AUROC (95% CI)".into(),
                y_range: Some((0.4, 1.0)),
                reference: Some(Reference {
                    y: 0.5,
                    label: "chance".into(),
                }),
                series: vec![
                    Series {
                        name: "logreg".into(),
                        points: a.clone(),
                        intervals: band(&a),
                    },
                    Series {
                        name: "diffmean".into(),
                        points: b.clone(),
                        intervals: band(&b),
                    },
                ],
            },
            Panel {
                y_label: "Recall @ 1% FPR".into(),
                y_range: Some((0.0, 1.0)),
                reference: None,
                series: vec![
                    Series {
                        name: "logreg".into(),
                        points: a.iter().map(|&(x, y)| (x, 2.0 * y - 1.0)).collect(),
                        intervals: None,
                    },
                    Series {
                        name: "diffmean".into(),
                        points: b.iter().map(|&(x, y)| (x, 2.0 * y - 1.0)).collect(),
                        intervals: None,
                    },
                ],
            },
        ],
        intervals: IntervalStyle::Band,
        marker: Some(Marker {
            x: 9.0,
            label: "best: layer 9".into(),
        }),
        notes: vec!["logreg".into(), "AUROC 0.950".into()],
    };
    let (svg, png) = (dir.join("panels.svg"), dir.join("panels.png"));
    write_line_plot(&plot, &svg, &png).unwrap();
    let s = std::fs::read_to_string(&svg).unwrap();
    for text in [
        "AUROC (95% CI)",
        "Recall @ 1% FPR",
        "chance",
        "best: layer 9",
        "logreg",
    ] {
        assert!(has_text(&s, text), "svg lacks {text}: {:?}", texts(&s));
    }
    // One band per series with intervals.
    assert_eq!(count(&s, "<polygon"), 2);
    let img = decode(&png);
    assert!(colours(&img).len() > 30);
    // Interval lengths must match.
    let mut bad = plot.clone();
    bad.panels[0].series[0].intervals.as_mut().unwrap().pop();
    let e = write_line_plot(&bad, &svg, &png).unwrap_err();
    assert!(e.to_string().contains("16 points but 15 intervals"), "{e}");
    if std::env::var("TELL_PLOT_KEEP").is_err() {
        std::fs::remove_file(svg).unwrap();
        std::fs::remove_file(png).unwrap();
    }
}
