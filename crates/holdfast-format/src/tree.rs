//! Trees (directory listings) and their nodes, in restic's JSON layout.
//!
//! A tree blob is `json({"nodes":[…]}) + "\n"`, its id the SHA-256 of those
//! bytes. Nodes are sorted by name (bytewise). Names are stored Go-quoted
//! (see [`crate::goquote`]); `mode` is a Go `os.FileMode`, not a Unix mode.

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as B64;
use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::gotime::GoTime;
use crate::id::Id;

/// Go `os.FileMode` bits restic stores in `mode`.
pub mod gomode {
    pub const DIR: u32 = 1 << 31;
    pub const SYMLINK: u32 = 1 << 27;
    pub const DEVICE: u32 = 1 << 26;
    pub const NAMED_PIPE: u32 = 1 << 25;
    pub const SOCKET: u32 = 1 << 24;
    pub const SETUID: u32 = 1 << 23;
    pub const SETGID: u32 = 1 << 22;
    pub const CHAR_DEVICE: u32 = 1 << 21;
    pub const STICKY: u32 = 1 << 20;
    pub const IRREGULAR: u32 = 1 << 19;
    pub const PERM: u32 = 0o777;

    /// Convert a Unix `st_mode` to the Go file mode restic records (type
    /// bits, permission bits, setuid/setgid/sticky).
    pub fn from_unix(st_mode: u32) -> u32 {
        let mut m = st_mode & PERM;
        m |= match st_mode & 0o170000 {
            0o040000 => DIR,
            0o120000 => SYMLINK,
            0o060000 => DEVICE,
            0o020000 => DEVICE | CHAR_DEVICE,
            0o010000 => NAMED_PIPE,
            0o140000 => SOCKET,
            _ => 0,
        };
        if st_mode & 0o4000 != 0 {
            m |= SETUID;
        }
        if st_mode & 0o2000 != 0 {
            m |= SETGID;
        }
        if st_mode & 0o1000 != 0 {
            m |= STICKY;
        }
        m
    }

    /// The Unix permission bits (including setuid/setgid/sticky) of a Go mode.
    pub fn to_unix_perm(go: u32) -> u32 {
        let mut m = go & PERM;
        if go & SETUID != 0 {
            m |= 0o4000;
        }
        if go & SETGID != 0 {
            m |= 0o2000;
        }
        if go & STICKY != 0 {
            m |= 0o1000;
        }
        m
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum NodeType {
    File,
    Dir,
    Symlink,
    /// Block device.
    Dev,
    Chardev,
    Fifo,
    Socket,
    Irregular,
    #[serde(other)]
    Unknown,
}

impl NodeType {
    pub fn as_str(self) -> &'static str {
        match self {
            NodeType::File => "file",
            NodeType::Dir => "dir",
            NodeType::Symlink => "symlink",
            NodeType::Dev => "dev",
            NodeType::Chardev => "chardev",
            NodeType::Fifo => "fifo",
            NodeType::Socket => "socket",
            NodeType::Irregular => "irregular",
            NodeType::Unknown => "unknown",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ExtendedAttribute {
    pub name: String,
    #[serde(with = "base64_bytes")]
    pub value: Vec<u8>,
}

fn is_zero_u32(v: &u32) -> bool {
    *v == 0
}
fn is_zero_u64(v: &u64) -> bool {
    *v == 0
}

/// One entry of a tree.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Node {
    #[serde(with = "quoted_name")]
    pub name: Vec<u8>,
    #[serde(rename = "type")]
    pub node_type: NodeType,
    #[serde(default, skip_serializing_if = "is_zero_u32")]
    pub mode: u32,
    #[serde(default = "GoTime::zero")]
    pub mtime: GoTime,
    #[serde(default = "GoTime::zero")]
    pub atime: GoTime,
    #[serde(default = "GoTime::zero")]
    pub ctime: GoTime,
    #[serde(default)]
    pub uid: u32,
    #[serde(default)]
    pub gid: u32,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub user: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub group: String,
    #[serde(default, skip_serializing_if = "is_zero_u64")]
    pub inode: u64,
    #[serde(default, skip_serializing_if = "is_zero_u64")]
    pub device_id: u64,
    #[serde(default, skip_serializing_if = "is_zero_u64")]
    pub size: u64,
    #[serde(default, skip_serializing_if = "is_zero_u64")]
    pub links: u64,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub linktarget: String,
    /// Raw bytes of a link target that is not valid UTF-8.
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        with = "opt_base64_bytes"
    )]
    pub linktarget_raw: Option<Vec<u8>>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub extended_attributes: Vec<ExtendedAttribute>,
    #[serde(default, skip_serializing_if = "is_zero_u64")]
    pub device: u64,
    /// Data blob ids, in order. `null` for anything but files; an empty list
    /// (never `null`) for an empty file: restic's check insists.
    #[serde(default)]
    pub content: Option<Vec<Id>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub subtree: Option<Id>,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub error: String,
}

impl Node {
    /// A node with the given name and type and every other field empty.
    pub fn new(name: Vec<u8>, node_type: NodeType) -> Node {
        Node {
            name,
            node_type,
            mode: 0,
            mtime: GoTime::zero(),
            atime: GoTime::zero(),
            ctime: GoTime::zero(),
            uid: 0,
            gid: 0,
            user: String::new(),
            group: String::new(),
            inode: 0,
            device_id: 0,
            size: 0,
            links: 0,
            linktarget: String::new(),
            linktarget_raw: None,
            extended_attributes: Vec::new(),
            device: 0,
            content: None,
            subtree: None,
            error: String::new(),
        }
    }

