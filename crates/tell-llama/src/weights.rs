//! Checkpoint weights: one `model.safetensors` or shards listed by `model.safetensors.index.json`,
//! memory-mapped and read tensor by tensor under the checkpoint's own names.

use std::collections::{BTreeMap, HashMap};
use std::fs::File;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use burn::tensor::{backend::Backend, DType, Tensor, TensorData};
use memmap2::Mmap;
use safetensors::tensor::{Dtype, Metadata, SafeTensors};

use crate::error::{Error, Result};

/// File name of an unsharded checkpoint.
pub const SINGLE_FILE: &str = "model.safetensors";
/// File name of the index of a sharded checkpoint.
pub const INDEX_FILE: &str = "model.safetensors.index.json";

/// One memory-mapped safetensors file and its parsed header.
struct Shard {
    path: PathBuf,
    mmap: Arc<Mmap>,
    header_len: usize,
    metadata: Metadata,
}

/// The tensors of a checkpoint, looked up by name.
pub struct Weights {
    shards: Vec<Shard>,
    /// Tensor name -> index into `shards`.
    location: HashMap<String, usize>,
    /// Where the weights were found (the single file or the index), for messages.
    origin: PathBuf,
}

/// What a tensor looks like on disk.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TensorMeta {
    pub dtype: String,
    pub shape: Vec<usize>,
}

impl Weights {
    /// Opens the weights of a checkpoint directory (single file or sharded with an index).
    pub fn open_dir(dir: &Path) -> Result<Self> {
        let index = dir.join(INDEX_FILE);
        let single = dir.join(SINGLE_FILE);
        if index.is_file() {
            Self::open_index(&index)
        } else if single.is_file() {
            Self::open_files(std::slice::from_ref(&single), single.clone())
        } else {
            Err(Error::NoWeights {
                path: dir.to_owned(),
            })
        }
    }

    fn open_index(index: &Path) -> Result<Self> {
        let bad = |reason: String| Error::Index {
            path: index.to_owned(),
            reason,
        };
        let text = std::fs::read_to_string(index).map_err(|err| Error::Io {
            path: index.to_owned(),
            err,
        })?;
        let json: serde_json::Value =
            serde_json::from_str(&text).map_err(|e| bad(e.to_string()))?;
        let map = json
            .get("weight_map")
            .and_then(|m| m.as_object())
            .ok_or_else(|| bad("no `weight_map` object".into()))?;
        let dir = index.parent().unwrap_or(Path::new("."));
        let mut files: Vec<String> = Vec::new();
        let mut wanted: BTreeMap<String, String> = BTreeMap::new();
        for (name, file) in map {
            let file = file
                .as_str()
                .ok_or_else(|| bad(format!("entry `{name}` is not a file name")))?;
            if file.contains('/') || file.contains('\\') || file == ".." {
                return Err(bad(format!(
                    "entry `{name}` names a path outside the directory: {file}"
                )));
            }
            if !files.iter().any(|f| f == file) {
                files.push(file.to_owned());
            }
            wanted.insert(name.clone(), file.to_owned());
        }
        files.sort();
        let paths: Vec<PathBuf> = files.iter().map(|f| dir.join(f)).collect();
        let weights = Self::open_files(&paths, index.to_owned())?;
        // The index must agree with the shards: a tensor listed in one file but stored in another
        // (or nowhere) is a broken download, and we would rather say so than guess.
        for (name, file) in &wanted {
            let expected = dir.join(file);
            match weights.location.get(name) {
                Some(&i) if weights.shards[i].path == expected => {}
                Some(&i) => {
                    return Err(bad(format!(
                        "tensor `{name}` is listed in {file} but stored in {}",
                        weights.shards[i].path.display()
                    )))
                }
                None => {
                    return Err(Error::MissingTensor {
                        name: name.clone(),
                        path: expected,
                    })
                }
            }
        }
        Ok(weights)
    }

    fn open_files(paths: &[PathBuf], origin: PathBuf) -> Result<Self> {
        let mut shards = Vec::with_capacity(paths.len());
        let mut location = HashMap::new();
        for path in paths {
            let file = File::open(path).map_err(|err| Error::Io {
                path: path.clone(),
                err,
            })?;
            // SAFETY: the map is read-only; a checkpoint changed on disk while we read it is a
            // user error that at worst gives wrong numbers, the same as reading it with read(2).
            let mmap = unsafe { Mmap::map(&file) }.map_err(|err| Error::Io {
                path: path.clone(),
                err,
            })?;
            let corrupt = |reason: String| Error::Corrupt {
                path: path.clone(),
                reason,
            };
            // `deserialize` checks that the header parses and that every tensor's bytes lie
            // inside the file, which catches truncation.
            SafeTensors::deserialize(&mmap).map_err(|e| corrupt(e.to_string()))?;
            let (header_len, metadata) =
                SafeTensors::read_metadata(&mmap).map_err(|e| corrupt(e.to_string()))?;
            let i = shards.len();
            for name in metadata.tensors().keys() {
                if let Some(&j) = location.get(name) {
                    let other: &Shard = &shards[j];
                    return Err(corrupt(format!(
                        "tensor `{name}` is also stored in {}",
                        other.path.display()
                    )));
                }
                location.insert(name.clone(), i);
            }
            shards.push(Shard {
                path: path.clone(),
                mmap: Arc::new(mmap),
                header_len,
                metadata,
            });
        }
        Ok(Self {
            shards,
            location,
            origin,
        })
    }

