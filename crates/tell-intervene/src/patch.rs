//! Activation patching: source values for `patch` edits, and patching maps (per layer and
//! position, the fraction of a metric's source-target difference that patching one value restores).

use std::path::Path;
use std::sync::Arc;

use tell_capture::prompts::check_file;
use tell_capture::{patch_sources, Encoder, PromptReader};
use tell_llama::burn::tensor::backend::Backend;
use tell_llama::{
    Batch, Checkpoint, Edit, Edits, Hook, Intervention, Llama, Logits, PatchValues, RowEdit, Site,
    Span,
};

use crate::error::{InterveneError, Result};

/// A prompt file's lines as token ids, with their ids and prompt lengths.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Prompts {
    /// Line ids.
    pub ids: Vec<String>,
    /// Prompt then response tokens per line.
    pub tokens: Vec<Vec<u32>>,
    /// Prompt tokens per line (the rest is the line's response).
    pub prompt_lens: Vec<usize>,
}

/// Reads and encodes a prompt file for a checkpoint (text is rendered as a chat when `chat`).
pub fn read_prompts(
    ck: &Checkpoint,
    path: &Path,
    chat: bool,
    system: Option<&str>,
) -> Result<Prompts> {
    let summary = check_file(path)?;
    let cfg = &ck.config;
    let mut encoder = Encoder::new(path, cfg.max_position_embeddings, cfg.vocab_size, None);
    if let Some(line) = summary.first_text_line {
        let tokenizer = match ck.gguf() {
            Some(g) => tell_tokenizer::Tokenizer::from_gguf(g.tokenizer()),
            None => tell_tokenizer::Tokenizer::load(&ck.path),
        }
        .map_err(|e| InterveneError::Source {
            path: path.to_path_buf(),
            message: format!(
                "line {line}: text needs the model's tokenizer, which cannot be loaded: {e}"
            ),
        })?;
        encoder = encoder.with_tokenizer(tokenizer, chat, system.map(str::to_string));
    }
    let mut out = Prompts {
        ids: summary.ids,
        tokens: Vec::new(),
        prompt_lens: Vec::new(),
    };
    for line in PromptReader::open(path)? {
        let e = encoder.encode(&line?)?;
        out.prompt_lens.push(e.tokens.len() - e.n_response);
        out.tokens.push(e.tokens);
    }
    Ok(out)
}

/// Checks that sources and targets pair line by line: same count; a patch at aligned positions
/// needs no equal lengths, but a source shorter than its target leaves the rest unpatched, so
/// the counts of each are reported by the caller.
pub fn check_pairs(source: &Path, s: &Prompts, target: &Path, t: &Prompts) -> Result<()> {
    if s.tokens.len() != t.tokens.len() {
        return Err(InterveneError::Source {
            path: source.to_path_buf(),
            message: format!(
                "{} source lines for {} target lines in {}: line i of the source patches line i \
                 of the target",
                s.tokens.len(),
                t.tokens.len(),
                target.display()
            ),
        });
    }
    Ok(())
}

/// What a patching map measures at the last position: `logits[a] - logits[b]`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LogitDiff {
    /// The token whose logit counts positively.
    pub a: u32,
    /// The token whose logit counts negatively.
    pub b: u32,
}

/// One cell of a patching map.
#[derive(Debug, Clone, PartialEq)]
pub struct PatchCell {
    /// Patched hook.
    pub hook: Hook,
    /// Patched layer.
    pub layer: usize,
    /// Patched position (of the target).
    pub position: usize,
    /// The metric with this one value patched.
    pub metric: f32,
    /// `(metric - target) / (source - target)`: 0 = no effect, 1 = fully restored.
    pub restored: f32,
}

/// A patching map of one source-target pair.
#[derive(Debug, Clone, PartialEq)]
pub struct PatchMap {
    /// The metric on the target run.
    pub target: f32,
    /// The metric on the source run.
    pub source: f32,
    /// Every (hook, layer, position) patched alone.
    pub cells: Vec<PatchCell>,
}

