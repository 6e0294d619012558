//! A small Rust lexer, enough to find the paths a file names: comments,
//! strings (raw and byte strings too) and character literals are left out,
//! use trees are expanded, and `crate::`, `super::` and `self::` paths are
//! made absolute. Kept apart from the rules in `layout.rs`, which it serves.

use std::collections::BTreeMap;

use super::ModPath;

#[derive(Clone, Debug, PartialEq, Eq)]
enum Tok {
    Ident(String),
    /// `::`
    Colons,
    Punct(char),
}

fn is_ident_start(c: char) -> bool {
    c.is_alphabetic() || c == '_'
}

fn is_ident_char(c: char) -> bool {
    c.is_alphanumeric() || c == '_'
}

/// The tokens of `text` that matter for paths, with comments, string,
/// byte-string, raw-string and character literals left out (lifetimes are
/// not literals).
fn tokens(text: &str) -> Vec<Tok> {
    let s: Vec<char> = text.chars().collect();
    let at = |i: usize| s.get(i).copied();
    let mut out = Vec::new();
    let mut i = 0;
    while i < s.len() {
        let c = s[i];
        if c.is_whitespace() {
            i += 1;
        } else if c == '/' && at(i + 1) == Some('/') {
            while i < s.len() && s[i] != '\n' {
                i += 1;
            }
        } else if c == '/' && at(i + 1) == Some('*') {
            // Block comments nest.
            let mut depth = 0;
            while i < s.len() {
                if s[i] == '/' && at(i + 1) == Some('*') {
                    depth += 1;
                    i += 2;
                } else if s[i] == '*' && at(i + 1) == Some('/') {
                    depth -= 1;
                    i += 2;
                    if depth == 0 {
                        break;
                    }
                } else {
                    i += 1;
                }
            }
        } else if c == '"' {
            i += 1;
            while i < s.len() && s[i] != '"' {
                i += if s[i] == '\\' { 2 } else { 1 };
            }
            i += 1;
        } else if c == '\'' {
            if at(i + 1) == Some('\\') {
                // '\n', '\'', '\u{..}': up to the closing quote.
                i += 3;
                while i < s.len() && s[i] != '\'' {
                    i += 1;
                }
                i += 1;
            } else if at(i + 2) == Some('\'') {
                i += 3;
            } else {
                // A lifetime or a label.
                i += 1;
            }
        } else if is_ident_start(c) {
            let start = i;
            while i < s.len() && is_ident_char(s[i]) {
                i += 1;
            }
            let word: String = s[start..i].iter().collect();
            let hashes = s[i..].iter().take_while(|&&c| c == '#').count();
            if (word == "r" || word == "br") && at(i + hashes) == Some('"') {
                // A raw string: up to `"` and as many `#`.
                i += hashes + 1;
                while i < s.len()
                    && !(s[i] == '"'
                        && s[i + 1..]
                            .iter()
                            .take(hashes)
                            .filter(|&&c| c == '#')
                            .count()
                            == hashes)
                {
                    i += 1;
                }
                i += 1 + hashes;
            } else {
                out.push(Tok::Ident(word));
            }
        } else if c.is_ascii_digit() {
            while i < s.len()
                && (is_ident_char(s[i])
                    || (s[i] == '.' && at(i + 1).is_some_and(|c| c.is_ascii_digit())))
            {
                i += 1;
            }
        } else if c == ':' && at(i + 1) == Some(':') {
            out.push(Tok::Colons);
            i += 2;
        } else {
            out.push(Tok::Punct(c));
            i += 1;
        }
    }
    out
}

fn is_ident(tok: Option<&Tok>, word: &str) -> bool {
    matches!(tok, Some(Tok::Ident(w)) if w == word)
}

