//! Repository locations as restic writes them, parsed into one typed
//! value before anything is opened.
//!
//! - a path, or `local:PATH`;
//! - `s3:https://HOST[:PORT]/BUCKET[/PREFIX]` and `s3:http://…` (a loopback
//!   or LAN server), and restic's short `s3:HOST/BUCKET[/PREFIX]` (HTTPS):
//!   the same string opens the repository in restic and rustic;
//! - `s3://BUCKET[/PREFIX]`, whose endpoint comes from `AWS_ENDPOINT_URL`
//!   or the configuration (AWS itself when neither says).
//!
//! Invariants: a location never carries a secret (credentials in it are
//! refused: they belong in the environment or a credentials file), and its
//! `Display` is the location as given, safe for logs; a bucket name follows
//! S3's rules; a prefix has no empty, `.` or `..` segment.

use std::fmt;
use std::path::PathBuf;

/// Where a repository lives.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Location {
    Local(PathBuf),
    S3(S3Location),
}

/// A bucket and a prefix on an S3-compatible endpoint.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct S3Location {
    /// `https://host:port` (or `http://…`); `None` for `s3://BUCKET`: from
    /// the environment or the configuration.
    pub endpoint: Option<String>,
    pub bucket: String,
    /// The repository's folder in the bucket: no leading or trailing `/`,
    /// empty for the bucket's root.
    pub prefix: String,
}

/// How the bucket is addressed (restic's `-o s3.bucket-lookup=`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum BucketLookup {
    /// Virtual-hosted for AWS, path style elsewhere.
    #[default]
    Auto,
    /// `https://BUCKET.host/key`.
    Dns,
    /// `https://host/BUCKET/key`.
    Path,
}

impl BucketLookup {
    pub fn parse(s: &str) -> Result<BucketLookup, String> {
        match s {
            "auto" => Ok(BucketLookup::Auto),
            "dns" => Ok(BucketLookup::Dns),
            "path" => Ok(BucketLookup::Path),
            other => Err(format!(
                "s3.bucket-lookup {other:?}: one of auto, dns, path"
            )),
        }
    }
}

impl Location {
    /// Parse a repository location (see the module comment).
    pub fn parse(text: &str) -> Result<Location, String> {
        if text.is_empty() {
            return Err("an empty repository location".into());
        }
        if let Some(rest) = text.strip_prefix("local:") {
            return Ok(Location::Local(PathBuf::from(rest)));
        }
        if let Some(rest) = text.strip_prefix("s3://") {
            let (bucket, prefix) = bucket_and_prefix(rest)?;
            return Ok(Location::S3(S3Location {
                endpoint: None,
                bucket,
                prefix,
            }));
        }
        if let Some(rest) = text.strip_prefix("s3:") {
            let (scheme, rest) = match rest.split_once("://") {
                Some((s, r)) if s.eq_ignore_ascii_case("https") => ("https", r),
                Some((s, r)) if s.eq_ignore_ascii_case("http") => ("http", r),
                Some((s, _)) => {
                    return Err(format!("s3:{s}://…: the endpoint is http:// or https://"));
                }
                None => ("https", rest),
            };
            let (host, path) = rest.split_once('/').unwrap_or((rest, ""));
            if host.contains('@') {
                return Err(
                    "keep credentials out of the repository location: set AWS_ACCESS_KEY_ID and \
                     AWS_SECRET_ACCESS_KEY (or AWS_PROFILE)"
                        .into(),
                );
            }
            let valid_host = !host.is_empty()
                && host
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | ':' | '[' | ']'));
            if !valid_host {
                return Err(format!("s3:{scheme}://{host}: not a host name"));
            }
            let (bucket, prefix) = bucket_and_prefix(path)?;
            return Ok(Location::S3(S3Location {
                endpoint: Some(format!("{scheme}://{}", host.to_ascii_lowercase())),
                bucket,
                prefix,
            }));
        }
        if let Some((scheme, _)) = text.split_once(':')
            && !scheme.contains('/')
            && scheme.len() > 1
        {
            return Err(format!(
                "repository type {scheme:?} is not supported (use a directory, or s3:…)"
            ));
        }
        Ok(Location::Local(PathBuf::from(text)))
    }
}

impl Location {
    /// The location of `name` inside this one: a subdirectory, or a longer
    /// prefix. `name` is one plain segment (a tenant id).
    pub fn child(&self, name: &str) -> Result<Location, String> {
        if name.is_empty()
            || name == "."
            || name == ".."
            || name.contains(['/', '\\'])
            || name.chars().any(char::is_control)
        {
            return Err(format!("{name:?} is not a plain name"));
        }
        Ok(match self {
            Location::Local(p) => Location::Local(p.join(name)),
            Location::S3(s) => Location::S3(S3Location {
                prefix: if s.prefix.is_empty() {
                    name.to_string()
                } else {
                    format!("{}/{name}", s.prefix)
                },
                ..s.clone()
            }),
        })
    }

