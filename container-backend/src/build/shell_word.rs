//! Quotes, escapes and variable substitution in a Dockerfile's arguments, as BuildKit's
//! frontend processes them (its `shell.Lex`): one pass that removes quotes, applies the escape
//! character and expands `$name` and `${…}`, then, for instructions that take several words
//! (COPY's paths, EXPOSE's ports), splits on unquoted whitespace, the expansions included (a
//! variable holding `80 443` gives two ports).
//!
//! The forms: `$x`, `${x}`, `${x:-w}` `${x-w}` (default), `${x:+w}` `${x+w}` (alternative),
//! `${x:?m}` `${x?m}` (an error when unset/empty), `${x#p}` `${x##p}` `${x%p}` `${x%%p}` (shortest
//! or longest prefix or suffix removed; `*` and `?` patterns), `${x/p/r}` `${x//p/r}` (first or
//! every match replaced). With a colon, an empty value counts as unset. Any other form is an
//! error; an unset variable is the empty string, as in the shell.
//!
//! Inside single quotes nothing is special; inside double quotes `$` expands and the escape
//! character escapes only `"`, `$` and itself; elsewhere it escapes any character. RUN, CMD and
//! ENTRYPOINT are not processed here: their shell does it.

use std::iter::Peekable;
use std::str::Chars;

/// Why a word could not be processed; the builder adds the line.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum WordError {
    #[error("`{word}`: a quote is not closed")]
    UnclosedQuote { word: String },
    #[error("`{word}`: `${{` without its `}}`")]
    Unclosed { word: String },
    #[error("`{word}`: bad substitution")]
    BadSubstitution { word: String },
    #[error(
        "`{word}`: the modifier `{modifier}` is not supported in substitution (supported: :- - :+ + :? ? # ## % %% / //)"
    )]
    Unsupported { word: String, modifier: String },
    #[error("`{word}`: {name}: {message}")]
    Required {
        word: String,
        name: String,
        message: String,
    },
    #[error("`{word}`: the pattern `{pattern}` has an escape that escapes nothing")]
    BadPattern { word: String, pattern: String },
}

/// Where variables come from: `None` is unset, `Some("")` set and empty.
pub trait Variables {
    fn get(&self, name: &str) -> Option<String>;
}

impl<F: Fn(&str) -> Option<String>> Variables for F {
    fn get(&self, name: &str) -> Option<String> {
        self(name)
    }
}

/// The lexer, for one Dockerfile's escape character.
#[derive(Debug, Clone, Copy)]
pub struct Lexer {
    pub escape: char,
}

impl Default for Lexer {
    fn default() -> Self {
        Lexer { escape: '\\' }
    }
}

impl Lexer {
    /// One word: quotes removed, escapes applied, variables expanded; whitespace is kept.
    pub fn word(&self, text: &str, vars: &dyn Variables) -> Result<String, WordError> {
        Ok(self.process(text, vars)?.0)
    }

    /// Several words: as [`Lexer::word`], then split on whitespace that neither quotes nor
    /// escapes protect (whitespace produced by an unquoted expansion splits too).
    pub fn words(&self, text: &str, vars: &dyn Variables) -> Result<Vec<String>, WordError> {
        Ok(self.process(text, vars)?.1)
    }

    /// A here-document's body as BuildKit expands it: variables only; quotes are kept as
    /// written, and the escape character protects a `$`.
    pub fn heredoc(&self, text: &str, vars: &dyn Variables) -> Result<String, WordError> {
        let mut scan = Scan {
            chars: text.chars().peekable(),
            escape: self.escape,
            vars,
            word: text,
        };
        let mut out = String::new();
        while let Some(&c) = scan.chars.peek() {
            if c == '$' {
                out.push_str(&scan.dollar()?);
                continue;
            }
            scan.chars.next();
            if c == self.escape && scan.chars.peek() == Some(&'$') {
                scan.chars.next();
                out.push('$');
            } else {
                out.push(c);
            }
        }
        Ok(out)
    }

    fn process(
        &self,
        text: &str,
        vars: &dyn Variables,
    ) -> Result<(String, Vec<String>), WordError> {
        let mut scan = Scan {
            chars: text.chars().peekable(),
            escape: self.escape,
            vars,
            word: text,
        };
        let (result, words, stopped) = scan.until(None, false)?;
        debug_assert!(!stopped);
        Ok((result, words))
    }
}

