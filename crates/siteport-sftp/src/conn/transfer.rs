//! Pipelined transfers: uploads keep [`IN_FLIGHT`] WRITE requests of [`CHUNK`] bytes
//! outstanding (as OpenSSH's `sftp` does), downloads as many READs, so a transfer is bound
//! by bandwidth, not by round trips. Uploads go to a temp name in the target directory and
//! are renamed into place.

use std::path::Path;
use std::sync::Arc;
use std::time::SystemTime;

use futures_util::StreamExt as _;
use futures_util::stream::{FuturesOrdered, FuturesUnordered};
use russh_sftp::client::RawSftpSession;
use russh_sftp::client::error::Error as SftpRawError;
use russh_sftp::protocol::{FileAttributes, OpenFlags, StatusCode};
use tokio::io::{AsyncRead, AsyncReadExt as _, AsyncWriteExt as _};

use super::SftpConnection;
use super::ops::{RenameMethod, secs};
use crate::error::{SftpError, SftpErrorKind};

/// Bytes per READ/WRITE request (what every server accepts).
pub const CHUNK: usize = 32 * 1024;
/// Requests kept in flight per transfer.
pub const IN_FLIGHT: usize = 64;

/// Called with every chunk an upload reads, in order.
pub type Observer<'a> = &'a mut (dyn FnMut(&[u8]) + Send);

/// Told how many more bytes a transfer has moved, each time it moves some: after each WRITE
/// the server acknowledges, after each chunk a download writes to its file. For a live
/// progress display; called on the transfer's task, so it must be cheap (an atomic add), and
/// a failed transfer may have reported bytes it then did not complete.
pub type OnBytes<'a> = &'a (dyn Fn(u64) + Sync);

/// The result of an atomic upload.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PutOutcome {
    /// Bytes sent.
    pub bytes: u64,
    /// How the temp file was moved to its final name.
    pub rename: RenameMethod,
}

/// `dir/` and `name` of a remote path.
fn split(path: &str) -> (&str, &str) {
    match path.rfind('/') {
        Some(i) => (&path[..=i], &path[i + 1..]),
        None => ("", path),
    }
}

/// A tag that differs per connection, for temp names.
pub(crate) fn new_tmp_tag() -> String {
    use std::sync::atomic::{AtomicU32, Ordering};
    static COUNTER: AtomicU32 = AtomicU32::new(0);
    let nanos = SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .map(|d| d.subsec_nanos())
        .unwrap_or(0);
    let n = COUNTER.fetch_add(1, Ordering::Relaxed);
    format!(
        "{:08x}",
        nanos ^ std::process::id().rotate_left(16) ^ n.wrapping_mul(0x9e37_79b9)
    )
}

impl SftpConnection {
    /// Uploads `local` to `remote` atomically: written to `.NAME.TAG.siteport-tmp` in the
    /// target directory, given its mode and `mtime` (SETSTAT), then renamed over `remote`.
    /// `observe` sees every chunk read, in order.
    pub async fn put_atomic(
        &self,
        local: &Path,
        remote: &str,
        mtime: Option<SystemTime>,
        observe: Option<Observer<'_>>,
    ) -> Result<PutOutcome, SftpError> {
        let file = std::fs::File::open(local)
            .map_err(|e| SftpError::local(&self.server, "upload", local, e))?;
        self.put_atomic_file(file, local, remote, mtime, observe, None)
            .await
    }

    /// [`put_atomic`](Self::put_atomic) of a file the caller already opened, read from its
    /// current offset (`shown` names it in messages and is never opened): a caller that
    /// checked what it opened (no link followed, the file it expected) sends exactly that
    /// file, whatever the name leads to by now. `on_bytes` is told the bytes as the server
    /// acknowledges them (see [`OnBytes`]).
    pub async fn put_atomic_file(
        &self,
        file: std::fs::File,
        shown: &Path,
        remote: &str,
        mtime: Option<SystemTime>,
        observe: Option<Observer<'_>>,
        on_bytes: Option<OnBytes<'_>>,
    ) -> Result<PutOutcome, SftpError> {
        let staged = self
            .put_staged_file(file, shown, remote, mtime, observe, on_bytes)
            .await?;
        self.rename_staged(staged, remote).await
    }

