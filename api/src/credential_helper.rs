//! Docker's credential helpers (`docker-credential-NAME`, e.g. `pass`, `secretservice`,
//! `ecr-login`), as `~/.docker/config.json` names them in `credsStore` and `credHelpers`:
//! `get` reads a server on stdin and writes `{"ServerURL", "Username", "Secret"}`; `list` writes
//! `{server: username}`. Run by the client, as the Docker CLI runs them.

use std::ffi::OsString;
use std::io::Write;
use std::process::{Command, Stdio};

/// A helper program's answer when it has nothing for a server.
const NOT_FOUND: &str = "credentials not found";

fn run(
    helper: &str,
    verb: &str,
    input: &str,
    path: Option<&OsString>,
) -> Result<Option<String>, String> {
    let program = format!("docker-credential-{helper}");
    let mut command = Command::new(&program);
    if let Some(path) = path {
        command.env("PATH", path);
    }
    let spawned = command
        .arg(verb)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn();
    let mut child = match spawned {
        Ok(child) => child,
        // A config copied from another machine names a helper this one lacks (Docker
        // Desktop's `desktop`): it holds nothing here, and the other logins still count.
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => {
            return Err(format!(
                "cannot run {program} (named by your Docker config): {e}"
            ));
        }
    };
    if let Some(mut stdin) = child.stdin.take() {
        let _ = stdin.write_all(input.as_bytes());
    }
    let out = child
        .wait_with_output()
        .map_err(|e| format!("{program} {verb}: {e}"))?;
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    if out.status.success() {
        return Ok(Some(stdout));
    }
    // The helpers say "not found" on stdout or stderr, with a failing status.
    let said = format!("{stdout}{}", String::from_utf8_lossy(&out.stderr));
    if said.to_ascii_lowercase().contains(NOT_FOUND) {
        return Ok(None);
    }
    Err(format!("{program} {verb} failed: {}", said.trim()))
}

/// The user name and secret `helper` holds for `server`, if any.
pub fn get(
    helper: &str,
    server: &str,
    path: Option<&OsString>,
) -> Result<Option<(String, String)>, String> {
    let Some(text) = run(helper, "get", server, path)? else {
        return Ok(None);
    };
    #[derive(serde::Deserialize)]
    #[serde(rename_all = "PascalCase")]
    struct Answer {
        username: String,
        secret: String,
    }
    let answer: Answer = serde_json::from_str(&text)
        .map_err(|e| format!("docker-credential-{helper} get: not its JSON ({e})"))?;
    Ok(Some((answer.username, answer.secret)))
}

/// The servers `helper` holds logins for.
pub fn list(helper: &str, path: Option<&OsString>) -> Result<Vec<String>, String> {
    let Some(text) = run(helper, "list", "", path)? else {
        return Ok(Vec::new());
    };
    let servers: std::collections::BTreeMap<String, String> = serde_json::from_str(&text)
        .map_err(|e| format!("docker-credential-{helper} list: not its JSON ({e})"))?;
    Ok(servers.into_keys().collect())
}
