//! One module per subcommand.

pub mod backup;
pub mod cat;
pub mod check;
pub mod completion;
pub mod database;
pub mod diff;
pub mod drill;
pub mod dump;
pub mod export;
pub mod forget;
pub mod init;
pub mod key;
pub mod ls;
pub mod prune;
pub mod restore;
pub mod serve;
pub mod snapshots;
pub mod stats;
pub mod unlock;

use holdfast_engine::snapshots::SnapshotFilter;

/// `--host`, `--tag`, `--path`: which snapshots `latest` and listings consider.
#[derive(clap::Args, Debug, Clone, Default)]
pub struct FilterArgs {
    /// Only consider snapshots of this host (repeatable)
    #[arg(long = "host", value_name = "HOST")]
    pub hosts: Vec<String>,
    /// Only consider snapshots with these tags (comma = all of them; repeat = any)
    #[arg(long = "tag", value_name = "TAG[,TAG…]")]
    pub tags: Vec<String>,
    /// Only consider snapshots that include this path (repeatable)
    #[arg(long = "path", value_name = "PATH")]
    pub paths: Vec<String>,
}

impl FilterArgs {
    pub fn filter(&self) -> SnapshotFilter {
        SnapshotFilter {
            hosts: self.hosts.clone(),
            tags: self.tags.clone(),
            paths: self.paths.clone(),
        }
    }
}
