//! Where the window saves screenshots: the user's pictures folder, as xdg-user-dirs names it
//! (`XDG_PICTURES_DIR` in `$XDG_CONFIG_HOME/user-dirs.dirs`), where GNOME's and KDE's
//! screenshot tools save theirs.

use std::path::{Path, PathBuf};

/// The user's pictures folder if it exists, else the home folder (else the current one).
pub fn pictures_dir() -> PathBuf {
    let home = std::env::var_os("HOME").map(PathBuf::from);
    let config = std::env::var_os("XDG_CONFIG_HOME")
        .map(PathBuf::from)
        .or_else(|| home.as_ref().map(|h| h.join(".config")));
    let named = config
        .and_then(|c| std::fs::read_to_string(c.join("user-dirs.dirs")).ok())
        .and_then(|dirs| pictures_in(&dirs, home.as_deref()));
    let default = home.as_ref().map(|h| h.join("Pictures"));
    named
        .into_iter()
        .chain(default)
        .find(|dir| dir.is_dir())
        .or(home)
        .unwrap_or_else(|| PathBuf::from("."))
}

/// `XDG_PICTURES_DIR` as a `user-dirs.dirs` file sets it (`"$HOME/…"` or an absolute path).
fn pictures_in(dirs: &str, home: Option<&Path>) -> Option<PathBuf> {
    let value = dirs
        .lines()
        .find_map(|line| line.trim().strip_prefix("XDG_PICTURES_DIR="))?;
    let value = value.trim().trim_matches('"');
    match value.strip_prefix("$HOME") {
        Some(rest) => Some(home?.join(rest.trim_start_matches('/'))),
        None if value.starts_with('/') => Some(PathBuf::from(value)),
        None => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_pictures_folder_is_read_as_xdg_user_dirs_writes_it() {
        let dirs = "# written by xdg-user-dirs-update\nXDG_DESKTOP_DIR=\"$HOME/Desktop\"\n\
                    XDG_PICTURES_DIR=\"$HOME/Bilder\"\n";
        assert_eq!(
            pictures_in(dirs, Some(Path::new("/home/ann"))),
            Some(PathBuf::from("/home/ann/Bilder"))
        );
        assert_eq!(
            pictures_in("XDG_PICTURES_DIR=\"/srv/shots\"", None),
            Some(PathBuf::from("/srv/shots"))
        );
        assert_eq!(pictures_in("XDG_MUSIC_DIR=\"$HOME/Music\"", None), None);
    }
}
