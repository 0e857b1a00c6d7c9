//! The deploy state document kept on the server (`<state dir>/state.json`), so that any
//! machine (a CI runner, a colleague, a fresh container) knows what the last export left
//! there, not only the machine that ran it.
//!
//! The document is compact JSON (one array per file, so 100,000 files parse in well under a
//! second and take a few dozen MiB):
//!
//! ```json
//! {"siteport_state": 1,
//!  "deploy": {"id": "5f0c…", "time": 1765090000, "user": "ci@runner", "version": "0.4.0",
//!             "commit": "9fceb02…", "complete": true, "files": 2, "bytes": 1234},
//!  "files": [["index.html", 1200, "<blake3 hex>", 1200, 1765090001000000000],
//!            ["css/site.css", 34, "<blake3 hex>", 34, null]]}
//! ```
//!
//! A file row is `[path, size, blake3, remote size, remote mtime ns or null]`: the content
//! sent and what the server listed right after the upload (`null` until listed). Everything is
//! validated on reading; a document that fails (bad JSON, unknown version, an unsafe path, an
//! absurd size, a malformed hash) is refused as a whole with the reason, and the engine then
//! works as if there was no state (never a crash, and the state is only ever compared with,
//! never used to write anything locally).

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::time::{SystemTime, UNIX_EPOCH};

use serde::{Deserialize, Serialize};

use crate::journal::{JournalRecord, to_ns};
use crate::path::check_rel_path;

/// The document format's version; a different one is refused (treated as no state).
pub const STATE_VERSION: u32 = 1;
/// The state dir's default place, relative to the remote root (a site's `state_dir` moves it:
/// [`locate_state_dir`](crate::locate_state_dir)).
pub const DEFAULT_STATE_DIR: &str = ".siteport";
/// The document's name inside the state dir.
pub const STATE_FILE: &str = "state.json";
/// Written in the state dir when it is inside the web root: Apache then refuses to serve it.
pub const HTACCESS: &str = "# siteport deploy state: not for the web\n\
<IfModule mod_authz_core.c>\n    Require all denied\n</IfModule>\n\
<IfModule !mod_authz_core.c>\n    Order allow,deny\n    Deny from all\n</IfModule>\n";
/// Largest state document read (about 2.5 million files).
pub const MAX_STATE_BYTES: usize = 256 * 1024 * 1024;
/// Largest file size believed (1 PiB): anything above is a corrupt or hostile document.
const MAX_SIZE: u64 = 1 << 50;

/// What the state says about one file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StateRecord {
    /// Size of the content sent.
    pub size: u64,
    /// BLAKE3 of the content sent, lowercase hex.
    pub hash: String,
    /// Size the server listed.
    pub remote_size: u64,
    /// Time the server listed right after the upload (ns since the epoch); `None` until the
    /// file was listed after its upload.
    pub remote_mtime_ns: Option<i64>,
}

impl StateRecord {
    /// The record as a journal record without a local stat cache (which only the journal of
    /// the machine that read the file can have).
    pub fn to_journal(&self) -> JournalRecord {
        JournalRecord {
            size: self.size,
            local_mtime_ns: None,
            local_ctime_ns: None,
            local_ino: None,
            remote_size: self.remote_size,
            remote_mtime_ns: self.remote_mtime_ns,
            hash: self.hash.clone(),
        }
    }

    /// The server side of a journal record.
    pub fn from_journal(r: &JournalRecord) -> Self {
        Self {
            size: r.size,
            hash: r.hash.clone(),
            remote_size: r.remote_size,
            remote_mtime_ns: r.remote_mtime_ns,
        }
    }
}

/// Who deployed, when, what.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DeployInfo {
    /// Random id of the run that wrote the document (hex).
    pub id: String,
    /// When that run started, seconds since the epoch.
    pub time: i64,
    /// `user@host` of the machine.
    pub user: String,
    /// siteport's version.
    pub version: String,
    /// The git commit of the local dir, when it is inside a git checkout.
    #[serde(default)]
    pub commit: Option<String>,
    /// Whether the run finished (false in the documents written during it).
    #[serde(default)]
    pub complete: bool,
    /// Files in the document.
    #[serde(default)]
    pub files: u64,
    /// Their bytes.
    #[serde(default)]
    pub bytes: u64,
}

