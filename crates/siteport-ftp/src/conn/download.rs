//! Downloads: streamed into a local file, or into memory up to a limit.

use std::io;
use std::path::Path;

use tokio::io::{AsyncReadExt, AsyncWriteExt};

use super::OnBytes;
use super::data::COPY_BUF;
use super::pipeline::Expect;
use super::{FtpConnection, check_path};
use crate::error::{FtpError, FtpErrorKind};

fn local_err(server: &str, local: &Path, e: io::Error) -> FtpError {
    FtpError::new(
        FtpErrorKind::LocalIo,
        server,
        format!("cannot write local file {}", local.display()),
    )
    .with_source(e)
}

impl FtpConnection {
    /// Downloads `remote_path` into `local` (created or truncated), streaming. The caller
    /// handles the temp name, `fsync` and rename. Returns the bytes received.
    pub async fn get_file(&mut self, remote_path: &str, local: &Path) -> Result<u64, FtpError> {
        let file = std::fs::File::create(local).map_err(|e| local_err(self.server(), local, e))?;
        self.get_into(remote_path, file, local, None).await
    }

    /// Downloads `remote_path` into `file`, which the caller created and opened (from its
    /// current offset; `shown` names it in messages and is never opened): a caller that
    /// made the file safely (no link followed, exclusive create) writes exactly there.
    /// `on_bytes` is told the bytes as they are written (see [`OnBytes`]). Returns the bytes
    /// received.
    pub async fn get_into(
        &mut self,
        remote_path: &str,
        file: std::fs::File,
        shown: &Path,
        on_bytes: Option<OnBytes<'_>>,
    ) -> Result<u64, FtpError> {
        check_path(self.server(), "download", remote_path)?;
        let command = format!("RETR {}", self.abs(remote_path));
        let local_err = |server: &str, e: io::Error| local_err(server, shown, e);
        let mut file = tokio::fs::File::from_std(file);
        let Some(mut data) = self.start_transfer(&command).await? else {
            return Ok(0);
        };
        let early = self.close_early();
        let closed = data.half_close(early).await;
        let timeout = self.ctrl.timeout;
        let mut chunk = vec![0u8; COPY_BUF];
        let mut got = 0u64;
        loop {
            match tokio::time::timeout(timeout, data.read(&mut chunk)).await {
                Ok(Ok(0)) => break,
                Ok(Ok(n)) => {
                    crate::rate::take(n).await;
                    if let Err(e) = file.write_all(&chunk[..n]).await {
                        drop(data);
                        if self
                            .read_transfer_reply(&command, Expect::TransferEnd)
                            .await
                            .is_ok()
                        {
                            let _ = self.settle().await;
                        }
                        self.abandon().await;
                        return Err(local_err(self.server(), e));
                    }
                    got += n as u64;
                    if let Some(f) = on_bytes {
                        f(n as u64);
                    }
                }
                Ok(Err(e)) if e.kind() == io::ErrorKind::UnexpectedEof => break,
                Ok(Err(e)) => return Err(self.data_err(&command, e).await),
                Err(_) => return Err(self.transfer_timed_out(&command).await),
            }
        }
        if data.is_tls() && !closed {
            let _ = tokio::time::timeout(timeout, data.shutdown()).await;
        }
        drop(data);
        file.flush()
            .await
            .map_err(|e| local_err(self.server(), e))?;
        self.finish_transfer(&command).await?;
        self.check_announced(&command, got)?;
        Ok(got)
    }

    /// Downloads `remote_path` into memory: for small files, where the blocking-pool round
    /// trips of writing through `tokio::fs` cost more than the bytes. Fails (and closes the
    /// connection) if the file is longer than `max` bytes.
    pub async fn get_bytes(&mut self, remote_path: &str, max: usize) -> Result<Vec<u8>, FtpError> {
        check_path(self.server(), "download", remote_path)?;
        let command = format!("RETR {}", self.abs(remote_path));
        self.read_all_limited(&command, max, "remote file").await
    }
}
