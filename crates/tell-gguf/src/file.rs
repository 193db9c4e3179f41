//! The file as a whole: header (magic, version, counts), metadata, tensor infos, alignment and
//! the data section, parsed from a byte slice (so the fuzzer can drive it) and backed by a
//! memory map when opened from disk.

use std::collections::HashSet;
use std::path::Path;

use crate::dequant::dequantize;
use crate::error::{GgufError, Result};
use crate::metadata::{read_kv, Metadata, Value};
use crate::reader::Cursor;
use crate::tensor::{GgmlType, TensorInfo, MAX_DIMS};

/// Alignment of the data section when `general.alignment` is absent (GGUF spec default).
pub const DEFAULT_ALIGNMENT: u64 = 32;

/// Smallest encoding of one metadata pair: key length (8) + type (4) + a 1-byte value.
const MIN_KV_BYTES: u64 = 13;
/// Smallest encoding of one tensor info: name length (8) + n_dims (4) + type (4) + offset (8).
const MIN_TENSOR_INFO_BYTES: u64 = 24;

/// Everything in a GGUF file except the tensor bytes themselves.
#[derive(Debug, Clone)]
pub struct GgufHeader {
    /// Format version (2 or 3).
    pub version: u32,
    /// Metadata pairs.
    pub metadata: Metadata,
    /// Tensor infos in file order.
    pub tensors: Vec<TensorInfo>,
    /// Alignment of the data section and of every tensor offset.
    pub alignment: u64,
    /// Absolute offset of the data section in the file.
    pub data_offset: u64,
}

impl GgufHeader {
    /// Parse and validate the header of a complete file. Checks every tensor's bytes lie inside
    /// `bytes`, so later tensor access cannot go out of bounds.
    pub fn parse(bytes: &[u8]) -> Result<Self> {
        let mut cur = Cursor::new(bytes);
        let magic = cur.take(4, || "magic".to_owned())?;
        if magic != b"GGUF" {
            let mut found = [0u8; 4];
            found.copy_from_slice(magic);
            return Err(GgufError::BadMagic { found });
        }
        let version = cur.u32(|| "version".to_owned())?;
        if version != 2 && version != 3 {
            return Err(GgufError::UnsupportedVersion { version });
        }
        let n_tensors = cur.count(MIN_TENSOR_INFO_BYTES, || "tensor count".to_owned())?;
        let n_kv = cur.count(MIN_KV_BYTES, || "metadata key/value count".to_owned())?;

        let mut metadata = Metadata::default();
        for i in 0..n_kv {
            let (k, v) = read_kv(&mut cur, i)?;
            metadata.insert(k, v)?;
        }
        let alignment = alignment_of(&metadata)?;

        let mut infos = Vec::with_capacity(n_tensors);
        let mut names = HashSet::with_capacity(n_tensors);
        for i in 0..n_tensors {
            let info = read_tensor_info(&mut cur, i)?;
            if !names.insert(info.name.clone()) {
                return Err(GgufError::DuplicateTensor { name: info.name });
            }
            infos.push(info);
        }

        let data_offset = align_up(cur.pos() as u64, alignment);
        let data_len = (bytes.len() as u64).saturating_sub(data_offset);
        for t in &infos {
            if !t.offset.is_multiple_of(alignment) {
                return Err(GgufError::MisalignedTensor {
                    tensor: t.name.clone(),
                    offset: t.offset,
                    alignment,
                });
            }
            let inside = t
                .offset
                .checked_add(t.n_bytes)
                .is_some_and(|end| end <= data_len);
            if !inside {
                return Err(GgufError::TensorOutOfBounds {
                    tensor: t.name.clone(),
                    offset: t.offset,
                    size: t.n_bytes,
                    data_len,
                });
            }
        }
        Ok(Self {
            version,
            metadata,
            tensors: infos,
            alignment,
            data_offset,
        })
    }
}

fn alignment_of(md: &Metadata) -> Result<u64> {
    let value = match md.get("general.alignment") {
        None => return Ok(DEFAULT_ALIGNMENT),
        // The spec says u32; accept any integer type but reject absurd values.
        Some(v) => match v.as_integer() {
            Some(i) => u64::try_from(i).unwrap_or(0),
            None => {
                return Err(GgufError::WrongValueType {
                    key: "general.alignment".to_owned(),
                    expected: "u32",
                    found: v.type_name(),
                })
            }
        },
    };
    if value == 0 || !value.is_power_of_two() || value > (1 << 30) {
        return Err(GgufError::BadAlignment { value });
    }
    Ok(value)
}

fn align_up(x: u64, alignment: u64) -> u64 {
    // alignment is a power of two <= 2^30 and x < 2^63 (a slice length), so this cannot overflow.
    x.div_ceil(alignment) * alignment
}

