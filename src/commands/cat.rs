use std::sync::Arc;

use anyhow::{Result, bail};
use clap::Args;
use holdfast_format::{BlobType, Id};
use holdfast_storage::FileType;

use crate::global::GlobalOpts;
use crate::ui::Ui;

#[derive(Args, Debug)]
pub struct CatArgs {
    /// config, snapshot, index, key, lock, pack, blob, tree or masterkey
    pub kind: String,
    /// Id (or unique prefix) of the object
    pub id: Option<String>,
}

fn pretty(json: &[u8]) -> Result<String> {
    let v: serde_json::Value = serde_json::from_slice(json)?;
    Ok(serde_json::to_string_pretty(&v)?)
}

pub fn run(g: &GlobalOpts, ui: &Arc<Ui>, a: &CatArgs) -> Result<u8> {
    let repo = g.open()?;
    let _lock = g.lock(&repo, false, ui)?;
    let need_id = |t: FileType| -> Result<Id> {
        match &a.id {
            Some(s) => Ok(repo.find_id(t, s)?),
            None => bail!("cat {} needs an id", a.kind),
        }
    };
    let text = match a.kind.as_str() {
        "config" => serde_json::to_string_pretty(repo.config())?,
        "masterkey" => pretty(&repo.key().to_json())?,
        "snapshot" => {
            let spec = a.id.as_deref().unwrap_or("latest");
            let (id, _) = holdfast_engine::snapshots::find(&repo, spec, &Default::default())?;
            pretty(&repo.load_json(FileType::Snapshot, &id)?)?
        }
        "index" => pretty(&repo.load_json(FileType::Index, &need_id(FileType::Index)?)?)?,
        "lock" => pretty(&repo.load_json(FileType::Lock, &need_id(FileType::Lock)?)?)?,
        "key" => {
            let id = need_id(FileType::Key)?;
            let bytes = repo
                .backend()
                .get(&holdfast_engine::repository::name(FileType::Key, &id))?;
            pretty(&bytes)?
        }
        "pack" => {
            let id = need_id(FileType::Pack)?;
            let size = repo
                .backend()
                .stat(&holdfast_engine::repository::name(FileType::Pack, &id))?;
            let blobs = repo.read_pack_header(&id, size)?;
            let v: Vec<serde_json::Value> = blobs
                .iter()
                .map(|b| {
                    serde_json::json!({
                        "id": b.id.to_hex(), "type": b.blob_type.as_str(),
                        "offset": b.offset, "length": b.length,
                        "uncompressed_length": b.uncompressed_length,
                    })
                })
                .collect();
            serde_json::to_string_pretty(&v)?
        }
        "blob" | "tree" => {
            let Some(s) = &a.id else {
                bail!("cat {} needs an id", a.kind)
            };
            let id = Id::from_hex(s)?;
            let t = if a.kind == "tree" {
                BlobType::Tree
            } else {
                BlobType::Data
            };
            let data = repo.load_blob(&id, t)?;
            if t == BlobType::Tree {
                pretty(&data)?
            } else {
                use std::io::Write;
                std::io::stdout().write_all(&data)?;
                return Ok(crate::exit::OK);
            }
        }
        other => bail!(
            "cannot cat {other:?}: use config, snapshot, index, key, lock, pack, blob, tree or masterkey"
        ),
    };
    ui.result(&text);
    if ui.json {
        println!("{text}");
    }
    Ok(crate::exit::OK)
}
