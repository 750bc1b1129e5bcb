//! `berthctl vm serial NAME` (also `vm console`): the VM's serial console on this terminal.
//!
//! What the guest writes arrives as `VmSerial` events; what is typed goes back as
//! `VmSerialInput` requests. On a terminal, input is raw (every key as it is pressed, Ctrl+C to
//! the guest) and Ctrl+] detaches, as in `virsh console`. From a pipe, input is forwarded until
//! its end and the output followed until the VM stops, so scripts can drive a guest.

use std::io::{IsTerminal, Read, Write};

use berth_api::client::Client;
use berth_api::event::Event;

use crate::Failure;

/// Ctrl+]: the byte a terminal sends for it.
const ESCAPE: u8 = 0x1d;

/// The terminal's settings, restored when dropped.
struct RawTerminal(nix::sys::termios::Termios);

impl RawTerminal {
    fn enter() -> Option<RawTerminal> {
        use nix::sys::termios::{SetArg, cfmakeraw, tcgetattr, tcsetattr};
        let stdin = std::io::stdin();
        let saved = tcgetattr(&stdin).ok()?;
        let mut raw = saved.clone();
        cfmakeraw(&mut raw);
        tcsetattr(&stdin, SetArg::TCSANOW, &raw).ok()?;
        Some(RawTerminal(saved))
    }
}

impl Drop for RawTerminal {
    fn drop(&mut self) {
        let _ = nix::sys::termios::tcsetattr(
            std::io::stdin(),
            nix::sys::termios::SetArg::TCSANOW,
            &self.0,
        );
    }
}

/// What the stdin thread hands over.
enum Input {
    Bytes(Vec<u8>),
    Detach,
    End,
}

pub async fn attach(
    client: &Client,
    events: &mut berth_api::Events,
    name: &str,
) -> Result<(), Failure> {
    client.subscribe().await?;
    let vm = client.vm_show(name).await?;
    if !vm.state.is_active() {
        return Err(Failure::Failed(format!(
            "VM `{name}` is {}: start it first (berthctl vm start {name})",
            vm.state
        )));
    }
    let terminal = std::io::stdin().is_terminal();
    let _raw = if terminal {
        eprint!("Connected to VM `{name}`; Ctrl+] detaches.\r\n");
        RawTerminal::enter()
    } else {
        None
    };

    let (input_tx, mut input) = tokio::sync::mpsc::channel::<Input>(16);
    // Detached: a blocking read of stdin cannot be cancelled; the process ends under it.
    let _ = std::thread::Builder::new()
        .name("serial-in".into())
        .spawn(move || {
            let mut stdin = std::io::stdin().lock();
            let mut buf = [0u8; 1024];
            loop {
                let message = match stdin.read(&mut buf) {
                    Ok(0) | Err(_) => Input::End,
                    Ok(n) if terminal => match buf[..n].iter().position(|b| *b == ESCAPE) {
                        Some(0) => Input::Detach,
                        Some(at) => Input::Bytes(buf[..at].to_vec()),
                        None => Input::Bytes(buf[..n].to_vec()),
                    },
                    Ok(n) => Input::Bytes(buf[..n].to_vec()),
                };
                let last = !matches!(message, Input::Bytes(_));
                if input_tx.blocking_send(message).is_err() || last {
                    return;
                }
            }
        });

    let mut stdout = std::io::stdout();
    let mut input_open = true;
    loop {
        tokio::select! {
            message = input.recv(), if input_open => match message {
                Some(Input::Bytes(data)) => {
                    client.vm_serial_input(name, data).await?;
                }
                Some(Input::Detach) => {
                    eprint!("\r\nDetached from VM `{name}`.\r\n");
                    return Ok(());
                }
                Some(Input::End) | None => input_open = false,
            },
            event = events.next() => match event {
                Some(Event::VmSerial { name: vm, data }) if vm == name => {
                    let _ = stdout.write_all(&data);
                    let _ = stdout.flush();
                }
                Some(Event::VmState { name: vm, state }) if vm == name && !state.is_active() => {
                    let _ = stdout.flush();
                    eprint!("{}VM `{name}` is {state}.{}", if terminal { "\r\n" } else { "" }, if terminal { "\r\n" } else { "\n" });
                    return Ok(());
                }
                Some(_) => {}
                None => return Err(Failure::Failed("berthd closed the connection".into())),
            },
        }
    }
}
