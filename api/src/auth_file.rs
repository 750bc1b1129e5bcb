//! The files where a user's container tools keep registry logins, read and written as they
//! do (containers-auth.json(5), Docker's `config.json`): `{"auths": {SCOPE: {"auth":
//! base64("USER:PASSWORD")}}}`, every other key of a file left as it was.
//!
//! Read, in this order (the first login for a scope wins): `$REGISTRY_AUTH_FILE` alone when it
//! is set; else `$XDG_RUNTIME_DIR/containers/auth.json` (podman's and skopeo's), then
//! `$XDG_CONFIG_HOME/containers/auth.json`, then `$DOCKER_CONFIG/config.json` or
//! `~/.docker/config.json` (Docker's). `berthctl login` writes where podman does: the first of
//! these that is a containers file. Docker's credential helpers (`credsStore`, `credHelpers`)
//! are not run.

use std::io::Write;
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

use base64::Engine;
use base64::engine::general_purpose::STANDARD;

use crate::credential_helper;
use crate::registry_login::{RegistryLogin, normalise_scope};

/// Where the user's tools keep logins, from the environment.
#[derive(Debug, Clone, Default)]
pub struct AuthFiles {
    /// `$REGISTRY_AUTH_FILE`: the one file, when set.
    pub explicit: Option<PathBuf>,
    pub runtime_dir: Option<PathBuf>,
    pub config_home: Option<PathBuf>,
    pub docker_config: Option<PathBuf>,
    pub home: Option<PathBuf>,
    /// `$PATH`, where credential helpers are found.
    pub path: Option<std::ffi::OsString>,
}

/// Why a file of logins could not be used.
#[derive(Debug, Clone, thiserror::Error)]
pub enum AuthFileError {
    #[error("{path}: {message}")]
    Io { path: PathBuf, message: String },
    #[error("{path} is not a file of registry logins: {message}")]
    Malformed { path: PathBuf, message: String },
    #[error("no file to keep logins in: set HOME, XDG_RUNTIME_DIR or REGISTRY_AUTH_FILE")]
    Nowhere,
}

impl AuthFiles {
    /// The places this process's environment names.
    pub fn from_env() -> AuthFiles {
        let var = |name: &str| {
            std::env::var_os(name)
                .filter(|v| !v.is_empty())
                .map(PathBuf::from)
        };
        AuthFiles {
            explicit: var("REGISTRY_AUTH_FILE"),
            runtime_dir: var("XDG_RUNTIME_DIR"),
            config_home: var("XDG_CONFIG_HOME"),
            docker_config: var("DOCKER_CONFIG"),
            home: var("HOME"),
            path: std::env::var_os("PATH"),
        }
    }

    /// The files read, first first.
    pub fn read_order(&self) -> Vec<PathBuf> {
        if let Some(file) = &self.explicit {
            return vec![file.clone()];
        }
        let mut files = Vec::new();
        if let Some(dir) = &self.runtime_dir {
            files.push(dir.join("containers/auth.json"));
        }
        if let Some(dir) = self.config_dir() {
            files.push(dir.join("containers/auth.json"));
        }
        match (&self.docker_config, &self.home) {
            (Some(dir), _) => files.push(dir.join("config.json")),
            (None, Some(home)) => files.push(home.join(".docker/config.json")),
            (None, None) => {}
        }
        files
    }

    /// The file `login` writes and `logout` edits.
    pub fn write_target(&self) -> Result<PathBuf, AuthFileError> {
        if let Some(file) = &self.explicit {
            return Ok(file.clone());
        }
        self.runtime_dir
            .clone()
            .or_else(|| self.config_dir())
            .map(|dir| dir.join("containers/auth.json"))
            .ok_or(AuthFileError::Nowhere)
    }

    fn config_dir(&self) -> Option<PathBuf> {
        self.config_home
            .clone()
            .or_else(|| self.home.as_ref().map(|h| h.join(".config")))
    }

    /// Every login the files hold; a file that is missing holds none, one that cannot be read
    /// is an error naming it (a request should not go out anonymous by surprise).
    pub fn logins(&self) -> Result<Vec<RegistryLogin>, AuthFileError> {
        let mut logins: Vec<RegistryLogin> = Vec::new();
        for path in self.read_order() {
            for login in read_file(&path, self.path.as_ref())? {
                if !logins.iter().any(|l| l.scope == login.scope) {
                    logins.push(login);
                }
            }
        }
        Ok(logins)
    }

