//! Typed configuration. Options arrive as strings (from Python keyword arguments,
//! a `config={...}` mapping or environment variables) and are parsed here, once,
//! into typed structs; an unknown key is an error that lists the known ones.
//! Nothing else in the crate parses option strings.

use thiserror::Error;

#[derive(Debug, Error)]
pub enum ConfigError {
    #[error("unknown option '{key}'; known options: {known}")]
    UnknownKey { key: String, known: String },
    #[error("option '{key}' has an invalid value '{value}': {reason}")]
    InvalidValue {
        key: String,
        value: String,
        reason: String,
    },
}

impl ConfigError {
    /// MySQL's "incorrect arguments" (1210) for a bad connect option, or an
    /// unknown one.
    pub fn code(&self) -> crate::error::MySqlCode {
        crate::error::codes::WRONG_ARGUMENTS
    }
}

/// The shape of the in-process cluster: how many nodes, how much memory each may
/// hold, how many store partitions each node owns, and how many threads execute.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClusterShape {
    pub nodes: usize,
    pub memory_per_node: u64,
    pub partitions_per_node: usize,
    pub threads: usize,
}

/// Everything `connect()` accepts besides the database path.
#[derive(Debug, Clone, PartialEq)]
pub struct EngineConfig {
    pub shape: ClusterShape,
    /// Memory for query execution (joins, sorts, aggregates) before they spill.
    pub query_memory: u64,
    /// Rows per immutable chunk; at most 65,536 so that dictionary keys fit 16 bits.
    pub chunk_rows: usize,
    /// Rows per batch handed to the executor.
    pub batch_rows: usize,
    /// A string column is dictionary-encoded when a sample shows at most this
    /// fraction of distinct values.
    pub dictionary_max_ratio: f64,
    /// Where joins, sorts and aggregates spill when they outgrow `query_memory`.
    pub spill_dir: Option<String>,
    /// Change propagation from the row store to the cluster.
    pub propagation: PropagationConfig,
    /// What `SELECT @@hostname` answers (default: the machine's host name).
    pub instance_name: String,
    /// How long a writer waits for another session's write lock before it
    /// fails (MySQL's `innodb_lock_wait_timeout`, 50 s).
    pub lock_wait: std::time::Duration,
    /// A MySQL-family server that is the DB system instead of the embedded
    /// row store (`source=mysql://...`).
    pub source: Option<SourceConfig>,
}

/// Where the MariaDB / MySQL source is and how lakewave reads it, parsed
/// from `mysql://user:password@host:port/database?option=value`. The
/// password never reaches `Debug`, errors or logs.
#[derive(Clone, PartialEq, Eq)]
pub struct SourceConfig {
    pub host: String,
    pub port: u16,
    pub user: String,
    pub password: String,
    /// The database sessions start in (`None`: none, as in `mysql` without `-D`).
    pub database: Option<String>,
    /// The server id lakewave registers with when it reads the binlog as a
    /// replica; unique among the server's replicas (`None`: one chosen per
    /// instance, since the server drops a replica whose id another takes).
    pub server_id: Option<u32>,
    /// Require TLS on every connection to the server.
    pub require_tls: bool,
    /// How long a query waits for the cluster to apply the server's binlog up
    /// to the position it read before it runs on the server instead.
    pub barrier_timeout: std::time::Duration,
    /// How often a loaded table's cluster copy is written beside the
    /// metadata file with the binlog position it is current at, so that a
    /// restart resumes from there instead of reading the table again
    /// (`None`: never; every restart reloads).
    pub checkpoint_interval: Option<std::time::Duration>,
}

impl std::fmt::Debug for SourceConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "SourceConfig({})", self.display())
    }
}

/// Options a source URL takes after `?`.
const SOURCE_OPTIONS: &[&str] = &[
    "server_id",
    "ssl_mode",
    "barrier_timeout",
    "checkpoint_interval",
];

impl SourceConfig {
    /// The server as messages name it: `user@host:port`, never the password.
    pub fn display(&self) -> String {
        format!("{}@{}:{}", self.user, self.host, self.port)
    }

