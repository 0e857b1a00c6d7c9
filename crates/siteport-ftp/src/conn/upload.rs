//! Uploads: streamed from a local file (read on the sending task for plain connections, read
//! ahead on the blocking pool under TLS), or from memory (small plain ones sent without
//! waiting for `150`), and the atomic variants that upload to a temp name and rename.

use std::io;
use std::path::Path;
use std::time::{Duration, SystemTime};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use super::pipeline::{Expect, Sent};
use super::{FtpConnection, check_path};
use crate::error::{FtpError, FtpErrorKind};
use crate::list::format_mdtm;

/// Chunk size of an upload from a file: few blocking-pool hand-offs per file (4,096 for 1 GiB).
const READ_CHUNK: usize = 256 * 1024;

/// Chunks [`read_ahead`] may hold ready. With the one being filled and the one being sent,
/// at most six buffers ever exist for an upload (a new one is made only when none is given
/// back): about 1.5 MiB.
const READ_AHEAD: usize = 4;

/// A local file read chunk by chunk for an upload, each chunk shown to the observer.
struct ChunkReader {
    file: std::fs::File,
    observe: Option<ReadObserver>,
    ended: bool,
}

impl ChunkReader {
    fn new(file: std::fs::File, observe: Option<ReadObserver>) -> Self {
        Self {
            file,
            observe,
            ended: false,
        }
    }

    /// The next chunk, read into `buf` (a used chunk, or empty), and empty at the end of the
    /// file. Chunks are read whole (a short read is not the end of a file), so the last one is
    /// the only short one. One `read` per chunk: `read_to_end` into spare capacity avoids
    /// zeroing but starts at 8 KiB a call and doubles, six system calls a chunk. Only a new
    /// buffer is zeroed (a handful per file); a reused one is already initialised.
    fn next(&mut self, mut buf: Vec<u8>) -> io::Result<Vec<u8>> {
        use std::io::Read;
        if self.ended {
            buf.clear();
            return Ok(buf);
        }
        buf.resize(READ_CHUNK, 0);
        let mut filled = 0;
        while filled < READ_CHUNK {
            match self.file.read(&mut buf[filled..]) {
                Ok(0) => break,
                Ok(n) => filled += n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
        }
        buf.truncate(filled);
        self.ended = filled < READ_CHUNK;
        if let Some(f) = self.observe.as_mut() {
            f(&buf);
        }
        Ok(buf)
    }
}

/// Reads on the blocking pool ahead of the network, so that disk reads overlap socket writes
/// instead of alternating with them. Sends chunks up to and including the empty one at the
/// end of the file (the channel closing without it means the reader died); stops at the first
/// error, or early when the receiver is dropped. Chunks given back on the second channel are
/// filled again: a fresh 256 KiB buffer per chunk costs a page fault per 4 KiB sent.
fn read_ahead(
    mut reader: ChunkReader,
) -> (
    tokio::sync::mpsc::Receiver<io::Result<Vec<u8>>>,
    std::sync::mpsc::Sender<Vec<u8>>,
) {
    let (tx, rx) = tokio::sync::mpsc::channel(READ_AHEAD);
    let (give_back, spare) = std::sync::mpsc::channel::<Vec<u8>>();
    tokio::task::spawn_blocking(move || {
        loop {
            let msg = reader.next(spare.try_recv().unwrap_or_default());
            let end = !matches!(&msg, Ok(b) if !b.is_empty());
            if tx.blocking_send(msg).is_err() || end {
                return;
            }
        }
    });
    (rx, give_back)
}

/// Where an upload's chunks come from.
enum Chunks {
    /// Read ahead on the blocking pool ([`read_ahead`]); sent buffers go back to it.
    Ahead(
        tokio::sync::mpsc::Receiver<io::Result<Vec<u8>>>,
        std::sync::mpsc::Sender<Vec<u8>>,
    ),
    /// Read on the sending task itself, between sends: plain connections (see `put`).
    Inline(ChunkReader),
}

impl Chunks {
    /// The next chunk, empty at the end of the file. `used` is the chunk just sent, to be
    /// filled again.
    async fn next(&mut self, used: Vec<u8>) -> io::Result<Vec<u8>> {
        match self {
            Chunks::Ahead(chunks, give_back) => {
                if used.capacity() > 0 {
                    let _ = give_back.send(used);
                }
                chunks.recv().await.unwrap_or_else(|| {
                    Err(io::Error::other(
                        "the local file reader ended before the end",
                    ))
                })
            }
            Chunks::Inline(reader) => reader.next(used),
        }
    }
}

/// Eight random hex digits for one connection's upload temp names.
pub(super) fn tmp_tag() -> String {
    use std::hash::{BuildHasher, Hasher};
    // RandomState is seeded from the OS and differs on every call: enough to keep two
    // connections (or two runs) off each other's temp files, with no extra dependency.
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u32(std::process::id());
    format!("{:08x}", h.finish() as u32)
}

/// Largest upload sent without waiting for `150` (see `put_eager`): well inside the receive
/// buffer the kernel gives a connection the server has not accepted yet.
const EAGER_MAX: usize = 64 * 1024;

/// Called with every chunk an upload reads from its local file, in order, on the thread
/// that reads it: lets a caller hash what is sent in the same pass as sending it.
pub type ReadObserver = Box<dyn FnMut(&[u8]) + Send>;

/// Told how many more bytes a transfer has moved, each time it moves some: after each chunk
/// an upload hands to the data connection, after each chunk a download writes to its file.
/// For a live progress display; called on the transfer's task, so it must be cheap (an
/// atomic add), and a failed transfer may have reported bytes it then did not complete.
pub type OnBytes<'a> = &'a (dyn Fn(u64) + Sync);

/// What an upload sends.
enum Payload<'a> {
    /// A local file already open (its path is for messages), streamed from its current
    /// offset and shown to the observer, if any; the bytes sent are told to the counter.
    File(
        std::fs::File,
        &'a Path,
        Option<ReadObserver>,
        Option<OnBytes<'a>>,
    ),
    /// Contents already in memory.
    Bytes(&'a [u8]),
}

impl FtpConnection {
    /// Uploads `local` to `remote_path` (streaming; memory stays flat). Returns the bytes sent.
    pub async fn put_file(&mut self, local: &Path, remote_path: &str) -> Result<u64, FtpError> {
        let f = self.open_local(local)?;
        self.put(Payload::File(f, local, None, None), remote_path)
            .await
    }

