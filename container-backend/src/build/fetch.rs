//! `ADD https://…`: a file fetched over HTTP(S) for a build, its content hashed as it arrives
//! and checked against `--checksum` when given (BuildKit's `sha256:<hex>`).

use std::fs::File;
use std::io::Write;
use std::path::Path;

use sha2::{Digest, Sha256};

use crate::image::layer::hex;

/// Why a download failed.
#[derive(Debug, thiserror::Error)]
pub enum FetchError {
    #[error("ADD {url}: {message}")]
    Failed { url: String, message: String },
    #[error("ADD {url}: the content is {actual}, not the {wanted} --checksum names")]
    Checksum {
        url: String,
        wanted: String,
        actual: String,
    },
}

/// Downloads `url` into `dir` under the last segment of its path (BuildKit's name for it) and
/// answers that name; with `checksum`, the content must have that digest.
pub fn download(url: &str, dir: &Path, checksum: Option<&str>) -> Result<String, FetchError> {
    let failed = |message: String| FetchError::Failed {
        url: url.to_owned(),
        message,
    };
    let parsed = reqwest::Url::parse(url).map_err(|e| failed(format!("not a URL: {e}")))?;
    if !matches!(parsed.scheme(), "http" | "https") {
        return Err(failed("only http and https URLs can be added".into()));
    }
    let name = parsed
        .path_segments()
        .and_then(|mut segments| segments.rfind(|s| !s.is_empty()))
        .filter(|n| *n != "." && *n != "..")
        .unwrap_or("__unnamed__")
        .to_owned();
    if let Some(wanted) = checksum
        && !wanted
            .strip_prefix("sha256:")
            .is_some_and(|h| h.len() == 64 && h.bytes().all(|b| b.is_ascii_hexdigit()))
    {
        return Err(failed(format!(
            "--checksum={wanted}: give sha256:<64 hex digits>"
        )));
    }
    let path = dir.join(&name);
    let fetch = async {
        let client = reqwest::Client::builder()
            .timeout(std::time::Duration::from_secs(300))
            .build()
            .map_err(|e| failed(e.to_string()))?;
        let mut response = client
            .get(parsed.clone())
            .send()
            .await
            .map_err(|e| failed(e.to_string()))?;
        if !response.status().is_success() {
            return Err(failed(format!("the server answered {}", response.status())));
        }
        let mut file = File::create(&path).map_err(|e| failed(e.to_string()))?;
        let mut hasher = Sha256::new();
        while let Some(chunk) = response.chunk().await.map_err(|e| failed(e.to_string()))? {
            hasher.update(&chunk);
            file.write_all(&chunk).map_err(|e| failed(e.to_string()))?;
        }
        Ok(format!("sha256:{}", hex(&hasher.finalize())))
    };
    // On a blocking thread of the daemon's runtime, or (a build with none, as in tests) on
    // one of its own.
    let actual = match tokio::runtime::Handle::try_current() {
        Ok(runtime) => runtime.block_on(fetch),
        Err(_) => tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(|e| failed(e.to_string()))?
            .block_on(fetch),
    }?;
    if let Some(wanted) = checksum
        && !wanted.eq_ignore_ascii_case(&actual)
    {
        let _ = std::fs::remove_file(&path);
        return Err(FetchError::Checksum {
            url: url.to_owned(),
            wanted: wanted.to_owned(),
            actual,
        });
    }
    Ok(name)
}
