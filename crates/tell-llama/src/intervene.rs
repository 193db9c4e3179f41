//! Interventions: edits of the values at block sites during a forward pass (steering by adding a
//! vector, ablating a direction, injecting noise, patching in another run's values).
//!
//! An edit runs where its site is computed, before anything downstream reads the value, the way a
//! TransformerLens forward hook that returns a new value does: editing `hook_attn_out` changes
//! `resid_mid`, `resid_post` and every later layer. Captures at an edited site hold the edited
//! value. Positions are each token's position in its own sequence (padding excluded), so an edit
//! hits the same tokens whatever the batch and its padding.

use std::collections::BTreeMap;
use std::ops::Range;
use std::sync::Arc;

use crate::config::LlamaConfig;
use crate::error::{Error, Result};
use crate::site::{Hook, Site};

/// Which tokens of a sequence an edit touches.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Span {
    /// Every token.
    All,
    /// Tokens of the prompt (positions before the prompt length).
    Prompt,
    /// Tokens after the prompt: a response given with the prompt, or generated ones.
    Response,
    /// The last prompt token.
    Last,
    /// Explicit position ranges (half-open, positions in the sequence).
    Ranges(Vec<Range<usize>>),
}

impl Span {
    /// Parses `all`, `prompt`, `response`, `last` or a list of positions and ranges (`3,5-9`, both
    /// ends included in the text).
    pub fn parse(s: &str) -> Result<Self> {
        let s = s.trim();
        Ok(match s {
            "all" => Span::All,
            "prompt" => Span::Prompt,
            "response" => Span::Response,
            "last" => Span::Last,
            _ => {
                let bad = |m: &str| {
                    Error::Input(format!(
                        "positions {s:?}: {m} (expected all, prompt, response, last, or e.g. 3,5-9)"
                    ))
                };
                let num = |t: &str| t.trim().parse::<usize>().map_err(|_| bad("not a position"));
                let mut ranges = Vec::new();
                for part in s.split(',') {
                    let r = match part.split_once('-') {
                        Some((a, b)) => {
                            let (a, b) = (num(a)?, num(b)?);
                            if a > b {
                                return Err(bad("a range is backwards"));
                            }
                            a..b + 1
                        }
                        None => {
                            let a = num(part)?;
                            a..a + 1
                        }
                    };
                    ranges.push(r);
                }
                Span::Ranges(ranges)
            }
        })
    }

    /// Whether the token at `pos` of a sequence whose prompt has `prompt_len` tokens is covered.
    pub fn covers(&self, pos: usize, prompt_len: usize) -> bool {
        match self {
            Span::All => true,
            Span::Prompt => pos < prompt_len,
            Span::Response => pos >= prompt_len,
            Span::Last => pos + 1 == prompt_len,
            Span::Ranges(r) => r.iter().any(|r| r.contains(&pos)),
        }
    }

    /// How many positions of a sequence of `len` tokens (prompt `prompt_len`) are covered.
    pub fn count(&self, len: usize, prompt_len: usize) -> usize {
        (0..len).filter(|&p| self.covers(p, prompt_len)).count()
    }
}

/// What an edit does to a value `h` (one token's row at one site and layer).
#[derive(Debug, Clone, PartialEq)]
pub enum Op {
    /// `h += alpha * v`.
    Add { alpha: f32, vector: Arc<Vec<f32>> },
    /// `h -= (h . u) u` with `u` the unit vector along the direction.
    Ablate { unit: Arc<Vec<f32>> },
    /// `h += sigma * rms(h) * e`, `e` standard normal from a stream keyed by the seed, the row's
    /// key, the site and the position (so a draw does not depend on the batch).
    Noise { sigma: f32, seed: u64 },
    /// `h` becomes the value of the row's patch source at the same site and position.
    Patch,
}

/// One edit: an operation at a hook, at some layers, over some positions.
#[derive(Debug, Clone, PartialEq)]
pub struct Edit {
    /// Where inside each block.
    pub hook: Hook,
    /// Which blocks.
    pub layers: Vec<usize>,
    /// Which tokens.
    pub span: Span,
    /// What it does.
    pub op: Op,
}

