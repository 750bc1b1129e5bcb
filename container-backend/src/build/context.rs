//! The build context: the directory a build may read, minus what `.dockerignore` excludes, as
//! BuildKit sends it: an ignored path is not there for any COPY or ADD, named or inside a
//! copied directory (`COPY . .`), unless an exception brings it back; the Dockerfile and the
//! ignore file are ordinary files of the context.
//!
//! Paths a COPY names are resolved inside the context as if it were the root: `..` stops at the
//! top and a symlink is followed within it (an absolute target is relative to the context), so
//! nothing outside can be reached. Symlinks inside a copied directory are copied as symlinks.

use std::fs;
use std::io::Read;
use std::path::{Component, Path, PathBuf};

use sha2::{Digest, Sha256};

use super::ignore::IgnoreRules;

/// Match `text` against a COPY source pattern (Go's `filepath.Match`, as BuildKit resolves
/// wildcards): `*` any run within a path component, `?` one character, `[...]` a class (`^`
/// negates), `\` escaping; `**` is two stars, not a recursive match.
pub fn glob_match(pattern: &str, text: &str) -> bool {
    fn go(p: &[char], t: &[char]) -> bool {
        match p.first() {
            None => t.is_empty(),
            Some('*') => (0..=t.len())
                .take_while(|&i| i == 0 || t[i - 1] != '/')
                .any(|i| go(&p[1..], &t[i..])),
            Some('?') => t.first().is_some_and(|c| *c != '/') && go(&p[1..], &t[1..]),
            Some('[') => {
                let Some(end) = p.iter().skip(2).position(|c| *c == ']').map(|i| i + 2) else {
                    return false;
                };
                let Some(c) = t.first().filter(|c| **c != '/') else {
                    return false;
                };
                let class = &p[1..end];
                let (negate, class) = match class.first() {
                    Some('^') => (true, &class[1..]),
                    _ => (false, class),
                };
                let mut hit = false;
                let mut i = 0;
                while i < class.len() {
                    if i + 2 < class.len() && class[i + 1] == '-' {
                        hit |= class[i] <= *c && *c <= class[i + 2];
                        i += 3;
                    } else {
                        hit |= class[i] == *c;
                        i += 1;
                    }
                }
                hit != negate && go(&p[end + 1..], &t[1..])
            }
            Some('\\') if p.len() > 1 => t.first() == Some(&p[1]) && go(&p[2..], &t[1..]),
            Some(c) => t.first() == Some(c) && go(&p[1..], &t[1..]),
        }
    }
    go(
        &pattern.chars().collect::<Vec<_>>(),
        &text.chars().collect::<Vec<_>>(),
    )
}

/// Whether a COPY source is a pattern.
pub fn has_wildcard(source: &str) -> bool {
    source.contains(['*', '?', '['])
}

/// Lexically clean a relative path; None if it climbs out with `..`.
pub fn clean_relative(path: &str) -> Option<PathBuf> {
    let mut out = PathBuf::new();
    for part in Path::new(path).components() {
        match part {
            Component::Normal(p) => out.push(p),
            Component::ParentDir if !out.pop() => return None,
            _ => {}
        }
    }
    Some(out)
}

/// The symlinks followed before a path is given up as a loop (the kernel's limit).
const MAX_LINKS: usize = 40;

/// `path` resolved under `root` as if `root` were `/`: `..` stops at the top, symlinks are
/// followed (an absolute target from `root`), the last component's too when `follow_last`.
/// The result is relative to `root`; components that do not exist are kept as written.
pub fn resolve_in_root(root: &Path, path: &Path, follow_last: bool) -> Result<PathBuf, String> {
    let mut resolved = PathBuf::new();
    let mut pending: Vec<std::ffi::OsString> = path
        .components()
        .rev()
        .filter_map(|c| match c {
            Component::Normal(p) => Some(p.to_owned()),
            Component::ParentDir => Some("..".into()),
            _ => None,
        })
        .collect();
    let mut links = 0;
    while let Some(part) = pending.pop() {
        if part == ".." {
            resolved.pop();
            continue;
        }
        let candidate = resolved.join(&part);
        let is_last = pending.is_empty();
        let link = fs::symlink_metadata(root.join(&candidate))
            .is_ok_and(|m| m.file_type().is_symlink())
            && (follow_last || !is_last);
        if !link {
            resolved = candidate;
            continue;
        }
        links += 1;
        if links > MAX_LINKS {
            return Err(format!("`{}`: too many levels of symlinks", path.display()));
        }
        let target = fs::read_link(root.join(&candidate))
            .map_err(|e| format!("`{}`: {e}", candidate.display()))?;
        if target.is_absolute() {
            resolved = PathBuf::new();
        }
        for c in target.components().rev() {
            match c {
                Component::Normal(p) => pending.push(p.to_owned()),
                Component::ParentDir => pending.push("..".into()),
                _ => {}
            }
        }
    }
    Ok(resolved)
}

