//! Pipelining with servers that read commands strictly in order (RFC 959 servers read the
//! next command only once the current one is done): several commands go out in one write,
//! and each reply is checked against the command it must answer.
//!
//! The passive port stays armed: an `EPSV` is sent in the same write as every transfer
//! command, so the server reads it once the transfer has ended and opens the next passive
//! port then. Its `229` is read after the transfer's final reply (`settle`) and kept as the
//! connection's `armed` address; the next transfer sends its command and connects at once,
//! without waiting a round trip for a port.
//!
//! A reply that does not fit the command it should answer (a `229` where a transfer's `150`
//! belongs, a `226` where an `EPSV` reply belongs), a control connection the server closes
//! while pipelined replies are owed, or an armed port that refuses the connection, all mean
//! the server does not work in order after all: the connection is closed, the operation
//! fails as transient (the engine retries it on a fresh connection), and pipelining is
//! turned off for every connection of the run (the options' [`PipelineSwitch`]).
//!
//! [`PipelineSwitch`]: crate::options::PipelineSwitch

use std::net::SocketAddr;

use super::FtpConnection;
use super::data::parse_epsv;
use crate::error::{FtpError, FtpErrorKind};
use crate::stream::Reply;

/// What a reply read in a pipelined sequence answers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Expect {
    /// `EPSV`: `229`.
    Epsv,
    /// A transfer command's first reply: `125`/`150`, or a final one at once.
    TransferStart,
    /// A transfer's final reply: `226`/`250`.
    TransferEnd,
    /// `CWD`: `250`/`200`.
    Cwd,
    /// `STAT` with an argument: `211`–`213`.
    Stat,
    /// `RNFR`: `350`.
    Rnfr,
    /// `RNTO`: `250`/`200`.
    Rnto,
    /// `MFMT`: `213`.
    Mfmt,
    /// `DELE`, `RMD`: `250`/`200`.
    Done,
    /// `MKD`: `257` (or `250`).
    Mkd,
}

/// Whether `code` can answer what `expect` names. Every command may fail (`4xx`/`5xx`), except
/// that `503` (bad sequence) answers no `RNFR`: it is what an `RNTO` read before its `RNFR`
/// gets.
pub(super) fn fits(expect: Expect, code: u16) -> bool {
    let failed = (400..600).contains(&code);
    match expect {
        Expect::Epsv => code == 229 || failed,
        Expect::TransferStart => matches!(code, 125 | 150 | 226 | 250) || failed,
        Expect::TransferEnd => matches!(code, 226 | 250) || failed,
        Expect::Cwd | Expect::Rnto | Expect::Done => matches!(code, 200 | 250) || failed,
        Expect::Stat => (211..=213).contains(&code) || failed,
        Expect::Mfmt => code == 213 || failed,
        Expect::Mkd => matches!(code, 250 | 257) || failed,
        Expect::Rnfr => code == 350 || (failed && code != 503),
    }
}

/// How a transfer command went out (see `start_transfer_at`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Sent {
    /// Not yet: it is sent once the data connection is open.
    No,
    /// In one write behind the `EPSV` that gave the address.
    AfterEpsv,
    /// To the armed address, with nothing waited for.
    Armed,
}

impl FtpConnection {
    /// Writes `commands` in one write. A failed write while pipelining counts as the server
    /// closing on pipelined commands.
    pub(super) async fn send_in_step(&mut self, commands: &[&str]) -> Result<(), FtpError> {
        let res = self.ctrl.send_all(commands).await;
        if res.is_err() && !self.ctrl.is_open() {
            self.stop_pipelining("closed the control connection on pipelined commands");
        }
        res
    }

    /// Reads the reply to `command`, sent pipelined, and checks that it fits (see [`fits`]).
    /// Out of step, or the connection lost while a reply was owed: the connection is
    /// closed, pipelining turned off for the run, and the error is transient.
    pub(super) async fn read_in_step(
        &mut self,
        command: &str,
        expect: Expect,
    ) -> Result<Reply, FtpError> {
        match self.ctrl.read_reply(command).await {
            Ok(r) if fits(expect, r.code) => Ok(r),
            Ok(r) => Err(self.out_of_step(command, &r).await),
            Err(e) => {
                if !self.ctrl.is_open() {
                    self.stop_pipelining(
                        "closed the control connection (or went silent) while pipelined replies were owed",
                    );
                }
                Err(e)
            }
        }
    }

