//! Include/exclude patterns over snapshot paths.
//!
//! A pattern without `/` matches a single path component anywhere
//! (`*.log`, `node_modules`). A pattern with `/` matches the whole path: an
//! absolute one from the root (`/var/cache/**`), a relative one at any depth
//! (`cache/*.tmp`). `*` does not cross `/`; `**` does. A pattern that matches
//! a directory applies to everything below it.

use std::ffi::OsStr;
use std::os::unix::ffi::OsStrExt;
use std::path::Path;

use globset::{Glob, GlobBuilder, GlobMatcher};

#[derive(Debug, Clone)]
enum Kind {
    /// Matched against each path component.
    Component(GlobMatcher),
    /// Matched against the whole path.
    Path(GlobMatcher),
}

#[derive(Debug, Clone, Default)]
pub struct PathMatcher {
    patterns: Vec<(String, Kind)>,
}

fn glob(p: &str) -> Result<GlobMatcher, String> {
    let g: Glob = GlobBuilder::new(p)
        .literal_separator(true)
        .backslash_escape(true)
        .build()
        .map_err(|e| format!("invalid pattern {p:?}: {e}"))?;
    Ok(g.compile_matcher())
}

impl PathMatcher {
    pub fn new(patterns: &[String]) -> Result<PathMatcher, String> {
        let mut out = Vec::new();
        for p in patterns {
            let p = p.trim_end_matches('/');
            if p.is_empty() {
                continue;
            }
            let kind = if p.contains('/') {
                let anchored = if p.starts_with('/') {
                    p.to_string()
                } else {
                    format!("**/{p}")
                };
                Kind::Path(glob(&anchored)?)
            } else {
                Kind::Component(glob(p)?)
            };
            out.push((p.to_string(), kind));
        }
        Ok(PathMatcher { patterns: out })
    }

    pub fn is_empty(&self) -> bool {
        self.patterns.is_empty()
    }

    pub fn patterns(&self) -> Vec<String> {
        self.patterns.iter().map(|(p, _)| p.clone()).collect()
    }

    /// Does a pattern match `path` itself (not counting its ancestors)?
    /// `path` is absolute, `/`-separated.
    pub fn matches_exact(&self, path: &[u8]) -> bool {
        let p = Path::new(OsStr::from_bytes(path));
        let name = path.rsplit(|&c| c == b'/').next().unwrap_or(path);
        let n = Path::new(OsStr::from_bytes(name));
        self.patterns.iter().any(|(_, k)| match k {
            Kind::Component(g) => g.is_match(n),
            Kind::Path(g) => g.is_match(p),
        })
    }

    /// Does a pattern match `path` or one of its ancestors?
    pub fn matches(&self, path: &[u8]) -> bool {
        let mut end = path.len();
        loop {
            let prefix = &path[..end];
            if !prefix.is_empty() && prefix != b"/" && self.matches_exact(prefix) {
                return true;
            }
            match prefix.iter().rposition(|&c| c == b'/') {
                Some(0) | None => return false,
                Some(i) => end = i,
            }
        }
    }
}

/// Read patterns from an exclude file: one per line, `#` comments and blank
/// lines ignored.
pub fn read_pattern_file(path: &std::path::Path) -> Result<Vec<String>, String> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| format!("cannot read pattern file {}: {e}", path.display()))?;
    Ok(text
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .map(str::to_string)
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn m(p: &[&str]) -> PathMatcher {
        PathMatcher::new(&p.iter().map(|s| s.to_string()).collect::<Vec<_>>()).unwrap()
    }

    #[test]
    fn component_patterns_match_anywhere() {
        let x = m(&["*.log", "node_modules"]);
        assert!(x.matches(b"/srv/app/error.log"));
        assert!(x.matches(b"/srv/node_modules/x/y.js"));
        assert!(!x.matches(b"/srv/logs/app.txt"));
    }

    #[test]
    fn path_patterns() {
        let x = m(&["/var/cache", "tmp/*.swp"]);
        assert!(x.matches(b"/var/cache"));
        assert!(x.matches(b"/var/cache/apt/pkg"));
        assert!(!x.matches(b"/srv/var/cache"));
        assert!(x.matches(b"/home/me/tmp/a.swp"));
        assert!(!x.matches(b"/home/me/tmp/sub/a.swp"));
        assert!(m(&["/srv/**/*.bak"]).matches(b"/srv/a/b/c.bak"));
    }

    #[test]
    fn non_utf8_paths() {
        let x = m(&["*.bin"]);
        assert!(x.matches(b"/d/\xff\xfe.bin"));
    }
}
