//! Intervention specs: a TOML file of `[[edit]]` tables, or the same fields as `--edit` text,
//! resolved against a model into a [`tell_llama::Intervention`].
//!
//! ```toml
//! [[edit]]
//! op = "add"            # add | ablate | noise | patch
//! site = "resid_post"   # resid_pre, attn_out, resid_mid, mlp_out, resid_post (or hook_<name>)
//! layers = "12"         # all, or e.g. 4,8-12
//! positions = "last"    # all (default), prompt, response, last, or e.g. 3,5-9
//! alpha = 4.0           # add: h += alpha * v
//! vector = "RUN/probes/blocks.12.hook_resid_post/logreg"   # add and ablate
//! # noise: sigma = 0.5, seed = 0 (h += sigma * rms(h) * e)
//! ```
//!
//! The same edit as `--edit "add site=resid_post layers=12 positions=last alpha=4 vector=P"`.
//! A vector is a probe directory written by `tell probe train` (its direction in raw activation
//! space, `direction / std`), its `probe.safetensors`, a difference of means written by `tell probe
//! means` (which also gives the site and layer), an `.npy` of `[d]` or `[1, d]` floats, or a
//! `.safetensors` file with one tensor (or `FILE.safetensors#NAME`). A probe also gives the site
//! and layer when the edit names none. Relative paths in a file are relative to the file.

use std::path::{Path, PathBuf};

use serde::Deserialize;
use tell_llama::{Edit, Hook, Intervention, LlamaConfig, Site, Span};
use tell_probe::ProbeArtifact;

use crate::error::{InterveneError, Result};

/// One `[[edit]]` table as written.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EditSpec {
    /// `add`, `ablate`, `noise` or `patch`.
    pub op: String,
    /// Block hook name (default: the probe's, else an error).
    pub site: Option<String>,
    /// Layers: `all`, a number or a list such as `4,8-12` (default: the probe's layer).
    pub layers: Option<toml::Value>,
    /// Positions (default `all`).
    pub positions: Option<String>,
    /// Scale of the vector (`add`).
    pub alpha: Option<f64>,
    /// Where the vector comes from (`add`, `ablate`).
    pub vector: Option<String>,
    /// Noise scale relative to each token's rms (`noise`).
    pub sigma: Option<f64>,
    /// Noise seed (`noise`, default 0).
    pub seed: Option<u64>,
}

/// A spec file: `[[edit]]` tables.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SpecFile {
    /// The edits, applied in order.
    #[serde(default)]
    pub edit: Vec<EditSpec>,
}

/// Edits with the place they were read from (for messages and relative paths).
#[derive(Debug, Clone, Default)]
pub struct Spec {
    /// Each edit with its origin (`FILE edit N` or `--edit N`) and base directory.
    pub edits: Vec<(String, PathBuf, EditSpec)>,
}

impl Spec {
    /// Reads a TOML spec file.
    pub fn from_file(path: &Path) -> Result<Self> {
        let text = std::fs::read_to_string(path).map_err(|err| InterveneError::Io {
            path: path.to_path_buf(),
            err,
        })?;
        let file: SpecFile = toml::from_str(&text).map_err(|e| InterveneError::Spec {
            spec: path.display().to_string(),
            field: "toml".into(),
            message: e.to_string(),
        })?;
        if file.edit.is_empty() {
            return Err(InterveneError::Spec {
                spec: path.display().to_string(),
                field: "edit".into(),
                message: "no [[edit]] tables".into(),
            });
        }
        let base = path.parent().unwrap_or(Path::new(".")).to_path_buf();
        Ok(Self {
            edits: file
                .edit
                .into_iter()
                .enumerate()
                .map(|(i, e)| {
                    (
                        format!("{} edit {}", path.display(), i + 1),
                        base.clone(),
                        e,
                    )
                })
                .collect(),
        })
    }

