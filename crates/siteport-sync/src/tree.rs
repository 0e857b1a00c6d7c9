//! Scanned trees (local or remote), excludes, and the local scan.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::time::SystemTime;

use globset::{GlobBuilder, GlobSet, GlobSetBuilder};

use crate::error::{Error, ErrorKind, Result};
use crate::journal::LocalStat;
use crate::local_fs::FileId;
use crate::path::{check_name, join};
use crate::remote::EntryKind;

/// One file or directory of a scanned tree.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TreeEntry {
    /// File or directory (trees hold no links: those are reported and kept aside).
    pub kind: EntryKind,
    /// Size in bytes (0 for directories).
    pub size: u64,
    /// Modification time, if known.
    pub mtime: Option<SystemTime>,
    /// Whether `mtime` is exact (see [`RemoteEntry::mtime_precise`](crate::RemoteEntry)).
    pub mtime_precise: bool,
    /// A local file's stat cache key (size, mtime, ctime, inode); `None` on the remote side.
    pub stat: Option<LocalStat>,
    /// A local file's identity as scanned: it is read only if its name still leads to this
    /// very file. `None` on the remote side.
    pub id: Option<FileId>,
    /// For a local link to a file inside the root: the target's path relative to the root,
    /// which is what is read (never the link). `None` otherwise.
    pub source: Option<String>,
}

impl TreeEntry {
    /// A file entry.
    pub fn file(size: u64, mtime: Option<SystemTime>, mtime_precise: bool) -> Self {
        Self {
            kind: EntryKind::File,
            size,
            mtime,
            mtime_precise,
            stat: None,
            id: None,
            source: None,
        }
    }

    /// A local file entry from its metadata, with its stat cache key and identity.
    pub fn local_file(m: &std::fs::Metadata) -> Self {
        Self {
            stat: Some(LocalStat::of(m)),
            id: Some(FileId::of(m)),
            ..Self::file(m.len(), m.modified().ok(), true)
        }
    }

    /// The path under the root to read this local file from (a link's target, else `path`)
    /// and the identity it must have.
    pub fn read_from<'a>(&'a self, path: &'a str) -> (&'a str, Option<FileId>) {
        (self.source.as_deref().unwrap_or(path), self.id)
    }
    /// A directory entry.
    pub fn dir() -> Self {
        Self {
            kind: EntryKind::Dir,
            size: 0,
            mtime: None,
            mtime_precise: false,
            stat: None,
            id: None,
            source: None,
        }
    }
}

/// Why a scanned entry was left out of the tree.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ProblemKind {
    /// A symbolic link that is not followed: it points out of the root, at a directory, or
    /// nowhere.
    Symlink,
    /// An unsafe name (see [`check_name`](crate::check_name)).
    UnsafeName,
    /// A local name that is not UTF-8 and so cannot be sent to a server faithfully.
    NonUtf8,
    /// A device, socket or FIFO, or an entry the server lists as neither file nor directory.
    Special,
    /// The entry could not be read.
    Unreadable,
}

/// An entry left out of a scan, reported to the user. Nothing is ever done to it: it is not
/// transferred, overwritten or deleted.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct ScanProblem {
    /// The path relative to the root, as far as it could be expressed (lossy for non-UTF-8).
    pub path: String,
    /// What kind of problem.
    pub kind: ProblemKind,
    /// Human explanation.
    pub detail: String,
}

/// A scanned tree: relative `/`-separated paths in sorted (deterministic) order.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Tree {
    /// Files and directories that take part in the mirror.
    pub entries: BTreeMap<String, TreeEntry>,
    /// Paths present but left alone (excluded, links, unsafe names): never deleted, and a
    /// directory holding one is never removed.
    pub kept: BTreeSet<String>,
    /// What was left out and why.
    pub problems: Vec<ScanProblem>,
}

impl Tree {
    /// Whether `dir` has a kept (excluded or refused) entry somewhere below it.
    pub fn keeps_something_under(&self, dir: &str) -> bool {
        let prefix = format!("{dir}/");
        self.kept
            .range(prefix.clone()..)
            .next()
            .is_some_and(|k| k.starts_with(&prefix))
    }