    /// [`put_atomic`](Self::put_atomic) of bytes already in memory.
    pub async fn put_atomic_bytes(
        &self,
        contents: &[u8],
        remote: &str,
        mtime: Option<SystemTime>,
    ) -> Result<PutOutcome, SftpError> {
        let staged = self.put_staged_bytes(contents, remote, mtime).await?;
        self.rename_staged(staged, remote).await
    }

    /// The second half of both `put_atomic`s: the staged temp renamed into place (removed
    /// when the rename fails).
    async fn rename_staged(
        &self,
        (sent, tmp): (u64, String),
        remote: &str,
    ) -> Result<PutOutcome, SftpError> {
        match self.rename_replace(&tmp, remote).await {
            Ok(rename) => {
                if rename == RenameMethod::RemoveThenRename {
                    tracing::info!(
                        "sftp {}: {remote} replaced by remove + rename (no posix-rename)",
                        self.server
                    );
                }
                Ok(PutOutcome {
                    bytes: sent,
                    rename,
                })
            }
            Err(e) => {
                let _ = self.sftp.remove(tmp.as_str()).await;
                Err(e)
            }
        }
    }

    /// The first half of [`put_atomic_file`](Self::put_atomic_file): writes the temp file
    /// (mode and time set) and returns the bytes sent and its name; `remote` is not
    /// touched: [`rename_many`](Self::rename_many) puts it in place.
    pub async fn put_staged_file(
        &self,
        file: std::fs::File,
        shown: &Path,
        remote: &str,
        mtime: Option<SystemTime>,
        observe: Option<Observer<'_>>,
        on_bytes: Option<OnBytes<'_>>,
    ) -> Result<(u64, String), SftpError> {
        let mut file = tokio::fs::File::from_std(file);
        let from = Source {
            local: Some(shown),
            observe,
            on_bytes,
        };
        self.put_staged_from(&mut file, None, from, remote, mtime)
            .await
    }

    /// [`put_staged_file`](Self::put_staged_file) of bytes already in memory.
    pub async fn put_staged_bytes(
        &self,
        contents: &[u8],
        remote: &str,
        mtime: Option<SystemTime>,
    ) -> Result<(u64, String), SftpError> {
        let mut reader = contents;
        let small = (contents.len() <= CHUNK).then_some(contents);
        let from = Source {
            local: None,
            observe: None,
            on_bytes: None,
        };
        self.put_staged_from(&mut reader, small, from, remote, mtime)
            .await
    }

    /// Writes `.NAME.TAG.siteport-tmp` beside `remote`: `small` is the whole content when
    /// it is in memory and fits one request. A failed write removes the temp file.
    async fn put_staged_from<R: AsyncRead + Unpin>(
        &self,
        reader: &mut R,
        small: Option<&[u8]>,
        from: Source<'_, '_, '_>,
        remote: &str,
        mtime: Option<SystemTime>,
    ) -> Result<(u64, String), SftpError> {
        let (dir, name) = split(remote);
        if name.is_empty() || name == "." || name == ".." {
            return Err(SftpError::new(
                SftpErrorKind::Invalid,
                &self.server,
                format!("upload: {remote:?} names a directory, not a file"),
            ));
        }
        let tmp = format!("{dir}.{name}.{}.siteport-tmp", self.tmp_tag);
        let written = match small {
            Some(bytes) => self.write_small(bytes, &tmp, mtime).await,
            None => self.write_file(reader, from, &tmp, mtime).await,
        };
        match written {
            Ok(n) => Ok((n, tmp)),
            Err(e) => {
                // Best effort: no temp file left behind; the write error is what matters.
                let _ = self.sftp.remove(tmp.as_str()).await;
                Err(e)
            }
        }
    }

    /// Opens `path` for writing, created with the connection's file mode or truncated.
    async fn open_for_write(&self, path: &str) -> Result<String, SftpError> {
        let mut attrs = FileAttributes::empty();
        attrs.permissions = Some(self.file_mode);
        let flags = OpenFlags::WRITE | OpenFlags::CREATE | OpenFlags::TRUNCATE;
        self.sftp
            .open(path, flags, attrs)
            .await
            .map(|h| h.handle)
            .map_err(|e| SftpError::from_sftp(&self.server, &format!("write {path}"), e))
    }