    /// Parses `--edit` texts: an op, then `key=value` words (`add site=resid_post layers=3 ...`).
    pub fn from_args(args: &[String]) -> Result<Self> {
        let mut edits = Vec::new();
        for (i, text) in args.iter().enumerate() {
            let origin = format!("--edit {:?}", text);
            let err = |field: &str, message: String| InterveneError::Spec {
                spec: origin.clone(),
                field: field.into(),
                message,
            };
            let mut words = text.split_whitespace();
            let op = words
                .next()
                .ok_or_else(|| err("op", "empty edit".into()))?
                .to_string();
            let mut table = toml::Table::new();
            table.insert("op".into(), toml::Value::String(op));
            for word in words {
                let (k, v) = word.split_once('=').ok_or_else(|| {
                    err(word, "expected key=value (e.g. layers=3 alpha=4)".into())
                })?;
                let value = match k {
                    "alpha" | "sigma" => toml::Value::Float(
                        v.parse()
                            .map_err(|_| err(k, format!("{v:?} is not a number")))?,
                    ),
                    "seed" => toml::Value::Integer(
                        v.parse()
                            .map_err(|_| err(k, format!("{v:?} is not an integer")))?,
                    ),
                    _ => toml::Value::String(v.to_string()),
                };
                table.insert(k.into(), value);
            }
            let spec: EditSpec = toml::Value::Table(table)
                .try_into()
                .map_err(|e: toml::de::Error| err("edit", e.to_string()))?;
            let _ = i;
            edits.push((origin, PathBuf::from("."), spec));
        }
        Ok(Self { edits })
    }

    /// Appends another spec's edits after these.
    pub fn extend(&mut self, other: Spec) {
        self.edits.extend(other.edits);
    }

    /// Resolves every edit against a model: site, layers, positions and vectors, checked before
    /// any model work.
    pub fn resolve(&self, cfg: &LlamaConfig) -> Result<Intervention> {
        let mut edits = Vec::with_capacity(self.edits.len());
        for (origin, base, e) in &self.edits {
            edits.push(resolve_edit(origin, base, e, cfg)?);
        }
        let iv = Intervention { edits };
        iv.check(cfg)?;
        Ok(iv)
    }
}

fn resolve_edit(origin: &str, base: &Path, e: &EditSpec, cfg: &LlamaConfig) -> Result<Edit> {
    let err = |field: &str, message: String| InterveneError::Spec {
        spec: origin.to_string(),
        field: field.into(),
        message,
    };
    let need = |field: &str, v: Option<f64>| {
        v.ok_or_else(|| err(field, format!("`{}` needs `{field}`", e.op)))
    };
    let vector = match (&e.vector, e.op.as_str()) {
        (Some(v), "add" | "ablate") => Some(load_vector(&base.join(v), cfg.hidden_size)?),
        (None, "add" | "ablate") => {
            return Err(err("vector", format!("`{}` needs `vector`", e.op)))
        }
        (Some(_), _) => return Err(err("vector", format!("`{}` takes no vector", e.op))),
        (None, _) => None,
    };
    let hook = match (e.site.as_deref(), vector.as_ref().and_then(|v| v.site.as_deref())) {
        (Some(s), _) | (None, Some(s)) => site_hook(s).ok_or_else(|| {
            err(
                "site",
                format!("{s:?} is not a block site (resid_pre, attn_out, resid_mid, mlp_out, resid_post)"),
            )
        })?,
        (None, None) => return Err(err("site", "missing (e.g. site = \"resid_post\")".into())),
    };
    let layers = match (&e.layers, vector.as_ref().and_then(|v| v.layer)) {
        (Some(toml::Value::Integer(l)), _) => {
            let l = usize::try_from(*l).map_err(|_| err("layers", format!("{l} is negative")))?;
            tell_capture::parse_layers(&l.to_string(), cfg.num_layers)
        }
        (Some(toml::Value::String(s)), _) => tell_capture::parse_layers(s, cfg.num_layers),
        (Some(other), _) => {
            return Err(err(
                "layers",
                format!("{other} is not a layer list (e.g. \"all\", 3 or \"4,8-12\")"),
            ))
        }
        (None, Some(l)) => tell_capture::parse_layers(&l.to_string(), cfg.num_layers),
        (None, None) => return Err(err("layers", "missing (e.g. layers = \"all\")".into())),
    }
    .map_err(|e| err("layers", e.to_string()))?;
    let span = Span::parse(e.positions.as_deref().unwrap_or("all"))
        .map_err(|e| err("positions", e.to_string()))?;
    let unexpected = |field: &str, present: bool, ops: &str| {
        if present {
            Err(err(
                field,
                format!("`{field}` belongs to {ops}, not `{}`", e.op),
            ))
        } else {
            Ok(())
        }
    };
    unexpected("alpha", e.alpha.is_some() && e.op != "add", "add")?;
    unexpected(
        "sigma",
        (e.sigma.is_some() || e.seed.is_some()) && e.op != "noise",
        "noise",
    )?;
    Ok(match e.op.as_str() {
        "add" => Edit::add(
            hook,
            layers,
            span,
            need("alpha", e.alpha)? as f32,
            vector.map(|v| v.values).unwrap_or_default(),
        ),
        "ablate" => Edit::ablate(
            hook,
            layers,
            span,
            &vector.map(|v| v.values).unwrap_or_default(),
        )
        .map_err(|e| err("vector", e.to_string()))?,
        "noise" => {
            let sigma = need("sigma", e.sigma)?;
            if !(sigma >= 0.0 && sigma.is_finite()) {
                return Err(err("sigma", format!("{sigma} is not a finite value >= 0")));
            }
            Edit::noise(hook, layers, span, sigma as f32, e.seed.unwrap_or(0))
        }
        "patch" => Edit::patch(hook, layers, span),
        other => {
            return Err(err(
                "op",
                format!("unknown op {other:?} (expected add, ablate, noise or patch)"),
            ))
        }
    })
}

