//! What the boot-config parsers produce, and the path helpers they share.

use crate::IsoError;

/// Reads a file of the image by absolute path: `Ok(None)` when there is no such file.
pub type Reader<'a> = dyn FnMut(&str) -> Result<Option<String>, IsoError> + 'a;

/// A Linux entry of a boot menu, paths absolute inside the image.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MenuEntry {
    pub title: String,
    pub kernel: String,
    pub initrds: Vec<String>,
    pub cmdline: String,
    /// The config file it was read from.
    pub source: String,
}

/// The Linux entries of one boot loader's configuration, in menu order.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Menu {
    pub entries: Vec<MenuEntry>,
    /// Index into `entries` of the configured default, when the config names one.
    pub default: Option<usize>,
    pub warnings: Vec<String>,
}

/// The directory part of an absolute path (`/isolinux/isolinux.cfg` → `/isolinux`).
pub fn parent(path: &str) -> String {
    match path.rfind('/') {
        Some(0) | None => "/".to_owned(),
        Some(i) => path[..i].to_owned(),
    }
}

/// `path` made absolute against `base`, with `.` and empty components removed.
pub fn join(base: &str, path: &str) -> String {
    let full = if path.starts_with('/') {
        path.to_owned()
    } else {
        format!("{base}/{path}")
    };
    let parts: Vec<&str> = full
        .split('/')
        .filter(|p| !p.is_empty() && *p != ".")
        .collect();
    format!("/{}", parts.join("/"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths() {
        assert_eq!(parent("/isolinux/isolinux.cfg"), "/isolinux");
        assert_eq!(parent("/grub.cfg"), "/");
        assert_eq!(join("/isolinux", "menu.cfg"), "/isolinux/menu.cfg");
        assert_eq!(join("/", "./a//b"), "/a/b");
        assert_eq!(
            join("/isolinux", "/install.amd/vmlinuz"),
            "/install.amd/vmlinuz"
        );
    }
}
