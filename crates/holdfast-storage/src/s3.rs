//! S3-compatible object storage, on Apache OpenDAL (the crate rustic uses).
//!
//! How the object store keeps the [`Backend`] contract:
//!
//! - `put` is one `PutObject` of the whole file with a body checksum
//!   (`Content-MD5` by default; `x-amz-checksum-crc32c` or none by
//!   setting): S3 makes an object visible under its key only when the
//!   request completes, so a reader sees the whole file or no file, and a
//!   body damaged in transit is refused by the server, not stored.
//! - "not found" is `NoSuchKey`/404, mapped to [`StorageError::NotFound`];
//!   a missing bucket, refused credentials and a wrong region are their
//!   own errors naming the endpoint and bucket, never a secret.
//! - listings are paginated by OpenDAL (`ListObjectsV2`) and may lag
//!   behind writes; nothing in the engine relies on a fresh listing.
//! - a refused delete (object lock, a policy without `DeleteObject`) is
//!   [`StorageError::Retained`], which prune reports instead of failing.
//! - every request is retried with exponential backoff and jitter on
//!   5xx, `SlowDown`, 429 and connection errors, up to a bound; each retry
//!   is counted ([`Backend::stats`]).
//!
//! The [`Backend`] trait is blocking (the engine runs on its own threads);
//! requests run on one small process-wide tokio runtime, and callers must
//! not be inside an async context (the service runs jobs on their own
//! threads).

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, LazyLock};
use std::time::Duration;

use opendal::layers::RetryLayer;
use opendal::{ErrorKind, HttpTransporter, Operator};
use opendal_http_transport_reqwest::ReqwestTransport;

use crate::location::{BucketLookup, S3Location};
use crate::{Backend, BackendStats, FileType, ObjectInfo, ObjectName, Result, StorageError};

/// The body checksum sent with every upload.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Checksum {
    /// `Content-MD5`: understood by every S3-compatible server, and enough
    /// for buckets with object lock.
    #[default]
    Md5,
    /// `x-amz-checksum-crc32c` (AWS and newer servers).
    Crc32c,
    /// None: for endpoints that reject checksum headers.
    Off,
}

impl Checksum {
    pub fn parse(s: &str) -> std::result::Result<Checksum, String> {
        match s {
            "md5" => Ok(Checksum::Md5),
            "crc32c" => Ok(Checksum::Crc32c),
            "off" | "none" => Ok(Checksum::Off),
            other => Err(format!("s3.checksum {other:?}: one of md5, crc32c, off")),
        }
    }
}

/// Static credentials. `Debug` shows the key id only.
#[derive(Clone, PartialEq, Eq)]
pub struct S3Credentials {
    pub access_key_id: String,
    pub secret_access_key: String,
    pub session_token: Option<String>,
}

impl std::fmt::Debug for S3Credentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("S3Credentials")
            .field("access_key_id", &self.access_key_id)
            .finish_non_exhaustive()
    }
}

/// How to reach one bucket: everything but the location itself.
#[derive(Debug, Clone)]
pub struct S3Settings {
    /// For `s3://BUCKET` locations, which carry none.
    pub default_endpoint: Option<String>,
    pub region: Option<String>,
    pub bucket_lookup: BucketLookup,
    /// `None`: from the environment, the shared credentials file
    /// (`AWS_PROFILE`) or, on AWS only, the instance metadata.
    pub credentials: Option<S3Credentials>,
    pub profile: Option<String>,
    pub checksum: Checksum,
    /// Uploads in flight at once (`--s3-connections`).
    pub connections: usize,
    /// Retries of one request before it fails.
    pub retries: usize,
    pub connect_timeout: Duration,
    /// Longest a response may stall between two reads.
    pub read_timeout: Duration,
}

impl Default for S3Settings {
    fn default() -> Self {
        S3Settings {
            default_endpoint: None,
            region: None,
            bucket_lookup: BucketLookup::Auto,
            credentials: None,
            profile: None,
            checksum: Checksum::Md5,
            connections: 5,
            retries: 8,
            connect_timeout: Duration::from_secs(10),
            read_timeout: Duration::from_secs(60),
        }
    }
}

impl S3Settings {
    /// The standard AWS variables: `AWS_ACCESS_KEY_ID`,
    /// `AWS_SECRET_ACCESS_KEY`, `AWS_SESSION_TOKEN`, `AWS_REGION` or
    /// `AWS_DEFAULT_REGION`, `AWS_PROFILE`, `AWS_ENDPOINT_URL`.
    pub fn from_env() -> S3Settings {
        let var = |k: &str| std::env::var(k).ok().filter(|v| !v.is_empty());
        let credentials = match (var("AWS_ACCESS_KEY_ID"), var("AWS_SECRET_ACCESS_KEY")) {
            (Some(access_key_id), Some(secret_access_key)) => Some(S3Credentials {
                access_key_id,
                secret_access_key,
                session_token: var("AWS_SESSION_TOKEN"),
            }),
            _ => None,
        };
        S3Settings {
            default_endpoint: var("AWS_ENDPOINT_URL_S3").or_else(|| var("AWS_ENDPOINT_URL")),
            region: var("AWS_REGION").or_else(|| var("AWS_DEFAULT_REGION")),
            credentials,
            profile: var("AWS_PROFILE"),
            ..S3Settings::default()
        }
    }
}