    /// Parse a `mysql://` or `mariadb://` URL.
    pub fn parse(value: &str) -> Result<SourceConfig, ConfigError> {
        // The value may hold a password: errors show the URL without it.
        let shown = redact_url(value);
        let bad = |reason: &str| invalid("source", &shown, reason);
        let url = url::Url::parse(value.trim()).map_err(|e| {
            bad(&format!(
                "not a URL ({e}); expected mysql://user:password@host:port/"
            ))
        })?;
        if !matches!(url.scheme(), "mysql" | "mariadb") {
            return Err(bad("the scheme must be mysql:// or mariadb://"));
        }
        let host = url
            .host_str()
            .filter(|h| !h.is_empty())
            .ok_or_else(|| bad("the URL names no host"))?
            .trim_start_matches('[')
            .trim_end_matches(']')
            .to_string();
        let decode = |part: &str| -> Result<String, ConfigError> {
            percent_decode(part).ok_or_else(|| bad("bad percent-encoding in the user or password"))
        };
        let user = decode(url.username())?;
        if user.is_empty() {
            return Err(bad("the URL names no user (mysql://user:password@host/)"));
        }
        let password = decode(url.password().unwrap_or(""))?;
        let database = url.path().trim_start_matches('/');
        if database.contains('/') {
            return Err(bad("the path may name one database only"));
        }
        let database = (!database.is_empty())
            .then(|| decode(database))
            .transpose()?;
        let mut config = SourceConfig {
            host,
            port: url.port().unwrap_or(3306),
            user,
            password,
            database,
            server_id: None,
            require_tls: false,
            barrier_timeout: std::time::Duration::from_secs(10),
            checkpoint_interval: Some(std::time::Duration::from_secs(60)),
        };
        for (key, value) in url.query_pairs() {
            match key.as_ref() {
                "server_id" => {
                    config.server_id =
                        Some(value.parse().ok().filter(|&id| id > 0).ok_or_else(|| {
                            bad("server_id must be a number from 1 to 4294967295")
                        })?)
                }
                "ssl_mode" => {
                    config.require_tls = match value.to_ascii_uppercase().as_str() {
                        "DISABLED" => false,
                        "REQUIRED" | "VERIFY_IDENTITY" => true,
                        _ => {
                            return Err(bad(
                                "ssl_mode must be DISABLED, REQUIRED or VERIFY_IDENTITY",
                            ));
                        }
                    }
                }
                "barrier_timeout" => {
                    config.barrier_timeout = parse_duration("barrier_timeout", &value)?
                }
                "checkpoint_interval" => {
                    config.checkpoint_interval = match value.trim() {
                        "0" | "off" | "OFF" => None,
                        text => Some(parse_duration("checkpoint_interval", text)?),
                    }
                }
                other => {
                    return Err(bad(&format!(
                        "unknown URL option '{other}'; known: {}",
                        SOURCE_OPTIONS.join(", ")
                    )));
                }
            }
        }
        Ok(config)
    }
}

/// `%XX` sequences decoded, as URLs encode `@`, `:` and `/` in passwords.
fn percent_decode(text: &str) -> Option<String> {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            let hex = text.get(i + 1..i + 3)?;
            out.push(u8::from_str_radix(hex, 16).ok()?);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8(out).ok()
}

/// A URL with its password replaced by `***`, for messages.
pub fn redact_url(value: &str) -> String {
    let Some((scheme, rest)) = value.split_once("://") else {
        return "(not a URL)".to_string();
    };
    match rest.rsplit_once('@') {
        Some((credentials, host)) => {
            let user = credentials.split(':').next().unwrap_or("");
            let hidden = if credentials.contains(':') {
                ":***"
            } else {
                ""
            };
            format!("{scheme}://{user}{hidden}@{host}")
        }
        None => value.to_string(),
    }
}

/// When the propagator sends a batch of changes to the cluster.
#[derive(Debug, Clone, PartialEq)]
pub struct PropagationConfig {
    /// Every this often (HeatWave: 200 ms).
    pub interval: std::time::Duration,
    /// As soon as this many bytes of changes are pending (HeatWave: 64 MB).
    pub max_pending_bytes: u64,
    /// Before a cluster query that reads a table with pending changes.
    pub read_your_writes: bool,
}

impl Default for PropagationConfig {
    fn default() -> Self {
        PropagationConfig {
            interval: std::time::Duration::from_millis(200),
            max_pending_bytes: 64_000_000,
            read_your_writes: true,
        }
    }
}

