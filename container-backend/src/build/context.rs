//! The build context: the directory a build may read, minus what `.dockerignore` excludes.
//! Nothing outside it can be reached: sources with `..` that climb out, and symlinks that point
//! out, are errors.

use std::fs;
use std::io::Read;
use std::path::{Component, Path, PathBuf};

use sha2::{Digest, Sha256};

/// Match `text` against a Docker/Go-style pattern: `*` any run within a path component, `?` one
/// character, `**` any number of components, `[...]` a class.
pub fn glob_match(pattern: &str, text: &str) -> bool {
    fn go(p: &[char], t: &[char]) -> bool {
        match p.first() {
            None => t.is_empty(),
            Some('*') if p.get(1) == Some(&'*') => {
                let rest = if p.get(2) == Some(&'/') {
                    &p[3..]
                } else {
                    &p[2..]
                };
                (0..=t.len()).any(|i| (i == 0 || t[i - 1] == '/') && go(rest, &t[i..]))
                    || go(rest, t)
            }
            Some('*') => (0..=t.len())
                .take_while(|&i| i == 0 || t[i - 1] != '/')
                .any(|i| go(&p[1..], &t[i..])),
            Some('?') => t.first().is_some_and(|c| *c != '/') && go(&p[1..], &t[1..]),
            Some('[') => {
                let Some(end) = p.iter().position(|c| *c == ']') else {
                    return false;
                };
                let Some(c) = t.first() else { return false };
                let class = &p[1..end];
                let (negate, class) = match class.first() {
                    Some('!' | '^') => (true, &class[1..]),
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

/// A build context.
pub struct Context {
    root: PathBuf,
    /// `.dockerignore` rules in order: (pattern, excludes). Later rules win.
    ignore: Vec<(String, bool)>,
}

impl Context {
    pub fn open(root: &Path) -> Result<Context, String> {
        let root = root
            .canonicalize()
            .map_err(|e| format!("the build context {}: {e}", root.display()))?;
        if !root.is_dir() {
            return Err(format!(
                "the build context {} is not a directory",
                root.display()
            ));
        }
        let mut ignore = Vec::new();
        if let Ok(text) = fs::read_to_string(root.join(".dockerignore")) {
            for line in text
                .lines()
                .map(str::trim)
                .filter(|l| !l.is_empty() && !l.starts_with('#'))
            {
                let (pattern, excludes) = match line.strip_prefix('!') {
                    Some(p) => (p.trim(), false),
                    None => (line, true),
                };
                if let Some(clean) = clean_relative(pattern) {
                    ignore.push((clean.to_string_lossy().into_owned(), excludes));
                }
            }
        }
        Ok(Context { root, ignore })
    }

    pub fn root(&self) -> &Path {
        &self.root
    }

    /// Whether `.dockerignore` excludes this path (relative to the context), or a directory
    /// above it.
    pub fn ignored(&self, rel: &Path) -> bool {
        let text = rel.to_string_lossy();
        let mut excluded = false;
        for (pattern, excludes) in &self.ignore {
            let hit = rel
                .ancestors()
                .filter(|a| !a.as_os_str().is_empty())
                .any(|a| glob_match(pattern, &a.to_string_lossy()))
                || glob_match(pattern, &text);
            if hit {
                excluded = *excludes;
            }
        }
        excluded
    }

    /// The context paths a COPY/ADD source names (globs expanded), checked to stay inside.
    pub fn resolve(&self, source: &str) -> Result<Vec<PathBuf>, String> {
        let rel = clean_relative(source.trim_start_matches('/'))
            .ok_or_else(|| format!("`{source}` is outside the build context"))?;
        let pattern = rel.to_string_lossy().into_owned();
        let matches: Vec<PathBuf> = if pattern.contains(['*', '?', '[']) {
            let mut found = Vec::new();
            self.walk(Path::new(""), &mut |p| {
                if glob_match(&pattern, &p.to_string_lossy()) {
                    found.push(p.to_path_buf());
                }
            });
            found.sort();
            found
        } else if fs::symlink_metadata(self.root.join(&rel)).is_ok() && !self.ignored(&rel) {
            vec![rel]
        } else {
            vec![]
        };
        if matches.is_empty() {
            return Err(format!(
                "`{source}` is not in the build context (or .dockerignore excludes it)"
            ));
        }
        for m in &matches {
            self.check_inside(m)?;
        }
        Ok(matches)
    }

    /// A path and, for directories, everything below: none may resolve outside the context.
    fn check_inside(&self, rel: &Path) -> Result<(), String> {
        let full = self.root.join(rel);
        let resolved = full
            .canonicalize()
            .map_err(|e| format!("`{}`: {e}", rel.display()))?;
        if !resolved.starts_with(&self.root) {
            return Err(format!(
                "`{}` is a symlink that points outside the build context",
                rel.display()
            ));
        }
        if resolved.is_dir() {
            let mut problem = None;
            self.walk(rel, &mut |p| {
                let meta = fs::symlink_metadata(self.root.join(p));
                if problem.is_none() && meta.is_ok_and(|m| m.file_type().is_symlink()) {
                    let target = self.root.join(p).canonicalize();
                    if !target.is_ok_and(|t| t.starts_with(&self.root)) {
                        problem = Some(format!(
                            "`{}` is a symlink that points outside the build context",
                            p.display()
                        ));
                    }
                }
            });
            if let Some(p) = problem {
                return Err(p);
            }
        }
        Ok(())
    }

    /// Every non-ignored path below `rel` (relative to the root), depth first, sorted.
    pub fn walk(&self, rel: &Path, visit: &mut dyn FnMut(&Path)) {
        let Ok(entries) = fs::read_dir(self.root.join(rel)) else {
            return;
        };
        let mut names: Vec<_> = entries.flatten().map(|e| e.file_name()).collect();
        names.sort();
        for name in names {
            let child = rel.join(name);
            if self.ignored(&child) {
                continue;
            }
            visit(&child);
            if fs::symlink_metadata(self.root.join(&child)).is_ok_and(|m| m.is_dir()) {
                self.walk(&child, visit);
            }
        }
    }

    /// A digest of the sources' names, modes, link targets and contents: the cache key part
    /// that makes a COPY rebuild when a copied file changes.
    pub fn digest(&self, sources: &[PathBuf]) -> String {
        use std::os::unix::fs::MetadataExt;
        let mut hasher = Sha256::new();
        let mut add = |p: &Path| {
            let full = self.root.join(p);
            let Ok(meta) = fs::symlink_metadata(&full) else {
                return;
            };
            hasher.update(p.to_string_lossy().as_bytes());
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
            add(s);
            self.walk(s, &mut add);
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
        assert!(glob_match("**/*.c", "src/deep/main.c"));
        assert!(glob_match("**/*.c", "main.c"));
        assert!(glob_match("src/?ain.[a-c]", "src/main.c"));
        assert!(!glob_match("src/[!m]ain.c", "src/main.c"));
        assert!(glob_match("target", "target"));
    }

    #[test]
    fn sources_stay_inside_and_dockerignore_applies() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().join("ctx");
        fs::create_dir_all(root.join("src")).unwrap();
        fs::write(root.join("src/a.c"), "a").unwrap();
        fs::write(root.join("src/b.log"), "b").unwrap();
        fs::write(root.join("keep.log"), "k").unwrap();
        fs::write(root.join(".dockerignore"), "**/*.log\n!keep.log\n").unwrap();
        fs::write(dir.path().join("secret"), "s").unwrap();
        std::os::unix::fs::symlink("../secret", root.join("link")).unwrap();
        let ctx = Context::open(&root).unwrap();
        assert_eq!(
            ctx.resolve("src/*.c").unwrap(),
            vec![PathBuf::from("src/a.c")]
        );
        assert!(
            ctx.resolve("src/b.log")
                .unwrap_err()
                .contains(".dockerignore")
        );
        assert_eq!(
            ctx.resolve("keep.log").unwrap(),
            vec![PathBuf::from("keep.log")]
        );
        assert!(
            ctx.resolve("../secret")
                .unwrap_err()
                .contains("outside the build context")
        );
        assert!(ctx.resolve("link").unwrap_err().contains("points outside"));
        let err = ctx.resolve(".").unwrap_err();
        assert!(
            err.contains("points outside"),
            "a directory holding an escaping link: {err}"
        );
        let d1 = ctx.digest(&[PathBuf::from("src")]);
        fs::write(root.join("src/a.c"), "changed").unwrap();
        assert_ne!(d1, ctx.digest(&[PathBuf::from("src")]));
    }
}