impl S3Settings {
    /// One `-o KEY=VALUE` option (restic's names where restic has one).
    pub fn set_option(&mut self, key: &str, value: &str) -> std::result::Result<(), String> {
        let count = |what: &str, lo: usize, hi: usize| -> std::result::Result<usize, String> {
            value
                .parse::<usize>()
                .ok()
                .filter(|n| (lo..=hi).contains(n))
                .ok_or_else(|| format!("{what} {value:?}: a number from {lo} to {hi}"))
        };
        match key {
            "s3.bucket-lookup" => self.bucket_lookup = BucketLookup::parse(value)?,
            "s3.region" => self.region = Some(value.to_string()),
            "s3.checksum" => self.checksum = Checksum::parse(value)?,
            "s3.connections" => self.connections = count(key, 1, 128)?,
            "s3.retries" => self.retries = count(key, 0, 100)?,
            "s3.endpoint" => self.default_endpoint = Some(value.to_string()),
            _ => {
                return Err(format!(
                    "unknown option {key:?} (known: s3.bucket-lookup, s3.region, s3.checksum, \
                     s3.connections, s3.retries, s3.endpoint)"
                ));
            }
        }
        Ok(())
    }
}

/// Retries of every S3 backend of this process (a service's metrics).
static RETRIES_TOTAL: AtomicU64 = AtomicU64::new(0);

/// Requests this process repeated on object storage, all backends.
pub fn retries_total() -> u64 {
    RETRIES_TOTAL.load(Ordering::Relaxed)
}

/// The runtime every S3 request runs on: two threads drive the I/O of any
/// number of backends.
static RUNTIME: LazyLock<tokio::runtime::Runtime> = LazyLock::new(|| {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .thread_name("hf-s3")
        .enable_all()
        .build()
        .expect("the S3 runtime starts")
});

pub struct S3Backend {
    op: Operator,
    /// `s3:ENDPOINT/BUCKET/PREFIX`, for messages.
    display: String,
    connections: usize,
    retries: Arc<AtomicU64>,
}

impl S3Backend {
    /// Build the client; nothing is sent yet (the first request checks the
    /// bucket and credentials).
    pub fn open(loc: &S3Location, settings: &S3Settings) -> Result<S3Backend> {
        let endpoint = loc
            .endpoint
            .clone()
            .or_else(|| settings.default_endpoint.clone());
        let region = settings
            .region
            .clone()
            .unwrap_or_else(|| "us-east-1".into());
        let endpoint = endpoint.unwrap_or_else(|| format!("https://s3.{region}.amazonaws.com"));
        let on_aws = endpoint_host(&endpoint).ends_with(".amazonaws.com");
        let display = format!(
            "s3:{endpoint}/{}{}{}",
            loc.bucket,
            slash(&loc.prefix),
            loc.prefix
        );
        let config = |why: String| StorageError::Config {
            location: display.clone(),
            why,
        };

        let mut b = opendal::services::S3::default()
            .bucket(&loc.bucket)
            .root(&format!("/{}", loc.prefix))
            .endpoint(&endpoint)
            .region(&region);
        let virtual_host = match settings.bucket_lookup {
            BucketLookup::Dns => true,
            BucketLookup::Path => false,
            BucketLookup::Auto => on_aws,
        };
        if virtual_host {
            b = b.enable_virtual_host_style();
        }
        match settings.checksum {
            Checksum::Md5 => b = b.checksum_algorithm("md5"),
            Checksum::Crc32c => b = b.checksum_algorithm("crc32c"),
            Checksum::Off => {}
        }
        if let Some(c) = &settings.credentials {
            b = b
                .access_key_id(&c.access_key_id)
                .secret_access_key(&c.secret_access_key)
                .disable_config_load();
            if let Some(t) = &c.session_token {
                b = b.session_token(t);
            }
        } else if let Some(p) = &settings.profile {
            b = b.profile(p);
        }
        if settings.credentials.is_some() || !on_aws {
            // the instance metadata service only ever holds AWS credentials
            b = b.disable_ec2_metadata();
        }

        let client = reqwest::Client::builder()
            .connect_timeout(settings.connect_timeout)
            .read_timeout(settings.read_timeout)
            .http1_only()
            .pool_max_idle_per_host(settings.connections.max(4))
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .map_err(|e| config(format!("cannot build the HTTP client: {e}")))?;

        let retries = Arc::new(AtomicU64::new(0));
        let counter = retries.clone();
        let op = {
            let _rt = RUNTIME.enter();
            let op = Operator::new(b).map_err(|e| config(e.message().to_string()))?;
            let ctx = op
                .base_context()
                .with_http_transport(HttpTransporter::new(ReqwestTransport::new(client)));
            op.with_context(ctx).layer(
                RetryLayer::new()
                    .with_jitter()
                    .with_factor(2.0)
                    .with_min_delay(Duration::from_millis(100))
                    .with_max_delay(Duration::from_secs(10))
                    .with_max_times(settings.retries)
                    .with_notify(move |_: opendal::layers::RetryEvent<'_>| {
                        counter.fetch_add(1, Ordering::Relaxed);
                        RETRIES_TOTAL.fetch_add(1, Ordering::Relaxed);
                    }),
            )
        };
        Ok(S3Backend {
            op,
            display,
            connections: settings.connections.max(1),
            retries,
        })
    }

    fn block_on<T>(&self, f: impl IntoFuture<Output = opendal::Result<T>>) -> opendal::Result<T> {
        RUNTIME.block_on(f.into_future())
    }

    fn err(
        &self,
        op: &'static str,
        path: impl std::fmt::Display,
        e: opendal::Error,
    ) -> StorageError {
        remote_error(&self.display, op, &path.to_string(), &e)
    }
}

