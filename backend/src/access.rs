//! Path checks made on behalf of a peer. The daemon runs as root and could read anything; a
//! request may only name files its sender could read itself.

use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

use crate::auth::Peer;

const READ: u32 = 4;
const WRITE: u32 = 2;
const EXEC: u32 = 1;

/// Whether `peer` has permission `want` (rwx bits, 0..=7) on a file with this metadata, by the
/// owner/group/other bits. Root has every permission but executing files with no x bit, which
/// does not matter here.
fn permits(meta: &std::fs::Metadata, peer: &Peer, want: u32) -> bool {
    if peer.uid == 0 {
        return true;
    }
    let mode = meta.mode();
    let bits = if meta.uid() == peer.uid {
        mode >> 6
    } else if peer.groups.contains(&meta.gid()) {
        mode >> 3
    } else {
        mode
    } & 7;
    bits & want == want
}

/// Check that `path` names an existing regular file that `peer` may read, and return its
/// canonical form (so later use cannot be redirected by a changed symlink in a relative path).
/// `what` names the file in messages, e.g. "kernel".
pub fn readable_file(path: &Path, peer: &Peer, what: &str) -> Result<PathBuf, String> {
    reachable(path, peer, what, Kind::File)
}

/// Check that `path` names a Unix socket `peer` may connect to (an SSH agent for a build:
/// connecting needs write permission on the socket); its canonical form.
pub fn connectable_socket(path: &Path, peer: &Peer, what: &str) -> Result<PathBuf, String> {
    reachable(path, peer, what, Kind::Socket)
}

/// Check that `path` names a directory `peer` may read and enter (a build context): the files
/// inside are then read under the context's own rules.
pub fn readable_dir(path: &Path, peer: &Peer, what: &str) -> Result<PathBuf, String> {
    reachable(path, peer, what, Kind::Directory)
}

/// Check that `path` names a file or directory `peer` may read, and write unless `read_only`,
/// to be mounted into a container (`run -v`); its canonical form. Root in the container may
/// then change anything under it, as under Docker; the check keeps a peer from reaching what
/// it could not reach itself.
pub fn mountable(path: &Path, peer: &Peer, read_only: bool) -> Result<PathBuf, String> {
    let kind = if path.is_dir() {
        Kind::Directory
    } else {
        Kind::File
    };
    let canonical = reachable(path, peer, "volume source", kind)?;
    let meta = std::fs::metadata(&canonical).map_err(|e| format!("{}: {e}", path.display()))?;
    if !read_only && !permits(&meta, peer, WRITE) {
        return Err(format!(
            "the volume source {} is not writable by uid {}; mount it read-only (`:ro`)",
            path.display(),
            peer.uid
        ));
    }
    Ok(canonical)
}

/// What a checked path must be.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    /// A regular file, read.
    File,
    /// A directory, read and entered.
    Directory,
    /// A Unix socket, connected to.
    Socket,
}

