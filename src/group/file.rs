//! The group file: one TOML file describes an HA group — its voting members
//! and read replicas (each with its ports and data directory), the shape and
//! configuration every member runs with, and the two endpoints HAProxy
//! serves. It is read once into [`GroupFile`]; unknown keys are errors, and
//! the shape and configuration are checked as `connect()` would check them.
//!
//! ```toml
//! name = "sales"
//! host = "127.0.0.1"
//! read_write_port = 13306
//! read_only_port = 13307
//!
//! [shape]
//! nodes = "1"
//! memory_per_node = "1GiB"
//!
//! [config]
//! propagation_interval = "200ms"
//!
//! [[members]]
//! name = "m1"
//! id = 1
//! role = "voter"
//! dir = "m1"
//! mysql_port = 13310
//! flight_port = 13311
//! status_port = 13312
//! raft_port = 13313
//! ```

use std::collections::{BTreeMap, HashSet};
use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::GroupError;
use crate::config::{EngineConfig, parse_duration};

/// A member's part in the group.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum MemberKind {
    /// Votes, and may become the primary.
    Voter,
    /// A read replica: follows the log asynchronously, never votes.
    Replica,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawMember {
    name: String,
    id: u64,
    role: MemberKind,
    dir: PathBuf,
    mysql_port: u16,
    flight_port: u16,
    status_port: u16,
    raft_port: u16,
    /// A read replica's own shape or configuration over the group's.
    #[serde(default)]
    shape: BTreeMap<String, toml::Value>,
    #[serde(default)]
    config: BTreeMap<String, toml::Value>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MemberSpec {
    pub name: String,
    /// The member's Raft id: unique in the group, never reused.
    pub id: u64,
    pub role: MemberKind,
    /// The member's data directory (relative to the file's folder).
    pub dir: PathBuf,
    pub mysql_port: u16,
    pub flight_port: u16,
    pub status_port: u16,
    pub raft_port: u16,
    /// What this member runs with beyond the group's shape and
    /// configuration (read replicas only).
    pub shape: BTreeMap<String, String>,
    pub config: BTreeMap<String, String>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawFile {
    name: String,
    #[serde(default = "loopback")]
    host: String,
    read_write_port: u16,
    read_only_port: u16,
    /// HAProxy's statistics page (and its runtime API socket beside it).
    #[serde(default)]
    haproxy_stats_port: Option<u16>,
    /// A `user:password` file for every member (relative to the file).
    #[serde(default)]
    users_file: Option<PathBuf>,
    /// How far behind a read replica may be and still serve reads.
    #[serde(default = "default_lag")]
    max_replica_lag: String,
    /// How long a commit waits for a majority before it fails.
    #[serde(default = "default_commit_timeout")]
    commit_timeout: String,
    #[serde(default)]
    shape: BTreeMap<String, toml::Value>,
    #[serde(default)]
    config: BTreeMap<String, toml::Value>,
    members: Vec<RawMember>,
}

fn loopback() -> String {
    "127.0.0.1".into()
}

fn default_lag() -> String {
    "5s".into()
}

fn default_commit_timeout() -> String {
    "10s".into()
}

/// A group file, read and checked.
#[derive(Debug, Clone)]
pub struct GroupFile {
    pub path: PathBuf,
    pub name: String,
    pub host: String,
    pub read_write_port: u16,
    pub read_only_port: u16,
    pub haproxy_stats_port: Option<u16>,
    pub users_file: Option<PathBuf>,
    pub max_replica_lag: Duration,
    pub commit_timeout: Duration,
    /// `nodes`, `memory_per_node`, `threads`, as strings (connect() options).
    pub shape: BTreeMap<String, String>,
    /// Any other connect() options, as strings.
    pub config: BTreeMap<String, String>,
    pub members: Vec<MemberSpec>,
}

/// Checks every 250 ms; a member is out after 2 failed checks and back
/// after 1 good one, and its client connections are cut when it goes out
/// (a deposed primary keeps no client).
const DEFAULT_SERVER: &str =
    "default-server inter 250ms fall 2 rise 1 on-marked-down shutdown-sessions";

pub const SHAPE_KEYS: [&str; 3] = ["nodes", "memory_per_node", "threads"];

fn as_option_string(value: &toml::Value) -> Option<String> {
    match value {
        toml::Value::String(s) => Some(s.clone()),
        toml::Value::Integer(i) => Some(i.to_string()),
        toml::Value::Float(f) => Some(f.to_string()),
        toml::Value::Boolean(b) => Some(b.to_string()),
        _ => None,
    }
}

impl GroupFile {
    pub fn read(path: &Path) -> Result<GroupFile, GroupError> {
        let text = std::fs::read_to_string(path).map_err(|e| GroupError::File {
            path: path.display().to_string(),
            message: format!("cannot be read: {e}"),
        })?;
        Self::parse(path, &text)
    }

    pub fn parse(path: &Path, text: &str) -> Result<GroupFile, GroupError> {
        let bad = |message: String| GroupError::File {
            path: path.display().to_string(),
            message,
        };
        // A checked value's error names the line it is on (the TOML
        // parser's own errors already do).
        let at = |key: &str, value: &str, nth: usize, message: String| match line_of(
            text, key, value, nth,
        ) {
            Some(line) => bad(format!("line {line}: {message}")),
            None => bad(message),
        };
        let raw: RawFile = toml::from_str(text).map_err(|e| bad(e.to_string()))?;
        let folder = path
            .parent()
            .map(Path::to_path_buf)
            .unwrap_or_else(|| PathBuf::from("."));
        let strings = |section: &str, table: &BTreeMap<String, toml::Value>| {
            table
                .iter()
                .map(|(k, v)| {
                    as_option_string(v)
                        .map(|v| (k.clone(), v))
                        .ok_or_else(|| bad(format!("[{section}] {k}: give a string or a number")))
                })
                .collect::<Result<BTreeMap<_, _>, _>>()
        };
        let shape = strings("shape", &raw.shape)?;
        let config = strings("config", &raw.config)?;
        let check_sections = |what: &str,
                              shape: &BTreeMap<String, String>,
                              config: &BTreeMap<String, String>|
         -> Result<(), GroupError> {
            if let Some(key) = shape.keys().find(|k| !SHAPE_KEYS.contains(&k.as_str())) {
                return Err(at(
                    key,
                    &toml_string(&shape[key]),
                    1,
                    format!(
                        "{what}[shape] {key}: unknown; the shape is {}",
                        SHAPE_KEYS.join(", ")
                    ),
                ));
            }
            if let Some(key) = config.keys().find(|k| SHAPE_KEYS.contains(&k.as_str())) {
                return Err(bad(format!("{what}[config] {key}: belongs in [shape]")));
            }
            // Checked as connect() checks them, once, here.
            EngineConfig::from_options(
                shape
                    .iter()
                    .chain(config.iter())
                    .map(|(k, v)| (k.as_str(), v.as_str())),
            )
            .map_err(|e| bad(format!("{what}{e}")))?;
            Ok(())
        };
        check_sections("", &shape, &config)?;
        let max_replica_lag = parse_duration("max_replica_lag", &raw.max_replica_lag)
            .map_err(|e| bad(e.to_string()))?;
        let commit_timeout = parse_duration("commit_timeout", &raw.commit_timeout)
            .map_err(|e| bad(e.to_string()))?;
        if raw.name.trim().is_empty() {
            return Err(bad("name: give the group a name".into()));
        }
        let voters = raw
            .members
            .iter()
            .filter(|m| m.role == MemberKind::Voter)
            .count();
        if voters == 0 {
            return Err(bad(
                "members: the group needs voting members (three for a highly available one)".into(),
            ));
        }
        if voters.is_multiple_of(2) {
            return Err(bad(format!(
                "members: {voters} voting members; give an odd number (a majority of an even \
                 number survives no more failures than one fewer)"
            )));
        }
        let mut names = HashSet::new();
        let mut ids = HashSet::new();
        let mut ports = HashSet::new();
        let mut dirs = HashSet::new();
        for port in [raw.read_write_port, raw.read_only_port]
            .into_iter()
            .chain(raw.haproxy_stats_port)
        {
            if !ports.insert(port) {
                return Err(at(
                    "",
                    &port.to_string(),
                    2,
                    format!("port {port} is used twice"),
                ));
            }
        }
        let mut members = Vec::with_capacity(raw.members.len());
        for raw_member in raw.members {
            let member_shape = strings("members.shape", &raw_member.shape)?;
            let member_config = strings("members.config", &raw_member.config)?;
            if raw_member.role == MemberKind::Voter
                && (!member_shape.is_empty() || !member_config.is_empty())
            {
                return Err(at(
                    "name",
                    &toml_string(&raw_member.name),
                    1,
                    format!(
                        "member '{}': only a read replica may override the group's shape or \
                         configuration (voting members must be interchangeable)",
                        raw_member.name
                    ),
                ));
            }
            let mut merged_shape = shape.clone();
            merged_shape.extend(member_shape.clone());
            let mut merged_config = config.clone();
            merged_config.extend(member_config.clone());
            check_sections(
                &format!("member '{}': ", raw_member.name),
                &merged_shape,
                &merged_config,
            )?;
            let mut member = MemberSpec {
                name: raw_member.name,
                id: raw_member.id,
                role: raw_member.role,
                dir: raw_member.dir,
                mysql_port: raw_member.mysql_port,
                flight_port: raw_member.flight_port,
                status_port: raw_member.status_port,
                raft_port: raw_member.raft_port,
                shape: member_shape,
                config: member_config,
            };
            if member.name.is_empty()
                || !member
                    .name
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
            {
                return Err(bad(format!(
                    "member name '{}': use letters, digits, '-' and '_'",
                    member.name
                )));
            }
            if !names.insert(member.name.clone()) {
                return Err(at(
                    "name",
                    &format!("\"{}\"", member.name),
                    2,
                    format!("member '{}' is named twice", member.name),
                ));
            }
            if member.id == 0 || !ids.insert(member.id) {
                let nth = if member.id == 0 { 1 } else { 2 };
                return Err(at(
                    "id",
                    &member.id.to_string(),
                    nth,
                    format!(
                        "member '{}': id {} is 0 or used twice",
                        member.name, member.id
                    ),
                ));
            }
            for port in [
                member.mysql_port,
                member.flight_port,
                member.status_port,
                member.raft_port,
            ] {
                if port == 0 || !ports.insert(port) {
                    let nth = if port == 0 { 1 } else { 2 };
                    return Err(at(
                        "",
                        &port.to_string(),
                        nth,
                        format!("member '{}': port {port} is 0 or used twice", member.name),
                    ));
                }
            }
            let written = member.dir.display().to_string();
            if member.dir.is_relative() {
                member.dir = folder.join(&member.dir);
            }
            let normal: PathBuf = member.dir.components().collect();
            if !dirs.insert(normal) {
                return Err(at(
                    "dir",
                    &toml_string(&written),
                    2,
                    format!(
                        "member '{}': data directory {} is another member's too",
                        member.name,
                        member.dir.display()
                    ),
                ));
            }
            members.push(member);
        }
        let users_file = raw
            .users_file
            .map(|f| if f.is_relative() { folder.join(f) } else { f });
        Ok(GroupFile {
            path: path.to_path_buf(),
            name: raw.name,
            host: raw.host,
            read_write_port: raw.read_write_port,
            read_only_port: raw.read_only_port,
            haproxy_stats_port: raw.haproxy_stats_port,
            users_file,
            max_replica_lag,
            commit_timeout,
            shape,
            config,
            members,
        })
    }

    pub fn member(&self, name: &str) -> Result<&MemberSpec, GroupError> {
        self.members
            .iter()
            .find(|m| m.name == name)
            .ok_or_else(|| GroupError::UnknownMember {
                path: self.path.display().to_string(),
                name: name.to_string(),
                known: self
                    .members
                    .iter()
                    .map(|m| m.name.clone())
                    .collect::<Vec<_>>()
                    .join(", "),
            })
    }

    pub fn member_by_id(&self, id: u64) -> Option<&MemberSpec> {
        self.members.iter().find(|m| m.id == id)
    }

    pub fn voters(&self) -> impl Iterator<Item = &MemberSpec> {
        self.members.iter().filter(|m| m.role == MemberKind::Voter)
    }

    pub fn replicas(&self) -> impl Iterator<Item = &MemberSpec> {
        self.members
            .iter()
            .filter(|m| m.role == MemberKind::Replica)
    }

    /// Where a member's Raft endpoint listens.
    pub fn raft_address(&self, member: &MemberSpec) -> String {
        format!("{}:{}", self.host, member.raft_port)
    }

    /// The shape `member` runs with: the group's, with a replica's own.
    pub fn shape_of(&self, member: &MemberSpec) -> BTreeMap<String, String> {
        let mut shape = self.shape.clone();
        shape.extend(member.shape.clone());
        shape
    }

    /// The configuration `member` runs with: the group's, with a replica's own.
    pub fn config_of(&self, member: &MemberSpec) -> BTreeMap<String, String> {
        let mut config = self.config.clone();
        config.extend(member.config.clone());
        config
    }

    /// The HAProxy configuration for the group's two endpoints: the
    /// read/write port goes to the member whose status port answers 200 on
    /// `/role/primary`, the read-only port spreads over the read replicas
    /// that answer 200 on `/role/readable`, and falls back to the voting
    /// members only when no replica can serve.
    pub fn haproxy_config(&self, runtime_socket: Option<&Path>) -> String {
        let mut out = String::new();
        let _ = writeln!(
            out,
            "# HAProxy configuration for lakewave group '{}'",
            self.name
        );
        let _ = writeln!(
            out,
            "# written by `lakewave group haproxy-config {}`",
            self.path.display()
        );
        out.push_str("global\n    maxconn 4096\n");
        if let Some(socket) = runtime_socket {
            let _ = writeln!(
                out,
                "    stats socket {} mode 600 level admin",
                socket.display()
            );
        }
        out.push_str(
            "\ndefaults\n    mode tcp\n    timeout connect 5s\n    timeout client 1h\n    \
             timeout server 1h\n    timeout check 1s\n\n",
        );
        if let Some(port) = self.haproxy_stats_port {
            let _ = writeln!(
                out,
                "listen stats\n    mode http\n    bind {}:{port}\n    stats enable\n    stats uri /\n",
                self.host
            );
        }
        let server = |out: &mut String, m: &MemberSpec, check: &str, extra: &str| {
            let _ = writeln!(
                out,
                "    server {} {}:{} check port {}{extra}{}",
                m.name,
                self.host,
                m.mysql_port,
                m.status_port,
                if check.is_empty() {
                    String::new()
                } else {
                    format!(" {check}")
                }
            );
        };
        let _ = writeln!(
            out,
            "listen read_write\n    bind {}:{}\n    option httpchk GET /role/primary\n    \
             http-check expect status 200\n    {DEFAULT_SERVER}",
            self.host, self.read_write_port
        );
        for member in self.voters() {
            server(&mut out, member, "", "");
        }
        let _ = writeln!(
            out,
            "\nlisten read_only\n    bind {}:{}\n    balance roundrobin\n    option httpchk GET \
             /role/readable\n    http-check expect status 200\n    {DEFAULT_SERVER}",
            self.host, self.read_only_port
        );
        let replicas: Vec<_> = self.replicas().collect();
        for member in &replicas {
            server(&mut out, member, "", "");
        }
        for member in self.voters() {
            // Voting members serve reads only when no replica can.
            server(
                &mut out,
                member,
                "",
                if replicas.is_empty() { "" } else { " backup" },
            );
        }
        out
    }
}

/// The group file's text with `shape` and `config` keys set to new values
/// (what `lakewave group update` writes before it rolls the change through
/// the members). The result is checked as a whole; a bad key or value
/// leaves the file as it was. Comments are not kept.
pub fn updated_text(
    path: &Path,
    shape: &[(String, String)],
    config: &[(String, String)],
    member: Option<&str>,
) -> Result<String, GroupError> {
    let bad = |message: String| GroupError::File {
        path: path.display().to_string(),
        message,
    };
    let text = std::fs::read_to_string(path).map_err(|e| bad(format!("cannot be read: {e}")))?;
    let mut table: toml::Table = toml::from_str(&text).map_err(|e| bad(e.to_string()))?;
    if shape.is_empty() && config.is_empty() {
        return Err(bad("give --shape or --config changes".into()));
    }
    let target: &mut toml::Table = match member {
        None => &mut table,
        Some(name) => {
            let Some(toml::Value::Array(members)) = table.get_mut("members") else {
                return Err(bad("has no [[members]]".into()));
            };
            let found = members.iter_mut().find_map(|m| match m {
                toml::Value::Table(t) if t.get("name").and_then(|n| n.as_str()) == Some(name) => {
                    Some(t)
                }
                _ => None,
            });
            let Some(found) = found else {
                return Err(bad(format!("has no member '{name}'")));
            };
            found
        }
    };
    for (section, changes) in [("shape", shape), ("config", config)] {
        if changes.is_empty() {
            continue;
        }
        let entry = target
            .entry(section.to_string())
            .or_insert_with(|| toml::Value::Table(toml::Table::new()));
        let toml::Value::Table(values) = entry else {
            return Err(bad(format!("[{section}] is not a table")));
        };
        for (key, value) in changes {
            values.insert(key.clone(), toml::Value::String(value.clone()));
        }
    }
    let text = toml::to_string(&table).map_err(|e| bad(e.to_string()))?;
    GroupFile::parse(path, &text)?;
    Ok(text)
}

/// What `lakewave group init` writes: a group on loopback with `members`
/// voting members and `replicas` read replicas, ports counted up from
/// `base_port`, data directories under `dir`.
pub fn init_text(
    name: &str,
    dir: &Path,
    members: usize,
    replicas: usize,
    base_port: u16,
    users_file: Option<&Path>,
) -> Result<String, GroupError> {
    let bad = |message: String| GroupError::File {
        path: dir.join("group.toml").display().to_string(),
        message,
    };
    if members == 0 || members.is_multiple_of(2) {
        return Err(bad(format!(
            "--members {members}: give an odd number of voting members (3 for HA)"
        )));
    }
    let needed = 3 + 4 * (members + replicas);
    if (base_port as usize) < 1024 || base_port as usize + needed > 65535 {
        return Err(bad(format!(
            "--base-port {base_port}: the group needs ports {base_port}..{} (above 1023, below 65536)",
            base_port as usize + needed - 1
        )));
    }
    let mut out = String::new();
    let _ = writeln!(
        out,
        "# A lakewave HA group; `lakewave group start` runs it."
    );
    let _ = writeln!(out, "name = {}", toml_string(name));
    let _ = writeln!(out, "host = \"127.0.0.1\"");
    let _ = writeln!(out, "read_write_port = {base_port}");
    let _ = writeln!(out, "read_only_port = {}", base_port + 1);
    let _ = writeln!(out, "haproxy_stats_port = {}", base_port + 2);
    if let Some(users) = users_file {
        let _ = writeln!(
            out,
            "users_file = {}",
            toml_string(&users.display().to_string())
        );
    }
    let _ = writeln!(out, "max_replica_lag = \"5s\"\ncommit_timeout = \"10s\"");
    let _ = writeln!(
        out,
        "\n[shape]\nnodes = \"1\"\nmemory_per_node = \"1GiB\"\nthreads = \"2\"\n\n[config]"
    );
    let mut port = base_port + 3;
    let specs = (1..=members)
        .map(|i| (format!("m{i}"), MemberKind::Voter))
        .chain((1..=replicas).map(|i| (format!("r{i}"), MemberKind::Replica)));
    for (id, (member, role)) in specs.enumerate() {
        let role = match role {
            MemberKind::Voter => "voter",
            MemberKind::Replica => "replica",
        };
        let _ = writeln!(
            out,
            "\n[[members]]\nname = \"{member}\"\nid = {}\nrole = \"{role}\"\ndir = {}\n\
             mysql_port = {}\nflight_port = {}\nstatus_port = {}\nraft_port = {}",
            id + 1,
            toml_string(&dir.join(&member).display().to_string()),
            port,
            port + 1,
            port + 2,
            port + 3
        );
        port += 4;
    }
    // What was written must read back.
    GroupFile::parse(&dir.join("group.toml"), &out)?;
    Ok(out)
}

/// The line (1-based) of the `nth` `key = value` in `text` (any key ending
/// in `_port` when `key` is empty).
fn line_of(text: &str, key: &str, value: &str, nth: usize) -> Option<usize> {
    text.lines()
        .enumerate()
        .filter(|(_, line)| {
            let Some((k, v)) = line.split_once('=') else {
                return false;
            };
            let k = k.trim();
            let v = v.split('#').next().unwrap_or("").trim();
            (if key.is_empty() {
                k.ends_with("_port")
            } else {
                k == key
            }) && v == value
        })
        .nth(nth.saturating_sub(1))
        .map(|(i, _)| i + 1)
}

fn toml_string(s: &str) -> String {
    toml::Value::String(s.to_string()).to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_initialised_file_reads_back_and_names_its_endpoints() {
        let text = init_text("g", Path::new("/tmp/g"), 3, 2, 20000, None).unwrap();
        let file = GroupFile::parse(Path::new("/tmp/g/group.toml"), &text).unwrap();
        assert_eq!(file.voters().count(), 3);
        assert_eq!(file.replicas().count(), 2);
        assert_eq!(file.member("r2").unwrap().id, 5);
        let haproxy = file.haproxy_config(None);
        assert!(haproxy.contains("bind 127.0.0.1:20000"), "{haproxy}");
        assert!(haproxy.contains("GET /role/primary"));
        assert!(haproxy.contains("server m1 127.0.0.1:20003 check port 20005"));
        assert!(haproxy.contains("server m1 127.0.0.1:20003 check port 20005 backup"));
        assert!(haproxy.contains("inter 250ms"));
    }

    #[test]
    fn bad_files_are_refused_with_the_reason() {
        let good = init_text("g", Path::new("/tmp/g"), 3, 0, 20000, None).unwrap();
        let path = Path::new("/tmp/g/group.toml");
        let cases = [
            (
                good.replace("name = \"g\"", "name = \"g\"\ncolour = 1"),
                "unknown field",
            ),
            (
                good.replace("name = \"g\"", "name = \"g\"\ncolour = 1"),
                "line 3",
            ),
            (
                good.replace("id = 2", "id = 1"),
                "line 29: member 'm2': id 1",
            ),
            (
                good.replace("mysql_port = 20007", "mysql_port = 20003"),
                "line 32: member 'm2': port 20003",
            ),
            (
                good.replace("dir = \"/tmp/g/m2\"", "dir = \"/tmp/g/m1\""),
                "line 31: member 'm2': data directory",
            ),
            (
                good.replace("raft_port = 20010\n", ""),
                "missing field `raft_port`",
            ),
            (
                good.replace("[config]", "[config]\npropagation_interval = \"fast\""),
                "propagation_interval",
            ),
            (
                good.replace("[config]", "[config]\nbogus = \"1\""),
                "unknown option",
            ),
            (
                good.replace("threads = \"2\"", "threads = \"2\"\ncolour = \"1\""),
                "[shape] colour",
            ),
            (
                good.replace(
                    "role = \"voter\"\ndir = \"/tmp/g/m3\"",
                    "role = \"replica\"\ndir = \"/tmp/g/m3\"",
                ),
                "odd number",
            ),
        ];
        for (text, expected) in cases {
            let error = GroupFile::parse(path, &text).unwrap_err().to_string();
            assert!(error.contains(expected), "{expected}: {error}");
        }
        assert!(init_text("g", Path::new("/tmp"), 2, 0, 20000, None).is_err());
        assert!(init_text("g", Path::new("/tmp"), 3, 0, 65530, None).is_err());
    }
}