fn slash(prefix: &str) -> &'static str {
    if prefix.is_empty() { "" } else { "/" }
}

fn endpoint_host(endpoint: &str) -> &str {
    let rest = endpoint
        .split_once("://")
        .map(|(_, r)| r)
        .unwrap_or(endpoint);
    let host = rest.split('/').next().unwrap_or("");
    host.rsplit_once(':').map(|(h, _)| h).unwrap_or(host)
}

/// An OpenDAL error as ours: the kind and the S3 error code decide the
/// variant; the text is the S3 error code and message only (never a
/// request, so never a signature).
fn remote_error(location: &str, op: &'static str, path: &str, e: &opendal::Error) -> StorageError {
    let (code, message) = s3_error(e.message());
    let detail = match (code.is_empty(), message.is_empty()) {
        (true, _) => {
            // a transport error: its causes say what happened (refused,
            // reset, timed out)
            let mut text = e.message().to_string();
            let mut cause = std::error::Error::source(e);
            while let Some(c) = cause {
                text.push_str(": ");
                text.push_str(&c.to_string());
                cause = c.source();
            }
            if text.is_empty() {
                // a HEAD answer has no body to say why
                text = format!(
                    "{} without details from the server (a wrong region or key answers so)",
                    e.kind()
                );
            }
            text.chars().take(400).collect()
        }
        (false, true) => code.clone(),
        (false, false) => format!("{code}: {message}"),
    };
    let path = path.to_string();
    match (e.kind(), code.as_str()) {
        (ErrorKind::NotFound, "NoSuchBucket") | (_, "NoSuchBucket") => StorageError::Remote {
            op,
            path,
            why: format!("the bucket does not exist at {location} ({detail})"),
        },
        (ErrorKind::NotFound, _) => StorageError::NotFound(path),
        (
            _,
            "AuthorizationHeaderMalformed" | "InvalidRegion" | "IllegalLocationConstraintException",
        ) => StorageError::Denied {
            op,
            path,
            why: format!(
                "{location} refused the request's region: set AWS_REGION or --option \
                     s3.region ({detail})"
            ),
        },
        (ErrorKind::PermissionDenied, _) => StorageError::Denied {
            op,
            path,
            why: format!(
                "{location} refused the request: check the access key, its rights on the \
                 bucket, and the region ({detail})"
            ),
        },
        _ => StorageError::Remote {
            op,
            path,
            why: format!(
                "{location}: {detail}{}",
                if e.is_temporary() || e.kind() == ErrorKind::RateLimited {
                    " (still failing after retries)"
                } else {
                    ""
                }
            ),
        },
    }
}

/// The code and message of an S3 error document, from OpenDAL's message
/// (`S3Error { code: "…", message: "…", … }`); empty when the message is
/// not one (a connection error). Request ids and resources are left out.
fn s3_error(message: &str) -> (String, String) {
    let field = |name: &str| -> Option<String> {
        let start = message.find(&format!("{name}: \""))? + name.len() + 3;
        let end = message[start..].find('"')? + start;
        Some(message[start..end].to_string())
    };
    if !message.starts_with("S3Error {") {
        return (String::new(), String::new());
    }
    (
        field("code").unwrap_or_default(),
        field("message").unwrap_or_default(),
    )
}

impl Backend for S3Backend {
    fn location(&self) -> String {
        self.display.clone()
    }

