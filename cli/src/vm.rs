//! `berthctl vm …`: what each VM subcommand asks berthd, and what it prints.

use std::path::Path;

use berth_api::client::Client;
use berth_api::iso::Suggested;
use berth_api::vm::{VmEdit, VmSpec};

use crate::{Failure, Output, render, screenshot, serial};
use berthctl::args::{VmCommand, absolute};

pub async fn run(
    client: &Client,
    events: &mut berth_api::Events,
    out: &Output,
    command: VmCommand,
) -> Result<(), Failure> {
    match command {
        VmCommand::Create {
            name,
            resources,
            boot,
            display,
            network,
            forwards,
            overcommit,
        } => {
            // `vm create --iso` takes what the image suggests for what the user left out.
            let suggested = match &boot.iso {
                Some(iso) if !resources.complete() => {
                    Some(iso_suggestion(client, &absolute(iso)).await?)
                }
                _ => None,
            };
            let (cpus, memory, disk) = resources.resolve(suggested);
            let spec = VmSpec {
                name: name.clone(),
                cpus,
                memory,
                disk,
                boot: boot.source().map_err(Failure::Failed)?,
                boot_from: boot.boot_from,
                overcommit,
                network,
                forwards,
            };
            let mut vm = client.vm_create(spec).await?;
            // VmSpec has no display (the window builds specs too): the resolution is set by an
            // edit right after the create.
            if let Some(display) = display {
                let edit = VmEdit {
                    display: Some(display),
                    ..VmEdit::default()
                };
                vm = client.vm_edit(&name, edit).await?;
            }
            out.show(&vm, render::show_vm)
        }
        VmCommand::List => {
            let listing = client.vm_list().await?;
            for problem in &listing.problems {
                eprintln!("berthctl: warning: skipped an unreadable definition: {problem}");
            }
            out.show(&listing, |l| render::list_vms(&l.vms))
        }
        VmCommand::Show { name } => out.show(&client.vm_show(&name).await?, render::show_vm),
        VmCommand::Edit {
            name,
            cpus,
            memory,
            disk,
            boot,
            display,
            network,
            forwards,
            no_forwards,
            overcommit,
        } => {
            let edit = VmEdit {
                cpus,
                memory,
                disk,
                kernel: boot.kernel.as_deref().map(absolute),
                initrd: boot.initrd.as_deref().map(absolute),
                cmdline: boot.cmdline,
                iso: boot.iso.as_deref().map(absolute),
                entry: boot.entry,
                boot_from: boot.boot_from,
                eject: false,
                display,
                network,
                forwards: match (no_forwards, forwards.is_empty()) {
                    (true, _) => Some(Vec::new()),
                    (false, true) => None,
                    (false, false) => Some(forwards),
                },
                overcommit,
            };
            out.show(&client.vm_edit(&name, edit).await?, render::show_vm)
        }
        VmCommand::Eject { name } => {
            let edit = VmEdit {
                eject: true,
                ..VmEdit::default()
            };
            out.show(&client.vm_edit(&name, edit).await?, render::show_vm)
        }
        VmCommand::Delete { name } => Ok(client.vm_delete(&name).await?),
        VmCommand::Start { name } => out.show(&client.vm_start(&name).await?, render::show_vm),
        VmCommand::Stop {
            name,
            force,
            timeout,
        } => out.show(
            &client.vm_stop(&name, force, timeout).await?,
            render::show_vm,
        ),
        VmCommand::Pause { name } => out.show(&client.vm_pause(&name).await?, render::show_vm),
        VmCommand::Resume { name } => out.show(&client.vm_resume(&name).await?, render::show_vm),
        VmCommand::Serial { name } => serial::attach(client, events, &name).await,
        VmCommand::Log { name, lines } => out.show(&client.vm_log(&name, lines).await?, |lines| {
            render::lines(lines)
        }),
        VmCommand::Screenshot { name, file } => {
            let (width, height) = screenshot::screenshot(client, &name, &file).await?;
            if !out.json() {
                println!(
                    "{width}x{height} screen of {name} saved to {}",
                    file.display()
                );
            }
            Ok(())
        }
        VmCommand::Type { name, text } => Ok(client.vm_type(&name, &text).await?),
        VmCommand::Key { name, keys } => Ok(client.vm_key(&name, &keys).await?),
        VmCommand::DisplaySize { name, size } => Ok(client
            .vm_display_size(&name, size.width, size.height)
            .await?),
    }
}

/// What the ISO suggests, fitted to the host: at most its CPUs, half its memory and half the
/// free disk, so the suggestion never needs --overcommit.
async fn iso_suggestion(client: &Client, iso: &Path) -> Result<Suggested, Failure> {
    let info = client.iso_inspect(iso).await?;
    let host = client.host().await?;
    let s = info.suggested;
    Ok(Suggested {
        cpus: s.cpus.min(host.total.cpus as u32).max(1),
        memory: s.memory.min(host.total.memory / 2),
        disk: s.disk.min(host.disk_free / 2),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use berthctl::args::Resources;

    #[test]
    fn left_out_resources_come_from_the_suggestion_else_the_defaults() {
        let given = Resources {
            cpus: Some(3),
            memory: None,
            disk: None,
        };
        let suggested = Suggested {
            cpus: 2,
            memory: 4 << 30,
            disk: 20 << 30,
        };
        assert_eq!(given.resolve(Some(suggested)), (3, 4 << 30, 20 << 30));
        assert_eq!(given.resolve(None), (3, 1 << 30, 0));
        assert!(!given.complete());
    }
}
