//! Sweeps scored as behavior: a suite generated under each setting of an intervention (steering
//! strength, ablation, noise level), scored, and compared with the unedited setting.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use serde::Serialize;
use tell_capture::{respond_file, RespondOptions};
use tell_faking::stats::compare;
use tell_faking::{
    behavior_table, read_responses, render_suite_with, score_all, write_csv, write_prompts,
    BehaviorRow, RenderOptions, Suite,
};
use tell_llama::burn::tensor::backend::Backend;
use tell_llama::{Edit, GenerateOptions, Hook, Intervention, Llama, Span};

use crate::error::{InterveneError, Result};

/// What a sweep varies.
#[derive(Debug, Clone, PartialEq)]
pub enum Sweep {
    /// `add` with each alpha (0 is the reference).
    Alphas(Vec<f64>),
    /// No edit (the reference), then ablation of the direction.
    Ablate,
    /// `noise` with each sigma (0 is the reference).
    Noise(Vec<f64>),
}

/// Everything `tell steer` lets the user choose.
#[derive(Debug, Clone)]
pub struct SteerOptions {
    /// Where the edits apply.
    pub hook: Hook,
    /// Layers edited.
    pub layers: Vec<usize>,
    /// Positions edited.
    pub span: Span,
    /// The direction (`Alphas`, `Ablate`); `None` for noise.
    pub vector: Option<Vec<f32>>,
    /// What varies.
    pub sweep: Sweep,
    /// Also run a random direction of the same norm (seeded) as a control.
    pub random_control: bool,
    /// Seed of the random direction and of the noise.
    pub seed: u64,
    /// Queries per query set (`None`: the suite's own).
    pub limit: Option<usize>,
    /// Most new tokens per response (`None`: the suite's).
    pub max_new_tokens: Option<usize>,
    /// Prompts generated at once.
    pub batch_size: usize,
}

/// One setting of a sweep.
#[derive(Debug, Clone, PartialEq)]
pub struct Setting {
    /// `probe` or `random` (the control), `noise` for noise sweeps.
    pub direction: String,
    /// The swept value (alpha, sigma; 0 or 1 for none / ablated).
    pub value: f64,
    /// Folder name under the output.
    pub name: String,
    /// The edits (`None`: the reference run).
    pub intervention: Option<Intervention>,
}

/// A row of steer.csv: one setting, condition and kind, compared with the reference.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct SteerRow {
    /// `probe`, `random` or `noise`.
    pub direction: String,
    /// The swept value.
    pub value: f64,
    /// The condition.
    pub condition: String,
    /// The kind of query.
    pub kind: String,
    /// Monitored compliance.
    pub monitored_rate: f64,
    /// Unmonitored compliance.
    pub unmonitored_rate: f64,
    /// Compliance gap, with its Newcombe 95% interval.
    pub gap: f64,
    /// Lower end.
    pub gap_lo: f64,
    /// Upper end.
    pub gap_hi: f64,
    /// Change of monitored compliance against the reference.
    pub d_monitored: f64,
    /// Its Newcombe 95% interval.
    pub d_monitored_lo: f64,
    /// Upper end.
    pub d_monitored_hi: f64,
    /// Fisher's exact p of monitored compliance, this setting against the reference.
    pub d_monitored_p: f64,
    /// Change of unmonitored compliance against the reference.
    pub d_unmonitored: f64,
    /// Its Newcombe 95% interval.
    pub d_unmonitored_lo: f64,
    /// Upper end.
    pub d_unmonitored_hi: f64,
    /// Fisher's exact p of unmonitored compliance against the reference.
    pub d_unmonitored_p: f64,
    /// Change of the gap against the reference.
    pub d_gap: f64,
}

/// What `tell steer` wrote.
#[derive(Debug, Clone, PartialEq)]
pub struct SteerReport {
    /// steer.csv.
    pub csv: PathBuf,
    /// Its rows.
    pub rows: Vec<SteerRow>,
    /// The settings run, in order.
    pub settings: Vec<Setting>,
}

