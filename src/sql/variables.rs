//! MySQL's variables, served through DataFusion's variable providers so they
//! work anywhere in an expression (`SELECT @@hostname, a.* FROM t a`):
//!
//! - system variables, `@@name`, `@@session.name`, `@@global.name`: the
//!   instance's (`hostname`, `version`, ...) and the session's
//!   (`use_secondary_engine`, `autocommit`, and those `SET` changed);
//! - user variables, `@name`, set with `SET @name = expr`; a variable never
//!   set is NULL, as in MySQL.
//!
//! Also the functions drivers call on connect: `CONNECTION_ID()`,
//! `DATABASE()` (and `SCHEMA()`), `VERSION()`.

use std::sync::Arc;

use arrow::datatypes::DataType;
use datafusion::common::{DataFusionError, ScalarValue};
use datafusion::logical_expr::{ColumnarValue, Volatility, create_udf};
use datafusion::prelude::SessionContext;
use datafusion::variable::VarProvider;
use parking_lot::Mutex;
use serde_json::Value as Json;

use super::Services;
use super::SqlError;
use super::session::Settings;
use crate::error::Result;

/// The version string clients see (`@@version`, `VERSION()`).
pub const SERVER_VERSION: &str = "8.4.0-lakewave";

/// A user variable's value: a scalar, or a JSON document (what HeatWave's
/// procedures take as options).
#[derive(Debug, Clone, PartialEq)]
pub enum UserValue {
    Scalar(ScalarValue),
    Json(Json),
}

impl UserValue {
    pub fn to_scalar(&self) -> ScalarValue {
        match self {
            UserValue::Scalar(value) => value.clone(),
            UserValue::Json(Json::Null) => ScalarValue::Utf8(None),
            UserValue::Json(Json::Bool(b)) => ScalarValue::Int64(Some(i64::from(*b))),
            UserValue::Json(Json::Number(n)) => match n.as_i64() {
                Some(i) => ScalarValue::Int64(Some(i)),
                None => ScalarValue::Float64(n.as_f64()),
            },
            UserValue::Json(Json::String(s)) => ScalarValue::Utf8(Some(s.clone())),
            UserValue::Json(other) => ScalarValue::Utf8(Some(other.to_string())),
        }
    }

    /// The value as JSON (for procedure arguments).
    pub fn to_json(&self) -> Json {
        match self {
            UserValue::Json(json) => json.clone(),
            UserValue::Scalar(value) if value.is_null() => Json::Null,
            UserValue::Scalar(ScalarValue::Boolean(Some(b))) => Json::Bool(*b),
            UserValue::Scalar(
                ScalarValue::Int8(_)
                | ScalarValue::Int16(_)
                | ScalarValue::Int32(_)
                | ScalarValue::Int64(_)
                | ScalarValue::UInt8(_)
                | ScalarValue::UInt16(_)
                | ScalarValue::UInt32(_)
                | ScalarValue::UInt64(_)
                | ScalarValue::Float32(_)
                | ScalarValue::Float64(_),
            ) => {
                let text = self.to_scalar().to_string();
                serde_json::from_str(&text).unwrap_or(Json::String(text))
            }
            UserValue::Scalar(ScalarValue::Utf8(Some(s))) => {
                // A JSON document held as text (SET @o = '{"a": 1}') reads as one.
                serde_json::from_str(s).unwrap_or_else(|_| Json::String(s.clone()))
            }
            UserValue::Scalar(other) => Json::String(other.to_string()),
        }
    }
}

/// How a system variable behaves.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Access {
    /// `SET` changes it for the session.
    Session,
    /// Only read.
    ReadOnly,
}