    /// Reads a transfer reply: checked when an `EPSV` rides behind the command.
    pub(super) async fn read_transfer_reply(
        &mut self,
        command: &str,
        expect: Expect,
    ) -> Result<Reply, FtpError> {
        if self.owe_epsv {
            self.read_in_step(command, expect).await
        } else {
            self.ctrl.read_reply(command).await
        }
    }

    /// After a transfer's final reply: reads the replies of what was sent behind it (the
    /// queued command, then the `EPSV`), and keeps the `EPSV`'s address armed for the next
    /// transfer (none when the server refused it: the next transfer asks again).
    pub(super) async fn settle(&mut self) -> Result<(), FtpError> {
        if let Some(cmd) = self.owe_after.take() {
            let r = self.read_in_step(&cmd, Expect::Mfmt).await?;
            self.after_reply = Some(r.code);
        }
        if !std::mem::take(&mut self.owe_epsv) {
            return Ok(());
        }
        let r = self.read_in_step("EPSV", Expect::Epsv).await?;
        self.armed = (r.code == 229)
            .then(|| parse_epsv(&r.text))
            .flatten()
            .map(|port| SocketAddr::new(self.peer, port));
        Ok(())
    }

    /// A transfer that ends without its final reply read (a broken data connection, a
    /// timeout): the control connection is out of step for good when an `EPSV` reply is owed
    /// behind it, so it is closed (the engine reconnects after any such failure).
    pub(super) async fn abandon(&mut self) {
        let owed_after = self.owe_after.take().is_some();
        if std::mem::take(&mut self.owe_epsv) | owed_after {
            self.armed = None;
            self.ctrl.close().await;
        }
    }

    /// Sends `command` (a transfer) pipelined, with the queued command (`after`) and an
    /// `EPSV` behind it: to the armed address
    /// when there is one, else behind an `EPSV` of its own whose reply is read here. The data
    /// address and how the command went out; `None` when the server does not do `EPSV` after
    /// all (nothing was transferred, and `PASV` is used from now on).
    pub(super) async fn send_pipelined(
        &mut self,
        command: &str,
    ) -> Result<Option<(SocketAddr, Sent)>, FtpError> {
        let after = self.after.take();
        let mut batch = vec![command];
        batch.extend(after.as_deref());
        if self.arm_behind {
            batch.push("EPSV");
        }
        if let Some(addr) = self.armed.take() {
            self.send_in_step(&batch).await?;
            self.owe_epsv = self.arm_behind;
            self.owe_after = after;
            return Ok(Some((addr, Sent::Armed)));
        }
        batch.insert(0, "EPSV");
        self.send_in_step(&batch).await?;
        self.owe_epsv = self.arm_behind;
        self.owe_after = after;
        let r = self.read_in_step("EPSV", Expect::Epsv).await?;
        let refused = match self.epsv_reply(r) {
            Ok(Some(addr)) => return Ok(Some((addr, Sent::AfterEpsv))),
            Ok(None) => None,
            Err(e) => Some(e),
        };
        // No passive port: the command fails for want of a data connection. Its reply and
        // the second EPSV's are read, so the connection stays in step.
        let c = self.read_in_step(command, Expect::TransferEnd).await?;
        if c.code < 400 {
            return Err(self.out_of_step(command, &c).await);
        }
        self.settle().await?;
        self.armed = None;
        // The queued command ran behind a STOR that stored nothing: done again after the
        // upload that follows.
        self.after_reply = None;
        match refused {
            Some(e) => Err(e),
            None => Ok(None),
        }
    }