impl Edit {
    /// An `add` edit.
    pub fn add(hook: Hook, layers: Vec<usize>, span: Span, alpha: f32, vector: Vec<f32>) -> Self {
        Self {
            hook,
            layers,
            span,
            op: Op::Add {
                alpha,
                vector: Arc::new(vector),
            },
        }
    }

    /// An `ablate` edit; the direction is normalised here (a zero vector is an error).
    pub fn ablate(hook: Hook, layers: Vec<usize>, span: Span, direction: &[f32]) -> Result<Self> {
        let norm = direction
            .iter()
            .map(|&x| f64::from(x) * f64::from(x))
            .sum::<f64>()
            .sqrt();
        if norm == 0.0 || !norm.is_finite() {
            return Err(Error::Input(format!(
                "ablate needs a non-zero, finite direction (norm {norm})"
            )));
        }
        let unit = direction
            .iter()
            .map(|&x| (f64::from(x) / norm) as f32)
            .collect();
        Ok(Self {
            hook,
            layers,
            span,
            op: Op::Ablate {
                unit: Arc::new(unit),
            },
        })
    }

    /// A `noise` edit.
    pub fn noise(hook: Hook, layers: Vec<usize>, span: Span, sigma: f32, seed: u64) -> Self {
        Self {
            hook,
            layers,
            span,
            op: Op::Noise { sigma, seed },
        }
    }

    /// A `patch` edit (the values come with each row, [`RowEdit::patch`]).
    pub fn patch(hook: Hook, layers: Vec<usize>, span: Span) -> Self {
        Self {
            hook,
            layers,
            span,
            op: Op::Patch,
        }
    }

    /// The vector an edit reads, if any.
    fn vector(&self) -> Option<&[f32]> {
        match &self.op {
            Op::Add { vector, .. } => Some(vector),
            Op::Ablate { unit } => Some(unit),
            _ => None,
        }
    }
}

/// A list of edits, applied in order at each site.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Intervention {
    /// The edits.
    pub edits: Vec<Edit>,
}

impl Intervention {
    /// Whether nothing is edited.
    pub fn is_empty(&self) -> bool {
        self.edits.is_empty()
    }

    /// Whether some edit patches (then every row needs its source values).
    pub fn patches(&self) -> bool {
        self.edits.iter().any(|e| e.op == Op::Patch)
    }

    /// The block sites some edit touches.
    pub fn sites(&self) -> Vec<Site> {
        self.sites_of(|_| true)
    }

    /// The block sites `patch` edits touch (the sites a patch source must provide).
    pub fn patch_sites(&self) -> Vec<Site> {
        self.sites_of(|e| e.op == Op::Patch)
    }

    /// The block sites of the edits `keep` selects, sorted, each once.
    fn sites_of(&self, keep: impl Fn(&Edit) -> bool) -> Vec<Site> {
        let mut out: Vec<Site> = self
            .edits
            .iter()
            .filter(|e| keep(e))
            .flat_map(|e| {
                e.layers.iter().map(|&layer| Site::Block {
                    layer,
                    hook: e.hook,
                })
            })
            .collect();
        out.sort();
        out.dedup();
        out
    }

    /// Checks layers and vector widths against a model's architecture.
    pub fn check(&self, cfg: &LlamaConfig) -> Result<()> {
        for (i, e) in self.edits.iter().enumerate() {
            if let Some(&l) = e.layers.iter().find(|&&l| l >= cfg.num_layers) {
                return Err(Error::Input(format!(
                    "edit {}: layer {l} is out of range: the model has layers 0..={}",
                    i + 1,
                    cfg.num_layers.saturating_sub(1)
                )));
            }
            if let Some(v) = e.vector() {
                if v.len() != cfg.hidden_size {
                    return Err(Error::Input(format!(
                        "edit {}: the vector has {} values, the model's hidden size is {}",
                        i + 1,
                        v.len(),
                        cfg.hidden_size
                    )));
                }
                if v.iter().any(|x| !x.is_finite()) {
                    return Err(Error::Input(format!(
                        "edit {}: the vector holds a NaN or infinite value",
                        i + 1
                    )));
                }
            }
        }
        Ok(())
    }
}