/// The system variables lakewave knows, with whether a session may set them.
pub(super) const SYSTEM_VARIABLES: &[(&str, Access)] = &[
    ("autocommit", Access::Session),
    ("auto_increment_increment", Access::ReadOnly),
    ("auto_increment_offset", Access::ReadOnly),
    ("character_set_client", Access::Session),
    ("character_set_connection", Access::Session),
    ("character_set_database", Access::ReadOnly),
    ("character_set_results", Access::Session),
    ("character_set_server", Access::ReadOnly),
    ("character_set_system", Access::ReadOnly),
    ("collation_connection", Access::Session),
    ("collation_database", Access::ReadOnly),
    ("collation_server", Access::ReadOnly),
    ("datadir", Access::ReadOnly),
    ("default_storage_engine", Access::ReadOnly),
    ("div_precision_increment", Access::ReadOnly),
    ("foreign_key_checks", Access::Session),
    ("group_concat_max_len", Access::Session),
    ("have_ssl", Access::ReadOnly),
    ("hostname", Access::ReadOnly),
    ("identity", Access::ReadOnly),
    ("init_connect", Access::ReadOnly),
    ("innodb_lock_wait_timeout", Access::ReadOnly),
    ("interactive_timeout", Access::Session),
    ("last_insert_id", Access::ReadOnly),
    ("license", Access::ReadOnly),
    ("lock_wait_timeout", Access::ReadOnly),
    ("lower_case_table_names", Access::ReadOnly),
    ("max_allowed_packet", Access::ReadOnly),
    ("max_execution_time", Access::Session),
    ("net_buffer_length", Access::ReadOnly),
    ("net_read_timeout", Access::Session),
    ("net_write_timeout", Access::Session),
    ("performance_schema", Access::ReadOnly),
    ("port", Access::ReadOnly),
    ("protocol_version", Access::ReadOnly),
    ("query_cache_size", Access::ReadOnly),
    ("query_cache_type", Access::ReadOnly),
    ("secondary_engine_cost_threshold", Access::Session),
    ("server_id", Access::ReadOnly),
    ("session_track_gtids", Access::Session),
    ("sql_auto_is_null", Access::Session),
    ("sql_mode", Access::Session),
    ("sql_notes", Access::Session),
    ("sql_quote_show_create", Access::Session),
    ("sql_safe_updates", Access::Session),
    ("sql_select_limit", Access::Session),
    ("system_time_zone", Access::ReadOnly),
    ("time_zone", Access::Session),
    ("transaction_isolation", Access::Session),
    ("transaction_read_only", Access::Session),
    ("tx_isolation", Access::Session),
    ("tx_read_only", Access::Session),
    ("unique_checks", Access::Session),
    ("use_secondary_engine", Access::Session),
    ("version", Access::ReadOnly),
    ("version_comment", Access::ReadOnly),
    ("version_compile_machine", Access::ReadOnly),
    ("version_compile_os", Access::ReadOnly),
    ("wait_timeout", Access::Session),
    ("warning_count", Access::ReadOnly),
    ("error_count", Access::ReadOnly),
];

pub(super) fn access(name: &str) -> Option<Access> {
    SYSTEM_VARIABLES
        .iter()
        .find(|(known, _)| *known == name)
        .map(|(_, access)| *access)
}

/// A system variable's value: text or a number.
#[derive(Debug, Clone, PartialEq)]
pub(super) enum VarValue {
    Text(String),
    Int(i64),
}

impl VarValue {
    fn scalar(&self) -> ScalarValue {
        match self {
            VarValue::Text(t) => ScalarValue::Utf8(Some(t.clone())),
            VarValue::Int(i) => ScalarValue::Int64(Some(*i)),
        }
    }

    /// The value as `SHOW VARIABLES` prints it.
    pub(super) fn to_text(&self) -> String {
        match self {
            VarValue::Text(t) => t.clone(),
            VarValue::Int(i) => i.to_string(),
        }
    }

    fn data_type(&self) -> DataType {
        match self {
            VarValue::Text(_) => DataType::Utf8,
            VarValue::Int(_) => DataType::Int64,
        }
    }
}

