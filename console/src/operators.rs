//! Who may use the console: operators declared in a TOML file, each with the SHA-256 of a bearer
//! token and the permissions beyond reading; a request names its operator by
//! `Authorization: Bearer <token>` or by the cookie the login form sets.
//!
//! ```toml
//! [[operator]]
//! name = "alice"
//! token_sha256 = "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08"
//! permissions = ["replay"]
//! ```
//!
//! Only hashes are kept, so the file can be read by more people than the tokens; every token is
//! compared with every hash in constant time, so the answer's timing says nothing about which
//! operator came close.

use std::collections::BTreeSet;
use std::path::Path;

use serde::Deserialize;
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

use crate::error::ConsoleError;

/// The cookie the login form sets: the operator's token, HttpOnly and SameSite=Strict.
pub const COOKIE: &str = "hub_console";

/// What an operator may do beyond reading.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Permission {
    /// Replay dead letters.
    Replay,
}

/// One authenticated operator.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Operator {
    pub name: String,
    pub permissions: BTreeSet<Permission>,
}

impl Operator {
    pub fn may(&self, permission: Permission) -> bool {
        self.permissions.contains(&permission)
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct File {
    #[serde(default)]
    operator: Vec<Entry>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Entry {
    name: String,
    token_sha256: String,
    #[serde(default)]
    permissions: BTreeSet<Permission>,
}

/// The operators of one console.
#[derive(Debug, Clone, Default)]
pub struct Operators {
    known: Vec<(Operator, [u8; 32])>,
}

impl Operators {
    /// Reads and checks the file, reporting every problem at once.
    pub fn load(path: &Path) -> Result<Self, ConsoleError> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| ConsoleError::Operators { path: path.display().to_string(), problems: vec![e.to_string()] })?;
        Self::parse(&text).map_err(|problems| ConsoleError::Operators { path: path.display().to_string(), problems })
    }

    /// Parses the file's text; every problem found, when there are any.
    pub fn parse(text: &str) -> Result<Self, Vec<String>> {
        let file: File = toml::from_str(text).map_err(|e| vec![e.to_string()])?;
        let mut problems = Vec::new();
        let mut names = BTreeSet::new();
        let mut known = Vec::new();
        for (i, entry) in file.operator.into_iter().enumerate() {
            let at = format!("operator {} ({:?})", i + 1, entry.name);
            if entry.name.trim().is_empty() {
                problems.push(format!("{at}: name is empty"));
            }
            if !names.insert(entry.name.clone()) {
                problems.push(format!("{at}: name is declared twice"));
            }
            match hex32(&entry.token_sha256) {
                Some(hash) => {
                    if known.iter().any(|(_, h)| h == &hash) {
                        problems.push(format!("{at}: token_sha256 is another operator's"));
                    }
                    known.push((Operator { name: entry.name, permissions: entry.permissions }, hash));
                }
                None => problems.push(format!("{at}: token_sha256 is not 64 hex digits (sha256sum of the token)")),
            }
        }
        if known.is_empty() && problems.is_empty() {
            problems.push("no [[operator]]: nobody could sign in".to_owned());
        }
        if problems.is_empty() {
            Ok(Self { known })
        } else {
            Err(problems)
        }
    }

    /// The operator whose token this is.
    pub fn authenticate(&self, token: &str) -> Option<&Operator> {
        let hash: [u8; 32] = Sha256::digest(token.as_bytes()).into();
        // Every hash compared, whichever matches.
        let mut found = None;
        for (operator, known) in &self.known {
            if bool::from(known.ct_eq(&hash)) {
                found = Some(operator);
            }
        }
        found
    }
}

/// The token a request carries: its bearer token, else the login cookie.
pub fn token_of(headers: &axum::http::HeaderMap) -> Option<&str> {
    if let Some(bearer) = headers
        .get(axum::http::header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
    {
        return Some(bearer.trim());
    }
    headers
        .get_all(axum::http::header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(name, _)| *name == COOKIE)
        .map(|(_, value)| value)
}

fn hex32(text: &str) -> Option<[u8; 32]> {
    let text = text.trim();
    if text.len() != 64 {
        return None;
    }
    let mut out = [0_u8; 32];
    for (i, byte) in out.iter_mut().enumerate() {
        *byte = u8::from_str_radix(text.get(2 * i..2 * i + 2)?, 16).ok()?;
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sha(token: &str) -> String {
        Sha256::digest(token.as_bytes()).iter().map(|b| format!("{b:02x}")).collect()
    }

    #[test]
    fn a_token_names_its_operator_and_its_permissions() {
        let text = format!(
            "[[operator]]\nname = \"alice\"\ntoken_sha256 = \"{}\"\npermissions = [\"replay\"]\n\n\
             [[operator]]\nname = \"bob\"\ntoken_sha256 = \"{}\"\n",
            sha("alice-token"),
            sha("bob-token")
        );
        let operators = Operators::parse(&text).expect("valid");
        let alice = operators.authenticate("alice-token").expect("alice");
        assert_eq!(alice.name, "alice");
        assert!(alice.may(Permission::Replay));
        let bob = operators.authenticate("bob-token").expect("bob");
        assert!(!bob.may(Permission::Replay), "reading only, unless granted");
        assert_eq!(operators.authenticate("nobody"), None);
        assert_eq!(operators.authenticate(""), None);
    }

    #[test]
    fn every_problem_of_the_file_is_reported_at_once() {
        let text = format!(
            "[[operator]]\nname = \"\"\ntoken_sha256 = \"abc\"\n\n\
             [[operator]]\nname = \"carol\"\ntoken_sha256 = \"{0}\"\n\n\
             [[operator]]\nname = \"carol\"\ntoken_sha256 = \"{0}\"\n",
            sha("t")
        );
        let problems = Operators::parse(&text).expect_err("invalid");
        assert_eq!(
            problems,
            vec![
                "operator 1 (\"\"): name is empty",
                "operator 1 (\"\"): token_sha256 is not 64 hex digits (sha256sum of the token)",
                "operator 3 (\"carol\"): name is declared twice",
                "operator 3 (\"carol\"): token_sha256 is another operator's",
            ]
        );
        let unknown = Operators::parse("[[operator]]\nname = \"d\"\ntoken_sha256 = \"x\"\npermissions = [\"root\"]\n");
        assert!(unknown.expect_err("unknown permission")[0].contains("unknown variant `root`"));
        assert_eq!(Operators::parse("").expect_err("empty"), vec!["no [[operator]]: nobody could sign in"]);
    }

    #[test]
    fn the_bearer_token_comes_first_then_the_cookie() {
        let mut headers = axum::http::HeaderMap::new();
        assert_eq!(token_of(&headers), None);
        headers.insert("cookie", "theme=dark; hub_console=from-cookie".parse().expect("header"));
        assert_eq!(token_of(&headers), Some("from-cookie"));
        headers.insert("authorization", "Bearer from-header".parse().expect("header"));
        assert_eq!(token_of(&headers), Some("from-header"));
    }
}
