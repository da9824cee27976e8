//! What the catalog knows about each name: a row-store table (its declared
//! columns, key and whether it is loaded into the cluster), a table that lives
//! only in the cluster, an external table (its format, locations and options,
//! and whether it is loaded) or a view (its SQL). Definitions only, never data.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use arrow::datatypes::{Field, Schema, SchemaRef};

use super::name::TableName;
use super::types::{ColumnDef, SqlType};

/// The four kinds of names.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EntryKind {
    RowTable,
    ClusterTable,
    ExternalTable,
    View,
}

impl EntryKind {
    /// How messages name this kind: "a table", "an external table", ...
    pub fn article(&self) -> &'static str {
        match self {
            EntryKind::RowTable => "a table",
            EntryKind::ClusterTable => "a table loaded straight into the cluster",
            EntryKind::ExternalTable => "an external table",
            EntryKind::View => "a view",
        }
    }

    /// The word the persisted catalog stores.
    pub fn tag(&self) -> &'static str {
        match self {
            EntryKind::RowTable => "table",
            EntryKind::ClusterTable => "cluster_table",
            EntryKind::ExternalTable => "external",
            EntryKind::View => "view",
        }
    }
}

/// A table of the row store (the DB system), as persisted in the catalog.
#[derive(Debug, Clone)]
pub struct RowTable {
    /// Stable for the table's life; the change log names tables by it.
    pub id: i64,
    pub name: TableName,
    pub columns: Vec<ColumnDef>,
    /// Positions of the primary key columns.
    pub primary_key: Vec<usize>,
    /// `ALTER TABLE ... SECONDARY_LOAD` was run and not undone.
    pub loaded: bool,
}

impl RowTable {
    pub fn schema(&self) -> SchemaRef {
        Arc::new(Schema::new(
            self.columns
                .iter()
                .map(|c| Field::new(&c.name, c.sql_type.arrow_type(), c.nullable))
                .collect::<Vec<_>>(),
        ))
    }

    pub fn column_index(&self, name: &str) -> Option<usize> {
        self.columns.iter().position(|c| c.name == name)
    }

    pub fn key_names(&self) -> Vec<String> {
        self.primary_key
            .iter()
            .map(|&i| self.columns[i].name.clone())
            .collect()
    }

    /// The key columns' Arrow schema (the layout of changed-key batches).
    pub fn key_schema(&self) -> SchemaRef {
        Arc::new(
            self.schema()
                .project(&self.primary_key)
                .expect("key positions are columns"),
        )
    }

    /// A single INT or BIGINT key (SQLite's row id can be that key).
    pub fn integer_key(&self) -> bool {
        self.primary_key.len() == 1
            && matches!(
                self.columns[self.primary_key[0]].sql_type,
                SqlType::Int | SqlType::BigInt
            )
    }

    pub fn column_names(&self) -> String {
        self.columns
            .iter()
            .map(|c| c.name.as_str())
            .collect::<Vec<_>>()
            .join(", ")
    }
}

/// How a cluster table's rows are spread over the cluster's partitions.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Placement {
    /// By a hash of these columns (the primary key, or data placement keys).
    Hash(Vec<String>),
    /// Evenly, in arrival order, when the table has no key.
    RoundRobin,
}

/// A table loaded straight into the cluster (`Connection.load`, `CREATE
/// TABLE ... AS`): a read-only snapshot with no row-store copy. Its rows live
/// only in memory, so its entry lives only as long as the instance.
#[derive(Debug, Clone)]
pub struct ClusterTable {
    pub id: i64,
    pub name: TableName,
    /// The schema users see (logical types, as loaded).
    pub schema: SchemaRef,
    pub primary_key: Vec<String>,
    pub placement: Placement,
}

/// The file format of an external table.
#[derive(Debug, Clone, PartialEq)]
pub enum FileFormat {
    Parquet,
    Csv(CsvOptions),
    /// Newline-delimited JSON.
    Json,
    /// Avro object container files.
    Avro,
    /// A Delta table (its root folder); `version` reads an older version.
    Delta {
        version: Option<u64>,
    },
}

