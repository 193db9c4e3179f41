//! Metadata key/value pairs: every GGUF value type, arrays stored typed (a `Vec<u8>` for a u8
//! array, not a `Vec` of enums) so memory stays proportional to the file, and typed getters.

use std::collections::HashMap;

use crate::error::{GgufError, Result};
use crate::reader::Cursor;

/// Arrays of arrays are legal GGUF, but real files nest at most once; a bound stops a crafted
/// file from recursing until the stack overflows.
pub const MAX_ARRAY_NESTING: usize = 8;

/// The GGUF metadata value type ids.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ValueType {
    /// 0
    U8,
    /// 1
    I8,
    /// 2
    U16,
    /// 3
    I16,
    /// 4
    U32,
    /// 5
    I32,
    /// 6
    F32,
    /// 7
    Bool,
    /// 8
    String,
    /// 9
    Array,
    /// 10
    U64,
    /// 11
    I64,
    /// 12
    F64,
}

impl ValueType {
    /// Map a type id from the file; `None` for ids outside the spec.
    pub fn from_id(id: u32) -> Option<Self> {
        use ValueType::*;
        Some(match id {
            0 => U8,
            1 => I8,
            2 => U16,
            3 => I16,
            4 => U32,
            5 => I32,
            6 => F32,
            7 => Bool,
            8 => String,
            9 => Array,
            10 => U64,
            11 => I64,
            12 => F64,
            _ => return None,
        })
    }

    /// The smallest number of bytes one value of this type takes in the file (strings: the
    /// length field; arrays: element type + count), used to bound counts.
    pub fn min_bytes(self) -> u64 {
        use ValueType::*;
        match self {
            U8 | I8 | Bool => 1,
            U16 | I16 => 2,
            U32 | I32 | F32 => 4,
            U64 | I64 | F64 | String => 8,
            Array => 12,
        }
    }
}

/// One metadata value.
#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    /// u8
    U8(u8),
    /// i8
    I8(i8),
    /// u16
    U16(u16),
    /// i16
    I16(i16),
    /// u32
    U32(u32),
    /// i32
    I32(i32),
    /// f32
    F32(f32),
    /// bool
    Bool(bool),
    /// UTF-8 string
    String(String),
    /// homogeneous array
    Array(Array),
    /// u64
    U64(u64),
    /// i64
    I64(i64),
    /// f64
    F64(f64),
}

/// A homogeneous metadata array, stored with its element type.
#[derive(Debug, Clone, PartialEq)]
pub enum Array {
    /// u8 elements
    U8(Vec<u8>),
    /// i8 elements
    I8(Vec<i8>),
    /// u16 elements
    U16(Vec<u16>),
    /// i16 elements
    I16(Vec<i16>),
    /// u32 elements
    U32(Vec<u32>),
    /// i32 elements
    I32(Vec<i32>),
    /// f32 elements
    F32(Vec<f32>),
    /// bool elements
    Bool(Vec<bool>),
    /// string elements
    String(Vec<String>),
    /// nested arrays
    Array(Vec<Array>),
    /// u64 elements
    U64(Vec<u64>),
    /// i64 elements
    I64(Vec<i64>),
    /// f64 elements
    F64(Vec<f64>),
}

impl Array {
    /// Number of elements.
    pub fn len(&self) -> usize {
        match self {
            Array::U8(v) => v.len(),
            Array::I8(v) => v.len(),
            Array::U16(v) => v.len(),
            Array::I16(v) => v.len(),
            Array::U32(v) => v.len(),
            Array::I32(v) => v.len(),
            Array::F32(v) => v.len(),
            Array::Bool(v) => v.len(),
            Array::String(v) => v.len(),
            Array::Array(v) => v.len(),
            Array::U64(v) => v.len(),
            Array::I64(v) => v.len(),
            Array::F64(v) => v.len(),
        }
    }

