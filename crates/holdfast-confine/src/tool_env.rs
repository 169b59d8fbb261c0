//! The environment of the tools holdfast starts (dump tools, loaders, a
//! command source's shell).
//!
//! The CLI runs as its user, for its user: tools inherit its environment,
//! so `PGPASSWORD`, `~/.pgpass` and `~/.my.cnf` work as they do with the
//! tools themselves. `holdfast serve` runs tools on behalf of tenants, who
//! must never be handed the server's own credentials: it calls [`confine`]
//! once at start, and from then on every tool starts with a clean
//! environment — only `PATH`, the locale, `TZ` and `TMPDIR` are kept — and
//! a private, empty `HOME`, so no inherited `PGPASSWORD`, `MYSQL_PWD`,
//! `AWS_*` or `HOLDFAST_*`, and no `~/.pgpass` or `~/.my.cnf`, reach it.
//! The source's own credentials are then added by its client.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;

static HOME: OnceLock<PathBuf> = OnceLock::new();

/// Variables a tool keeps from the server's environment.
const KEPT: &[&str] = &[
    "PATH",
    "LANG",
    "LC_ALL",
    "LC_CTYPE",
    "LC_MESSAGES",
    "TZ",
    "TMPDIR",
];

/// From now on, every tool starts clean with `home` (an empty directory
/// the caller owns, mode 0700) as its `HOME`. Once per process.
pub fn confine(home: &Path) {
    let _ = HOME.set(home.to_path_buf());
}

/// Whether [`confine`] was called.
pub fn confined() -> bool {
    HOME.get().is_some()
}

/// Give `cmd` the tool environment; call right after `Command::new`,
/// before the tool's own settings are added.
pub fn apply(cmd: &mut Command) {
    if let Some(home) = HOME.get() {
        cmd.env_clear();
        for k in KEPT {
            if let Some(v) = std::env::var_os(k) {
                cmd.env(k, v);
            }
        }
        cmd.env("HOME", home);
    }
}

/// A new `Command` for `program` with the tool environment.
pub fn command(program: impl AsRef<std::ffi::OsStr>) -> Command {
    let mut c = Command::new(program);
    apply(&mut c);
    c
}