/// A block hook from `resid_post`, `hook_resid_post` or `blocks.L.hook_resid_post`.
fn site_hook(s: &str) -> Option<Hook> {
    if let Ok(Site::Block { hook, .. }) = s.parse::<Site>() {
        return Some(hook);
    }
    Hook::parse(s)
}

/// A vector with what its file says about where it was read.
#[derive(Debug, Clone, PartialEq)]
pub struct Vector {
    /// The values.
    pub values: Vec<f32>,
    /// Site the vector was learnt at (probes).
    pub site: Option<String>,
    /// Layer the vector was learnt at (probes).
    pub layer: Option<usize>,
}

/// Reads a vector of width `d` from a probe directory, `.npy` or `.safetensors[#name]`.
pub fn load_vector(path: &Path, d: usize) -> Result<Vector> {
    let verr = |message: String| InterveneError::Vector {
        path: path.to_path_buf(),
        message,
    };
    let text = path.to_string_lossy();
    let (file, name) = match text.rsplit_once('#') {
        Some((f, n)) if f.ends_with(".safetensors") => (PathBuf::from(f), Some(n.to_string())),
        _ => (path.to_path_buf(), None),
    };
    let mut vector = if file.is_dir() || file.file_name().is_some_and(|f| f == "probe.safetensors")
    {
        let dir = if file.is_dir() {
            file.clone()
        } else {
            file.parent().unwrap_or(Path::new(".")).to_path_buf()
        };
        let probe = ProbeArtifact::load(&dir).map_err(|e| verr(format!("not a probe: {e}")))?;
        // probe.json names the site in full (`blocks.3.hook_resid_post`).
        let site = probe.meta.site.clone();
        Vector {
            values: probe.probe.raw_direction(),
            site: Some(site),
            layer: Some(probe.meta.layer),
        }
    } else if text.ends_with(".npy") {
        Vector {
            values: read_npy(&file).map_err(verr)?,
            site: None,
            layer: None,
        }
    } else if file.extension().is_some_and(|e| e == "safetensors") {
        read_safetensors(&file, name.as_deref()).map_err(verr)?
    } else {
        return Err(verr(
            "expected a probe directory, an .npy or a .safetensors[#name] file".into(),
        ));
    };
    if vector.values.len() != d {
        return Err(verr(format!(
            "the vector has {} values, the model's hidden size is {d}",
            vector.values.len()
        )));
    }
    if vector.values.iter().any(|v| !v.is_finite()) {
        return Err(verr("the vector holds a NaN or infinite value".into()));
    }
    vector.values.shrink_to_fit();
    Ok(vector)
}

