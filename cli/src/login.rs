//! `berthctl login` and `logout`, and the user's logins sent with requests that may reach a
//! registry (`berth_api::registry_login` says why the client sends them).

use std::io::{BufRead, IsTerminal, Write};

use berth_api::auth_file::AuthFiles;
use berth_api::client::Client;
use berth_api::registry_login::{DOCKER_HUB, RegistryLogin, normalise_scope};

use crate::Failure;

/// The user's logins, from the files their container tools keep them in.
pub fn logins() -> Result<Vec<RegistryLogin>, Failure> {
    AuthFiles::from_env()
        .logins()
        .map_err(|e| Failure::Failed(format!("cannot read your registry logins: {e}")))
}

/// `login`: asks for what the command line did not give, has berthd check it with the
/// registry, then keeps it where podman and skopeo look for it.
pub async fn login(
    client: &Client,
    registry: Option<&str>,
    username: Option<String>,
    password: Option<String>,
    password_stdin: bool,
) -> Result<(), Failure> {
    let scope = normalise_scope(registry.unwrap_or(DOCKER_HUB)).map_err(Failure::Failed)?;
    let stdin = std::io::stdin();
    let username = match username {
        Some(u) => u,
        None if stdin.is_terminal() && !password_stdin => prompt("Username: ", true)?,
        None => {
            return Err(Failure::Failed(
                "give the user name with --username (there is no terminal to ask on)".into(),
            ));
        }
    };
    let password = match (password, password_stdin) {
        (Some(_), true) => {
            return Err(Failure::Failed(
                "--password and --password-stdin: give one".into(),
            ));
        }
        (Some(p), false) => {
            eprintln!(
                "berthctl: a password on the command line is seen by every user of this machine; use --password-stdin"
            );
            p
        }
        (None, true) => {
            let mut line = String::new();
            stdin
                .lock()
                .read_line(&mut line)
                .map_err(|e| Failure::Failed(format!("cannot read the password: {e}")))?;
            line.trim_end_matches(['\n', '\r']).to_owned()
        }
        (None, false) if stdin.is_terminal() => prompt("Password: ", false)?,
        (None, false) => {
            return Err(Failure::Failed(
                "give the password with --password-stdin (there is no terminal to ask on)".into(),
            ));
        }
    };
    if username.is_empty() || password.is_empty() {
        return Err(Failure::Failed(
            "a login needs a user name and a password".into(),
        ));
    }
    let login = RegistryLogin {
        scope,
        username,
        password,
    };
    client.login(login.clone()).await?;
    let file = AuthFiles::from_env()
        .store(&login)
        .map_err(|e| Failure::Failed(format!("the registry took the login, but {e}")))?;
    eprintln!("kept in {}", file.display());
    println!("Login Succeeded");
    Ok(())
}

/// `logout`: forgets the login for `registry` (or every one) in the file `login` writes.
/// Logins other tools keep elsewhere (Docker's `config.json`) are theirs to remove.
pub fn logout(registry: Option<&str>, all: bool) -> Result<(), Failure> {
    let files = AuthFiles::from_env();
    let failed = |e: berth_api::auth_file::AuthFileError| Failure::Failed(e.to_string());
    if all {
        let removed = files.remove(None).map_err(failed)?;
        println!("Removed {} login(s)", removed.len());
        return Ok(());
    }
    let scope = normalise_scope(registry.unwrap_or(DOCKER_HUB)).map_err(Failure::Failed)?;
    if !files.remove(Some(&scope)).map_err(failed)?.is_empty() {
        println!("Removed login for {scope}");
        return Ok(());
    }
    let elsewhere = files.read_order().into_iter().find(|path| {
        AuthFiles {
            explicit: Some(path.clone()),
            path: files.path.clone(),
            ..AuthFiles::default()
        }
        .logins()
        .is_ok_and(|l| l.iter().any(|l| l.scope == scope))
    });
    Err(Failure::Failed(match elsewhere {
        Some(path) => format!(
            "the login for {scope} is in {}, which another tool keeps (`docker logout {scope}` removes it)",
            path.display()
        ),
        None => format!("not logged in to {scope}"),
    }))
}

/// Asks on the terminal; `echo: false` hides what is typed (the terminal's echo off, restored
/// after).
fn prompt(question: &str, echo: bool) -> Result<String, Failure> {
    use nix::sys::termios::{LocalFlags, SetArg, tcgetattr, tcsetattr};
    let failed = |e: &dyn std::fmt::Display| Failure::Failed(format!("cannot ask: {e}"));
    eprint!("{question}");
    let _ = std::io::stderr().flush();
    let stdin = std::io::stdin();
    let saved = if echo {
        None
    } else {
        let saved = tcgetattr(&stdin).map_err(|e| failed(&e))?;
        let mut quiet = saved.clone();
        quiet.local_flags.remove(LocalFlags::ECHO);
        tcsetattr(&stdin, SetArg::TCSANOW, &quiet).map_err(|e| failed(&e))?;
        Some(saved)
    };
    let mut line = String::new();
    let read = stdin.lock().read_line(&mut line);
    if let Some(saved) = saved {
        let _ = tcsetattr(&stdin, SetArg::TCSANOW, &saved);
        eprintln!();
    }
    read.map_err(|e| failed(&e))?;
    Ok(line.trim_end_matches(['\n', '\r']).to_owned())
}
