//! Operations on remote paths that take one command and no data connection: `MKD`, `DELE`,
//! `RMD`, `RNFR`/`RNTO` (pipelined where the server answers in order), `MDTM`.

use std::time::SystemTime;

use super::pipeline::Expect;
use super::{FtpConnection, check_path};
use crate::error::FtpError;
use crate::list::parse_mdtm;

impl FtpConnection {
    /// Creates a directory; succeeds if it already exists. The parent must exist.
    pub async fn mkdir(&mut self, path: &str) -> Result<(), FtpError> {
        check_path(self.server(), "mkdir", path)?;
        let dir = self.abs(path);
        let cmd = format!("MKD {dir}");
        let r = self.ctrl.cmd(&cmd).await?;
        if r.code == 257 || r.code == 250 {
            return Ok(());
        }
        let err = FtpError::from_reply(self.server(), &cmd, r.code, &r.text);
        if r.code / 100 == 5 {
            let cwd = self.ctrl.cmd(&format!("CWD {dir}")).await?;
            if cwd.code == 250 || cwd.code == 200 {
                return Ok(());
            }
        }
        Err(err)
    }

    /// Creates a directory only if it does not exist yet: `Ok(true)` when this `MKD` created
    /// it, `Ok(false)` when it was already there (a `5xx` answer, and the directory can be
    /// entered). `MKD` is atomic on every FTP server, so of several clients racing to create
    /// the same directory exactly one gets `Ok(true)`: the site lock is built on this.
    pub async fn mkdir_new(&mut self, path: &str) -> Result<bool, FtpError> {
        check_path(self.server(), "mkdir", path)?;
        let dir = self.abs(path);
        let cmd = format!("MKD {dir}");
        let r = self.ctrl.cmd(&cmd).await?;
        if r.code == 257 || r.code == 250 {
            return Ok(true);
        }
        let err = FtpError::from_reply(self.server(), &cmd, r.code, &r.text);
        if r.code / 100 == 5 {
            let cwd = self.ctrl.cmd(&format!("CWD {dir}")).await?;
            if cwd.code == 250 || cwd.code == 200 {
                return Ok(false);
            }
        }
        Err(err)
    }

    /// Deletes a file.
    pub async fn delete_file(&mut self, path: &str) -> Result<(), FtpError> {
        check_path(self.server(), "delete", path)?;
        let cmd = format!("DELE {}", self.abs(path));
        self.ctrl.expect(&cmd, &[250, 200]).await.map(drop)
    }

    /// Removes an empty directory.
    pub async fn remove_dir(&mut self, path: &str) -> Result<(), FtpError> {
        check_path(self.server(), "rmdir", path)?;
        let cmd = format!("RMD {}", self.abs(path));
        self.ctrl.expect(&cmd, &[250, 200]).await.map(drop)
    }

    /// Renames (moves) `from` to `to`; on the servers we test it replaces an existing `to`.
    pub async fn rename(&mut self, from: &str, to: &str) -> Result<(), FtpError> {
        check_path(self.server(), "rename", from)?;
        check_path(self.server(), "rename", to)?;
        let rnfr = format!("RNFR {}", self.abs(from));
        let rnto = format!("RNTO {}", self.abs(to));
        // Both lines in one write: the server reads and answers them in order, and a rename
        // costs one round trip instead of two (it is done once per uploaded file). If RNFR
        // fails, the server answers the RNTO with 503, which is read and dropped.
        // A reply that fits neither (503 to the RNFR: the RNTO was read first) closes the
        // connection and turns pipelining off (see `pipeline.rs`).
        if !self.pipelines() {
            self.ctrl.expect(&rnfr, &[350]).await?;
            return self.ctrl.expect(&rnto, &[250, 200]).await.map(drop);
        }
        self.send_in_step(&[&rnfr, &rnto]).await?;
        let from_reply = self.read_in_step(&rnfr, Expect::Rnfr).await?;
        let to_reply = self.read_in_step(&rnto, Expect::Rnto).await?;
        if from_reply.code != 350 {
            return Err(FtpError::from_reply(
                self.server(),
                &rnfr,
                from_reply.code,
                &from_reply.text,
            ));
        }
        if to_reply.code == 250 || to_reply.code == 200 {
            Ok(())
        } else {
            Err(FtpError::from_reply(
                self.server(),
                &rnto,
                to_reply.code,
                &to_reply.text,
            ))
        }
    }

    /// The modification time by `MDTM`; `None` when the server does not support it.
    pub async fn mdtm(&mut self, path: &str) -> Result<Option<SystemTime>, FtpError> {
        check_path(self.server(), "mdtm", path)?;
        let cmd = format!("MDTM {}", self.abs(path));
        let r = self.ctrl.cmd(&cmd).await?;
        match r.code {
            213 => Ok(parse_mdtm(r.text.trim())),
            500 | 502 | 504 => Ok(None),
            c => Err(FtpError::from_reply(self.server(), &cmd, c, &r.text)),
        }
    }
}