pub const MAX_CHUNK_ROWS: usize = 65_536;

const KNOWN_KEYS: &[&str] = &[
    "nodes",
    "memory_per_node",
    "partitions_per_node",
    "threads",
    "query_memory",
    "chunk_rows",
    "batch_rows",
    "dictionary_max_ratio",
    "spill_dir",
    "propagation_interval",
    "propagation_batch_bytes",
    "read_your_writes",
    "instance_name",
    "lock_wait_timeout",
    "source",
];

impl EngineConfig {
    /// Defaults that fit this machine: one node per call unless asked, the
    /// cluster may hold half the physical memory, queries may use a quarter.
    pub fn for_machine() -> Self {
        let total = physical_memory().unwrap_or(8 << 30);
        let threads = std::thread::available_parallelism()
            .map(|n| n.get())
            .unwrap_or(2);
        EngineConfig {
            shape: ClusterShape {
                nodes: 1,
                memory_per_node: total / 2,
                partitions_per_node: threads,
                threads,
            },
            query_memory: total / 4,
            chunk_rows: MAX_CHUNK_ROWS,
            batch_rows: 8192,
            dictionary_max_ratio: 0.25,
            spill_dir: None,
            propagation: PropagationConfig::default(),
            instance_name: host_name(),
            lock_wait: std::time::Duration::from_secs(50),
            source: None,
        }
    }

    /// Parse string options over the machine defaults. `memory_per_node`, when
    /// not given, is the machine's cluster memory split evenly over the nodes, and
    /// `partitions_per_node` keeps every thread busy.
    pub fn from_options<'a, I>(options: I) -> Result<Self, ConfigError>
    where
        I: IntoIterator<Item = (&'a str, &'a str)>,
    {
        let mut config = Self::for_machine();
        let cluster_memory = config.shape.memory_per_node;
        let mut memory_given = false;
        let mut partitions_given = false;
        for (key, value) in options {
            match key {
                "nodes" => config.shape.nodes = parse_count(key, value)?,
                "memory_per_node" => {
                    config.shape.memory_per_node = parse_bytes(key, value)?;
                    memory_given = true;
                }
                "partitions_per_node" => {
                    config.shape.partitions_per_node = parse_count(key, value)?;
                    partitions_given = true;
                }
                "threads" => config.shape.threads = parse_count(key, value)?,
                "query_memory" => config.query_memory = parse_bytes(key, value)?,
                "chunk_rows" => {
                    let rows = parse_count(key, value)?;
                    if rows > MAX_CHUNK_ROWS {
                        return Err(invalid(key, value, "at most 65536 rows per chunk"));
                    }
                    config.chunk_rows = rows;
                }
                "batch_rows" => config.batch_rows = parse_count(key, value)?,
                "dictionary_max_ratio" => {
                    let ratio: f64 = value
                        .trim()
                        .parse()
                        .map_err(|_| invalid(key, value, "expected a number"))?;
                    if !(0.0..=1.0).contains(&ratio) {
                        return Err(invalid(key, value, "expected a number from 0 to 1"));
                    }
                    config.dictionary_max_ratio = ratio;
                }
                "spill_dir" => config.spill_dir = Some(value.to_string()),
                "propagation_interval" => config.propagation.interval = parse_duration(key, value)?,
                "propagation_batch_bytes" => {
                    config.propagation.max_pending_bytes = parse_bytes(key, value)?
                }
                "instance_name" => config.instance_name = value.trim().to_string(),
                "lock_wait_timeout" => config.lock_wait = parse_duration(key, value)?,
                "read_your_writes" => config.propagation.read_your_writes = parse_bool(key, value)?,
                "source" => config.source = Some(SourceConfig::parse(value)?),
                _ => {
                    return Err(ConfigError::UnknownKey {
                        key: key.to_string(),
                        known: KNOWN_KEYS.join(", "),
                    });
                }
            }
        }
        if !memory_given {
            config.shape.memory_per_node = cluster_memory / config.shape.nodes as u64;
        }
        if !partitions_given {
            config.shape.partitions_per_node =
                config.shape.threads.div_ceil(config.shape.nodes).max(1);
        }
        Ok(config)
    }
}