    /// True when the array has no elements.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// A short name of the element type, for error messages.
    pub fn type_name(&self) -> &'static str {
        match self {
            Array::U8(_) => "array of u8",
            Array::I8(_) => "array of i8",
            Array::U16(_) => "array of u16",
            Array::I16(_) => "array of i16",
            Array::U32(_) => "array of u32",
            Array::I32(_) => "array of i32",
            Array::F32(_) => "array of f32",
            Array::Bool(_) => "array of bool",
            Array::String(_) => "array of string",
            Array::Array(_) => "array of array",
            Array::U64(_) => "array of u64",
            Array::I64(_) => "array of i64",
            Array::F64(_) => "array of f64",
        }
    }

    /// Integer elements widened to i64 (any integer element type), or `None`.
    pub fn to_i64_vec(&self) -> Option<Vec<i64>> {
        Some(match self {
            Array::U8(v) => v.iter().map(|&x| i64::from(x)).collect(),
            Array::I8(v) => v.iter().map(|&x| i64::from(x)).collect(),
            Array::U16(v) => v.iter().map(|&x| i64::from(x)).collect(),
            Array::I16(v) => v.iter().map(|&x| i64::from(x)).collect(),
            Array::U32(v) => v.iter().map(|&x| i64::from(x)).collect(),
            Array::I32(v) => v.iter().map(|&x| i64::from(x)).collect(),
            Array::I64(v) => v.clone(),
            Array::U64(v) => v
                .iter()
                .map(|&x| i64::try_from(x).ok())
                .collect::<Option<_>>()?,
            _ => return None,
        })
    }
}

impl Value {
    /// A short name of the type, for error messages.
    pub fn type_name(&self) -> &'static str {
        match self {
            Value::U8(_) => "u8",
            Value::I8(_) => "i8",
            Value::U16(_) => "u16",
            Value::I16(_) => "i16",
            Value::U32(_) => "u32",
            Value::I32(_) => "i32",
            Value::F32(_) => "f32",
            Value::Bool(_) => "bool",
            Value::String(_) => "string",
            Value::Array(a) => a.type_name(),
            Value::U64(_) => "u64",
            Value::I64(_) => "i64",
            Value::F64(_) => "f64",
        }
    }

    /// Any integer value widened to i128 (so u64 and i64 both fit), or `None`.
    pub fn as_integer(&self) -> Option<i128> {
        Some(match *self {
            Value::U8(x) => x.into(),
            Value::I8(x) => x.into(),
            Value::U16(x) => x.into(),
            Value::I16(x) => x.into(),
            Value::U32(x) => x.into(),
            Value::I32(x) => x.into(),
            Value::U64(x) => x.into(),
            Value::I64(x) => x.into(),
            _ => return None,
        })
    }

    /// A float value (f32 or f64) as f64, or `None`.
    pub fn as_float(&self) -> Option<f64> {
        match *self {
            Value::F32(x) => Some(f64::from(x)),
            Value::F64(x) => Some(x),
            _ => None,
        }
    }
}

/// The metadata of a file: key/value pairs in file order, with lookup by key.
#[derive(Debug, Clone, Default)]
pub struct Metadata {
    entries: Vec<(String, Value)>,
    index: HashMap<String, usize>,
}

impl Metadata {
    /// Insert a pair; a key already present is an error (llama.cpp rejects those files too).
    pub(crate) fn insert(&mut self, key: String, value: Value) -> Result<()> {
        if self.index.contains_key(&key) {
            return Err(GgufError::DuplicateKey { key });
        }
        self.index.insert(key.clone(), self.entries.len());
        self.entries.push((key, value));
        Ok(())
    }

    /// All pairs in file order.
    pub fn entries(&self) -> &[(String, Value)] {
        &self.entries
    }

    /// Number of pairs.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// True when there are no pairs.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// The value of `key`, if present.
    pub fn get(&self, key: &str) -> Option<&Value> {
        self.index.get(key).map(|&i| &self.entries[i].1)
    }

    fn require(&self, key: &str) -> Result<&Value> {
        self.get(key).ok_or_else(|| GgufError::MissingKey {
            key: key.to_owned(),
        })
    }

    fn wrong(key: &str, expected: &'static str, v: &Value) -> GgufError {
        GgufError::WrongValueType {
            key: key.to_owned(),
            expected,
            found: v.type_name(),
        }
    }