/// A source a COPY names: where its content is (symlinks followed) and the name it is copied
/// under (the name as written, a link's own name).
#[derive(Debug, Clone, PartialEq)]
pub struct Source {
    pub path: PathBuf,
    pub name: std::ffi::OsString,
}

/// What one `COPY --parents` argument copies from one pivot directory: the pivot, and each
/// source with its place below the destination.
pub type ParentsGroup = (PathBuf, Vec<(Source, PathBuf)>);

/// Whether path components match a pattern's: `**` stands for any number of components,
/// others match one each as [`glob_match`] does.
fn components_match(pattern: &[String], path: &[String]) -> bool {
    match pattern.split_first() {
        None => path.is_empty(),
        Some((first, rest)) if first == "**" => {
            (0..=path.len()).any(|skip| components_match(rest, &path[skip..]))
        }
        Some((first, rest)) => path
            .split_first()
            .is_some_and(|(p, others)| glob_match(first, p) && components_match(rest, others)),
    }
}

/// A build context.
pub struct Context {
    root: PathBuf,
    ignore: IgnoreRules,
}

/// A path's `/`-separated text, as ignore rules match it.
fn slash(rel: &Path) -> String {
    rel.to_string_lossy().into_owned()
}

impl Context {
    /// The context at `root`, with the ignore file next to `dockerfile` (`NAME.dockerignore`
    /// for a Dockerfile named NAME) when there is one, or else `root/.dockerignore`.
    pub fn open(root: &Path, dockerfile: Option<&Path>) -> Result<Context, String> {
        let root = root
            .canonicalize()
            .map_err(|e| format!("the build context {}: {e}", root.display()))?;
        if !root.is_dir() {
            return Err(format!(
                "the build context {} is not a directory",
                root.display()
            ));
        }
        let own = dockerfile.and_then(|d| {
            let mut name = d.file_name()?.to_owned();
            name.push(".dockerignore");
            Some(d.with_file_name(name))
        });
        let file = own
            .filter(|f| f.is_file())
            .unwrap_or_else(|| root.join(".dockerignore"));
        let ignore = match fs::read_to_string(&file) {
            Ok(text) => IgnoreRules::parse(&text),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => IgnoreRules::default(),
            Err(e) => return Err(format!("cannot read {}: {e}", file.display())),
        };
        Ok(Context { root, ignore })
    }

    /// A tree copied from as it is, nothing ignored: an earlier stage's root for
    /// `COPY --from`.
    pub fn of_tree(root: &Path) -> Context {
        Context {
            root: root.to_path_buf(),
            ignore: IgnoreRules::default(),
        }
    }

    pub fn root(&self) -> &Path {
        &self.root
    }

    /// Whether ignore rules leave anything out (then the directory on disk is not what a build
    /// sees of it).
    pub fn filters(&self) -> bool {
        !self.ignore.is_empty()
    }

    /// Whether `.dockerignore` excludes this path (relative to the context). The context's
    /// root itself is never excluded.
    pub fn ignored(&self, rel: &Path) -> bool {
        !rel.as_os_str().is_empty() && self.ignore.ignored(&slash(rel))
    }

    /// Whether a path is in the context as a build sees it: not ignored, or a directory an
    /// exception brings something back from.
    fn present(&self, rel: &Path) -> bool {
        if fs::symlink_metadata(self.root.join(rel)).is_err() {
            return false;
        }
        !self.ignored(rel) || !self.entries(rel).is_empty()
    }