    /// A directory that holds nothing taking part but something kept (only excluded files,
    /// say) takes no part itself: it is not created on the other side, and, being kept, never
    /// removed there. Deepest first, so nested such directories go too. An empty directory
    /// still takes part.
    fn drop_dirs_of_kept_only(&mut self) {
        let dirs: Vec<String> = self
            .entries
            .iter()
            .filter(|(_, e)| e.kind == EntryKind::Dir)
            .map(|(p, _)| p.clone())
            .collect();
        for d in dirs.iter().rev() {
            let prefix = format!("{d}/");
            let has_entries = self
                .entries
                .range(prefix.clone()..)
                .next()
                .is_some_and(|(k, _)| k.starts_with(&prefix));
            if !has_entries && self.keeps_something_under(d) {
                self.entries.remove(d);
                self.kept.insert(d.clone());
            }
        }
    }

    /// Leaves `path` alone (kept) and says why.
    fn set_aside(&mut self, path: String, kind: ProblemKind, detail: impl Into<String>) {
        self.kept.insert(path.clone());
        self.problems.push(ScanProblem {
            path,
            kind,
            detail: detail.into(),
        });
    }
}

/// Exclude patterns, matched against paths relative to the root (`.git/**`, `*.tmp`,
/// `drafts/*.html`). `*` also matches `/`, as in rsync and rclone filters, so `*.tmp`
/// excludes temp files at every depth. A directory is skipped as a whole when a pattern
/// matches it or everything under it (`.git/**`).
///
/// Include patterns ([`with_includes`](Self::with_includes), `--include`) take back what the
/// excludes took: a path is left out when an exclude matches it and no include does, whatever
/// the order of the patterns. With includes, no directory is skipped whole (an include may
/// match something under it); a directory left holding only excluded files still takes no part.
#[derive(Debug, Clone)]
pub struct Excludes {
    set: GlobSet,
    patterns: Vec<String>,
    includes: GlobSet,
}

impl Excludes {
    /// Compiles the patterns; an invalid one is a [`ErrorKind::Config`] error naming it.
    pub fn new<S: AsRef<str>>(patterns: &[S]) -> Result<Self> {
        Ok(Self {
            set: glob_set(patterns)?,
            patterns: patterns.iter().map(|p| p.as_ref().to_string()).collect(),
            includes: GlobSet::empty(),
        })
    }

    /// These excludes, with `includes` taking back what they match (same glob syntax).
    pub fn with_includes<S: AsRef<str>>(mut self, includes: &[S]) -> Result<Self> {
        self.includes = glob_set(includes)?;
        Ok(self)
    }

    /// No excludes.
    pub fn none() -> Self {
        Self {
            set: GlobSet::empty(),
            patterns: Vec::new(),
            includes: GlobSet::empty(),
        }
    }

    /// The patterns as given.
    pub fn patterns(&self) -> &[String] {
        &self.patterns
    }

    /// Whether a file (or any entry) at `path` is excluded.
    pub fn is_excluded(&self, path: &str) -> bool {
        self.set.is_match(path) && !self.includes.is_match(path)
    }

    /// Whether the directory `path` is skipped with everything in it. The probe name uses a
    /// character no real file name has, so only patterns that match *any* child do.
    pub fn prunes_dir(&self, path: &str) -> bool {
        self.includes.is_empty()
            && (self.set.is_match(path) || self.set.is_match(format!("{path}/\u{1}")))
    }
}

/// Compiles glob patterns as excludes and includes use them; an invalid one is a
/// [`ErrorKind::Config`] error naming it.
fn glob_set<S: AsRef<str>>(patterns: &[S]) -> Result<GlobSet> {
    let mut b = GlobSetBuilder::new();
    for p in patterns {
        let p = p.as_ref();
        let g = GlobBuilder::new(p.trim_start_matches('/'))
            .literal_separator(false)
            .backslash_escape(true)
            .build()
            .map_err(|e| {
                Error::new(
                    ErrorKind::Config,
                    "exclude",
                    format!("invalid exclude pattern '{p}': {e}"),
                )
                .with_hint("fix the pattern in the site's `exclude` list")
            })?;
        b.add(g);
    }
    b.build().map_err(|e| {
        Error::new(
            ErrorKind::Config,
            "exclude",
            format!("exclude patterns: {e}"),
        )
    })
}