    /// Whether a tensor of that name exists.
    pub fn contains(&self, name: &str) -> bool {
        self.location.contains_key(name)
    }

    /// Names of all tensors, sorted.
    pub fn names(&self) -> Vec<&str> {
        let mut v: Vec<&str> = self.location.keys().map(String::as_str).collect();
        v.sort();
        v
    }

    /// Dtype and shape of a tensor on disk.
    pub fn meta(&self, name: &str) -> Option<TensorMeta> {
        let shard = &self.shards[*self.location.get(name)?];
        let info = shard.metadata.info(name)?;
        Some(TensorMeta {
            dtype: format!("{:?}", info.dtype),
            shape: info.shape.clone(),
        })
    }

    /// The bytes and dtype of a tensor after checking its shape, and where they lie in its shard.
    fn locate(&self, name: &str, shape: &[usize]) -> Result<Located<'_>> {
        let &i = self
            .location
            .get(name)
            .ok_or_else(|| Error::MissingTensor {
                name: name.to_owned(),
                path: self.origin.clone(),
            })?;
        let shard = &self.shards[i];
        let info = shard
            .metadata
            .info(name)
            .ok_or_else(|| Error::MissingTensor {
                name: name.to_owned(),
                path: shard.path.clone(),
            })?;
        if info.shape != shape {
            return Err(Error::Shape {
                name: name.to_owned(),
                path: shard.path.clone(),
                expected: shape.to_vec(),
                actual: info.shape.clone(),
            });
        }
        let (start, end) = info.data_offsets;
        let base = 8 + shard.header_len;
        let dtype = match info.dtype {
            Dtype::F32 => DType::F32,
            Dtype::F16 => DType::F16,
            Dtype::BF16 => DType::BF16,
            other => {
                return Err(Error::Dtype {
                    name: name.to_owned(),
                    path: shard.path.clone(),
                    dtype: format!("{other:?}"),
                })
            }
        };
        Ok(Located {
            shard,
            offset: base + start,
            bytes: &shard.mmap[base + start..base + end],
            dtype,
        })
    }

    /// Reads a tensor as f32 values after checking its shape.
    fn read_safetensors(&self, name: &str, shape: &[usize]) -> Result<Vec<f32>> {
        let t = self.locate(name, shape)?;
        Ok(widen(t.bytes, t.dtype))
    }
}

/// A tensor's bytes in the memory map.
struct Located<'a> {
    shard: &'a Shard,
    offset: usize,
    bytes: &'a [u8],
    dtype: DType,
}

/// Little-endian F32, F16 or BF16 bytes as f32 values.
fn widen(bytes: &[u8], dtype: DType) -> Vec<f32> {
    match dtype {
        DType::F16 => bytes
            .chunks_exact(2)
            .map(|c| half::f16::from_le_bytes([c[0], c[1]]).to_f32())
            .collect(),
        DType::BF16 => bytes
            .chunks_exact(2)
            .map(|c| half::bf16::from_le_bytes([c[0], c[1]]).to_f32())
            .collect(),
        _ => bytes
            .chunks_exact(4)
            .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
            .collect(),
    }
}

/// Little-endian F32, F16 or BF16 bytes (`from`) as tensor data of dtype `to` (F32, F16 or BF16):
/// the values copied when the types agree, else converted one by one (rounding to nearest even),
/// never through an f32 copy of the whole tensor.
fn convert(bytes: &[u8], from: DType, to: DType, shape: &[usize]) -> TensorData {
    fn each<T: burn::tensor::Element>(bytes: &[u8], from: DType, f: impl Fn(f32) -> T) -> Vec<T> {
        let width = if from == DType::F32 { 4 } else { 2 };
        bytes
            .chunks_exact(width)
            .map(|c| {
                f(match from {
                    DType::F16 => half::f16::from_le_bytes([c[0], c[1]]).to_f32(),
                    DType::BF16 => half::bf16::from_le_bytes([c[0], c[1]]).to_f32(),
                    _ => f32::from_le_bytes([c[0], c[1], c[2], c[3]]),
                })
            })
            .collect()
    }
    let shape = shape.to_vec();
    match (from, to) {
        (DType::BF16, DType::BF16) => TensorData::new(
            bytes
                .chunks_exact(2)
                .map(|c| half::bf16::from_le_bytes([c[0], c[1]]))
                .collect::<Vec<_>>(),
            shape,
        ),
        (DType::F16, DType::F16) => TensorData::new(
            bytes
                .chunks_exact(2)
                .map(|c| half::f16::from_le_bytes([c[0], c[1]]))
                .collect::<Vec<_>>(),
            shape,
        ),
        (_, DType::BF16) => TensorData::new(each(bytes, from, half::bf16::from_f32), shape),
        (_, DType::F16) => TensorData::new(each(bytes, from, half::f16::from_f32), shape),
        _ => TensorData::new(widen(bytes, from), shape),
    }
}

