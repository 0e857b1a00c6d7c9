//! The files `migrate` reads and writes: the config and import files, the 0600 backup of the
//! old config, and the atomic replacement of the config.

use std::io::Write;
use std::path::{Path, PathBuf};

use super::error::{MigrateError, MigrateErrorKind};

/// The config file's text (migrate reads it itself: it rewrites the text, not the parse).
pub(super) fn read_config(path: &Path) -> Result<String, MigrateError> {
    std::fs::read_to_string(path).map_err(|e| {
        MigrateError::new(
            MigrateErrorKind::Config,
            format!("cannot read config file {}: {e}", path.display()),
        )
        .hint("pass the config file as `siteport migrate PATH` or --config PATH")
    })
}

pub(super) fn read_input(path: &Path, what: &str) -> Result<String, MigrateError> {
    std::fs::read_to_string(path).map_err(|e| {
        MigrateError::new(
            MigrateErrorKind::Config,
            format!("cannot read {what} {}: {e}", path.display()),
        )
    })
}

/// Refuses to write next to `path` in a directory another user owns or can write in: they
/// could swap the config or its backup (which holds the old secrets) for a link.
fn check_config_dir(path: &Path) -> Result<(), MigrateError> {
    siteport_fsguard::check_parent("config directory", path, false).map_err(|e| {
        let hint = e.hint();
        let out = MigrateError::new(
            MigrateErrorKind::Config,
            format!("{e}; nothing was changed"),
        );
        match hint {
            Some(h) => out.hint(h),
            None => out,
        }
    })
}

/// `<config>.<UTC timestamp>.bak`, created 0600 (it holds the old secrets), never replacing
/// an existing file, fsynced.
pub(super) fn write_backup(path: &Path, text: &str) -> Result<PathBuf, MigrateError> {
    check_config_dir(path)?;
    let stamp = time::OffsetDateTime::now_utc()
        .format(time::macros::format_description!(
            "[year][month][day]T[hour][minute][second]Z"
        ))
        .unwrap_or_else(|_| "backup".into());
    let file_name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| "siteport.toml".into());
    let io_err = |p: &Path, e: std::io::Error| {
        MigrateError::new(
            MigrateErrorKind::Io,
            format!(
                "cannot write the backup {}: {e}; the config file was not changed",
                p.display()
            ),
        )
        .hint("make the config's directory writable, then run `siteport migrate` again")
    };
    for n in 0..100 {
        let name = if n == 0 {
            format!("{file_name}.{stamp}.bak")
        } else {
            format!("{file_name}.{stamp}-{n}.bak")
        };
        let p = path.with_file_name(name);
        let mut f = match siteport_fsguard::create_new(&p) {
            Ok(f) => f,
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => continue,
            Err(e) => return Err(io_err(&p, e)),
        };
        f.write_all(text.as_bytes())
            .and_then(|()| f.sync_all())
            .map_err(|e| io_err(&p, e))?;
        return Ok(p);
    }
    Err(MigrateError::new(
        MigrateErrorKind::Io,
        format!("too many backups next to {}", path.display()),
    )
    .hint("remove old *.bak files next to the config"))
}

/// Replaces `path` with `text` atomically: a temp file in the same directory with the old
/// file's permissions (0600 for a new file), fsync, rename, fsync of the directory.
pub(crate) fn write_atomic(path: &Path, text: &str) -> Result<(), MigrateError> {
    use std::os::unix::fs::PermissionsExt;
    check_config_dir(path)?;
    let err = |e: std::io::Error| {
        MigrateError::new(
            MigrateErrorKind::Io,
            format!(
                "cannot write {}: {e}; the old file is unchanged",
                path.display()
            ),
        )
    };
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d.to_owned(),
        _ => PathBuf::from("."),
    };
    let perms = match std::fs::metadata(path) {
        Ok(m) => m.permissions(),
        Err(_) => std::fs::Permissions::from_mode(0o600),
    };
    let mut tmp = tempfile::Builder::new()
        .prefix(".siteport-config")
        .tempfile_in(&dir)
        .map_err(err)?;
    tmp.write_all(text.as_bytes()).map_err(err)?;
    tmp.as_file().set_permissions(perms).map_err(err)?;
    tmp.as_file().sync_all().map_err(err)?;
    tmp.persist(path).map_err(|e| err(e.error))?;
    // The rename is durable only once the directory entry is.
    std::fs::File::open(&dir)
        .and_then(|d| d.sync_all())
        .map_err(err)?;
    Ok(())
}
