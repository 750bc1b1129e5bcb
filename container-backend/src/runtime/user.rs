//! The image's `USER` (`name`, `uid`, `name:group`, `uid:gid`) resolved against the container's
//! own /etc/passwd and /etc/group, as Docker does: numeric ids need no entry, names must exist.

use std::path::Path;

/// A resolved user.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct User {
    pub uid: u32,
    pub gid: u32,
    /// Supplementary groups from /etc/group.
    pub groups: Vec<u32>,
    /// The home directory from /etc/passwd, for `HOME`; `/` when unknown.
    pub home: String,
}

/// A file of the container's, its symlinks resolved inside `root` (a container's
/// `/etc/passwd -> /host/file` names its own file, never the daemon's).
impl User {
    /// The supplementary groups the process can be given: those the daemon's user namespace
    /// maps; `None` where groups cannot be set at all (a rootless daemon with one id), so the
    /// process keeps the ones it has.
    pub fn settable_groups(&self) -> Option<Vec<u32>> {
        super::ids::setgroups_allowed().then(|| {
            self.groups
                .iter()
                .copied()
                .filter(|g| super::ids::gid_mapped(*g))
                .collect()
        })
    }
}

fn read(root: &Path, file: &str) -> String {
    crate::build::context::resolve_in_root(root, Path::new(file), true)
        .and_then(|inside| std::fs::read_to_string(root.join(inside)).map_err(|e| e.to_string()))
        .unwrap_or_default()
}

/// Resolve `spec` against the files under `root` (the image's root filesystem).
pub fn resolve(spec: &str, root: &Path) -> Result<User, String> {
    let passwd = read(root, "etc/passwd");
    let group = read(root, "etc/group");
    let (user_part, group_part) = match spec.split_once(':') {
        Some((u, g)) => (u, Some(g)),
        None => (spec, None),
    };
    let user_part = if user_part.is_empty() { "0" } else { user_part };
    // passwd lines: name:x:uid:gid:gecos:home:shell
    let entry = passwd
        .lines()
        .map(|l| l.split(':').collect::<Vec<_>>())
        .find(|f| {
            f.len() >= 7
                && (f[0] == user_part || (user_part.parse::<u32>().is_ok() && f[2] == user_part))
        });
    let (name, uid, primary_gid, home) = match (&entry, user_part.parse::<u32>()) {
        (Some(f), _) => (
            Some(f[0].to_owned()),
            f[2].parse()
                .map_err(|_| format!("/etc/passwd has a bad uid for `{}`", f[0]))?,
            f[3].parse()
                .map_err(|_| format!("/etc/passwd has a bad gid for `{}`", f[0]))?,
            f[5].to_owned(),
        ),
        (None, Ok(uid)) => (None, uid, 0, "/".to_owned()),
        (None, Err(_)) => {
            return Err(format!(
                "user `{user_part}` is not in the image's /etc/passwd"
            ));
        }
    };
    let groups_lines: Vec<Vec<&str>> = group
        .lines()
        .map(|l| l.split(':').collect())
        .filter(|f: &Vec<&str>| f.len() >= 4)
        .collect();
    let gid = match group_part {
        None | Some("") => primary_gid,
        Some(g) => match g.parse::<u32>() {
            Ok(gid) => gid,
            Err(_) => groups_lines
                .iter()
                .find(|f| f[0] == g)
                .and_then(|f| f[2].parse().ok())
                .ok_or_else(|| format!("group `{g}` is not in the image's /etc/group"))?,
        },
    };
    let mut groups = vec![gid];
    // `user:group` runs with exactly that group, as Docker runs it; a user alone gets the
    // groups /etc/group lists it in.
    if let (Some(name), None | Some("")) = (&name, group_part) {
        for f in &groups_lines {
            if f[3].split(',').any(|m| m == name)
                && let Ok(g) = f[2].parse()
                && !groups.contains(&g)
            {
                groups.push(g);
            }
        }
    }
    Ok(User {
        uid,
        gid,
        groups,
        home: if home.is_empty() { "/".into() } else { home },
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn root() -> tempfile::TempDir {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir(dir.path().join("etc")).unwrap();
        std::fs::write(
            dir.path().join("etc/passwd"),
            "root:x:0:0:root:/root:/bin/sh\napp:x:1000:1000::/home/app:/bin/sh\n",
        )
        .unwrap();
        std::fs::write(
            dir.path().join("etc/group"),
            "root:x:0:\napp:x:1000:\nwheel:x:10:app\n",
        )
        .unwrap();
        dir
    }

    #[test]
    fn names_and_numbers() {
        let r = root();
        assert_eq!(
            resolve("", r.path()).unwrap(),
            User {
                uid: 0,
                gid: 0,
                groups: vec![0],
                home: "/root".into()
            }
        );
        let app = resolve("app", r.path()).unwrap();
        assert_eq!(
            (app.uid, app.gid, app.groups.clone(), app.home.as_str()),
            (1000, 1000, vec![1000, 10], "/home/app")
        );
        let exact = resolve("app:app", r.path()).unwrap();
        assert_eq!(
            (exact.gid, exact.groups),
            (1000, vec![1000]),
            "a group given is the only group, as Docker runs `USER app:app`"
        );
        assert_eq!(resolve("app:wheel", r.path()).unwrap().groups, [10]);
        assert_eq!(
            resolve("4242:4343", r.path()).unwrap(),
            User {
                uid: 4242,
                gid: 4343,
                groups: vec![4343],
                home: "/".into()
            }
        );
        assert!(
            resolve("ghost", r.path())
                .unwrap_err()
                .contains("not in the image's /etc/passwd")
        );
        assert!(
            resolve("app:nogroup", r.path())
                .unwrap_err()
                .contains("/etc/group")
        );
    }
}