    /// Opens a local file to upload, once: from then on the handle is read, never the name.
    fn open_local(&self, local: &Path) -> Result<std::fs::File, FtpError> {
        std::fs::File::open(local).map_err(|e| {
            FtpError::new(
                FtpErrorKind::LocalIo,
                self.server(),
                format!("cannot read local file {}", local.display()),
            )
            .with_source(e)
        })
    }

    /// Uploads `contents` (a small file already read into memory) to `remote_path`. Saves the
    /// blocking-pool round trips of streaming from disk, which cost more than the bytes for
    /// the small files a website is mostly made of. Returns the bytes sent.
    pub async fn put_bytes(&mut self, contents: &[u8], remote_path: &str) -> Result<u64, FtpError> {
        self.put(Payload::Bytes(contents), remote_path).await
    }

    async fn put(&mut self, payload: Payload<'_>, remote_path: &str) -> Result<u64, FtpError> {
        check_path(self.server(), "upload", remote_path)?;
        let (file, mut memory, on_bytes) = match payload {
            Payload::File(f, local, observe, on_bytes) => {
                (Some((local, f, observe)), None, on_bytes)
            }
            Payload::Bytes(b) => (None, Some(b), None),
        };
        let command = format!("STOR {}", self.abs(remote_path));
        if let Some(b) = memory
            && b.len() <= EAGER_MAX
            && self.pipelines()
            && self.epsv
            && self.tls.is_none()
            && let Some(sent) = self.put_eager(b, &command).await?
        {
            return Ok(sent);
        }
        let Some(mut data) = self.start_transfer(&command).await? else {
            return Ok(0);
        };
        let timeout = self.ctrl.timeout;
        let mut sent = 0u64;
        // Plain: read (and hash) each chunk on this task between sends. Sending it is one copy
        // into the socket, cheaper than handing chunks between threads, and the chunk is still
        // in this core's cache when it is sent (1 GiB to vsftpd, 9 alternating rounds: 803 ms
        // against 881 ms read ahead, lftp 843). Sequential reads are prefetched by the kernel,
        // so the disk still overlaps the network; each read blocks no longer than a small
        // file's whole read does in the engine. TLS: encrypting is a second stage as costly
        // as hashing, and the reader on the blocking pool runs beside it.
        let inline = !data.is_tls();
        let mut reader = file.map(|(local, f, observe)| {
            let reader = ChunkReader::new(f, observe);
            let chunks = if inline {
                Chunks::Inline(reader)
            } else {
                let (chunks, give_back) = read_ahead(reader);
                Chunks::Ahead(chunks, give_back)
            };
            (local, chunks)
        });
        let mut chunk = Vec::new();
        loop {
            let buf: &[u8] = match (&mut reader, memory.take()) {
                (_, Some(b)) => b,
                (Some((local, r)), None) => match r.next(std::mem::take(&mut chunk)).await {
                    Ok(c) => {
                        chunk = c;
                        &chunk
                    }
                    Err(e) => {
                        // The server would keep a truncated file: drop the data connection
                        // without a clean close, so it sees an aborted transfer.
                        drop(data);
                        if self
                            .read_transfer_reply(&command, Expect::TransferEnd)
                            .await
                            .is_ok()
                        {
                            let _ = self.settle().await;
                        }
                        self.abandon().await;
                        return Err(FtpError::new(
                            FtpErrorKind::LocalIo,
                            self.server(),
                            format!("reading local file {} failed", local.display()),
                        )
                        .with_source(e));
                    }
                },
                (None, None) => &[],
            };
            if buf.is_empty() {
                break;
            }
            let n = buf.len();
            crate::rate::take(n).await;
            match tokio::time::timeout(timeout, data.write_all(buf)).await {
                Ok(Ok(())) => {}
                Ok(Err(e)) => {
                    drop(data);
                    return Err(self.reply_or_data_err(&command, e).await);
                }
                Err(_) => return Err(self.transfer_timed_out(&command).await),
            }
            sent += n as u64;
            if let Some(f) = on_bytes {
                f(n as u64);
            }
        }
        // close_notify, then FIN; then wait for the server to close its side so that nothing is
        // reset under it.
        match tokio::time::timeout(timeout, data.shutdown()).await {
            Ok(Ok(())) => {}
            Ok(Err(e)) => {
                drop(data);
                return Err(self.reply_or_data_err(&command, e).await);
            }
            Err(_) => return Err(self.transfer_timed_out(&command).await),
        }
        self.send_rename_behind(&command).await;
        let mut sink = [0u8; 512];
        let _ = tokio::time::timeout(timeout, async {
            while let Ok(n) = data.read(&mut sink).await {
                if n == 0 {
                    break;
                }
            }
        })
        .await;
        drop(data);
        self.finish_transfer(&command).await?;
        Ok(sent)
    }

