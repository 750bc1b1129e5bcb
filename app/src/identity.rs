//! What the desktop knows Berth by: the application id of the window (X11 WM_CLASS, Wayland
//! app_id), the desktop entry, the icon and the AppStream metainfo in `assets/`, and the licence
//! the About dialog shows.

/// The reverse-DNS application id: `assets/dev.berth.Berth.desktop`'s name and
/// StartupWMClass, the icon's name, the metainfo's id.
pub const APP_ID: &str = "dev.berth.Berth";

/// The window's own version.
pub const VERSION: &str = env!("CARGO_PKG_VERSION");

/// The licence, as Cargo.toml states it (SPDX).
pub const LICENSE: &str = env!("CARGO_PKG_LICENSE");