    /// The directory of a local location.
    pub fn local_path(&self) -> Option<&std::path::Path> {
        match self {
            Location::Local(p) => Some(p),
            Location::S3(_) => None,
        }
    }
}

/// `BUCKET[/PREFIX…]`, checked.
fn bucket_and_prefix(path: &str) -> Result<(String, String), String> {
    let path = path.trim_end_matches('/');
    let (bucket, prefix) = path.split_once('/').unwrap_or((path, ""));
    let ok_bucket = (3..=63).contains(&bucket.len())
        && bucket
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || matches!(c, '.' | '-'))
        && !bucket.starts_with(['.', '-'])
        && !bucket.ends_with(['.', '-'])
        && !bucket.contains("..");
    if !ok_bucket {
        return Err(format!(
            "{bucket:?} is not a bucket name (3–63 lowercase letters, digits, '.' and '-')"
        ));
    }
    if prefix
        .split('/')
        .any(|seg| !prefix.is_empty() && (seg.is_empty() || seg == "." || seg == ".."))
        || prefix.chars().any(|c| c.is_control() || c == '\\')
    {
        return Err(format!(
            "{prefix:?} is not a prefix (no empty, `.` or `..` segments)"
        ));
    }
    Ok((bucket.to_string(), prefix.to_string()))
}

impl fmt::Display for Location {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Location::Local(p) => write!(f, "{}", p.display()),
            Location::S3(s) => write!(f, "{s}"),
        }
    }
}

impl fmt::Display for S3Location {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.endpoint {
            Some(e) => write!(f, "s3:{e}/{}", self.bucket)?,
            None => write!(f, "s3://{}", self.bucket)?,
        }
        if !self.prefix.is_empty() {
            write!(f, "/{}", self.prefix)?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn s3(text: &str) -> S3Location {
        match Location::parse(text).unwrap() {
            Location::S3(s) => s,
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn restic_s3_locations() {
        let l = s3("s3:https://garage.local:3900/backups/acme/repo");
        assert_eq!(l.endpoint.as_deref(), Some("https://garage.local:3900"));
        assert_eq!(
            (l.bucket.as_str(), l.prefix.as_str()),
            ("backups", "acme/repo")
        );
        assert_eq!(
            l.to_string(),
            "s3:https://garage.local:3900/backups/acme/repo"
        );
        let l = s3("s3:http://127.0.0.1:3900/bucket/");
        assert_eq!(l.endpoint.as_deref(), Some("http://127.0.0.1:3900"));
        assert_eq!(l.prefix, "");
        // restic's short form: HTTPS
        let l = s3("s3:s3.amazonaws.com/my-bucket/x");
        assert_eq!(l.endpoint.as_deref(), Some("https://s3.amazonaws.com"));
        assert_eq!((l.bucket.as_str(), l.prefix.as_str()), ("my-bucket", "x"));
        // the endpoint from elsewhere
        let l = s3("s3://my-bucket/tenants/a");
        assert_eq!(l.endpoint, None);
        assert_eq!(l.to_string(), "s3://my-bucket/tenants/a");
        let l = s3("s3:[::1]:3900/bucket");
        assert_eq!(l.endpoint.as_deref(), Some("https://[::1]:3900"));
    }

    #[test]
    fn paths_and_bad_locations() {
        assert_eq!(
            Location::parse("/srv/repo").unwrap(),
            Location::Local("/srv/repo".into())
        );
        assert_eq!(
            Location::parse("local:/srv/repo").unwrap(),
            Location::Local("/srv/repo".into())
        );
        assert_eq!(
            Location::parse("relative/repo").unwrap(),
            Location::Local("relative/repo".into())
        );
        for bad in [
            "",
            "s3:https://AKIA:secret@host/bucket",
            "s3:ftp://host/bucket",
            "s3:https://host/",
            "s3:https://host/Bucket",
            "s3:https://host/ab",
            "s3:https://host/bucket/a/../b",
            "s3:https://host/bucket/a//b",
            "s3://-bucket",
            "sftp:host:/repo",
        ] {
            let e = Location::parse(bad).unwrap_err();
            assert!(!e.contains("secret"), "{bad}: {e}");
        }
        assert_eq!(BucketLookup::parse("path").unwrap(), BucketLookup::Path);
        assert!(BucketLookup::parse("virtual").is_err());
    }
}
