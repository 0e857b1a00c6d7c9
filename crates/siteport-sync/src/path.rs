//! Relative path helpers and the name safety check shared by both directions.

use std::path::{Path, PathBuf};

/// Checks one path component (a bare file or directory name, as a server lists it) before it
/// is used on either side. Refused: the empty name, `.` and `..`, names containing `/`, `\`
/// or NUL (they would address another directory, on Unix or Windows), names that are absolute
/// paths, names containing CR or LF (they would inject FTP commands), and names containing any
/// other control character (C0, DEL, C1: a hostile server's ESC and BEL sequences would reach
/// the terminal of whoever lists the mirrored tree).
///
/// A name that merely contains two dots (`jquery..min.js`) is one harmless component and is
/// accepted: only a component that *is* `..` climbs out of a directory.
///
/// Returns the reason on refusal.
pub fn check_name(name: &str) -> Result<(), &'static str> {
    if name.is_empty() {
        return Err("empty name");
    }
    if name == "." || name == ".." {
        return Err("name is `.` or `..`");
    }
    if name.contains('/') {
        return Err("name contains `/`");
    }
    if name.contains('\\') {
        return Err("name contains `\\`");
    }
    if name.contains('\0') {
        return Err("name contains NUL");
    }
    if name.contains('\r') || name.contains('\n') {
        return Err("name contains a line break");
    }
    if name.contains(char::is_control) {
        return Err("name contains a control character");
    }
    // `C:` style names are absolute on Windows servers and clients.
    let b = name.as_bytes();
    if b.len() >= 2 && b[1] == b':' && b[0].is_ascii_alphabetic() {
        return Err("name is an absolute Windows path");
    }
    Ok(())
}

/// Checks a whole relative path (`a/b/c`): every component must pass [`check_name`].
pub fn check_rel_path(path: &str) -> Result<(), &'static str> {
    if path.starts_with('/') {
        return Err("path is absolute");
    }
    path.split('/').try_for_each(check_name)
}

/// Checks a path handed to a [`Remote`](crate::Remote): relative to the site's remote root
/// (as [`check_rel_path`]), or, with one leading `/`, absolute on the server as the session
/// sees it. Only the engine's own state dir outside the web root takes the absolute form;
/// names from listings and paths from the deploy state are always checked as relative first,
/// so a hostile server cannot reach this form. Every component passes [`check_name`] either
/// way (no `..`, no empty name, no line break).
pub fn check_remote_path(path: &str) -> Result<(), &'static str> {
    match path.strip_prefix('/') {
        Some("") => Err("path is the server's root itself"),
        Some(rest) if rest.starts_with('/') => Err("path starts with `//`"),
        Some(rest) => rest.split('/').try_for_each(check_name),
        None => check_rel_path(path),
    }
}

/// Whether `path` (a path handed to a [`Remote`](crate::Remote)) is absolute on the server
/// rather than relative to the remote root.
pub fn is_server_absolute(path: &str) -> bool {
    path.starts_with('/')
}

/// The path a transport sends to the server for `path`: under `root` (the site's remote
/// directory, without a trailing `/`; empty for the login directory) when relative, unchanged
/// when absolute. Refuses what [`check_remote_path`] refuses (`""` is the root itself).
pub(crate) fn server_path(root: &str, path: &str) -> Result<String, &'static str> {
    if path.is_empty() {
        return Ok(if root.is_empty() {
            ".".to_string()
        } else {
            root.to_string()
        });
    }
    check_remote_path(path)?;
    Ok(if is_server_absolute(path) || root.is_empty() {
        path.to_string()
    } else {
        format!("{root}/{path}")
    })
}

/// `parent/name`, or `name` at the root.
pub fn join(parent: &str, name: &str) -> String {
    if parent.is_empty() {
        name.to_string()
    } else {
        format!("{parent}/{name}")
    }
}

/// The parent of a relative path (`""` for a top-level entry).
pub fn parent(path: &str) -> &str {
    path.rfind('/').map_or("", |i| &path[..i])
}

/// Number of components (`a` is 1, `a/b` is 2).
pub fn depth(path: &str) -> usize {
    if path.is_empty() {
        0
    } else {
        path.split('/').count()
    }
}

/// The local path for a relative path under `root`. The path must have passed
/// [`check_rel_path`], so the result stays under `root` lexically.
pub fn local_path(root: &Path, rel: &str) -> PathBuf {
    let mut p = root.to_path_buf();
    for c in rel.split('/').filter(|c| !c.is_empty()) {
        p.push(c);
    }
    p
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refuses_hostile_names() {
        for bad in [
            "",
            ".",
            "..",
            "../escape",
            "a/b",
            "/etc",
            "a\\b",
            "..\\x",
            "a\0b",
            "a\r\nDELE x",
            "C:",
            "c:\\x",
            "red\u{1b}[31m",
            "bell\u{7}",
            "tab\there",
            "del\u{7f}",
            "csi\u{9b}2J",
        ] {
            assert!(check_name(bad).is_err(), "{bad:?} accepted");
        }
        for good in [
            "index.html",
            "-leading-dash",
            "with space",
            "#hash",
            "ünïcödé",
            "a..b",
            "..hidden",
        ] {
            assert!(check_name(good).is_ok(), "{good:?} refused");
        }
    }

    #[test]
    fn rel_path_helpers() {
        assert!(check_rel_path("a/b/c.txt").is_ok());
        assert!(check_rel_path("a/../b").is_err());
        assert!(check_rel_path("/a").is_err());
        assert!(check_rel_path("a//b").is_err());
        assert_eq!(join("", "a"), "a");
        assert_eq!(join("a", "b"), "a/b");
        assert_eq!(parent("a/b/c"), "a/b");
        assert_eq!(parent("a"), "");
        assert_eq!(depth(""), 0);
        assert_eq!(depth("a/b"), 2);
        assert_eq!(local_path(Path::new("/r"), "a/b"), PathBuf::from("/r/a/b"));
    }

    /// An absolute path reaches the server unchanged, a relative one goes under the root, and
    /// a hostile component is refused in both forms.
    #[test]
    fn server_paths() {
        assert_eq!(server_path("/htdocs", "a/b").unwrap(), "/htdocs/a/b");
        assert_eq!(server_path("", "a").unwrap(), "a");
        assert_eq!(server_path("", "").unwrap(), ".");
        assert_eq!(server_path("/htdocs", "").unwrap(), "/htdocs");
        assert_eq!(server_path("/htdocs", "/state/x").unwrap(), "/state/x");
        assert_eq!(server_path("", "/state").unwrap(), "/state");
        for bad in [
            "/",
            "//x",
            "/a/../b",
            "/a//b",
            "a/../b",
            "/a\r\nDELE x",
            "/a/",
        ] {
            assert!(server_path("/htdocs", bad).is_err(), "{bad:?} accepted");
        }
    }
}