    /// The sources one COPY/ADD argument names. A pattern may match nothing (the builder
    /// decides whether that is an error); a path must exist in the context.
    pub fn resolve(&self, source: &str) -> Result<Vec<Source>, String> {
        let rel = clean_relative(source.trim_start_matches('/'))
            .ok_or_else(|| format!("`{source}` is outside the build context"))?;
        let named: Vec<PathBuf> = if has_wildcard(source) {
            let pattern = slash(&rel);
            let depth = rel.components().count();
            // Only the directory above the first component with a wildcard is walked.
            let base: PathBuf = rel
                .components()
                .take_while(|c| !has_wildcard(&c.as_os_str().to_string_lossy()))
                .take(depth.saturating_sub(1))
                .collect();
            let mut found = Vec::new();
            let mut below = Vec::new();
            // No deeper than the pattern reaches: `COPY *.txt` does not walk the whole context.
            self.walk(&base, depth, &mut Vec::new(), &mut below);
            for entry in below {
                if entry.components().count() == depth && glob_match(&pattern, &slash(&entry)) {
                    found.push(entry);
                }
            }
            found
        } else if self.present(&rel) {
            vec![rel]
        } else {
            return Err(format!(
                "`{source}` is not in the build context (or .dockerignore excludes it)"
            ));
        };
        named
            .into_iter()
            .map(|rel| {
                let path = resolve_in_root(&self.root, &rel, true)?;
                if !self.present(&path) {
                    return Err(format!(
                        "`{}` is a symlink to `{}`, which is not in the build context",
                        rel.display(),
                        path.display()
                    ));
                }
                let name = rel.file_name().map(ToOwned::to_owned).unwrap_or_default();
                Ok(Source { path, name })
            })
            .collect()
    }

    /// The sources one `COPY --parents` argument names, each with where it goes below the
    /// destination: its path below the argument's pivot (what precedes a `/./` in it, itself
    /// a path or a pattern; the context's root without one), parents and all, as BuildKit
    /// copies them. The pattern may hold `**` for any number of directories; a pattern may
    /// match nothing, a path must exist. One group per pivot directory.
    pub fn resolve_parents(&self, source: &str) -> Result<Vec<ParentsGroup>, String> {
        let (pivot, rest) = source.split_once("/./").unwrap_or(("", source));
        let outside = || format!("`{source}` is outside the build context");
        let below = clean_relative(rest.trim_start_matches('/')).ok_or_else(outside)?;
        let bases: Vec<PathBuf> = if has_wildcard(pivot) {
            self.resolve(pivot)?
                .into_iter()
                .filter(|s| fs::metadata(self.root.join(&s.path)).is_ok_and(|m| m.is_dir()))
                .map(|s| s.path)
                .collect()
        } else {
            vec![clean_relative(pivot.trim_start_matches('/')).ok_or_else(outside)?]
        };
        let mut groups = Vec::new();
        for base in bases {
            let full = base.join(&below);
            let matched: Vec<PathBuf> = if has_wildcard(rest) {
                let pattern: Vec<String> = full
                    .components()
                    .map(|c| c.as_os_str().to_string_lossy().into_owned())
                    .collect();
                let mut matched: Vec<PathBuf> = Vec::new();
                // Walked from the pattern's last directory without a wildcard, not the root.
                let start: PathBuf = base.join(
                    below
                        .components()
                        .take_while(|c| !has_wildcard(&c.as_os_str().to_string_lossy()))
                        .take(below.components().count().saturating_sub(1))
                        .collect::<PathBuf>(),
                );
                for entry in self.entries(&start) {
                    let parts: Vec<String> = entry
                        .components()
                        .map(|c| c.as_os_str().to_string_lossy().into_owned())
                        .collect();
                    // What a matched directory holds comes with it.
                    if components_match(&pattern, &parts)
                        && !matched.iter().any(|m| entry.starts_with(m))
                    {
                        matched.push(entry);
                    }
                }
                matched
            } else if self.present(&full) {
                vec![full]
            } else if has_wildcard(pivot) {
                Vec::new()
            } else {
                return Err(format!(
                    "`{source}` is not in the build context (or .dockerignore excludes it)"
                ));
            };
            let sources = matched
                .into_iter()
                .map(|rel| {
                    let path = resolve_in_root(&self.root, &rel, true)?;
                    let name = rel.file_name().map(ToOwned::to_owned).unwrap_or_default();
                    let place = rel.strip_prefix(&base).unwrap_or(&rel).to_path_buf();
                    Ok((Source { path, name }, place))
                })
                .collect::<Result<_, String>>()?;
            groups.push((base, sources));
        }
        Ok(groups)
    }

