//! `.dockerignore` rules, read and matched as Docker's builders do (moby's `patternmatcher` and
//! `ignorefile`): one pattern a line, `#` comments, surrounding whitespace trimmed, each pattern
//! cleaned as a path (`./a/` is `a`, a leading `/` dropped), `!` for an exception; `*` and `?`
//! within one path component, `**` across any number of them, `[...]` classes (`^` negates),
//! `\` escaping the next character. A path is ignored when the last rule that matches it, or
//! one of its parent directories, excludes it.

/// One piece of a compiled pattern.
#[derive(Debug, Clone, PartialEq)]
enum Token {
    Char(char),
    /// `*`: any run without `/`.
    Star,
    /// `?`: one character but `/`.
    One,
    /// `[...]`: ranges and single characters, maybe negated.
    Class {
        negated: bool,
        items: Vec<(char, char)>,
    },
    /// `**/` (or `**` before more pattern): any number of whole components, none included.
    AnyDirs,
    /// `**` at the end: anything at all.
    AnyRest,
}

#[derive(Debug, Clone)]
struct Rule {
    tokens: Vec<Token>,
    /// The cleaned pattern, for finding exceptions that may reach into a directory.
    text: String,
    exception: bool,
}

/// A `.dockerignore` file's rules in order (later rules win).
#[derive(Debug, Clone, Default)]
pub struct IgnoreRules {
    rules: Vec<Rule>,
}

/// `filepath.Clean` for a slash-separated pattern: no empty or `.` components, `..` applied
/// where it can be, no trailing slash; `.` for nothing.
fn clean(path: &str) -> String {
    let rooted = path.starts_with('/');
    let mut parts: Vec<&str> = Vec::new();
    for part in path.split('/') {
        match part {
            "" | "." => {}
            ".." => {
                if parts.last().is_some_and(|p| *p != "..") {
                    parts.pop();
                } else if !rooted {
                    parts.push("..");
                }
            }
            p => parts.push(p),
        }
    }
    let joined = parts.join("/");
    match (rooted, joined.is_empty()) {
        (true, _) => format!("/{joined}"),
        (false, true) => ".".into(),
        (false, false) => joined,
    }
}

fn compile(pattern: &str) -> Vec<Token> {
    let mut tokens = Vec::new();
    let mut chars = pattern.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '*' if chars.peek() == Some(&'*') => {
                chars.next();
                if chars.peek() == Some(&'/') {
                    chars.next();
                }
                tokens.push(if chars.peek().is_none() {
                    Token::AnyRest
                } else {
                    Token::AnyDirs
                });
            }
            '*' => tokens.push(Token::Star),
            '?' => tokens.push(Token::One),
            '\\' => tokens.push(Token::Char(chars.next().unwrap_or('\\'))),
            '[' => {
                let negated = chars.peek() == Some(&'^');
                if negated {
                    chars.next();
                }
                let mut items = Vec::new();
                let mut closed = false;
                while let Some(c) = chars.next() {
                    if c == ']' && !items.is_empty() {
                        closed = true;
                        break;
                    }
                    let c = if c == '\\' {
                        chars.next().unwrap_or(c)
                    } else {
                        c
                    };
                    let mut ahead = chars.clone();
                    if ahead.next() == Some('-')
                        && let Some(end) = ahead.next().filter(|e| *e != ']')
                    {
                        chars.next();
                        chars.next();
                        items.push((c, end));
                    } else {
                        items.push((c, c));
                    }
                }
                if closed {
                    tokens.push(Token::Class { negated, items });
                } else {
                    // An unclosed class matches nothing, as an invalid pattern matches nothing.
                    return vec![Token::Class {
                        negated: false,
                        items: Vec::new(),
                    }];
                }
            }
            c => tokens.push(Token::Char(c)),
        }
    }
    tokens
}

fn matches(tokens: &[Token], text: &[char]) -> bool {
    let Some((first, rest)) = tokens.split_first() else {
        return text.is_empty();
    };
    match first {
        Token::Char(c) => text.first() == Some(c) && matches(rest, &text[1..]),
        Token::One => text.first().is_some_and(|c| *c != '/') && matches(rest, &text[1..]),
        Token::Class { negated, items } => {
            text.first().is_some_and(|c| {
                *c != '/' && items.iter().any(|(a, b)| a <= c && c <= b) != *negated
            }) && matches(rest, &text[1..])
        }
        Token::Star => (0..=text.len())
            .take_while(|&i| i == 0 || text[i - 1] != '/')
            .any(|i| matches(rest, &text[i..])),
        Token::AnyRest => true,
        Token::AnyDirs => {
            matches(rest, text)
                || (1..=text.len())
                    .filter(|&i| text[i - 1] == '/')
                    .any(|i| matches(rest, &text[i..]))
        }
    }
}

impl IgnoreRules {
    /// The rules of a `.dockerignore` file's text.
    pub fn parse(text: &str) -> IgnoreRules {
        let text = text.strip_prefix('\u{feff}').unwrap_or(text);
        let mut rules = Vec::new();
        for line in text.lines() {
            // A comment only where the line starts with `#`, before any trimming.
            if line.starts_with('#') {
                continue;
            }
            let line = line.trim();
            if line.is_empty() {
                continue;
            }
            let (exception, pattern) = match line.strip_prefix('!') {
                Some(p) => (true, p.trim()),
                None => (false, line),
            };
            if pattern.is_empty() {
                continue;
            }
            let mut cleaned = clean(pattern);
            if cleaned.len() > 1
                && let Some(relative) = cleaned.strip_prefix('/')
            {
                cleaned = relative.to_owned();
            }
            rules.push(Rule {
                tokens: compile(&cleaned),
                text: cleaned,
                exception,
            });
        }
        IgnoreRules { rules }
    }

