//! Options every command shares, and turning them into an open repository:
//! where it is, the password, the lock.

use std::io::{IsTerminal, Read};
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, Result, anyhow, bail};
use clap::Args;
use holdfast_engine::Compression;
use holdfast_engine::lock::RepoLock;
use holdfast_engine::repository::Repository;
use holdfast_storage::{Backend, S3Settings};

use crate::ui::Ui;

#[derive(Args, Debug, Clone)]
pub struct GlobalOpts {
    /// Repository location: a directory (or local:DIR), s3:https://HOST/BUCKET/PREFIX or s3://BUCKET/PREFIX [env: HOLDFAST_REPO, RESTIC_REPOSITORY]
    #[arg(
        short = 'r',
        long = "repo",
        alias = "repository",
        global = true,
        value_name = "REPO"
    )]
    pub repo: Option<String>,

    /// Read the repository location from a file [env: HOLDFAST_REPO_FILE, RESTIC_REPOSITORY_FILE]
    #[arg(long, global = true, value_name = "FILE")]
    pub repository_file: Option<PathBuf>,

    /// Read the password from a file [env: HOLDFAST_PASSWORD_FILE, RESTIC_PASSWORD_FILE]
    #[arg(short = 'p', long, global = true, value_name = "FILE")]
    pub password_file: Option<PathBuf>,

    /// Run a command and use its output as the password [env: HOLDFAST_PASSWORD_COMMAND, RESTIC_PASSWORD_COMMAND]
    #[arg(long, global = true, value_name = "CMD")]
    pub password_command: Option<String>,

    /// Print JSON lines instead of text
    #[arg(long, global = true)]
    pub json: bool,

    /// Print only errors
    #[arg(short, long, global = true)]
    pub quiet: bool,

    /// Print more detail (repeat for more)
    #[arg(short, long, global = true, action = clap::ArgAction::Count)]
    pub verbose: u8,

    /// Wait this long for a lock held by another process (e.g. 30s, 5m)
    #[arg(long, global = true, value_name = "DURATION", value_parser = parse_duration)]
    pub retry_lock: Option<Duration>,

    /// Do not lock the repository (only for read-only access to a repository you know is idle)
    #[arg(long, global = true)]
    pub no_lock: bool,

    /// Compression: auto, off, max, or a zstd level 1-22 [env: HOLDFAST_COMPRESSION, RESTIC_COMPRESSION]
    #[arg(long, global = true, value_name = "MODE")]
    pub compression: Option<String>,

    /// Target pack size in MiB [env: HOLDFAST_PACK_SIZE, RESTIC_PACK_SIZE]
    #[arg(long, global = true, value_name = "MIB")]
    pub pack_size: Option<usize>,

    /// A storage option (restic's -o), e.g. s3.bucket-lookup=path, s3.region=eu-central-1,
    /// s3.checksum=md5|crc32c|off, s3.connections=5, s3.retries=8
    #[arg(long = "option", global = true, value_name = "KEY=VALUE")]
    pub options: Vec<String>,

    /// Uploads to object storage in flight at once (same as -o s3.connections=N)
    #[arg(long, global = true, value_name = "N")]
    pub s3_connections: Option<usize>,
}

/// Parse `30s`, `5m`, `2h`, `1h30m`, or plain seconds.
pub fn parse_duration(s: &str) -> Result<Duration, String> {
    let s = s.trim();
    if let Ok(n) = s.parse::<u64>() {
        return Ok(Duration::from_secs(n));
    }
    let mut total = 0u64;
    let mut num = String::new();
    for c in s.chars() {
        if c.is_ascii_digit() {
            num.push(c);
            continue;
        }
        let n: u64 = num
            .parse()
            .map_err(|_| format!("invalid duration {s:?}: expected e.g. 30s, 5m, 2h, 1d"))?;
        num.clear();
        total += n * match c {
            's' => 1,
            'm' => 60,
            'h' => 3600,
            'd' => 86400,
            _ => {
                return Err(format!(
                    "invalid duration unit {c:?} in {s:?} (use s, m, h, d)"
                ));
            }
        };
    }
    if !num.is_empty() {
        return Err(format!(
            "invalid duration {s:?}: a number needs a unit (s, m, h, d)"
        ));
    }
    Ok(Duration::from_secs(total))
}