    /// Every path below the directory `rel` that a build sees, parents before children, in
    /// name order: ignored paths left out, and an ignored directory walked only when an
    /// exception may bring back something inside it (then it is listed before what it holds,
    /// as BuildKit sends the parents of what it sends).
    pub fn entries(&self, rel: &Path) -> Vec<PathBuf> {
        let mut out = Vec::new();
        self.walk(rel, usize::MAX, &mut Vec::new(), &mut out);
        out
    }

    /// [`Context::entries`] down to paths of `depth` components.
    fn walk(&self, rel: &Path, depth: usize, held: &mut Vec<PathBuf>, out: &mut Vec<PathBuf>) {
        if rel.components().count() >= depth {
            return;
        }
        let Ok(entries) = fs::read_dir(self.root.join(rel)) else {
            return;
        };
        let mut names: Vec<_> = entries.flatten().map(|e| e.file_name()).collect();
        names.sort();
        for name in names {
            let child = rel.join(name);
            let is_dir = fs::symlink_metadata(self.root.join(&child)).is_ok_and(|m| m.is_dir());
            if self.ignored(&child) {
                if is_dir && self.ignore.may_include_below(&slash(&child)) {
                    // Listed only if something below it is.
                    held.push(child.clone());
                    self.walk(&child, depth, held, out);
                    if held.last() == Some(&child) {
                        held.pop();
                    }
                }
                continue;
            }
            out.append(held);
            out.push(child.clone());
            if is_dir {
                self.walk(&child, depth, held, out);
            }
        }
    }

