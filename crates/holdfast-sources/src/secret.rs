//! Source passwords: from a password file, the address, or the
//! environment the tools read themselves (`PGPASSWORD`, `~/.pgpass`,
//! `MYSQL_PWD`, option files). A password is handed to a tool through its
//! environment or a private option file, never its argv, and never
//! printed: `Secret`'s `Debug` shows `***`.

use std::fmt;
use std::path::Path;

use holdfast_engine::{EngineError, Result};

#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    pub fn new(s: impl Into<String>) -> Secret {
        Secret(s.into())
    }

    /// The secret itself, for handing to a tool.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("***")
    }
}

/// Read a password file: its first line, without the line ending.
pub fn read_password_file(path: &Path) -> Result<Secret> {
    let data = std::fs::read(path)
        .map_err(|e| EngineError::io(format!("reading the password file {}", path.display()), e))?;
    let text = String::from_utf8(data).map_err(|_| {
        EngineError::Invalid(format!("password file {} is not UTF-8", path.display()))
    })?;
    let line = text.lines().next().unwrap_or("");
    if line.is_empty() {
        return Err(EngineError::Invalid(format!(
            "password file {} is empty",
            path.display()
        )));
    }
    Ok(Secret(line.to_string()))
}

/// The password to hand to a tool: a password file wins over a password
/// in the address; `None` leaves the tool to its own means (environment,
/// `~/.pgpass`, option files).
pub fn resolve(password_file: Option<&Path>, in_address: Option<&str>) -> Result<Option<Secret>> {
    if let Some(p) = password_file {
        return read_password_file(p).map(Some);
    }
    Ok(in_address.map(Secret::new))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secrets_do_not_print() {
        let s = Secret::new("hunter2");
        assert_eq!(format!("{s:?}"), "***");
        let dir = tempfile::tempdir().unwrap();
        let f = dir.path().join("pw");
        std::fs::write(&f, "hunter2\nignored\n").unwrap();
        assert_eq!(
            resolve(Some(&f), Some("other")).unwrap().unwrap().expose(),
            "hunter2"
        );
        assert_eq!(
            resolve(None, Some("other")).unwrap().unwrap().expose(),
            "other"
        );
        std::fs::write(&f, "\n").unwrap();
        assert!(resolve(Some(&f), None).is_err());
    }
}