/// Words being split: the current one, and whether it has started (a quoted empty string is a
/// word).
#[derive(Default)]
struct Split {
    current: String,
    started: bool,
    done: Vec<String>,
}

impl Split {
    /// A character as written: unprotected whitespace ends the word.
    fn plain(&mut self, c: char) {
        if c.is_whitespace() {
            self.end();
        } else {
            self.raw(c);
        }
    }

    /// A protected character (quoted or escaped).
    fn raw(&mut self, c: char) {
        self.current.push(c);
        self.started = true;
    }

    fn raw_str(&mut self, s: &str) {
        self.current.push_str(s);
        self.started = true;
    }

    /// An unquoted expansion: split like plain text.
    fn expanded(&mut self, s: &str) {
        s.chars().for_each(|c| self.plain(c));
    }

    fn end(&mut self) {
        if self.started {
            self.done.push(std::mem::take(&mut self.current));
            self.started = false;
        }
    }

    fn finish(mut self) -> Vec<String> {
        self.end();
        self.done
    }
}

struct Scan<'a> {
    chars: Peekable<Chars<'a>>,
    escape: char,
    vars: &'a dyn Variables,
    /// The whole text, for messages.
    word: &'a str,
}

impl Scan<'_> {
    fn bad(&self) -> WordError {
        WordError::BadSubstitution {
            word: self.word.to_owned(),
        }
    }

    /// Process up to `stop` (consumed) or the end. `raw_escapes` keeps the escape character in
    /// the result (patterns, where it protects `*` and `?`). Returns the text, its words, and
    /// whether `stop` was reached.
    fn until(
        &mut self,
        stop: Option<char>,
        raw_escapes: bool,
    ) -> Result<(String, Vec<String>, bool), WordError> {
        let mut result = String::new();
        let mut split = Split::default();
        while let Some(&c) = self.chars.peek() {
            if Some(c) == stop {
                self.chars.next();
                return Ok((result, split.finish(), true));
            }
            match c {
                '$' => {
                    let value = self.dollar()?;
                    result.push_str(&value);
                    split.expanded(&value);
                }
                '\'' => {
                    let value = self.single_quoted()?;
                    result.push_str(&value);
                    split.raw_str(&value);
                }
                '"' => {
                    let value = self.double_quoted(raw_escapes)?;
                    result.push_str(&value);
                    split.raw_str(&value);
                }
                c if c == self.escape => {
                    self.chars.next();
                    if raw_escapes {
                        result.push(c);
                        split.raw(c);
                    }
                    // An escape at the very end is dropped.
                    if let Some(next) = self.chars.next() {
                        result.push(next);
                        split.raw(next);
                    }
                }
                c => {
                    self.chars.next();
                    result.push(c);
                    split.plain(c);
                }
            }
        }
        Ok((result, split.finish(), false))
    }

    fn single_quoted(&mut self) -> Result<String, WordError> {
        self.chars.next();
        let mut out = String::new();
        loop {
            match self.chars.next() {
                None => {
                    return Err(WordError::UnclosedQuote {
                        word: self.word.to_owned(),
                    });
                }
                Some('\'') => return Ok(out),
                Some(c) => out.push(c),
            }
        }
    }

    fn double_quoted(&mut self, raw_escapes: bool) -> Result<String, WordError> {
        self.chars.next();
        let mut out = String::new();
        loop {
            match self.chars.peek().copied() {
                None => {
                    return Err(WordError::UnclosedQuote {
                        word: self.word.to_owned(),
                    });
                }
                Some('"') => {
                    self.chars.next();
                    return Ok(out);
                }
                Some('$') => out.push_str(&self.dollar()?),
                Some(c) => {
                    self.chars.next();
                    if c == self.escape {
                        if raw_escapes {
                            out.push(c);
                        }
                        match self.chars.peek().copied() {
                            None => continue,
                            Some(n) if n == '"' || n == '$' || n == self.escape => {
                                self.chars.next();
                                out.push(n);
                            }
                            // Other escapes stay as written.
                            Some(_) if !raw_escapes => out.push(c),
                            Some(_) => {}
                        }
                    } else {
                        out.push(c);
                    }
                }
            }
        }
    }

    /// A name after `$`: letters, digits and `_`; a run of digits or one special parameter
    /// (`$1`, `$@`) as the shell reads them (always unset here).
    fn name(&mut self) -> String {
        let mut name = String::new();
        if let Some(&c) = self.chars.peek() {
            if c.is_ascii_digit() {
                while let Some(&d) = self.chars.peek().filter(|d| d.is_ascii_digit()) {
                    name.push(d);
                    self.chars.next();
                }
                return name;
            }
            if "@*#?-$!".contains(c) {
                self.chars.next();
                return c.to_string();
            }
        }
        while let Some(&c) = self
            .chars
            .peek()
            .filter(|c| c.is_alphanumeric() || **c == '_')
        {
            name.push(c);
            self.chars.next();
        }
        name
    }

    fn dollar(&mut self) -> Result<String, WordError> {
        self.chars.next();
        if self.chars.peek() != Some(&'{') {
            let name = self.name();
            if name.is_empty() {
                return Ok("$".into());
            }
            return Ok(self.vars.get(&name).unwrap_or_default());
        }
        self.chars.next();
        match self.chars.peek() {
            None => {
                return Err(WordError::Unclosed {
                    word: self.word.to_owned(),
                });
            }
            Some('{' | '}' | ':') => return Err(self.bad()),
            Some(_) => {}
        }
        let name = self.name();
        if name.is_empty() {
            return Err(self.bad());
        }
        let Some(op) = self.chars.next() else {
            return Err(WordError::Unclosed {
                word: self.word.to_owned(),
            });
        };
        let value = self.vars.get(&name);
        match op {
            '}' => Ok(value.unwrap_or_default()),
            ':' | '+' | '-' | '?' | '#' | '%' => {
                let (colon, op) = if op == ':' {
                    match self.chars.next() {
                        Some(o @ ('+' | '-' | '?')) => (true, o),
                        other => {
                            return Err(WordError::Unsupported {
                                word: self.word.to_owned(),
                                modifier: format!(
                                    ":{}",
                                    other.map(String::from).unwrap_or_default()
                                ),
                            });
                        }
                    }
                } else {
                    (false, op)
                };
                let pattern = op == '#' || op == '%';
                let (word, _, closed) = self.until(Some('}'), pattern)?;
                if !closed {
                    return Err(WordError::Unclosed {
                        word: self.word.to_owned(),
                    });
                }
                // With a colon an empty value counts as unset.
                let present = value.clone().filter(|v| !(colon && v.is_empty()));
                match op {
                    '-' => Ok(present.unwrap_or(word)),
                    '+' => Ok(if present.is_some() {
                        word
                    } else {
                        String::new()
                    }),
                    '?' => match present {
                        Some(v) => Ok(v),
                        None => Err(WordError::Required {
                            word: self.word.to_owned(),
                            name,
                            message: if !word.is_empty() {
                                word
                            } else if value.is_none() {
                                "is not allowed to be unset".into()
                            } else {
                                "is not allowed to be empty".into()
                            },
                        }),
                    },
                    _ => {
                        let (longest, pattern) = match word.strip_prefix(op) {
                            Some(rest) => (true, rest.to_owned()),
                            None => (false, word),
                        };
                        let glob =
                            Pattern::parse(&pattern).ok_or_else(|| WordError::BadPattern {
                                word: self.word.to_owned(),
                                pattern: pattern.clone(),
                            })?;
                        let value = value.unwrap_or_default();
                        Ok(if op == '#' {
                            glob.strip_prefix(&value, longest)
                        } else {
                            glob.strip_suffix(&value, longest)
                        })
                    }
                }
            }
            '/' => {
                let all = self.chars.peek() == Some(&'/');
                if all {
                    self.chars.next();
                }
                let (pattern, _, closed) = self.until(Some('/'), true)?;
                if !closed {
                    return Err(WordError::Unclosed {
                        word: self.word.to_owned(),
                    });
                }
                let (replacement, _, closed) = self.until(Some('}'), true)?;
                if !closed {
                    return Err(WordError::Unclosed {
                        word: self.word.to_owned(),
                    });
                }
                let glob = Pattern::parse(&pattern).ok_or_else(|| WordError::BadPattern {
                    word: self.word.to_owned(),
                    pattern: pattern.clone(),
                })?;
                Ok(glob.replace(&value.unwrap_or_default(), &replacement, all))
            }
            other => Err(WordError::Unsupported {
                word: self.word.to_owned(),
                modifier: other.to_string(),
            }),
        }
    }
}