    /// The symlink target as raw bytes.
    pub fn link_target(&self) -> Vec<u8> {
        match &self.linktarget_raw {
            Some(raw) => raw.clone(),
            None => self.linktarget.as_bytes().to_vec(),
        }
    }

    pub fn set_link_target(&mut self, target: &[u8]) {
        match std::str::from_utf8(target) {
            Ok(s) => {
                self.linktarget = s.to_string();
                self.linktarget_raw = None;
            }
            Err(_) => {
                self.linktarget = String::from_utf8_lossy(target).into_owned();
                self.linktarget_raw = Some(target.to_vec());
            }
        }
    }

    /// The name for display (lossy for names that are not UTF-8).
    pub fn display_name(&self) -> String {
        String::from_utf8_lossy(&self.name).into_owned()
    }

    /// Unix permission bits (with setuid/setgid/sticky).
    pub fn unix_perm(&self) -> u32 {
        gomode::to_unix_perm(self.mode)
    }
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Tree {
    #[serde(deserialize_with = "null_as_empty")]
    pub nodes: Vec<Node>,
}

fn null_as_empty<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<Node>, D::Error> {
    Ok(Option::<Vec<Node>>::deserialize(d)?.unwrap_or_default())
}

impl Tree {
    /// The blob bytes of this tree: JSON plus a newline, as restic writes it.
    /// Nodes must already be sorted by name.
    pub fn to_blob(&self) -> Vec<u8> {
        let mut v = serde_json::to_vec(self).expect("tree serializes");
        v.push(b'\n');
        v
    }

    pub fn from_blob(bytes: &[u8]) -> Result<Tree, serde_json::Error> {
        serde_json::from_slice(bytes)
    }

    pub fn sort(&mut self) {
        self.nodes.sort_by(|a, b| a.name.cmp(&b.name));
    }
}

/// Only what a traversal needs from a tree: each node's type, content and
/// subtree. Parsing this skips names, times and attributes, which makes
/// walking every tree of a repository (prune) several times cheaper.
#[derive(Debug, Clone, Default, Deserialize)]
pub struct TreeRefs {
    #[serde(deserialize_with = "null_as_empty_refs")]
    pub nodes: Vec<NodeRefs>,
}

#[derive(Debug, Clone, Deserialize)]
pub struct NodeRefs {
    #[serde(rename = "type")]
    pub node_type: NodeType,
    #[serde(default)]
    pub content: Option<Vec<Id>>,
    #[serde(default)]
    pub subtree: Option<Id>,
}

fn null_as_empty_refs<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<NodeRefs>, D::Error> {
    Ok(Option::<Vec<NodeRefs>>::deserialize(d)?.unwrap_or_default())
}

impl TreeRefs {
    pub fn from_blob(bytes: &[u8]) -> Result<TreeRefs, serde_json::Error> {
        serde_json::from_slice(bytes)
    }
}

mod quoted_name {
    use super::*;
    pub fn serialize<S: Serializer>(name: &[u8], s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&crate::goquote::quote(name))
    }
    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<u8>, D::Error> {
        let s: std::borrow::Cow<'de, str> = Deserialize::deserialize(d)?;
        crate::goquote::unquote(&s).map_err(serde::de::Error::custom)
    }
}

mod base64_bytes {
    use super::*;
    pub fn serialize<S: Serializer>(v: &[u8], s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&B64.encode(v))
    }
    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<u8>, D::Error> {
        let s: Option<std::borrow::Cow<'de, str>> = Deserialize::deserialize(d)?;
        match s {
            None => Ok(Vec::new()),
            Some(s) => B64.decode(s.as_bytes()).map_err(serde::de::Error::custom),
        }
    }
}

