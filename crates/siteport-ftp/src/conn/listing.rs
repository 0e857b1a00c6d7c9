//! Directory listings: `MLSD` where offered, else `LIST -a` (then `LIST`), and once a
//! server has been seen to list identically over the control connection, `STAT -a` (no data
//! connection at all).

use std::time::SystemTime;

use super::pipeline::{Expect, Sent, fits};
use super::{FtpConnection, check_path};
use crate::error::{FtpError, FtpErrorKind};
use crate::list::{RemoteEntry, parse_list_line, parse_mlsd_line};

/// A directory listing larger than this is refused (millions of entries in one directory).
const MAX_LISTING: usize = 256 * 1024 * 1024;

/// The most command bytes one write of batched listings carries (see `list_dirs`).
const BATCH_BYTES: usize = 2048;

/// A directory listing over the control connection (RFC 959 `STAT` with an argument).
const STAT_LIST: &str = "STAT -a";

/// The entries of a `STAT` listing reply (`211`/`212`/`213`): the lines between the first
/// ("Status follows") and the last ("End of status"). `None` for any other reply.
fn stat_entries(code: u16, text: &str) -> Option<Vec<RemoteEntry>> {
    if !(211..=213).contains(&code) {
        return None;
    }
    let lines: Vec<&str> = text.split('\n').collect();
    let now = SystemTime::now();
    Some(match lines.len() {
        0..=2 => Vec::new(),
        n => lines[1..n - 1]
            .iter()
            .filter_map(|l| parse_list_line(l, now))
            .collect(),
    })
}

impl FtpConnection {
    /// Reads a whole data connection into memory (listings).
    async fn read_all(&mut self, command: &str) -> Result<Vec<u8>, FtpError> {
        self.read_all_limited(command, MAX_LISTING, "directory listing")
            .await
    }