/// A patch source's values for one row: per site, `[len, width]` for its positions `0..len`.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct PatchValues {
    values: BTreeMap<Site, Vec<f32>>,
    len: usize,
    only: Option<Range<usize>>,
}

impl PatchValues {
    /// An empty source of `len` positions.
    pub fn new(len: usize) -> Self {
        Self {
            values: BTreeMap::new(),
            len,
            only: None,
        }
    }

    /// Restricts the source to some positions (a patching map patches one at a time).
    pub fn only(mut self, positions: Range<usize>) -> Self {
        self.only = Some(positions);
        self
    }

    /// Positions the source covers.
    pub fn len(&self) -> usize {
        self.len
    }

    /// Whether the source covers no position.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Adds a site's values, `[len, width]` row-major.
    pub fn insert(&mut self, site: Site, values: Vec<f32>) -> Result<()> {
        if self.len == 0 || !values.len().is_multiple_of(self.len) {
            return Err(Error::Input(format!(
                "patch values at {site}: {} values for {} positions",
                values.len(),
                self.len
            )));
        }
        self.values.insert(site, values);
        Ok(())
    }

    /// The source's row at a site and position, if it has one.
    pub fn row(&self, site: Site, pos: usize) -> Option<&[f32]> {
        let v = self.values.get(&site)?;
        if pos >= self.len || self.only.as_ref().is_some_and(|r| !r.contains(&pos)) {
            return None;
        }
        let width = v.len() / self.len;
        Some(&v[pos * width..(pos + 1) * width])
    }
}

/// What an intervention needs to know about one row of a batch.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct RowEdit {
    /// Tokens of the row's prompt (positions from here on are its response).
    pub prompt_len: usize,
    /// Key of the row's noise stream (its prompt index: independent of the batch it runs in).
    pub key: u64,
    /// Values to patch in, for interventions with `patch` edits.
    pub patch: Option<Arc<PatchValues>>,
}

/// An intervention with the rows of the batch it runs on.
#[derive(Debug, Clone, Copy)]
pub struct Edits<'a> {
    /// The edits.
    pub intervention: &'a Intervention,
    /// One entry per batch row.
    pub rows: &'a [RowEdit],
}

