//! A user's login to a registry, as clients send it with every request that may reach one.
//!
//! Decision: **the client reads the user's credentials and sends them; the daemon never reads
//! a user's files for them**, as the Docker CLI sends `X-Registry-Auth` to dockerd: a system
//! daemon serves many users and must use each one's own logins, and the files
//! ([`crate::auth_file`]) are where the user's other tools (podman, skopeo, docker) keep them.
//! The daemon picks, for each image, the login whose scope matches most of its name.

use std::fmt;

use serde::{Deserialize, Serialize};

/// Docker Hub, the registry of names without one; its logins are kept under this scope.
pub const DOCKER_HUB: &str = "docker.io";

/// A user name and password for a registry, or for part of one.
#[derive(Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct RegistryLogin {
    /// `REGISTRY` (`localhost:5000`, `docker.io`) or `REGISTRY/NAMESPACE…` for a login that
    /// holds only below that path, as containers-auth.json(5) allows.
    pub scope: String,
    pub username: String,
    pub password: String,
}

impl fmt::Debug for RegistryLogin {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Never a password in a log line.
        write!(f, "RegistryLogin({} as {})", self.scope, self.username)
    }
}

impl RegistryLogin {
    /// Whether this login holds for `registry/repository`.
    pub fn covers(&self, registry: &str, repository: &str) -> bool {
        let scope = self.scope.as_str();
        match scope.split_once('/') {
            None => scope == registry,
            Some((host, path)) => {
                host == registry
                    && (repository == path
                        || repository
                            .strip_prefix(path)
                            .is_some_and(|rest| rest.starts_with('/')))
            }
        }
    }

    /// The login among `logins` for `registry/repository`: the one whose scope reaches
    /// furthest into the name, the first of equals (the files are read in the order their
    /// tools give them precedence).
    pub fn for_image<'a>(
        logins: &'a [RegistryLogin],
        registry: &str,
        repository: &str,
    ) -> Option<&'a RegistryLogin> {
        logins
            .iter()
            .filter(|l| l.covers(registry, repository))
            .fold(None, |best: Option<&RegistryLogin>, l| match best {
                Some(b) if b.scope.len() >= l.scope.len() => Some(b),
                _ => Some(l),
            })
    }
}

/// A registry as a user or a file names it (`https://index.docker.io/v1/`, `quay.io/org`,
/// `localhost:5000`), as a scope: no scheme, no API path, Docker Hub's aliases `docker.io`.
pub fn normalise_scope(text: &str) -> Result<String, String> {
    let bare = text
        .trim()
        .trim_start_matches("https://")
        .trim_start_matches("http://");
    let bare = bare.trim_end_matches('/');
    let bare = bare
        .strip_suffix("/v1")
        .or_else(|| bare.strip_suffix("/v2"))
        .unwrap_or(bare);
    let (host, path) = match bare.split_once('/') {
        Some((host, path)) => (host, Some(path)),
        None => (bare, None),
    };
    let host = match host {
        "index.docker.io" | "registry-1.docker.io" | "registry.hub.docker.com" => DOCKER_HUB,
        h => h,
    };
    let valid_host = !host.is_empty()
        && host
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-.:[]".contains(&b));
    let valid_path = path.is_none_or(|p| {
        !p.is_empty()
            && p.split('/').all(|part| {
                !part.is_empty()
                    && part.bytes().all(|b| {
                        b.is_ascii_lowercase() || b.is_ascii_digit() || b"._-".contains(&b)
                    })
            })
    });
    if !valid_host || !valid_path {
        return Err(format!(
            "`{text}` is not a registry (e.g. `localhost:5000`, `quay.io`, `docker.io`)"
        ));
    }
    Ok(match path {
        Some(p) => format!("{host}/{p}"),
        None => host.to_owned(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn login(scope: &str) -> RegistryLogin {
        RegistryLogin {
            scope: scope.into(),
            username: "u".into(),
            password: "secret".into(),
        }
    }

    #[test]
    fn the_login_reaching_furthest_into_the_name_wins() {
        let logins = [
            login("quay.io"),
            login("quay.io/team"),
            login("quay.io/team/app"),
            login("localhost:5000"),
        ];
        let pick = |r: &str, p: &str| RegistryLogin::for_image(&logins, r, p).map(|l| &l.scope);
        assert_eq!(pick("quay.io", "team/app").unwrap(), "quay.io/team/app");
        assert_eq!(pick("quay.io", "team/other").unwrap(), "quay.io/team");
        assert_eq!(pick("quay.io", "teamx/app").unwrap(), "quay.io");
        assert_eq!(pick("localhost:5000", "a").unwrap(), "localhost:5000");
        assert_eq!(pick("localhost:5001", "a"), None);
        assert_eq!(pick("docker.io", "library/busybox"), None);
    }

    #[test]
    fn scopes_are_normalised_as_docker_and_podman_write_them() {
        let n = |t: &str| normalise_scope(t).unwrap();
        assert_eq!(n("https://index.docker.io/v1/"), "docker.io");
        assert_eq!(n("registry-1.docker.io"), "docker.io");
        assert_eq!(n("http://localhost:5000/v2/"), "localhost:5000");
        assert_eq!(n("quay.io/org/app"), "quay.io/org/app");
        assert_eq!(n("127.0.0.1:5000"), "127.0.0.1:5000");
        assert!(normalise_scope("").is_err());
        assert!(normalise_scope("quay.io/Org").is_err());
        assert!(normalise_scope("a b").is_err());
        assert!(normalise_scope("quay.io//x").is_err());
    }

    #[test]
    fn a_password_never_reaches_a_log_line() {
        let text = format!("{:?}", login("quay.io"));
        assert!(!text.contains("secret"), "{text}");
    }
}