impl FileFormat {
    pub fn name(&self) -> &'static str {
        match self {
            FileFormat::Parquet => "parquet",
            FileFormat::Csv(_) => "csv",
            FileFormat::Json => "json",
            FileFormat::Avro => "avro",
            FileFormat::Delta { .. } => "delta",
        }
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct CsvOptions {
    pub header: bool,
    pub delimiter: u8,
    pub quote: u8,
    /// The text that stands for NULL (none: only empty fields are NULL).
    pub null: Option<String>,
}

impl Default for CsvOptions {
    fn default() -> Self {
        CsvOptions {
            header: true,
            delimiter: b',',
            quote: b'"',
            null: None,
        }
    }
}

/// Object store option keys whose values are secrets: never persisted, never
/// shown in messages.
pub fn is_secret(key: &str) -> bool {
    let key = key.to_ascii_lowercase();
    [
        "secret",
        "token",
        "password",
        "account_key",
        "access_key",
        "sas",
        "service_account_key",
        "credential",
    ]
    .iter()
    .any(|s| key.contains(s))
        && !key.ends_with("access_key_id")
}

/// What `CREATE EXTERNAL TABLE` declares.
#[derive(Debug, Clone)]
pub struct ExternalTableDef {
    pub id: i64,
    pub name: TableName,
    pub format: FileFormat,
    pub locations: Vec<String>,
    /// The declared columns, if any (else inferred from the files). Every
    /// declared column of an external table may hold NULL.
    pub columns: Option<Vec<(String, SqlType)>>,
    /// Object store options (credentials, endpoint, region). Secret values
    /// are kept in memory only: the persisted definition drops them, and they
    /// come from the environment after a reopen.
    pub storage_options: BTreeMap<String, String>,
    /// When loaded, refresh it on its own this often.
    pub refresh_interval: Option<Duration>,
    /// `SECONDARY_LOAD` was run and not undone.
    pub loaded: bool,
}

impl ExternalTableDef {
    /// The declared columns as an Arrow schema (all nullable).
    pub fn declared_schema(&self) -> Option<SchemaRef> {
        self.columns.as_ref().map(|columns| {
            Arc::new(Schema::new(
                columns
                    .iter()
                    .map(|(name, sql_type)| Field::new(name, sql_type.arrow_type(), true))
                    .collect::<Vec<_>>(),
            ))
        })
    }
}

/// `CREATE VIEW v AS <query>`: the query's text, planned anew by every
/// statement that reads the view (so it reads what that statement reads, on
/// the engine that statement runs on).
#[derive(Debug, Clone)]
pub struct View {
    pub id: i64,
    pub name: TableName,
    /// The query, as written.
    pub sql: String,
    /// The database unqualified names in the query resolve in.
    pub database: String,
    /// The view's column names, when the definition gave them.
    pub columns: Vec<String>,
}

/// One name of the catalog. Cheap to clone.
#[derive(Debug, Clone)]
pub enum Entry {
    Row(Arc<RowTable>),
    Cluster(Arc<ClusterTable>),
    External(Arc<ExternalTableDef>),
    View(Arc<View>),
}

impl Entry {
    pub fn kind(&self) -> EntryKind {
        match self {
            Entry::Row(_) => EntryKind::RowTable,
            Entry::Cluster(_) => EntryKind::ClusterTable,
            Entry::External(_) => EntryKind::ExternalTable,
            Entry::View(_) => EntryKind::View,
        }
    }

    pub fn id(&self) -> i64 {
        match self {
            Entry::Row(t) => t.id,
            Entry::Cluster(t) => t.id,
            Entry::External(t) => t.id,
            Entry::View(v) => v.id,
        }
    }

    pub fn name(&self) -> &TableName {
        match self {
            Entry::Row(t) => &t.name,
            Entry::Cluster(t) => &t.name,
            Entry::External(t) => &t.name,
            Entry::View(v) => &v.name,
        }
    }

    /// The same entry under another name.
    pub fn renamed(&self, to: &TableName) -> Entry {
        match self {
            Entry::Row(t) => Entry::Row(Arc::new(RowTable {
                name: to.clone(),
                ..t.as_ref().clone()
            })),
            Entry::Cluster(t) => Entry::Cluster(Arc::new(ClusterTable {
                name: to.clone(),
                ..t.as_ref().clone()
            })),
            Entry::External(t) => Entry::External(Arc::new(ExternalTableDef {
                name: to.clone(),
                ..t.as_ref().clone()
            })),
            Entry::View(v) => Entry::View(Arc::new(View {
                name: to.clone(),
                ..v.as_ref().clone()
            })),
        }
    }

    /// Whether the entry outlives the process (every kind but cluster tables).
    pub fn is_persistent(&self) -> bool {
        !matches!(self, Entry::Cluster(_))
    }
}