    /// The armed address refused the data connection. A server that refused the command at
    /// once may have closed the port before the connection reached it: then its reply (and
    /// the EPSV's behind it) arrive at once, and the connection is in step. Otherwise the
    /// server closed the port it had opened for us, and is out of step.
    pub(super) async fn armed_failed(
        &mut self,
        command: &str,
        addr: SocketAddr,
        e: std::io::Error,
    ) -> FtpError {
        let wait = std::time::Duration::from_secs(2);
        let r = tokio::time::timeout(wait, self.read_in_step(command, Expect::TransferStart)).await;
        match r {
            Ok(Ok(r)) if r.code >= 400 => match self.settle().await {
                Ok(()) => FtpError::from_reply(self.server(), command, r.code, &r.text),
                Err(e) => e,
            },
            Ok(Err(e)) => e,
            _ => self.armed_refused(command, addr, e).await,
        }
    }

    /// The armed address refused the data connection and the server did not refuse the
    /// command: it closed the passive port it had opened for us, so its replies cannot be
    /// trusted to be in step.
    pub(super) async fn armed_refused(
        &mut self,
        command: &str,
        addr: SocketAddr,
        e: std::io::Error,
    ) -> FtpError {
        self.armed = None;
        self.owe_epsv = false;
        self.ctrl.close().await;
        self.stop_pipelining(
            "refused the data connection to the passive port it had opened behind a transfer",
        );
        FtpError::new(
            FtpErrorKind::Transient,
            self.server(),
            format!(
                "the data connection to {addr}, opened ahead by a pipelined EPSV, was refused; pipelining is off for this server from now on"
            ),
        )
        .with_command(command)
        .with_source(e)
    }

    /// A pipelined reply that does not fit: closes the connection, turns pipelining off for
    /// the run, and returns the transient error that makes the engine retry on a fresh
    /// connection.
    pub(super) async fn out_of_step(&mut self, command: &str, r: &Reply) -> FtpError {
        self.armed = None;
        self.owe_epsv = false;
        self.ctrl.close().await;
        self.stop_pipelining(&format!(
            "answered {} to a pipelined {}, out of step",
            r.code,
            command.split_whitespace().next().unwrap_or(command)
        ));
        FtpError::new(
            FtpErrorKind::Transient,
            self.server(),
            format!(
                "the server answered pipelined commands out of order ({} {:?}); pipelining is off for this server from now on",
                r.code,
                r.text.lines().next().unwrap_or("").chars().take(80).collect::<String>()
            ),
        )
        .with_command(command)
    }

    /// Turns pipelining off for this connection and every other one of the run; warns once.
    pub(super) fn stop_pipelining(&mut self, why: &str) {
        if !self.pipelining {
            return;
        }
        self.pipelining = false;
        if self.switch.turn_off() {
            tracing::warn!(server = %self.server(), "the server {why}: sending one command at a time to it from now on");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn replies_fit_their_commands() {
        assert!(fits(Expect::Epsv, 229) && fits(Expect::Epsv, 500) && fits(Expect::Epsv, 425));
        for c in [150, 226, 213, 350, 257, 200] {
            assert!(!fits(Expect::Epsv, c), "{c}");
        }
        assert!(fits(Expect::TransferStart, 150) && fits(Expect::TransferStart, 550));
        assert!(!fits(Expect::TransferStart, 229) && !fits(Expect::TransferStart, 213));
        assert!(fits(Expect::TransferEnd, 226) && fits(Expect::TransferEnd, 426));
        assert!(!fits(Expect::TransferEnd, 150) && !fits(Expect::TransferEnd, 229));
        assert!(fits(Expect::Cwd, 250) && !fits(Expect::Cwd, 229) && !fits(Expect::Cwd, 213));
        assert!(fits(Expect::Stat, 213) && !fits(Expect::Stat, 250));
        assert!(fits(Expect::Rnfr, 350) && fits(Expect::Rnfr, 550));
        assert!(!fits(Expect::Rnfr, 503) && !fits(Expect::Rnfr, 250));
        assert!(fits(Expect::Rnto, 503) && !fits(Expect::Rnto, 350));
        assert!(fits(Expect::Done, 250) && fits(Expect::Done, 550));
        assert!(fits(Expect::Mkd, 257) && fits(Expect::Mkd, 550) && !fits(Expect::Mkd, 229));
        assert!(!fits(Expect::Done, 350) && !fits(Expect::Done, 229) && !fits(Expect::Done, 226));
    }
}