    /// Lists a directory: MLSD when the server offers it, else `LIST -a` (then plain `LIST`)
    /// parsed as Unix or DOS format. Never includes `.` and `..`.
    pub async fn list_dir(&mut self, path: &str) -> Result<Vec<RemoteEntry>, FtpError> {
        check_path(self.server(), "list", path)?;
        let dir = self.abs(path);
        // CWD, then list without an argument: a name starting with '-' would otherwise be read
        // as `ls` options by vsftpd and pure-ftpd.
        let cwd = format!("CWD {dir}");
        if self.stat_listing.is_none() {
            // Another connection of these options may have judged it since this one logged in.
            self.stat_listing = self.listing.get();
        }
        if !self.features.mlsd && self.list_all && self.stat_listing == Some(true) {
            return self.list_over_control(&cwd).await;
        }
        // Not judged yet (the run's first listing): the `STAT -a` it is judged by rides
        // with the CWD, so the comparison costs no round trip of its own.
        let early_stat = !self.features.mlsd && self.list_all && self.stat_listing.is_none();
        let mut stat_reply = None;
        // What lists the directory once we are in it.
        let list_cmd = if self.features.mlsd {
            "MLSD"
        } else if self.list_all {
            "LIST -a"
        } else {
            "LIST"
        };
        let addr = if self.epsv && self.pipelines() {
            match self.armed.take() {
                Some(addr) => {
                    // A passive port is armed (see `pipeline.rs`): CWD, then the listing with
                    // the next EPSV behind it, and the data connection opened at once. Never
                    // the listing in the same write as the CWD: after a failed CWD it would
                    // list the previous directory, which may be gone (pure-ftpd then ends
                    // the session with 421).
                    // Checked as a pipelined reply: a server out of step would answer it
                    // with what it owes from before (a 229).
                    if early_stat {
                        self.send_in_step(&[&cwd, STAT_LIST]).await?;
                    } else {
                        self.send_in_step(&[&cwd]).await?;
                    }
                    let c = self.read_in_step(&cwd, Expect::Cwd).await?;
                    if early_stat {
                        // Read even when CWD failed: it is owed.
                        stat_reply = Some(self.read_stat_in_step().await?);
                    }
                    if c.code != 250 && c.code != 200 {
                        return Err(FtpError::from_reply(self.server(), &cwd, c.code, &c.text));
                    }
                    self.send_in_step(&[list_cmd, "EPSV"]).await?;
                    self.owe_epsv = true;
                    (addr, Sent::Armed)
                }
                None => {
                    // CWD and EPSV in one write, one round trip instead of two (a no-change
                    // run is mostly listings). A failed CWD leaves an unused passive port,
                    // which the next EPSV replaces.
                    if early_stat {
                        self.send_in_step(&[&cwd, STAT_LIST, "EPSV"]).await?;
                    } else {
                        self.send_in_step(&[&cwd, "EPSV"]).await?;
                    }
                    let c = self.read_in_step(&cwd, Expect::Cwd).await?;
                    if early_stat {
                        stat_reply = Some(self.read_stat_in_step().await?);
                    }
                    let e = self.read_in_step("EPSV", Expect::Epsv).await?;
                    if c.code != 250 && c.code != 200 {
                        return Err(FtpError::from_reply(self.server(), &cwd, c.code, &c.text));
                    }
                    match self.epsv_reply(e)? {
                        Some(a) => (a, Sent::No),
                        None => (self.pasv_addr().await?, Sent::No),
                    }
                }
            }
        } else {
            self.ctrl.expect(&cwd, &[250, 200]).await?;
            (self.passive_addr().await?, Sent::No)
        };
        let entries = if self.features.mlsd {
            let raw = self
                .read_all_at(list_cmd, Some(addr), MAX_LISTING, "directory listing")
                .await?;
            String::from_utf8_lossy(&raw)
                .split('\n')
                .filter_map(parse_mlsd_line)
                .collect()
        } else {
            let raw = if self.list_all {
                match self
                    .read_all_at(list_cmd, Some(addr), MAX_LISTING, "directory listing")
                    .await
                {
                    Ok(raw) => raw,
                    Err(e) if e.code().is_some_and(|c| c / 100 == 5) => {
                        self.list_all = false;
                        self.read_all("LIST").await?
                    }
                    Err(e) => return Err(e),
                }
            } else {
                self.read_all_at(list_cmd, Some(addr), MAX_LISTING, "directory listing")
                    .await?
            };
            let now = SystemTime::now();
            let entries: Vec<RemoteEntry> = String::from_utf8_lossy(&raw)
                .split('\n')
                .filter_map(|l| parse_list_line(l, now))
                .collect();
            if self.stat_listing.is_none() && self.list_all && !entries.is_empty() {
                match stat_reply {
                    Some(r) => self.judge_stat_listing(&entries, &r),
                    None => self.check_stat_listing(&entries).await?,
                }
            }
            entries
        };
        Ok(entries)
    }

    /// Lists several directories, one result per path in order, in as few round trips as
    /// the server allows. Once this connection lists over the control connection
    /// (`STAT -a`) with a server that works in order, every `CWD` + `STAT -a` pair goes out
    /// in one write and the replies are read back in order: a level of 25 directories costs
    /// one round trip instead of 25 (a no-change run at a distance is mostly listings).
    /// Otherwise (MLSD, LIST, a server that may answer out of order, the first listing of a
    /// connection) one by one. After the connection broke, the paths not yet listed get a
    /// transient error each.
    pub async fn list_dirs(&mut self, paths: &[&str]) -> Vec<Result<Vec<RemoteEntry>, FtpError>> {
        let mut out = Vec::with_capacity(paths.len());
        let mut rest = paths;
        while let Some((first, tail)) = rest.split_first() {
            if self.lists_in_batches() || !self.is_open() {
                break;
            }
            out.push(self.list_dir(first).await);
            rest = tail;
        }
        if rest.is_empty() {
            return out;
        }
        // Windows of at most BATCH_BYTES of commands: pure-ftpd over TLS was seen to stall
        // on one TLS record of 8 KiB of pipelined commands (tests/rename_many.rs).
        while !rest.is_empty() {
            let mut bytes = 0;
            let n = rest
                .iter()
                .take_while(|p| {
                    bytes += p.len() + 24;
                    bytes <= BATCH_BYTES
                })
                .count()
                .max(1);
            let (window, tail) = rest.split_at(n);
            self.list_window(window, &mut out).await;
            rest = tail;
        }
        out
    }