    /// A non-negative integer of any integer type that fits in u64; `Ok(None)` when absent.
    pub fn get_u64_opt(&self, key: &str) -> Result<Option<u64>> {
        let Some(v) = self.get(key) else {
            return Ok(None);
        };
        let i = v
            .as_integer()
            .ok_or_else(|| Self::wrong(key, "integer", v))?;
        u64::try_from(i)
            .map(Some)
            .map_err(|_| GgufError::InvalidValue {
                key: key.to_owned(),
                value: i.to_string(),
                reason: "must be a non-negative integer",
            })
    }

    /// A required non-negative integer that fits in u64.
    pub fn get_u64(&self, key: &str) -> Result<u64> {
        self.get_u64_opt(key)?.ok_or_else(|| GgufError::MissingKey {
            key: key.to_owned(),
        })
    }

    /// A required float (f32 or f64 in the file), as f64.
    pub fn get_f64(&self, key: &str) -> Result<f64> {
        let v = self.require(key)?;
        v.as_float().ok_or_else(|| Self::wrong(key, "float", v))
    }

    /// A float (f32 or f64) as f64; `Ok(None)` when absent.
    pub fn get_f64_opt(&self, key: &str) -> Result<Option<f64>> {
        match self.get(key) {
            None => Ok(None),
            Some(v) => v
                .as_float()
                .map(Some)
                .ok_or_else(|| Self::wrong(key, "float", v)),
        }
    }

    /// A bool; `Ok(None)` when absent.
    pub fn get_bool_opt(&self, key: &str) -> Result<Option<bool>> {
        match self.get(key) {
            None => Ok(None),
            Some(Value::Bool(b)) => Ok(Some(*b)),
            Some(v) => Err(Self::wrong(key, "bool", v)),
        }
    }

    /// A required string.
    pub fn get_str(&self, key: &str) -> Result<&str> {
        match self.require(key)? {
            Value::String(s) => Ok(s),
            v => Err(Self::wrong(key, "string", v)),
        }
    }

    /// A string; `Ok(None)` when absent.
    pub fn get_str_opt(&self, key: &str) -> Result<Option<&str>> {
        match self.get(key) {
            None => Ok(None),
            Some(Value::String(s)) => Ok(Some(s)),
            Some(v) => Err(Self::wrong(key, "string", v)),
        }
    }

    /// An array of any element type; `Ok(None)` when absent.
    pub fn get_array_opt(&self, key: &str) -> Result<Option<&Array>> {
        match self.get(key) {
            None => Ok(None),
            Some(Value::Array(a)) => Ok(Some(a)),
            Some(v) => Err(Self::wrong(key, "array", v)),
        }
    }

    /// An array of strings; `Ok(None)` when absent.
    pub fn get_string_array_opt(&self, key: &str) -> Result<Option<&[String]>> {
        match self.get(key) {
            None => Ok(None),
            Some(Value::Array(Array::String(v))) => Ok(Some(v)),
            Some(v) => Err(Self::wrong(key, "array of string", v)),
        }
    }
}

/// Read one value of type `ty`; `depth` counts array nesting.
fn read_value(cur: &mut Cursor<'_>, ty: ValueType, key: &str, depth: usize) -> Result<Value> {
    let what = || format!("value of metadata key '{key}'");
    let off = cur.pos() as u64;
    Ok(match ty {
        ValueType::U8 => Value::U8(cur.u8(what)?),
        ValueType::I8 => Value::I8(cur.u8(what)? as i8),
        ValueType::U16 => Value::U16(cur.u16(what)?),
        ValueType::I16 => Value::I16(cur.u16(what)? as i16),
        ValueType::U32 => Value::U32(cur.u32(what)?),
        ValueType::I32 => Value::I32(cur.u32(what)? as i32),
        ValueType::F32 => Value::F32(f32::from_bits(cur.u32(what)?)),
        ValueType::U64 => Value::U64(cur.u64(what)?),
        ValueType::I64 => Value::I64(cur.u64(what)? as i64),
        ValueType::F64 => Value::F64(f64::from_bits(cur.u64(what)?)),
        ValueType::Bool => Value::Bool(read_bool(cur, off, &what)?),
        ValueType::String => Value::String(cur.string(what)?),
        ValueType::Array => Value::Array(read_array(cur, key, depth + 1)?),
    })
}