impl DeployInfo {
    /// A new deploy of the local dir `local_root`, now, by this user on this machine.
    pub fn new(local_root: &Path) -> Self {
        let now = SystemTime::now();
        let mut h = blake3::Hasher::new();
        h.update(&to_ns(now).to_le_bytes());
        h.update(&std::process::id().to_le_bytes());
        h.update(user_at_host().as_bytes());
        h.update(local_root.as_os_str().as_encoded_bytes());
        let id = h.finalize().to_hex()[..16].to_string();
        Self {
            id,
            time: now
                .duration_since(UNIX_EPOCH)
                .map_or(0, |d| d.as_secs() as i64),
            user: user_at_host(),
            version: env!("CARGO_PKG_VERSION").to_string(),
            commit: git_commit(local_root),
            complete: false,
            files: 0,
            bytes: 0,
        }
    }
}

/// A parsed, validated deploy state.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeployState {
    /// The deploy that wrote it.
    pub deploy: DeployInfo,
    /// Per file, by relative path.
    pub files: BTreeMap<String, StateRecord>,
}

type Row = (String, u64, String, u64, Option<i64>);

#[derive(Deserialize)]
struct Doc {
    siteport_state: u32,
    deploy: DeployInfo,
    files: Vec<Row>,
}

#[derive(Deserialize)]
struct VersionOnly {
    siteport_state: Option<u32>,
}

#[derive(Serialize)]
struct DocOut<'a> {
    siteport_state: u32,
    deploy: &'a DeployInfo,
    files: Vec<(&'a str, u64, &'a str, u64, Option<i64>)>,
}

impl DeployState {
    /// Parses and validates a document; `Err` says why it is refused.
    pub fn parse(bytes: &[u8]) -> Result<Self, String> {
        let doc: Doc = match serde_json::from_slice(bytes) {
            Ok(d) => d,
            Err(e) => {
                // Say "unknown version" rather than a field error when that is the cause.
                return match serde_json::from_slice::<VersionOnly>(bytes) {
                    Ok(VersionOnly {
                        siteport_state: Some(v),
                    }) if v != STATE_VERSION => Err(format!(
                        "state format version {v} is not supported (this siteport reads {STATE_VERSION})"
                    )),
                    _ => Err(format!("not a valid deploy state document: {e}")),
                };
            }
        };
        if doc.siteport_state != STATE_VERSION {
            return Err(format!(
                "state format version {} is not supported (this siteport reads {STATE_VERSION})",
                doc.siteport_state
            ));
        }
        if doc.deploy.id.is_empty()
            || doc.deploy.id.len() > 64
            || !doc.deploy.id.bytes().all(|b| b.is_ascii_hexdigit())
        {
            return Err("the deploy id is not a hex string".into());
        }
        let mut files = BTreeMap::new();
        for (path, size, hash, remote_size, remote_mtime_ns) in doc.files {
            if path.is_empty() || path.len() > 4096 {
                return Err(format!(
                    "a file path is empty or too long: {:?}",
                    short(&path)
                ));
            }
            check_rel_path(&path)
                .map_err(|why| format!("unsafe path {:?}: {why}", short(&path)))?;
            if size > MAX_SIZE || remote_size > MAX_SIZE {
                return Err(format!("absurd size for {path:?}"));
            }
            if !is_blake3_hex(&hash) {
                return Err(format!("malformed hash for {path:?}"));
            }
            let rec = StateRecord {
                size,
                hash,
                remote_size,
                remote_mtime_ns,
            };
            if files.insert(path.clone(), rec).is_some() {
                return Err(format!("{path:?} is listed twice"));
            }
        }
        Ok(Self {
            deploy: doc.deploy,
            files,
        })
    }

    /// The document's bytes.
    pub fn to_bytes(&self) -> Vec<u8> {
        let doc = DocOut {
            siteport_state: STATE_VERSION,
            deploy: &self.deploy,
            files: self
                .files
                .iter()
                .map(|(p, r)| {
                    (
                        p.as_str(),
                        r.size,
                        r.hash.as_str(),
                        r.remote_size,
                        r.remote_mtime_ns,
                    )
                })
                .collect(),
        };
        // Serializing strings and integers cannot fail.
        serde_json::to_vec(&doc).unwrap_or_default()
    }
}

fn short(s: &str) -> String {
    s.chars().take(80).collect()
}

fn is_blake3_hex(s: &str) -> bool {
    s.len() == 64 && s.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
}

/// Whether `path` is the state dir or inside it.
pub(crate) fn in_state_dir(state_dir: &str, path: &str) -> bool {
    path == state_dir
        || path
            .strip_prefix(state_dir)
            .is_some_and(|rest| rest.starts_with('/'))
}

/// Every directory of `path` from the top (`a/b/c` → `a`, `a/b`, `a/b/c`; an absolute
/// `/s/t` → `/s`, `/s/t`).
pub(crate) fn dir_chain(path: &str) -> Vec<String> {
    let (mut cur, rest) = match path.strip_prefix('/') {
        Some(rest) => ("/".to_string(), rest),
        None => (String::new(), path),
    };
    let mut out = Vec::new();
    for part in rest.split('/').filter(|p| !p.is_empty()) {
        if !cur.is_empty() && !cur.ends_with('/') {
            cur.push('/');
        }
        cur.push_str(part);
        out.push(cur.clone());
    }
    out
}

