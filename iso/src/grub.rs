//! GRUB configuration, as much of its shell language as boot menus on install media use:
//! `menuentry` and `submenu` blocks with `linux`/`initrd` (and their `efi`/`16` forms),
//! `set` variables expanded as `$name`/`${name}` in quoted and unquoted words, `source` and
//! `configfile` of further files, and `set default` by number (`1>2` into submenus), title or
//! `--id`. Conditions are not evaluated: both branches of an `if` are read, so a `set` in either
//! applies and entries in either are listed.

use std::collections::HashMap;

use crate::IsoError;
use crate::menu::{Menu, MenuEntry, Reader, join, parent};

/// Files sourced deeper than this are ignored with a warning.
const MAX_NESTING: usize = 8;
/// Config files read at most, counting a file sourced twice twice.
const MAX_FILES: usize = 64;
/// Blocks nested deeper than this are not read.
const MAX_BLOCKS: usize = 32;

#[derive(Debug, Clone, PartialEq)]
enum Piece {
    Lit(String),
    Var(String),
}

type Word = Vec<Piece>;

#[derive(Debug, PartialEq)]
enum Token {
    Word(Word),
    /// A newline or `;`.
    End,
    Open,
    Close,
}

fn tokens(text: &str) -> Vec<Token> {
    let mut out = Vec::new();
    let mut chars = text.chars().peekable();
    let mut word: Word = Vec::new();
    let mut lit = String::new();
    let mut in_word = false;
    fn flush(word: &mut Word, lit: &mut String, in_word: &mut bool, out: &mut Vec<Token>) {
        if !lit.is_empty() {
            word.push(Piece::Lit(std::mem::take(lit)));
        }
        if *in_word {
            out.push(Token::Word(std::mem::take(word)));
        }
        *in_word = false;
    }
    fn variable(chars: &mut std::iter::Peekable<std::str::Chars<'_>>) -> Option<String> {
        if chars.peek() == Some(&'{') {
            chars.next();
            let mut name = String::new();
            for c in chars.by_ref() {
                if c == '}' {
                    break;
                }
                name.push(c);
            }
            return Some(name);
        }
        let mut name = String::new();
        while let Some(&c) = chars.peek() {
            if c.is_ascii_alphanumeric() || c == '_' || (name.is_empty() && "?#@*".contains(c)) {
                name.push(c);
                chars.next();
            } else {
                break;
            }
        }
        (!name.is_empty()).then_some(name)
    }
    while let Some(c) = chars.next() {
        match c {
            '#' if !in_word => {
                for c in chars.by_ref() {
                    if c == '\n' {
                        break;
                    }
                }
                out.push(Token::End);
            }
            '\n' | ';' => {
                flush(&mut word, &mut lit, &mut in_word, &mut out);
                out.push(Token::End);
            }
            ' ' | '\t' | '\r' => flush(&mut word, &mut lit, &mut in_word, &mut out),
            '{' | '}' if !in_word => {
                out.push(if c == '{' { Token::Open } else { Token::Close });
            }
            '\\' => {
                in_word = true;
                match chars.next() {
                    Some('\n') | None => {}
                    Some(next) => lit.push(next),
                }
            }
            '\'' => {
                in_word = true;
                for c in chars.by_ref() {
                    if c == '\'' {
                        break;
                    }
                    lit.push(c);
                }
            }
            '"' => {
                in_word = true;
                while let Some(c) = chars.next() {
                    match c {
                        '"' => break,
                        '\\' => {
                            if let Some(next) = chars.next() {
                                lit.push(next);
                            }
                        }
                        '$' => match variable(&mut chars) {
                            Some(name) => {
                                if !lit.is_empty() {
                                    word.push(Piece::Lit(std::mem::take(&mut lit)));
                                }
                                word.push(Piece::Var(name));
                            }
                            None => lit.push('$'),
                        },
                        other => lit.push(other),
                    }
                }
            }
            '$' => {
                in_word = true;
                match variable(&mut chars) {
                    Some(name) => {
                        if !lit.is_empty() {
                            word.push(Piece::Lit(std::mem::take(&mut lit)));
                        }
                        word.push(Piece::Var(name));
                    }
                    None => lit.push('$'),
                }
            }
            other => {
                in_word = true;
                lit.push(other);
            }
        }
    }
    flush(&mut word, &mut lit, &mut in_word, &mut out);
    out
}

