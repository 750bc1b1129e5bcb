//! berth-generate OUT_DIR: writes what the package installs from Berth's own definitions, so
//! none of it is a second copy to keep in step by hand:
//!
//! - `OUT_DIR/man/`: a man page per binary and per berthctl subcommand (clap_mangen, from each
//!   binary's clap command line), and berth-vmm's, written by hand (`packaging/man/`; its own
//!   parser is berthd's contract with the VMM), checked against its usage line and exit codes
//!   and given the version;
//! - `OUT_DIR/completions/{bash,zsh,fish}/`: shell completions (clap_complete), named as each
//!   shell's vendor directory wants them.

use std::path::{Path, PathBuf};

use anyhow::{Context, bail};
use clap::{Command, CommandFactory};
use clap_complete::Shell;

/// The binaries with a clap command line.
fn commands() -> Vec<Command> {
    vec![
        berth::args::Args::command(),
        berthctl::args::Cli::command(),
        berthd::args::Args::command(),
        berth_console::args::Args::command(),
    ]
}

/// berth-vmm's hand-written page, with `@VERSION@` for the version.
const BERTH_VMM_PAGE: &str = include_str!("../../man/berth-vmm.1");

fn main() -> anyhow::Result<()> {
    let mut args = std::env::args_os().skip(1);
    let (Some(out), None) = (args.next(), args.next()) else {
        bail!("usage: berth-generate OUT_DIR");
    };
    let out = PathBuf::from(out);
    let man = out.join("man");
    create(&man)?;
    for command in commands() {
        clap_mangen::generate_to(command.clone(), &man)
            .with_context(|| format!("man pages of {}", command.get_name()))?;
        completions(command, &out.join("completions"))?;
    }
    let page = berth_vmm_page()?;
    std::fs::write(man.join("berth-vmm.1"), page).context("berth-vmm.1")?;
    Ok(())
}

fn create(dir: &Path) -> anyhow::Result<()> {
    std::fs::create_dir_all(dir).with_context(|| format!("create {}", dir.display()))
}

/// `command`'s completions for bash, zsh and fish, each in the file name its vendor
/// directory looks up (`berthctl`, `_berthctl`, `berthctl.fish`).
fn completions(mut command: Command, out: &Path) -> anyhow::Result<()> {
    let name = command.get_name().to_owned();
    for (shell, file) in [
        (Shell::Bash, name.clone()),
        (Shell::Zsh, format!("_{name}")),
        (Shell::Fish, format!("{name}.fish")),
    ] {
        let dir = out.join(shell.to_string());
        create(&dir)?;
        let mut script = Vec::new();
        clap_complete::generate(shell, &mut command, &name, &mut script);
        std::fs::write(dir.join(&file), script)
            .with_context(|| format!("{shell} completions of {name}"))?;
    }
    Ok(())
}

/// berth-vmm's page with its version, once it names exactly the options of berth-vmm's usage
/// line and every exit code berth-vmm has.
fn berth_vmm_page() -> anyhow::Result<String> {
    let usage = options(berth_vmm_api::launch::USAGE);
    let page = options(&BERTH_VMM_PAGE.replace("\\-", "-"));
    let missing: Vec<_> = usage.iter().filter(|o| !page.contains(o)).collect();
    let extra: Vec<_> = page
        .iter()
        .filter(|o| !usage.contains(o) && o.as_str() != "--help")
        .collect();
    if !missing.is_empty() || !extra.is_empty() {
        bail!(
            "packaging/man/berth-vmm.1 is out of step with berth-vmm's usage: \
             missing {missing:?}, not berth-vmm's {extra:?}"
        );
    }
    for exit in berth_vmm_api::exit::VmmExit::ALL {
        if !BERTH_VMM_PAGE.contains(&format!(".TP\n.B {}\n", exit.code())) {
            bail!(
                "packaging/man/berth-vmm.1 does not say what exit status {} ({exit:?}) means",
                exit.code()
            );
        }
    }
    Ok(BERTH_VMM_PAGE.replace("@VERSION@", env!("CARGO_PKG_VERSION")))
}

/// The long options a text names, sorted and once each.
fn options(text: &str) -> Vec<String> {
    let mut options: Vec<String> = text
        .match_indices("--")
        .map(|(at, _)| {
            let name: String = text[at + 2..]
                .chars()
                .take_while(|c| c.is_ascii_lowercase() || *c == '-')
                .collect();
            format!("--{name}")
        })
        .filter(|o| o.len() > 3)
        .collect();
    options.sort();
    options.dedup();
    options
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn berth_vmms_page_agrees_with_its_usage_and_exit_codes() {
        let page = berth_vmm_page().expect("in step");
        assert!(page.contains(&format!("berth-vmm {}", env!("CARGO_PKG_VERSION"))));
        assert!(!page.contains("@VERSION@"));
    }

    #[test]
    fn options_are_read_from_usage_and_roff_alike() {
        assert_eq!(
            options("usage: x {--kernel B [--boot-disk N]} [--disk F]... --kernel"),
            ["--boot-disk", "--disk", "--kernel"]
        );
    }

    /// The `ListenStream=` of a socket unit.
    fn listens_on(unit: &str) -> Option<&str> {
        unit.lines().find_map(|l| l.strip_prefix("ListenStream="))
    }

    #[test]
    fn the_socket_units_listen_where_clients_look() {
        use berth_api::paths::{SYSTEM_SOCKET, USER_SOCKET_IN_RUNTIME_DIR};
        let system = include_str!("../../systemd/system/berthd.socket");
        assert_eq!(listens_on(system), Some(SYSTEM_SOCKET));
        // systemd's %t is the user's runtime dir, $XDG_RUNTIME_DIR.
        let user = include_str!("../../systemd/user/berthd.socket");
        assert_eq!(
            listens_on(user),
            Some(format!("%t/{USER_SOCKET_IN_RUNTIME_DIR}").as_str())
        );
    }

    #[test]
    fn every_command_line_is_a_valid_clap_command() {
        for command in commands() {
            command.debug_assert();
        }
    }
}