/// `user@host` of this process, for the record (never used to decide anything).
pub fn user_at_host() -> String {
    let user = std::env::var("USER")
        .or_else(|_| std::env::var("LOGNAME"))
        .unwrap_or_else(|_| "unknown".into());
    let host = std::fs::read_to_string("/proc/sys/kernel/hostname")
        .or_else(|_| std::fs::read_to_string("/etc/hostname"))
        .map(|h| h.trim().to_string())
        .ok()
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| "unknown".into());
    let clean = |s: String| -> String {
        s.chars()
            .filter(|c| !c.is_control())
            .take(128)
            .collect::<String>()
    };
    format!("{}@{}", clean(user), clean(host))
}

/// The commit checked out where `dir` is, read from `.git` directly (no git binary): `HEAD`,
/// then the ref file or `packed-refs`. Worktrees (`.git` file with `gitdir:`) are followed.
pub fn git_commit(dir: &Path) -> Option<String> {
    let start = std::fs::canonicalize(dir).ok()?;
    let top = start.ancestors().find(|d| d.join(".git").exists())?;
    let dotgit = top.join(".git");
    let gitdir = if dotgit.is_file() {
        let s = std::fs::read_to_string(&dotgit).ok()?;
        let p = s.strip_prefix("gitdir:")?.trim();
        top.join(p)
    } else {
        dotgit
    };
    let head = std::fs::read_to_string(gitdir.join("HEAD")).ok()?;
    let head = head.trim();
    let Some(name) = head.strip_prefix("ref:").map(str::trim) else {
        return is_commit(head).then(|| head.to_string());
    };
    if check_rel_path(name).is_err() {
        return None;
    }
    // A linked worktree keeps its refs in the main repository (`commondir`).
    let common = std::fs::read_to_string(gitdir.join("commondir"))
        .map(|c| gitdir.join(c.trim()))
        .unwrap_or_else(|_| gitdir.clone());
    for d in [&gitdir, &common] {
        if let Ok(s) = std::fs::read_to_string(d.join(name)) {
            let s = s.trim();
            if is_commit(s) {
                return Some(s.to_string());
            }
        }
    }
    let packed = std::fs::read_to_string(common.join("packed-refs")).ok()?;
    packed.lines().find_map(|l| {
        let (hash, r) = l.split_once(' ')?;
        (r.trim() == name && is_commit(hash)).then(|| hash.to_string())
    })
}

fn is_commit(s: &str) -> bool {
    (s.len() == 40 || s.len() == 64) && s.bytes().all(|b| b.is_ascii_hexdigit())
}

/// The set of directories that hold the given files (for the listing after the uploads).
pub(crate) fn parent_dirs<'a>(paths: impl Iterator<Item = &'a str>) -> BTreeSet<String> {
    paths.map(|p| crate::path::parent(p).to_string()).collect()
}