mod opt_base64_bytes {
    use super::*;
    pub fn serialize<S: Serializer>(v: &Option<Vec<u8>>, s: S) -> Result<S::Ok, S::Error> {
        match v {
            Some(v) => s.serialize_str(&B64.encode(v)),
            None => s.serialize_none(),
        }
    }
    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Vec<u8>>, D::Error> {
        let s: Option<std::borrow::Cow<'de, str>> = Deserialize::deserialize(d)?;
        match s {
            None => Ok(None),
            Some(s) => B64
                .decode(s.as_bytes())
                .map(Some)
                .map_err(serde::de::Error::custom),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// A tree blob as restic 0.14 wrote it (`restic cat blob`), decoded and
    /// re-encoded: the id must survive.
    #[test]
    fn restic_tree_round_trips() {
        let blob = br#"{"nodes":[{"name":"a\\\"b","type":"file","mode":420,"mtime":"2024-05-01T10:00:00.123456789+02:00","atime":"2024-05-01T10:00:00.123456789+02:00","ctime":"2024-05-01T10:00:00.5+02:00","uid":1000,"gid":1000,"user":"me","group":"me","inode":1234,"device_id":2049,"size":5,"links":1,"content":["2cf24dba5fb0a30e26e83b2ac5b9e29e1b161e5c1fa7425e73043362938b9824"]},{"name":"d","type":"dir","mode":2147484141,"mtime":"2024-05-01T10:00:00Z","atime":"2024-05-01T10:00:00Z","ctime":"2024-05-01T10:00:00Z","uid":0,"gid":0,"content":null,"subtree":"2cf24dba5fb0a30e26e83b2ac5b9e29e1b161e5c1fa7425e73043362938b9824"},{"name":"l","type":"symlink","mode":134218239,"mtime":"2024-05-01T10:00:00Z","atime":"2024-05-01T10:00:00Z","ctime":"2024-05-01T10:00:00Z","uid":0,"gid":0,"linktarget":"d","content":null}]}
"#;
        let t = Tree::from_blob(blob).unwrap();
        assert_eq!(t.nodes[0].name, b"a\"b");
        assert_eq!(t.nodes[1].mode, gomode::DIR | 0o755);
        assert_eq!(t.nodes[2].link_target(), b"d");
        assert_eq!(t.to_blob(), blob.to_vec());
    }

    #[test]
    fn empty_file_content_is_a_list_dir_content_is_null() {
        let mut f = Node::new(b"empty".to_vec(), NodeType::File);
        f.content = Some(vec![]);
        let d = Node::new(b"d".to_vec(), NodeType::Dir);
        let t = Tree { nodes: vec![d, f] };
        let s = String::from_utf8(t.to_blob()).unwrap();
        assert!(s.contains(r#""name":"empty","type":"file""#));
        assert!(s.contains(r#""content":[]"#));
        assert!(s.contains(r#""content":null"#));
    }

    #[test]
    fn go_modes() {
        assert_eq!(gomode::from_unix(0o100644), 0o644);
        assert_eq!(gomode::from_unix(0o040755), gomode::DIR | 0o755);
        assert_eq!(gomode::from_unix(0o120777), gomode::SYMLINK | 0o777);
        assert_eq!(gomode::from_unix(0o104755), gomode::SETUID | 0o755);
        assert_eq!(
            gomode::from_unix(0o041777),
            gomode::DIR | gomode::STICKY | 0o777
        );
        assert_eq!(
            gomode::from_unix(0o020620),
            gomode::DEVICE | gomode::CHAR_DEVICE | 0o620
        );
        assert_eq!(gomode::to_unix_perm(gomode::from_unix(0o106755)), 0o6755);
    }

    proptest! {
        #[test]
        fn prop_node_round_trip(
            name in proptest::collection::vec(any::<u8>(), 1..40),
            target in proptest::collection::vec(any::<u8>(), 0..40),
            mode in any::<u32>(),
            secs in 0i64..4_000_000_000,
            nanos in 0u32..1_000_000_000,
            xv in proptest::collection::vec(any::<u8>(), 0..20),
        ) {
            let mut n = Node::new(name, NodeType::Symlink);
            n.mode = mode;
            n.mtime = GoTime::utc(secs, nanos);
            n.set_link_target(&target);
            n.extended_attributes.push(ExtendedAttribute { name: "user.x".into(), value: xv });
            let t = Tree { nodes: vec![n] };
            let back = Tree::from_blob(&t.to_blob()).unwrap();
            prop_assert_eq!(&back, &t);
            prop_assert_eq!(back.nodes[0].link_target(), target);
        }
    }
}
