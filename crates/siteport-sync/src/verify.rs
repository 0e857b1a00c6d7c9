//! `export --verify`: after a run, list the remote again and check that every file the run
//! sent is there with the size that was sent and, when the server can hash files (FTP `HASH`,
//! `XSHA256`, `XSHA1`, `XMD5`), with the content of the local file. It catches what the
//! transfer itself cannot see: a server that truncates or rewrites a stored file, a quota that
//! cut it short after the rename, another client changing it right after (a same-length
//! rewrite only by its hash).

use std::collections::BTreeMap;
use std::fmt;
use std::path::Path;

use crate::digest::hash_reader_with;
use crate::error::{Error, ErrorKind, Result};
use crate::local_fs::LocalRoot;
use crate::plan::Op;
use crate::remote::{EntryKind, HashAlg, Remote};
use crate::report::{Report, Status};

/// What is wrong with one file on the server.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Problem {
    /// The server lists it with this size.
    Size(u64),
    /// The server does not list it.
    Missing,
    /// The size is right but the server's hash in this algorithm is not the local file's.
    Content(HashAlg),
}

/// One file the server does not have as it was sent.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Mismatch {
    /// Relative path.
    pub path: String,
    /// Bytes sent.
    pub expected: u64,
    /// What differs.
    pub problem: Problem,
}

impl fmt::Display for Mismatch {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let (path, expected) = (&self.path, self.expected);
        match self.problem {
            Problem::Size(n) => write!(f, "{path}: sent {expected} bytes, the server lists {n}"),
            Problem::Missing => write!(
                f,
                "{path}: sent {expected} bytes, the server does not list it"
            ),
            Problem::Content(alg) => write!(
                f,
                "{path}: same size ({expected} bytes) but the server's {} differs from the \
                 local file's",
                alg.name()
            ),
        }
    }
}

/// What [`verify_uploads`] found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Verification {
    /// The files that differ (empty: all verified).
    pub mismatches: Vec<Mismatch>,
    /// How many files were checked.
    pub checked: usize,
    /// The hash the contents were compared with; `None`: the server cannot hash, sizes only.
    pub hash: Option<HashAlg>,
}

/// Lists, once per directory, every directory the report uploaded into, and compares the
/// listed size of each uploaded file with the bytes sent; when the server can hash, also its
/// hash of each file of the right size with the hash of the local file under `local_root`
/// (as it is now: a file edited since the upload shows as different, which it is).
pub async fn verify_uploads(
    remote: &mut dyn Remote,
    report: &Report,
    local_root: &Path,
) -> Result<Verification> {
    let mut by_dir: BTreeMap<&str, Vec<(&str, &str, u64)>> = BTreeMap::new();
    for o in &report.outcomes {
        if o.op != Op::Upload || o.status != Status::Done {
            continue;
        }
        let (dir, name) = o.path.rsplit_once('/').unwrap_or(("", o.path.as_str()));
        by_dir
            .entry(dir)
            .or_default()
            .push((o.path.as_str(), name, o.bytes));
    }
    let hash = remote.capabilities().hash;
    let mut mismatches = Vec::new();
    let mut checked = 0;
    for (dir, files) in by_dir {
        let listed = match remote.list_dir(dir).await {
            Ok(l) => l,
            Err(e) if e.kind() == ErrorKind::NotFound => Vec::new(),
            Err(e) => return Err(e),
        };
        for (path, name, expected) in files {
            checked += 1;
            let found = listed
                .iter()
                .find(|e| e.name == name && e.kind == EntryKind::File)
                .map(|e| e.size);
            let problem = match (found, hash) {
                (None, _) => Some(Problem::Missing),
                (Some(n), _) if n != expected => Some(Problem::Size(n)),
                (Some(_), Some(alg)) => content_differs(remote, local_root, path, alg)
                    .await?
                    .then_some(Problem::Content(alg)),
                (Some(_), None) => None,
            };
            if let Some(problem) = problem {
                mismatches.push(Mismatch {
                    path: path.to_string(),
                    expected,
                    problem,
                });
            }
        }
    }
    Ok(Verification {
        mismatches,
        checked,
        hash,
    })
}

