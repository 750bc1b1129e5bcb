//! The Dockerfile parser: text to a line-numbered list of typed instructions.
//!
//! Follows the Dockerfile reference: `#` comments, parser directives (`# escape=`, `# syntax=`)
//! before anything else, line continuations with the escape character (comment and empty lines
//! inside a continuation are skipped, as BuildKit does), case-insensitive keywords, shell and
//! JSON (exec) forms, and `--flag=value` options. Every instruction of the reference is
//! recognised; the builder says which it does not carry out yet. Errors name the line.

use std::fmt;

/// An instruction and the line it starts on (1-based).
#[derive(Debug, Clone, PartialEq)]
pub struct Line {
    pub number: usize,
    /// The instruction as written (continuations joined), for progress and history.
    pub text: String,
    pub instruction: Instruction,
}

/// Shell form (a string run by the SHELL) or exec form (argv).
#[derive(Debug, Clone, PartialEq)]
pub enum Command {
    Shell(String),
    Exec(Vec<String>),
}

/// Where a RUN here-document that starts with `#!` is put, as a file, to be run (BuildKit's
/// place for it).
pub const PIPES: &str = "/dev/pipes";

/// A here-document of RUN, COPY or ADD (`<<EOF` … `EOF`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Heredoc {
    /// The delimiter, which COPY and ADD name the file after.
    pub name: String,
    /// The lines between the marker and the delimiter, each ending in a newline (`<<-`: their
    /// leading tabs removed).
    pub body: String,
    /// Unquoted delimiter: the builder expands variables in the body (COPY, ADD).
    pub expand: bool,
}

/// One instruction with its flags.
#[derive(Debug, Clone, PartialEq)]
pub enum Instruction {
    From {
        image: String,
        alias: Option<String>,
        platform: Option<String>,
    },
    /// Names with their defaults as written (expanded when the builder reaches them).
    Arg(Vec<(String, Option<String>)>),
    Env(Vec<(String, String)>),
    Label(Vec<(String, String)>),
    Workdir(String),
    User(String),
    Copy {
        sources: Vec<String>,
        dest: String,
        from: Option<String>,
        chown: Option<String>,
        chmod: Option<String>,
        /// `--exclude` patterns (several), matched below each copied directory.
        exclude: Vec<String>,
        /// `--parents`: each source keeps its directories (below a `/./` pivot in it).
        parents: bool,
        /// The sources written `<<NAME`, by name.
        heredocs: Vec<Heredoc>,
    },
    Add {
        sources: Vec<String>,
        dest: String,
        chown: Option<String>,
        chmod: Option<String>,
        exclude: Vec<String>,
        /// For an http(s) source its digest, for a git repository its commit, as BuildKit
        /// has it.
        checksum: Option<String>,
        /// `--keep-git-dir`: a git repository's `.git` is copied too.
        keep_git_dir: Option<bool>,
        heredocs: Vec<Heredoc>,
    },
    Run {
        command: Command,
        flags: Vec<(String, String)>,
        /// A here-document that starts with `#!`, run as a file: BuildKit mounts it read-only,
        /// mode 755, at `/dev/pipes/NAME`, which is then the command.
        script: Option<Heredoc>,
    },
    Cmd(Command),
    Entrypoint(Command),
    /// The ports as written: a variable may hold several.
    Expose(String),
    Volume(Vec<String>),
    StopSignal(String),
    Shell(Vec<String>),
    Healthcheck(Option<(Command, Vec<(String, String)>)>),
    Onbuild(Box<Instruction>),
    Maintainer(String),
}

/// A Dockerfile that cannot be parsed, with the line.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("Dockerfile line {line}: {message}")]
pub struct ParseError {
    pub line: usize,
    pub message: String,
}

fn err<T>(line: usize, message: impl Into<String>) -> Result<T, ParseError> {
    Err(ParseError {
        line,
        message: message.into(),
    })
}