    /// A small plain upload without waiting on the server between steps: STOR (with the
    /// EPSV that arms the next transfer's port behind it) sent to the passive port armed by
    /// the previous transfer, or behind an EPSV of its own; then the bytes and the end of the
    /// data connection, then `150` and `226` read back (see `pipeline.rs`). At most
    /// [`EAGER_MAX`] bytes, which the kernel buffers whole even if the server refuses the STOR
    /// and never accepts the data connection (then its reply says why).
    /// `Ok(None)`: the server does not do EPSV after all; nothing was stored.
    async fn put_eager(&mut self, contents: &[u8], command: &str) -> Result<Option<u64>, FtpError> {
        // Before the STOR: the server is not kept waiting for the data while the budget fills.
        crate::rate::take(contents.len()).await;
        let Some((addr, how)) = self.send_pipelined(command).await? else {
            // No EPSV after all: the STOR failed for want of a data connection; the caller
            // goes the ordinary way, with PASV from now on (`epsv` is off).
            return Ok(None);
        };
        let timeout = self.ctrl.timeout;
        let server = self.server().to_string();
        let connected = tokio::time::timeout(timeout, TcpStream::connect(addr)).await;
        let sent = match connected {
            Ok(Ok(mut tcp)) => {
                tokio::time::timeout(timeout, async {
                    let _ = tcp.set_nodelay(true);
                    tcp.write_all(contents).await?;
                    tcp.shutdown().await?;
                    Ok::<_, io::Error>(tcp)
                })
                .await
            }
            Ok(Err(e)) => Ok(Err(e)),
            Err(e) => Err(e),
        };
        let reply = if matches!(sent, Ok(Ok(_))) {
            self.send_rename_behind(command).await;
            self.read_in_step(command, Expect::TransferStart).await
        } else {
            // A refused STOR is answered at once; a server still waiting for the data
            // connection is not worth waiting for (the control connection is closed below).
            match tokio::time::timeout(
                Duration::from_secs(2),
                self.read_in_step(command, Expect::TransferStart),
            )
            .await
            {
                Ok(r) => r,
                Err(_) => Err(self.ctrl.timed_out(command)),
            }
        };
        let data = match sent {
            Ok(Ok(tcp)) => tcp,
            Ok(Err(e)) => {
                // The server's reply (553, 425…) says more than the refused connection; the
                // EPSV reply behind it keeps the connection in step.
                if let Ok(r) = reply
                    && r.code >= 400
                {
                    self.settle().await?;
                    return Err(FtpError::from_reply(&server, command, r.code, &r.text));
                }
                if how == Sent::Armed {
                    return Err(self.armed_refused(command, addr, e).await);
                }
                self.owe_epsv = false;
                self.ctrl.close().await;
                return Err(FtpError::new(
                    FtpErrorKind::Transient,
                    &server,
                    format!("data connection to {addr} failed"),
                )
                .with_command(command)
                .with_source(e));
            }
            Err(_) => {
                self.owe_epsv = false;
                self.ctrl.close().await;
                return Err(self.ctrl.timed_out(command));
            }
        };
        let started = self.check_preliminary(command, reply?);
        if !matches!(started, Ok(true)) {
            self.settle().await?;
        }
        if !started? {
            return Ok(Some(contents.len() as u64));
        }
        // No data comes back on an upload's connection and our FIN is already sent, so it can
        // be closed without waiting for the server's: the 226 says the file is complete.
        let done = self.finish_transfer(command).await;
        drop(data);
        done.map(|()| Some(contents.len() as u64))
    }