fn read_tensor_info(cur: &mut Cursor<'_>, index: usize) -> Result<TensorInfo> {
    let name = cur.string(|| format!("name of tensor {index}"))?;
    let n_dims = cur.u32(|| format!("dimension count of tensor '{name}'"))?;
    if n_dims > MAX_DIMS {
        return Err(GgufError::TooManyDims {
            tensor: name,
            n_dims,
            max: MAX_DIMS,
        });
    }
    let mut dims = Vec::with_capacity(n_dims as usize);
    for d in 0..n_dims {
        dims.push(cur.u64(|| format!("dimension {d} of tensor '{name}'"))?);
    }
    let type_id = cur.u32(|| format!("type of tensor '{name}'"))?;
    let dtype = GgmlType::from_id(type_id).ok_or_else(|| GgufError::UnknownTensorType {
        tensor: name.clone(),
        type_id,
    })?;
    let offset = cur.u64(|| format!("data offset of tensor '{name}'"))?;
    TensorInfo::new(name, dims, dtype, offset)
}

/// The bytes behind a [`GgufFile`]: a read-only memory map, or an owned buffer.
enum Backing {
    Mmap(memmap2::Mmap),
    Owned(Vec<u8>),
}

impl Backing {
    fn bytes(&self) -> &[u8] {
        match self {
            Backing::Mmap(m) => m,
            Backing::Owned(v) => v,
        }
    }
}

/// An opened GGUF file: the parsed header plus access to each tensor's bytes.
pub struct GgufFile {
    backing: Backing,
    header: GgufHeader,
}

impl std::fmt::Debug for GgufFile {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GgufFile")
            .field("header", &self.header)
            .finish_non_exhaustive()
    }
}

impl GgufFile {
    /// Memory-map and parse the file at `path`.
    pub fn open(path: impl AsRef<Path>) -> Result<Self> {
        let path = path.as_ref();
        let io = |source| GgufError::Io {
            path: path.to_owned(),
            source,
        };
        let file = std::fs::File::open(path).map_err(io)?;
        // SAFETY: the map is read-only and private to this process. Another process truncating
        // or rewriting the file while it is mapped is outside what any reader can defend against
        // (it is the documented caveat of every mmap-based model loader).
        let map = unsafe { memmap2::Mmap::map(&file) }.map_err(io)?;
        let header = GgufHeader::parse(&map)?;
        Ok(Self {
            backing: Backing::Mmap(map),
            header,
        })
    }

    /// Parse a file held in memory.
    pub fn from_bytes(bytes: Vec<u8>) -> Result<Self> {
        let header = GgufHeader::parse(&bytes)?;
        Ok(Self {
            backing: Backing::Owned(bytes),
            header,
        })
    }

    /// The parsed header.
    pub fn header(&self) -> &GgufHeader {
        &self.header
    }

    /// Format version (2 or 3).
    pub fn version(&self) -> u32 {
        self.header.version
    }

    /// Metadata pairs.
    pub fn metadata(&self) -> &Metadata {
        &self.header.metadata
    }

    /// Shortcut for one metadata value.
    pub fn get(&self, key: &str) -> Option<&Value> {
        self.header.metadata.get(key)
    }

    /// Tensor infos in file order.
    pub fn tensors(&self) -> &[TensorInfo] {
        &self.header.tensors
    }

    /// The info of the tensor named `name`.
    pub fn tensor_info(&self, name: &str) -> Result<&TensorInfo> {
        self.header
            .tensors
            .iter()
            .find(|t| t.name == name)
            .ok_or_else(|| GgufError::TensorNotFound {
                name: name.to_owned(),
            })
    }

    /// The raw (possibly quantized) bytes of a tensor of this file.
    pub fn tensor_bytes(&self, info: &TensorInfo) -> Result<&[u8]> {
        let bytes = self.backing.bytes();
        let oob = || GgufError::TensorOutOfBounds {
            tensor: info.name.clone(),
            offset: info.offset,
            size: info.n_bytes,
            data_len: (bytes.len() as u64).saturating_sub(self.header.data_offset),
        };
        // Re-checked here because `info` may not come from this file.
        let start = self
            .header
            .data_offset
            .checked_add(info.offset)
            .ok_or_else(oob)?;
        let end = start.checked_add(info.n_bytes).ok_or_else(oob)?;
        let (start, end) = (
            usize::try_from(start).map_err(|_| oob())?,
            usize::try_from(end).map_err(|_| oob())?,
        );
        bytes.get(start..end).ok_or_else(oob)
    }

    /// A tensor dequantized to f32, in storage order, with its ggml dims (innermost first).
    pub fn tensor_f32(&self, name: &str) -> Result<(Vec<f32>, Vec<u64>)> {
        let info = self.tensor_info(name)?;
        let data = dequantize(
            info.dtype,
            self.tensor_bytes(info)?,
            info.n_elements,
            &info.name,
        )?;
        Ok((data, info.dims.clone()))
    }
}
