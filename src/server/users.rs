//! The accounts a server accepts. Passwords are kept only as the digests the
//! MySQL authentication plugins check against (`mysql_native_password`'s
//! SHA1(SHA1(password)), `caching_sha2_password`'s SHA256(SHA256(password))),
//! never as text; they appear in no message, log or file of ours.
//!
//! A users file has one `user:password` per line (`#` starts a comment, an
//! empty password is allowed), or `user:$lw-sha$<hex>$<hex>` with the two
//! digests instead of the password (what `lakewave group init` writes, so
//! that no password is kept in a file). The check user, for HAProxy's `option
//! mysql-check`, logs in without a password and may run no statement.

use std::collections::BTreeMap;
use std::path::Path;

use ring::digest::{SHA1_FOR_LEGACY_USE_ONLY, SHA256, digest};

use super::ServerError;

/// One account.
#[derive(Clone)]
pub struct Account {
    pub name: String,
    native: [u8; 20],
    sha2: [u8; 32],
    has_password: bool,
    /// Logs in for health checks only: every statement is refused.
    pub check_only: bool,
}

impl std::fmt::Debug for Account {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Account")
            .field("name", &self.name)
            .field("check_only", &self.check_only)
            .finish_non_exhaustive()
    }
}

fn sha1(bytes: &[u8]) -> [u8; 20] {
    digest(&SHA1_FOR_LEGACY_USE_ONLY, bytes)
        .as_ref()
        .try_into()
        .expect("SHA1 is 20 bytes")
}

fn sha256(bytes: &[u8]) -> [u8; 32] {
    digest(&SHA256, bytes)
        .as_ref()
        .try_into()
        .expect("SHA256 is 32 bytes")
}

impl Account {
    pub fn new(name: &str, password: &str) -> Account {
        Account {
            name: name.to_string(),
            native: sha1(&sha1(password.as_bytes())),
            sha2: sha256(&sha256(password.as_bytes())),
            has_password: !password.is_empty(),
            check_only: false,
        }
    }

    /// The users-file line that keeps `password` only as its digests.
    pub fn digest_line(name: &str, password: &str) -> String {
        let account = Account::new(name, password);
        let hex = |bytes: &[u8]| bytes.iter().map(|b| format!("{b:02x}")).collect::<String>();
        if !account.has_password {
            return format!("{name}:");
        }
        format!(
            "{name}:{DIGEST_PREFIX}{}${}",
            hex(&account.native),
            hex(&account.sha2)
        )
    }

    /// An account from a users file's digest form, if `secret` is one.
    fn from_digests(name: &str, secret: &str) -> Option<Account> {
        let digests = secret.strip_prefix(DIGEST_PREFIX)?;
        let (native, sha2) = digests.split_once('$')?;
        let unhex = |text: &str| -> Option<Vec<u8>> {
            text.len()
                .is_multiple_of(2)
                .then(|| {
                    (0..text.len())
                        .step_by(2)
                        .map(|i| u8::from_str_radix(text.get(i..i + 2)?, 16).ok())
                        .collect::<Option<Vec<u8>>>()
                })
                .flatten()
        };
        Some(Account {
            name: name.to_string(),
            native: unhex(native)?.try_into().ok()?,
            sha2: unhex(sha2)?.try_into().ok()?,
            has_password: true,
            check_only: false,
        })
    }

    fn check_user(name: &str) -> Account {
        Account {
            check_only: true,
            ..Account::new(name, "")
        }
    }

    pub fn has_password(&self) -> bool {
        self.has_password
    }

    /// `mysql_native_password`: the client sent SHA1(pw) XOR
    /// SHA1(scramble + SHA1(SHA1(pw))).
    pub fn verify_native(&self, scramble: &[u8], response: &[u8]) -> bool {
        if !self.has_password {
            return response.is_empty();
        }
        if response.len() != 20 {
            return false;
        }
        let mut salted = scramble.to_vec();
        salted.extend_from_slice(&self.native);
        let mask = sha1(&salted);
        let candidate: Vec<u8> = response.iter().zip(mask).map(|(r, m)| r ^ m).collect();
        constant_time_eq(&sha1(&candidate), &self.native)
    }

    /// `caching_sha2_password`'s fast path: the client sent SHA256(pw) XOR
    /// SHA256(SHA256(SHA256(pw)) + scramble).
    pub fn verify_sha2(&self, scramble: &[u8], response: &[u8]) -> bool {
        if !self.has_password {
            return response.is_empty() || response == [0];
        }
        if response.len() != 32 {
            return false;
        }
        let mut salted = self.sha2.to_vec();
        salted.extend_from_slice(scramble);
        let mask = sha256(&salted);
        let candidate: Vec<u8> = response.iter().zip(mask).map(|(r, m)| r ^ m).collect();
        constant_time_eq(&sha256(&candidate), &self.sha2)
    }
}

impl Account {
    /// A password sent in the clear (Flight SQL's basic authentication,
    /// over TLS where it matters): compared by its double SHA256, the
    /// digest the account keeps.
    pub fn verify_plain(&self, password: &str) -> bool {
        if !self.has_password {
            return password.is_empty();
        }
        constant_time_eq(&sha256(&sha256(password.as_bytes())), &self.sha2)
    }
}

fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// Marks a users-file secret that is the password's digests.
const DIGEST_PREFIX: &str = "$lw-sha$";

/// Every account of a server.
#[derive(Debug, Clone, Default)]
pub struct Users {
    accounts: BTreeMap<String, Account>,
}

