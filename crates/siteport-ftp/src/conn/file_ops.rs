//! Operations on remote paths that take one command and no data connection: `MKD`, `DELE`,
//! `RMD`, `RNFR`/`RNTO` (pipelined where the server answers in order), `MDTM`.

use std::time::SystemTime;

use super::pipeline::Expect;
use super::{FtpConnection, check_path};
use crate::error::FtpError;
use crate::list::parse_mdtm;

/// Rename pairs per write in [`FtpConnection::rename_many`], at most, and at most
/// [`RENAME_WINDOW_BYTES`] of command lines (a single pair may be longer). Small on purpose:
/// a write goes out as one TLS record, and pure-ftpd over TLS reads commands into a buffer of
/// about 4 KiB; what is left of a larger record waits inside its TLS library, where its wait
/// for the socket never sees it, so the rest of the window is answered only when more bytes
/// arrive, or never (`tests/rename_many.rs`: 8 KiB windows stalled, 4 KiB ones did not; in
/// the matrix, 11 KiB windows got `550` for renames). Half that limit keeps every window, and
/// so every record, well inside it; the cost is a write per 16 files, not a round trip.
const RENAME_WINDOW: usize = 16;
const RENAME_WINDOW_BYTES: usize = 2048;

/// The error that broke a batch, once more for each pair it took down (the same kind,
/// command and words; `FtpError` is not `Clone` because of its source).
fn copy_error(e: &FtpError) -> FtpError {
    let words = match std::error::Error::source(e) {
        Some(s) => format!("{}: {s}", e.message()),
        None => e.message().to_owned(),
    };
    let mut out = FtpError::new(e.kind(), e.server(), words);
    if let Some(c) = e.command() {
        out = out.with_command(c);
    }
    out
}

impl FtpConnection {
    /// Creates a directory; succeeds if it already exists. The parent must exist.
    pub async fn mkdir(&mut self, path: &str) -> Result<(), FtpError> {
        check_path(self.server(), "mkdir", path)?;
        let dir = self.abs(path);
        let cmd = format!("MKD {dir}");
        let cwd_cmd = format!("CWD {dir}");
        // A server that reads commands in order gets the CWD that tells "already there" from
        // "cannot create" in the same write: one round trip whether the directory exists or
        // not (the site lock makes sure of `.siteport/` on every run). Every path is sent
        // absolute, so the CWD changes nothing that follows.
        let (r, cwd) = if self.pipelines() {
            self.send_in_step(&[&cmd, &cwd_cmd]).await?;
            let r = self.ctrl.read_reply(&cmd).await?;
            let cwd = self.read_in_step(&cwd_cmd, Expect::Cwd).await?;
            (r, Some(cwd))
        } else {
            (self.ctrl.cmd(&cmd).await?, None)
        };
        if r.code == 257 || r.code == 250 {
            return Ok(());
        }
        let err = FtpError::from_reply(self.server(), &cmd, r.code, &r.text);
        if r.code / 100 == 5 {
            let cwd = match cwd {
                Some(c) => c,
                None => self.ctrl.cmd(&cwd_cmd).await?,
            };
            if cwd.code == 250 || cwd.code == 200 {
                return Ok(());
            }
        }
        Err(err)
    }