    /// Uploads to `.<name>.<tag>.siteport-tmp` in the target directory, then renames it over
    /// `remote_path`, so nobody ever sees a half-written file under the final name. Sets the
    /// modification time with `MFMT` when the server offers it and `mtime` is given.
    ///
    /// The tag is random per connection: after a killed run, vsftpd's session for the dead
    /// client can still hold its upload lock on the old temp file until its accept timeout
    /// (60 s), and a `STOR` to the same name would wait on that lock.
    pub async fn put_atomic(
        &mut self,
        local: &Path,
        remote_path: &str,
        mtime: Option<SystemTime>,
    ) -> Result<u64, FtpError> {
        let f = self.open_local(local)?;
        self.put_atomic_payload(Payload::File(f, local, None, None), remote_path, mtime)
            .await
    }

    /// [`put_atomic`](Self::put_atomic) that shows every chunk read from `local` to
    /// `observe` (in order, before it is sent): one pass over the file for both hashing and
    /// sending. On success `observe` has seen exactly the bytes sent.
    pub async fn put_atomic_observed(
        &mut self,
        local: &Path,
        remote_path: &str,
        mtime: Option<SystemTime>,
        observe: ReadObserver,
    ) -> Result<u64, FtpError> {
        let f = self.open_local(local)?;
        self.put_atomic_file(f, local, remote_path, mtime, Some(observe), None)
            .await
    }

    /// [`put_atomic`](Self::put_atomic) of a file the caller already opened, read from its
    /// current offset (`shown` names it in messages and is never opened): a caller that
    /// checked what it opened (no link followed, the file it expected) sends exactly that
    /// file, whatever the name leads to by now. `observe` as in
    /// [`put_atomic_observed`](Self::put_atomic_observed); `on_bytes` is told the bytes as
    /// they are sent (see [`OnBytes`]).
    pub async fn put_atomic_file(
        &mut self,
        file: std::fs::File,
        shown: &Path,
        remote_path: &str,
        mtime: Option<SystemTime>,
        observe: Option<ReadObserver>,
        on_bytes: Option<OnBytes<'_>>,
    ) -> Result<u64, FtpError> {
        let payload = Payload::File(file, shown, observe, on_bytes);
        self.put_atomic_payload(payload, remote_path, mtime).await
    }