/// A shell pattern of substitution: `*` any run, `?` one character, `\` before `*`, `?` or `\`
/// makes it literal (before `}` or `/` the escape only kept the character from ending the word).
#[derive(Debug, Clone, PartialEq)]
enum Token {
    Any,
    One,
    Char(char),
}

struct Pattern(Vec<Token>);

impl Pattern {
    fn parse(text: &str) -> Option<Pattern> {
        let mut tokens = Vec::new();
        let mut chars = text.chars().peekable();
        while let Some(c) = chars.next() {
            tokens.push(match c {
                '*' => Token::Any,
                '?' => Token::One,
                '\\' => match chars.next() {
                    Some(n @ ('*' | '?' | '\\' | '}' | '/')) => Token::Char(n),
                    _ => return None,
                },
                c => Token::Char(c),
            });
        }
        Some(Pattern(tokens))
    }

    /// Whether the pattern matches all of `text`.
    fn matches(&self, text: &[char]) -> bool {
        fn go(p: &[Token], t: &[char]) -> bool {
            match p.split_first() {
                None => t.is_empty(),
                Some((Token::Any, rest)) => (0..=t.len()).any(|i| go(rest, &t[i..])),
                Some((Token::One, rest)) => !t.is_empty() && go(rest, &t[1..]),
                Some((Token::Char(c), rest)) => t.first() == Some(c) && go(rest, &t[1..]),
            }
        }
        go(&self.0, text)
    }