#[derive(Debug)]
enum Stmt {
    Cmd(Vec<Word>),
    Block { head: Vec<Word>, body: Vec<Stmt> },
}

fn statements(tokens: &[Token], at: &mut usize, depth: usize) -> Vec<Stmt> {
    let mut out = Vec::new();
    let mut words = Vec::new();
    while let Some(token) = tokens.get(*at) {
        *at += 1;
        match token {
            Token::Word(w) => words.push(w.clone()),
            Token::End => {
                if !words.is_empty() {
                    out.push(Stmt::Cmd(std::mem::take(&mut words)));
                }
            }
            Token::Open => {
                let head = std::mem::take(&mut words);
                let body = if depth < MAX_BLOCKS {
                    statements(tokens, at, depth + 1)
                } else {
                    Vec::new()
                };
                out.push(Stmt::Block { head, body });
            }
            Token::Close => break,
        }
    }
    if !words.is_empty() {
        out.push(Stmt::Cmd(words));
    }
    out
}

struct Found {
    entry: Option<MenuEntry>,
    /// Position in the menu: top-level index, then submenu indices.
    path: Vec<usize>,
    titles: Vec<String>,
    id: Option<String>,
}

struct Run<'r, 'a> {
    vars: HashMap<String, String>,
    found: Vec<Found>,
    warnings: Vec<String>,
    read: &'r mut Reader<'a>,
    seen: Vec<String>,
}

fn expand(word: &Word, vars: &HashMap<String, String>) -> String {
    word.iter()
        .map(|p| match p {
            Piece::Lit(s) => s.as_str(),
            Piece::Var(v) => vars.get(v).map_or("", String::as_str),
        })
        .collect()
}

/// A GRUB path without its device (`($root)/casper/vmlinuz`, `(cd0)/x`), made absolute.
fn grub_path(path: &str) -> String {
    let path = match path.strip_prefix('(') {
        Some(rest) => rest.split_once(')').map_or("", |(_, p)| p),
        None => path,
    };
    join("/", path)
}

impl Run<'_, '_> {
    fn file(&mut self, path: &str, depth: usize, menu: &mut MenuState) -> Result<(), IsoError> {
        if depth > MAX_NESTING
            || self.seen.len() >= MAX_FILES
            || self.seen.iter().filter(|s| *s == path).count() > 1
        {
            self.warnings.push(format!(
                "{path}: sourced too deep or in a loop; not read again"
            ));
            return Ok(());
        }
        self.seen.push(path.to_owned());
        let Some(text) = (self.read)(path)? else {
            if depth > 0 {
                self.warnings.push(format!("{path} is sourced but missing"));
            }
            return Ok(());
        };
        let tokens = tokens(&text);
        let stmts = statements(&tokens, &mut 0, 0);
        self.block(&stmts, path, depth, menu)
    }

    fn block(
        &mut self,
        stmts: &[Stmt],
        source: &str,
        depth: usize,
        menu: &mut MenuState,
    ) -> Result<(), IsoError> {
        for stmt in stmts {
            match stmt {
                Stmt::Cmd(words) => {
                    let words: Vec<String> = words.iter().map(|w| expand(w, &self.vars)).collect();
                    self.command(&words, depth, menu)?;
                }
                Stmt::Block { head, body } => {
                    let head: Vec<String> = head.iter().map(|w| expand(w, &self.vars)).collect();
                    match head.first().map(String::as_str) {
                        Some("menuentry") => {
                            let (title, id) = title_and_id(&head);
                            let mut path = menu.path.clone();
                            path.push(menu.next);
                            let mut titles = menu.titles.clone();
                            titles.push(title.clone());
                            menu.next += 1;
                            let entry = self.entry(body, &titles.join(" > "), source);
                            self.found.push(Found {
                                entry,
                                path,
                                titles,
                                id,
                            });
                        }
                        Some("submenu") => {
                            let (title, _) = title_and_id(&head);
                            let mut inner = MenuState {
                                path: menu.path.clone(),
                                titles: menu.titles.clone(),
                                next: 0,
                            };
                            inner.path.push(menu.next);
                            inner.titles.push(title);
                            menu.next += 1;
                            let saved = self.vars.clone();
                            self.block(body, source, depth, &mut inner)?;
                            self.vars = saved;
                        }
                        Some("function") => {}
                        _ => self.block(body, source, depth, menu)?,
                    }
                }
            }
        }
        Ok(())
    }

