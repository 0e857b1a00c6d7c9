//! An import's local side: directory operations done in place (no connection needed), and
//! the check that every local write stays inside the local root and never follows a link.

use std::path::{Path, PathBuf};

use crate::error::{Error, ErrorKind, Result};
use crate::plan::{Action, Op};

use super::scheduler::outcome;
use super::{Engine, lock};

impl Engine {
    /// An import's local directory operation, done in place (no connection needed).
    pub(super) fn local_op(&self, a: &Action) {
        if self.stopped() {
            return;
        }
        let root = &self.opts.local_root;
        let r = local_dir_op(root, a);
        if r.is_ok() && a.op == Op::Delete {
            let mut j = lock(&self.shared.journal);
            if let Err(e) = j.remove(&a.path) {
                lock(&self.shared.results).warnings.push(e.to_string());
            }
        }
        let o = outcome(a, r.map(|()| 0), 1);
        self.shared.progress.finished(0, &o);
        lock(&self.shared.results).outcomes.push((0, o));
    }
}

pub(super) fn create_local_root(root: &Path) -> Result<()> {
    std::fs::create_dir_all(root).map_err(|e| Error::local_io("create local root", root, e))
}

/// Checks that every existing directory between `root` and `root/rel` is a real directory
/// (not a link), and that `root/rel` itself is not a link and, if it exists, is a directory
/// when `want_dir` and not one otherwise. Returns the full path.
pub(super) fn check_local_target(root: &Path, rel: &str, want_dir: bool) -> Result<PathBuf> {
    crate::path::check_rel_path(rel).map_err(|why| Error::unsafe_name(rel, why))?;
    let mut cur = root.to_path_buf();
    let comps: Vec<&str> = rel.split('/').collect();
    for (i, c) in comps.iter().enumerate() {
        cur.push(c);
        let last = i + 1 == comps.len();
        match std::fs::symlink_metadata(&cur) {
            Ok(m) if m.file_type().is_symlink() => {
                return Err(Error::unsafe_name(
                    cur.display().to_string(),
                    "is a symbolic link; siteport never writes through one",
                ));
            }
            Ok(m) if (!last || want_dir) && !m.is_dir() => {
                return Err(Error::new(
                    ErrorKind::Conflict,
                    cur.display().to_string(),
                    "is not a directory",
                ));
            }
            Ok(m) if last && !want_dir && m.is_dir() => {
                return Err(Error::new(
                    ErrorKind::Conflict,
                    cur.display().to_string(),
                    "is a directory",
                ));
            }
            Ok(_) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound && last => {}
            Err(e) => return Err(Error::local_io("check", &cur, e)),
        }
    }
    Ok(cur)
}

fn local_dir_op(root: &Path, a: &Action) -> Result<()> {
    match a.op {
        Op::Mkdir => {
            let p = check_local_target(root, &a.path, true)?;
            match std::fs::create_dir(&p) {
                Ok(()) => Ok(()),
                Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists && p.is_dir() => Ok(()),
                Err(e) => Err(Error::local_io("create directory", &p, e)),
            }
        }
        Op::Delete => {
            let p = check_local_target(root, &a.path, false)?;
            match std::fs::remove_file(&p) {
                Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
                    Err(Error::local_io("delete", &p, e))
                }
                _ => Ok(()),
            }
        }
        Op::RemoveDir => {
            let p = check_local_target(root, &a.path, true)?;
            match std::fs::remove_dir(&p) {
                Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
                    Err(Error::local_io("remove directory", &p, e))
                }
                _ => Ok(()),
            }
        }
        op => Err(Error::new(
            ErrorKind::Config,
            a.path.clone(),
            format!("internal: {} is not a local action", op.as_str()),
        )),
    }
}