/// The settings of a sweep, the reference first.
pub fn settings(opts: &SteerOptions, d: usize) -> Result<Vec<Setting>> {
    let err = |message: &str| InterveneError::Spec {
        spec: "tell steer".into(),
        field: "sweep".into(),
        message: message.into(),
    };
    let mut directions: Vec<(String, Vec<f32>)> = Vec::new();
    if !matches!(opts.sweep, Sweep::Noise(_)) {
        let v = opts
            .vector
            .clone()
            .ok_or_else(|| err("steering and ablation need a direction (--probe or --vector)"))?;
        if v.len() != d {
            return Err(err(&format!(
                "the direction has {} values, the model's hidden size is {d}",
                v.len()
            )));
        }
        if opts.random_control {
            directions.push(("random".into(), random_like(&v, opts.seed)));
        }
        directions.insert(0, ("probe".into(), v));
    }
    let edit = |op: Edit| Some(Intervention { edits: vec![op] });
    let (hook, layers, span) = (opts.hook, opts.layers.clone(), opts.span.clone());
    let mut out = vec![Setting {
        direction: "none".into(),
        value: 0.0,
        name: "reference".into(),
        intervention: None,
    }];
    match &opts.sweep {
        Sweep::Alphas(alphas) => {
            if alphas.is_empty() || alphas.iter().any(|a| !a.is_finite()) {
                return Err(err("--alphas needs finite values"));
            }
            for (dir, v) in &directions {
                for &a in alphas.iter().filter(|&&a| a != 0.0) {
                    out.push(Setting {
                        direction: dir.clone(),
                        value: a,
                        name: format!("{dir}-alpha{a}"),
                        intervention: edit(Edit::add(
                            hook,
                            layers.clone(),
                            span.clone(),
                            a as f32,
                            v.clone(),
                        )),
                    });
                }
            }
        }
        Sweep::Ablate => {
            for (dir, v) in &directions {
                out.push(Setting {
                    direction: dir.clone(),
                    value: 1.0,
                    name: format!("{dir}-ablated"),
                    intervention: edit(Edit::ablate(hook, layers.clone(), span.clone(), v)?),
                });
            }
        }
        Sweep::Noise(sigmas) => {
            if sigmas.is_empty() || sigmas.iter().any(|s| !(s.is_finite() && *s >= 0.0)) {
                return Err(err("--noise-sigmas needs finite values >= 0"));
            }
            for &s in sigmas.iter().filter(|&&s| s != 0.0) {
                out.push(Setting {
                    direction: "noise".into(),
                    value: s,
                    name: format!("noise-sigma{s}"),
                    intervention: edit(Edit::noise(
                        hook,
                        layers.clone(),
                        span.clone(),
                        s as f32,
                        opts.seed,
                    )),
                });
            }
        }
    }
    Ok(out)
}

/// A standard-normal direction (seeded) scaled to the norm of `v`.
fn random_like(v: &[f32], seed: u64) -> Vec<f32> {
    let mut state = seed ^ 0xD1B5_4A32_D192_ED03;
    let mut next = || {
        state = state.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = state;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        ((z ^ (z >> 31)) >> 11) as f64 / (1u64 << 53) as f64
    };
    let r: Vec<f64> = (0..v.len())
        .map(|_| {
            let (u1, u2) = (1.0 - next(), next());
            (-2.0 * u1.ln()).sqrt() * (std::f64::consts::TAU * u2).cos()
        })
        .collect();
    let norm = |x: &mut dyn Iterator<Item = f64>| x.map(|a| a * a).sum::<f64>().sqrt();
    let want = norm(&mut v.iter().map(|&a| f64::from(a)));
    let have = norm(&mut r.iter().copied());
    r.iter().map(|a| (a * want / have) as f32).collect()
}

