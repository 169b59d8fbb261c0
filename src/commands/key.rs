use std::path::PathBuf;
use std::sync::Arc;

use anyhow::{Result, bail};
use clap::{Args, Subcommand};
use holdfast_storage::FileType;
use serde_json::json;

use crate::global::{GlobalOpts, env2, prompt_password, read_password_file};
use crate::ui::Ui;

#[derive(Subcommand, Debug)]
pub enum KeyCmd {
    /// List the keys (passwords) of the repository
    List,
    /// Add a key for a new password
    Add(NewPassword),
    /// Remove a key (not the one in use)
    Remove { id: String },
    /// Change the password: add a key for the new one, then remove the current one
    Passwd(NewPassword),
}

#[derive(Args, Debug)]
pub struct NewPassword {
    /// Read the new password from a file [env: HOLDFAST_NEW_PASSWORD_FILE]
    #[arg(long, value_name = "FILE")]
    pub new_password_file: Option<PathBuf>,
    #[arg(long, hide = true, default_value_t = holdfast_format::keyfile::DEFAULT_LOG_N)]
    pub kdf_log_n: u8,
}

fn new_password(a: &NewPassword) -> Result<Vec<u8>> {
    if let Some(f) = a.new_password_file.clone().or_else(|| {
        env2("HOLDFAST_NEW_PASSWORD_FILE", "RESTIC_NEW_PASSWORD_FILE").map(PathBuf::from)
    }) {
        return read_password_file(&f);
    }
    if !std::io::IsTerminal::is_terminal(&std::io::stdin()) {
        bail!("no new password given: use --new-password-file");
    }
    let p1 = prompt_password("enter new password: ")?;
    let p2 = prompt_password("enter new password again: ")?;
    if p1 != p2 {
        bail!("passwords do not match");
    }
    Ok(p1)
}

pub fn run(g: &GlobalOpts, ui: &Arc<Ui>, cmd: &KeyCmd) -> Result<u8> {
    let repo = g.open()?;
    match cmd {
        KeyCmd::List => {
            let _lock = g.lock(&repo, false, ui)?;
            let keys = repo.list_keys()?;
            if ui.json {
                let v: Vec<_> = keys
                    .iter()
                    .map(|(id, kf)| {
                        json!({
                            "current": *id == repo.key_id(),
                            "id": id.short(),
                            "userName": kf.as_ref().map(|k| k.username.clone()),
                            "hostName": kf.as_ref().map(|k| k.hostname.clone()),
                            "created": kf.as_ref().map(|k| k.created.clone()),
                        })
                    })
                    .collect();
                println!("{}", serde_json::Value::Array(v));
            } else {
                ui.result(" ID        User        Host                 Created");
                for (id, kf) in keys {
                    let mark = if id == repo.key_id() { '*' } else { ' ' };
                    match kf {
                        Some(k) => ui.result(&format!(
                            "{mark}{}  {:<10}  {:<20} {}",
                            id.short(),
                            k.username,
                            k.hostname,
                            k.created
                        )),
                        None => ui.result(&format!("{mark}{}  (unreadable key file)", id.short())),
                    }
                }
            }
        }
        KeyCmd::Add(a) => {
            let _lock = g.lock(&repo, true, ui)?;
            let pw = new_password(a)?;
            let id = repo.add_key(&pw, a.kdf_log_n)?;
            ui.json_line(&json!({"message_type": "key_added", "id": id.to_hex()}));
            ui.print(&format!("saved new key as {}", id.short()));
        }
        KeyCmd::Remove { id } => {
            let _lock = g.lock(&repo, true, ui)?;
            let id = repo.find_id(FileType::Key, id)?;
            repo.remove_key(&id)?;
            ui.print(&format!("removed key {}", id.short()));
        }
        KeyCmd::Passwd(a) => {
            let _lock = g.lock(&repo, true, ui)?;
            let pw = new_password(a)?;
            // The new key is durable before the old one is removed.
            let id = repo.add_key(&pw, a.kdf_log_n)?;
            repo.backend().delete(&holdfast_engine::repository::name(
                FileType::Key,
                &repo.key_id(),
            ))?;
            ui.print(&format!(
                "saved new key as {}; removed the old key",
                id.short()
            ));
        }
    }
    Ok(crate::exit::OK)
}
