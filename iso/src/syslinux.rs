//! isolinux/syslinux configuration: `DEFAULT`, `LABEL`, `MENU LABEL`, `MENU DEFAULT`,
//! `KERNEL`/`LINUX`, `INITRD`, `APPEND` (with `initrd=` inside it), a global `APPEND`, and
//! `INCLUDE`/`MENU INCLUDE`/`CONFIG` of further files.
//!
//! Relative paths are relative to the directory of the first config (isolinux's working
//! directory), not to the file that names them.

use crate::IsoError;
use crate::menu::{Menu, MenuEntry, Reader, join, parent};

/// Included files nested deeper than this are ignored with a warning (Debian nests three).
const MAX_NESTING: usize = 8;
/// Config files read at most (a menu has a dozen; a crafted one could name thousands).
const MAX_FILES: usize = 64;

#[derive(Default)]
struct Label {
    name: String,
    title: Option<String>,
    kernel: Option<String>,
    initrds: Vec<String>,
    append: Option<String>,
    menu_default: bool,
    source: String,
}

struct State {
    base: String,
    labels: Vec<Label>,
    default: Option<String>,
    /// `ONTIMEOUT`: what boots when nobody chooses, the default when there is no `DEFAULT`.
    on_timeout: Option<String>,
    global_append: Option<String>,
    seen: Vec<String>,
    warnings: Vec<String>,
    /// Configs named by `CONFIG` inside a label: read after the main config for their entries
    /// (Arch's menu is one), without letting their `DEFAULT` override the main one.
    label_configs: Vec<String>,
    /// Reading a label's config: its `DEFAULT` applies only if the main config had none.
    secondary: bool,
}

/// Parse the config at `path` (absolute inside the image) and everything it includes.
pub fn parse(path: &str, read: &mut Reader<'_>) -> Result<Menu, IsoError> {
    let mut state = State {
        base: parent(path),
        labels: Vec::new(),
        default: None,
        on_timeout: None,
        global_append: None,
        seen: Vec::new(),
        warnings: Vec::new(),
        label_configs: Vec::new(),
        secondary: false,
    };
    file(path, 0, read, &mut state)?;
    state.secondary = true;
    for config in std::mem::take(&mut state.label_configs) {
        file(&config, 1, read, &mut state)?;
    }
    let mut menu = Menu {
        entries: Vec::new(),
        default: None,
        warnings: state.warnings,
    };
    let by_default = state.default.as_deref().or(state.on_timeout.as_deref());
    for label in state.labels {
        let Some(kernel) = label.kernel else {
            continue;
        };
        let lower = kernel.to_ascii_lowercase();
        // COM32 modules (menus, chain loaders, hardware detection) and memtest are not Linux.
        if lower.ends_with(".c32") || lower.ends_with(".com") || lower.contains("memtest") {
            continue;
        }
        let append = label
            .append
            .or_else(|| state.global_append.clone())
            .unwrap_or_default();
        let mut initrds = label.initrds;
        let mut words = Vec::new();
        for word in append.split_whitespace() {
            match word.strip_prefix("initrd=") {
                Some(list) => {
                    initrds.extend(list.split(',').filter(|s| !s.is_empty()).map(str::to_owned))
                }
                None => words.push(word),
            }
        }
        let is_default =
            label.menu_default || by_default.is_some_and(|d| d.eq_ignore_ascii_case(&label.name));
        if is_default && menu.default.is_none() {
            menu.default = Some(menu.entries.len());
        }
        menu.entries.push(MenuEntry {
            title: label.title.unwrap_or_else(|| label.name.clone()),
            kernel: join(&state.base, &kernel),
            initrds: initrds.iter().map(|i| join(&state.base, i)).collect(),
            cmdline: words.join(" "),
            source: label.source,
        });
    }
    Ok(menu)
}

