//! The connection phase: the server's greeting (protocol v10), the client's
//! response (protocol 4.1, possibly preceded by a TLS request), and the
//! authentication plugins the accounts are checked with.

use super::wire::{Decoder, WireError, put_nul_str, put_u16, put_u32, utf8};

pub mod caps {
    pub const LONG_PASSWORD: u32 = 1;
    pub const FOUND_ROWS: u32 = 1 << 1;
    pub const LONG_FLAG: u32 = 1 << 2;
    pub const CONNECT_WITH_DB: u32 = 1 << 3;
    pub const NO_SCHEMA: u32 = 1 << 4;
    pub const ODBC: u32 = 1 << 6;
    pub const IGNORE_SPACE: u32 = 1 << 8;
    pub const PROTOCOL_41: u32 = 1 << 9;
    pub const INTERACTIVE: u32 = 1 << 10;
    pub const SSL: u32 = 1 << 11;
    pub const IGNORE_SIGPIPE: u32 = 1 << 12;
    pub const TRANSACTIONS: u32 = 1 << 13;
    pub const SECURE_CONNECTION: u32 = 1 << 15;
    pub const MULTI_STATEMENTS: u32 = 1 << 16;
    pub const MULTI_RESULTS: u32 = 1 << 17;
    pub const PS_MULTI_RESULTS: u32 = 1 << 18;
    pub const PLUGIN_AUTH: u32 = 1 << 19;
    pub const CONNECT_ATTRS: u32 = 1 << 20;
    pub const PLUGIN_AUTH_LENENC_DATA: u32 = 1 << 21;
    pub const DEPRECATE_EOF: u32 = 1 << 24;
}

/// What this server offers; a connection uses what both sides have.
pub const SERVER_CAPABILITIES: u32 = caps::LONG_PASSWORD
    | caps::FOUND_ROWS
    | caps::LONG_FLAG
    | caps::CONNECT_WITH_DB
    | caps::NO_SCHEMA
    | caps::ODBC
    | caps::IGNORE_SPACE
    | caps::PROTOCOL_41
    | caps::INTERACTIVE
    | caps::IGNORE_SIGPIPE
    | caps::TRANSACTIONS
    | caps::SECURE_CONNECTION
    | caps::MULTI_STATEMENTS
    | caps::MULTI_RESULTS
    | caps::PS_MULTI_RESULTS
    | caps::PLUGIN_AUTH
    | caps::CONNECT_ATTRS
    | caps::PLUGIN_AUTH_LENENC_DATA
    | caps::DEPRECATE_EOF;

pub const NATIVE_PASSWORD: &str = "mysql_native_password";
pub const CACHING_SHA2: &str = "caching_sha2_password";

/// utf8mb4_0900_ai_ci, MySQL 8's default collation.
pub const DEFAULT_COLLATION: u8 = 255;

/// The scramble both plugins salt with: 20 bytes, none of them NUL (the
/// greeting sends it NUL-terminated).
pub fn new_scramble() -> [u8; 20] {
    use ring::rand::SecureRandom;
    let mut bytes = [0u8; 20];
    ring::rand::SystemRandom::new()
        .fill(&mut bytes)
        .expect("the system's random source works");
    for b in &mut bytes {
        *b = 0x21 + (*b % 0x5E);
    }
    bytes
}

/// The server's first packet.
pub fn greeting(
    server_version: &str,
    connection_id: u32,
    scramble: &[u8; 20],
    capabilities: u32,
    status: u16,
) -> Vec<u8> {
    let mut out = vec![10];
    put_nul_str(&mut out, server_version);
    put_u32(&mut out, connection_id);
    out.extend_from_slice(&scramble[..8]);
    out.push(0);
    put_u16(&mut out, capabilities as u16);
    out.push(DEFAULT_COLLATION);
    put_u16(&mut out, status);
    put_u16(&mut out, (capabilities >> 16) as u16);
    out.push(21);
    out.extend_from_slice(&[0; 10]);
    out.extend_from_slice(&scramble[8..]);
    out.push(0);
    put_nul_str(&mut out, NATIVE_PASSWORD);
    out
}

/// A client's reply to the greeting.
#[derive(Debug, Clone, PartialEq)]
pub struct Response {
    pub capabilities: u32,
    pub max_packet: u32,
    pub collation: u8,
    pub user: String,
    pub auth: Vec<u8>,
    pub database: Option<String>,
    pub plugin: Option<String>,
}

/// An SSL request is the first 32 bytes of a response, alone.
pub fn is_ssl_request(payload: &[u8]) -> bool {
    payload.len() == 32
        && u32::from_le_bytes([payload[0], payload[1], payload[2], payload[3]]) & caps::SSL != 0
}

/// The auth plugin a login names, when the client speaks PLUGIN_AUTH.
fn plugin_name(d: &mut Decoder<'_>, capabilities: u32) -> Result<Option<String>, WireError> {
    if capabilities & caps::PLUGIN_AUTH == 0 || d.is_empty() {
        return Ok(None);
    }
    let name = utf8(d.nul_or_rest(), "the auth plugin name")?;
    Ok((!name.is_empty()).then_some(name))
}