    /// Writes `reader` to `path` (created or truncated) with pipelined WRITEs, then sets mode
    /// and times on the open handle and closes it.
    async fn write_file<R: AsyncRead + Unpin>(
        &self,
        reader: &mut R,
        from: Source<'_, '_, '_>,
        path: &str,
        mtime: Option<SystemTime>,
    ) -> Result<u64, SftpError> {
        let Source {
            local,
            mut observe,
            on_bytes,
        } = from;
        let op = format!("write {path}");
        let err = |e| SftpError::from_sftp(&self.server, &op, e);
        let handle = self.open_for_write(path).await?;
        let handle: Arc<str> = Arc::from(handle);
        let mut inflight = FuturesUnordered::new();
        let mut offset = 0u64;
        let mut eof = false;
        let result: Result<(), SftpError> = async {
            loop {
                while !eof && inflight.len() < IN_FLIGHT {
                    // A slot of the connection's WRITEs; none free: send what is queued and
                    // wait for an answer, or, with nothing of this upload in flight, wait for
                    // another upload's (never while holding unsent requests: two uploads
                    // could each hold slots and wait for the other's).
                    let slot = match self.data_slots.clone().try_acquire_owned() {
                        Ok(s) => Some(s),
                        Err(_) if inflight.is_empty() => {
                            self.data_slots.clone().acquire_owned().await.ok()
                        }
                        Err(_) => break,
                    };
                    let chunk = read_chunk(reader).await.map_err(|e| match local {
                        Some(p) => SftpError::local(&self.server, "upload", p, e),
                        None => SftpError::new(SftpErrorKind::LocalIo, &self.server, "read"),
                    })?;
                    if chunk.is_empty() {
                        eof = true;
                        break;
                    }
                    if let Some(o) = observe.as_mut() {
                        o(&chunk);
                    }
                    let len = chunk.len() as u64;
                    let (s, h) = (self.sftp.clone(), handle.clone());
                    inflight.push(async move {
                        let r = s.write(&*h, offset, chunk).await;
                        drop(slot);
                        (len, r)
                    });
                    offset += len;
                }
                match inflight.next().await {
                    Some((len, r)) => {
                        r.map_err(err)?;
                        // Counted once the server has it: the read-ahead (up to IN_FLIGHT
                        // chunks) does not make the count run ahead of the transfer.
                        if let Some(f) = on_bytes {
                            f(len);
                        }
                    }
                    None => return Ok(()),
                }
            }
        }
        .await;
        // Wait for what is still in flight before touching the handle again.
        while inflight.next().await.is_some() {}
        if let Err(e) = result {
            let _ = self.sftp.close(&*handle).await;
            return Err(e);
        }
        self.finish_handle(&handle, mtime).await.map_err(err)?;
        Ok(offset)
    }

    /// SETSTAT (mode and times, when `mtime` is given) and CLOSE of a written handle, sent
    /// back to back: a server handles the requests on one handle in order.
    async fn finish_handle(
        &self,
        handle: &str,
        mtime: Option<SystemTime>,
    ) -> Result<(), SftpRawError> {
        let setstat = async {
            match mtime {
                Some(t) => self
                    .sftp
                    .fsetstat(handle, self.attrs_for(t))
                    .await
                    .map(|_| ()),
                None => Ok(()),
            }
        };
        let (set, closed) = futures_util::future::join(setstat, self.sftp.close(handle)).await;
        set?;
        closed.map(|_| ())
    }

    fn attrs_for(&self, mtime: SystemTime) -> FileAttributes {
        let mut a = FileAttributes::empty();
        a.mtime = Some(secs(mtime));
        a.atime = a.mtime;
        a.permissions = Some(self.file_mode);
        a
    }

