use std::sync::Arc;

use anyhow::{Result, bail};
use clap::Args;
use holdfast_engine::repository::{InitOptions, Repository};
use serde_json::json;

use crate::global::{GlobalOpts, env2, prompt_password};
use crate::ui::Ui;

#[derive(Args, Debug)]
pub struct InitArgs {
    /// scrypt cost as log2(N); lower is faster and weaker (tests use 10)
    #[arg(long, hide = true, default_value_t = holdfast_format::keyfile::DEFAULT_LOG_N)]
    pub kdf_log_n: u8,
}

pub fn run(g: &GlobalOpts, ui: &Arc<Ui>, a: &InitArgs) -> Result<u8> {
    let backend = g.backend()?;
    let have_source = g.password_file.is_some()
        || g.password_command.is_some()
        || env2("HOLDFAST_PASSWORD_FILE", "RESTIC_PASSWORD_FILE").is_some()
        || env2("HOLDFAST_PASSWORD_COMMAND", "RESTIC_PASSWORD_COMMAND").is_some()
        || env2("HOLDFAST_PASSWORD", "RESTIC_PASSWORD").is_some();
    let password = if have_source || !std::io::IsTerminal::is_terminal(&std::io::stdin()) {
        g.password()?
    } else {
        let p1 = prompt_password("enter password for new repository: ")?;
        let p2 = prompt_password("enter password again: ")?;
        if p1 != p2 {
            bail!("passwords do not match");
        }
        p1
    };
    if a.kdf_log_n < 10 || a.kdf_log_n > 22 {
        bail!("--kdf-log-n must be between 10 and 22");
    }
    let repo = Repository::init(
        backend,
        &password,
        &InitOptions {
            kdf_log_n: a.kdf_log_n,
        },
    )?;
    ui.json_line(&json!({
        "message_type": "initialized",
        "id": repo.config().id,
        "repository": repo.location(),
    }));
    ui.print(&format!(
        "created holdfast repository {} at {}\n\n\
         Please note that knowledge of your password is required to access\n\
         the repository. Losing your password means that your data is\n\
         irrecoverably lost.",
        &repo.config().id[..10],
        repo.location()
    ));
    Ok(crate::exit::OK)
}