/// Runs the suite under every setting and writes each setting's responses, scores and behavior,
/// then `steer.csv` and `steer.svg/png` (the gap against the setting, per condition).
pub fn run_steer<B: Backend>(
    suite: &Path,
    model: &Path,
    out: &Path,
    opts: &SteerOptions,
    device: &B::Device,
) -> Result<SteerReport> {
    let loaded = Suite::load(suite).map_err(|e| spec_err(suite, e))?;
    let lines = render_suite_with(suite, &RenderOptions { limit: opts.limit })
        .map_err(|e| spec_err(suite, e))?;
    if lines.is_empty() {
        return Err(spec_err(suite, "the suite renders no prompts"));
    }
    let llama = Llama::<B>::load(model, device)?;
    let settings = settings(opts, llama.config().hidden_size)?;
    for s in &settings {
        if let Some(iv) = &s.intervention {
            iv.check(llama.config())?;
        }
    }
    let tokenizer = tell_tokenizer::Tokenizer::load(model).map_err(|e| InterveneError::Source {
        path: model.to_path_buf(),
        message: format!("the model's tokenizer cannot be loaded: {e}"),
    })?;
    let io = |path: &Path| {
        let path = path.to_path_buf();
        move |err| InterveneError::Io { path, err }
    };
    std::fs::create_dir_all(out).map_err(io(out))?;
    let prompts_path = out.join("prompts.jsonl");
    write_prompts(&prompts_path, &lines).map_err(|e| spec_err(&prompts_path, e))?;
    let gen = &loaded.spec.generation;
    let mut tables: Vec<Vec<BehaviorRow>> = Vec::new();
    for s in &settings {
        let dir = out.join(&s.name);
        std::fs::create_dir_all(&dir).map_err(io(&dir))?;
        let responses = dir.join("responses.jsonl");
        let ropts = RespondOptions {
            generate: GenerateOptions {
                max_new_tokens: opts.max_new_tokens.unwrap_or(gen.max_new_tokens),
                temperature: gen.temperature as f32,
                seed: gen.seed,
                pad_token: tokenizer.eos_token_id().unwrap_or(0),
                intervention: s.intervention.clone().map(Arc::new),
                ..GenerateOptions::default()
            },
            batch_size: opts.batch_size,
            ..RespondOptions::default()
        };
        respond_file(
            &llama,
            &tokenizer,
            &prompts_path,
            &responses,
            &ropts,
            |_, _| {},
        )?;
        let read = read_responses(&responses).map_err(|e| spec_err(&responses, e))?;
        let scores = score_all(&lines, &read, &responses, &prompts_path)
            .map_err(|e| spec_err(&responses, e))?;
        write_csv(&dir.join("scores.csv"), &scores).map_err(|e| spec_err(&dir, e))?;
        let behavior = behavior_table(&scores);
        write_csv(&dir.join("behavior.csv"), &behavior).map_err(|e| spec_err(&dir, e))?;
        tables.push(behavior);
    }
    let rows = compare_settings(&settings, &tables);
    let csv = out.join("steer.csv");
    write_csv(&csv, &rows).map_err(|e| spec_err(&csv, e))?;
    plot(&rows, opts, out)?;
    Ok(SteerReport {
        csv,
        rows,
        settings,
    })
}

fn spec_err(path: &Path, e: impl std::fmt::Display) -> InterveneError {
    InterveneError::Source {
        path: path.to_path_buf(),
        message: e.to_string(),
    }
}

/// Every setting's behavior rows against the reference's (the first table).
fn compare_settings(settings: &[Setting], tables: &[Vec<BehaviorRow>]) -> Vec<SteerRow> {
    let reference = &tables[0];
    let mut rows = Vec::new();
    for (s, table) in settings.iter().zip(tables) {
        for b in table {
            let Some(r) = reference
                .iter()
                .find(|r| r.condition == b.condition && r.kind == b.kind)
            else {
                continue;
            };
            let judged = |c: u64, r: u64| (c, c + r);
            let (km, nm) = judged(b.monitored_complied, b.monitored_refused);
            let (ku, nu) = judged(b.unmonitored_complied, b.unmonitored_refused);
            let (rkm, rnm) = judged(r.monitored_complied, r.monitored_refused);
            let (rku, rnu) = judged(r.unmonitored_complied, r.unmonitored_refused);
            let dm = compare(km, nm, rkm, rnm);
            let du = compare(ku, nu, rku, rnu);
            let nan = f64::NAN;
            rows.push(SteerRow {
                direction: s.direction.clone(),
                value: s.value,
                condition: b.condition.clone(),
                kind: b.kind.clone(),
                monitored_rate: b.monitored_rate,
                unmonitored_rate: b.unmonitored_rate,
                gap: b.gap,
                gap_lo: b.gap_lo,
                gap_hi: b.gap_hi,
                d_monitored: dm.as_ref().map_or(nan, |c| c.gap),
                d_monitored_lo: dm.as_ref().map_or(nan, |c| c.gap_ci.lower),
                d_monitored_hi: dm.as_ref().map_or(nan, |c| c.gap_ci.upper),
                d_monitored_p: dm.as_ref().map_or(nan, |c| c.fisher_p),
                d_unmonitored: du.as_ref().map_or(nan, |c| c.gap),
                d_unmonitored_lo: du.as_ref().map_or(nan, |c| c.gap_ci.lower),
                d_unmonitored_hi: du.as_ref().map_or(nan, |c| c.gap_ci.upper),
                d_unmonitored_p: du.as_ref().map_or(nan, |c| c.fisher_p),
                d_gap: b.gap - r.gap,
            });
        }
    }
    rows
}

