//! Splitting a script into statements, and recognising the HeatWave statements
//! no SQL parser knows: `ALTER TABLE t SECONDARY_LOAD | SECONDARY_UNLOAD |
//! SECONDARY_ENGINE = RAPID` and `SET use_secondary_engine = ON | OFF | FORCED`.

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
    SetOffload(Result<OffloadMode, String>),
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
    if upper.first().map(String::as_str) == Some("SET") {
        let rest = text.trim()[3..].trim();
        let lowered = rest.to_ascii_lowercase();
        let lowered = lowered
            .trim_start_matches("session ")
            .trim_start_matches("@@session.")
            .trim_start_matches("@@")
            .trim_start();
        if let Some(value) = lowered.strip_prefix("use_secondary_engine") {
            let value = value.trim().trim_start_matches('=').trim();
            let value = value
                .trim_matches(|c| c == '\'' || c == '"')
                .to_ascii_uppercase();
            let mode = match value.as_str() {
                "ON" | "1" | "TRUE" => Ok(OffloadMode::On),
                "OFF" | "0" | "FALSE" => Ok(OffloadMode::Off),
                "FORCED" => Ok(OffloadMode::Forced),
                other => Err(other.to_string()),
            };
            return Some(Custom::SetOffload(mode));
        }
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
            parse_custom("SET SESSION use_secondary_engine = FORCED"),
            Some(Custom::SetOffload(Ok(OffloadMode::Forced)))
        );
        assert_eq!(
            parse_custom("set @@use_secondary_engine='off'"),
            Some(Custom::SetOffload(Ok(OffloadMode::Off)))
        );
        assert!(matches!(
            parse_custom("SET use_secondary_engine = maybe"),
            Some(Custom::SetOffload(Err(_)))
        ));
        assert_eq!(parse_custom("ALTER TABLE t ADD COLUMN c INT"), None);
        assert_eq!(
            parse_custom("SET datafusion.execution.batch_size = 10"),
            None
        );
    }
}