fn file(
    path: &str,
    depth: usize,
    read: &mut Reader<'_>,
    state: &mut State,
) -> Result<(), IsoError> {
    if depth > MAX_NESTING {
        state.warnings.push(format!(
            "{path}: included more than {MAX_NESTING} deep; not read"
        ));
        return Ok(());
    }
    if state.seen.len() >= MAX_FILES {
        state.warnings.push(format!(
            "{path}: more than {MAX_FILES} config files; not read"
        ));
        return Ok(());
    }
    if state.seen.iter().any(|s| s.eq_ignore_ascii_case(path)) {
        state.warnings.push(format!(
            "{path} is included more than once (a loop?); read once"
        ));
        return Ok(());
    }
    state.seen.push(path.to_owned());
    let Some(text) = read(path)? else {
        if depth > 0 {
            state
                .warnings
                .push(format!("{path} is included but missing"));
        }
        return Ok(());
    };
    let mut in_text = false;
    for line in text.lines() {
        let line = line.trim();
        // `TEXT HELP` … `ENDTEXT` is free text shown to the user, not commands.
        if in_text {
            in_text = !line.eq_ignore_ascii_case("endtext");
            continue;
        }
        if split_word(line).0.eq_ignore_ascii_case("text") {
            in_text = true;
            continue;
        }
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let (keyword, rest) = split_word(line);
        let keyword = keyword.to_ascii_lowercase();
        match keyword.as_str() {
            // `CONFIG` inside a LABEL runs only when that label is chosen (Debian's help
            // screens); at the top it switches to another config.
            "config" if !state.labels.is_empty() => {
                let (target, _) = split_word(rest);
                let target = join(&state.base, target);
                if !state.label_configs.contains(&target) {
                    state.label_configs.push(target);
                }
            }
            "include" | "config" => {
                let (target, _) = split_word(rest);
                let target = join(&state.base, target);
                file(&target, depth + 1, read, state)?;
            }
            "menu" => {
                let (sub, arg) = split_word(rest);
                match sub.to_ascii_lowercase().as_str() {
                    "include" => {
                        let (target, _) = split_word(arg);
                        let target = join(&state.base, target);
                        file(&target, depth + 1, read, state)?;
                    }
                    // A submenu's own title and end belong to no entry: an empty label with no
                    // kernel keeps them off the previous one.
                    "begin" | "end" => state.labels.push(Label::default()),
                    "label" => {
                        if let Some(label) = state.labels.last_mut() {
                            label.title = Some(arg.replace('^', ""));
                        }
                    }
                    "default" => {
                        if let Some(label) = state.labels.last_mut() {
                            label.menu_default = true;
                        }
                    }
                    _ => {}
                }
            }
            // `DEFAULT vesamenu.c32` picks the menu program, not an entry.
            "default" if state.secondary && state.default.is_some() => {}
            "default" if !rest.to_ascii_lowercase().ends_with(".c32") => {
                let (name, _) = split_word(rest);
                state.default = Some(name.to_owned());
            }
            "ontimeout" => {
                let (name, _) = split_word(rest);
                state.on_timeout = Some(name.to_owned());
            }
            "label" => state.labels.push(Label {
                name: rest.to_owned(),
                source: path.to_owned(),
                ..Label::default()
            }),
            "kernel" | "linux" => {
                if let Some(label) = state.labels.last_mut() {
                    let (kernel, extra) = split_word(rest);
                    label.kernel = Some(kernel.to_owned());
                    // `KERNEL file args` passes args as with APPEND.
                    if !extra.is_empty() && label.append.is_none() {
                        label.append = Some(extra.to_owned());
                    }
                }
            }
            "initrd" => {
                if let Some(label) = state.labels.last_mut() {
                    label.initrds = rest
                        .split(',')
                        .map(|s| s.trim().to_owned())
                        .filter(|s| !s.is_empty())
                        .collect();
                }
            }
            "append" => match state.labels.last_mut() {
                Some(label) => label.append = Some(rest.to_owned()),
                None => state.global_append = Some(rest.to_owned()),
            },
            _ => {}
        }
    }
    Ok(())
}