    /// Keeps `login` in the file `login` writes, replacing one of the same scope.
    pub fn store(&self, login: &RegistryLogin) -> Result<PathBuf, AuthFileError> {
        let path = self.write_target()?;
        let mut document = read_document(&path)?.unwrap_or_else(|| serde_json::json!({}));
        let entry = serde_json::json!({
            "auth": STANDARD.encode(format!("{}:{}", login.username, login.password)),
        });
        auths_of(&mut document, &path)?.insert(login.scope.clone(), entry);
        write_document(&path, &document)?;
        Ok(path)
    }

    /// Removes the login for `scope` (every one with `None`) from the file `login` writes.
    /// Answers what was removed; an empty answer with the scope in another file's logins is the
    /// caller's to explain.
    pub fn remove(&self, scope: Option<&str>) -> Result<Vec<String>, AuthFileError> {
        let path = self.write_target()?;
        let Some(mut document) = read_document(&path)? else {
            return Ok(Vec::new());
        };
        let auths = auths_of(&mut document, &path)?;
        let keys: Vec<String> = auths
            .keys()
            .filter(|k| match scope {
                None => true,
                Some(s) => normalise_scope(k).is_ok_and(|n| n == s),
            })
            .cloned()
            .collect();
        for key in &keys {
            auths.remove(key);
        }
        if !keys.is_empty() {
            write_document(&path, &document)?;
        }
        Ok(keys)
    }
}

/// The logins of one file: its credential helpers' first, then its `auths`.
fn read_file(
    path: &Path,
    search: Option<&std::ffi::OsString>,
) -> Result<Vec<RegistryLogin>, AuthFileError> {
    let malformed = |message: String| AuthFileError::Malformed {
        path: path.to_owned(),
        message,
    };
    let Some(document) = read_document(path)? else {
        return Ok(Vec::new());
    };
    let mut logins = helper_logins(&document, search).map_err(malformed)?;
    let Some(auths) = document.get("auths") else {
        return Ok(logins);
    };
    let auths = auths
        .as_object()
        .ok_or_else(|| malformed("`auths` is not an object".into()))?;
    for (key, entry) in auths {
        // An entry without `auth` (Docker keeps one per registry a helper holds) has nothing.
        let Some(encoded) = entry.get("auth").and_then(|a| a.as_str()) else {
            continue;
        };
        if encoded.is_empty() {
            continue;
        }
        let scope = normalise_scope(key).map_err(malformed)?;
        let decoded = STANDARD
            .decode(encoded)
            .map_err(|e| malformed(format!("the login for `{key}` is not base64: {e}")))?;
        let text = String::from_utf8(decoded)
            .map_err(|_| malformed(format!("the login for `{key}` is not UTF-8")))?;
        let (username, password) = text
            .split_once(':')
            .ok_or_else(|| malformed(format!("the login for `{key}` is not USER:PASSWORD")))?;
        logins.push(RegistryLogin {
            scope,
            username: username.to_owned(),
            password: password.to_owned(),
        });
    }
    Ok(logins)
}

/// What a Docker config's credential helpers hold: `credHelpers`' registries, each from its
/// own helper, then every server the `credsStore` helper lists.
fn helper_logins(
    document: &serde_json::Value,
    search: Option<&std::ffi::OsString>,
) -> Result<Vec<RegistryLogin>, String> {
    let mut asks: Vec<(String, String)> = Vec::new();
    if let Some(helpers) = document.get("credHelpers").and_then(|h| h.as_object()) {
        for (server, helper) in helpers {
            let helper = helper
                .as_str()
                .ok_or_else(|| format!("credHelpers.{server} is not a helper's name"))?;
            asks.push((helper.to_owned(), server.clone()));
        }
    }
    if let Some(store) = document.get("credsStore").and_then(|s| s.as_str())
        && !store.is_empty()
    {
        for server in credential_helper::list(store, search)? {
            asks.push((store.to_owned(), server));
        }
    }
    let mut logins: Vec<RegistryLogin> = Vec::new();
    for (helper, server) in asks {
        let scope = normalise_scope(&server)?;
        if logins.iter().any(|l| l.scope == scope) {
            continue;
        }
        if let Some((username, password)) = credential_helper::get(&helper, &server, search)? {
            logins.push(RegistryLogin {
                scope,
                username,
                password,
            });
        }
    }
    Ok(logins)
}

