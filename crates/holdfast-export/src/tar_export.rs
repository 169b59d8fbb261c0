//! A snapshot subtree as a tar stream (GNU/PAX): GNU tar and bsdtar extract
//! it with modes, owners, times (nanoseconds in PAX records), symlinks,
//! hard links, device nodes and extended attributes (`SCHILY.xattr.*`).

use std::collections::HashMap;
use std::ffi::OsStr;
use std::io::{self, Write};
use std::os::unix::ffi::OsStrExt;
use std::path::Path;

use holdfast_engine::repository::Repository;
use holdfast_engine::tree_walk::{self, Visit};
use holdfast_engine::{EngineError, Result};
use holdfast_format::Id;
use holdfast_format::tree::{Node, NodeType};
use tar::{Builder, EntryType, Header};

use holdfast_engine::blob_reader::BlobReader;
use holdfast_format::manifest::ManifestFile;

use crate::digest::HashingReader;

fn io_err(e: io::Error) -> EngineError {
    EngineError::io("writing the tar stream", e)
}

fn header_for(node: &Node) -> Header {
    let mut h = Header::new_gnu();
    h.set_mode(node.unix_perm());
    h.set_uid(node.uid as u64);
    h.set_gid(node.gid as u64);
    h.set_mtime(node.mtime.secs.max(0) as u64);
    if !node.user.is_empty() {
        let _ = h.set_username(&node.user);
    }
    if !node.group.is_empty() {
        let _ = h.set_groupname(&node.group);
    }
    h.set_size(0);
    h
}

fn pax_records(node: &Node) -> Vec<(String, Vec<u8>)> {
    let mut r = Vec::new();
    if node.mtime.nanos != 0 {
        r.push((
            "mtime".to_string(),
            format!("{}.{:09}", node.mtime.secs, node.mtime.nanos).into_bytes(),
        ));
    }
    for x in &node.extended_attributes {
        r.push((format!("SCHILY.xattr.{}", x.name), x.value.clone()));
    }
    r
}

/// Write every node below `tree` as a tar stream. `prefix` is the snapshot
/// path of `tree` (`/` or e.g. `/home/me`); entries are named by their
/// snapshot path without the leading `/`. `dir_node`, when given, is the
/// node of `prefix` itself and is written first so its metadata survives.
/// Every regular file written (not hard links to one already written) is
/// appended to `files` with its size and SHA-256.
pub fn write_tar<W: Write>(
    repo: &Repository,
    tree: &Id,
    prefix: &[u8],
    dir_node: Option<&Node>,
    out: W,
    files: &mut Vec<ManifestFile>,
) -> Result<W> {
    let mut b = Builder::new(out);
    b.mode(tar::HeaderMode::Complete);
    b.follow_symlinks(false);
    let mut links: HashMap<(u64, u64), Vec<u8>> = HashMap::new();
    let base: Vec<u8> = prefix.iter().copied().skip_while(|&c| c == b'/').collect();
    if let Some(node) = dir_node
        && !base.is_empty()
    {
        let pax = pax_records(node);
        if !pax.is_empty() {
            b.append_pax_extensions(pax.iter().map(|(k, v)| (k.as_str(), v.as_slice())))
                .map_err(io_err)?;
        }
        let mut h = header_for(node);
        h.set_entry_type(EntryType::Directory);
        b.append_data(&mut h, Path::new(OsStr::from_bytes(&base)), io::empty())
            .map_err(io_err)?;
    }
    tree_walk::walk(repo, tree, &mut |path, node| {
        let mut name = base.clone();
        if !name.is_empty() {
            name.push(b'/');
        }
        name.extend_from_slice(&path[1..]);
        let name_path = Path::new(OsStr::from_bytes(&name));
        let pax = pax_records(node);
        if !pax.is_empty() {
            b.append_pax_extensions(pax.iter().map(|(k, v)| (k.as_str(), v.as_slice())))
                .map_err(io_err)?;
        }
        let mut h = header_for(node);
        match node.node_type {
            NodeType::Dir => {
                h.set_entry_type(EntryType::Directory);
                b.append_data(&mut h, name_path, io::empty())
                    .map_err(io_err)?;
            }
            NodeType::File => {
                let key = (node.device_id, node.inode);
                if node.links > 1 && node.inode != 0 {
                    if let Some(first) = links.get(&key) {
                        h.set_entry_type(EntryType::Link);
                        let target = Path::new(OsStr::from_bytes(first));
                        b.append_link(&mut h, name_path, target).map_err(io_err)?;
                        return Ok(Visit::Continue);
                    }
                    links.insert(key, name.clone());
                }
                h.set_entry_type(EntryType::Regular);
                h.set_size(node.size);
                let content = node.content.as_deref().unwrap_or(&[]);
                let mut reader = HashingReader::new(BlobReader::new(repo, content));
                b.append_data(&mut h, name_path, &mut reader)
                    .map_err(io_err)?;
                let (size, sha256) = reader.finish();
                files.push(ManifestFile {
                    path: String::from_utf8_lossy(&name).into_owned(),
                    size,
                    sha256: sha256.to_hex(),
                });
            }
            NodeType::Symlink => {
                h.set_entry_type(EntryType::Symlink);
                let t = node.link_target();
                let target = Path::new(OsStr::from_bytes(&t));
                b.append_link(&mut h, name_path, target).map_err(io_err)?;
            }
            NodeType::Fifo | NodeType::Dev | NodeType::Chardev => {
                h.set_entry_type(match node.node_type {
                    NodeType::Fifo => EntryType::Fifo,
                    NodeType::Dev => EntryType::Block,
                    _ => EntryType::Char,
                });
                if node.node_type != NodeType::Fifo {
                    let d = node.device;
                    let major = ((d >> 32) & 0xffff_f000) | ((d >> 8) & 0xfff);
                    let minor = ((d >> 12) & 0xffff_ff00) | (d & 0xff);
                    h.set_device_major(major as u32).map_err(io_err)?;
                    h.set_device_minor(minor as u32).map_err(io_err)?;
                }
                b.append_data(&mut h, name_path, io::empty())
                    .map_err(io_err)?;
            }
            _ => {}
        }
        Ok(Visit::Continue)
    })?;
    b.into_inner().map_err(io_err)
}