impl Response {
    pub fn parse(payload: &[u8]) -> Result<Response, WireError> {
        let mut d = Decoder::new(payload);
        let capabilities = d.u32("capability flags")?;
        if capabilities & caps::PROTOCOL_41 == 0 {
            return Err(WireError::Invalid {
                what: "the client speaks the pre-4.1 protocol, which lakewave does not".into(),
            });
        }
        let max_packet = d.u32("max packet size")?;
        let collation = d.u8("character set")?;
        d.bytes(23, "reserved bytes")?;
        let user = utf8(d.nul_bytes("user name")?, "the user name")?;
        let auth = if capabilities & caps::PLUGIN_AUTH_LENENC_DATA != 0 {
            d.lenenc_bytes("auth response")?.to_vec()
        } else if capabilities & caps::SECURE_CONNECTION != 0 {
            let len = d.u8("auth response length")?;
            d.bytes(usize::from(len), "auth response")?.to_vec()
        } else {
            d.nul_bytes("auth response")?.to_vec()
        };
        let database = if capabilities & caps::CONNECT_WITH_DB != 0 && !d.is_empty() {
            let name = utf8(d.nul_or_rest(), "the database name")?;
            (!name.is_empty()).then_some(name)
        } else {
            None
        };
        let plugin = plugin_name(&mut d, capabilities)?;
        // Connection attributes (program name, driver version) are read
        // past: nothing depends on them.
        Ok(Response {
            capabilities,
            max_packet,
            collation,
            user,
            auth,
            database,
            plugin,
        })
    }
}

impl Response {
    /// COM_CHANGE_USER's body (after the command byte): a new login on an
    /// open connection, in the capabilities agreed at the handshake.
    pub fn parse_change_user(body: &[u8], capabilities: u32) -> Result<Response, WireError> {
        let mut d = Decoder::new(body);
        let user = utf8(d.nul_bytes("user name")?, "the user name")?;
        let auth = if capabilities & caps::SECURE_CONNECTION != 0 {
            let len = d.u8("auth response length")?;
            d.bytes(usize::from(len), "auth response")?.to_vec()
        } else {
            d.nul_bytes("auth response")?.to_vec()
        };
        let name = utf8(d.nul_or_rest(), "the database name")?;
        let database = (!name.is_empty()).then_some(name);
        let collation = if d.remaining() >= 2 {
            d.u16("character set")? as u8
        } else {
            0
        };
        let plugin = plugin_name(&mut d, capabilities)?;
        Ok(Response {
            capabilities,
            max_packet: 0,
            collation,
            user,
            auth,
            database,
            plugin,
        })
    }
}

/// `AuthSwitchRequest`: ask the client to answer with another plugin.
pub fn auth_switch(plugin: &str, scramble: &[u8; 20]) -> Vec<u8> {
    let mut out = vec![0xFE];
    put_nul_str(&mut out, plugin);
    out.extend_from_slice(scramble);
    out.push(0);
    out
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::server::mysql::wire::put_lenenc_bytes;

    /// A response as mysql-connector and PyMySQL send it.
    pub(crate) fn response_bytes(
        user: &str,
        auth: &[u8],
        db: Option<&str>,
        plugin: &str,
    ) -> Vec<u8> {
        let mut caps = SERVER_CAPABILITIES;
        if db.is_none() {
            caps &= !caps::CONNECT_WITH_DB;
        }
        let mut out = Vec::new();
        put_u32(&mut out, caps);
        put_u32(&mut out, 1 << 24);
        out.push(45);
        out.extend_from_slice(&[0; 23]);
        put_nul_str(&mut out, user);
        put_lenenc_bytes(&mut out, auth);
        if let Some(db) = db {
            put_nul_str(&mut out, db);
        }
        put_nul_str(&mut out, plugin);
        out
    }

    #[test]
    fn change_user_requests_parse() {
        let mut body = Vec::new();
        put_nul_str(&mut body, "bob");
        body.push(20);
        body.extend_from_slice(&[7; 20]);
        put_nul_str(&mut body, "sales");
        body.extend_from_slice(&[45, 0]);
        put_nul_str(&mut body, NATIVE_PASSWORD);
        let request = Response::parse_change_user(&body, SERVER_CAPABILITIES).unwrap();
        assert_eq!(request.user, "bob");
        assert_eq!(request.auth, vec![7; 20]);
        assert_eq!(request.database.as_deref(), Some("sales"));
        assert_eq!(request.collation, 45);
        assert_eq!(request.plugin.as_deref(), Some(NATIVE_PASSWORD));
        // Without a database, character set or plugin (old clients).
        let bare = [b"eve\0".as_slice(), &[0], b"\0"].concat();
        let request = Response::parse_change_user(&bare, SERVER_CAPABILITIES).unwrap();
        assert_eq!((request.user.as_str(), request.auth.len()), ("eve", 0));
        assert_eq!((request.database, request.plugin), (None, None));
        // An auth response longer than the packet is malformed.
        let short = [b"eve\0".as_slice(), &[30, 1, 2]].concat();
        assert!(Response::parse_change_user(&short, SERVER_CAPABILITIES).is_err());
    }

    #[test]
    fn responses_parse_and_greetings_carry_the_scramble() {
        let bytes = response_bytes("app", &[1; 20], Some("shop"), NATIVE_PASSWORD);
        let response = Response::parse(&bytes).unwrap();
        assert_eq!(response.user, "app");
        assert_eq!(response.auth, vec![1; 20]);
        assert_eq!(response.database.as_deref(), Some("shop"));
        assert_eq!(response.plugin.as_deref(), Some(NATIVE_PASSWORD));
        let scramble = new_scramble();
        assert!(!scramble.contains(&0));
        let hello = greeting("8.4.0-lakewave", 7, &scramble, SERVER_CAPABILITIES, 2);
        assert_eq!(hello[0], 10);
        assert!(hello.windows(12).any(|w| w == &scramble[8..]));
        for cut in 0..bytes.len() - 1 {
            // Every prefix is an error or a shorter valid response, never a panic.
            let _ = Response::parse(&bytes[..cut]);
        }
    }
}