/// `true` when the server's hash of `path` differs from the local file's.
async fn content_differs(
    remote: &mut dyn Remote,
    local_root: &Path,
    path: &str,
    alg: HashAlg,
) -> Result<bool> {
    let root = local_root.to_path_buf();
    let rel = path.to_string();
    // Opened beneath the root with no link followed, like the upload: a name swapped for a
    // link since then is refused, never hashed through.
    let mine = tokio::task::spawn_blocking(move || -> Result<String> {
        let r = LocalRoot::open(&root)?;
        let (f, _) = r.open_scanned(&rel, None)?;
        hash_reader_with(f, alg).map_err(|e| Error::local_io("read", &r.shown(&rel), e))
    })
    .await
    .map_err(|e| Error::new(ErrorKind::LocalIo, "verify", format!("hashing failed: {e}")))??;
    let theirs = remote.remote_hash(path, alg).await?;
    Ok(!theirs.trim().eq_ignore_ascii_case(&mine))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::local_remote::LocalDirRemoteFactory;
    use crate::plan::{Direction, Plan};
    use crate::remote::RemoteFactory;
    use crate::report::FileOutcome;

    #[tokio::test]
    async fn finds_truncated_and_missing_files() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir(dir.path().join("sub")).unwrap();
        std::fs::write(dir.path().join("a.html"), b"hello").unwrap();
        std::fs::write(dir.path().join("sub/b.css"), b"hel").unwrap();
        let plan = Plan {
            direction: Direction::Export,
            actions: vec![],
            local_problems: vec![],
            remote_problems: vec![],
            journal_updates: vec![],
            notes: vec![],
            stale_temps: vec![],
        };
        let mut report = Report::new(&plan);
        for (path, bytes) in [("a.html", 5), ("sub/b.css", 5), ("sub/gone.js", 2)] {
            report.add(FileOutcome {
                op: Op::Upload,
                path: path.into(),
                bytes,
                attempts: 1,
                status: Status::Done,
            });
        }
        let mut r = LocalDirRemoteFactory::new(dir.path())
            .connect()
            .await
            .unwrap();
        let v = verify_uploads(r.as_mut(), &report, dir.path())
            .await
            .unwrap();
        let (bad, checked) = (v.mismatches, v.checked);
        assert_eq!(checked, 3);
        assert_eq!(v.hash, None);
        let paths: Vec<_> = bad.iter().map(|m| m.path.as_str()).collect();
        assert_eq!(paths, ["sub/b.css", "sub/gone.js"]);
        assert_eq!(bad[0].problem, Problem::Size(3));
        assert!(
            bad[1].to_string().contains("does not list it"),
            "{}",
            bad[1]
        );
    }

    /// With a hash on offer, a same-size rewrite is caught by content; without, it is not.
    #[tokio::test]
    async fn same_size_rewrite_is_caught_by_hash() {
        let local = tempfile::tempdir().unwrap();
        let remote = tempfile::tempdir().unwrap();
        for d in [local.path(), remote.path()] {
            std::fs::write(d.join("ok.html"), b"same").unwrap();
        }
        std::fs::write(local.path().join("x.html"), b"1.0.1").unwrap();
        std::fs::write(remote.path().join("x.html"), b"1.0.0").unwrap();
        let plan = Plan {
            direction: Direction::Export,
            actions: vec![],
            local_problems: vec![],
            remote_problems: vec![],
            journal_updates: vec![],
            notes: vec![],
            stale_temps: vec![],
        };
        let mut report = Report::new(&plan);
        for (path, bytes) in [("ok.html", 4), ("x.html", 5)] {
            report.add(FileOutcome {
                op: Op::Upload,
                path: path.into(),
                bytes,
                attempts: 1,
                status: Status::Done,
            });
        }
        let f = LocalDirRemoteFactory::new(remote.path()).with_hash(Some(HashAlg::Sha256));
        let mut r = f.connect().await.unwrap();
        let v = verify_uploads(r.as_mut(), &report, local.path())
            .await
            .unwrap();
        assert_eq!(v.hash, Some(HashAlg::Sha256));
        assert_eq!(v.checked, 2);
        assert_eq!(v.mismatches.len(), 1, "{:?}", v.mismatches);
        assert_eq!(v.mismatches[0].path, "x.html");
        assert!(v.mismatches[0].to_string().contains("SHA-256 differs"));
        let mut r = LocalDirRemoteFactory::new(remote.path())
            .connect()
            .await
            .unwrap();
        let v = verify_uploads(r.as_mut(), &report, local.path())
            .await
            .unwrap();
        assert!(v.mismatches.is_empty() && v.hash.is_none());
    }
}