/// Reads the deploy state document of a site, for `siteport status`: `Ok(None)` when the
/// server has none. A document that is there but refused (corrupt, unknown version, hostile
/// paths) is `Ok(None)` too, after a warning naming the file, as the engine treats it.
pub async fn read_deploy_state(
    remote: &mut dyn crate::remote::Remote,
    state_dir: &str,
) -> crate::error::Result<Option<DeployState>> {
    let listed = match remote.list_dir(state_dir).await {
        Ok(l) => l,
        Err(e) if e.kind() == crate::error::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(e),
    };
    if !listed
        .iter()
        .any(|e| e.name == STATE_FILE && e.kind == crate::remote::EntryKind::File)
    {
        return Ok(None);
    }
    let path = format!("{}/{STATE_FILE}", state_dir.trim_end_matches('/'));
    let Some(bytes) = remote.get_contents(&path, MAX_STATE_BYTES).await? else {
        return Ok(None);
    };
    match DeployState::parse(&bytes) {
        Ok(s) => Ok(Some(s)),
        Err(why) => {
            tracing::warn!("{}/{path}: {why}; ignored", remote.describe());
            Ok(None)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const H: &str = "af1349b9f5f9a1a6a0404dea36dcc9499bcb25c9adc112b7cc9a93cae41f3262";

    fn doc(files: &str) -> String {
        format!(
            r#"{{"siteport_state":1,"deploy":{{"id":"ab12","time":1,"user":"u@h","version":"0.1","commit":null,"complete":true}},"files":[{files}]}}"#
        )
    }

    #[test]
    fn round_trip() {
        let mut files = BTreeMap::new();
        files.insert(
            "a/b.html".to_string(),
            StateRecord {
                size: 3,
                hash: H.into(),
                remote_size: 3,
                remote_mtime_ns: Some(5),
            },
        );
        let s = DeployState {
            deploy: DeployInfo::new(Path::new(".")),
            files,
        };
        assert_eq!(DeployState::parse(&s.to_bytes()).unwrap(), s);
        assert_eq!(s.deploy.id.len(), 16);
    }

    #[test]
    fn hostile_and_broken_documents_are_refused_with_a_reason() {
        let bad = [
            (doc(&format!(r#"["../x",1,"{H}",1,null]"#)), "unsafe path"),
            (
                doc(&format!(r#"["/etc/passwd",1,"{H}",1,null]"#)),
                "unsafe path",
            ),
            (
                doc(&format!(r#"["a/../../x",1,"{H}",1,null]"#)),
                "unsafe path",
            ),
            (doc(&format!(r#"["",1,"{H}",1,null]"#)), "empty"),
            (
                doc(&format!(r#"["a",99999999999999999,"{H}",1,null]"#)),
                "absurd size",
            ),
            (doc(r#"["a",1,"zz",1,null]"#), "malformed hash"),
            (
                doc(&format!(r#"["a",1,"{H}",1,null],["a",1,"{H}",1,null]"#)),
                "twice",
            ),
            (doc(r#"["a",-1]"#), "not a valid"),
            (r#"{"siteport_state":7,"x":1}"#.to_string(), "version 7"),
            ("{\"siteport_state\":1,\"dep".to_string(), "not a valid"),
            ("\u{0}\u{1}garbage".to_string(), "not a valid"),
        ];
        for (d, why) in bad {
            let e = DeployState::parse(d.as_bytes()).unwrap_err();
            assert!(e.contains(why), "{d}: {e}");
        }
        assert!(
            DeployState::parse(doc(&format!(r#"["a b/ü.html",1,"{H}",1,7]"#)).as_bytes()).is_ok()
        );
    }

    #[test]
    fn large_state_parses_fast() {
        let mut files = BTreeMap::new();
        for i in 0..100_000u64 {
            files.insert(
                format!("dir{}/sub{}/page-{i:06}.html", i % 100, i % 7),
                StateRecord {
                    size: i * 13,
                    hash: H.into(),
                    remote_size: i * 13,
                    remote_mtime_ns: Some(1_765_000_000_000_000_000),
                },
            );
        }
        let s = DeployState {
            deploy: DeployInfo::new(Path::new(".")),
            files,
        };
        let bytes = s.to_bytes();
        let t = std::time::Instant::now();
        let p = DeployState::parse(&bytes).unwrap();
        let took = t.elapsed();
        assert_eq!(p.files.len(), 100_000);
        // The 300 ms budget is for release builds (bench/); debug builds are ~10x slower.
        if !cfg!(debug_assertions) {
            assert!(took.as_millis() <= 300, "{took:?}");
        }
    }

    #[test]
    fn git_commit_from_ref_and_packed_refs() {
        let t = tempfile::tempdir().unwrap();
        let g = t.path().join(".git");
        std::fs::create_dir_all(g.join("refs/heads")).unwrap();
        std::fs::create_dir_all(t.path().join("site/sub")).unwrap();
        std::fs::write(g.join("HEAD"), "ref: refs/heads/main\n").unwrap();
        let c = "0123456789abcdef0123456789abcdef01234567";
        std::fs::write(
            g.join("packed-refs"),
            format!("# pack\n{c} refs/heads/main\n"),
        )
        .unwrap();
        assert_eq!(git_commit(&t.path().join("site/sub")).as_deref(), Some(c));
        let c2 = "1123456789abcdef0123456789abcdef01234567";
        std::fs::write(g.join("refs/heads/main"), format!("{c2}\n")).unwrap();
        assert_eq!(git_commit(&t.path().join("site")).as_deref(), Some(c2));
        std::fs::write(g.join("HEAD"), format!("{c}\n")).unwrap();
        assert_eq!(git_commit(t.path()).as_deref(), Some(c));
    }

    #[test]
    fn state_dir_membership() {
        assert!(in_state_dir(".siteport", ".siteport"));
        assert!(in_state_dir(".siteport", ".siteport/state.json"));
        assert!(!in_state_dir(".siteport", ".siteport2"));
        assert_eq!(dir_chain("a/b"), vec!["a", "a/b"]);
        assert_eq!(dir_chain("/s/t"), vec!["/s", "/s/t"]);
    }
}
