//! Crash-safe file replacement: write a temp file, fsync it, rename over the target, fsync the dir.

use crate::error::{io_at, Result};
use std::fs::{self, File};
use std::io::Write;
use std::path::{Path, PathBuf};

/// Suffix of every temporary file the store writes; leftovers are removed on resume.
pub const TMP_SUFFIX: &str = ".tmp";

/// The temporary sibling of `path` (`name.tmp`).
pub fn tmp_path(path: &Path) -> PathBuf {
    let mut s = path.as_os_str().to_os_string();
    s.push(TMP_SUFFIX);
    PathBuf::from(s)
}

/// Flushes a directory entry table, so a rename inside it survives power loss.
pub fn fsync_dir(dir: &Path) -> Result<()> {
    // Directories cannot be fsynced on every platform; on Unix they can and must be.
    #[cfg(unix)]
    File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(io_at(dir))?;
    #[cfg(not(unix))]
    let _ = dir;
    Ok(())
}

/// Fsyncs `tmp`, renames it to `path` and fsyncs the parent directory.
pub fn commit(tmp: &Path, path: &Path) -> Result<()> {
    File::open(tmp)
        .and_then(|f| f.sync_all())
        .map_err(io_at(tmp))?;
    fs::rename(tmp, path).map_err(io_at(path))?;
    fsync_dir(path.parent().unwrap_or(Path::new(".")))
}

/// Replaces `path` with `bytes` atomically (a reader sees the old or the new file, never half).
pub fn write_atomic(path: &Path, bytes: &[u8]) -> Result<()> {
    let tmp = tmp_path(path);
    let mut f = File::create(&tmp).map_err(io_at(&tmp))?;
    f.write_all(bytes).map_err(io_at(&tmp))?;
    drop(f);
    commit(&tmp, path)
}

/// Hex sha256 and length of a file, read in 1 MiB chunks (bounded memory).
pub fn sha256_file(path: &Path) -> Result<(String, u64)> {
    use sha2::{Digest, Sha256};
    use std::io::Read;
    let mut f = File::open(path).map_err(crate::error::io_at(path))?;
    let mut h = Sha256::new();
    let mut buf = vec![0u8; 1 << 20];
    let mut n = 0u64;
    loop {
        let k = f.read(&mut buf).map_err(crate::error::io_at(path))?;
        if k == 0 {
            break;
        }
        h.update(&buf[..k]);
        n += k as u64;
    }
    Ok((crate::spec::hex(&h.finalize()), n))
}

/// True for names the store owns: the manifest, the records table, shards, and their temp files.
pub fn is_store_file(name: &str) -> bool {
    let base = name.strip_suffix(TMP_SUFFIX).unwrap_or(name);
    base == crate::manifest::MANIFEST_FILE
        || base == crate::manifest::RECORDS_FILE
        || (base.starts_with("shard-") && base.ends_with(".safetensors"))
}