    /// Creates each directory of `paths` in order, as [`mkdir`](Self::mkdir) does (one that
    /// exists already is not an error; each parent must exist or come earlier in `paths`).
    /// Where the connection pipelines, every `MKD` goes out with its `CWD` in one write: the
    /// whole chain costs one round trip. Every reply is read before the first failure is
    /// returned, so the connection stays in step; a reply that fits neither an `MKD` nor a
    /// `CWD` where one is owed closes the connection and turns pipelining off.
    ///
    /// No `EPSV` rides behind the chain to arm the next transfer's port, though it would save
    /// that transfer a round trip: a server that is not in order after all (libunftp behind
    /// a banner that says vsftpd) may run the `EPSV` first and then hold every later command
    /// until a data connection comes, so the fallback would wait for a timeout instead of
    /// seeing the wrong reply at once.
    pub async fn mkdirs(&mut self, paths: &[&str]) -> Result<(), FtpError> {
        for p in paths {
            check_path(self.server(), "mkdir", p)?;
        }
        if !self.pipelines() {
            for p in paths {
                self.mkdir(p).await?;
            }
            return Ok(());
        }
        let lines: Vec<(String, String)> = paths
            .iter()
            .map(|p| {
                let dir = self.abs(p);
                (format!("MKD {dir}"), format!("CWD {dir}"))
            })
            .collect();
        let mut batch: Vec<&str> = Vec::with_capacity(lines.len() * 2);
        for (mkd, cwd) in &lines {
            batch.push(mkd);
            batch.push(cwd);
        }
        self.send_in_step(&batch).await?;
        let mut first_err = None;
        for (mkd, cwd) in &lines {
            let r = self.read_in_step(mkd, Expect::Mkd).await?;
            let c = self.read_in_step(cwd, Expect::Cwd).await?;
            let made = r.code == 257 || r.code == 250;
            // A refused MKD of a directory that can be entered: it was there already.
            let there = r.code / 100 == 5 && (c.code == 250 || c.code == 200);
            if !made && !there && first_err.is_none() {
                first_err = Some(FtpError::from_reply(self.server(), mkd, r.code, &r.text));
            }
        }
        match first_err {
            Some(e) => Err(e),
            None => Ok(()),
        }
    }