    /// A file of at most one [`CHUNK`]: OPEN, then WRITE, SETSTAT and CLOSE in one burst (one
    /// round trip fewer than [`write_file`](Self::write_file) for the many small files of a
    /// site).
    async fn write_small(
        &self,
        contents: &[u8],
        path: &str,
        mtime: Option<SystemTime>,
    ) -> Result<u64, SftpError> {
        let op = format!("write {path}");
        let err = |e| SftpError::from_sftp(&self.server, &op, e);
        let handle = self.open_for_write(path).await?;
        let write = async {
            if contents.is_empty() {
                Ok(())
            } else {
                self.sftp
                    .write(handle.as_str(), 0, contents.to_vec())
                    .await
                    .map(|_| ())
            }
        };
        // `join` polls in order, so the WRITE is sent before the SETSTAT and the CLOSE.
        let (written, finished) =
            futures_util::future::join(write, self.finish_handle(&handle, mtime)).await;
        written.map_err(err)?;
        finished.map_err(err)?;
        Ok(contents.len() as u64)
    }

    /// Downloads `remote` into `local` (created or truncated) with pipelined READs; the
    /// bytes received.
    pub async fn get(&self, remote: &str, local: &Path) -> Result<u64, SftpError> {
        let file = std::fs::File::create(local)
            .map_err(|e| SftpError::local(&self.server, "download", local, e))?;
        self.get_into(remote, file, local, None).await
    }

    /// Downloads `remote` into `file`, which the caller created and opened (from its current
    /// offset; `local` names it in messages and is never opened): a caller that made the
    /// file safely (no link followed, exclusive create) writes exactly there. `on_bytes` is
    /// told the bytes as they are written (see [`OnBytes`]).
    pub async fn get_into(
        &self,
        remote: &str,
        file: std::fs::File,
        local: &Path,
        on_bytes: Option<OnBytes<'_>>,
    ) -> Result<u64, SftpError> {
        let mut file = tokio::fs::File::from_std(file);
        let got = self
            .read_file(remote, u64::MAX, &mut Sink::File(&mut file, on_bytes))
            .await
            .map_err(|e| match e {
                ReadError::Remote(e) => e,
                ReadError::Local(e) => SftpError::local(&self.server, "download", local, e),
            })?;
        file.flush()
            .await
            .map_err(|e| SftpError::local(&self.server, "download", local, e))?;
        Ok(got)
    }

    /// Downloads `remote` into memory, refusing more than `max` bytes.
    pub async fn get_bytes(&self, remote: &str, max: usize) -> Result<Vec<u8>, SftpError> {
        let mut out = Vec::new();
        self.read_file(remote, max as u64, &mut Sink::Memory(&mut out))
            .await
            .map_err(|e| match e {
                ReadError::Remote(e) => e,
                ReadError::Local(_) => {
                    SftpError::new(SftpErrorKind::LocalIo, &self.server, "memory")
                }
            })?;
        Ok(out)
    }

