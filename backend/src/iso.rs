//! ISO images on behalf of a peer: `iso inspect`, and the check `vm create --iso` makes before
//! anything is created. The image is named by the peer, so it is checked as readable by them
//! (`access.rs`) before berthd, which may run as root, opens it.

use std::path::Path;

use berth_api::error::{ApiError, ErrorKind};
use berth_api::iso::IsoInfo;
use berth_iso::IsoError;

use crate::access::readable_file;
use crate::auth::Peer;

/// An ISO error as the API reports it: the file's fault is the request's fault.
fn iso_error(path: &Path, e: IsoError) -> ApiError {
    let kind = match e {
        IsoError::Io { .. } => ErrorKind::Internal,
        _ => ErrorKind::InvalidRequest,
    };
    ApiError::new(kind, format!("{}: {e}", path.display()))
}

/// `iso inspect PATH` for `peer`.
pub fn inspect(path: &Path, peer: &Peer) -> Result<IsoInfo, ApiError> {
    let path = readable_file(path, peer, "ISO image").map_err(ApiError::invalid)?;
    berth_iso::inspect(&path).map_err(|e| iso_error(&path, e))
}

/// Refuse, before a VM is created or edited, an ISO (already checked readable and canonical)
/// berth could not boot: not an ISO, damaged, no Linux kernel, or no entry `entry`.
pub fn check_bootable(path: &Path, entry: Option<u32>) -> Result<(), ApiError> {
    let info = berth_iso::inspect(path).map_err(|e| iso_error(path, e))?;
    berth_iso::bootable(&info, entry)
        .map_err(|e| ApiError::invalid(format!("{} cannot boot in berth: {e}", path.display())))?;
    Ok(())
}

/// Refuse an ISO the firmware cannot boot from a disk: one without an MBR (a pure El Torito
/// image, which needs a CD drive; Berth has none yet). Debian's and most distributions' ISOs
/// are isohybrid: an MBR in front of the ISO 9660 filesystem.
pub fn check_disk_bootable(path: &Path) -> Result<(), ApiError> {
    match crate::machines::launch::has_boot_signature(path) {
        Ok(true) => Ok(()),
        Ok(false) => Err(ApiError::invalid(format!(
            "{} cannot boot from a disk: it has no MBR (it is not isohybrid, and Berth has no CD drive for a pure El Torito image yet)",
            path.display()
        ))),
        Err(e) => Err(ApiError::invalid(format!(
            "cannot read {}: {e}",
            path.display()
        ))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    #[test]
    fn a_peer_may_only_inspect_images_it_can_read() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
        let iso = dir.path().join("private.iso");
        std::fs::write(&iso, b"not an iso").unwrap();
        std::fs::set_permissions(&iso, std::fs::Permissions::from_mode(0o600)).unwrap();
        let nobody = Peer {
            uid: 65534,
            gid: 65534,
            pid: None,
            groups: vec![65534],
            user_name: None,
        };
        let err = inspect(&iso, &nobody).unwrap_err();
        assert!(err.message.contains("not readable by uid 65534"), "{err:?}");
        // Its owner gets as far as the contents.
        let owner = Peer::from_credentials(0, 0, None);
        let err = inspect(&iso, &owner).unwrap_err();
        assert_eq!(err.kind, ErrorKind::InvalidRequest);
        assert!(err.message.contains("not an ISO 9660 image"), "{err:?}");
        let err = check_bootable(&iso, None).unwrap_err();
        assert!(err.message.contains("not an ISO 9660 image"), "{err:?}");
    }
}
