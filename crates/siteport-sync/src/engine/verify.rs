//! `export --verify` inside the engine: after [`Engine::execute`], check what the run sent
//! ([`crate::verify_uploads`]) and make sure that a file found different is not remembered as
//! sent. Without that, a file another client rewrote with the same length (and a listing time
//! from before the deploy state was written) would be judged unchanged by the next export, and
//! "run the export again" would not fix it.

use crate::error::Result;
use crate::report::Report;
use crate::verify::{Verification, verify_uploads};

use super::{Engine, lock};

impl Engine {
    /// Lists the remote again and checks every file `report` uploaded: size, and content where
    /// the server can hash. Files that differ are dropped from the journal and from the deploy
    /// state on the server (written again), so the next export sends them. Call it before
    /// [`finish`](Engine::finish).
    pub async fn verify(&mut self, report: &Report) -> Result<Verification> {
        let root = self.opts.local_root.clone();
        let conn = self.any_conn().await?;
        let v = verify_uploads(conn.as_mut(), report, &root).await?;
        if v.mismatches.is_empty() {
            return Ok(v);
        }
        let paths: Vec<&str> = v.mismatches.iter().map(|m| m.path.as_str()).collect();
        let tracked = self.forget(&paths);
        let mut warnings = Vec::new();
        {
            let mut j = lock(&self.shared.journal);
            for p in &paths {
                if let Err(e) = j.remove(p) {
                    warnings.push(e.to_string());
                    break;
                }
            }
        }
        if tracked {
            self.finish_state(&mut warnings).await;
        }
        lock(&self.shared.results).warnings.extend(warnings);
        Ok(v)
    }

    /// Warnings the engine gathered after [`execute`](Engine::execute) returned its report
    /// (from [`verify`](Engine::verify)).
    pub fn take_warnings(&mut self) -> Vec<String> {
        std::mem::take(&mut lock(&self.shared.results).warnings)
    }
}