impl EngineConfig {
    /// The shape must fit the machine: HeatWave refuses a shape the host
    /// cannot give, and a budget beyond physical memory would only move the
    /// out-of-memory error from the load that asked to the kernel.
    pub fn check_fits_machine(&self) -> Result<(), ConfigError> {
        let Some(total) = physical_memory() else {
            return Ok(());
        };
        let wanted = self.shape.nodes as u128 * self.shape.memory_per_node as u128;
        if wanted > total as u128 {
            let gib = |bytes: u128| format!("{:.1} GiB", bytes as f64 / (1u64 << 30) as f64);
            return Err(invalid(
                "memory_per_node",
                &self.shape.memory_per_node.to_string(),
                &format!(
                    "{} node(s) need {}, more than this machine's {}",
                    self.shape.nodes,
                    gib(wanted),
                    gib(total as u128)
                ),
            ));
        }
        Ok(())
    }
}

fn invalid(key: &str, value: &str, reason: &str) -> ConfigError {
    ConfigError::InvalidValue {
        key: key.to_string(),
        value: value.to_string(),
        reason: reason.to_string(),
    }
}

fn parse_count(key: &str, value: &str) -> Result<usize, ConfigError> {
    match value.trim().parse::<usize>() {
        Ok(n) if n > 0 => Ok(n),
        _ => Err(invalid(key, value, "expected a whole number of at least 1")),
    }
}

fn host_name() -> String {
    std::env::var("HOSTNAME")
        .ok()
        .or_else(|| std::fs::read_to_string("/etc/hostname").ok())
        .map(|h| h.trim().to_string())
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| "lakewave".to_string())
}

fn parse_bool(key: &str, value: &str) -> Result<bool, ConfigError> {
    match value.trim().to_ascii_lowercase().as_str() {
        "true" | "on" | "1" | "yes" => Ok(true),
        "false" | "off" | "0" | "no" => Ok(false),
        _ => Err(invalid(key, value, "expected true or false")),
    }
}

/// Parse a duration: `200ms`, `1.5s`, `2` (seconds).
pub fn parse_duration(key: &str, value: &str) -> Result<std::time::Duration, ConfigError> {
    let text = value.trim().to_ascii_lowercase();
    let (number, scale) = if let Some(n) = text.strip_suffix("ms") {
        (n, 1e-3)
    } else if let Some(n) = text.strip_suffix('s') {
        (n, 1.0)
    } else {
        (text.as_str(), 1.0)
    };
    match number.trim().parse::<f64>() {
        Ok(n) if n > 0.0 && n.is_finite() => Ok(std::time::Duration::from_secs_f64(n * scale)),
        _ => Err(invalid(
            key,
            value,
            "expected a duration such as 200ms or 1.5s",
        )),
    }
}

/// Parse a byte size: `1073741824`, `512MB`, `4GiB`, `1.5 GB` (decimal and
/// binary units; a bare number is bytes).
pub fn parse_bytes(key: &str, value: &str) -> Result<u64, ConfigError> {
    let text = value.trim();
    let split = text
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(text.len());
    let (number, unit) = text.split_at(split);
    let number: f64 = number
        .parse()
        .map_err(|_| invalid(key, value, "expected a size such as 4GiB or 512MB"))?;
    let multiplier: f64 = match unit.trim().to_ascii_lowercase().as_str() {
        "" | "b" => 1.0,
        "k" | "kb" => 1e3,
        "m" | "mb" => 1e6,
        "g" | "gb" => 1e9,
        "t" | "tb" => 1e12,
        "kib" => 1024.0,
        "mib" => 1024.0 * 1024.0,
        "gib" => 1024.0 * 1024.0 * 1024.0,
        "tib" => 1024.0 * 1024.0 * 1024.0 * 1024.0,
        _ => {
            return Err(invalid(
                key,
                value,
                "unknown unit; use B, KB, MB, GB, KiB, MiB or GiB",
            ));
        }
    };
    let bytes = number * multiplier;
    if bytes < 1.0 {
        return Err(invalid(key, value, "a size must be at least one byte"));
    }
    Ok(bytes as u64)
}

/// Physical memory from /proc/meminfo (Linux); None elsewhere.
fn physical_memory() -> Option<u64> {
    let text = std::fs::read_to_string("/proc/meminfo").ok()?;
    let line = text.lines().find(|l| l.starts_with("MemTotal:"))?;
    let kib: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib * 1024)
}