    fn strip_prefix(&self, value: &str, longest: bool) -> String {
        let chars: Vec<char> = value.chars().collect();
        let mut ends: Box<dyn Iterator<Item = usize>> = if longest {
            Box::new((0..=chars.len()).rev())
        } else {
            Box::new(0..=chars.len())
        };
        match ends.find(|&end| self.matches(&chars[..end])) {
            Some(end) => chars[end..].iter().collect(),
            None => value.to_owned(),
        }
    }

    fn strip_suffix(&self, value: &str, longest: bool) -> String {
        let chars: Vec<char> = value.chars().collect();
        let mut starts: Box<dyn Iterator<Item = usize>> = if longest {
            Box::new(0..=chars.len())
        } else {
            Box::new((0..=chars.len()).rev())
        };
        match starts.find(|&start| self.matches(&chars[start..])) {
            Some(start) => chars[..start].iter().collect(),
            None => value.to_owned(),
        }
    }

    /// The leftmost match, longest at its start; `all`: every non-overlapping one after it.
    fn replace(&self, value: &str, replacement: &str, all: bool) -> String {
        let chars: Vec<char> = value.chars().collect();
        let mut out = String::new();
        let mut at = 0;
        while at <= chars.len() {
            let found = (at..=chars.len()).find_map(|start| {
                (start..=chars.len())
                    .rev()
                    .find(|&end| self.matches(&chars[start..end]))
                    .map(|end| (start, end))
            });
            let Some((start, end)) = found else { break };
            out.extend(&chars[at..start]);
            out.push_str(replacement);
            if !all {
                at = end;
                break;
            }
            if end == start {
                // An empty match: keep one character and go on, as regexp replacement does.
                out.extend(chars.get(start));
                at = end + 1;
            } else {
                at = end;
            }
        }
        if at <= chars.len() {
            out.extend(&chars[at..]);
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn vars(name: &str) -> Option<String> {
        match name {
            "A" => Some("1".into()),
            "EMPTY" => Some(String::new()),
            "PATHS" => Some("/usr/local/bin:/usr/bin:/bin".into()),
            "FILE" => Some("archive.tar.gz".into()),
            "PORTS" => Some("80 443/tcp".into()),
            _ => None,
        }
    }

    fn w(text: &str) -> String {
        Lexer::default().word(text, &vars).unwrap()
    }

    #[test]
    fn plain_forms_defaults_and_alternatives() {
        assert_eq!(w("$A-${A}"), "1-1");
        assert_eq!(w("[$UNSET][${UNSET}]"), "[][]");
        assert_eq!(w("${UNSET:-d} ${EMPTY:-d} ${A:-d}"), "d d 1");
        assert_eq!(w("${UNSET-d} ${EMPTY-d} ${A-d}"), "d  1");
        assert_eq!(w("${UNSET:+x} ${EMPTY:+x} ${A:+x}"), "  x");
        assert_eq!(w("${UNSET+x} ${EMPTY+x} ${A+x}"), " x x");
        assert_eq!(
            w("${UNSET:-${A}}"),
            "1",
            "a default that refers to a variable"
        );
        assert_eq!(w("$"), "$");
        assert_eq!(w("a$ b"), "a$ b");
        assert_eq!(w("$1x"), "x", "positional parameters are never set");
    }

    #[test]
    fn required_forms_fail_with_their_message() {
        let e = |t| Lexer::default().word(t, &vars).unwrap_err().to_string();
        assert!(e("${UNSET:?}").contains("UNSET: is not allowed to be unset"));
        assert!(e("${EMPTY:?}").contains("EMPTY: is not allowed to be empty"));
        assert!(e("${UNSET?give it}").contains("UNSET: give it"));
        assert_eq!(w("${EMPTY?x}"), "", "without the colon, empty is set");
        assert_eq!(w("${A:?x}"), "1");
    }

    #[test]
    fn prefix_suffix_and_replacement_patterns() {
        assert_eq!(w("${FILE#*.}"), "tar.gz");
        assert_eq!(w("${FILE##*.}"), "gz");
        assert_eq!(w("${FILE%.*}"), "archive.tar");
        assert_eq!(w("${FILE%%.*}"), "archive");
        assert_eq!(w("${FILE#nomatch}"), "archive.tar.gz");
        assert_eq!(w("${FILE%.ta?.gz}"), "archive");
        assert_eq!(w("${PATHS/:/ }"), "/usr/local/bin /usr/bin:/bin");
        assert_eq!(w("${PATHS//:/ }"), "/usr/local/bin /usr/bin /bin");
        assert_eq!(w("${PATHS//\\//_}"), "_usr_local_bin:_usr_bin:_bin");
        assert_eq!(w("${FILE/a*./X}"), "Xgz", "greedy at the leftmost match");
        assert_eq!(w("${UNSET//a/b}"), "");
        assert_eq!(
            w("${FILE#\\*}"),
            "archive.tar.gz",
            "an escaped star is literal"
        );
    }

    #[test]
    fn unsupported_forms_are_errors_never_empty() {
        for text in [
            "${A:0:1}", "${A:=x}", "${A=x}", "${A^^}", "${#A}", "${}", "${:-x}", "${A", "${A:-x",
            "${A/x}",
        ] {
            let r = Lexer::default().word(text, &vars);
            assert!(r.is_err(), "{text} gave {r:?}");
        }
    }

    #[test]
    fn quotes_and_escapes() {
        assert_eq!(
            w("'$A \"q\"'"),
            "$A \"q\"",
            "nothing is special in single quotes"
        );
        assert_eq!(w("\"$A '1' \\\" \\$A \\x\""), "1 '1' \" $A \\x");
        assert_eq!(w("\\$A \\\"x"), "$A \"x");
        assert_eq!(w("a\\ b"), "a b");
        assert!(Lexer::default().word("'open", &vars).is_err());
        assert!(Lexer::default().word("\"open", &vars).is_err());
        let backtick = Lexer { escape: '`' };
        assert_eq!(backtick.word("c:\\dir `$A", &vars).unwrap(), "c:\\dir $A");
    }

    #[test]
    fn words_split_after_expansion_but_not_inside_quotes() {
        let ws = |t| Lexer::default().words(t, &vars).unwrap();
        assert_eq!(ws("$PORTS 53/udp"), ["80", "443/tcp", "53/udp"]);
        assert_eq!(ws("\"$PORTS\" x"), ["80 443/tcp", "x"]);
        assert_eq!(ws("a\\ b  'c d' \"\""), ["a b", "c d", ""]);
        assert_eq!(ws("  "), Vec::<String>::new());
    }
}
