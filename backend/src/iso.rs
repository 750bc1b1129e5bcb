//! ISO images on behalf of a peer: `iso inspect`, and the check `vm create --iso` makes before
//! anything is created. The image is named by the peer, so it is checked as readable by them
//! (`access.rs`) before berthd, which may run as root, opens it.

use std::path::Path;

use berth_api::error::{ApiError, ErrorKind};
use berth_api::iso::IsoInfo;
use berth_api::vm::BootFrom;
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

/// Refuse an ISO the firmware cannot start from the CD drive: one without an El Torito boot
/// image for a PC BIOS (a UEFI-only image, or none at all).
pub fn check_firmware_bootable(path: &Path) -> Result<(), ApiError> {
    let info = berth_iso::inspect(path).map_err(|e| iso_error(path, e))?;
    if info.firmware_bootable() {
        return Ok(());
    }
    let why = info.unbootable.unwrap_or_else(|| {
        "it has no default El Torito boot image for a PC BIOS, the VM's firmware".to_owned()
    });
    Err(ApiError::invalid(format!(
        "{} cannot start through the firmware: {why}",
        path.display()
    )))
}

/// How a VM given the ISO at `path` starts when the user does not say: its Linux kernel
/// directly when Berth reads one on it (an installer starts in seconds), else through the
/// firmware when the image has a boot image for a PC BIOS. An image that is neither is refused
/// later, by the check of the way chosen, with the reason.
pub fn default_boot_from(path: &Path) -> BootFrom {
    match berth_iso::inspect(path) {
        Ok(info) if info.firmware_only() => BootFrom::Iso,
        _ => BootFrom::Kernel,
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