    /// [`put_atomic`](Self::put_atomic) of a small file already read into memory.
    pub async fn put_atomic_bytes(
        &mut self,
        contents: &[u8],
        remote_path: &str,
        mtime: Option<SystemTime>,
    ) -> Result<u64, FtpError> {
        self.put_atomic_payload(Payload::Bytes(contents), remote_path, mtime)
            .await
    }

    async fn put_atomic_payload(
        &mut self,
        payload: Payload<'_>,
        remote_path: &str,
        mtime: Option<SystemTime>,
    ) -> Result<u64, FtpError> {
        // The rename rides behind the upload where the server reads commands in order and
        // none while the upload runs, and no MFMT would have to follow the upload on its own
        // (it must reach the temp file before the rename does).
        if self.pipelines() && self.deaf_in_transfer && (mtime.is_none() || !self.features.mfmt) {
            return self.put_atomic_riding(payload, remote_path, mtime).await;
        }
        let tag = self.tmp_tag.clone();
        let (sent, tmp) = self
            .put_staged_payload(payload, remote_path, mtime, &tag)
            .await?;
        if let Err(e) = self.rename(&tmp, remote_path).await {
            // Do not leave the temp file behind; the rename error is what matters.
            if self.is_open() {
                let _ = self.delete_file(&tmp).await;
            }
            return Err(e);
        }
        Ok(sent)
    }

    /// [`put_atomic_payload`](Self::put_atomic_payload) with its `RNFR`/`RNTO` sent once the
    /// data is all sent and its connection closed cleanly, before the upload's final reply
    /// is read: the server reads them after the upload and answers them behind its final
    /// reply, so the rename costs no round trip of its own. Never sent after a local read
    /// error or a broken data connection: the server renames nothing this side knows to be
    /// cut short.
    ///
    /// The temp name is new for this call (not the connection's usual tag): an `RNFR` that
    /// follows a refused `STOR` then names no file at all and fails harmlessly, where a temp
    /// left by an earlier failed upload of the same path could have been renamed into place.
    /// If the server does rename after answering the upload with a failure (it kept part of
    /// the file: a disk that filled up), the final name is deleted again: a missing file is
    /// safe for what this writes (the lock's owner file, the deploy state), a truncated one
    /// is not.
    async fn put_atomic_riding(
        &mut self,
        payload: Payload<'_>,
        remote_path: &str,
        mtime: Option<SystemTime>,
    ) -> Result<u64, FtpError> {
        let tag = tmp_tag();
        let tmp = self.temp_name(remote_path, &tag)?;
        self.rename_behind = Some((
            format!("STOR {}", self.abs(&tmp)),
            format!("RNFR {}", self.abs(&tmp)),
            format!("RNTO {}", self.abs(remote_path)),
        ));
        self.owe_rename = None;
        let sent = self
            .put_staged_payload(payload, remote_path, mtime, &tag)
            .await
            .map(|(n, _)| n);
        self.rename_behind = None;
        let owed = self.owe_rename.take();
        let renamed = match &owed {
            Some((rnfr, rnto)) if self.is_open() => {
                Some(self.read_rename_replies(rnfr, rnto).await)
            }
            _ => None,
        };
        match (sent, renamed) {
            (Ok(n), Some(Ok(Ok(())))) => Ok(n),
            (Ok(_), Some(Ok(Err(e)))) => {
                let _ = self.delete_file(&tmp).await;
                Err(e)
            }
            (Ok(_), Some(Err(e))) => Err(e),
            // Nothing went out behind the upload (it ended without sending data): renamed
            // the ordinary way; a connection lost meanwhile fails here.
            (Ok(n), None) => {
                if let Err(e) = self.rename(&tmp, remote_path).await {
                    if self.is_open() {
                        let _ = self.delete_file(&tmp).await;
                    }
                    return Err(e);
                }
                Ok(n)
            }
            (Err(e), Some(Ok(Ok(())))) => {
                tracing::warn!(server = %self.server(), path = %self.abs(remote_path), "the server renamed a failed upload into place; deleting it");
                let _ = self.delete_file(remote_path).await;
                Err(e)
            }
            (Err(e), _) => Err(e),
        }
    }