/// Scans the local tree under `root`. Links are never followed out of the root: a link to a
/// file inside the root is mirrored as that file; links to directories, out of the root, or
/// dangling are reported and kept. Blocking: call it from `spawn_blocking`.
pub fn scan_local(root: &Path, excludes: &Excludes) -> Result<Tree> {
    let meta = std::fs::metadata(root).map_err(|e| {
        Error::local_io("open local root", root, e)
            .with_hint("create the directory or fix `local` in the site's config")
    })?;
    if !meta.is_dir() {
        return Err(Error::new(
            ErrorKind::Config,
            root.display().to_string(),
            "local root is not a directory",
        ));
    }
    let canon_root =
        std::fs::canonicalize(root).map_err(|e| Error::local_io("resolve", root, e))?;
    let mut tree = Tree::default();
    let mut it = walkdir::WalkDir::new(root)
        .follow_links(false)
        .sort_by_file_name()
        .min_depth(1)
        .into_iter();
    while let Some(next) = it.next() {
        let ent = match next {
            Ok(e) => e,
            Err(e) => {
                let path = e
                    .path()
                    .and_then(|p| p.strip_prefix(root).ok())
                    .map(|p| p.to_string_lossy().into_owned())
                    .unwrap_or_default();
                if !path.is_empty() {
                    tree.kept.insert(path.clone());
                }
                tree.problems.push(ScanProblem {
                    path,
                    kind: ProblemKind::Unreadable,
                    detail: e.to_string(),
                });
                continue;
            }
        };
        let is_dir = ent.file_type().is_dir();
        let Some(rel) = rel_utf8(root, ent.path()) else {
            let lossy = ent
                .path()
                .strip_prefix(root)
                .unwrap_or(ent.path())
                .to_string_lossy()
                .into_owned();
            tree.set_aside(
                lossy,
                ProblemKind::NonUtf8,
                "name is not valid UTF-8; rename it to mirror it",
            );
            if is_dir {
                it.skip_current_dir();
            }
            continue;
        };
        let name = ent.file_name().to_string_lossy();
        if let Err(why) = check_name(&name) {
            tree.set_aside(rel, ProblemKind::UnsafeName, why);
            if is_dir {
                it.skip_current_dir();
            }
            continue;
        }
        if is_dir {
            if excludes.prunes_dir(&rel) {
                tree.kept.insert(rel);
                it.skip_current_dir();
                continue;
            }
        } else if excludes.is_excluded(&rel) {
            tree.kept.insert(rel);
            continue;
        }
        add_entry(&mut tree, &canon_root, &ent, rel);
    }
    tree.drop_dirs_of_kept_only();
    Ok(tree)
}

/// Adds a walked entry that passed the name and exclude checks: a directory or regular file
/// takes part; a link only if it leads to a regular file inside the root; anything else is
/// set aside.
fn add_entry(tree: &mut Tree, canon_root: &Path, ent: &walkdir::DirEntry, rel: String) {
    let ft = ent.file_type();
    if ft.is_dir() {
        tree.entries.insert(rel, TreeEntry::dir());
    } else if ft.is_file() {
        match ent.metadata() {
            Ok(m) => {
                tree.entries.insert(rel, TreeEntry::local_file(&m));
            }
            Err(e) => tree.set_aside(rel, ProblemKind::Unreadable, e.to_string()),
        }
    } else if ft.is_symlink() {
        match follow_inside(canon_root, ent.path()) {
            Ok((m, target)) => {
                let e = TreeEntry {
                    source: Some(target),
                    ..TreeEntry::local_file(&m)
                };
                tree.entries.insert(rel, e);
            }
            Err(detail) => tree.set_aside(rel, ProblemKind::Symlink, detail),
        }
    } else {
        tree.set_aside(rel, ProblemKind::Special, "not a regular file or directory");
    }
}