/// Render a byte count for messages: `1.5 GiB`.
pub fn human_bytes(bytes: u64) -> String {
    const UNITS: [&str; 5] = ["B", "KiB", "MiB", "GiB", "TiB"];
    let mut value = bytes as f64;
    let mut unit = 0;
    while value >= 1024.0 && unit < UNITS.len() - 1 {
        value /= 1024.0;
        unit += 1;
    }
    if unit == 0 {
        format!("{bytes} B")
    } else {
        format!("{value:.1} {}", UNITS[unit])
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_sizes_in_every_unit() {
        assert_eq!(parse_bytes("m", "1024").unwrap(), 1024);
        assert_eq!(parse_bytes("m", "4GiB").unwrap(), 4 << 30);
        assert_eq!(parse_bytes("m", "512 MB").unwrap(), 512_000_000);
        assert_eq!(parse_bytes("m", "1.5kib").unwrap(), 1536);
        assert!(parse_bytes("m", "lots").is_err());
        assert!(parse_bytes("m", "3 parsecs").is_err());
    }

    #[test]
    fn unknown_keys_are_errors_that_list_the_known_ones() {
        let err = EngineConfig::from_options([("nodez", "2")]).unwrap_err();
        let text = err.to_string();
        assert!(
            text.contains("nodez") && text.contains("memory_per_node"),
            "{text}"
        );
    }

    #[test]
    fn memory_is_split_over_nodes_unless_given() {
        let one = EngineConfig::from_options([("nodes", "1")]).unwrap();
        let four = EngineConfig::from_options([("nodes", "4")]).unwrap();
        assert_eq!(four.shape.memory_per_node, one.shape.memory_per_node / 4);
        let given =
            EngineConfig::from_options([("nodes", "4"), ("memory_per_node", "1MiB")]).unwrap();
        assert_eq!(given.shape.memory_per_node, 1 << 20);
        assert!(EngineConfig::from_options([("nodes", "0")]).is_err());
        assert!(EngineConfig::from_options([("chunk_rows", "70000")]).is_err());
    }

    #[test]
    fn a_source_url_is_parsed_and_its_password_never_shown() {
        let config = SourceConfig::parse(
            "mysql://app:s%40cret@db.example:3307/shop?server_id=77&ssl_mode=required",
        )
        .unwrap();
        assert_eq!(config.host, "db.example");
        assert_eq!(config.port, 3307);
        assert_eq!(config.user, "app");
        assert_eq!(config.password, "s@cret");
        assert_eq!(config.database.as_deref(), Some("shop"));
        assert_eq!(config.server_id, Some(77));
        assert!(config.require_tls);
        assert!(!format!("{config:?}").contains("cret"));
        let defaults = SourceConfig::parse("mariadb://root@127.0.0.1/").unwrap();
        assert_eq!((defaults.port, defaults.database), (3306, None));
        assert_eq!(
            defaults.checkpoint_interval,
            Some(std::time::Duration::from_secs(60))
        );
        let often = SourceConfig::parse("mysql://u@h/?checkpoint_interval=250ms").unwrap();
        assert_eq!(
            often.checkpoint_interval,
            Some(std::time::Duration::from_millis(250))
        );
        let never = SourceConfig::parse("mysql://u@h/?checkpoint_interval=off").unwrap();
        assert_eq!(never.checkpoint_interval, None);
    }

    #[test]
    fn bad_source_urls_fail_by_name_without_the_password() {
        for (url, expected) in [
            ("postgres://u:hunter2@h/", "scheme"),
            ("mysql://:hunter2@h/", "no user"),
            ("mysql://u:hunter2@h/a/b", "one database"),
            (
                "mysql://u:hunter2@h/?colour=red",
                "unknown URL option 'colour'",
            ),
            ("mysql://u:hunter2@h/?server_id=0", "server_id"),
            (
                "mysql://u:hunter2@h/?checkpoint_interval=soon",
                "checkpoint_interval",
            ),
            ("mysql://u:hunter2@h:99999/", "not a URL"),
        ] {
            let error = EngineConfig::from_options([("source", url)]).unwrap_err();
            let message = error.to_string();
            assert!(message.contains(expected), "{url}: {message}");
            assert!(!message.contains("hunter2"), "{url}: {message}");
        }
    }
}