/// The first whitespace-separated word and the trimmed rest.
fn split_word(s: &str) -> (&str, &str) {
    let s = s.trim();
    match s.find(char::is_whitespace) {
        Some(i) => (&s[..i], s[i..].trim()),
        None => (s, ""),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn menu(files: &[(&str, &str)], main: &str) -> Menu {
        let files: HashMap<String, String> = files
            .iter()
            .map(|(p, t)| ((*p).to_owned(), (*t).to_owned()))
            .collect();
        let mut read = |p: &str| Ok(files.get(p).cloned());
        parse(main, &mut read).unwrap()
    }

    /// The shape of Debian 12's netinst menus: isolinux.cfg includes menu.cfg, which includes
    /// gtk.cfg (the default, by `menu default`), txt.cfg and a submenu file.
    #[test]
    fn debian_installer_menus_with_includes() {
        let m = menu(
            &[
                (
                    "/isolinux/isolinux.cfg",
                    "# D-I config version 2.0\n# search path for the c32 support libraries (libcom32, libutil etc.)\npath \ninclude menu.cfg\ndefault vesamenu.c32\nprompt 0\ntimeout 0\n",
                ),
                (
                    "/isolinux/menu.cfg",
                    "menu hshift 4\nmenu width 70\n\nmenu title Debian GNU/Linux installer menu (BIOS mode)\ninclude stdmenu.cfg\ninclude gtk.cfg\ninclude txt.cfg\nmenu begin advanced\n    menu label ^Advanced options\n\tmenu title Advanced options\n\tinclude stdmenu.cfg\n\tlabel mainmenu\n\t\tmenu label ^Back..\n\t\tmenu exit\n\tinclude adgtk.cfg\nmenu end\nlabel help\n\tmenu label ^Help\n\ttext help\n   Display help screens; type 'menu' at boot prompt to return to this menu\n\tendtext\n\tconfig prompt.cfg\n",
                ),
                (
                    "/isolinux/stdmenu.cfg",
                    "menu background splash.png\nmenu color title\t* #FFFFFFFF *\n",
                ),
                (
                    "/isolinux/gtk.cfg",
                    "default installgui\nlabel installgui\n\tmenu label ^Graphical install\n\tmenu default\n\tkernel /install.amd/vmlinuz\n\tappend vga=788 initrd=/install.amd/gtk/initrd.gz --- quiet \n",
                ),
                (
                    "/isolinux/txt.cfg",
                    "label install\n\tmenu label ^Install\n\tkernel /install.amd/vmlinuz\n\tappend vga=788 initrd=/install.amd/initrd.gz --- quiet \n",
                ),
                (
                    "/isolinux/adgtk.cfg",
                    "label expertgui\n\tmenu label Graphical e^xpert install\n\tkernel /install.amd/vmlinuz\n\tappend priority=low vga=788 initrd=/install.amd/gtk/initrd.gz --- \n",
                ),
                ("/isolinux/prompt.cfg", "prompt 1\ndefault install\n"),
            ],
            "/isolinux/isolinux.cfg",
        );
        let titles: Vec<&str> = m.entries.iter().map(|e| e.title.as_str()).collect();
        assert_eq!(
            titles,
            ["Graphical install", "Install", "Graphical expert install"]
        );
        assert_eq!(m.default, Some(0));
        let gui = &m.entries[0];
        assert_eq!(gui.kernel, "/install.amd/vmlinuz");
        assert_eq!(gui.initrds, ["/install.amd/gtk/initrd.gz"]);
        assert_eq!(gui.cmdline, "vga=788 --- quiet");
        assert_eq!(gui.source, "/isolinux/gtk.cfg");
        assert_eq!(m.entries[2].cmdline, "priority=low vga=788 ---");
    }

    #[test]
    fn default_label_initrd_keyword_relative_paths_and_global_append() {
        let m = menu(
            &[(
                "/boot/isolinux/isolinux.cfg",
                "APPEND console=ttyS0\nONTIMEOUT rescue\nDEFAULT live\nLABEL memtest\n  KERNEL memtest86+.bin\nLABEL rescue\n  LINUX vmlinuz\n  INITRD initrd.img,extra.img\nLABEL live\n  MENU LABEL Live ^system\n  LINUX /live/vmlinuz\n  APPEND boot=live initrd=/live/initrd.img quiet\nLABEL hd\n  LOCALBOOT 0\nLABEL menu\n  KERNEL vesamenu.c32\n",
            )],
            "/boot/isolinux/isolinux.cfg",
        );
        assert_eq!(m.entries.len(), 2);
        assert_eq!(m.default, Some(1));
        assert_eq!(m.entries[0].kernel, "/boot/isolinux/vmlinuz");
        assert_eq!(
            m.entries[0].initrds,
            ["/boot/isolinux/initrd.img", "/boot/isolinux/extra.img"]
        );
        assert_eq!(m.entries[0].cmdline, "console=ttyS0");
        assert_eq!(m.entries[1].title, "Live system");
        assert_eq!(m.entries[1].cmdline, "boot=live quiet");
    }

    /// Arch's syslinux.cfg picks a config per boot method with `CONFIG` inside labels; the
    /// chosen file includes the entries, whose help text must not be read as commands.
    #[test]
    fn arch_label_configs_and_help_text() {
        let m = menu(
            &[
                (
                    "/syslinux/syslinux.cfg",
                    "DEFAULT select\n\nLABEL select\nCOM32 whichsys.c32\nAPPEND -pxe- pxe -sys- sys -iso- sys\n\nLABEL pxe\nCONFIG archiso_pxe.cfg\n\nLABEL sys\nCONFIG archiso_sys.cfg\n",
                ),
                ("/syslinux/archiso_pxe.cfg", "DEFAULT arch64_nbd\n"),
                (
                    "/syslinux/archiso_sys.cfg",
                    "INCLUDE archiso_head.cfg\n\nDEFAULT arch64\nTIMEOUT 150\n\nINCLUDE archiso_sys-linux.cfg\n\nINCLUDE archiso_tail.cfg\n",
                ),
                (
                    "/syslinux/archiso_head.cfg",
                    "SERIAL 0 115200\nUI vesamenu.c32\nMENU TITLE Arch Linux\n",
                ),
                (
                    "/syslinux/archiso_sys-linux.cfg",
                    "LABEL arch64\nTEXT HELP\nBoot the Arch Linux install medium on BIOS.\nLabel this: it allows you to install Arch Linux or perform system maintenance.\nENDTEXT\nMENU LABEL Arch Linux install medium (x86_64, BIOS)\nLINUX /arch/boot/x86_64/vmlinuz-linux\nINITRD /arch/boot/intel-ucode.img,/arch/boot/amd-ucode.img,/arch/boot/x86_64/initramfs-linux.img\nAPPEND archisobasedir=arch archisosearchuuid=2024-01-01-10-00-00-00\n",
                ),
                (
                    "/syslinux/archiso_tail.cfg",
                    "LABEL existing\nTEXT HELP\nBoot an existing OS.\nENDTEXT\nMENU LABEL Boot existing OS\nCOM32 chain.c32\nAPPEND hd0 0\n",
                ),
            ],
            "/syslinux/syslinux.cfg",
        );
        assert_eq!(m.entries.len(), 1, "{:?}", m.entries);
        let e = &m.entries[0];
        assert_eq!(e.title, "Arch Linux install medium (x86_64, BIOS)");
        assert_eq!(e.initrds.len(), 3);
        assert_eq!(
            e.cmdline,
            "archisobasedir=arch archisosearchuuid=2024-01-01-10-00-00-00"
        );
        assert_eq!(e.source, "/syslinux/archiso_sys-linux.cfg");
    }

    #[test]
    fn include_loops_and_missing_files_are_warnings() {
        let m = menu(
            &[
                (
                    "/isolinux/isolinux.cfg",
                    "include a.cfg\ninclude missing.cfg\n",
                ),
                (
                    "/isolinux/a.cfg",
                    "include isolinux.cfg\nlabel x\nkernel /k\n",
                ),
            ],
            "/isolinux/isolinux.cfg",
        );
        assert_eq!(m.entries.len(), 1);
        assert_eq!(m.default, None);
        assert_eq!(m.warnings.len(), 2, "{:?}", m.warnings);
    }
}