/// A little-endian `<f4`/`<f8` `.npy` of shape `[d]` or `[1, d]`, C order.
fn read_npy(path: &Path) -> std::result::Result<Vec<f32>, String> {
    let bytes = std::fs::read(path).map_err(|e| e.to_string())?;
    if bytes.len() < 10 || &bytes[..6] != b"\x93NUMPY" {
        return Err("not an .npy file".into());
    }
    let (header_len, start) = match bytes[6] {
        1 => (u16::from_le_bytes([bytes[8], bytes[9]]) as usize, 10),
        2 | 3 if bytes.len() >= 12 => (
            u32::from_le_bytes([bytes[8], bytes[9], bytes[10], bytes[11]]) as usize,
            12,
        ),
        v => return Err(format!("unsupported .npy version {v}")),
    };
    let header = bytes
        .get(start..start + header_len)
        .and_then(|h| std::str::from_utf8(h).ok())
        .ok_or("truncated .npy header")?;
    if header.contains("'fortran_order': True") {
        return Err("Fortran-ordered arrays are not supported".into());
    }
    let width = if header.contains("'<f4'") {
        4
    } else if header.contains("'<f8'") {
        8
    } else {
        return Err(format!("dtype in {header:?}: expected '<f4' or '<f8'"));
    };
    let shape: Vec<usize> = header
        .split("'shape':")
        .nth(1)
        .and_then(|s| s.split('(').nth(1))
        .and_then(|s| s.split(')').next())
        .ok_or("no shape in the .npy header")?
        .split(',')
        .filter(|s| !s.trim().is_empty())
        .map(|s| s.trim().parse::<usize>().map_err(|e| e.to_string()))
        .collect::<std::result::Result<_, _>>()?;
    let n: usize = match shape.as_slice() {
        [d] | [1, d] => *d,
        other => return Err(format!("shape {other:?}: expected [d] or [1, d]")),
    };
    let data = &bytes[start + header_len..];
    if data.len() != n * width {
        return Err(format!(
            "{} data bytes for {n} values of {width} bytes (truncated?)",
            data.len()
        ));
    }
    Ok(if width == 4 {
        data.chunks_exact(4)
            .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
            .collect()
    } else {
        data.chunks_exact(8)
            .map(|c| f64::from_le_bytes(c.try_into().unwrap_or([0; 8])) as f32)
            .collect()
    })
}