    /// Whether the path (relative to the context, `/`-separated) is ignored.
    pub fn ignored(&self, path: &str) -> bool {
        let path: Vec<char> = path.chars().collect();
        // The parent directories, shortest first: a pattern matching one matches below it.
        let parents: Vec<usize> = path
            .iter()
            .enumerate()
            .filter(|(_, c)| **c == '/')
            .map(|(i, _)| i)
            .collect();
        let mut ignored = false;
        for rule in &self.rules {
            // Only a rule that could change the answer needs to be tried.
            if rule.exception != ignored {
                continue;
            }
            let hit = matches(&rule.tokens, &path)
                || parents
                    .iter()
                    .any(|&end| matches(&rule.tokens, &path[..end]));
            if hit {
                ignored = !rule.exception;
            }
        }
        ignored
    }

    /// Whether an exception could bring back something below the ignored directory `dir`, so
    /// that it must be walked (otherwise it is skipped whole, as `node_modules` should be).
    pub fn may_include_below(&self, dir: &str) -> bool {
        let dir_parts: Vec<&str> = dir.split('/').collect();
        self.rules.iter().filter(|r| r.exception).any(|rule| {
            let parts: Vec<&str> = rule.text.split('/').collect();
            for (i, part) in parts.iter().enumerate() {
                if part.contains(['*', '?', '[', '\\']) {
                    return true;
                }
                match dir_parts.get(i) {
                    // The exception names something below the directory.
                    None => return true,
                    Some(d) if d != part => return false,
                    Some(_) => {}
                }
            }
            // The exception names the directory or one above it.
            true
        })
    }

    pub fn is_empty(&self) -> bool {
        self.rules.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rules(text: &str) -> IgnoreRules {
        IgnoreRules::parse(text)
    }

    #[test]
    fn patterns_match_paths_and_their_contents() {
        let r = rules("node_modules\n*.log\n/build\ndocs/*.md\n");
        assert!(r.ignored("node_modules"));
        assert!(
            r.ignored("node_modules/a/b.js"),
            "a directory's contents go with it"
        );
        assert!(
            !r.ignored("src/node_modules"),
            "a pattern is anchored at the root"
        );
        assert!(r.ignored("x.log"));
        assert!(!r.ignored("logs/x.log"), "`*` stays within a component");
        assert!(r.ignored("build/out"), "a leading / is the context's root");
        assert!(r.ignored("docs/a.md"));
        assert!(!r.ignored("docs/sub/a.md"));
        assert!(!r.ignored("src/main.rs"));
    }

    #[test]
    fn double_star_crosses_components() {
        let r = rules("**/*.pyc\nsecrets/**\n**/tmp\n");
        assert!(r.ignored("a.pyc"));
        assert!(r.ignored("a/b/c.pyc"));
        assert!(r.ignored("secrets/deep/key"));
        assert!(
            !r.ignored("secrets"),
            "`dir/**` is what is below dir, not dir"
        );
        assert!(r.ignored("x/y/tmp/file"));
        assert!(r.ignored("tmp"));
    }

    #[test]
    fn exceptions_comments_whitespace_and_cleaning() {
        let r = rules("# a comment\n  *.md  \n!README.md\n\n./out/\n # not a comment\n");
        assert!(r.ignored("CHANGES.md"));
        assert!(!r.ignored("README.md"));
        assert!(r.ignored("out/x"));
        assert!(
            r.ignored("# not a comment"),
            "only a line starting with # is a comment"
        );
        let later_wins = rules("!keep\n*\n");
        assert!(later_wins.ignored("keep"));
        let back = rules("dir\n!dir/keep\n");
        assert!(back.ignored("dir"));
        assert!(!back.ignored("dir/keep"));
        assert!(!back.ignored("dir/keep/inner"));
        assert!(back.ignored("dir/other"));
    }

    #[test]
    fn classes_and_escapes() {
        let r = rules("file[0-9].txt\n[^a]*.tmp\nlit\\*\n");
        assert!(r.ignored("file3.txt"));
        assert!(!r.ignored("filex.txt"));
        assert!(r.ignored("b.tmp"));
        assert!(!r.ignored("a.tmp"));
        assert!(r.ignored("lit*"));
        assert!(!r.ignored("literal"));
        assert!(!rules("[unclosed\n").ignored("[unclosed"));
    }

    #[test]
    fn which_ignored_directories_need_walking() {
        let r = rules("node_modules\nvendor\n!vendor/keep.txt\n");
        assert!(!r.may_include_below("node_modules"));
        assert!(r.may_include_below("vendor"));
        assert!(rules("a\n!**/x\n").may_include_below("a"));
        assert!(!rules("a\n!b/x\n").may_include_below("a"));
    }

    #[test]
    fn clean_is_filepath_clean() {
        assert_eq!(clean("./a//b/../c/"), "a/c");
        assert_eq!(clean("../x"), "../x");
        assert_eq!(clean("/"), "/");
        assert_eq!(clean("/a/./b"), "/a/b");
        assert_eq!(clean(""), ".");
    }
}