/// The logit difference at the last position of each row.
fn metric_rows<B: Backend>(
    llama: &Llama<B>,
    batch: &Batch,
    edits: Option<Edits<'_>>,
    m: LogitDiff,
) -> Result<Vec<f32>> {
    let vocab = llama.config().vocab_size;
    for t in [m.a, m.b] {
        if t as usize >= vocab {
            return Err(tell_llama::Error::Input(format!(
                "metric token {t} is outside the vocabulary (size {vocab})"
            ))
            .into());
        }
    }
    let out = llama.forward_with(batch, &[], Logits::Last, edits)?;
    let logits = out
        .logits
        .ok_or_else(|| tell_llama::Error::Input("no logits".into()))?
        .into_data()
        .convert::<f32>()
        .into_vec::<f32>()
        .map_err(|e| tell_llama::Error::Input(format!("reading logits: {e:?}")))?;
    Ok(logits
        .chunks_exact(vocab)
        .map(|row| row[m.a as usize] - row[m.b as usize])
        .collect())
}

/// What a patching map patches and measures.
#[derive(Debug, Clone, Copy)]
pub struct MapSpec<'a> {
    /// Hooks patched.
    pub hooks: &'a [Hook],
    /// Layers patched.
    pub layers: &'a [usize],
    /// The metric.
    pub metric: LogitDiff,
    /// Patched copies of the target per forward pass.
    pub batch_size: usize,
}

/// Patches every (hook, layer, target position) alone from `source` into `target` and measures
/// the metric. Cells carry the rounding of batched products (about 1e-6 of the metric).
pub fn patch_map<B: Backend>(
    llama: &Llama<B>,
    source: &[u32],
    target: &[u32],
    target_prompt_len: usize,
    spec: MapSpec<'_>,
) -> Result<PatchMap> {
    let MapSpec {
        hooks,
        layers,
        metric,
        batch_size,
    } = spec;
    let sites: Vec<Site> = hooks
        .iter()
        .flat_map(|&hook| layers.iter().map(move |&layer| Site::Block { layer, hook }))
        .collect();
    let src = patch_sources(llama, &[source.to_vec()], &sites, 1)?.remove(0);
    let m_target = metric_rows(
        llama,
        &Batch::left_padded(&[target.to_vec()], 0)?,
        None,
        metric,
    )?[0];
    let m_source = metric_rows(
        llama,
        &Batch::left_padded(&[source.to_vec()], 0)?,
        None,
        metric,
    )?[0];
    // One patch edit per hook at every layer; each row's source holds one site and position.
    let iv = Intervention {
        edits: hooks
            .iter()
            .map(|&h| Edit::patch(h, layers.to_vec(), Span::All))
            .collect(),
    };
    let positions = source.len().min(target.len());
    let jobs: Vec<(Site, usize)> = sites
        .iter()
        .flat_map(|&s| (0..positions).map(move |p| (s, p)))
        .collect();
    let mut cells = Vec::with_capacity(jobs.len());
    let span = m_source - m_target;
    for chunk in jobs.chunks(batch_size.max(1)) {
        let rows: Vec<RowEdit> = chunk
            .iter()
            .map(|&(site, p)| {
                let mut one = PatchValues::new(source.len()).only(p..p + 1);
                let values = (0..source.len())
                    .flat_map(|q| src.row(site, q).unwrap_or_default().iter().copied())
                    .collect();
                one.insert(site, values).map(|()| RowEdit {
                    prompt_len: target_prompt_len,
                    key: 0,
                    patch: Some(Arc::new(one)),
                })
            })
            .collect::<tell_llama::Result<_>>()?;
        let seqs = vec![target.to_vec(); chunk.len()];
        let batch = Batch::left_padded(&seqs, 0)?;
        let edits = Edits {
            intervention: &iv,
            rows: &rows,
        };
        let values = metric_rows(llama, &batch, Some(edits), metric)?;
        for (&(site, position), metric) in chunk.iter().zip(values) {
            let Site::Block { layer, hook } = site else {
                continue;
            };
            cells.push(PatchCell {
                hook,
                layer,
                position,
                metric,
                restored: if span != 0.0 {
                    (metric - m_target) / span
                } else {
                    f32::NAN
                },
            });
        }
    }
    Ok(PatchMap {
        target: m_target,
        source: m_source,
        cells,
    })
}

