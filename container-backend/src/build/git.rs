//! `ADD <git repository> <dest>`: a repository fetched for a build, its checked-out tree copied
//! into the image, as BuildKit's ADD takes one: `https://host/repo.git#REF:SUBDIR`,
//! `git://host/repo.git`, `ssh://…`, `git@host:repo.git`, with `?ref=`, `tag=`, `branch=`,
//! `subdir=`, `checksum=` (or `commit=`) and `keep-git-dir` in the query as its newer syntax
//! has them. An http(s) URL is a repository only when its path ends in `.git`, as in BuildKit.
//!
//! **Decision: the host's `git`** (the client every repository is tested against, with its
//! transports: smart and dumb HTTP, git://, ssh) rather than a Rust reimplementation. It runs
//! with no prompt (`GIT_TERMINAL_PROMPT=0`, ssh in batch mode), no system or user
//! configuration, and a home of its own: a build fetches what the Dockerfile names, not what
//! the daemon's user has configured. Shallow first (`fetch --depth 1`), the whole ref when the
//! server cannot (dumb HTTP), every branch and tag when the ref is a commit the server will not
//! hand out by itself.

use std::path::{Component, Path, PathBuf};
use std::process::{Command, Stdio};

/// A repository source of an ADD, parsed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GitSource {
    /// What git fetches from: the source without its fragment and query.
    pub remote: String,
    /// A branch, a tag or a commit; the remote's HEAD when `None`.
    pub reference: Option<String>,
    /// The directory of the repository to copy; all of it when `None`.
    pub subdir: Option<String>,
    /// The commit the checkout must be (`checksum=`, or ADD's `--checksum`): its full hash or
    /// a prefix of at least 7 digits.
    pub commit: Option<String>,
    /// Keep the `.git` directory (`keep-git-dir`, or ADD's `--keep-git-dir`).
    pub keep_git_dir: Option<bool>,
}