    /// One window of [`list_dirs`](Self::list_dirs): every `CWD` + `STAT -a` pair in one
    /// write, the replies read back in order into `out`.
    async fn list_window(
        &mut self,
        rest: &[&str],
        out: &mut Vec<Result<Vec<RemoteEntry>, FtpError>>,
    ) {
        if !self.is_open() {
            out.extend(rest.iter().map(|p| Err(self.lost_before(p))));
            return;
        }
        let mut cwds = Vec::with_capacity(rest.len());
        for p in rest {
            match check_path(self.server(), "list", p) {
                Ok(()) => cwds.push(Ok(format!("CWD {}", self.abs(p)))),
                Err(e) => cwds.push(Err(e)),
            }
        }
        let mut lines: Vec<&str> = Vec::with_capacity(2 * cwds.len());
        for cwd in cwds.iter().flatten() {
            lines.push(cwd);
            lines.push(STAT_LIST);
        }
        if let Err(e) = self.send_in_step(&lines).await {
            out.push(Err(e));
            out.extend(rest[1..].iter().map(|p| Err(self.lost_before(p))));
            return;
        }
        for (cwd, path) in cwds.into_iter().zip(rest) {
            let cwd = match cwd {
                Ok(c) => c,
                Err(e) => {
                    out.push(Err(e));
                    continue;
                }
            };
            if !self.is_open() {
                out.push(Err(self.lost_before(path)));
                continue;
            }
            // Both replies are read whatever the first says: each is owed, and the next
            // pair's replies come after them.
            let c = match self.read_in_step(&cwd, Expect::Cwd).await {
                Ok(c) => c,
                Err(e) => {
                    out.push(Err(e));
                    continue;
                }
            };
            let s = match self.ctrl.read_reply_max(STAT_LIST, MAX_LISTING).await {
                Ok(s) if fits(Expect::Stat, s.code) => s,
                Ok(s) => {
                    out.push(Err(self.out_of_step(STAT_LIST, &s).await));
                    continue;
                }
                Err(e) => {
                    out.push(Err(e));
                    continue;
                }
            };
            out.push(if c.code != 250 && c.code != 200 {
                Err(FtpError::from_reply(self.server(), &cwd, c.code, &c.text))
            } else {
                stat_entries(s.code, &s.text)
                    .ok_or_else(|| FtpError::from_reply(self.server(), STAT_LIST, s.code, &s.text))
            });
        }
    }

    /// Whether [`list_dirs`](Self::list_dirs) sends a batch's commands in one write.
    fn lists_in_batches(&self) -> bool {
        self.pipelines() && !self.features.mlsd && self.list_all && self.stat_listing == Some(true)
    }

    /// The error of a batched listing that was not tried because the connection broke before.
    fn lost_before(&self, path: &str) -> FtpError {
        FtpError::new(
            FtpErrorKind::Transient,
            self.server(),
            format!("listing {path}: the connection broke during a batch of listings"),
        )
    }

    /// Whether this connection lists over the control connection (`STAT -a`) rather than
    /// opening a data connection per directory; `None` until it has been checked.
    pub fn lists_over_control(&self) -> Option<bool> {
        self.stat_listing
    }

    /// Compares `STAT -a` in the current directory with what `LIST -a` just gave there, and
    /// uses it from now on only when both agree: a server that answers `STAT` with its own
    /// status, or lists differently, must never make a directory look empty.
    async fn check_stat_listing(&mut self, listed: &[RemoteEntry]) -> Result<(), FtpError> {
        self.ctrl.send(STAT_LIST).await?;
        let reply = self.ctrl.read_reply_max(STAT_LIST, MAX_LISTING).await?;
        self.judge_stat_listing(listed, &reply);
        Ok(())
    }