impl Edits<'_> {
    /// Whether some edit touches a site.
    pub fn touches(&self, site: Site) -> bool {
        match site {
            Site::Block { layer, hook } => self
                .intervention
                .edits
                .iter()
                .any(|e| e.hook == hook && e.layers.contains(&layer)),
            _ => false,
        }
    }

    /// Edits `values` (`[rows, seq, width]` row-major) at `site` in place. `positions` and `real`
    /// are per token (`[rows * seq]`); padding is never edited.
    pub fn apply(
        &self,
        site: Site,
        values: &mut [f32],
        width: usize,
        positions: &[usize],
        real: Option<&[bool]>,
    ) -> Result<()> {
        let Site::Block { layer, hook } = site else {
            return Ok(());
        };
        let edits: Vec<&Edit> = self
            .intervention
            .edits
            .iter()
            .filter(|e| e.hook == hook && e.layers.contains(&layer))
            .collect();
        if edits.is_empty() {
            return Ok(());
        }
        let tokens = positions.len();
        if tokens == 0
            || !tokens.is_multiple_of(self.rows.len().max(1))
            || values.len() != tokens * width
        {
            return Err(Error::Input(format!(
                "intervention at {site}: {} values for {tokens} tokens of width {width} in {} rows",
                values.len(),
                self.rows.len()
            )));
        }
        let seq = tokens / self.rows.len();
        for (t, &pos) in positions.iter().enumerate() {
            if real.is_some_and(|m| !m[t]) {
                continue;
            }
            let row = &self.rows[t / seq];
            let h = &mut values[t * width..(t + 1) * width];
            for e in &edits {
                if !e.span.covers(pos, row.prompt_len) {
                    continue;
                }
                match &e.op {
                    Op::Add { alpha, vector } => {
                        for (x, v) in h.iter_mut().zip(vector.iter()) {
                            *x += alpha * v;
                        }
                    }
                    Op::Ablate { unit } => {
                        let dot: f64 = h
                            .iter()
                            .zip(unit.iter())
                            .map(|(&x, &u)| f64::from(x) * f64::from(u))
                            .sum();
                        let dot = dot as f32;
                        for (x, u) in h.iter_mut().zip(unit.iter()) {
                            *x -= dot * u;
                        }
                    }
                    Op::Noise { sigma, seed } => {
                        let ms: f64 = h.iter().map(|&x| f64::from(x) * f64::from(x)).sum::<f64>()
                            / width as f64;
                        let scale = sigma * ms.sqrt() as f32;
                        let mut rng = Normal::new(*seed, row.key, site, pos);
                        for x in h.iter_mut() {
                            *x += scale * rng.next();
                        }
                    }
                    Op::Patch => {
                        let src = row.patch.as_ref().ok_or_else(|| {
                            Error::Input(format!(
                                "a patch edit at {site} runs on a row without patch values"
                            ))
                        })?;
                        if let Some(v) = src.row(site, pos) {
                            if v.len() != width {
                                return Err(Error::Input(format!(
                                    "patch values at {site} have width {}, the model's is {width}",
                                    v.len()
                                )));
                            }
                            h.copy_from_slice(v);
                        }
                    }
                }
            }
        }
        Ok(())
    }
}

/// Standard normal draws (Box-Muller over SplitMix64) from a stream keyed by where they are used.
struct Normal {
    state: u64,
    spare: Option<f32>,
}

impl Normal {
    fn new(seed: u64, key: u64, site: Site, pos: usize) -> Self {
        let site_id = match site {
            Site::Block { layer, hook } => (layer as u64) << 8 | hook as u64,
            _ => u64::MAX,
        };
        let mut s = Self {
            state: seed,
            spare: None,
        };
        for part in [key, site_id, pos as u64] {
            s.state ^= part.wrapping_mul(0x9E37_79B9_7F4A_7C15);
            s.next_u64();
        }
        s
    }

