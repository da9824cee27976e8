//! Splitting a script into statements, and recognising the statements no SQL
//! parser here knows: HeatWave's `ALTER TABLE t SECONDARY_LOAD |
//! SECONDARY_UNLOAD | SECONDARY_ENGINE = RAPID`, and MySQL's `SHOW [FULL]
//! PROCESSLIST` and `KILL [QUERY | CONNECTION] id`.

/// The statements of a script, split on `;` outside quotes and comments.
pub fn split_statements(text: &str) -> Vec<&str> {
    let bytes = text.as_bytes();
    let mut pieces = Vec::new();
    let mut start = 0;
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            quote @ (b'\'' | b'"' | b'`') => {
                i += 1;
                while i < bytes.len() {
                    if bytes[i] == quote {
                        // A doubled quote is an escaped one.
                        if i + 1 < bytes.len() && bytes[i + 1] == quote {
                            i += 2;
                            continue;
                        }
                        break;
                    }
                    if bytes[i] == b'\\' && quote == b'\'' {
                        i += 1;
                    }
                    i += 1;
                }
            }
            b'-' if bytes.get(i + 1) == Some(&b'-') => {
                while i < bytes.len() && bytes[i] != b'\n' {
                    i += 1;
                }
            }
            b'/' if bytes.get(i + 1) == Some(&b'*') => {
                i += 2;
                while i + 1 < bytes.len() && !(bytes[i] == b'*' && bytes[i + 1] == b'/') {
                    i += 1;
                }
                i += 1;
            }
            b';' => {
                pieces.push(&text[start..i]);
                start = i + 1;
            }
            _ => {}
        }
        i += 1;
    }
    pieces.push(&text[start.min(text.len())..]);
    pieces
        .into_iter()
        .map(str::trim)
        .filter(|p| !strip_comments(p).trim().is_empty())
        .collect()
}

/// The text without `--` and `/* */` comments (outside quotes is assumed: only
/// used on statement heads).
fn strip_comments(text: &str) -> String {
    let mut out = String::new();
    let mut rest = text;
    while !rest.is_empty() {
        if let Some(after) = rest.strip_prefix("--") {
            rest = after.find('\n').map(|n| &after[n..]).unwrap_or("");
        } else if let Some(after) = rest.strip_prefix("/*") {
            rest = after.find("*/").map(|n| &after[n + 2..]).unwrap_or("");
        } else {
            let c = rest.chars().next().expect("not empty");
            out.push(c);
            rest = &rest[c.len_utf8()..];
        }
    }
    out
}

/// MySQL's `USER()`, `CURRENT_USER()` and `SESSION_USER()` as the SQL
/// parser reads them: without parentheses (it takes these names as
/// niladic functions, as SQL's `CURRENT_USER`). Text in quotes and comments
/// is left alone; the text is returned unchanged when there is nothing to do.
pub fn bare_user_functions(text: &str) -> std::borrow::Cow<'_, str> {
    const NAMES: [&str; 3] = ["user", "current_user", "session_user"];
    if !text.to_ascii_lowercase().contains("user") {
        return std::borrow::Cow::Borrowed(text);
    }
    let bytes = text.as_bytes();
    let mut out = String::with_capacity(text.len());
    let mut i = 0;
    let mut changed = false;
    while i < bytes.len() {
        let c = bytes[i];
        match c {
            b'\'' | b'"' | b'`' => {
                let start = i;
                i += 1;
                while i < bytes.len() && bytes[i] != c {
                    if bytes[i] == b'\\' && c != b'`' {
                        i += 1;
                    }
                    i += 1;
                }
                i = (i + 1).min(bytes.len());
                out.push_str(&text[start..i]);
            }
            b'-' if bytes.get(i + 1) == Some(&b'-') => {
                let end = text[i..].find('\n').map_or(bytes.len(), |n| i + n);
                out.push_str(&text[i..end]);
                i = end;
            }
            b'/' if bytes.get(i + 1) == Some(&b'*') => {
                let end = text[i + 2..]
                    .find("*/")
                    .map_or(bytes.len(), |n| i + 2 + n + 2);
                out.push_str(&text[i..end]);
                i = end;
            }
            c if c.is_ascii_alphabetic() || c == b'_' => {
                let start = i;
                while i < bytes.len() && (bytes[i].is_ascii_alphanumeric() || bytes[i] == b'_') {
                    i += 1;
                }
                let word = &text[start..i];
                out.push_str(word);
                if NAMES.iter().any(|n| word.eq_ignore_ascii_case(n)) {
                    let rest = &text[i..];
                    let trimmed = rest.trim_start();
                    if let Some(inner) = trimmed.strip_prefix('(')
                        && let Some(after) = inner.trim_start().strip_prefix(')')
                    {
                        i = text.len() - after.len();
                        changed = true;
                    }
                }
            }
            _ => {
                let ch = text[i..].chars().next().expect("in bounds");
                out.push(ch);
                i += ch.len_utf8();
            }
        }
    }
    if changed {
        std::borrow::Cow::Owned(out)
    } else {
        std::borrow::Cow::Borrowed(text)
    }
}

/// `use_secondary_engine`, HeatWave's per-session offload switch.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OffloadMode {
    /// Offload when possible, else run on the row store.
    On,
    /// Always run on the row store.
    Off,
    /// Offload or fail.
    Forced,
}