/// The metadata of a link's target and its path relative to the root, when the target is a
/// regular file inside the root (reached without links from the root: what is read later).
fn follow_inside(
    canon_root: &Path,
    link: &Path,
) -> std::result::Result<(std::fs::Metadata, String), String> {
    let target: PathBuf = std::fs::canonicalize(link)
        .map_err(|e| format!("symbolic link not followed: target unreadable ({e})"))?;
    if !target.starts_with(canon_root) {
        return Err(format!(
            "symbolic link not followed: it points out of the site root (to {})",
            target.display()
        ));
    }
    let m = std::fs::metadata(&target).map_err(|e| format!("symbolic link not followed: {e}"))?;
    if !m.is_file() {
        return Err("symbolic link to a directory not followed".into());
    }
    let rel = rel_utf8(canon_root, &target)
        .filter(|r| !r.is_empty())
        .ok_or("symbolic link not followed: its target's name is not UTF-8")?;
    Ok((m, rel))
}

fn rel_utf8(root: &Path, p: &Path) -> Option<String> {
    let rel = p.strip_prefix(root).ok()?;
    let mut out = String::new();
    for c in rel.components() {
        let s = c.as_os_str().to_str()?;
        out = join(&out, s);
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn excludes_match_at_any_depth_and_prune_dirs() {
        let ex = Excludes::new(&[".git/**", "*.tmp", "drafts/*.html"]).unwrap();
        assert!(ex.is_excluded("a.tmp"));
        assert!(ex.is_excluded("deep/er/a.tmp"));
        assert!(ex.is_excluded(".git/config"));
        assert!(ex.prunes_dir(".git"));
        assert!(!ex.prunes_dir("drafts"));
        assert!(ex.is_excluded("drafts/x.html"));
        assert!(!ex.is_excluded("index.html"));
        assert!(!ex.prunes_dir("assets"));
        assert!(Excludes::new(&["a[b"]).is_err());
    }

    #[test]
    fn includes_take_back_what_excludes_took() {
        let ex = Excludes::new(&["drafts/**", "*.tmp"])
            .unwrap()
            .with_includes(&["drafts/keep.html", "*.keep.tmp"])
            .unwrap();
        assert!(ex.is_excluded("drafts/x.html"));
        assert!(!ex.is_excluded("drafts/keep.html"));
        assert!(ex.is_excluded("a.tmp"));
        assert!(!ex.is_excluded("deep/a.keep.tmp"));
        assert!(!ex.is_excluded("index.html"));
        // With includes, no directory is pruned whole.
        assert!(!ex.prunes_dir("drafts"));
        assert!(Excludes::none().with_includes(&["[x"]).is_err());
    }

    #[test]
    fn dirs_holding_only_excluded_files_take_no_part() {
        let d = tempfile::tempdir().unwrap();
        for (rel, text) in [
            ("drafts/a.tmp", "x"),
            ("drafts/deeper/b.tmp", "x"),
            ("site/index.html", "x"),
            ("site/c.tmp", "x"),
        ] {
            let p = d.path().join(rel);
            std::fs::create_dir_all(p.parent().unwrap()).unwrap();
            std::fs::write(p, text).unwrap();
        }
        std::fs::create_dir(d.path().join("empty")).unwrap();
        let t = scan_local(d.path(), &Excludes::new(&["*.tmp"]).unwrap()).unwrap();
        let names: Vec<&str> = t.entries.keys().map(String::as_str).collect();
        assert_eq!(names, ["empty", "site", "site/index.html"]);
        // Kept: never removed on the other side.
        assert!(t.kept.contains("drafts") && t.kept.contains("drafts/deeper"));
    }

    #[test]
    fn keeps_something_under_is_prefix_exact() {
        let mut t = Tree::default();
        t.kept.insert("ab/x".into());
        assert!(t.keeps_something_under("ab"));
        assert!(!t.keeps_something_under("a"));
    }
}