fn read_document(path: &Path) -> Result<Option<serde_json::Value>, AuthFileError> {
    let bytes = match std::fs::read(path) {
        Ok(b) => b,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => {
            return Err(AuthFileError::Io {
                path: path.to_owned(),
                message: e.to_string(),
            });
        }
    };
    // An empty file is how some tools leave one after the last logout.
    if bytes.iter().all(u8::is_ascii_whitespace) {
        return Ok(None);
    }
    serde_json::from_slice(&bytes)
        .map(Some)
        .map_err(|e| AuthFileError::Malformed {
            path: path.to_owned(),
            message: e.to_string(),
        })
}

fn auths_of<'a>(
    document: &'a mut serde_json::Value,
    path: &Path,
) -> Result<&'a mut serde_json::Map<String, serde_json::Value>, AuthFileError> {
    let malformed = |message: &str| AuthFileError::Malformed {
        path: path.to_owned(),
        message: message.to_owned(),
    };
    let top = document
        .as_object_mut()
        .ok_or_else(|| malformed("it is not a JSON object"))?;
    top.entry("auths")
        .or_insert_with(|| serde_json::json!({}))
        .as_object_mut()
        .ok_or_else(|| malformed("`auths` is not an object"))
}

/// Writes `document` to `path` readable by its owner only, whole or not at all (a temporary
/// file renamed over it), making its directory (0700) if needed.
fn write_document(path: &Path, document: &serde_json::Value) -> Result<(), AuthFileError> {
    let io = |e: std::io::Error| AuthFileError::Io {
        path: path.to_owned(),
        message: e.to_string(),
    };
    if let Some(dir) = path.parent() {
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(dir)
            .map_err(io)?;
    }
    let mut text = serde_json::to_vec_pretty(document).map_err(|e| io(std::io::Error::other(e)))?;
    text.push(b'\n');
    let temp = path.with_extension(format!("tmp.{}", std::process::id()));
    let written = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(&temp)
        .and_then(|mut f| {
            f.write_all(&text)?;
            f.sync_all()
        })
        .and_then(|()| std::fs::rename(&temp, path));
    if written.is_err() {
        let _ = std::fs::remove_file(&temp);
    }
    written.map_err(io)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    fn files(dir: &Path) -> AuthFiles {
        AuthFiles {
            explicit: None,
            runtime_dir: Some(dir.join("run")),
            config_home: None,
            docker_config: None,
            home: Some(dir.join("home")),
            path: None,
        }
    }

    #[test]
    fn logins_come_from_podman_s_file_before_docker_s() {
        let dir = tempfile::tempdir().unwrap();
        let files = files(dir.path());
        std::fs::create_dir_all(dir.path().join("home/.docker")).unwrap();
        // Docker's form: the scheme and API path in the key, a helper-held entry without `auth`.
        std::fs::write(
            dir.path().join("home/.docker/config.json"),
            r#"{"auths": {"https://index.docker.io/v1/": {"auth": "aHViOmh1YnBhc3M="},
                          "quay.io": {}, "localhost:5000": {"auth": "ZG9ja2VyOmQ="}},
                "credsStore": "desktop"}"#,
        )
        .unwrap();
        let login = |scope: &str| RegistryLogin {
            scope: scope.into(),
            username: "berth".into(),
            password: "p:w".into(),
        };
        let written = files.store(&login("localhost:5000")).unwrap();
        assert_eq!(written, dir.path().join("run/containers/auth.json"));
        use std::os::unix::fs::PermissionsExt;
        assert_eq!(
            std::fs::metadata(&written).unwrap().permissions().mode() & 0o777,
            0o600
        );
        let logins = files.logins().unwrap();
        assert_eq!(
            logins,
            vec![
                login("localhost:5000"),
                RegistryLogin {
                    scope: "docker.io".into(),
                    username: "hub".into(),
                    password: "hubpass".into(),
                },
            ]
        );
        // Logging out removes it from the file it was written to, and Docker's stays.
        assert_eq!(
            files.remove(Some("localhost:5000")).unwrap(),
            ["localhost:5000"]
        );
        let logins = files.logins().unwrap();
        let docker_s = logins.iter().find(|l| l.scope == "localhost:5000").unwrap();
        assert_eq!(docker_s.username, "docker");
        assert!(files.remove(Some("localhost:5000")).unwrap().is_empty());
    }

    #[test]
    fn other_keys_of_a_file_survive_a_login() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("auth.json");
        std::fs::write(
            &path,
            r#"{"credHelpers": {"gcr.io": "gcloud"}, "auths": {}}"#,
        )
        .unwrap();
        let files = AuthFiles {
            explicit: Some(path.clone()),
            ..AuthFiles::default()
        };
        assert_eq!(files.read_order(), std::slice::from_ref(&path));
        files
            .store(&RegistryLogin {
                scope: "quay.io".into(),
                username: "u".into(),
                password: "p".into(),
            })
            .unwrap();
        let document: serde_json::Value =
            serde_json::from_slice(&std::fs::read(&path).unwrap()).unwrap();
        assert_eq!(document["credHelpers"]["gcr.io"], "gcloud");
        assert_eq!(document["auths"]["quay.io"]["auth"], "dTpw");
    }

    #[test]
    fn credential_helpers_are_asked_before_the_file_s_own_logins() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let bin = dir.path().join("bin");
        std::fs::create_dir_all(&bin).unwrap();
        // A store holding Docker Hub, and a helper of quay.io's own, as Docker's protocol has
        // them; a server the store lacks says so as the real helpers do.
        let helper = |name: &str, script: &str| {
            let path = bin.join(format!("docker-credential-{name}"));
            std::fs::write(&path, format!("#!/bin/sh\n{script}")).unwrap();
            std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).unwrap();
        };
        helper(
            "store",
            r#"read server
case "$1:$server" in
  list:*) echo '{"https://index.docker.io/v1/":"hub","gone.example":"x"}' ;;
  get:https://index.docker.io/v1/) echo '{"ServerURL":"'$server'","Username":"hub","Secret":"from-store"}' ;;
  *) echo "credentials not found in native keychain"; exit 1 ;;