    fn command(
        &mut self,
        words: &[String],
        depth: usize,
        menu: &mut MenuState,
    ) -> Result<(), IsoError> {
        let Some(first) = words.first() else {
            return Ok(());
        };
        match first.as_str() {
            "then" | "else" | "do" => self.command(&words[1..], depth, menu),
            "set" => {
                if let Some((name, value)) = words.get(1).and_then(|w| w.split_once('=')) {
                    self.vars.insert(name.to_owned(), value.to_owned());
                }
                Ok(())
            }
            "source" | "configfile" => match words.get(1) {
                Some(path) => {
                    let path = grub_path(path);
                    self.file(&path, depth + 1, menu)
                }
                None => Ok(()),
            },
            _ => Ok(()),
        }
    }

    /// The Linux entry a menuentry's body boots, if it boots one.
    fn entry(&self, body: &[Stmt], title: &str, source: &str) -> Option<MenuEntry> {
        let mut vars = self.vars.clone();
        let mut kernel = None;
        let mut initrds = Vec::new();
        walk(body, &mut |words: &[Word]| {
            let words: Vec<String> = words.iter().map(|w| expand(w, &vars)).collect();
            let words: &[String] = match words.first().map(String::as_str) {
                Some("then" | "else" | "do") => &words[1..],
                _ => &words,
            };
            match words.first().map(String::as_str) {
                Some("set") => {
                    if let Some((name, value)) = words.get(1).and_then(|w| w.split_once('=')) {
                        vars.insert(name.to_owned(), value.to_owned());
                    }
                }
                Some("linux" | "linuxefi" | "linux16") if words.len() > 1 => {
                    kernel = Some((grub_path(&words[1]), words[2..].join(" ")));
                }
                Some("initrd" | "initrdefi" | "initrd16") => {
                    initrds = words[1..].iter().map(|p| grub_path(p)).collect();
                }
                _ => {}
            }
        });
        let (kernel, cmdline) = kernel?;
        if kernel.to_ascii_lowercase().contains("memtest") {
            return None;
        }
        Some(MenuEntry {
            title: title.to_owned(),
            kernel,
            initrds,
            cmdline,
            source: source.to_owned(),
        })
    }
}

fn walk(stmts: &[Stmt], f: &mut dyn FnMut(&[Word])) {
    for stmt in stmts {
        match stmt {
            Stmt::Cmd(words) => f(words),
            Stmt::Block { body, .. } => walk(body, f),
        }
    }
}

struct MenuState {
    path: Vec<usize>,
    titles: Vec<String>,
    next: usize,
}

/// The title (first word after the keyword that is not an option) and `--id`.
fn title_and_id(head: &[String]) -> (String, Option<String>) {
    let mut title = None;
    let mut id = None;
    let mut words = head.iter().skip(1);
    while let Some(w) = words.next() {
        if let Some(v) = w.strip_prefix("--id=") {
            id = Some(v.to_owned());
        } else if w == "--id" {
            id = words.next().cloned();
        } else if matches!(w.as_str(), "--class" | "--users" | "--hotkey") {
            words.next();
        } else if w.starts_with("--") {
        } else if title.is_none() {
            title = Some(w.clone());
        }
    }
    (title.unwrap_or_default(), id)
}

