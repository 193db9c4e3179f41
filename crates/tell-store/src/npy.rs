//! Minimal NPY v1.0 writer: header written up front, data streamed after it.

use crate::error::{io_at, Result};
use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};

/// The NPY header (magic, version 1.0, header length, dict padded with spaces to a multiple of
/// 64 bytes and ended by `\n`) for a C-order array of `descr` with `shape`.
pub fn npy_header(descr: &str, shape: &[usize]) -> Vec<u8> {
    let dims = match shape {
        [n] => format!("({n},)"),
        _ => format!(
            "({})",
            shape
                .iter()
                .map(|s| s.to_string())
                .collect::<Vec<_>>()
                .join(", ")
        ),
    };
    let mut dict = format!("{{'descr': '{descr}', 'fortran_order': False, 'shape': {dims}, }}");
    // magic(6) + version(2) + length(2) + dict + '\n' must be a multiple of 64.
    let total = (10 + dict.len() + 1).next_multiple_of(64);
    dict.extend(std::iter::repeat_n(' ', total - 10 - dict.len() - 1));
    dict.push('\n');
    let mut out = Vec::with_capacity(total);
    out.extend_from_slice(b"\x93NUMPY\x01\x00");
    out.extend_from_slice(&(dict.len() as u16).to_le_bytes());
    out.extend_from_slice(dict.as_bytes());
    out
}

/// Streams a `.npy` file: create with the final shape, then append exactly that many elements.
pub struct NpyWriter {
    path: PathBuf,
    out: BufWriter<File>,
}

impl NpyWriter {
    /// Creates `path` and writes the header for `descr` (e.g. `<f4`, `<i8`) and `shape`.
    pub fn create(path: &Path, descr: &str, shape: &[usize]) -> Result<Self> {
        let f = File::create(path).map_err(io_at(path))?;
        let mut out = BufWriter::with_capacity(1 << 20, f);
        out.write_all(&npy_header(descr, shape))
            .map_err(io_at(path))?;
        Ok(NpyWriter {
            path: path.to_path_buf(),
            out,
        })
    }

    /// Appends f32 values (for `<f4`).
    pub fn write_f32(&mut self, values: &[f32]) -> Result<()> {
        for v in values {
            self.out
                .write_all(&v.to_le_bytes())
                .map_err(io_at(&self.path))?;
        }
        Ok(())
    }

    /// Appends i64 values (for `<i8`).
    pub fn write_i64(&mut self, values: &[i64]) -> Result<()> {
        for v in values {
            self.out
                .write_all(&v.to_le_bytes())
                .map_err(io_at(&self.path))?;
        }
        Ok(())
    }

    /// Flushes and closes the file.
    pub fn finish(self) -> Result<()> {
        let path = self.path;
        let f = self.out.into_inner().map_err(|e| crate::error::Error::Io {
            path: path.clone(),
            source: e.into_error(),
        })?;
        f.sync_all().map_err(io_at(&path))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn header_is_padded_to_64_and_ends_with_newline() {
        let h = npy_header("<f4", &[3, 4]);
        assert_eq!(h.len() % 64, 0);
        assert_eq!(&h[..8], b"\x93NUMPY\x01\x00");
        assert_eq!(u16::from_le_bytes([h[8], h[9]]) as usize, h.len() - 10);
        let dict = std::str::from_utf8(&h[10..]).unwrap();
        assert!(dict.starts_with("{'descr': '<f4', 'fortran_order': False, 'shape': (3, 4), }"));
        assert!(dict.ends_with('\n'));
        let one = npy_header("<i8", &[5]);
        assert!(std::str::from_utf8(&one[10..])
            .unwrap()
            .contains("'shape': (5,)"));
    }
}