/// Everything `tell patch` lets the user choose.
#[derive(Debug, Clone)]
pub struct PatchOptions {
    /// Sites to patch (block hooks; default `resid_post`).
    pub sites: Vec<String>,
    /// Layers (`None`: all).
    pub layers: Option<String>,
    /// `logit-diff:A,B`, A and B token ids or single-token strings.
    pub metric: String,
    /// Patched copies of a target per forward pass.
    pub batch_size: usize,
    /// Render text prompts with the chat template.
    pub chat: bool,
    /// System message for text prompts rendered as chats.
    pub system: Option<String>,
}

/// What `tell patch` wrote (and `patch-{pair}.svg/png` heatmaps beside the CSV).
#[derive(Debug, Clone, PartialEq)]
pub struct PatchReport {
    /// `patch.csv`: one row per pair, site, layer and position.
    pub csv: std::path::PathBuf,
    /// Each pair's map, in file order, with the source and target ids.
    pub maps: Vec<(String, String, PatchMap)>,
    /// The metric's tokens.
    pub metric: LogitDiff,
}

/// Parses `logit-diff:A,B`: ids, or strings the tokenizer encodes as exactly one token.
pub fn parse_metric(text: &str, ck: &Checkpoint) -> Result<LogitDiff> {
    let bad = |message: String| InterveneError::Spec {
        spec: format!("--metric {text:?}"),
        field: "metric".into(),
        message,
    };
    let rest = text
        .strip_prefix("logit-diff:")
        .ok_or_else(|| bad("expected logit-diff:A,B (token ids or single-token strings)".into()))?;
    let (a, b) = rest
        .split_once(',')
        .ok_or_else(|| bad("expected two tokens, A,B".into()))?;
    let mut tokenizer = None;
    let mut token = |s: &str| -> Result<u32> {
        if let Ok(id) = s.parse::<u32>() {
            return Ok(id);
        }
        if tokenizer.is_none() {
            tokenizer = Some(
                match ck.gguf() {
                    Some(g) => tell_tokenizer::Tokenizer::from_gguf(g.tokenizer()),
                    None => tell_tokenizer::Tokenizer::load(&ck.path),
                }
                .map_err(|e| bad(format!("{s:?} needs the model's tokenizer: {e}")))?,
            );
        }
        let ids = tokenizer
            .as_ref()
            .map(|t| t.encode(s, false))
            .transpose()
            .map_err(|e| bad(e.to_string()))?
            .unwrap_or_default();
        match ids.as_slice() {
            [id] => Ok(*id),
            _ => Err(bad(format!(
                "{s:?} encodes to {} tokens {ids:?}, not one",
                ids.len()
            ))),
        }
    };
    let metric = LogitDiff {
        a: token(a)?,
        b: token(b)?,
    };
    for t in [metric.a, metric.b] {
        if t as usize >= ck.config.vocab_size {
            return Err(bad(format!(
                "token {t} is outside the vocabulary (size {})",
                ck.config.vocab_size
            )));
        }
    }
    Ok(metric)
}