/// Where a model's tensors come from, by their Hugging Face names.
pub trait TensorSource {
    /// Reads the tensor `name` (HF naming, HF `[out, in]` orientation) as f32 after checking
    /// that it has `shape`.
    fn read_f32(&self, name: &str, shape: &[usize]) -> Result<Vec<f32>>;

    /// The tensor `name` as stored, when it is quantized in blocks the CPU kernels read directly
    /// ([`crate::cpu::QuantRows`]); `None` (the default) where it is not.
    fn read_quantized(
        &self,
        _name: &str,
        _shape: &[usize],
    ) -> Result<Option<crate::cpu::QuantRows>> {
        Ok(None)
    }

    /// Reads the tensor `name` as data of `dtype` (F32, F16 or BF16) after checking its shape:
    /// how a device backend loads its weights, tensor by tensor. The default widens
    /// [`Self::read_f32`]; a source that holds half types overrides it to copy them as they are.
    fn read_data(&self, name: &str, shape: &[usize], dtype: DType) -> Result<TensorData> {
        let values = self.read_f32(name, shape)?;
        Ok(TensorData::new(values, shape.to_vec()).convert_dtype(dtype))
    }

    /// Dtype and shape of each stored tensor, by HF name, sorted by name.
    fn describe(&self) -> Vec<(String, TensorMeta)>;

    /// The files the tensors are read from.
    fn files(&self) -> Vec<PathBuf>;
}

impl TensorSource for Weights {
    fn read_f32(&self, name: &str, shape: &[usize]) -> Result<Vec<f32>> {
        self.read_safetensors(name, shape)
    }

    /// A BF16 or F32 matrix read in place from the mapped file, for the CPU's kernels (bf16 at
    /// half the memory of f32, products bit-identical to those on the widened weight); other
    /// dtypes are read as f32. Nothing is copied: the pages are the kernel's page cache, shared
    /// with other readers of the file and dropped under memory pressure (read again when used).
    fn read_quantized(&self, name: &str, shape: &[usize]) -> Result<Option<crate::cpu::QuantRows>> {
        let t = self.locate(name, shape)?;
        let [rows, cols] = shape else {
            return Ok(None);
        };
        let kind = match t.dtype {
            DType::BF16 => crate::cpu::QuantKind::Bf16,
            DType::F32 => crate::cpu::QuantKind::F32,
            _ => return Ok(None),
        };
        let range = t.offset..t.offset + t.bytes.len();
        Ok(crate::cpu::QuantRows::mapped(
            kind,
            *rows,
            *cols,
            t.shard.mmap.clone(),
            range,
        ))
    }

    fn read_data(&self, name: &str, shape: &[usize], dtype: DType) -> Result<TensorData> {
        let t = self.locate(name, shape)?;
        let data = convert(t.bytes, t.dtype, dtype, shape);
        // The values are copied: the mapped pages can go, so that loading a model larger than
        // memory-to-spare keeps the host's resident memory at about one tensor (the kernel keeps
        // the file in its page cache as long as it can; a later read maps it back in).
        #[cfg(unix)]
        // SAFETY: the map is read-only and private; dropping its clean pages only makes the next
        // access read the file again.
        let _ = unsafe {
            t.shard.mmap.unchecked_advise_range(
                memmap2::UncheckedAdvice::DontNeed,
                t.offset,
                t.bytes.len(),
            )
        };
        Ok(data)
    }

    fn describe(&self) -> Vec<(String, TensorMeta)> {
        self.names()
            .into_iter()
            .filter_map(|n| Some((n.to_owned(), self.meta(n)?)))
            .collect()
    }

    fn files(&self) -> Vec<PathBuf> {
        self.shards.iter().map(|s| s.path.clone()).collect()
    }
}

/// Loads a tensor from a source as f32 (whatever the device's float type) after checking its shape.
pub fn load_tensor<B: Backend, const D: usize>(
    source: &dyn TensorSource,
    name: &str,
    shape: [usize; D],
    device: &B::Device,
) -> Result<Tensor<B, D>> {
    let values = source.read_f32(name, &shape)?;
    Ok(Tensor::from_data(
        TensorData::new(values, shape),
        (device, DType::F32),
    ))
}

/// Loads a tensor from a source as `dtype` on the device (a backend that is not `flex`).
pub fn load_tensor_as<B: Backend, const D: usize>(
    source: &dyn TensorSource,
    name: &str,
    shape: [usize; D],
    dtype: DType,
    device: &B::Device,
) -> Result<Tensor<B, D>> {
    let data = source.read_data(name, &shape, dtype)?;
    Ok(Tensor::from_data(data, (device, dtype)))
}