    /// Sends the rename queued by [`put_atomic_riding`](Self::put_atomic_riding) for the
    /// upload `stor`, if any: called once every byte of that upload went out and its data
    /// connection was closed cleanly. A rename queued for another upload is dropped. A
    /// failed write leaves the connection closed (its replies cannot be counted).
    async fn send_rename_behind(&mut self, stor: &str) {
        let Some((for_stor, rnfr, rnto)) = self.rename_behind.take() else {
            return;
        };
        if for_stor != stor {
            return;
        }
        if self.send_in_step(&[&rnfr, &rnto]).await.is_ok() {
            self.owe_rename = Some((rnfr, rnto));
        } else {
            self.owe_epsv = false;
            self.armed = None;
            self.ctrl.close().await;
        }
    }

    /// `.<name>.<tag>.siteport-tmp` beside `remote_path`, in its form (relative or absolute).
    fn temp_name(&self, remote_path: &str, tag: &str) -> Result<String, FtpError> {
        check_path(self.server(), "upload", remote_path)?;
        let (dir, name) = match remote_path.rfind('/') {
            Some(i) => (&remote_path[..=i], &remote_path[i + 1..]),
            None => ("", remote_path),
        };
        if name.is_empty() {
            return Err(FtpError::new(
                FtpErrorKind::Invalid,
                self.server(),
                format!(
                    "upload: {:?} names a directory, not a file",
                    self.abs(remote_path)
                ),
            ));
        }
        Ok(format!("{dir}.{name}.{tag}.siteport-tmp"))
    }

    /// The first half of [`put_atomic_file`](Self::put_atomic_file): uploads under the
    /// temporary name (its time set there) and returns the bytes sent and that name, in the
    /// form `remote_path` was given (relative or absolute). The final name is not touched:
    /// [`rename_many`](Self::rename_many) (or [`rename`](Self::rename)) puts it in place.
    pub async fn put_staged_file(
        &mut self,
        file: std::fs::File,
        shown: &Path,
        remote_path: &str,
        mtime: Option<SystemTime>,
        observe: Option<ReadObserver>,
        on_bytes: Option<OnBytes<'_>>,
    ) -> Result<(u64, String), FtpError> {
        let payload = Payload::File(file, shown, observe, on_bytes);
        let tag = self.tmp_tag.clone();
        self.put_staged_payload(payload, remote_path, mtime, &tag)
            .await
    }

    /// [`put_staged_file`](Self::put_staged_file) of a small file already in memory.
    pub async fn put_staged_bytes(
        &mut self,
        contents: &[u8],
        remote_path: &str,
        mtime: Option<SystemTime>,
    ) -> Result<(u64, String), FtpError> {
        let tag = self.tmp_tag.clone();
        self.put_staged_payload(Payload::Bytes(contents), remote_path, mtime, &tag)
            .await
    }

    /// Uploads to `.<name>.<tag>.siteport-tmp` beside `remote_path` and sets its time;
    /// returns the bytes sent and the temp name (in `remote_path`'s form).
    async fn put_staged_payload(
        &mut self,
        payload: Payload<'_>,
        remote_path: &str,
        mtime: Option<SystemTime>,
        tag: &str,
    ) -> Result<(u64, String), FtpError> {
        let tmp = self.temp_name(remote_path, tag)?;
        // The time is set on the temp file, before the rename: the final name appears with
        // its final time at once, so nothing (a listing, a server's digest cache keyed by
        // path and time) ever sees the new content under the upload's time. Pipelining, the
        // MFMT goes out behind the STOR (the server reads it once the upload ended; after a
        // failed STOR it fails, or touches a temp that is never renamed).
        let mfmt = match (mtime, self.features.mfmt) {
            (Some(t), true) => Some(format!("MFMT {} {}", format_mdtm(t), self.abs(&tmp))),
            _ => None,
        };
        self.after = mfmt.clone().filter(|_| self.pipelines() && self.arm_behind);
        self.after_reply = None;
        let sent = self.put(payload, &tmp).await;
        self.after = None;
        let queued = self.after_reply.take();
        let sent = sent?;
        if let Some(cmd) = mfmt {
            let code = match queued {
                Some(code) => code,
                None => self.ctrl.cmd(&cmd).await?.code,
            };
            if code != 213 {
                tracing::warn!(server = %self.server(), path = %self.abs(remote_path), code, "MFMT failed; the remote time stays the upload time");
            }
        }
        Ok((sent, tmp))
    }
}