/// `HOLDFAST_<name>`, then `RESTIC_<name>`.
pub fn env2(holdfast: &str, restic: &str) -> Option<String> {
    std::env::var(holdfast)
        .ok()
        .filter(|v| !v.is_empty())
        .or_else(|| std::env::var(restic).ok().filter(|v| !v.is_empty()))
}

impl GlobalOpts {
    pub fn repo_location(&self) -> Result<String> {
        if let Some(r) = &self.repo {
            return Ok(r.clone());
        }
        if let Some(r) = env2("HOLDFAST_REPO", "RESTIC_REPOSITORY") {
            return Ok(r);
        }
        let file = self
            .repository_file
            .clone()
            .or_else(|| env2("HOLDFAST_REPO_FILE", "RESTIC_REPOSITORY_FILE").map(PathBuf::from));
        if let Some(f) = file {
            let s = std::fs::read_to_string(&f)
                .with_context(|| format!("cannot read repository file {}", f.display()))?;
            return Ok(s.trim().to_string());
        }
        bail!("no repository given: use --repo DIR or set HOLDFAST_REPO")
    }

    pub fn backend(&self) -> Result<Arc<dyn Backend>> {
        let loc = self.repo_location()?;
        open_backend(&loc, &self.s3_settings()?)
    }

    /// The AWS environment, then `-o` options and `--s3-connections`.
    pub fn s3_settings(&self) -> Result<S3Settings> {
        let mut s = S3Settings::from_env();
        for o in &self.options {
            let Some((k, v)) = o.split_once('=') else {
                bail!("-o needs KEY=VALUE, got {o:?}");
            };
            s.set_option(k.trim(), v.trim())
                .map_err(anyhow::Error::msg)?;
        }
        if let Some(n) = self.s3_connections {
            s.set_option("s3.connections", &n.to_string())
                .map_err(anyhow::Error::msg)?;
        }
        Ok(s)
    }

    pub fn compression(&self) -> Result<Compression> {
        let s = self
            .compression
            .clone()
            .or_else(|| env2("HOLDFAST_COMPRESSION", "RESTIC_COMPRESSION"))
            .unwrap_or_else(|| "auto".into());
        Ok(Compression::parse(&s)?)
    }

    pub fn pack_size(&self) -> Result<usize> {
        let mib = match self.pack_size {
            Some(m) => m,
            None => match env2("HOLDFAST_PACK_SIZE", "RESTIC_PACK_SIZE") {
                Some(s) => s
                    .parse()
                    .map_err(|_| anyhow!("HOLDFAST_PACK_SIZE {s:?} is not a number of MiB"))?,
                None => 16,
            },
        };
        if !(4..=128).contains(&mib) {
            bail!("pack size {mib} MiB is out of range (4-128 MiB)");
        }
        Ok(mib * 1024 * 1024)
    }

    /// The repository password from the password file, command or
    /// environment; asked for on the terminal as a last resort.
    pub fn password(&self) -> Result<Vec<u8>> {
        if let Some(f) = self
            .password_file
            .clone()
            .or_else(|| env2("HOLDFAST_PASSWORD_FILE", "RESTIC_PASSWORD_FILE").map(PathBuf::from))
        {
            return read_password_file(&f);
        }
        if let Some(cmd) = self
            .password_command
            .clone()
            .or_else(|| env2("HOLDFAST_PASSWORD_COMMAND", "RESTIC_PASSWORD_COMMAND"))
        {
            return password_from_command(&cmd);
        }
        if let Some(p) = env2("HOLDFAST_PASSWORD", "RESTIC_PASSWORD") {
            return Ok(p.into_bytes());
        }
        if std::io::stdin().is_terminal() {
            return prompt_password("enter password for repository: ");
        }
        bail!(
            "no password given: set HOLDFAST_PASSWORD_FILE, HOLDFAST_PASSWORD_COMMAND or HOLDFAST_PASSWORD \
             (or use --password-file)"
        )
    }

