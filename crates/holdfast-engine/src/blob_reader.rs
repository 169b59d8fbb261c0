//! A file's content in a snapshot as an `io::Read`, one blob in memory at a
//! time; every blob is verified as it is read.

use std::borrow::Cow;
use std::io::{self, Read};

use crate::repository::Repository;
use holdfast_format::{BlobType, Id};

pub struct BlobReader<'a> {
    repo: &'a Repository,
    content: Cow<'a, [Id]>,
    next: usize,
    buf: Vec<u8>,
    pos: usize,
}

impl<'a> BlobReader<'a> {
    pub fn new(repo: &'a Repository, content: &'a [Id]) -> BlobReader<'a> {
        BlobReader::of(repo, Cow::Borrowed(content))
    }

    /// A reader that owns the content list (a node loaded just for it).
    pub fn owned(repo: &'a Repository, content: Vec<Id>) -> BlobReader<'a> {
        BlobReader::of(repo, Cow::Owned(content))
    }

    fn of(repo: &'a Repository, content: Cow<'a, [Id]>) -> BlobReader<'a> {
        BlobReader {
            repo,
            content,
            next: 0,
            buf: Vec::new(),
            pos: 0,
        }
    }
}

impl Read for BlobReader<'_> {
    fn read(&mut self, out: &mut [u8]) -> io::Result<usize> {
        while self.pos == self.buf.len() {
            if self.next == self.content.len() {
                return Ok(0);
            }
            let id = self.content[self.next];
            self.buf = self
                .repo
                .load_blob(&id, BlobType::Data)
                .map_err(io::Error::other)?;
            self.pos = 0;
            self.next += 1;
        }
        let n = out.len().min(self.buf.len() - self.pos);
        out[..n].copy_from_slice(&self.buf[self.pos..self.pos + n]);
        self.pos += n;
        Ok(n)
    }
}