esac
"#,
        );
        helper(
            "quay",
            r#"read server; echo '{"ServerURL":"quay.io","Username":"robot","Secret":"tok"}'"#,
        );
        let config = dir.path().join("config.json");
        std::fs::write(
            &config,
            r#"{"credsStore": "store", "credHelpers": {"quay.io": "quay"},
                "auths": {"https://index.docker.io/v1/": {"auth": "aHViOmZyb20tZmlsZQ=="}}}"#,
        )
        .unwrap();
        let files = AuthFiles {
            explicit: Some(config),
            path: Some(bin.into_os_string()),
            ..AuthFiles::default()
        };
        let logins = files.logins().unwrap();
        let of = |scope: &str| {
            logins
                .iter()
                .find(|l| l.scope == scope)
                .map(|l| (l.username.as_str(), l.password.as_str()))
        };
        assert_eq!(of("quay.io"), Some(("robot", "tok")));
        assert_eq!(
            of("docker.io"),
            Some(("hub", "from-store")),
            "the store wins"
        );
        assert_eq!(of("gone.example"), None);
        // Helpers that are not there hold nothing; the file's own logins still count.
        let files = AuthFiles {
            path: Some(dir.path().join("nowhere").into_os_string()),
            ..files
        };
        let logins = files.logins().unwrap();
        assert_eq!(logins.len(), 1);
        assert_eq!(logins[0].password, "from-file");
    }

    #[test]
    fn a_broken_file_is_an_error_naming_it() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("auth.json");
        let files = AuthFiles {
            explicit: Some(path.clone()),
            ..AuthFiles::default()
        };
        assert!(
            files.logins().unwrap().is_empty(),
            "a missing file holds none"
        );
        std::fs::write(&path, r#"{"auths": {"quay.io": {"auth": "bm9jb2xvbg=="}}}"#).unwrap();
        let e = files.logins().unwrap_err().to_string();
        assert!(
            e.contains("auth.json") && e.contains("USER:PASSWORD"),
            "{e}"
        );
        std::fs::write(&path, "{").unwrap();
        assert!(matches!(
            files.logins(),
            Err(AuthFileError::Malformed { .. })
        ));
    }
}