/// The value of a system variable for a session.
pub(super) fn system_value(
    services: &Services,
    settings: &Settings,
    name: &str,
) -> Option<VarValue> {
    use VarValue::{Int, Text};
    if let Some(set) = settings.system.get(name) {
        return Some(match set.parse::<i64>() {
            Ok(i) => Int(i),
            Err(_) => Text(set.clone()),
        });
    }
    let config = services.config();
    let lock_wait = config.lock_wait.as_secs() as i64;
    Some(match name {
        "autocommit" => Int(i64::from(settings.autocommit)),
        "auto_increment_increment" | "auto_increment_offset" => Int(1),
        "character_set_client"
        | "character_set_connection"
        | "character_set_database"
        | "character_set_results"
        | "character_set_server" => Text("utf8mb4".into()),
        "character_set_system" => Text("utf8mb3".into()),
        "collation_connection" | "collation_database" | "collation_server" => {
            Text("utf8mb4_0900_ai_ci".into())
        }
        "datadir" => Text(
            services
                .db
                .path()
                .parent()
                .map(|p| p.display().to_string())
                .unwrap_or_default(),
        ),
        "default_storage_engine" => Text("InnoDB".into()),
        "div_precision_increment" => Int(4),
        "foreign_key_checks" | "unique_checks" | "sql_notes" | "sql_quote_show_create" => Int(1),
        "group_concat_max_len" => Int(1024),
        "have_ssl" => Text("DISABLED".into()),
        "hostname" => Text(config.instance_name.clone()),
        "identity" | "last_insert_id" => Int(settings.last_insert_id as i64),
        "init_connect" => Text(String::new()),
        "innodb_lock_wait_timeout" | "lock_wait_timeout" => Int(lock_wait),
        "interactive_timeout" | "wait_timeout" => Int(28_800),
        "license" => Text("Apache-2.0".into()),
        "lower_case_table_names" => Int(0),
        "max_allowed_packet" => Int(64 << 20),
        "max_execution_time" => Int(0),
        "net_buffer_length" => Int(16_384),
        "net_read_timeout" => Int(30),
        "net_write_timeout" => Int(60),
        "performance_schema" => Int(1),
        "port" => Int(0),
        "protocol_version" => Int(10),
        "query_cache_size" => Int(0),
        "query_cache_type" => Text("OFF".into()),
        "secondary_engine_cost_threshold" => Int(100_000),
        "server_id" => Int(1),
        "session_track_gtids" => Text("OFF".into()),
        "sql_auto_is_null" | "sql_safe_updates" | "warning_count" | "error_count" => Int(0),
        "sql_mode" => Text(
            "ONLY_FULL_GROUP_BY,STRICT_TRANS_TABLES,NO_ZERO_IN_DATE,NO_ZERO_DATE,\
             ERROR_FOR_DIVISION_BY_ZERO,NO_ENGINE_SUBSTITUTION"
                .into(),
        ),
        "sql_select_limit" => Int(i64::MAX),
        "system_time_zone" | "time_zone" => Text("UTC".into()),
        // SQLite gives every transaction a snapshot and one writer at a time.
        "transaction_isolation" | "tx_isolation" => Text("SERIALIZABLE".into()),
        "transaction_read_only" | "tx_read_only" => Int(i64::from(services.db.is_read_only())),
        "use_secondary_engine" => Text(settings.offload.name().into()),
        "version" => Text(SERVER_VERSION.into()),
        "version_comment" => Text(format!(
            "lakewave {} (an open re-creation of MySQL HeatWave)",
            env!("CARGO_PKG_VERSION")
        )),
        "version_compile_machine" => Text(std::env::consts::ARCH.into()),
        "version_compile_os" => Text(std::env::consts::OS.into()),
        _ => return None,
    })
}