fn reachable(path: &Path, peer: &Peer, what: &str, kind: Kind) -> Result<PathBuf, String> {
    use std::os::unix::fs::FileTypeExt;
    let directory = kind == Kind::Directory;
    let shown = path.display();
    if !path.is_absolute() {
        return Err(format!("the {what} path {shown} is not absolute"));
    }
    let canonical = path
        .canonicalize()
        .map_err(|e| format!("the {what} {shown} does not exist or cannot be reached ({e})"))?;
    let meta = std::fs::metadata(&canonical).map_err(|e| format!("the {what} {shown}: {e}"))?;
    if directory && !meta.is_dir() {
        return Err(format!("the {what} {shown} is not a directory"));
    }
    if kind == Kind::File && !meta.is_file() {
        return Err(format!("the {what} {shown} is not a regular file"));
    }
    if kind == Kind::Socket && !meta.file_type().is_socket() {
        return Err(format!("the {what} {shown} is not a socket"));
    }
    // Every directory on the way (and a directory itself) must be searchable by the peer, as
    // the kernel would check.
    for dir in canonical.ancestors().skip(usize::from(!directory)) {
        let dir_meta = std::fs::metadata(dir).map_err(|e| format!("{}: {e}", dir.display()))?;
        if !permits(&dir_meta, peer, EXEC) {
            return Err(format!(
                "the {what} {shown} is not readable by uid {}: no permission to enter {}",
                peer.uid,
                dir.display()
            ));
        }
    }
    if kind == Kind::Socket && !permits(&meta, peer, WRITE) {
        return Err(format!(
            "the {what} {shown} is not open to uid {}",
            peer.uid
        ));
    }
    if kind != Kind::Socket && !permits(&meta, peer, READ) {
        return Err(format!(
            "the {what} {shown} is not readable by uid {}",
            peer.uid
        ));
    }
    Ok(canonical)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    fn nobody() -> Peer {
        Peer {
            uid: 65534,
            gid: 65534,
            pid: None,
            groups: vec![65534],
            user_name: None,
        }
    }

    #[test]
    fn an_agent_socket_is_one_the_peer_may_connect_to() {
        use std::os::unix::net::UnixListener;
        let dir = tempfile::tempdir().unwrap();
        std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
        let socket = dir.path().join("agent.sock");
        let _listener = UnixListener::bind(&socket).unwrap();
        std::fs::set_permissions(&socket, std::fs::Permissions::from_mode(0o700)).unwrap();
        let root = Peer::from_credentials(0, 0, None);
        assert!(connectable_socket(&socket, &root, "ssh agent `default`").is_ok());
        let err = connectable_socket(&socket, &nobody(), "ssh agent `default`").unwrap_err();
        assert!(err.contains("not open to uid 65534"), "{err}");
        std::fs::set_permissions(&socket, std::fs::Permissions::from_mode(0o777)).unwrap();
        assert!(connectable_socket(&socket, &nobody(), "ssh agent").is_ok());
        let file = dir.path().join("id_ed25519");
        std::fs::write(&file, b"key").unwrap();
        let err = connectable_socket(&file, &root, "ssh agent `default`").unwrap_err();
        assert!(err.contains("is not a socket"), "{err}");
    }

    #[test]
    fn checks_existence_type_and_permission() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
        let file = dir.path().join("kernel");
        std::fs::write(&file, b"x").unwrap();
        let root = Peer::from_credentials(0, 0, None);

        std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o644)).unwrap();
        assert_eq!(
            readable_file(&file, &nobody(), "kernel").unwrap(),
            file.canonicalize().unwrap()
        );

        std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o600)).unwrap();
        let err = readable_file(&file, &nobody(), "kernel").unwrap_err();
        assert!(err.contains("not readable by uid 65534"), "{err}");
        assert!(readable_file(&file, &root, "kernel").is_ok());

        let err = readable_file(dir.path(), &root, "kernel").unwrap_err();
        assert!(err.contains("not a regular file"), "{err}");
        let err = readable_file(&dir.path().join("missing"), &root, "initrd").unwrap_err();
        assert!(
            err.contains("initrd") && err.contains("does not exist"),
            "{err}"
        );
        let err = readable_file(Path::new("relative/k"), &root, "kernel").unwrap_err();
        assert!(err.contains("not absolute"), "{err}");
    }

    #[test]
    fn a_volume_source_must_be_the_peer_s_to_write_unless_read_only() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
        let shared = dir.path().join("shared");
        std::fs::create_dir(&shared).unwrap();
        std::fs::set_permissions(&shared, std::fs::Permissions::from_mode(0o755)).unwrap();
        // Root's directory, readable by all: nobody may mount it read-only only.
        assert!(mountable(&shared, &nobody(), true).is_ok());
        let err = mountable(&shared, &nobody(), false).unwrap_err();
        assert!(
            err.contains("not writable by uid 65534") && err.contains(":ro"),
            "{err}"
        );
        std::fs::set_permissions(&shared, std::fs::Permissions::from_mode(0o700)).unwrap();
        assert!(mountable(&shared, &nobody(), true).is_err());
        // A file works too; a missing path does not.
        let file = dir.path().join("f");
        std::fs::write(&file, b"x").unwrap();
        std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o644)).unwrap();
        assert_eq!(
            mountable(&file, &nobody(), true).unwrap(),
            file.canonicalize().unwrap()
        );
        assert!(mountable(&dir.path().join("missing"), &nobody(), true).is_err());
    }

    #[test]
    fn a_closed_directory_on_the_way_refuses() {
        let dir = tempfile::tempdir().unwrap();
        let inner = dir.path().join("private");
        std::fs::create_dir(&inner).unwrap();
        std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
        std::fs::set_permissions(&inner, std::fs::Permissions::from_mode(0o700)).unwrap();
        let file = inner.join("k");
        std::fs::write(&file, b"x").unwrap();
        std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o644)).unwrap();
        let err = readable_file(&file, &nobody(), "kernel").unwrap_err();
        assert!(err.contains("no permission to enter"), "{err}");
    }
}
