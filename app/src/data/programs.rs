//! Where the window finds the programs it starts (berthd, berth-console, berthctl): the path
//! an environment variable names, else next to its own executable (a build or an install),
//! else on the PATH.

use std::path::PathBuf;

/// The program `name`, or the one `$override_env` names.
pub fn program(name: &str, override_env: Option<&str>) -> PathBuf {
    if let Some(path) = override_env.and_then(std::env::var_os) {
        return path.into();
    }
    std::env::current_exe()
        .ok()
        .and_then(|exe| exe.parent().map(|dir| dir.join(name)))
        .filter(|path| path.is_file())
        .unwrap_or_else(|| name.into())
}