/// The map of one pair: a row per hook and layer (first layer on top), a column per position.
fn heatmap(source: &str, target: &str, map: &PatchMap, tokens: &[u32]) -> tell_plot::Heatmap {
    let mut rows: Vec<(Hook, usize)> = map.cells.iter().map(|c| (c.hook, c.layer)).collect();
    rows.dedup();
    let mut keys = rows.clone();
    keys.sort();
    keys.dedup();
    rows = keys;
    let positions = map.cells.iter().map(|c| c.position + 1).max().unwrap_or(0);
    let mut values = vec![f64::NAN; rows.len() * positions];
    for c in &map.cells {
        if let Some(r) = rows.iter().position(|&k| k == (c.hook, c.layer)) {
            values[r * positions + c.position] = f64::from(c.restored);
        }
    }
    tell_plot::Heatmap {
        title: format!(
            "Patching {source} into {target}: fraction of the logit difference restored"
        ),
        row_title: "site and layer".into(),
        col_title: "token position (token id)".into(),
        rows: rows
            .iter()
            .map(|(h, l)| format!("{} {l}", h.short()))
            .collect(),
        cols: (0..positions)
            .map(|p| format!("{p} ({})", tokens.get(p).copied().unwrap_or_default()))
            .collect(),
        values,
        limit: Some(1.0),
        value_title: "fraction restored".into(),
    }
}

/// Patching maps for every source-target line pair, written to `out/patch.csv`.
pub fn run_patch<B: Backend>(
    model: &Path,
    source: &Path,
    target: &Path,
    out: &Path,
    opts: &PatchOptions,
    device: &B::Device,
) -> Result<PatchReport> {
    let ck = Checkpoint::open(model)?;
    let cfg = ck.config.clone();
    let sel = tell_capture::select(&opts.sites, opts.layers.as_deref(), cfg.num_layers)?;
    if sel.ln_final || sel.logits || sel.hooks.is_empty() {
        return Err(InterveneError::Spec {
            spec: "--sites".into(),
            field: "sites".into(),
            message: "patching maps patch block sites (resid_pre, attn_out, resid_mid, mlp_out, resid_post)".into(),
        });
    }
    let metric = parse_metric(&opts.metric, &ck)?;
    let s = read_prompts(&ck, source, opts.chat, opts.system.as_deref())?;
    let t = read_prompts(&ck, target, opts.chat, opts.system.as_deref())?;
    check_pairs(source, &s, target, &t)?;
    std::fs::create_dir_all(out).map_err(|err| InterveneError::Io {
        path: out.to_path_buf(),
        err,
    })?;
    let llama = Llama::<B>::from_weights(cfg, ck.source(), device)?;
    drop(ck);
    let mut maps = Vec::new();
    let mut csv = String::from("pair,source_id,target_id,site,layer,position,token,metric,target_metric,source_metric,restored\n");
    for i in 0..t.tokens.len() {
        let map = patch_map(
            &llama,
            &s.tokens[i],
            &t.tokens[i],
            t.prompt_lens[i],
            MapSpec {
                hooks: &sel.hooks,
                layers: &sel.layers,
                metric,
                batch_size: opts.batch_size,
            },
        )?;
        for c in &map.cells {
            csv.push_str(&format!(
                "{i},{},{},hook_{},{},{},{},{},{},{},{}\n",
                s.ids[i],
                t.ids[i],
                c.hook.short(),
                c.layer,
                c.position,
                t.tokens[i][c.position],
                c.metric,
                map.target,
                map.source,
                c.restored
            ));
        }
        let svg = out.join(format!("patch-{i}.svg"));
        let png = out.join(format!("patch-{i}.png"));
        tell_plot::write_heatmap(
            &heatmap(&s.ids[i], &t.ids[i], &map, &t.tokens[i]),
            &svg,
            &png,
        )
        .map_err(|e| InterveneError::Source {
            path: svg.clone(),
            message: format!("drawing the patching map: {e}"),
        })?;
        maps.push((s.ids[i].clone(), t.ids[i].clone(), map));
    }
    let path = out.join("patch.csv");
    std::fs::write(&path, csv).map_err(|err| InterveneError::Io {
        path: path.clone(),
        err,
    })?;
    Ok(PatchReport {
        csv: path,
        maps,
        metric,
    })
}
