//! Placeholders: the `?` markers clients write (through the endpoints or
//! `Connection.sql`), numbered into the `$1, $2, ...` placeholders DataFusion
//! binds.

/// `text` with every `?` outside quotes and comments replaced by `$n`, and
/// how many there were.
pub fn number_markers(text: &str) -> (String, usize) {
    let mut out = String::with_capacity(text.len() + 8);
    let mut count = 0;
    let mut chars = text.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '\'' | '"' | '`' => {
                out.push(c);
                while let Some(inner) = chars.next() {
                    out.push(inner);
                    if inner == '\\' && c != '`' {
                        if let Some(escaped) = chars.next() {
                            out.push(escaped);
                        }
                        continue;
                    }
                    if inner == c {
                        if chars.peek() == Some(&c) {
                            out.push(chars.next().expect("peeked"));
                            continue;
                        }
                        break;
                    }
                }
            }
            '-' if chars.peek() == Some(&'-') => {
                out.push(c);
                for inner in chars.by_ref() {
                    out.push(inner);
                    if inner == '\n' {
                        break;
                    }
                }
            }
            '#' => {
                out.push(c);
                for inner in chars.by_ref() {
                    out.push(inner);
                    if inner == '\n' {
                        break;
                    }
                }
            }
            '/' if chars.peek() == Some(&'*') => {
                out.push(c);
                out.push(chars.next().expect("peeked"));
                let mut previous = ' ';
                for inner in chars.by_ref() {
                    out.push(inner);
                    if previous == '*' && inner == '/' {
                        break;
                    }
                    previous = inner;
                }
            }
            '?' => {
                count += 1;
                out.push('$');
                out.push_str(&count.to_string());
            }
            _ => out.push(c),
        }
    }
    (out, count)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn markers_are_numbered_outside_quotes_and_comments() {
        let (text, n) = number_markers(
            "SELECT ?, '?', \"it\\\"s ?\", `a?` -- ?\n, /* ? */ ? # ?\n FROM t WHERE a = ?",
        );
        assert_eq!(n, 3);
        assert_eq!(
            text,
            "SELECT $1, '?', \"it\\\"s ?\", `a?` -- ?\n, /* ? */ $2 # ?\n FROM t WHERE a = $3"
        );
        assert_eq!(number_markers("SELECT 'it''s ?' , ?").1, 1);
    }
}