/// The paths of the use tree (or plain path) at `toks[at..]`:
/// `a::b::{self, c, d::{e, f as g}}` gives `a::b`, `a::b::c`, `a::b::d::e`
/// and `a::b::d::f`; a glob ends in `*`. Returns them and where the tree
/// ends.
fn use_tree(toks: &[Tok], mut at: usize) -> (Vec<ModPath>, usize) {
    let mut prefix = ModPath::new();
    loop {
        match toks.get(at) {
            Some(Tok::Punct('{')) => {
                at += 1;
                let mut out = Vec::new();
                loop {
                    match toks.get(at) {
                        None => return (out, at),
                        Some(Tok::Punct('}')) => return (out, at + 1),
                        Some(Tok::Punct(',')) => at += 1,
                        Some(_) => {
                            let (inner, end) = use_tree(toks, at);
                            out.extend(
                                inner
                                    .into_iter()
                                    .map(|p| prefix.iter().cloned().chain(p).collect()),
                            );
                            at = end.max(at + 1);
                        }
                    }
                }
            }
            Some(Tok::Punct('*')) => {
                prefix.push("*".into());
                return (vec![prefix], at + 1);
            }
            Some(Tok::Ident(name)) => {
                if name != "self" {
                    prefix.push(name.clone());
                }
                at += 1;
                if toks.get(at) == Some(&Tok::Colons) {
                    at += 1;
                    continue;
                }
                if is_ident(toks.get(at), "as") {
                    at += 2;
                }
                return (vec![prefix], at);
            }
            _ => {
                return (
                    if prefix.is_empty() {
                        vec![]
                    } else {
                        vec![prefix]
                    },
                    at,
                );
            }
        }
    }
}

/// Every path a file of module `module` names through `crate::`, `super::`
/// or `self::`, made absolute (from the crate root). Inside an inline
/// module (`mod tests { ... }`) `super` is the file's own module.
pub(super) fn references(module: &[String], text: &str) -> Vec<ModPath> {
    let toks = tokens(text);
    let mut out = Vec::new();
    // Brace depth, and the inline modules open: (depth of their body, name).
    let mut depth = 0usize;
    let mut inline: Vec<(usize, String)> = Vec::new();
    let mut opening: Option<String> = None;
    let mut i = 0;
    while i < toks.len() {
        match &toks[i] {
            Tok::Punct('{') => {
                depth += 1;
                if let Some(name) = opening.take() {
                    inline.push((depth, name));
                }
            }
            Tok::Punct('}') => {
                if inline.last().is_some_and(|(d, _)| *d == depth) {
                    inline.pop();
                }
                depth = depth.saturating_sub(1);
            }
            Tok::Ident(w) if w == "mod" => {
                if let (Some(Tok::Ident(name)), Some(Tok::Punct('{'))) =
                    (toks.get(i + 1), toks.get(i + 2))
                {
                    opening = Some(name.clone());
                }
            }
            Tok::Ident(w)
                if matches!(w.as_str(), "crate" | "super" | "self")
                    && toks.get(i + 1) == Some(&Tok::Colons)
                    && (i == 0 || toks[i - 1] != Tok::Colons) =>
            {
                let mut base: ModPath = module
                    .iter()
                    .cloned()
                    .chain(inline.iter().map(|(_, n)| n.clone()))
                    .collect();
                let mut j = i;
                if w == "crate" {
                    base.clear();
                    j += 2;
                } else if w == "self" {
                    j += 2;
                } else {
                    while is_ident(toks.get(j), "super") && toks.get(j + 1) == Some(&Tok::Colons) {
                        base.pop();
                        j += 2;
                    }
                }
                let (paths, end) = use_tree(&toks, j);
                out.extend(
                    paths
                        .into_iter()
                        .map(|p| base.iter().cloned().chain(p).collect()),
                );
                i = end.max(i + 1);
                continue;
            }
            _ => {}
        }
        i += 1;
    }
    out
}

/// The names a `lib.rs` or `mod.rs` re-exports from its children, outside
/// inline modules: `pub use dir::{Entry, ModelRoot};` gives Entry -> dir and
/// ModelRoot -> dir. Globs are skipped.
pub(super) fn reexported(text: &str) -> BTreeMap<String, String> {
    let toks = tokens(text);
    let mut out = BTreeMap::new();
    let mut depth = 0usize;
    for (i, tok) in toks.iter().enumerate() {
        match tok {
            Tok::Punct('{') => depth += 1,
            Tok::Punct('}') => depth = depth.saturating_sub(1),
            Tok::Ident(w) if w == "use" && depth == 0 && i > 0 => {
                let public = is_ident(toks.get(i - 1), "pub") || toks[i - 1] == Tok::Punct(')');
                if !public {
                    continue;
                }
                for path in use_tree(&toks, i + 1).0 {
                    let path: Vec<&String> = path.iter().skip_while(|s| *s == "self").collect();
                    if let ([child, .., name], false) =
                        (path.as_slice(), path.last().is_some_and(|n| *n == "*"))
                    {
                        out.insert((*name).clone(), (*child).clone());
                    }
                }
            }
            _ => {}
        }
    }
    out
}