/// Parse a JSON array of strings (`["a", "b"]`), the exec form. None when `text` is not one
/// (then it is shell form, as Docker treats it).
pub fn json_array(text: &str) -> Option<Vec<String>> {
    let t = text.trim();
    if !t.starts_with('[') {
        return None;
    }
    let mut chars = t[1..].chars().peekable();
    let mut out = Vec::new();
    let skip_ws = |chars: &mut std::iter::Peekable<std::str::Chars<'_>>| {
        while chars.peek().is_some_and(|c| c.is_whitespace()) {
            chars.next();
        }
    };
    skip_ws(&mut chars);
    if chars.peek() == Some(&']') {
        chars.next();
        skip_ws(&mut chars);
        return chars.next().is_none().then_some(out);
    }
    loop {
        skip_ws(&mut chars);
        if chars.next()? != '"' {
            return None;
        }
        let mut s = String::new();
        loop {
            match chars.next()? {
                '"' => break,
                '\\' => match chars.next()? {
                    'n' => s.push('\n'),
                    't' => s.push('\t'),
                    'r' => s.push('\r'),
                    '/' => s.push('/'),
                    '\\' => s.push('\\'),
                    '"' => s.push('"'),
                    'u' => {
                        let hex: String = (0..4).map(|_| chars.next()).collect::<Option<_>>()?;
                        s.push(char::from_u32(u32::from_str_radix(&hex, 16).ok()?)?);
                    }
                    _ => return None,
                },
                c => s.push(c),
            }
        }
        out.push(s);
        skip_ws(&mut chars);
        match chars.next()? {
            ',' => continue,
            ']' => {
                skip_ws(&mut chars);
                return chars.next().is_none().then_some(out);
            }
            _ => return None,
        }
    }
}

/// Split `--name=value` flags off the front of an instruction's arguments.
fn take_flags(mut rest: &str) -> (Vec<(String, String)>, &str) {
    let mut flags = Vec::new();
    loop {
        let trimmed = rest.trim_start();
        let Some(flag) = trimmed.strip_prefix("--") else {
            return (flags, trimmed);
        };
        let end = flag.find(char::is_whitespace).unwrap_or(flag.len());
        let (word, after) = flag.split_at(end);
        let (name, value) = word.split_once('=').unwrap_or((word, "true"));
        flags.push((name.to_ascii_lowercase(), value.to_owned()));
        rest = after;
    }
}

/// Words split on whitespace that no quote or escape protects, each kept as written (quotes
/// and escapes included): the builder's lexer removes them when it expands the word, as
/// BuildKit's parser leaves them to its `shell.Lex`.
fn raw_words(text: &str, escape: char) -> Result<Vec<String>, String> {
    let mut out = Vec::new();
    let mut current = String::new();
    let mut quote: Option<char> = None;
    let mut chars = text.chars();
    while let Some(c) = chars.next() {
        match (quote, c) {
            (None, c) if c.is_whitespace() => {
                if !current.is_empty() {
                    out.push(std::mem::take(&mut current));
                }
                continue;
            }
            (None, '"' | '\'') => quote = Some(c),
            (Some(q), c) if c == q => quote = None,
            (q, c) if c == escape && q != Some('\'') => {
                current.push(c);
                if let Some(next) = chars.next() {
                    current.push(next);
                }
                continue;
            }
            _ => {}
        }
        current.push(c);
    }
    if quote.is_some() {
        return Err("a quote is not closed".into());
    }
    if !current.is_empty() {
        out.push(current);
    }
    Ok(out)
}

/// `k=v k2="v 2"` pairs (ENV, LABEL), or the legacy `k v` form when `legacy` allows it.
fn pairs(
    number: usize,
    rest: &str,
    escape: char,
    legacy: bool,
) -> Result<Vec<(String, String)>, ParseError> {
    let first = rest.split_whitespace().next().unwrap_or("");
    if legacy && !first.contains('=') {
        let value = rest.trim_start()[first.len()..].trim();
        if value.is_empty() {
            return err(number, format!("`{first}` needs a value"));
        }
        return Ok(vec![(first.to_owned(), value.to_owned())]);
    }
    let list = raw_words(rest, escape).map_err(|m| ParseError {
        line: number,
        message: m,
    })?;
    if list.is_empty() {
        return err(number, "needs at least one NAME=VALUE");
    }
    list.into_iter()
        .map(|w| match w.split_once('=') {
            Some((k, v)) if !k.is_empty() => Ok((k.to_owned(), v.to_owned())),
            _ => err(number, format!("`{w}` is not NAME=VALUE")),
        })
        .collect()
}