/// One F32 tensor of a safetensors file (`direction_raw` in probe files, else the only one).
/// Reads one tensor; a file written by `tell probe means` also names its site and layer in its
/// metadata, and its `direction` is taken when no tensor is named.
fn read_safetensors(path: &Path, name: Option<&str>) -> std::result::Result<Vector, String> {
    let bytes = std::fs::read(path).map_err(|e| e.to_string())?;
    let (_, header) = safetensors::SafeTensors::read_metadata(&bytes).map_err(|e| e.to_string())?;
    let info = header.metadata().clone().unwrap_or_default();
    let st = safetensors::SafeTensors::deserialize(&bytes).map_err(|e| e.to_string())?;
    let names = st.names();
    let name = match name {
        Some(n) => n.to_string(),
        None if names.contains(&"direction_raw") => "direction_raw".to_string(),
        None if names.contains(&"direction") => "direction".to_string(),
        None if names.len() == 1 => names[0].to_string(),
        None => {
            return Err(format!(
                "holds {} tensors ({}); name one as FILE.safetensors#NAME",
                names.len(),
                names
                    .iter()
                    .map(|s| s.to_string())
                    .collect::<Vec<_>>()
                    .join(", ")
            ))
        }
    };
    let t = st
        .tensor(&name)
        .map_err(|_| format!("no tensor named {name:?}"))?;
    if t.dtype() != safetensors::Dtype::F32 {
        return Err(format!("{name}: dtype {:?}, expected F32", t.dtype()));
    }
    if !matches!(t.shape(), [_] | [1, _]) {
        return Err(format!(
            "{name}: shape {:?}, expected [d] or [1, d]",
            t.shape()
        ));
    }
    let layer = match info.get("layer") {
        Some(l) => Some(
            l.parse::<usize>()
                .map_err(|_| format!("metadata layer {l:?} is not a layer index"))?,
        ),
        None => None,
    };
    Ok(Vector {
        values: t
            .data()
            .chunks_exact(4)
            .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
            .collect(),
        site: info.get("site").cloned(),
        layer,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use tell_llama::Op;

    fn cfg() -> LlamaConfig {
        tell_llama::Checkpoint::open(
            &Path::new(env!("CARGO_MANIFEST_DIR")).join("../../tests/parity/models/gqa"),
        )
        .unwrap()
        .config
    }

    fn npy(path: &Path, values: &[f32]) {
        let mut bytes = tell_store::npy_header("<f4", &[values.len()]);
        bytes.extend(values.iter().flat_map(|v| v.to_le_bytes()));
        std::fs::write(path, bytes).unwrap();
    }

    #[test]
    fn a_toml_file_and_edit_texts_resolve_to_the_same_edits() {
        let tmp = tempfile::tempdir().unwrap();
        let cfg = cfg();
        let v: Vec<f32> = (0..cfg.hidden_size).map(|i| i as f32).collect();
        npy(&tmp.path().join("v.npy"), &v);
        let file = tmp.path().join("spec.toml");
        std::fs::write(
            &file,
            "[[edit]]\nop = \"add\"\nsite = \"resid_post\"\nlayers = \"0,2\"\npositions = \"last\"\nalpha = 4.0\nvector = \"v.npy\"\n\n\
             [[edit]]\nop = \"noise\"\nsite = \"hook_attn_out\"\nlayers = 1\nsigma = 0.5\nseed = 3\n",
        )
        .unwrap();
        let from_file = Spec::from_file(&file).unwrap().resolve(&cfg).unwrap();
        let vpath = tmp.path().join("v.npy");
        let args = vec![
            format!(
                "add site=resid_post layers=0,2 positions=last alpha=4 vector={}",
                vpath.display()
            ),
            "noise site=attn_out layers=1 sigma=0.5 seed=3".to_string(),
        ];
        let from_args = Spec::from_args(&args).unwrap().resolve(&cfg).unwrap();
        assert_eq!(from_file, from_args);
        let e = &from_file.edits[0];
        assert_eq!(
            (e.hook, e.layers.clone(), e.span.clone()),
            (Hook::ResidPost, vec![0, 2], Span::Last)
        );
        assert_eq!(
            e.op,
            Op::Add {
                alpha: 4.0,
                vector: std::sync::Arc::new(v)
            }
        );
        assert_eq!(
            from_file.edits[1].op,
            Op::Noise {
                sigma: 0.5,
                seed: 3
            }
        );
    }

    #[test]
    fn bad_specs_name_the_spec_and_the_field() {
        let tmp = tempfile::tempdir().unwrap();
        let cfg = cfg();
        let d = cfg.hidden_size;
        npy(&tmp.path().join("wide.npy"), &vec![1.0; d + 1]);
        std::fs::write(
            tmp.path().join("cut.npy"),
            tell_store::npy_header("<f4", &[d]),
        )
        .unwrap();
        let wide = tmp.path().join("wide.npy").display().to_string();
        let cut = tmp.path().join("cut.npy").display().to_string();
        for (edit, want) in [
            (
                format!("add site=resid_post layers=0 alpha=1 vector={wide}"),
                format!(
                    "wide.npy: the vector has {} values, the model's hidden size is {d}",
                    d + 1
                ),
            ),
            (
                format!("add site=resid_post layers=0 alpha=1 vector={cut}"),
                "cut.npy: 0 data bytes".to_string(),
            ),
            (
                "add site=resid_post layers=0 alpha=1".into(),
                "vector: `add` needs `vector`".into(),
            ),
            (
                "noise site=resid_post layers=9 sigma=1".into(),
                "layers: --layers \"9\": layer 9 is out of range".into(),
            ),
            (
                "noise site=logits layers=0 sigma=1".into(),
                "site: \"logits\" is not a block site".into(),
            ),
            (
                "noise site=resid_post layers=0".into(),
                "sigma: `noise` needs `sigma`".into(),
            ),
            (
                "noise site=resid_post layers=0 sigma=-1".into(),
                "sigma: -1 is not a finite value".into(),
            ),
            (
                "steer site=resid_post layers=0".into(),
                "op: unknown op \"steer\"".into(),
            ),
            (
                "patch site=resid_post layers=0 alpha=2".into(),
                "alpha: `alpha` belongs to add".into(),
            ),
            (
                "patch site=resid_post layers=0 colour=red".into(),
                "unknown field `colour`".into(),
            ),
            (
                "patch site=resid_post positions=9-3 layers=0".into(),
                "positions: bad input: positions \"9-3\": a range is backwards".into(),
            ),
        ] {
            let err = Spec::from_args(std::slice::from_ref(&edit))
                .and_then(|s| s.resolve(&cfg))
                .unwrap_err()
                .to_string();
            assert!(err.contains(&want), "{edit}: {err}");
        }
        let file = tmp.path().join("empty.toml");
        std::fs::write(&file, "").unwrap();
        let err = Spec::from_file(&file).unwrap_err().to_string();
        assert!(
            err.contains("empty.toml: edit: no [[edit]] tables"),
            "{err}"
        );
    }
}
