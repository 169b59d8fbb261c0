//! The export formats and which snapshots each fits.

use std::fmt;
use std::str::FromStr;

use crate::compression::Compression;

/// What `export --format` names.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ExportFormat {
    /// Any snapshot as a tar stream (with metadata), optionally compressed.
    Tar(Compression),
    /// Any snapshot as a zip archive (deflate, ZIP64 when needed).
    Zip,
    /// A dump snapshot's SQL, optionally compressed: loads with psql/mysql.
    Sql(Compression),
    /// An event-stream snapshot's JSON Lines, optionally compressed.
    Jsonl(Compression),
}

/// Every name `FromStr` accepts, for help texts and errors.
pub const FORMAT_NAMES: &[&str] = &[
    "tar",
    "tar.gz",
    "tar.zst",
    "zip",
    "sql",
    "sql.gz",
    "sql.zst",
    "jsonl",
    "jsonl.gz",
    "jsonl.zst",
];

impl ExportFormat {
    /// The file name extension, e.g. `tar.gz`.
    pub fn extension(self) -> String {
        let (base, c) = match self {
            ExportFormat::Tar(c) => ("tar", c),
            ExportFormat::Zip => ("zip", Compression::None),
            ExportFormat::Sql(c) => ("sql", c),
            ExportFormat::Jsonl(c) => ("jsonl", c),
        };
        match c {
            Compression::None => base.to_string(),
            c => format!("{base}.{}", c.suffix()),
        }
    }

    /// The format a file name's extension implies, if any.
    pub fn from_file_name(name: &str) -> Option<ExportFormat> {
        let lower = name.to_ascii_lowercase();
        let mut best: Option<&str> = None;
        for f in FORMAT_NAMES {
            if lower.ends_with(&format!(".{f}")) && best.is_none_or(|b| f.len() > b.len()) {
                best = Some(f);
            }
        }
        if best.is_none() && (lower.ends_with(".tgz")) {
            return Some(ExportFormat::Tar(Compression::Gzip));
        }
        best.and_then(|b| b.parse().ok())
    }

    /// The MIME type of the artifact.
    pub fn content_type(self) -> &'static str {
        match self {
            ExportFormat::Tar(Compression::None) => "application/x-tar",
            ExportFormat::Zip => "application/zip",
            ExportFormat::Sql(Compression::None) => "application/sql",
            ExportFormat::Jsonl(Compression::None) => "application/x-ndjson",
            ExportFormat::Tar(Compression::Gzip)
            | ExportFormat::Sql(Compression::Gzip)
            | ExportFormat::Jsonl(Compression::Gzip) => "application/gzip",
            _ => "application/zstd",
        }
    }
}

impl fmt::Display for ExportFormat {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.extension())
    }
}

impl FromStr for ExportFormat {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let (base, comp) = match s.split_once('.') {
            None => (s, Compression::None),
            Some((b, "gz")) => (b, Compression::Gzip),
            Some((b, "zst")) => (b, Compression::Zstd),
            Some(_) => (s, Compression::None),
        };
        match (base, comp) {
            ("tar", c) => Ok(ExportFormat::Tar(c)),
            ("tgz", Compression::None) => Ok(ExportFormat::Tar(Compression::Gzip)),
            ("zip", Compression::None) => Ok(ExportFormat::Zip),
            ("sql", c) => Ok(ExportFormat::Sql(c)),
            ("jsonl", c) => Ok(ExportFormat::Jsonl(c)),
            _ => Err(format!(
                "unknown export format {s:?}; known: {}",
                FORMAT_NAMES.join(", ")
            )),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip() {
        for n in FORMAT_NAMES {
            let f: ExportFormat = n.parse().unwrap();
            assert_eq!(f.extension(), *n);
        }
        assert!("tar.bz2".parse::<ExportFormat>().is_err());
        assert!("zip.gz".parse::<ExportFormat>().is_err());
    }

    #[test]
    fn from_file_names() {
        assert_eq!(
            ExportFormat::from_file_name("/x/shop.SQL.GZ"),
            Some(ExportFormat::Sql(Compression::Gzip))
        );
        assert_eq!(
            ExportFormat::from_file_name("home.tgz"),
            Some(ExportFormat::Tar(Compression::Gzip))
        );
        assert_eq!(
            ExportFormat::from_file_name("a.tar.zst"),
            Some(ExportFormat::Tar(Compression::Zstd))
        );
        assert_eq!(
            ExportFormat::from_file_name("a.zip"),
            Some(ExportFormat::Zip)
        );
        assert_eq!(ExportFormat::from_file_name("a.bin"), None);
    }
}