fn command(rest: &str) -> Command {
    match json_array(rest) {
        Some(argv) => Command::Exec(argv),
        None => Command::Shell(rest.trim().to_owned()),
    }
}

/// A flag's value; the last one when it is given several times.
fn flag(flags: &[(String, String)], name: &str) -> Option<String> {
    flags_named(flags, name).pop()
}

/// Every value of a flag that may be given several times (`--exclude`), in order.
fn flags_named(flags: &[(String, String)], name: &str) -> Vec<String> {
    flags
        .iter()
        .filter(|(n, _)| n == name)
        .map(|(_, v)| v.clone())
        .collect()
}

fn check_flags(
    number: usize,
    keyword: &str,
    flags: &[(String, String)],
    allowed: &[&str],
) -> Result<(), ParseError> {
    match flags.iter().find(|(n, _)| !allowed.contains(&n.as_str())) {
        Some((name, _)) => err(number, format!("{keyword} has no flag --{name}")),
        None => Ok(()),
    }
}

/// Parse one instruction (keyword and the rest, continuations already joined; `heredocs`,
/// the here-documents read after its line).
fn instruction(
    number: usize,
    keyword: &str,
    rest: &str,
    escape: char,
    heredocs: Vec<Heredoc>,
) -> Result<Instruction, ParseError> {
    let upper = keyword.to_ascii_uppercase();
    // Only these take `--flags`; elsewhere `--x` is an argument (`CMD --verbose`).
    let (flags, rest) = if matches!(
        upper.as_str(),
        "FROM" | "COPY" | "ADD" | "RUN" | "HEALTHCHECK"
    ) {
        take_flags(rest)
    } else {
        (Vec::new(), rest)
    };
    let rest = rest.trim();
    let needs_args = !matches!(upper.as_str(), "HEALTHCHECK");
    if rest.is_empty() && needs_args {
        return err(number, format!("{upper} needs arguments"));
    }
    let paths = |keyword: &str| -> Result<(Vec<String>, String), ParseError> {
        let mut list = match json_array(rest) {
            Some(list) => list,
            None => raw_words(rest, escape).map_err(|m| ParseError {
                line: number,
                message: m,
            })?,
        };
        if list.len() < 2 {
            return err(
                number,
                format!("{keyword} needs at least one source and a destination"),
            );
        }
        let dest = list.pop().unwrap_or_default();
        Ok((list, dest))
    };
    Ok(match upper.as_str() {
        "FROM" => {
            check_flags(number, "FROM", &flags, &["platform"])?;
            let parts: Vec<&str> = rest.split_whitespace().collect();
            let alias = match parts.as_slice() {
                [_] => None,
                [_, as_kw, name] if as_kw.eq_ignore_ascii_case("as") => {
                    let ok = name.chars().next().is_some_and(|c| c.is_ascii_alphabetic())
                        && name
                            .chars()
                            .all(|c| c.is_ascii_alphanumeric() || "._-".contains(c));
                    if !ok {
                        return err(number, format!("`{name}` is not a valid stage name"));
                    }
                    Some(name.to_ascii_lowercase())
                }
                _ => return err(number, "FROM takes an image and optionally `AS name`"),
            };
            Instruction::From {
                image: parts[0].to_owned(),
                alias,
                platform: flag(&flags, "platform"),
            }
        }
        "ARG" => {
            check_flags(number, "ARG", &flags, &[])?;
            let list = raw_words(rest, escape).map_err(|m| ParseError {
                line: number,
                message: m,
            })?;
            let mut args = Vec::new();
            for word in list {
                let (name, default) = match word.split_once('=') {
                    Some((n, d)) => (n.to_owned(), Some(d.to_owned())),
                    None => (word.clone(), None),
                };
                let valid = name
                    .chars()
                    .next()
                    .is_some_and(|c| c.is_alphabetic() || c == '_')
                    && name.chars().all(|c| c.is_alphanumeric() || c == '_');
                if !valid {
                    return err(number, format!("ARG `{word}`: `{name}` is not a name"));
                }
                args.push((name, default));
            }
            Instruction::Arg(args)
        }
        "ENV" => Instruction::Env(pairs(number, rest, escape, true)?),
        "LABEL" => Instruction::Label(pairs(number, rest, escape, false)?),
        "WORKDIR" => Instruction::Workdir(rest.to_owned()),
        "USER" => Instruction::User(rest.to_owned()),
        "COPY" => {
            check_flags(
                number,
                "COPY",
                &flags,
                &["from", "chown", "chmod", "link", "exclude", "parents"],
            )?;
            let (sources, dest) = paths("COPY")?;
            let parents = match flag(&flags, "parents").as_deref() {
                None | Some("false") => false,
                Some("true") => true,
                Some(other) => {
                    return err(number, format!("COPY --parents={other}: true or false"));
                }
            };
            Instruction::Copy {
                sources: sources.iter().map(|s| heredoc_source(s)).collect(),
                dest,
                from: flag(&flags, "from"),
                chown: flag(&flags, "chown"),
                chmod: flag(&flags, "chmod"),
                exclude: flags_named(&flags, "exclude"),
                parents,
                heredocs,
            }
        }
        "ADD" => {
            check_flags(
                number,
                "ADD",
                &flags,
                &[
                    "chown",
                    "chmod",
                    "link",
                    "checksum",
                    "exclude",
                    "keep-git-dir",
                ],
            )?;
            let (sources, dest) = paths("ADD")?;
            let keep_git_dir = match flag(&flags, "keep-git-dir").as_deref() {
                None => None,
                Some("" | "true") => Some(true),
                Some("false") => Some(false),
                Some(other) => {
                    return err(number, format!("ADD --keep-git-dir={other}: true or false"));
                }
            };
            Instruction::Add {
                keep_git_dir,
                sources: sources.iter().map(|s| heredoc_source(s)).collect(),
                dest,
                chown: flag(&flags, "chown"),
                chmod: flag(&flags, "chmod"),
                exclude: flags_named(&flags, "exclude"),
                checksum: flag(&flags, "checksum"),
                heredocs,
            }
        }
        "RUN" => {
            check_flags(number, "RUN", &flags, &["mount", "network", "security"])?;
            let command = match heredocs.as_slice() {
                [] => command(rest),
                // Only a here-document: it is the script the shell runs.
                [only] if markers(rest).len() == 1 && rest.trim() == markers(rest)[0].0 => {
                    if only.body.starts_with("#!") {
                        if only.name.contains('/') || only.name.starts_with('.') {
                            return err(
                                number,
                                format!(
                                    "a here-document run as a file cannot be named `{}`",
                                    only.name
                                ),
                            );
                        }
                        let command = Command::Exec(vec![format!("{PIPES}/{}", only.name)]);
                        return Ok(Instruction::Run {
                            command,
                            flags,
                            script: Some(only.clone()),
                        });
                    }
                    Command::Shell(only.body.clone())
                }
                // A command reading them: the shell reads the here-documents itself.
                _ => {
                    let mut script = rest.trim().to_owned();
                    for heredoc in &heredocs {
                        script.push('\n');
                        script.push_str(&heredoc.body);
                        script.push_str(&heredoc.name);
                    }
                    Command::Shell(script)
                }
            };
            Instruction::Run {
                command,
                flags,
                script: None,
            }
        }
        "CMD" => Instruction::Cmd(command(rest)),
        "ENTRYPOINT" => Instruction::Entrypoint(command(rest)),
        "EXPOSE" => Instruction::Expose(rest.to_owned()),
        "VOLUME" => Instruction::Volume(match json_array(rest) {
            Some(list) => list,
            None => raw_words(rest, escape).map_err(|m| ParseError {
                line: number,
                message: m,
            })?,
        }),
        "STOPSIGNAL" => Instruction::StopSignal(rest.to_owned()),
        "SHELL" => match json_array(rest) {
            Some(argv) if !argv.is_empty() => Instruction::Shell(argv),
            _ => {
                return err(
                    number,
                    "SHELL must be a JSON array, e.g. [\"/bin/sh\", \"-c\"]",
                );
            }
        },
        "HEALTHCHECK" => {
            check_flags(
                number,
                "HEALTHCHECK",
                &flags,
                &[
                    "interval",
                    "timeout",
                    "start-period",
                    "start-interval",
                    "retries",
                ],
            )?;
            if rest.eq_ignore_ascii_case("none") {
                Instruction::Healthcheck(None)
            } else {
                let Some(cmd) = rest
                    .strip_prefix("CMD")
                    .or_else(|| rest.strip_prefix("cmd"))
                else {
                    return err(number, "HEALTHCHECK takes NONE or CMD …");
                };
                Instruction::Healthcheck(Some((command(cmd), flags)))
            }
        }
        "ONBUILD" => {
            let (inner, inner_rest) = rest.split_once(char::is_whitespace).unwrap_or((rest, ""));
            if ["ONBUILD", "FROM", "MAINTAINER"]
                .iter()
                .any(|k| inner.eq_ignore_ascii_case(k))
            {
                return err(number, format!("ONBUILD {inner} is not allowed"));
            }
            Instruction::Onbuild(Box::new(instruction(
                number,
                inner,
                inner_rest,
                escape,
                Vec::new(),
            )?))
        }
        "MAINTAINER" => Instruction::Maintainer(rest.to_owned()),
        _ => return err(number, format!("unknown instruction `{keyword}`")),
    })
}