    /// The `STAT -a` reply of a directory against its `LIST -a` (see `check_stat_listing`).
    fn judge_stat_listing(&mut self, listed: &[RemoteEntry], reply: &crate::stream::Reply) {
        let same = stat_entries(reply.code, &reply.text).is_some_and(|mut got| {
            let mut want = listed.to_vec();
            got.sort_by(|a, b| a.name.cmp(&b.name));
            want.sort_by(|a, b| a.name.cmp(&b.name));
            got == want
        });
        tracing::debug!(server = %self.server(), same, "STAT listing compared with LIST");
        self.stat_listing = Some(same);
        self.listing.set(same);
    }

    /// A pipelined `STAT -a` reply: a listing (`211`-`213`) or a refusal; anything else
    /// answers another command (out of step).
    async fn read_stat_in_step(&mut self) -> Result<crate::stream::Reply, FtpError> {
        let r = self.ctrl.read_reply_max(STAT_LIST, MAX_LISTING).await?;
        if !fits(Expect::Stat, r.code) {
            return Err(self.out_of_step(STAT_LIST, &r).await);
        }
        Ok(r)
    }

    /// CWD and `STAT -a` in one round trip (when the server works in order); the listing
    /// comes back as the reply, with no data connection, PASV or TLS handshake.
    async fn list_over_control(&mut self, cwd: &str) -> Result<Vec<RemoteEntry>, FtpError> {
        let (c, s) = if self.pipelines() {
            self.send_in_step(&[cwd, STAT_LIST]).await?;
            let c = self.read_in_step(cwd, Expect::Cwd).await?;
            // Read even when CWD failed: the STAT reply (of the previous directory) is
            // owed and would otherwise answer the next command.
            let s = self.ctrl.read_reply_max(STAT_LIST, MAX_LISTING).await?;
            if !fits(Expect::Stat, s.code) {
                return Err(self.out_of_step(STAT_LIST, &s).await);
            }
            (c, Some(s))
        } else {
            (self.ctrl.cmd(cwd).await?, None)
        };
        if c.code != 250 && c.code != 200 {
            return Err(FtpError::from_reply(self.server(), cwd, c.code, &c.text));
        }
        let s = match s {
            Some(s) => s,
            None => {
                self.ctrl.send(STAT_LIST).await?;
                self.ctrl.read_reply_max(STAT_LIST, MAX_LISTING).await?
            }
        };
        stat_entries(s.code, &s.text)
            .ok_or_else(|| FtpError::from_reply(self.server(), STAT_LIST, s.code, &s.text))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::EntryKind;

    #[test]
    fn stat_listing_replies() {
        // vsftpd: the lines between "Status follows" and "End of status".
        let text = "Status follows:\n\
            drwxr-xr-x    2 1000     1000         4096 Nov 29 05:00 sub dir\n\
            -rw-r--r--    1 1000     1000           17 Nov 29 05:00 213 file.txt\n\
            End of status";
        let got = stat_entries(213, text).unwrap();
        let names: Vec<_> = got
            .iter()
            .map(|e| (e.name.as_str(), e.kind, e.size))
            .collect();
        assert_eq!(
            names,
            [
                ("sub dir", EntryKind::Dir, 4096),
                ("213 file.txt", EntryKind::File, 17)
            ]
        );
        assert_eq!(
            stat_entries(213, "Status follows:\nEnd of status"),
            Some(vec![])
        );
        // A server that answers with its own status lists nothing, so the comparison with
        // LIST fails and STAT is never used for listings on that connection.
        let status = "FTP server status:\n Connected to 127.0.0.1\n Logged in as u\nEnd of status";
        assert_eq!(stat_entries(211, status), Some(vec![]));
        // Refused or unknown: not a listing at all.
        assert_eq!(stat_entries(500, "Unknown command"), None);
        assert_eq!(stat_entries(200, "-rw-r--r-- 1 u g 1 Nov 29 05:00 x"), None);
    }
}
