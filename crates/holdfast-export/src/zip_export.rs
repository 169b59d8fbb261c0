//! A snapshot subtree as a zip archive, streamed (no `Seek`: local headers
//! carry data descriptors) so it can go to a pipe or an HTTP body. Files
//! are deflated; ZIP64 is switched on per entry when a file needs it.
//!
//! Zip cannot carry everything a tar can: owners, sub-2-second times, hard
//! links (their content is stored again), device nodes and FIFOs (left out,
//! and reported in [`ZipSummary::skipped`]). Use tar when those matter.
//! The writer keeps the central directory in memory: one small record per
//! entry, so memory grows with the number of files, never with their size.

use std::io::{self, Write};

use holdfast_engine::blob_reader::BlobReader;
use holdfast_engine::repository::Repository;
use holdfast_engine::tree_walk::{self, Visit};
use holdfast_engine::{EngineError, Result};
use holdfast_format::Id;
use holdfast_format::manifest::ManifestFile;
use holdfast_format::tree::{Node, NodeType};
use zip::write::SimpleFileOptions;
use zip::{CompressionMethod, DateTime, ZipWriter};

use crate::digest::HashingReader;

/// What went into the archive.
#[derive(Debug, Default)]
pub struct ZipSummary {
    /// Every regular file, with its size and SHA-256.
    pub files: Vec<ManifestFile>,
    /// Entries zip cannot represent, with the reason.
    pub skipped: Vec<String>,
}

fn zip_err(e: zip::result::ZipError) -> EngineError {
    match e {
        zip::result::ZipError::Io(e) => EngineError::io("writing the zip stream", e),
        other => EngineError::io("writing the zip stream", io::Error::other(other)),
    }
}

fn zip_time(node: &Node) -> DateTime {
    let civil = jiff::Timestamp::from_second(node.mtime.secs)
        .ok()
        .map(|t| t.to_zoned(jiff::tz::TimeZone::UTC).datetime());
    civil
        .and_then(|d| {
            DateTime::from_date_and_time(
                u16::try_from(d.year()).ok()?,
                d.month() as u8,
                d.day() as u8,
                d.hour() as u8,
                d.minute() as u8,
                d.second() as u8,
            )
            .ok()
        })
        // Before 1980 or after 2107: the earliest time zip can hold.
        .unwrap_or_default()
}

fn options(node: &Node) -> SimpleFileOptions {
    SimpleFileOptions::default()
        .compression_method(CompressionMethod::Deflated)
        .compression_level(Some(6))
        .last_modified_time(zip_time(node))
        .unix_permissions(node.unix_perm())
        .large_file(node.size >= u32::MAX as u64)
}

/// Write every node below `tree` into a zip archive on `out`. `prefix` is
/// the snapshot path of `tree`; entry names are snapshot paths without the
/// leading `/`.
pub fn write_zip<W: Write>(
    repo: &Repository,
    tree: &Id,
    prefix: &[u8],
    out: W,
) -> Result<(W, ZipSummary)> {
    let mut zip = ZipWriter::new_stream(out);
    let mut summary = ZipSummary::default();
    let base: Vec<u8> = prefix.iter().copied().skip_while(|&c| c == b'/').collect();
    tree_walk::walk(repo, tree, &mut |path, node| {
        let mut raw = base.clone();
        if !raw.is_empty() {
            raw.push(b'/');
        }
        raw.extend_from_slice(&path[1..]);
        let Ok(name) = String::from_utf8(raw.clone()) else {
            summary.skipped.push(format!(
                "{}: the name is not UTF-8, which zip cannot store faithfully",
                String::from_utf8_lossy(&raw)
            ));
            return Ok(if node.node_type == NodeType::Dir {
                Visit::SkipSubtree
            } else {
                Visit::Continue
            });
        };
        match node.node_type {
            NodeType::Dir => {
                zip.add_directory(format!("{name}/"), options(node))
                    .map_err(zip_err)?;
            }
            NodeType::File => {
                zip.start_file(name.clone(), options(node))
                    .map_err(zip_err)?;
                let content = node.content.as_deref().unwrap_or(&[]);
                let mut reader = HashingReader::new(BlobReader::new(repo, content));
                io::copy(&mut reader, &mut zip)
                    .map_err(|e| EngineError::io(format!("exporting {name}"), e))?;
                let (size, sha256) = reader.finish();
                summary.files.push(ManifestFile {
                    path: name,
                    size,
                    sha256: sha256.to_hex(),
                });
            }
            NodeType::Symlink => {
                let target = String::from_utf8_lossy(&node.link_target()).into_owned();
                zip.add_symlink(name, target, options(node))
                    .map_err(zip_err)?;
            }
            other => summary.skipped.push(format!(
                "{name}: a {} cannot be stored in a zip archive",
                other.as_str()
            )),
        }
        Ok(Visit::Continue)
    })?;
    let out = zip.finish().map_err(zip_err)?.into_inner();
    Ok((out, summary))
}
