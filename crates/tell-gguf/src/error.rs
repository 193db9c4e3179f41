//! The one error type of the crate: every corrupt, truncated or unsupported input maps to a
//! variant that names what was wrong and where, so callers never see a panic.

use std::path::PathBuf;

use crate::tensor::GgmlType;

/// Everything that can go wrong reading a GGUF file or converting its contents.
#[derive(Debug, thiserror::Error)]
pub enum GgufError {
    /// The file could not be opened or memory-mapped.
    #[error("cannot read GGUF file {path}: {source}")]
    Io {
        /// The path that failed.
        path: PathBuf,
        /// The underlying I/O error.
        source: std::io::Error,
    },
    /// The first four bytes are not `GGUF`.
    #[error("not a GGUF file: magic is {found:02x?}, expected \"GGUF\"")]
    BadMagic {
        /// The four bytes found at offset 0.
        found: [u8; 4],
    },
    /// A version this reader does not handle (only v2 and v3 are supported; v1 used 32-bit
    /// counts, and a byte-swapped version means a big-endian file).
    #[error("unsupported GGUF version {version} (supported: 2, 3; a huge value means a big-endian file)")]
    UnsupportedVersion {
        /// The version field as read (little-endian).
        version: u32,
    },
    /// The file ends before a field that must be there.
    #[error("truncated GGUF file: {what} needs {needed} bytes at offset {offset}, only {available} left")]
    Truncated {
        /// Which field was being read.
        what: String,
        /// Byte offset of the field.
        offset: u64,
        /// Bytes the field needs.
        needed: u64,
        /// Bytes left in the file from that offset.
        available: u64,
    },
    /// A count or length field is larger than the rest of the file could possibly hold.
    #[error("{what} claims {count} items at offset {offset}, but only {remaining} bytes remain (at least {min_item_bytes} bytes each)")]
    CountTooLarge {
        /// Which count was being read.
        what: String,
        /// The count as read.
        count: u64,
        /// Byte offset of the count field.
        offset: u64,
        /// Bytes left after the count field.
        remaining: u64,
        /// The smallest encoding of one item.
        min_item_bytes: u64,
    },
    /// A metadata value type id outside the GGUF spec.
    #[error("{what}: unknown metadata value type {type_id} at offset {offset}")]
    InvalidValueType {
        /// Which value was being read.
        what: String,
        /// The type id as read.
        type_id: u32,
        /// Byte offset of the type id.
        offset: u64,
    },
    /// A bool metadata value that is neither 0 nor 1.
    #[error("{what}: invalid bool byte {byte} at offset {offset}")]
    InvalidBool {
        /// Which value was being read.
        what: String,
        /// The byte as read.
        byte: u8,
        /// Byte offset of the value.
        offset: u64,
    },
    /// A string that is not valid UTF-8.
    #[error("{what}: string at offset {offset} is not valid UTF-8")]
    InvalidUtf8 {
        /// Which string was being read.
        what: String,
        /// Byte offset of the string bytes.
        offset: u64,
    },
    /// Arrays nested deeper than the reader allows (real files nest at most one level).
    #[error("metadata key '{key}': arrays nested deeper than {max} levels")]
    NestingTooDeep {
        /// The key whose value nests too deep.
        key: String,
        /// The limit.
        max: usize,
    },
    /// The same metadata key appears twice.
    #[error("duplicate metadata key '{key}'")]
    DuplicateKey {
        /// The repeated key.
        key: String,
    },
    /// The same tensor name appears twice.
    #[error("duplicate tensor name '{name}'")]
    DuplicateTensor {
        /// The repeated name.
        name: String,
    },
    /// `general.alignment` is zero or not a power of two.
    #[error("general.alignment is {value}; it must be a non-zero power of two")]
    BadAlignment {
        /// The value as read.
        value: u64,
    },
    /// A metadata key holds a different type than the caller needs.
    #[error("metadata key '{key}' is {found}, expected {expected}")]
    WrongValueType {
        /// The key.
        key: String,
        /// The type the caller needed.
        expected: &'static str,
        /// The type found in the file.
        found: &'static str,
    },
    /// A metadata key the caller needs is absent.
    #[error("metadata key '{key}' is missing")]
    MissingKey {
        /// The missing key.
        key: String,
    },
    /// A metadata value is out of the range the caller can use.
    #[error("metadata key '{key}' has invalid value {value}: {reason}")]
    InvalidValue {
        /// The key.
        key: String,
        /// The value, printed.
        value: String,
        /// Why it is rejected.
        reason: &'static str,
    },
    /// A tensor has more dimensions than ggml supports (4).
    #[error("tensor '{tensor}' has {n_dims} dimensions; at most {max} are supported")]
    TooManyDims {
        /// The tensor name.
        tensor: String,
        /// The dimension count as read.
        n_dims: u32,
        /// The limit.
        max: u32,
    },
    /// A tensor type id that this reader does not know at all (so its size is unknown).
    #[error("tensor '{tensor}': unknown ggml type id {type_id}")]
    UnknownTensorType {
        /// The tensor name.
        tensor: String,
        /// The type id as read.
        type_id: u32,
    },
    /// A known tensor type whose dequantization is not implemented.
    #[error("tensor '{tensor}': dequantization of {dtype:?} is not supported")]
    UnsupportedDequant {
        /// The tensor name (or a description of the buffer).
        tensor: String,
        /// The type.
        dtype: GgmlType,
    },
    /// A tensor shape that cannot be stored: a zero or overflowing dimension, or a row length
    /// that is not a multiple of the block size.
    #[error("tensor '{tensor}' has invalid shape {dims:?}: {reason}")]
    BadShape {
        /// The tensor name.
        tensor: String,
        /// The dims as read (innermost first).
        dims: Vec<u64>,
        /// Why it is rejected.
        reason: &'static str,
    },
    /// A tensor offset that is not a multiple of the file's alignment.
    #[error(
        "tensor '{tensor}': data offset {offset} is not a multiple of the alignment {alignment}"
    )]
    MisalignedTensor {
        /// The tensor name.
        tensor: String,
        /// The offset relative to the data section.
        offset: u64,
        /// The alignment.
        alignment: u64,
    },
    /// A tensor whose bytes reach past the end of the file.
    #[error("tensor '{tensor}': bytes {offset}..{offset}+{size} of the data section lie outside it ({data_len} bytes)")]
    TensorOutOfBounds {
        /// The tensor name.
        tensor: String,
        /// The offset relative to the data section.
        offset: u64,
        /// The tensor's size in bytes.
        size: u64,
        /// The size of the data section.
        data_len: u64,
    },
    /// No tensor of that name in the file.
    #[error("tensor '{name}' not found in the GGUF file")]
    TensorNotFound {
        /// The requested name.
        name: String,
    },
    /// A byte buffer whose length does not match the element count for its type.
    #[error("{what}: {dtype:?} with {n_elements} elements needs {expected} bytes, got {got}")]
    DataLength {
        /// What buffer.
        what: String,
        /// Its type.
        dtype: GgmlType,
        /// The element count.
        n_elements: u64,
        /// Bytes needed.
        expected: u64,
        /// Bytes given.
        got: u64,
    },
    /// A shape that does not fit the q/k row permutation (rows not divisible into heads of even
    /// size, or data length not rows x cols).
    #[error("cannot (un)permute q/k rows: {reason}")]
    Permute {
        /// Why.
        reason: String,
    },
}

/// Short alias used throughout the crate.
pub type Result<T> = std::result::Result<T, GgufError>;
