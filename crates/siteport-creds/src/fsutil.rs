//! Private files and directories: the one place that decides their modes. Everything the
//! crate creates that may hold a secret or guard one (the store, its temp files, backups and
//! lock, identity files, test fixtures) is created here: files 0600, directories 0700, set at
//! creation so that no other user can open them in between.

use std::fs::{self, OpenOptions};
use std::io::{self, Write};
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
use std::path::Path;

/// Mode of every private file.
pub(crate) const PRIVATE_FILE_MODE: u32 = 0o600;
/// Mode of every directory created for private files.
pub(crate) const PRIVATE_DIR_MODE: u32 = 0o700;

/// Open options for a private file: write access, created with mode 0600. Callers add
/// `create`, `create_new`, `truncate` or `read` as they need.
pub(crate) fn private_file() -> OpenOptions {
    let mut o = OpenOptions::new();
    o.write(true).mode(PRIVATE_FILE_MODE);
    o
}

/// Creates `dir` and its missing parents with mode 0700. Existing directories are left alone.
pub(crate) fn create_private_dir(dir: &Path) -> io::Result<()> {
    fs::DirBuilder::new()
        .recursive(true)
        .mode(PRIVATE_DIR_MODE)
        .create(dir)
}

/// Creates or truncates `path` as a private file and writes `bytes` (not atomic: for fixtures
/// and files nobody reads concurrently).
#[cfg_attr(not(feature = "testkit"), allow(dead_code))]
pub(crate) fn write_private(path: &Path, bytes: &[u8]) -> io::Result<()> {
    let mut f = private_file().create(true).truncate(true).open(path)?;
    f.write_all(bytes)
}