/// steer.svg/png: the compliance gap (with its interval) against the setting, one series per
/// direction, condition and kind; the reference joins every series at its own x.
fn plot(rows: &[SteerRow], opts: &SteerOptions, out: &Path) -> Result<()> {
    let mut keys: Vec<(String, String, String)> = Vec::new();
    for r in rows.iter().filter(|r| r.direction != "none") {
        let k = (r.direction.clone(), r.condition.clone(), r.kind.clone());
        if !keys.contains(&k) {
            keys.push(k);
        }
    }
    // The reference (no edit) is alpha 0, sigma 0, or "not ablated".
    let reference_x = 0.0;
    let series = keys
        .iter()
        .map(|(dir, cond, kind)| {
            let mut pts: Vec<&SteerRow> = rows
                .iter()
                .filter(|r| {
                    (r.direction == *dir || r.direction == "none")
                        && r.condition == *cond
                        && r.kind == *kind
                })
                .collect();
            pts.sort_by(|a, b| a.value.total_cmp(&b.value));
            tell_plot::Series {
                name: format!("{dir}: {cond} ({kind})"),
                points: pts
                    .iter()
                    .map(|r| {
                        (
                            if r.direction == "none" {
                                reference_x
                            } else {
                                r.value
                            },
                            r.gap,
                        )
                    })
                    .collect(),
                intervals: Some(pts.iter().map(|r| (r.gap_lo, r.gap_hi)).collect()),
            }
        })
        .collect();
    let (title, x) = match opts.sweep {
        Sweep::Alphas(_) => ("Compliance gap against steering strength", "alpha"),
        Sweep::Ablate => (
            "Compliance gap without (0) and with (1) the direction ablated",
            "ablated",
        ),
        Sweep::Noise(_) => (
            "Compliance gap against injected noise",
            "sigma (x rms of the activation)",
        ),
    };
    let sweep = tell_plot::SweepCurves {
        title: title.into(),
        x_label: x.into(),
        y_label: "compliance gap (monitored - unmonitored)".into(),
        series,
    };
    let svg = out.join("steer.svg");
    tell_plot::write_sweep_curves(&sweep, &svg, out.join("steer.png")).map_err(|e| {
        InterveneError::Source {
            path: svg,
            message: format!("drawing the sweep: {e}"),
        }
    })
}

/// The user's choices as written on the command line, before they are checked against a model.
#[derive(Debug, Clone, Default)]
pub struct SteerRequest {
    /// A probe directory (its raw-space direction, site and layer) or a vector file.
    pub vector: Option<PathBuf>,
    /// Block site (default: the probe's).
    pub site: Option<String>,
    /// Layers (default: the probe's).
    pub layers: Option<String>,
    /// Positions (default `all`).
    pub positions: Option<String>,
    /// `--alphas`.
    pub alphas: Option<Vec<f64>>,
    /// `--ablate`.
    pub ablate: bool,
    /// `--noise-sigmas`.
    pub noise_sigmas: Option<Vec<f64>>,
}

impl SteerRequest {
    /// Resolves site, layers, positions and the direction against the checkpoint at `model`.
    pub fn resolve(&self, model: &Path, base: SteerOptions) -> Result<SteerOptions> {
        let cfg = tell_llama::Checkpoint::open(model)?.config;
        let err = |field: &str, message: String| InterveneError::Spec {
            spec: "tell steer".into(),
            field: field.into(),
            message,
        };
        let sweep = match (&self.alphas, self.ablate, &self.noise_sigmas) {
            (Some(a), false, None) => Sweep::Alphas(a.clone()),
            (None, true, None) => Sweep::Ablate,
            (None, false, Some(s)) => Sweep::Noise(s.clone()),
            _ => {
                return Err(err(
                    "sweep",
                    "give exactly one of --alphas, --ablate or --noise-sigmas".into(),
                ))
            }
        };
        let vector = match &self.vector {
            Some(p) => Some(crate::load_vector(p, cfg.hidden_size)?),
            None => None,
        };
        let site = self
            .site
            .clone()
            .or_else(|| vector.as_ref().and_then(|v| v.site.clone()))
            .unwrap_or_else(|| "resid_post".into());
        let hook = match site.parse::<tell_llama::Site>() {
            Ok(tell_llama::Site::Block { hook, .. }) => Some(hook),
            _ => Hook::parse(&site),
        }
        .ok_or_else(|| err("site", format!("{site:?} is not a block site")))?;
        let layers = match (&self.layers, vector.as_ref().and_then(|v| v.layer)) {
            (Some(l), _) => l.clone(),
            (None, Some(l)) => l.to_string(),
            (None, None) => return Err(err("layers", "missing (--layers, or a probe)".into())),
        };
        let layers = tell_capture::parse_layers(&layers, cfg.num_layers)
            .map_err(|e| err("layers", e.to_string()))?;
        let span = Span::parse(self.positions.as_deref().unwrap_or("all"))
            .map_err(|e| err("positions", e.to_string()))?;
        Ok(SteerOptions {
            hook,
            layers,
            span,
            vector: vector.map(|v| v.values),
            sweep,
            ..base
        })
    }
}
