//! Object names and the repository layout they map to.

use std::fmt;

use crate::StorageError;

/// The kinds of files in a repository, each in its own directory.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum FileType {
    Config,
    Key,
    Snapshot,
    Index,
    Pack,
    Lock,
}

impl FileType {
    pub const ALL: [FileType; 6] = [
        FileType::Config,
        FileType::Key,
        FileType::Snapshot,
        FileType::Index,
        FileType::Pack,
        FileType::Lock,
    ];

    /// The directory of this type in restic's default layout.
    pub fn dir(self) -> &'static str {
        match self {
            FileType::Config => "",
            FileType::Key => "keys",
            FileType::Snapshot => "snapshots",
            FileType::Index => "index",
            FileType::Pack => "data",
            FileType::Lock => "locks",
        }
    }
}

impl fmt::Display for FileType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            FileType::Config => "config",
            FileType::Key => "key",
            FileType::Snapshot => "snapshot",
            FileType::Index => "index",
            FileType::Pack => "pack",
            FileType::Lock => "lock",
        })
    }
}

/// A validated name of a file in the repository. Every file but the config
/// is named by 64 lowercase hex digits; nothing else can be expressed, so no
/// name can leave the layout.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ObjectName {
    ftype: FileType,
    name: String,
}

impl ObjectName {
    pub fn new(ftype: FileType, name: &str) -> Result<ObjectName, StorageError> {
        let invalid = |why| StorageError::InvalidName {
            ftype,
            name: name.to_string(),
            why,
        };
        if ftype == FileType::Config {
            if name != "config" {
                return Err(invalid("the config file is always named \"config\""));
            }
        } else if name.len() != 64 {
            return Err(invalid("expected 64 hexadecimal digits"));
        } else if !name
            .bytes()
            .all(|c| c.is_ascii_digit() || (b'a'..=b'f').contains(&c))
        {
            return Err(invalid("expected lowercase hexadecimal digits only"));
        }
        Ok(ObjectName {
            ftype,
            name: name.to_string(),
        })
    }

    pub fn config() -> ObjectName {
        ObjectName {
            ftype: FileType::Config,
            name: "config".into(),
        }
    }

    pub fn ftype(&self) -> FileType {
        self.ftype
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    /// Path relative to the repository root, `/`-separated: `config`,
    /// `keys/<id>`, `data/<id[..2]>/<id>`, …
    pub fn path(&self) -> String {
        match self.ftype {
            FileType::Config => "config".into(),
            FileType::Pack => format!("data/{}/{}", &self.name[..2], self.name),
            t => format!("{}/{}", t.dir(), self.name),
        }
    }
}

impl fmt::Display for ObjectName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.path())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn layout_paths() {
        let id = "ab".repeat(32);
        assert_eq!(
            ObjectName::new(FileType::Pack, &id).unwrap().path(),
            format!("data/ab/{id}")
        );
        assert_eq!(
            ObjectName::new(FileType::Snapshot, &id).unwrap().path(),
            format!("snapshots/{id}")
        );
        assert_eq!(ObjectName::config().path(), "config");
    }

    #[test]
    fn hostile_names_are_refused() {
        for bad in [
            "../../etc/passwd",
            "/etc/passwd",
            "",
            "config",
            &"A".repeat(64),
            &format!("{}/x", "a".repeat(62)),
            &"a".repeat(65),
        ] {
            assert!(ObjectName::new(FileType::Index, bad).is_err(), "{bad}");
        }
        assert!(ObjectName::new(FileType::Config, "../config").is_err());
    }
}