/// `["@@session", "x"]`, `["@@global", "x"]`, `["@@x"]` → `x`.
fn system_name(parts: &[String]) -> Option<String> {
    let first = parts.first()?.strip_prefix("@@")?.to_ascii_lowercase();
    match (first.as_str(), parts.get(1)) {
        ("session" | "global" | "local" | "persist", Some(name)) if parts.len() == 2 => {
            Some(name.to_ascii_lowercase())
        }
        (_, None) => Some(first),
        _ => None,
    }
}

#[derive(Debug)]
pub struct SystemVariables {
    services: Arc<Services>,
    settings: Arc<Mutex<Settings>>,
}

impl SystemVariables {
    pub(super) fn new(services: Arc<Services>, settings: Arc<Mutex<Settings>>, _id: u64) -> Self {
        SystemVariables { services, settings }
    }

    fn value(&self, parts: &[String]) -> Option<VarValue> {
        let name = system_name(parts)?;
        system_value(&self.services, &self.settings.lock(), &name)
    }
}

impl VarProvider for SystemVariables {
    fn get_value(&self, var_names: Vec<String>) -> datafusion::common::Result<ScalarValue> {
        self.value(&var_names).map(|v| v.scalar()).ok_or_else(|| {
            let name = var_names.join(".");
            DataFusionError::External(Box::new(crate::error::Error::from(
                SqlError::UnknownVariable {
                    name: name.trim_start_matches('@').to_string(),
                },
            )))
        })
    }

    fn get_type(&self, var_names: &[String]) -> Option<DataType> {
        // Unknown names get a type too, so that planning reaches get_value
        // and fails there with MySQL's error.
        Some(
            self.value(var_names)
                .map(|v| v.data_type())
                .unwrap_or(DataType::Utf8),
        )
    }
}

#[derive(Debug)]
pub struct UserVariables {
    settings: Arc<Mutex<Settings>>,
}

impl UserVariables {
    pub(super) fn new(settings: Arc<Mutex<Settings>>) -> Self {
        UserVariables { settings }
    }

    fn value(&self, parts: &[String]) -> ScalarValue {
        let name = parts.join(".").trim_start_matches('@').to_ascii_lowercase();
        self.settings
            .lock()
            .user
            .get(&name)
            .map(UserValue::to_scalar)
            .unwrap_or(ScalarValue::Utf8(None))
    }
}

impl VarProvider for UserVariables {
    fn get_value(&self, var_names: Vec<String>) -> datafusion::common::Result<ScalarValue> {
        Ok(self.value(&var_names))
    }

    fn get_type(&self, var_names: &[String]) -> Option<DataType> {
        Some(self.value(var_names).data_type())
    }
}

/// Register `CONNECTION_ID()`, `DATABASE()`, `SCHEMA()`, `LAST_INSERT_ID()`
/// and `VERSION()` on a session's context.
pub(super) fn register_functions(
    ctx: &SessionContext,
    slot: Arc<super::process::SessionSlot>,
    settings: Arc<Mutex<Settings>>,
) {
    let id = slot.id as i64;
    // USER() and the others: `user@host` of the session.
    for name in ["user", "current_user", "session_user", "system_user"] {
        let slot = Arc::clone(&slot);
        ctx.register_udf(create_udf(
            name,
            vec![],
            DataType::Utf8,
            Volatility::Volatile,
            Arc::new(move |_| {
                Ok(ColumnarValue::Scalar(ScalarValue::Utf8(Some(
                    slot.account(),
                ))))
            }),
        ));
    }
    ctx.register_udf(create_udf(
        "connection_id",
        vec![],
        DataType::Int64,
        Volatility::Stable,
        Arc::new(move |_| Ok(ColumnarValue::Scalar(ScalarValue::Int64(Some(id))))),
    ));
    for name in ["database", "schema"] {
        let settings = Arc::clone(&settings);
        ctx.register_udf(create_udf(
            name,
            vec![],
            DataType::Utf8,
            Volatility::Volatile,
            Arc::new(move |_| {
                Ok(ColumnarValue::Scalar(ScalarValue::Utf8(Some(
                    settings.lock().database.clone(),
                ))))
            }),
        ));
    }
    ctx.register_udf(create_udf(
        "last_insert_id",
        vec![],
        DataType::UInt64,
        Volatility::Volatile,
        Arc::new(move |_| {
            Ok(ColumnarValue::Scalar(ScalarValue::UInt64(Some(
                settings.lock().last_insert_id,
            ))))
        }),
    ));
    ctx.register_udf(super::arithmetic::MysqlDivide::udf());
    ctx.register_udf(create_udf(
        "version",
        vec![],
        DataType::Utf8,
        Volatility::Immutable,
        Arc::new(|_| {
            Ok(ColumnarValue::Scalar(ScalarValue::Utf8(Some(
                SERVER_VERSION.into(),
            ))))
        }),
    ));
}