    /// Object stores have no directories: check that the bucket answers,
    /// so a missing bucket or refused credentials fail `init` clearly.
    fn create_layout(&self) -> Result<()> {
        self.block_on(self.op.list_with("keys/").limit(1))
            .map(|_| ())
            .map_err(|e| self.err("list", "keys/", e))
    }

    fn put(&self, name: &ObjectName, data: &[u8]) -> Result<()> {
        self.put_owned(name, data.to_vec()).map(drop)
    }

    /// The pack becomes the request body as it is: no second copy in memory
    /// per upload in flight.
    fn put_owned(&self, name: &ObjectName, data: Vec<u8>) -> Result<Option<Vec<u8>>> {
        let path = name.path();
        self.block_on(self.op.write(&path, opendal::Buffer::from(data)))
            .map(|_| None)
            .map_err(|e| self.err("upload", &path, e))
    }

    fn get(&self, name: &ObjectName) -> Result<Vec<u8>> {
        let path = name.path();
        self.block_on(self.op.read(&path))
            .map(|b| b.to_vec())
            .map_err(|e| self.err("download", &path, e))
    }

    fn get_range(&self, name: &ObjectName, offset: u64, len: u64) -> Result<Vec<u8>> {
        let path = name.path();
        let short = |actual| StorageError::ShortRead {
            path: path.clone(),
            offset,
            len,
            actual,
        };
        match self.block_on(self.op.read_with(&path).range(offset..offset + len)) {
            Ok(b) if b.len() as u64 == len => Ok(b.to_vec()),
            Ok(_) => Err(short(self.stat(name)?)),
            Err(e) if e.kind() == ErrorKind::RangeNotSatisfied => Err(short(self.stat(name)?)),
            Err(e) => Err(self.err("download", &path, e)),
        }
    }

    fn list(&self, ftype: FileType) -> Result<Vec<ObjectInfo>> {
        if ftype == FileType::Config {
            return match self.stat(&ObjectName::config()) {
                Ok(size) => Ok(vec![ObjectInfo {
                    name: "config".into(),
                    size,
                }]),
                Err(e) if e.is_not_found() => Ok(Vec::new()),
                Err(e) => Err(e),
            };
        }
        let dir = format!("{}/", ftype.dir());
        let entries = self
            .block_on(self.op.list_with(&dir).recursive(ftype == FileType::Pack))
            .map_err(|e| self.err("list", &dir, e))?;
        Ok(entries
            .into_iter()
            .filter(|e| e.metadata().mode().is_file())
            .filter_map(|e| {
                let name = e.path().rsplit('/').next()?.to_string();
                ObjectName::new(ftype, &name).ok()?;
                Some(ObjectInfo {
                    name,
                    size: e.metadata().content_length(),
                })
            })
            .collect())
    }

    fn stat(&self, name: &ObjectName) -> Result<u64> {
        let path = name.path();
        self.block_on(self.op.stat(&path))
            .map(|m| m.content_length())
            .map_err(|e| self.err("stat", &path, e))
    }

    fn delete(&self, name: &ObjectName) -> Result<()> {
        let path = name.path();
        match self.block_on(self.op.delete(&path)) {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == ErrorKind::PermissionDenied => Err(StorageError::Retained {
                path,
                why: match s3_error(e.message()) {
                    (code, m) if !code.is_empty() => format!("{code}: {m}"),
                    _ => "the delete was refused".into(),
                },
            }),
            Err(e) => Err(self.err("delete", &path, e)),
        }
    }

    fn connections(&self) -> usize {
        self.connections
    }

    fn stats(&self) -> BackendStats {
        BackendStats {
            retries: self.retries.load(Ordering::Relaxed),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn s3_error_text_keeps_code_and_message_only() {
        let m = r#"S3Error { code: "NoSuchBucket", message: "Bucket not found: x", resource: "/x", request_id: "abc" }"#;
        assert_eq!(
            s3_error(m),
            (
                "NoSuchBucket".to_string(),
                "Bucket not found: x".to_string()
            )
        );
        assert_eq!(s3_error("plain"), (String::new(), String::new()));
    }

    #[test]
    fn host_of_an_endpoint() {
        assert_eq!(
            endpoint_host("https://s3.eu-west-1.amazonaws.com"),
            "s3.eu-west-1.amazonaws.com"
        );
        assert_eq!(endpoint_host("http://127.0.0.1:3900"), "127.0.0.1");
    }

    #[test]
    fn credentials_debug_hides_the_secret() {
        let c = S3Credentials {
            access_key_id: "GKid".into(),
            secret_access_key: "hunter2".into(),
            session_token: Some("tok".into()),
        };
        let d = format!("{c:?}");
        assert!(d.contains("GKid") && !d.contains("hunter2") && !d.contains("tok"));
    }
}