/// The here-document markers in `text`: each marker as written (`<<-"EOF"`), its delimiter,
/// whether it strips tabs (`<<-`), and whether it was quoted (no expansion).
fn markers(text: &str) -> Vec<(String, String, bool, bool)> {
    let mut found = Vec::new();
    let mut rest = text;
    while let Some(at) = rest.find("<<") {
        let after = &rest[at + 2..];
        let (strip, after) = match after.strip_prefix('-') {
            Some(a) => (true, a),
            None => (false, after),
        };
        let quote = after.chars().next().filter(|c| *c == '"' || *c == '\'');
        let inner = quote.map_or(after, |q| &after[q.len_utf8()..]);
        let name: String = inner
            .chars()
            .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
            .collect();
        let closed = quote.is_none_or(|q| inner[name.len()..].starts_with(q));
        let valid = name
            .chars()
            .next()
            .is_some_and(|c| c.is_ascii_alphabetic() || c == '_');
        if valid && closed {
            let quote_len = quote.map_or(0, |q| 2 * q.len_utf8());
            let written_len = 2 + usize::from(strip) + quote_len + name.len();
            found.push((
                rest[at..at + written_len].to_owned(),
                name,
                strip,
                quote.is_some(),
            ));
            rest = &rest[at + written_len..];
        } else {
            rest = &rest[at + 2..];
        }
    }
    found
}

