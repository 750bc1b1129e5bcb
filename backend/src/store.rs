//! Definitions on disk: human-editable RON, written so that a crash at any instant leaves either
//! the old file or the new one, never a torn one.

use std::fs::{self, File, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

use serde::Serialize;
use serde::de::DeserializeOwned;

/// Prefix of temporary files; anything starting with it is a leftover of an interrupted write.
pub const TEMP_PREFIX: &str = ".tmp-";

/// Why a definition could not be written or read.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The value could not be rendered as RON.
    #[error("cannot render {path} as RON: {source}")]
    Render { path: PathBuf, source: ron::Error },
    /// A filesystem operation failed.
    #[error("{op} {path}: {source}")]
    Io {
        op: &'static str,
        path: PathBuf,
        source: std::io::Error,
    },
    /// The file is not valid RON for this type.
    #[error("{path}: line {line}, column {col}: {message}")]
    Parse {
        path: PathBuf,
        line: usize,
        col: usize,
        message: String,
    },
}

fn io<'a>(op: &'static str, path: &'a Path) -> impl FnOnce(std::io::Error) -> StoreError + 'a {
    move |source| StoreError::Io {
        op,
        path: path.to_owned(),
        source,
    }
}

/// Write `value` to `path` atomically: a temp file in the same directory, fsync, rename over
/// the target, fsync the directory so the rename itself is durable.
pub fn write_ron<T: Serialize>(path: &Path, value: &T) -> Result<(), StoreError> {
    let text =
        ron::ser::to_string_pretty(value, ron::ser::PrettyConfig::default()).map_err(|source| {
            StoreError::Render {
                path: path.to_owned(),
                source,
            }
        })?;
    write_atomic(path, format!("{text}\n").as_bytes())
}

/// Replace `path` with `bytes` atomically (see [`write_ron`]).
pub fn write_atomic(path: &Path, bytes: &[u8]) -> Result<(), StoreError> {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let dir = path.parent().unwrap_or(Path::new("."));
    let file_name = path
        .file_name()
        .map(|n| n.to_string_lossy())
        .unwrap_or_default();
    let temp = dir.join(format!(
        "{TEMP_PREFIX}{file_name}.{}.{}",
        std::process::id(),
        COUNTER.fetch_add(1, Ordering::Relaxed)
    ));
    let result = (|| {
        let mut file = OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(&temp)
            .map_err(io("create", &temp))?;
        file.write_all(bytes).map_err(io("write", &temp))?;
        file.sync_all().map_err(io("fsync", &temp))?;
        fs::rename(&temp, path).map_err(io("rename onto", path))?;
        File::open(dir)
            .and_then(|d| d.sync_all())
            .map_err(io("fsync", dir))
    })();
    if result.is_err() {
        let _ = fs::remove_file(&temp);
    }
    result
}

/// Read a RON file; a parse error names the file, line and column.
pub fn read_ron<T: DeserializeOwned>(path: &Path) -> Result<T, StoreError> {
    let text = fs::read_to_string(path).map_err(io("read", path))?;
    ron::from_str(&text).map_err(|e| StoreError::Parse {
        path: path.to_owned(),
        line: e.span.start.line,
        col: e.span.start.col,
        message: e.code.to_string(),
    })
}

/// Remove leftovers of interrupted writes in `dir`. They are never the real file: the rename
/// that would have made them so did not happen.
pub fn remove_stale_temps(dir: &Path) {
    let Ok(entries) = fs::read_dir(dir) else {
        return;
    };
    for entry in entries.flatten() {
        if entry.file_name().to_string_lossy().starts_with(TEMP_PREFIX) {
            let _ = fs::remove_file(entry.path());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn writes_and_reads_back() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("x.ron");
        write_ron(&path, &vec![1u32, 2, 3]).unwrap();
        write_ron(&path, &vec![4u32]).unwrap();
        assert_eq!(read_ron::<Vec<u32>>(&path).unwrap(), vec![4]);
        let names: Vec<_> = fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(names, vec!["x.ron"], "no temp file is left behind");
    }

    #[test]
    fn parse_errors_name_file_line_and_column() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("bad.ron");
        fs::write(&path, "[\n  1,\n  oops,\n]").unwrap();
        let err = read_ron::<Vec<u32>>(&path).unwrap_err().to_string();
        assert!(err.contains("bad.ron: line 3, column 3"), "{err}");
    }
}