impl OffloadMode {
    /// `ON`, `OFF` or `FORCED` (also 1/0, TRUE/FALSE), any case.
    pub fn parse(value: &str) -> Option<OffloadMode> {
        match value.trim().to_ascii_uppercase().as_str() {
            "ON" | "1" | "TRUE" => Some(OffloadMode::On),
            "OFF" | "0" | "FALSE" => Some(OffloadMode::Off),
            "FORCED" => Some(OffloadMode::Forced),
            _ => None,
        }
    }

    pub fn name(&self) -> &'static str {
        match self {
            OffloadMode::On => "ON",
            OffloadMode::Off => "OFF",
            OffloadMode::Forced => "FORCED",
        }
    }
}

/// A statement lakewave parses itself.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Custom {
    SecondaryLoad(String),
    SecondaryUnload(String),
    /// `ALTER TABLE t SECONDARY_ENGINE = engine` (accepted; RAPID or NULL).
    SecondaryEngine(String, String),
    ShowProcessList,
    /// `KILL QUERY id` (`query_only`) or `KILL [CONNECTION] id`.
    Kill {
        id: u64,
        query_only: bool,
    },
}

/// Recognise a custom statement; `None` for everything else.
pub fn parse_custom(statement: &str) -> Option<Custom> {
    let text = strip_comments(statement);
    let words: Vec<&str> = text.split_whitespace().collect();
    let upper: Vec<String> = words.iter().map(|w| w.to_ascii_uppercase()).collect();
    if upper.len() >= 4 && upper[0] == "ALTER" && upper[1] == "TABLE" {
        let last = upper.last().expect("four words");
        let name = || words[2..words.len() - 1].join(" ");
        if last == "SECONDARY_LOAD" {
            return Some(Custom::SecondaryLoad(name()));
        }
        if last == "SECONDARY_UNLOAD" {
            return Some(Custom::SecondaryUnload(name()));
        }
        let joined = upper[3..].join(" ").replace(' ', "");
        if let Some(engine) = joined.strip_prefix("SECONDARY_ENGINE") {
            let engine = engine.trim_start_matches('=').to_string();
            return Some(Custom::SecondaryEngine(words[2].to_string(), engine));
        }
        return None;
    }
    match upper
        .iter()
        .map(String::as_str)
        .collect::<Vec<_>>()
        .as_slice()
    {
        ["SHOW", "PROCESSLIST"] | ["SHOW", "FULL", "PROCESSLIST"] => {
            return Some(Custom::ShowProcessList);
        }
        ["KILL", rest @ ..] => {
            let (query_only, id) = match rest {
                ["QUERY", id] => (true, id),
                ["CONNECTION", id] | [id] => (false, id),
                _ => return None,
            };
            return id.parse().ok().map(|id| Custom::Kill { id, query_only });
        }
        _ => {}
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn splits_outside_quotes_and_comments() {
        let pieces = split_statements(
            "SELECT 'a;b'; -- c;d\nSELECT \"x;\" /* ; */ ; ; INSERT INTO t VALUES ('it''s;')",
        );
        assert_eq!(pieces.len(), 3, "{pieces:?}");
        assert_eq!(pieces[0], "SELECT 'a;b'");
        assert!(pieces[2].ends_with("('it''s;')"));
        assert!(split_statements("  ;  -- nothing\n").is_empty());
    }

    #[test]
    fn recognises_heatwave_statements() {
        assert_eq!(
            parse_custom("alter table shop.orders  secondary_load"),
            Some(Custom::SecondaryLoad("shop.orders".into()))
        );
        assert_eq!(
            parse_custom("ALTER TABLE t SECONDARY_UNLOAD"),
            Some(Custom::SecondaryUnload("t".into()))
        );
        assert_eq!(
            parse_custom("ALTER TABLE t SECONDARY_ENGINE = RAPID"),
            Some(Custom::SecondaryEngine("t".into(), "RAPID".into()))
        );
        assert_eq!(
            parse_custom("show full processlist"),
            Some(Custom::ShowProcessList)
        );
        assert_eq!(
            parse_custom("KILL QUERY 12"),
            Some(Custom::Kill {
                id: 12,
                query_only: true
            })
        );
        assert_eq!(
            parse_custom("kill connection 3"),
            Some(Custom::Kill {
                id: 3,
                query_only: false
            })
        );
        assert_eq!(parse_custom("KILL me"), None);
        assert_eq!(
            OffloadMode::parse("'forced'".trim_matches('\'')),
            Some(OffloadMode::Forced)
        );
        assert_eq!(parse_custom("ALTER TABLE t ADD COLUMN c INT"), None);
        assert_eq!(parse_custom("SET use_secondary_engine = OFF"), None);
    }

    #[test]
    fn user_functions_lose_their_parentheses_outside_quotes() {
        assert_eq!(
            bare_user_functions("select DATABASE(), USER() limit 1"),
            "select DATABASE(), USER limit 1"
        );
        assert_eq!(
            bare_user_functions("SELECT current_user ( ), 'USER()', session_user() -- user()"),
            "SELECT current_user, 'USER()', session_user -- user()"
        );
        assert!(matches!(
            bare_user_functions("SELECT users() FROM t"),
            std::borrow::Cow::Borrowed(_)
        ));
    }
}