    /// Open the repository (no lock).
    pub fn open(&self) -> Result<Arc<Repository>> {
        let backend = self.backend()?;
        let password = self.password()?;
        Ok(Arc::new(Repository::open(backend, &password)?))
    }

    /// Take a lock unless `--no-lock`.
    pub fn lock(
        &self,
        repo: &Arc<Repository>,
        exclusive: bool,
        ui: &Ui,
    ) -> Result<Option<RepoLock>> {
        if self.no_lock {
            return Ok(None);
        }
        let retry = self.retry_lock.unwrap_or(Duration::ZERO);
        let l = holdfast_engine::lock::lock(repo, exclusive, retry, &mut |m| ui.notice(&m))?;
        Ok(Some(l))
    }
}

/// A backend for a location string.
pub fn open_backend(loc: &str, s3: &S3Settings) -> Result<Arc<dyn Backend>> {
    let location = holdfast_storage::Location::parse(loc).map_err(anyhow::Error::msg)?;
    Ok(holdfast_storage::open(&location, s3)?)
}

pub fn read_password_file(f: &std::path::Path) -> Result<Vec<u8>> {
    let mut s =
        std::fs::read(f).with_context(|| format!("cannot read password file {}", f.display()))?;
    while s.last().is_some_and(|c| *c == b'\n' || *c == b'\r') {
        s.pop();
    }
    if s.is_empty() {
        bail!("password file {} is empty", f.display());
    }
    Ok(s)
}

fn password_from_command(cmd: &str) -> Result<Vec<u8>> {
    let out = Command::new("/bin/sh")
        .arg("-c")
        .arg(cmd)
        .stdin(Stdio::null())
        .stderr(Stdio::inherit())
        .output()
        .context("cannot run the password command")?;
    if !out.status.success() {
        bail!("the password command failed ({})", out.status);
    }
    let mut s = out.stdout;
    while s.last().is_some_and(|c| *c == b'\n' || *c == b'\r') {
        s.pop();
    }
    if s.is_empty() {
        bail!("the password command printed nothing");
    }
    Ok(s)
}

/// Ask for a password on the terminal with echo off.
pub fn prompt_password(prompt: &str) -> Result<Vec<u8>> {
    use rustix::termios::{LocalModes, OptionalActions, tcgetattr, tcsetattr};
    let stdin = std::io::stdin();
    eprint!("{prompt}");
    let old = tcgetattr(&stdin).ok();
    if let Some(old) = &old {
        let mut t = old.clone();
        t.local_modes.remove(LocalModes::ECHO);
        let _ = tcsetattr(&stdin, OptionalActions::Now, &t);
    }
    let mut line = Vec::new();
    let mut byte = [0u8; 1];
    let mut lock = stdin.lock();
    while lock.read(&mut byte).map(|n| n == 1).unwrap_or(false) && byte[0] != b'\n' {
        line.push(byte[0]);
    }
    if let Some(old) = &old {
        let _ = tcsetattr(&stdin, OptionalActions::Now, old);
    }
    eprintln!();
    if line.last() == Some(&b'\r') {
        line.pop();
    }
    if line.is_empty() {
        bail!("empty password");
    }
    Ok(line)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations() {
        assert_eq!(parse_duration("30").unwrap(), Duration::from_secs(30));
        assert_eq!(parse_duration("1h30m").unwrap(), Duration::from_secs(5400));
        assert_eq!(parse_duration("2d").unwrap(), Duration::from_secs(172800));
        assert!(parse_duration("5x").is_err());
        assert!(parse_duration("5m3").is_err());
    }
}
