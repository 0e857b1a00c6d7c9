//! An import's local side: directory operations done in place (no connection needed),
//! through the root's handle so that no write leaves the local root or follows a link.

use std::path::Path;

use crate::error::{Error, ErrorKind, Result};
use crate::local_fs::{LocalRoot, Want};
use crate::plan::{Action, Op};

use super::scheduler::outcome;
use super::{Engine, lock};

impl Engine {
    /// An import's local directory operation, done in place (no connection needed).
    pub(super) fn local_op(&self, a: &Action) {
        if self.stopped() {
            return;
        }
        let r = self.shared.root().and_then(|root| local_dir_op(&root, a));
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

/// Every write goes through the root's handle, to a directory reached without following
/// links, and refuses a link at the name itself (see [`LocalRoot`]).
fn local_dir_op(root: &LocalRoot, a: &Action) -> Result<()> {
    match a.op {
        Op::Mkdir => root.mkdir(&a.path),
        Op::Delete => root.remove(&a.path, Want::File),
        Op::RemoveDir => root.remove(&a.path, Want::Dir),
        op => Err(Error::new(
            ErrorKind::Config,
            a.path.clone(),
            format!("internal: {} is not a local action", op.as_str()),
        )),
    }
}
