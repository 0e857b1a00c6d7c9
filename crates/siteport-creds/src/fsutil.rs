//! Private files and directories. Everything the crate creates that may hold a secret or
//! guard one (the store, its temp files, backups and lock, identity files, test fixtures) is
//! created with the modes and no-follow opens of [`siteport_fsguard`], the one implementation
//! the whole of siteport shares: files 0600, directories 0700, set at creation so that no
//! other user can open them in between, and never opened through a symbolic link.

use std::io::{self, Write};
use std::path::Path;

pub(crate) use siteport_fsguard::{PRIVATE_FILE_MODE, create_private_dir, private_file};

/// Creates or truncates `path` as a private file and writes `bytes` (not atomic: for fixtures
/// and files nobody reads concurrently).
#[cfg_attr(not(feature = "testkit"), allow(dead_code))]
pub(crate) fn write_private(path: &Path, bytes: &[u8]) -> io::Result<()> {
    let mut f = siteport_fsguard::open(private_file().create(true).truncate(true), path)?;
    f.write_all(bytes)
}
