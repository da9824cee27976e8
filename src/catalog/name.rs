//! Table names: a database and a table, normalised the way SQL resolves
//! identifiers.

use std::fmt;

use super::CatalogError;

pub const DEFAULT_DATABASE: &str = "main";

/// A database-qualified table name, normalised the way SQL resolves identifiers:
/// unquoted parts are lower-cased, quoted parts (`"Name"` or `` `Name` ``) kept.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct TableName {
    pub database: String,
    pub table: String,
}

impl TableName {
    pub fn new(database: impl Into<String>, table: impl Into<String>) -> Self {
        TableName {
            database: database.into(),
            table: table.into(),
        }
    }

    /// Parse `table` or `database.table`.
    pub fn parse(text: &str, default_database: &str) -> Result<Self, CatalogError> {
        Self::parse_folding(text, default_database, true)
    }

    /// As MySQL reads a name on a server with `lower_case_table_names = 0`:
    /// unquoted parts keep their case too.
    pub fn parse_as_written(text: &str, default_database: &str) -> Result<Self, CatalogError> {
        Self::parse_folding(text, default_database, false)
    }

    fn parse_folding(text: &str, default_database: &str, fold: bool) -> Result<Self, CatalogError> {
        let invalid = |reason: &str| CatalogError::InvalidName {
            name: text.to_string(),
            reason: reason.to_string(),
        };
        let parts = split_identifiers(text, fold).map_err(|r| invalid(&r))?;
        match parts.as_slice() {
            [table] => Ok(TableName::new(default_database, table.clone())),
            [database, table] => Ok(TableName::new(database.clone(), table.clone())),
            _ => Err(invalid("expected 'table' or 'database.table'")),
        }
    }
}

impl fmt::Display for TableName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}.{}", self.database, self.table)
    }
}

fn split_identifiers(text: &str, fold: bool) -> Result<Vec<String>, String> {
    let mut parts = Vec::new();
    let mut chars = text.trim().chars().peekable();
    loop {
        let mut part = String::new();
        match chars.peek() {
            Some(&quote) if quote == '"' || quote == '`' => {
                chars.next();
                loop {
                    match chars.next() {
                        Some(c) if c == quote => {
                            if chars.peek() == Some(&quote) {
                                chars.next();
                                part.push(quote);
                            } else {
                                break;
                            }
                        }
                        Some(c) => part.push(c),
                        None => return Err("unterminated quoted identifier".into()),
                    }
                }
            }
            _ => {
                while let Some(&c) = chars.peek() {
                    if c == '.' {
                        break;
                    }
                    if !(c.is_alphanumeric() || c == '_' || c == '$') {
                        return Err(format!("unexpected character '{c}' (quote the name)"));
                    }
                    part.push(if fold { c.to_ascii_lowercase() } else { c });
                    chars.next();
                }
            }
        }
        if part.is_empty() {
            return Err("empty name".into());
        }
        parts.push(part);
        match chars.next() {
            None => return Ok(parts),
            Some('.') => continue,
            Some(c) => return Err(format!("unexpected character '{c}' after a quoted name")),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_follow_sql_identifier_rules() {
        let n = TableName::parse("Orders", "main").unwrap();
        assert_eq!(n, TableName::new("main", "orders"));
        let n = TableName::parse("Shop.\"MixedCase\"", "main").unwrap();
        assert_eq!(n, TableName::new("shop", "MixedCase"));
        let n = TableName::parse("`a.b`", "main").unwrap();
        assert_eq!(n.table, "a.b");
        assert!(TableName::parse("a.b.c", "main").is_err());
        assert!(TableName::parse("", "main").is_err());
        assert!(TableName::parse("bad name", "main").is_err());
        let n = TableName::parse_as_written("Shop.Orders", "main").unwrap();
        assert_eq!(n, TableName::new("Shop", "Orders"));
        assert!(TableName::parse_as_written("bad name", "main").is_err());
    }
}