    /// Deletes the file `file`, then removes the directory `dir` (the site lock's owner file
    /// and its directory): the result of each, in order. Where the connection pipelines, both
    /// go out in one write with a `CWD dir` behind them, one round trip for all three: an
    /// in-order server must refuse that `CWD` once its `RMD` succeeded, so a server that ran
    /// the `RMD` before the `DELE` (and failed it, leaving the directory) cannot pass for
    /// one that removed it. A reply that does not fit, or that contradiction, closes the
    /// connection and turns pipelining off (the outer error).
    pub async fn delete_then_rmdir(
        &mut self,
        file: &str,
        dir: &str,
    ) -> Result<(Result<(), FtpError>, Result<(), FtpError>), FtpError> {
        check_path(self.server(), "delete", file)?;
        check_path(self.server(), "rmdir", dir)?;
        if !self.pipelines() {
            let dele = self.delete_file(file).await;
            let rmd = self.remove_dir(dir).await;
            return Ok((dele, rmd));
        }
        let dele = format!("DELE {}", self.abs(file));
        let rmd = format!("RMD {}", self.abs(dir));
        let cwd = format!("CWD {}", self.abs(dir));
        self.send_in_step(&[&dele, &rmd, &cwd]).await?;
        let d = self.read_in_step(&dele, Expect::Done).await?;
        let r = self.read_in_step(&rmd, Expect::Done).await?;
        let c = self.read_in_step(&cwd, Expect::Cwd).await?;
        let removed = r.code == 250 || r.code == 200;
        if removed && (c.code == 250 || c.code == 200) {
            return Err(self.out_of_step(&cwd, &c).await);
        }
        let done = |cmd: &str, code: u16, text: &str| {
            if code == 250 || code == 200 {
                Ok(())
            } else {
                Err(FtpError::from_reply(self.server(), cmd, code, text))
            }
        };
        Ok((done(&dele, d.code, &d.text), done(&rmd, r.code, &r.text)))
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

    /// Renames a batch of `(from, to)` pairs, each as [`rename`](Self::rename) does, one
    /// result per pair in order. Where the connection pipelines, the pairs go out in small
    /// windows ([`RENAME_WINDOW`]), the next window written before the answers to the one
    /// before it are read: the whole batch costs about one round trip, not one per file,
    /// and at most two windows' answers ever wait unread (the server never blocks on a full
    /// reply buffer while this side is still writing). Every reply is read, so the control
    /// connection stays in step; a failed `RNFR` makes its `RNTO` fail harmlessly (`503`).
    /// Once the connection fails, that pair and every later one fail with it.
    pub async fn rename_many(&mut self, pairs: &[(&str, &str)]) -> Vec<Result<(), FtpError>> {
        let mut out: Vec<Option<Result<(), FtpError>>> = pairs.iter().map(|_| None).collect();
        let mut todo = Vec::with_capacity(pairs.len());
        for (i, (from, to)) in pairs.iter().enumerate() {
            let checked = check_path(self.server(), "rename", from)
                .and_then(|()| check_path(self.server(), "rename", to));
            match checked {
                Ok(()) => todo.push(i),
                Err(e) => out[i] = Some(Err(e)),
            }
        }
        if !self.pipelines() {
            for i in todo {
                let (from, to) = pairs[i];
                out[i] = Some(self.rename(from, to).await);
            }
            return out.into_iter().map(|r| r.unwrap_or(Ok(()))).collect();
        }
        let lines: Vec<(usize, String, String)> = todo
            .iter()
            .map(|&i| {
                let (from, to) = pairs[i];
                (
                    i,
                    format!("RNFR {}", self.abs(from)),
                    format!("RNTO {}", self.abs(to)),
                )
            })
            .collect();
        let mut windows: Vec<&[(usize, String, String)]> = Vec::new();
        let (mut start, mut bytes) = (0, 0);
        for (k, (_, rnfr, rnto)) in lines.iter().enumerate() {
            let len = rnfr.len() + rnto.len() + 4;
            if k > start && (k - start >= RENAME_WINDOW || bytes + len > RENAME_WINDOW_BYTES) {
                windows.push(&lines[start..k]);
                (start, bytes) = (k, 0);
            }
            bytes += len;
        }
        if start < lines.len() {
            windows.push(&lines[start..]);
        }
        let mut broken: Option<FtpError> = None;
        if let Some(first) = windows.first()
            && let Err(e) = self.send_renames(first).await
        {
            broken = Some(e);
        }
        for (k, window) in windows.iter().enumerate() {
            if broken.is_none()
                && let Some(next) = windows.get(k + 1)
                && let Err(e) = self.send_renames(next).await
            {
                broken = Some(e);
            }
            for (i, rnfr, rnto) in window.iter() {
                if let Some(e) = &broken {
                    out[*i] = Some(Err(copy_error(e)));
                    continue;
                }
                match self.read_rename_replies(rnfr, rnto).await {
                    Ok(r) => out[*i] = Some(r),
                    Err(e) => {
                        out[*i] = Some(Err(copy_error(&e)));
                        broken = Some(e);
                    }
                }
            }
        }
        out.into_iter().map(|r| r.unwrap_or(Ok(()))).collect()
    }

    /// Writes one window of `RNFR`/`RNTO` pairs in one write.
    async fn send_renames(&mut self, window: &[(usize, String, String)]) -> Result<(), FtpError> {
        let mut cmds: Vec<&str> = Vec::with_capacity(window.len() * 2);
        for (_, rnfr, rnto) in window {
            cmds.push(rnfr);
            cmds.push(rnto);
        }
        self.send_in_step(&cmds).await
    }

    /// Reads the two answers to one pipelined pair. The outer error is a broken connection;
    /// the inner one a refused rename (the connection is still in step).
    pub(super) async fn read_rename_replies(
        &mut self,
        rnfr: &str,
        rnto: &str,
    ) -> Result<Result<(), FtpError>, FtpError> {
        // Checked against what they answer: a server out of step ends the batch (the
        // connection is closed, pipelining turned off, the rest retried by the engine).
        let from_reply = self.read_in_step(rnfr, Expect::Rnfr).await?;
        let to_reply = self.read_in_step(rnto, Expect::Rnto).await?;
        if from_reply.code != 350 {
            return Ok(Err(FtpError::from_reply(
                self.server(),
                rnfr,
                from_reply.code,
                &from_reply.text,
            )));
        }
        if to_reply.code == 250 || to_reply.code == 200 {
            Ok(Ok(()))
        } else {
            Ok(Err(FtpError::from_reply(
                self.server(),
                rnto,
                to_reply.code,
                &to_reply.text,
            )))
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
