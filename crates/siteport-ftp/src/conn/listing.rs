//! Directory listings: `MLSD` where offered, else `LIST -a` (then `LIST`), and once a
//! server has been seen to list identically over the control connection, `STAT -a` (no data
//! connection at all).

use std::time::SystemTime;

use super::pipeline::{Expect, Sent, fits};
use super::{FtpConnection, check_path};
use crate::error::FtpError;
use crate::list::{RemoteEntry, parse_list_line, parse_mlsd_line};

/// A directory listing larger than this is refused (millions of entries in one directory).
const MAX_LISTING: usize = 256 * 1024 * 1024;

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
        if !self.features.mlsd && self.list_all && self.stat_listing == Some(true) {
            return self.list_over_control(&cwd).await;
        }
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
                    self.send_in_step(&[&cwd]).await?;
                    let c = self.read_in_step(&cwd, Expect::Cwd).await?;
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
                    self.send_in_step(&[&cwd, "EPSV"]).await?;
                    let c = self.read_in_step(&cwd, Expect::Cwd).await?;
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
                self.check_stat_listing(&entries).await?;
            }
            entries
        };
        Ok(entries)
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
        let same = stat_entries(reply.code, &reply.text).is_some_and(|mut got| {
            let mut want = listed.to_vec();
            got.sort_by(|a, b| a.name.cmp(&b.name));
            want.sort_by(|a, b| a.name.cmp(&b.name));
            got == want
        });
        tracing::debug!(server = %self.server(), same, "STAT listing compared with LIST");
        self.stat_listing = Some(same);
        Ok(())
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