/// Errors fetching a repository.
#[derive(Debug, thiserror::Error)]
pub enum GitError {
    /// git is not installed.
    #[error("ADD of a git repository needs git (apt-get install git)")]
    NoGit,
    /// git could not be run.
    #[error("cannot run git: {0}")]
    Run(std::io::Error),
    /// git failed: what it was asked and what it said.
    #[error("git {what} {remote} failed: {said}")]
    Failed {
        what: String,
        remote: String,
        said: String,
    },
    /// The checkout is not the commit the Dockerfile names.
    #[error("{remote}: the checkout is commit {got}, not {wanted} (--checksum)")]
    Commit {
        remote: String,
        got: String,
        wanted: String,
    },
    /// The subdirectory is not a directory of the repository.
    #[error("{remote}: `{subdir}` is not a directory of the repository")]
    NoSubdir { remote: String, subdir: String },
    #[error("{0}")]
    Io(#[from] std::io::Error),
}

/// Whether `source` (expanded) names a git repository: `None` when it does not (a path of the
/// context or an http(s) file), else the repository or why its ref or query is wrong.
pub fn parse(source: &str) -> Option<Result<GitSource, String>> {
    let (rest, fragment) = match source.split_once('#') {
        Some((rest, fragment)) => (rest, Some(fragment)),
        None => (source, None),
    };
    let (remote, query) = match rest.split_once('?') {
        Some((remote, query)) => (remote, Some(query)),
        None => (rest, None),
    };
    let is_git = if let Some((scheme, path)) = remote.split_once("://") {
        match scheme {
            "git" | "ssh" | "git+ssh" => true,
            // A web URL is a repository only with `.git` at the end of its path.
            "http" | "https" => path.trim_end_matches('/').ends_with(".git"),
            _ => false,
        }
    } else {
        scp_like(remote)
    };
    if !is_git {
        return None;
    }
    Some(parse_parts(source, remote, fragment, query))
}

/// `user@host:path`, as ssh and git write a remote without a scheme.
fn scp_like(remote: &str) -> bool {
    let Some((user_host, path)) = remote.split_once(':') else {
        return false;
    };
    let Some((user, host)) = user_host.split_once('@') else {
        return false;
    };
    let word = |s: &str| {
        !s.is_empty()
            && s.chars()
                .all(|c| c.is_ascii_alphanumeric() || "._-".contains(c))
    };
    word(user) && word(host) && !path.is_empty()
}

fn parse_parts(
    source: &str,
    remote: &str,
    fragment: Option<&str>,
    query: Option<&str>,
) -> Result<GitSource, String> {
    let mut git = GitSource {
        remote: remote.to_owned(),
        reference: None,
        subdir: None,
        commit: None,
        keep_git_dir: None,
    };
    if let Some(fragment) = fragment {
        let (reference, subdir) = match fragment.split_once(':') {
            Some((reference, subdir)) => (reference, Some(subdir)),
            None => (fragment, None),
        };
        git.reference = Some(reference).filter(|r| !r.is_empty()).map(str::to_owned);
        git.subdir = subdir.filter(|s| !s.is_empty()).map(str::to_owned);
    }
    let conflict =
        |what: &str, a: &str, b: &str| format!("{source}: {what} conflicts: `{a}` and `{b}`");
    for pair in query
        .into_iter()
        .flat_map(|q| q.split('&'))
        .filter(|p| !p.is_empty())
    {
        let (key, value) = match pair.split_once('=') {
            Some((key, value)) => (key, Some(value)),
            None => (pair, None),
        };
        let value_of = |key: &str| {
            value
                .filter(|v| !v.is_empty())
                .map(str::to_owned)
                .ok_or_else(|| format!("{source}: `{key}` needs a value"))
        };
        match key {
            "ref" | "tag" | "branch" => {
                let value = value_of(key)?;
                if let Some(had) = git.reference.as_deref().filter(|had| *had != value) {
                    return Err(conflict("ref", had, &value));
                }
                git.reference = Some(value);
            }
            "subdir" => {
                let value = value_of(key)?;
                if let Some(had) = git.subdir.as_deref().filter(|had| *had != value) {
                    return Err(conflict("subdir", had, &value));
                }
                git.subdir = Some(value);
            }
            "checksum" | "commit" => git.commit = Some(value_of(key)?),
            "keep-git-dir" => {
                git.keep_git_dir = Some(match value {
                    None | Some("") | Some("true") | Some("1") => true,
                    Some("false") | Some("0") => false,
                    Some(other) => {
                        return Err(format!("{source}: keep-git-dir={other}: true or false"));
                    }
                });
            }
            other => {
                return Err(format!(
                    "{source}: `{other}` is not supported (ref, tag, branch, subdir, checksum, keep-git-dir are)"
                ));
            }
        }
    }
    if let Some(subdir) = &git.subdir
        && Path::new(subdir)
            .components()
            .any(|c| !matches!(c, Component::Normal(_) | Component::CurDir))
    {
        return Err(format!(
            "{source}: the subdirectory `{subdir}` must be a relative path inside the repository"
        ));
    }
    if let Some(commit) = &git.commit {
        check_commit(commit).map_err(|why| format!("{source}: {why}"))?;
    }
    Ok(git)
}

/// A commit as `--checksum` takes it: 7 to 40 (or 64) hex digits.
pub fn check_commit(commit: &str) -> Result<(), String> {
    if (7..=64).contains(&commit.len()) && commit.bytes().all(|b| b.is_ascii_hexdigit()) {
        Ok(())
    } else {
        Err(format!(
            "checksum `{commit}` is not a commit (7 to 40 hex digits)"
        ))
    }
}

/// Fetches `git` into `dir` (empty, made by the caller) and checks it out; the directory to
/// copy (`dir/repo`, or its subdirectory), without `.git` unless it is to be kept.
pub fn fetch(git: &GitSource, dir: &Path) -> Result<PathBuf, GitError> {
    let repo = dir.join("repo");
    std::fs::create_dir_all(&repo)?;
    let home = dir.join("home");
    std::fs::create_dir_all(&home)?;
    let run = |what: &str, args: &[&str]| -> Result<(), GitError> {
        let out = Command::new("git")
            .arg("-C")
            .arg(&repo)
            .args(args)
            .env("GIT_TERMINAL_PROMPT", "0")
            .env("GIT_CONFIG_NOSYSTEM", "1")
            .env("GIT_CONFIG_GLOBAL", "/dev/null")
            .env("GIT_SSH_COMMAND", "ssh -o BatchMode=yes")
            .env("HOME", &home)
            .env("LC_ALL", "C")
            .stdin(Stdio::null())
            .output()
            .map_err(|e| match e.kind() {
                std::io::ErrorKind::NotFound => GitError::NoGit,
                _ => GitError::Run(e),
            })?;
        if out.status.success() {
            Ok(())
        } else {
            Err(GitError::Failed {
                what: what.to_owned(),
                remote: git.remote.clone(),
                said: String::from_utf8_lossy(&out.stderr).trim().to_owned(),
            })
        }
    };
    run("init", &["init", "-q"])?;
    let wanted = git.reference.as_deref().unwrap_or("HEAD");
    let shallow = run(
        "fetch",
        &["fetch", "-q", "--depth", "1", &git.remote, wanted],
    );
    let fetched = match shallow {
        Ok(()) => Ok("FETCH_HEAD"),
        // The dumb HTTP transport has no shallow fetches: the whole ref.
        Err(GitError::Failed { .. }) => {
            match run("fetch", &["fetch", "-q", &git.remote, wanted]) {
                Ok(()) => Ok("FETCH_HEAD"),
                // A commit the server does not hand out by itself: every branch and tag, then
                // the commit among them.
                Err(e) if check_commit(wanted).is_ok() => run(
                    "fetch",
                    &[
                        "fetch",
                        "-q",
                        &git.remote,
                        "+refs/heads/*:refs/remotes/origin/*",
                        "+refs/tags/*:refs/tags/*",
                    ],
                )
                .map(|()| wanted)
                .map_err(|_| e),
                Err(e) => Err(e),
            }
        }
        Err(e) => Err(e),
    }?;
    run(
        "checkout",
        &["-c", "advice.detachedHead=false", "checkout", "-q", fetched],
    )?;
    let head = Command::new("git")
        .arg("-C")
        .arg(&repo)
        .args(["rev-parse", "HEAD"])
        .env("GIT_CONFIG_NOSYSTEM", "1")
        .env("GIT_CONFIG_GLOBAL", "/dev/null")
        .env("HOME", &home)
        .stdin(Stdio::null())
        .output()
        .map_err(GitError::Run)?;
    let head = String::from_utf8_lossy(&head.stdout).trim().to_owned();
    if let Some(wanted) = &git.commit
        && !head.starts_with(&wanted.to_ascii_lowercase())
    {
        return Err(GitError::Commit {
            remote: git.remote.clone(),
            got: head,
            wanted: wanted.clone(),
        });
    }
    if !git.keep_git_dir.unwrap_or(false) {
        std::fs::remove_dir_all(repo.join(".git"))?;
    }
    match &git.subdir {
        None => Ok(repo),
        Some(subdir) => {
            let tree = repo.join(subdir);
            // Inside the repository, and a directory (not a link out of it).
            let inside = tree
                .canonicalize()
                .ok()
                .zip(repo.canonicalize().ok())
                .is_some_and(|(tree, repo)| tree.starts_with(repo) && tree.is_dir());
            if inside {
                Ok(tree)
            } else {
                Err(GitError::NoSubdir {
                    remote: git.remote.clone(),
                    subdir: subdir.clone(),
                })
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn git(source: &str) -> GitSource {
        parse(source).unwrap().unwrap()
    }

    #[test]
    fn repositories_are_told_from_files_as_buildkit_tells_them() {
        for not_git in [
            "https://example.com/file.tar.gz",
            "http://example.com/repo",
            "src/app.git",
            "./x",
            "file:///tmp/repo.git",
            "user@host",
        ] {
            assert_eq!(parse(not_git), None, "{not_git}");
        }
        let g = git("https://github.com/moby/buildkit.git#v0.10.1:frontend/dockerfile");
        assert_eq!(g.remote, "https://github.com/moby/buildkit.git");
        assert_eq!(g.reference.as_deref(), Some("v0.10.1"));
        assert_eq!(g.subdir.as_deref(), Some("frontend/dockerfile"));
        let g = git("git@github.com:moby/buildkit.git#main");
        assert_eq!(g.remote, "git@github.com:moby/buildkit.git");
        assert_eq!(g.reference.as_deref(), Some("main"));
        let g = git("git://127.0.0.1:9418/repo.git?tag=v1&subdir=sub&keep-git-dir");
        assert_eq!(
            (g.reference.as_deref(), g.subdir.as_deref(), g.keep_git_dir),
            (Some("v1"), Some("sub"), Some(true))
        );
        assert_eq!(git("ssh://git@host/repo.git").reference, None);
        let g = git("https://host/repo.git?checksum=0123456789abcdef");
        assert_eq!(g.commit.as_deref(), Some("0123456789abcdef"));
    }

    #[test]
    fn wrong_refs_and_queries_say_what_is_wrong() {
        let why = |s: &str| parse(s).unwrap().unwrap_err();
        assert!(why("https://h/r.git?ref=v2#v1").contains("ref conflicts: `v1` and `v2`"));
        assert!(why("https://h/r.git?ref=a&branch=b").contains("ref conflicts: `a` and `b`"));
        assert!(why("https://h/r.git?submodules=false").contains("`submodules` is not supported"));
        assert!(why("https://h/r.git#main:../etc").contains("relative path inside"));
        assert!(why("https://h/r.git#main:/etc").contains("relative path inside"));
        assert!(why("https://h/r.git?checksum=xyz").contains("is not a commit"));
        assert!(why("https://h/r.git?subdir=").contains("needs a value"));
    }
}