impl Users {
    /// One account, plus the check user when named.
    pub fn single(user: &str, password: &str, check_user: Option<&str>) -> Users {
        let mut users = Users::default();
        users.add(Account::new(user, password));
        if let Some(check) = check_user {
            users.add_check_user(check);
        }
        users
    }

    pub fn add(&mut self, account: Account) {
        self.accounts.insert(account.name.clone(), account);
    }

    pub fn add_check_user(&mut self, name: &str) {
        self.accounts
            .entry(name.to_string())
            .or_insert_with(|| Account::check_user(name));
    }

    /// Read a users file (`user:password` per line).
    pub fn from_file(path: &Path) -> Result<Users, ServerError> {
        let text = std::fs::read_to_string(path).map_err(|source| ServerError::UsersFile {
            path: path.display().to_string(),
            line: 0,
            message: "cannot be read".into(),
            source: Some(source),
        })?;
        Users::parse(&text).map_err(|(line, message)| ServerError::UsersFile {
            path: path.display().to_string(),
            line,
            message,
            source: None,
        })
    }

    fn parse(text: &str) -> Result<Users, (usize, String)> {
        let mut users = Users::default();
        for (index, line) in text.lines().enumerate() {
            let line = line.trim_end_matches('\r');
            if line.trim().is_empty() || line.trim_start().starts_with('#') {
                continue;
            }
            let Some((name, password)) = line.split_once(':') else {
                return Err((index + 1, "expected user:password".into()));
            };
            let name = name.trim();
            if name.is_empty() || name.len() > 80 {
                return Err((index + 1, "a user name has 1 to 80 characters".into()));
            }
            if users.accounts.contains_key(name) {
                return Err((index + 1, format!("user '{name}' appears twice")));
            }
            let account = if password.starts_with(DIGEST_PREFIX) {
                Account::from_digests(name, password).ok_or_else(|| {
                    (
                        index + 1,
                        format!("user '{name}': a digest is {DIGEST_PREFIX}<40 hex digits>$<64 hex digits>"),
                    )
                })?
            } else {
                Account::new(name, password)
            };
            users.add(account);
        }
        if users.accounts.is_empty() {
            return Err((0, "names no user".into()));
        }
        Ok(users)
    }

    pub fn get(&self, name: &str) -> Option<&Account> {
        self.accounts.get(name)
    }

    /// The account a client that sends no credentials is: one without a
    /// password that may run statements (`root` when the server was started
    /// without `--password`), if there is one.
    pub fn anonymous(&self) -> Option<&Account> {
        self.accounts
            .values()
            .find(|a| !a.has_password && !a.check_only)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn native_response(password: &str, scramble: &[u8]) -> Vec<u8> {
        let stage1 = sha1(password.as_bytes());
        let mut salted = scramble.to_vec();
        salted.extend_from_slice(&sha1(&stage1));
        let mask = sha1(&salted);
        stage1.iter().zip(mask).map(|(a, b)| a ^ b).collect()
    }

    fn sha2_response(password: &str, scramble: &[u8]) -> Vec<u8> {
        let stage1 = sha256(password.as_bytes());
        let mut salted = sha256(&stage1).to_vec();
        salted.extend_from_slice(scramble);
        let mask = sha256(&salted);
        stage1.iter().zip(mask).map(|(a, b)| a ^ b).collect()
    }

    #[test]
    fn a_digest_line_logs_in_with_the_password_it_does_not_contain() {
        let line = Account::digest_line("app", "pa:ss word");
        assert!(!line.contains("pa:ss word"), "{line}");
        let users = Users::parse(&format!("{line}\nother:plain\n")).unwrap();
        let account = users.get("app").unwrap();
        let scramble = b"abcdefghij0123456789";
        assert!(account.verify_native(scramble, &native_response("pa:ss word", scramble)));
        assert!(account.verify_sha2(scramble, &sha2_response("pa:ss word", scramble)));
        assert!(account.verify_plain("pa:ss word"));
        assert!(!account.verify_plain("pa:ss"));
        let (line, message) = Users::parse("app:$lw-sha$00$11\n").unwrap_err();
        assert_eq!(line, 1);
        assert!(message.contains("digest"), "{message}");
    }

    #[test]
    fn both_plugins_accept_the_password_and_nothing_else() {
        let account = Account::new("app", "s3cr3t: with colon");
        let scramble = b"abcdefghij0123456789";
        assert!(account.verify_native(scramble, &native_response("s3cr3t: with colon", scramble)));
        assert!(!account.verify_native(scramble, &native_response("wrong", scramble)));
        assert!(!account.verify_native(scramble, b""));
        assert!(account.verify_sha2(scramble, &sha2_response("s3cr3t: with colon", scramble)));
        assert!(!account.verify_sha2(scramble, &sha2_response("wrong", scramble)));
        assert!(account.verify_plain("s3cr3t: with colon"));
        assert!(!account.verify_plain("s3cr3t"));
        let open = Account::new("root", "");
        assert!(open.verify_plain("") && !open.verify_plain("x"));
        assert!(open.verify_native(scramble, b""));
        assert!(!open.verify_native(scramble, &native_response("x", scramble)));
    }

    #[test]
    fn users_files_are_checked_line_by_line() {
        let users = Users::parse("# accounts\napp:pw:with:colons\n\nreport:\n").unwrap();
        assert!(users.get("app").is_some() && users.get("report").is_some());
        assert_eq!(Users::parse("nocolon").unwrap_err().0, 1);
        assert_eq!(Users::parse("a:1\na:2").unwrap_err().0, 2);
        assert!(Users::parse("# nothing").is_err());
        let debug = format!("{:?}", Account::new("app", "hunter2"));
        assert!(!debug.contains("hunter2"));
    }
}