/// A COPY or ADD source as the builder sees it: a here-document marker becomes `<<NAME`.
fn heredoc_source(source: &str) -> String {
    match markers(source).as_slice() {
        [(written, name, _, _)] if written == source => format!("<<{name}"),
        _ => source.to_owned(),
    }
}

/// An ONBUILD trigger as an image keeps it (`RUN make`), parsed as the instruction it is; its
/// errors name `number`, the FROM line that ran it.
pub fn parse_trigger(text: &str, escape: char, number: usize) -> Result<Instruction, ParseError> {
    let text = text.trim();
    let (keyword, rest) = text.split_once(char::is_whitespace).unwrap_or((text, ""));
    if ["ONBUILD", "FROM", "MAINTAINER"]
        .iter()
        .any(|k| keyword.eq_ignore_ascii_case(k))
    {
        return err(
            number,
            format!("the base image's ONBUILD {keyword} is not allowed"),
        );
    }
    instruction(number, keyword, rest, escape, Vec::new())
}

/// A parsed Dockerfile: its instructions, and the escape character its arguments are read with.
#[derive(Debug, Clone, PartialEq)]
pub struct Dockerfile {
    pub escape: char,
    pub lines: Vec<Line>,
}

/// Parse a whole Dockerfile.
pub fn parse(text: &str) -> Result<Dockerfile, ParseError> {
    let text = text.strip_prefix('\u{feff}').unwrap_or(text);
    let mut escape = '\\';
    let mut lines = text
        .lines()
        .enumerate()
        .map(|(i, l)| (i + 1, l.strip_suffix('\r').unwrap_or(l)))
        .peekable();
    // Parser directives: `# key=value` lines at the very top.
    while let Some(&(_, line)) = lines.peek() {
        let Some(body) = line.trim().strip_prefix('#') else {
            break;
        };
        let Some((key, value)) = body.split_once('=') else {
            break;
        };
        match key.trim().to_ascii_lowercase().as_str() {
            "escape" => {
                escape = match value.trim() {
                    "`" => '`',
                    "\\" => '\\',
                    other => {
                        return err(
                            lines.peek().map_or(1, |l| l.0),
                            format!("escape must be \\ or `, not `{other}`"),
                        );
                    }
                }
            }
            "syntax" | "check" => {}
            _ => break,
        }
        lines.next();
    }
    let mut out = Vec::new();
    while let Some((number, line)) = lines.next() {
        let trimmed = line.trim();
        if trimmed.is_empty() || trimmed.starts_with('#') {
            continue;
        }
        // Join continuation lines.
        let mut joined = String::new();
        let mut current = trimmed.to_owned();
        loop {
            match current.strip_suffix(escape) {
                Some(head) => {
                    joined.push_str(head);
                    joined.push(' ');
                    // Skip comment and empty lines inside the continuation.
                    let next = loop {
                        match lines.next() {
                            Some((_, l))
                                if l.trim().is_empty() || l.trim_start().starts_with('#') =>
                            {
                                continue;
                            }
                            other => break other,
                        }
                    };
                    match next {
                        Some((_, l)) => current = l.trim().to_owned(),
                        None => break,
                    }
                }
                None => {
                    joined.push_str(&current);
                    break;
                }
            }
        }
        let joined = joined.trim().to_owned();
        let (keyword, rest) = joined
            .split_once(char::is_whitespace)
            .unwrap_or((&joined, ""));
        // Here-documents: the lines after the instruction up to each delimiter, in order.
        let mut heredocs = Vec::new();
        let mut text = joined.clone();
        if matches!(
            keyword.to_ascii_uppercase().as_str(),
            "RUN" | "COPY" | "ADD"
        ) {
            for (_, name, strip, quoted) in markers(rest) {
                let mut body = String::new();
                loop {
                    let Some((_, raw)) = lines.next() else {
                        return err(number, format!("the here-document <<{name} is not closed"));
                    };
                    text.push('\n');
                    text.push_str(raw);
                    let line = if strip {
                        raw.trim_start_matches('\t')
                    } else {
                        raw
                    };
                    if line == name {
                        break;
                    }
                    body.push_str(line);
                    body.push('\n');
                }
                heredocs.push(Heredoc {
                    name,
                    body,
                    expand: !quoted,
                });
            }
        }
        let instruction = instruction(number, keyword, rest, escape, heredocs)?;
        out.push(Line {
            number,
            text,
            instruction,
        });
    }
    if out.is_empty() {
        return err(1, "the Dockerfile has no instructions");
    }
    match out
        .iter()
        .find(|l| !matches!(l.instruction, Instruction::Arg { .. }))
    {
        Some(l) if !matches!(l.instruction, Instruction::From { .. }) => {
            return err(
                l.number,
                "the first instruction must be FROM (only ARG may come before it)",
            );
        }
        None => return err(out[0].number, "the Dockerfile has no FROM"),
        _ => {}
    }
    Ok(Dockerfile { escape, lines: out })
}

