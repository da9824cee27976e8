//! The persisted form of a catalog entry: a JSON document per name, written
//! structurally (never by editing statement text), which the row store keeps
//! in the database file. Secret option values are dropped here, before any
//! byte reaches the file.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::entry::{CsvOptions, Entry, ExternalTableDef, FileFormat, RowTable, View, is_secret};
use super::name::TableName;
use super::types::{ColumnDef, SqlType};

/// Bumped when the stored form changes incompatibly.
pub const FORMAT_VERSION: i64 = 2;

#[derive(Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
enum Stored {
    Table {
        columns: Vec<StoredColumn>,
        primary_key: Vec<usize>,
        loaded: bool,
    },
    External {
        format: StoredFormat,
        locations: Vec<String>,
        columns: Option<Vec<(String, String)>>,
        storage_options: BTreeMap<String, String>,
        refresh_interval_ms: Option<u64>,
        loaded: bool,
    },
    View {
        sql: String,
        database: String,
        columns: Vec<String>,
    },
}

#[derive(Serialize, Deserialize)]
struct StoredColumn {
    name: String,
    #[serde(rename = "type")]
    sql_type: String,
    nullable: bool,
    auto_increment: bool,
}

#[derive(Serialize, Deserialize)]
#[serde(tag = "name", rename_all = "snake_case")]
enum StoredFormat {
    Parquet,
    Csv {
        header: bool,
        delimiter: u8,
        quote: u8,
        null: Option<String>,
    },
    Json,
    Avro,
    Delta {
        version: Option<u64>,
    },
}

/// The kind tag and JSON of an entry; `None` for entries that are not
/// persisted (tables that live only in the cluster).
pub fn encode(entry: &Entry) -> Option<(&'static str, String)> {
    let stored = match entry {
        Entry::Row(t) => Stored::Table {
            columns: t
                .columns
                .iter()
                .map(|c| StoredColumn {
                    name: c.name.clone(),
                    sql_type: c.sql_type.to_string(),
                    nullable: c.nullable,
                    auto_increment: c.auto_increment,
                })
                .collect(),
            primary_key: t.primary_key.clone(),
            loaded: t.loaded,
        },
        Entry::External(t) => Stored::External {
            format: match &t.format {
                FileFormat::Parquet => StoredFormat::Parquet,
                FileFormat::Csv(o) => StoredFormat::Csv {
                    header: o.header,
                    delimiter: o.delimiter,
                    quote: o.quote,
                    null: o.null.clone(),
                },
                FileFormat::Json => StoredFormat::Json,
                FileFormat::Avro => StoredFormat::Avro,
                FileFormat::Delta { version } => StoredFormat::Delta { version: *version },
            },
            locations: t.locations.clone(),
            columns: t.columns.as_ref().map(|columns| {
                columns
                    .iter()
                    .map(|(name, sql_type)| (name.clone(), sql_type.to_string()))
                    .collect()
            }),
            storage_options: t
                .storage_options
                .iter()
                .filter(|(key, _)| !is_secret(key))
                .map(|(k, v)| (k.clone(), v.clone()))
                .collect(),
            refresh_interval_ms: t.refresh_interval.map(|d| d.as_millis() as u64),
            loaded: t.loaded,
        },
        Entry::View(v) => Stored::View {
            sql: v.sql.clone(),
            database: v.database.clone(),
            columns: v.columns.clone(),
        },
        Entry::Cluster(_) => return None,
    };
    let json = serde_json::to_string(&stored).expect("catalog entries serialise");
    Some((entry.kind().tag(), json))
}

/// Read an entry back; the error says what is wrong with the document.
pub fn decode(id: i64, name: TableName, json: &str) -> Result<Entry, String> {
    let stored: Stored = serde_json::from_str(json).map_err(|e| e.to_string())?;
    let sql_type =
        |text: &str| SqlType::parse(text).ok_or_else(|| format!("unknown column type '{text}'"));
    Ok(match stored {
        Stored::Table {
            columns,
            primary_key,
            loaded,
        } => {
            let columns = columns
                .into_iter()
                .map(|c| {
                    Ok(ColumnDef {
                        sql_type: sql_type(&c.sql_type)?,
                        name: c.name,
                        nullable: c.nullable,
                        auto_increment: c.auto_increment,
                    })
                })
                .collect::<Result<Vec<_>, String>>()?;
            if primary_key.iter().any(|&k| k >= columns.len()) {
                return Err("the primary key names a column that does not exist".into());
            }
            Entry::Row(Arc::new(RowTable {
                id,
                name,
                columns,
                primary_key,
                loaded,
            }))
        }
        Stored::External {
            format,
            locations,
            columns,
            storage_options,
            refresh_interval_ms,
            loaded,
        } => Entry::External(Arc::new(ExternalTableDef {
            id,
            name,
            format: match format {
                StoredFormat::Parquet => FileFormat::Parquet,
                StoredFormat::Csv {
                    header,
                    delimiter,
                    quote,
                    null,
                } => FileFormat::Csv(CsvOptions {
                    header,
                    delimiter,
                    quote,
                    null,
                }),
                StoredFormat::Json => FileFormat::Json,
                StoredFormat::Avro => FileFormat::Avro,
                StoredFormat::Delta { version } => FileFormat::Delta { version },
            },
            locations,
            columns: columns
                .map(|columns| {
                    columns
                        .into_iter()
                        .map(|(name, t)| Ok((name, sql_type(&t)?)))
                        .collect::<Result<Vec<_>, String>>()
                })
                .transpose()?,
            storage_options,
            refresh_interval: refresh_interval_ms.map(Duration::from_millis),
            loaded,
        })),
        Stored::View {
            sql,
            database,
            columns,
        } => Entry::View(Arc::new(View {
            id,
            name,
            sql,
            database,
            columns,
        })),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secrets_are_dropped_and_the_rest_round_trips() {
        let def = ExternalTableDef {
            id: 7,
            name: TableName::new("shop", "orders"),
            format: FileFormat::Csv(CsvOptions {
                null: Some("NA".into()),
                ..CsvOptions::default()
            }),
            locations: vec!["s3://b/p/".into()],
            columns: Some(vec![("id".into(), SqlType::BigInt)]),
            storage_options: [
                ("endpoint".to_string(), "http://localhost:9000".to_string()),
                ("access_key_id".to_string(), "AKID".to_string()),
                ("secret_access_key".to_string(), "s3cr'\"\\ét".to_string()),
                ("session_token".to_string(), "tok".to_string()),
            ]
            .into(),
            refresh_interval: Some(Duration::from_millis(1500)),
            loaded: true,
        };
        let (tag, json) = encode(&Entry::External(Arc::new(def))).unwrap();
        assert_eq!(tag, "external");
        assert!(!json.contains("s3cr") && !json.contains("tok"), "{json}");
        let Entry::External(back) = decode(7, TableName::new("shop", "orders"), &json).unwrap()
        else {
            panic!("an external table")
        };
        assert_eq!(back.storage_options.len(), 2);
        assert_eq!(back.refresh_interval, Some(Duration::from_millis(1500)));
        assert_eq!(back.columns, Some(vec![("id".into(), SqlType::BigInt)]));
        assert!(back.loaded);
        assert!(decode(1, TableName::new("a", "b"), "{\"kind\": \"nope\"}").is_err());
    }
}