/// Parse the GRUB config at `path` and everything it sources.
pub fn parse(path: &str, read: &mut Reader<'_>) -> Result<Menu, IsoError> {
    let mut vars = HashMap::new();
    // What GRUB sets before it reads grub.cfg from a CD.
    vars.insert("prefix".to_owned(), parent(path));
    vars.insert("root".to_owned(), "cd0".to_owned());
    let mut run = Run {
        vars,
        found: Vec::new(),
        warnings: Vec::new(),
        read,
        seen: Vec::new(),
    };
    let mut state = MenuState {
        path: Vec::new(),
        titles: Vec::new(),
        next: 0,
    };
    run.file(path, 0, &mut state)?;
    let default = run
        .vars
        .get("default")
        .cloned()
        .unwrap_or_else(|| "0".into());
    let chosen = run.found.iter().position(|f| {
        let numbers = f
            .path
            .iter()
            .map(usize::to_string)
            .collect::<Vec<_>>()
            .join(">");
        numbers == default
            || f.id.as_deref() == Some(default.as_str())
            || f.titles.join(">") == default
    });
    let mut menu = Menu {
        entries: Vec::new(),
        default: None,
        warnings: run.warnings,
    };
    for (i, found) in run.found.into_iter().enumerate() {
        if let Some(entry) = found.entry {
            if chosen == Some(i) {
                menu.default = Some(menu.entries.len());
            }
            menu.entries.push(entry);
        }
    }
    Ok(menu)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn menu(files: &[(&str, &str)], main: &str) -> Menu {
        let files: HashMap<String, String> = files
            .iter()
            .map(|(p, t)| ((*p).to_owned(), (*t).to_owned()))
            .collect();
        let mut read = |p: &str| Ok(files.get(p).cloned());
        parse(main, &mut read).unwrap()
    }

    /// Ubuntu 22.04 desktop's boot/grub/grub.cfg, with a variable for the casper directory
    /// added the way derivatives do.
    #[test]
    fn ubuntu_grub_cfg_with_variables() {
        let m = menu(
            &[(
                "/boot/grub/grub.cfg",
                "set timeout=30\n\nloadfont unicode\n\nset menu_color_normal=white/black\nset menu_color_highlight=black/light-gray\nset live=/casper\nset opts=\"quiet splash\"\n\nmenuentry \"Try or Install Ubuntu\" {\n\tset gfxpayload=keep\n\tlinux\t${live}/vmlinuz  file=/cdrom/preseed/ubuntu.seed maybe-ubiquity $opts ---\n\tinitrd\t$live/initrd\n}\nmenuentry \"Ubuntu (safe graphics)\" {\n\tset gfxpayload=keep\n\tlinux\t/casper/vmlinuz  nomodeset  --- quiet splash\n\tinitrd\t/casper/initrd\n}\ngrub_platform\nif [ \"$grub_platform\" = \"efi\" ]; then\nmenuentry 'Boot from next volume' {\n\texit 1\n}\nmenuentry 'UEFI Firmware Settings' {\n\tfwsetup\n}\nelse\nmenuentry 'Test memory' {\n\tlinux16 /boot/memtest86+.bin\n}\nfi\n",
            )],
            "/boot/grub/grub.cfg",
        );
        assert_eq!(m.entries.len(), 2, "{:?}", m.entries);
        assert_eq!(m.default, Some(0));
        let e = &m.entries[0];
        assert_eq!(e.title, "Try or Install Ubuntu");
        assert_eq!(e.kernel, "/casper/vmlinuz");
        assert_eq!(e.initrds, ["/casper/initrd"]);
        assert_eq!(
            e.cmdline,
            "file=/cdrom/preseed/ubuntu.seed maybe-ubiquity quiet splash ---"
        );
        assert_eq!(m.entries[1].cmdline, "nomodeset --- quiet splash");
    }

    /// Debian's EFI stub config sources the real one; `set default` picks into a submenu by
    /// number, Fedora-style `linuxefi` lines and `--id` work, device prefixes are removed.
    #[test]
    fn sourced_files_submenus_and_defaults() {
        let m = menu(
            &[
                (
                    "/EFI/boot/grub.cfg",
                    "search --file --set=root /.disk/id/x\nset prefix=($root)/boot/grub\nsource $prefix/x86_64-efi/grub.cfg\n",
                ),
                (
                    "/boot/grub/x86_64-efi/grub.cfg",
                    "insmod part_acpi\nsource /boot/grub/grub.cfg\n",
                ),
                (
                    "/boot/grub/grub.cfg",
                    "set default=\"1>1\"\nmenuentry --hotkey=g 'Graphical install' {\n    set background_color=black\n    linux    /install.amd/vmlinuz vga=788 --- quiet\n    initrd   /install.amd/gtk/initrd.gz\n}\nsubmenu --hotkey=a 'Advanced options ...' {\n    menuentry '... Graphical expert install' { linux /install.amd/vmlinuz priority=low vga=788 ---; initrd /install.amd/gtk/initrd.gz; }\n    menuentry '... Expert install' --class os --id expert {\n        linuxefi ($root)/install.amd/vmlinuz priority=low ---\n        initrdefi /install.amd/initrd.gz /install.amd/extra.gz\n    }\n}\n",
                ),
            ],
            "/EFI/boot/grub.cfg",
        );
        let titles: Vec<&str> = m.entries.iter().map(|e| e.title.as_str()).collect();
        assert_eq!(
            titles,
            [
                "Graphical install",
                "Advanced options ... > ... Graphical expert install",
                "Advanced options ... > ... Expert install"
            ]
        );
        assert_eq!(m.default, Some(2));
        assert_eq!(m.entries[2].kernel, "/install.amd/vmlinuz");
        assert_eq!(
            m.entries[2].initrds,
            ["/install.amd/initrd.gz", "/install.amd/extra.gz"]
        );
        assert_eq!(m.entries[1].cmdline, "priority=low vga=788 ---");
        assert_eq!(m.entries[0].source, "/boot/grub/grub.cfg");

        let by_id = menu(
            &[(
                "/boot/grub/grub.cfg",
                "set default=expert\nmenuentry A { linux /a }\nmenuentry B --id expert { linux /b }\n",
            )],
            "/boot/grub/grub.cfg",
        );
        assert_eq!(by_id.default, Some(1));
    }

    /// Fedora 39's boot/grub2/grub.cfg: a function block, `search`, `--class` options, a
    /// numeric default and a submenu.
    #[test]
    fn fedora_grub_cfg() {
        let m = menu(
            &[(
                "/boot/grub2/grub.cfg",
                "set default=\"1\"\n\nfunction load_video {\n  insmod all_video\n}\n\nload_video\nset gfxpayload=keep\ninsmod gzio\n\nset timeout=60\n### END /etc/grub.d/00_header ###\n\nsearch --no-floppy --set=root -l 'Fedora-S-dvd-x86_64-39'\n\n### BEGIN /etc/grub.d/10_linux ###\nmenuentry 'Install Fedora 39' --class fedora --class gnu-linux --class gnu --class os {\n\tlinux /images/pxeboot/vmlinuz inst.stage2=hd:LABEL=Fedora-S-dvd-x86_64-39 quiet\n\tinitrd /images/pxeboot/initrd.img\n}\nmenuentry 'Test this media & install Fedora 39' --class fedora --class gnu-linux --class gnu --class os {\n\tlinux /images/pxeboot/vmlinuz inst.stage2=hd:LABEL=Fedora-S-dvd-x86_64-39 rd.live.check quiet\n\tinitrd /images/pxeboot/initrd.img\n}\nsubmenu 'Troubleshooting -->' {\n\tmenuentry 'Install Fedora 39 in basic graphics mode' --class fedora --class gnu-linux --class gnu --class os {\n\t\tlinux /images/pxeboot/vmlinuz inst.stage2=hd:LABEL=Fedora-S-dvd-x86_64-39 nomodeset quiet\n\t\tinitrd /images/pxeboot/initrd.img\n\t}\n}\n",
            )],
            "/boot/grub2/grub.cfg",
        );
        let titles: Vec<&str> = m.entries.iter().map(|e| e.title.as_str()).collect();
        assert_eq!(
            titles,
            [
                "Install Fedora 39",
                "Test this media & install Fedora 39",
                "Troubleshooting --> > Install Fedora 39 in basic graphics mode"
            ]
        );
        assert_eq!(m.default, Some(1));
        assert_eq!(
            m.entries[1].cmdline,
            "inst.stage2=hd:LABEL=Fedora-S-dvd-x86_64-39 rd.live.check quiet"
        );
    }

    #[test]
    fn quoting_and_comments() {
        let t = tokens("set a='x y' # comment\nlinux \"/k\" b\\ c \"$a\"x");
        let words: Vec<Vec<Piece>> = t
            .into_iter()
            .filter_map(|t| match t {
                Token::Word(w) => Some(w),
                _ => None,
            })
            .collect();
        assert_eq!(words.len(), 6);
        let vars = HashMap::from([("a".to_owned(), "v".to_owned())]);
        assert_eq!(expand(&words[1], &vars), "a=x y");
        assert_eq!(expand(&words[4], &vars), "b c");
        assert_eq!(expand(&words[5], &vars), "vx");
    }

    #[test]
    fn a_config_that_sources_itself_ends() {
        let m = menu(
            &[(
                "/boot/grub/grub.cfg",
                "source /boot/grub/grub.cfg\nmenuentry A { linux /a }\n",
            )],
            "/boot/grub/grub.cfg",
        );
        assert!(!m.entries.is_empty());
        assert!(!m.warnings.is_empty());
    }
}