    fn next_u64(&mut self) -> u64 {
        self.state = self.state.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.state;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    fn next(&mut self) -> f32 {
        if let Some(z) = self.spare.take() {
            return z;
        }
        // u1 in (0, 1], so the log is finite.
        let u1 = ((self.next_u64() >> 11) + 1) as f64 / (1u64 << 53) as f64;
        let u2 = (self.next_u64() >> 11) as f64 / (1u64 << 53) as f64;
        let r = (-2.0 * u1.ln()).sqrt();
        let theta = std::f64::consts::TAU * u2;
        self.spare = Some((r * theta.sin()) as f32);
        (r * theta.cos()) as f32
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rows(n: usize, prompt_len: usize) -> Vec<RowEdit> {
        (0..n)
            .map(|i| RowEdit {
                prompt_len,
                key: i as u64,
                patch: None,
            })
            .collect()
    }

    #[test]
    fn spans_cover_the_documented_positions() {
        let covered = |s: &str| -> Vec<usize> {
            let span = Span::parse(s).unwrap();
            (0..6).filter(|&p| span.covers(p, 4)).collect()
        };
        assert_eq!(covered("all"), [0, 1, 2, 3, 4, 5]);
        assert_eq!(covered("prompt"), [0, 1, 2, 3]);
        assert_eq!(covered("response"), [4, 5]);
        assert_eq!(covered("last"), [3]);
        assert_eq!(covered("0,2-3"), [0, 2, 3]);
        for bad in ["x", "3-1", ""] {
            assert!(Span::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn add_ablate_and_noise_do_what_they_say() {
        let site = Site::Block {
            layer: 1,
            hook: Hook::ResidPost,
        };
        let positions = [0, 1, 0, 1];
        let r = rows(2, 2);
        let base: Vec<f32> = vec![3.0, 4.0, 1.0, 0.0, -2.0, 5.0, 0.5, 0.5];
        let run = |edit: Edit, real: Option<&[bool]>| {
            let iv = Intervention { edits: vec![edit] };
            let mut v = base.clone();
            Edits {
                intervention: &iv,
                rows: &r,
            }
            .apply(site, &mut v, 2, &positions, real)
            .unwrap();
            v
        };
        let add = Edit::add(Hook::ResidPost, vec![1], Span::Last, 2.0, vec![1.0, -1.0]);
        assert_eq!(
            run(add.clone(), None),
            [3.0, 4.0, 3.0, -2.0, -2.0, 5.0, 2.5, -1.5]
        );
        // Padding is never edited.
        let real = [true, true, true, false];
        assert_eq!(
            run(add, Some(&real)),
            [3.0, 4.0, 3.0, -2.0, -2.0, 5.0, 0.5, 0.5]
        );
        // Another layer or hook: untouched.
        let other = Edit::add(Hook::ResidPost, vec![0], Span::All, 2.0, vec![1.0, 1.0]);
        assert_eq!(run(other, None), base);
        let ablate = Edit::ablate(Hook::ResidPost, vec![1], Span::All, &[0.0, 3.0]).unwrap();
        assert_eq!(run(ablate, None), [3.0, 0.0, 1.0, 0.0, -2.0, 0.0, 0.5, 0.0]);
        assert!(Edit::ablate(Hook::ResidPost, vec![1], Span::All, &[0.0, 0.0]).is_err());
        // Noise: zero sigma is exact; otherwise the same draw for the same row key and position.
        let none = Edit::noise(Hook::ResidPost, vec![1], Span::All, 0.0, 7);
        assert_eq!(run(none, None), base);
        let noisy = run(
            Edit::noise(Hook::ResidPost, vec![1], Span::All, 0.5, 7),
            None,
        );
        assert_ne!(noisy, base);
        assert_eq!(
            noisy,
            run(
                Edit::noise(Hook::ResidPost, vec![1], Span::All, 0.5, 7),
                None
            )
        );
        assert_ne!(
            noisy,
            run(
                Edit::noise(Hook::ResidPost, vec![1], Span::All, 0.5, 8),
                None
            )
        );
    }

    #[test]
    fn noise_draws_are_standard_normal() {
        let site = Site::resid_post(0);
        let mut rng = Normal::new(1, 2, site, 3);
        let n = 200_000;
        let draws: Vec<f64> = (0..n).map(|_| f64::from(rng.next())).collect();
        let mean = draws.iter().sum::<f64>() / n as f64;
        let var = draws.iter().map(|x| (x - mean).powi(2)).sum::<f64>() / n as f64;
        assert!(mean.abs() < 0.01, "{mean}");
        assert!((var - 1.0).abs() < 0.02, "{var}");
    }

    #[test]
    fn patch_copies_the_source_row_where_it_has_one() {
        let site = Site::resid_post(0);
        let mut src = PatchValues::new(1);
        src.insert(site, vec![9.0, 8.0]).unwrap();
        let r = vec![RowEdit {
            prompt_len: 2,
            key: 0,
            patch: Some(Arc::new(src)),
        }];
        let iv = Intervention {
            edits: vec![Edit::patch(Hook::ResidPost, vec![0], Span::All)],
        };
        let mut v = vec![1.0, 2.0, 3.0, 4.0];
        Edits {
            intervention: &iv,
            rows: &r,
        }
        .apply(site, &mut v, 2, &[0, 1], None)
        .unwrap();
        // Position 1 is beyond the one-token source: left as it was.
        assert_eq!(v, [9.0, 8.0, 3.0, 4.0]);
    }
}