/// Check a value for `SET name = value`, and store it on the session.
pub(super) fn set_system(settings: &mut Settings, name: &str, value: &str) -> Result<()> {
    let bad = |expected: &str| SqlError::BadVariableValue {
        name: name.to_string(),
        value: value.to_string(),
        expected: expected.to_string(),
    };
    match access(name) {
        None => {
            return Err(SqlError::UnknownVariable {
                name: name.to_string(),
            }
            .into());
        }
        Some(Access::ReadOnly) => {
            return Err(SqlError::Execution {
                statement: format!("SET {name}"),
                message: format!("variable '{name}' is a read only variable"),
                kind: crate::error::ErrorKind::Programming,
                code: crate::error::MySqlCode::new(1238, "HY000"),
            }
            .into());
        }
        Some(Access::Session) => {}
    }
    let on_off = |value: &str| match value.to_ascii_uppercase().as_str() {
        "ON" | "1" | "TRUE" => Some(true),
        "OFF" | "0" | "FALSE" => Some(false),
        _ => None,
    };
    match name {
        "use_secondary_engine" => {
            settings.offload =
                super::split::OffloadMode::parse(value).ok_or_else(|| bad("ON, OFF or FORCED"))?;
        }
        "autocommit" => {
            settings.autocommit = on_off(value).ok_or_else(|| bad("ON or OFF"))?;
        }
        "transaction_isolation" | "tx_isolation" => {
            let level = value.to_ascii_uppercase().replace(' ', "-");
            if ![
                "READ-UNCOMMITTED",
                "READ-COMMITTED",
                "REPEATABLE-READ",
                "SERIALIZABLE",
            ]
            .contains(&level.as_str())
            {
                return Err(bad(
                    "READ-UNCOMMITTED, READ-COMMITTED, REPEATABLE-READ or SERIALIZABLE",
                )
                .into());
            }
            settings
                .system
                .insert("transaction_isolation".into(), level.clone());
            settings.system.insert("tx_isolation".into(), level);
        }
        "foreign_key_checks"
        | "unique_checks"
        | "sql_notes"
        | "sql_quote_show_create"
        | "sql_auto_is_null"
        | "sql_safe_updates"
        | "transaction_read_only"
        | "tx_read_only" => {
            let on = on_off(value).ok_or_else(|| bad("ON or OFF"))?;
            settings
                .system
                .insert(name.to_string(), i64::from(on).to_string());
        }
        "group_concat_max_len"
        | "interactive_timeout"
        | "wait_timeout"
        | "net_read_timeout"
        | "net_write_timeout"
        | "max_execution_time"
        | "sql_select_limit"
        | "secondary_engine_cost_threshold" => {
            let number: i64 = value.parse().map_err(|_| bad("a number"))?;
            settings.system.insert(name.to_string(), number.to_string());
        }
        _ => {
            settings.system.insert(name.to_string(), value.to_string());
        }
    }
    Ok(())
}