    /// A digest of the sources' names, modes, link targets and contents: the cache key part
    /// that makes a COPY rebuild when a copied file changes.
    pub fn digest(&self, sources: &[Source]) -> String {
        use std::os::unix::fs::MetadataExt;
        let mut hasher = Sha256::new();
        let add = |hasher: &mut Sha256, p: &Path| {
            let full = self.root.join(p);
            let Ok(meta) = fs::symlink_metadata(&full) else {
                return;
            };
            hasher.update(p.to_string_lossy().as_bytes());
            hasher.update([0]);
            hasher.update(meta.mode().to_le_bytes());
            if meta.file_type().is_symlink() {
                hasher.update(
                    fs::read_link(&full)
                        .map(|t| t.to_string_lossy().into_owned())
                        .unwrap_or_default(),
                );
            } else if meta.is_file()
                && let Ok(mut f) = fs::File::open(&full)
            {
                let mut buf = [0u8; 65536];
                while let Ok(n) = f.read(&mut buf) {
                    if n == 0 {
                        break;
                    }
                    hasher.update(&buf[..n]);
                }
            }
        };
        for s in sources {
            hasher.update(s.name.to_string_lossy().as_bytes());
            add(&mut hasher, &s.path);
            for entry in self.entries(&s.path) {
                add(&mut hasher, &entry);
            }
        }
        super::super::image::layer::hex(&hasher.finalize())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn globs() {
        assert!(glob_match("*.c", "main.c"));
        assert!(!glob_match("*.c", "src/main.c"));
        assert!(glob_match("src/?ain.[a-c]", "src/main.c"));
        assert!(!glob_match("src/[^m]ain.c", "src/main.c"));
        assert!(glob_match("target", "target"));
        assert!(glob_match("a\\*", "a*"));
    }

    fn paths(list: &[Source]) -> Vec<&Path> {
        list.iter().map(|s| s.path.as_path()).collect()
    }

    #[test]
    fn sources_stay_inside_and_dockerignore_applies() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().join("ctx");
        fs::create_dir_all(root.join("src")).unwrap();
        fs::create_dir_all(root.join("vendor/keep")).unwrap();
        fs::write(root.join("src/a.c"), "a").unwrap();
        fs::write(root.join("src/b.log"), "b").unwrap();
        fs::write(root.join("keep.log"), "k").unwrap();
        fs::write(root.join("vendor/x"), "x").unwrap();
        fs::write(root.join("vendor/keep/y"), "y").unwrap();
        fs::write(
            root.join(".dockerignore"),
            "**/*.log\n!keep.log\nvendor\n!vendor/keep\n",
        )
        .unwrap();
        fs::write(dir.path().join("secret"), "s").unwrap();
        std::os::unix::fs::symlink("../secret", root.join("link")).unwrap();
        std::os::unix::fs::symlink("src/a.c", root.join("inside")).unwrap();
        let ctx = Context::open(&root, None).unwrap();
        assert_eq!(
            paths(&ctx.resolve("src/*.c").unwrap()),
            [Path::new("src/a.c")]
        );
        assert!(
            ctx.resolve("src/b.log")
                .unwrap_err()
                .contains(".dockerignore")
        );
        assert_eq!(
            paths(&ctx.resolve("keep.log").unwrap()),
            [Path::new("keep.log")]
        );
        assert!(ctx.resolve("nothing*").unwrap().is_empty());
        assert!(
            ctx.resolve("../secret")
                .unwrap_err()
                .contains("outside the build context")
        );
        // A link is followed within the context: `../secret` is `/secret` there, absent.
        assert!(
            ctx.resolve("link")
                .unwrap_err()
                .contains("not in the build context")
        );
        let inside = ctx.resolve("inside").unwrap();
        assert_eq!(inside[0].path, Path::new("src/a.c"));
        assert_eq!(inside[0].name, "inside");
        let all: Vec<PathBuf> = ctx.entries(Path::new(""));
        let all: Vec<&str> = all.iter().map(|p| p.to_str().unwrap()).collect();
        assert_eq!(
            all,
            [
                ".dockerignore",
                "inside",
                "keep.log",
                "link",
                "src",
                "src/a.c",
                "vendor",
                "vendor/keep",
                "vendor/keep/y"
            ],
            "ignored files are not walked into the copy; an exception brings back its parents"
        );
        assert_eq!(
            paths(&ctx.resolve("vendor").unwrap()),
            [Path::new("vendor")]
        );
        let d1 = ctx.digest(&ctx.resolve("src").unwrap());
        fs::write(root.join("src/b.log"), "an ignored file changed").unwrap();
        assert_eq!(d1, ctx.digest(&ctx.resolve("src").unwrap()));
        fs::write(root.join("src/a.c"), "changed").unwrap();
        assert_ne!(d1, ctx.digest(&ctx.resolve("src").unwrap()));
    }

    #[test]
    fn a_dockerfile_s_own_ignore_file_wins() {
        let dir = tempfile::tempdir().unwrap();
        fs::write(dir.path().join(".dockerignore"), "a\n").unwrap();
        fs::write(dir.path().join("app.Dockerfile.dockerignore"), "b\n").unwrap();
        fs::write(dir.path().join("app.Dockerfile"), "FROM scratch\n").unwrap();
        let ctx = Context::open(dir.path(), Some(&dir.path().join("app.Dockerfile"))).unwrap();
        assert!(!ctx.ignored(Path::new("a")));
        assert!(ctx.ignored(Path::new("b")));
        let plain = Context::open(dir.path(), Some(&dir.path().join("Dockerfile"))).unwrap();
        assert!(plain.ignored(Path::new("a")));
    }

    #[test]
    fn paths_resolve_within_a_root() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        fs::create_dir_all(root.join("real/dir")).unwrap();
        std::os::unix::fs::symlink("/real", root.join("abs")).unwrap();
        std::os::unix::fs::symlink("../../../real/dir", root.join("real/up")).unwrap();
        std::os::unix::fs::symlink("loop", root.join("loop")).unwrap();
        let r = |p: &str, last| resolve_in_root(root, Path::new(p), last);
        assert_eq!(r("abs/dir/new", true).unwrap(), Path::new("real/dir/new"));
        assert_eq!(r("real/up", true).unwrap(), Path::new("real/dir"));
        assert_eq!(r("real/up", false).unwrap(), Path::new("real/up"));
        assert_eq!(r("../../abs", true).unwrap(), Path::new("real"));
        assert!(r("loop", true).unwrap_err().contains("too many levels"));
    }
}