    /// Reads `path` with up to [`IN_FLIGHT`] READs outstanding (as far as the file's size
    /// at open time, then one at a time until EOF, in case it grew), handing the chunks to
    /// `sink` in order.
    async fn read_file(&self, path: &str, max: u64, sink: &mut Sink<'_>) -> Result<u64, ReadError> {
        let op = format!("read {path}");
        let err = |e| ReadError::Remote(SftpError::from_sftp(&self.server, &op, e));
        let handle = self
            .sftp
            .open(path, OpenFlags::READ, FileAttributes::empty())
            .await
            .map_err(err)?
            .handle;
        let handle: Arc<str> = Arc::from(handle);
        let result = async {
            let size = self.sftp.fstat(&*handle).await.map_err(err)?.attrs.size;
            let size = size.unwrap_or(0);
            let mut queue = FuturesOrdered::new();
            let mut next = 0u64; // offset of the next READ to send
            let mut done = 0u64; // bytes handed to `sink`
            loop {
                while queue.len() < IN_FLIGHT && (next < size || queue.is_empty()) {
                    // The connection's slots, as for uploads (see `write_file`).
                    let slot = match self.data_slots.clone().try_acquire_owned() {
                        Ok(s) => Some(s),
                        Err(_) if queue.is_empty() => {
                            self.data_slots.clone().acquire_owned().await.ok()
                        }
                        Err(_) => break,
                    };
                    let read = read_at(self.sftp.clone(), handle.clone(), next, CHUNK);
                    queue.push_back(async move {
                        let r = read.await;
                        drop(slot);
                        r
                    });
                    next += CHUNK as u64;
                }
                let Some((offset, r)) = queue.next().await else {
                    return Ok(done);
                };
                let data = match r {
                    Ok(d) => d,
                    Err(e) if is_eof(&e) => return Ok(done),
                    Err(e) => return Err(err(e)),
                };
                if data.len() > CHUNK {
                    // More than asked for: the offsets would no longer line up.
                    return Err(ReadError::Remote(
                        SftpError::new(
                            SftpErrorKind::Protocol,
                            &self.server,
                            "the server sent more data than requested",
                        )
                        .with_op(op.clone()),
                    ));
                }
                let short = data.len() < CHUNK;
                done += data.len() as u64;
                if done > max {
                    return Err(ReadError::Remote(
                        SftpError::new(
                            SftpErrorKind::Protocol,
                            &self.server,
                            format!("{path} is larger than the {max} bytes expected"),
                        )
                        .with_op(op.clone()),
                    ));
                }
                sink.put(&data).await.map_err(ReadError::Local)?;
                if short && done >= size {
                    // The end of the file as it was at open time.
                    return Ok(done);
                }
                if short {
                    // A short read: fetch the rest of that chunk's range before going on
                    // (later READs already cover the ranges after it).
                    let end = offset + CHUNK as u64;
                    while done < end {
                        match self.sftp.read(&*handle, done, (end - done) as u32).await {
                            Ok(d) if d.data.is_empty() => return Ok(done),
                            Ok(d) if d.data.len() as u64 > end - done => {
                                return Err(ReadError::Remote(SftpError::new(
                                    SftpErrorKind::Protocol,
                                    &self.server,
                                    "the server sent more data than requested",
                                )));
                            }
                            Ok(d) => {
                                done += d.data.len() as u64;
                                if done > max {
                                    return Err(ReadError::Remote(SftpError::new(
                                        SftpErrorKind::Protocol,
                                        &self.server,
                                        format!("{path} is larger than expected"),
                                    )));
                                }
                                sink.put(&d.data).await.map_err(ReadError::Local)?;
                            }
                            Err(e) if is_eof(&e) => return Ok(done),
                            Err(e) => return Err(err(e)),
                        }
                    }
                }
            }
        }
        .await;
        let _ = self.sftp.close(&*handle).await;
        result
    }
}

/// Where an upload's bytes come from, besides the reader: the local file's name for
/// messages, who sees each chunk read, who is told the bytes sent.
struct Source<'p, 'o, 'b> {
    local: Option<&'p Path>,
    observe: Option<Observer<'o>>,
    on_bytes: Option<OnBytes<'b>>,
}

/// Where a download goes (a file, and who is told the bytes written).
enum Sink<'a> {
    File(&'a mut tokio::fs::File, Option<OnBytes<'a>>),
    Memory(&'a mut Vec<u8>),
}

impl Sink<'_> {
    async fn put(&mut self, data: &[u8]) -> std::io::Result<()> {
        match self {
            Sink::File(f, on_bytes) => {
                f.write_all(data).await?;
                if let Some(count) = on_bytes {
                    count(data.len() as u64);
                }
                Ok(())
            }
            Sink::Memory(v) => {
                v.extend_from_slice(data);
                Ok(())
            }
        }
    }
}

enum ReadError {
    Remote(SftpError),
    Local(std::io::Error),
}

fn is_eof(e: &SftpRawError) -> bool {
    matches!(e, SftpRawError::Status(s) if s.status_code == StatusCode::Eof)
}

async fn read_at(
    sftp: Arc<RawSftpSession>,
    handle: Arc<str>,
    offset: u64,
    len: usize,
) -> (u64, Result<Vec<u8>, SftpRawError>) {
    let r = sftp.read(&*handle, offset, len as u32).await;
    (offset, r.map(|d| d.data))
}

/// Reads up to [`CHUNK`] bytes (fewer only at the end of the input).
async fn read_chunk<R: AsyncRead + Unpin>(reader: &mut R) -> std::io::Result<Vec<u8>> {
    let mut buf = vec![0u8; CHUNK];
    let mut n = 0;
    while n < CHUNK {
        let got = reader.read(&mut buf[n..]).await?;
        if got == 0 {
            break;
        }
        n += got;
    }
    buf.truncate(n);
    Ok(buf)
}