fn read_bool(cur: &mut Cursor<'_>, offset: u64, what: &dyn Fn() -> String) -> Result<bool> {
    match cur.u8(what)? {
        0 => Ok(false),
        1 => Ok(true),
        byte => Err(GgufError::InvalidBool {
            what: what(),
            byte,
            offset,
        }),
    }
}

/// Read `n` fixed-size little-endian elements with `conv`, after the count was bounded.
fn fixed<T, const N: usize>(
    cur: &mut Cursor<'_>,
    n: usize,
    what: &dyn Fn() -> String,
    conv: fn([u8; N]) -> T,
) -> Result<Vec<T>> {
    let bytes = cur.take(n * N, what)?;
    Ok(bytes
        .chunks_exact(N)
        .map(|c| {
            let mut a = [0u8; N];
            a.copy_from_slice(c);
            conv(a)
        })
        .collect())
}

fn read_array(cur: &mut Cursor<'_>, key: &str, depth: usize) -> Result<Array> {
    if depth > MAX_ARRAY_NESTING {
        return Err(GgufError::NestingTooDeep {
            key: key.to_owned(),
            max: MAX_ARRAY_NESTING,
        });
    }
    let type_off = cur.pos() as u64;
    let type_id = cur.u32(|| format!("array element type of metadata key '{key}'"))?;
    let ty = ValueType::from_id(type_id).ok_or_else(|| GgufError::InvalidValueType {
        what: format!("array element of metadata key '{key}'"),
        type_id,
        offset: type_off,
    })?;
    let n = cur.count(ty.min_bytes(), || {
        format!("array length of metadata key '{key}'")
    })?;
    let what = || format!("array elements of metadata key '{key}'");
    Ok(match ty {
        ValueType::U8 => Array::U8(cur.take(n, what)?.to_vec()),
        ValueType::I8 => Array::I8(cur.take(n, what)?.iter().map(|&b| b as i8).collect()),
        ValueType::U16 => Array::U16(fixed(cur, n, &what, u16::from_le_bytes)?),
        ValueType::I16 => Array::I16(fixed(cur, n, &what, i16::from_le_bytes)?),
        ValueType::U32 => Array::U32(fixed(cur, n, &what, u32::from_le_bytes)?),
        ValueType::I32 => Array::I32(fixed(cur, n, &what, i32::from_le_bytes)?),
        ValueType::F32 => Array::F32(fixed(cur, n, &what, f32::from_le_bytes)?),
        ValueType::U64 => Array::U64(fixed(cur, n, &what, u64::from_le_bytes)?),
        ValueType::I64 => Array::I64(fixed(cur, n, &what, i64::from_le_bytes)?),
        ValueType::F64 => Array::F64(fixed(cur, n, &what, f64::from_le_bytes)?),
        ValueType::Bool => {
            let mut v = Vec::with_capacity(n);
            for i in 0..n {
                let off = cur.pos() as u64;
                v.push(read_bool(cur, off, &|| {
                    format!("element {i} of metadata key '{key}'")
                })?);
            }
            Array::Bool(v)
        }
        ValueType::String => {
            let mut v = Vec::with_capacity(n);
            for i in 0..n {
                v.push(cur.string(|| format!("element {i} of metadata key '{key}'"))?);
            }
            Array::String(v)
        }
        ValueType::Array => {
            let mut v = Vec::with_capacity(n);
            for _ in 0..n {
                v.push(read_array(cur, key, depth + 1)?);
            }
            Array::Array(v)
        }
    })
}

/// Read one key/value pair (`index` is its position, for messages).
pub(crate) fn read_kv(cur: &mut Cursor<'_>, index: usize) -> Result<(String, Value)> {
    let key = cur.string(|| format!("key of metadata entry {index}"))?;
    let type_off = cur.pos() as u64;
    let type_id = cur.u32(|| format!("value type of metadata key '{key}'"))?;
    let ty = ValueType::from_id(type_id).ok_or_else(|| GgufError::InvalidValueType {
        what: format!("metadata key '{key}'"),
        type_id,
        offset: type_off,
    })?;
    let value = read_value(cur, ty, &key, 0)?;
    Ok((key, value))
}