impl fmt::Display for Command {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Command::Shell(s) => f.write_str(s),
            Command::Exec(argv) => write!(f, "{argv:?}"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn heredocs_are_read_up_to_their_delimiters() {
        let parsed = parse(
            "FROM scratch\nRUN <<EOF\necho a\n\necho b\nEOF\nCOPY <<-\"A\" <<B /d/\n\tx $y\n\tA\nz\nB\nCMD x\n",
        )
        .unwrap();
        assert_eq!(parsed.lines.len(), 4);
        assert_eq!(
            parsed.lines[1].instruction,
            Instruction::Run {
                command: Command::Shell("echo a\n\necho b\n".into()),
                flags: vec![],
                script: None,
            }
        );
        assert_eq!(parsed.lines[1].text, "RUN <<EOF\necho a\n\necho b\nEOF");
        // With a #! line, the here-document is a file run by itself.
        let shebang = parse("FROM scratch\nRUN <<PY\n#!/usr/bin/python3\nprint(1)\nPY\n").unwrap();
        assert_eq!(
            shebang.lines[1].instruction,
            Instruction::Run {
                command: Command::Exec(vec!["/dev/pipes/PY".into()]),
                flags: vec![],
                script: Some(Heredoc {
                    name: "PY".into(),
                    body: "#!/usr/bin/python3\nprint(1)\n".into(),
                    expand: true,
                }),
            }
        );
        match &parsed.lines[2].instruction {
            Instruction::Copy {
                sources, heredocs, ..
            } => {
                assert_eq!(sources, &["<<A", "<<B"]);
                assert_eq!(
                    heredocs,
                    &[
                        Heredoc {
                            name: "A".into(),
                            body: "x $y\n".into(),
                            expand: false,
                        },
                        Heredoc {
                            name: "B".into(),
                            body: "z\n".into(),
                            expand: true,
                        },
                    ]
                );
            }
            other => panic!("{other:?}"),
        }
        assert_eq!(parsed.lines[3].number, 12);
    }

    const REALISTIC: &str = r#"# syntax=docker/dockerfile:1
ARG BASE=busybox
FROM ${BASE} AS build
ENV GREETING="hello world" \
    LANG=C.UTF-8
WORKDIR /src
COPY --chown=1000:1000 main.c util.c ./
RUN apt-get update && \
    # a comment inside a continuation
    apt-get install -y gcc && \

    gcc -o /app main.c
FROM scratch
COPY --from=build /app /app
LABEL org.opencontainers.image.title="demo" version=1
EXPOSE 8080/tcp 53/udp
VOLUME ["/data"]
USER app:app
HEALTHCHECK --interval=30s CMD ["/app", "--check"]
STOPSIGNAL SIGINT
SHELL ["/bin/sh", "-ec"]
ENTRYPOINT ["/app"]
CMD --verbose
"#;

    #[test]
    fn parses_a_realistic_multi_stage_dockerfile() {
        let lines = parse(REALISTIC).unwrap().lines;
        let kinds: Vec<&str> = lines
            .iter()
            .map(|l| l.text.split_whitespace().next().unwrap())
            .collect();
        assert_eq!(
            kinds,
            [
                "ARG",
                "FROM",
                "ENV",
                "WORKDIR",
                "COPY",
                "RUN",
                "FROM",
                "COPY",
                "LABEL",
                "EXPOSE",
                "VOLUME",
                "USER",
                "HEALTHCHECK",
                "STOPSIGNAL",
                "SHELL",
                "ENTRYPOINT",
                "CMD"
            ]
        );
        assert_eq!(lines[1].number, 3);
        assert_eq!(
            lines[1].instruction,
            Instruction::From {
                image: "${BASE}".into(),
                alias: Some("build".into()),
                platform: None
            }
        );
        assert_eq!(
            lines[2].instruction,
            Instruction::Env(vec![
                ("GREETING".into(), "\"hello world\"".into()),
                ("LANG".into(), "C.UTF-8".into())
            ])
        );
        assert_eq!(
            lines[4].instruction,
            Instruction::Copy {
                sources: vec!["main.c".into(), "util.c".into()],
                dest: "./".into(),
                from: None,
                chown: Some("1000:1000".into()),
                chmod: None,
                exclude: vec![],
                parents: false,
                heredocs: vec![],
            }
        );
        assert_eq!(lines[5].number, 8);
        match &lines[5].instruction {
            Instruction::Run {
                command: Command::Shell(s),
                ..
            } => {
                assert_eq!(
                    s,
                    "apt-get update &&  apt-get install -y gcc &&  gcc -o /app main.c"
                )
            }
            other => panic!("{other:?}"),
        }
        assert_eq!(
            lines[15].instruction,
            Instruction::Entrypoint(Command::Exec(vec!["/app".into()]))
        );
        assert_eq!(
            lines[16].instruction,
            Instruction::Cmd(Command::Shell("--verbose".into()))
        );
        assert_eq!(
            lines[10].instruction,
            Instruction::Volume(vec!["/data".into()])
        );
        assert!(
            matches!(&lines[12].instruction, Instruction::Healthcheck(Some((Command::Exec(a), f))) if a[0] == "/app" && f[0].0 == "interval")
        );
    }

    #[test]
    fn errors_name_the_line() {
        let cases = [
            (
                "FROM scratch\nCOPPY a b\n",
                2,
                "unknown instruction `COPPY`",
            ),
            (
                "FROM scratch\nCOPY a\n",
                2,
                "needs at least one source and a destination",
            ),
            ("RUN true\n", 1, "the first instruction must be FROM"),
            ("\n# only a comment\n", 1, "no instructions"),
            (
                "FROM scratch\nSHELL /bin/sh -c\n",
                2,
                "SHELL must be a JSON array",
            ),
            ("FROM scratch\nRUN <<EOF\necho\n", 2, "<<EOF is not closed"),
            (
                "FROM scratch\nADD --parents a/b /\n",
                2,
                "ADD has no flag --parents",
            ),
            (
                "FROM scratch\nCOPY --parents=maybe a/b /\n",
                2,
                "COPY --parents=maybe: true or false",
            ),
            (
                "FROM scratch\nCOPY --bogus=1 . /\n",
                2,
                "COPY has no flag --bogus",
            ),
            ("FROM scratch AS 1bad\n", 1, "not a valid stage name"),
            ("FROM scratch\nCOPY --frm=x a b\n", 2, "no flag --frm"),
            ("FROM scratch\nENV\n", 2, "ENV needs arguments"),
            ("FROM scratch\nLABEL a=\"b\n", 2, "quote is not closed"),
            (
                "FROM scratch\nONBUILD FROM x\n",
                2,
                "ONBUILD FROM is not allowed",
            ),
        ];
        for (text, line, message) in cases {
            let e = parse(text).unwrap_err();
            assert_eq!(e.line, line, "{text:?}: {e}");
            assert!(e.to_string().contains(message), "{text:?}: {e}");
            assert!(
                e.to_string()
                    .starts_with(&format!("Dockerfile line {line}:"))
            );
        }
    }

    #[test]
    fn escape_directive_and_crlf() {
        let text = "# escape=`\r\nFROM scratch\r\nRUN dir c:\\ `\r\n  /w\r\n";
        let parsed = parse(text).unwrap();
        assert_eq!(parsed.escape, '`');
        let lines = parsed.lines;
        assert_eq!(
            lines[1].instruction,
            Instruction::Run {
                command: Command::Shell("dir c:\\  /w".into()),
                flags: vec![],
                script: None,
            }
        );
    }

    #[test]
    fn json_arrays() {
        assert_eq!(
            json_array(r#"["a", "b c", "\"q\""]"#),
            Some(vec!["a".into(), "b c".into(), "\"q\"".into()])
        );
        assert_eq!(json_array("[]"), Some(vec![]));
        assert_eq!(json_array("[a]"), None);
        assert_eq!(json_array(r#"["a",]"#), None);
        assert_eq!(json_array("echo [x]"), None);
    }

    #[test]
    fn arguments_keep_quotes_for_the_lexer_and_args_take_several_names() {
        let lines = parse(
            "ARG A=1 B=\"x y\" C\nFROM scratch\nENV a='$b' c=d\\ e\nEXPOSE $PORTS 53/udp\nARG 1x\n",
        )
        .unwrap_err();
        assert_eq!(lines.line, 5, "{lines}");
        let lines = parse("ARG A=1 B=\"x y\" C\nFROM scratch\nENV a='$b' c=d\\ e\nEXPOSE $P 53\n")
            .unwrap()
            .lines;
        assert_eq!(
            lines[0].instruction,
            Instruction::Arg(vec![
                ("A".into(), Some("1".into())),
                ("B".into(), Some("\"x y\"".into())),
                ("C".into(), None)
            ])
        );
        assert_eq!(
            lines[2].instruction,
            Instruction::Env(vec![
                ("a".into(), "'$b'".into()),
                ("c".into(), "d\\ e".into())
            ])
        );
        assert_eq!(lines[3].instruction, Instruction::Expose("$P 53".into()));
    }

    #[test]
    fn arbitrary_bytes_never_panic() {
        let mut state = 0x2545_f491_4f6c_dd1du64;
        let mut next = || {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state
        };
        let alphabet = b"FROM RUN COPY ADD \\\n\r#=[]\"',${}:-+ `<abc/.\t";
        for len in 0..400 {
            let text: String = (0..len % 120)
                .map(|_| alphabet[(next() % alphabet.len() as u64) as usize] as char)
                .collect();
            let _ = parse(&text);
            let mut mutated = REALISTIC.to_owned();
            let at = (next() % mutated.len() as u64) as usize;
            if mutated.is_char_boundary(at) {
                mutated.insert_str(at, &text);
            }
            let _ = parse(&mutated);
        }
    }
}
