//! `export --verify`: after a run, list the remote again and check that every file the run
//! sent is there with the size that was sent. It catches what the transfer itself cannot see:
//! a server that truncates or rewrites a stored file, a quota that cut it short after the
//! rename, another client changing it right after.

use std::collections::BTreeMap;
use std::fmt;

use crate::error::{ErrorKind, Result};
use crate::plan::Op;
use crate::remote::{EntryKind, Remote};
use crate::report::{Report, Status};

/// One file the server does not have as it was sent.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Mismatch {
    /// Relative path.
    pub path: String,
    /// Bytes sent.
    pub expected: u64,
    /// What the listing says: `None` when the file is not listed at all.
    pub found: Option<u64>,
}

impl fmt::Display for Mismatch {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.found {
            Some(n) => write!(
                f,
                "{}: sent {} bytes, the server lists {n}",
                self.path, self.expected
            ),
            None => write!(
                f,
                "{}: sent {} bytes, the server does not list it",
                self.path, self.expected
            ),
        }
    }
}

/// Lists, once per directory, every directory the report uploaded into, and compares the
/// listed size of each uploaded file with the bytes sent. Returns the files that differ (empty:
/// all verified) and how many were checked.
pub async fn verify_uploads(
    remote: &mut dyn Remote,
    report: &Report,
) -> Result<(Vec<Mismatch>, usize)> {
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
            if found != Some(expected) {
                mismatches.push(Mismatch {
                    path: path.to_string(),
                    expected,
                    found,
                });
            }
        }
    }
    Ok((mismatches, checked))
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
        let (bad, checked) = verify_uploads(r.as_mut(), &report).await.unwrap();
        assert_eq!(checked, 3);
        let paths: Vec<_> = bad.iter().map(|m| m.path.as_str()).collect();
        assert_eq!(paths, ["sub/b.css", "sub/gone.js"]);
        assert_eq!(bad[0].found, Some(3));
        assert!(
            bad[1].to_string().contains("does not list it"),
            "{}",
            bad[1]
        );
    }
}
