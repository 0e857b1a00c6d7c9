//! Where a site's deploy state dir (state document and lock) lives: `<remote>/.siteport` by
//! default, or a place the site's `state_dir` names, relative to the remote root or absolute
//! on the server (outside the web root, where no HTTP request can reach it).
//!
//! The engine, the lock and `status` take the dir in one string form: relative to the remote
//! root when it is inside it (then it is kept out of every transfer and gets an `.htaccess`),
//! or starting with `/` when it is outside (then the transports send it unchanged, see
//! [`check_remote_path`](crate::check_remote_path)).

use crate::path::{check_name, is_server_absolute};

/// Checks the form of a `state_dir` setting, before the remote root is known (config time):
/// not empty, no control character, no `..`, `.` or empty component. Returns the reason on
/// refusal.
pub fn check_state_dir_setting(value: &str) -> Result<(), &'static str> {
    if value.trim().is_empty() {
        return Err("it is empty");
    }
    if value.chars().any(char::is_control) {
        return Err("it contains a control character");
    }
    let body = body(value);
    if body.is_empty() {
        return Err("it names the server's root directory itself");
    }
    for c in body.split('/') {
        match c {
            ".." => return Err("it has a `..` component"),
            "" => return Err("it has an empty component (`//`)"),
            c => check_name(c)?,
        }
    }
    Ok(())
}

/// The state dir of a site whose remote root is `remote_root` and whose `state_dir` setting is
/// `value`, in the engine's form: relative when it is inside the remote root (an absolute
/// setting under an absolute `remote` is made relative, so it is still kept out of transfers
/// and protected by `.htaccess`), `/…` when it is outside. An absolute setting under a relative
/// `remote` cannot be compared and is taken as outside.
pub fn locate_state_dir(remote_root: &str, value: &str) -> Result<String, &'static str> {
    check_state_dir_setting(value)?;
    let body = body(value);
    if !is_server_absolute(value) {
        return Ok(body.to_string());
    }
    if let Some(root) = lexical_components(remote_root) {
        let parts: Vec<&str> = body.split('/').collect();
        if parts.len() >= root.len() && parts[..root.len()] == root[..] {
            if parts.len() == root.len() {
                return Err("it is the remote root itself");
            }
            return Ok(parts[root.len()..].join("/"));
        }
    }
    Ok(format!("/{body}"))
}

/// Whether a state dir in the engine's form is inside the remote root (the web root).
pub fn in_web_root(state_dir: &str) -> bool {
    !is_server_absolute(state_dir)
}

/// The setting without its leading `/` and trailing `/`s.
fn body(value: &str) -> &str {
    let v = value.trim();
    v.strip_prefix('/').unwrap_or(v).trim_end_matches('/')
}

/// The components of an absolute `remote` (`/` is none); `None` when it is relative or climbs
/// with `..` (then nothing can be said about what is inside it).
fn lexical_components(root: &str) -> Option<Vec<&str>> {
    let rest = root.trim().strip_prefix('/')?;
    let mut out = Vec::new();
    for c in rest.split('/') {
        match c {
            "" | "." => {}
            ".." => return None,
            c => out.push(c),
        }
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn settings_are_checked() {
        for (bad, why) in [
            ("", "empty"),
            ("  ", "empty"),
            ("/", "root directory"),
            ("../state", "`..`"),
            ("a/../b", "`..`"),
            ("/srv/../etc", "`..`"),
            ("a//b", "empty component"),
            ("./x", "`.`"),
            ("a\nb", "control"),
        ] {
            let e = check_state_dir_setting(bad).unwrap_err();
            assert!(e.contains(why), "{bad:?}: {e}");
        }
        for good in [
            ".siteport",
            "deploy/state",
            "/srv/state",
            "/srv/state/",
            "a..b",
        ] {
            assert!(check_state_dir_setting(good).is_ok(), "{good:?}");
        }
    }

    #[test]
    fn inside_or_outside_the_web_root() {
        let cases = [
            ("/htdocs", ".siteport", Ok(".siteport")),
            ("/htdocs", "/private/state", Ok("/private/state")),
            ("/htdocs", "/htdocs/.deploy", Ok(".deploy")),
            ("/htdocs/", "/htdocs/a/b/", Ok("a/b")),
            ("/htdocs", "/htdocs", Err("remote root itself")),
            ("/htdocs", "/htdocs2/x", Ok("/htdocs2/x")),
            ("/", "/state", Ok("state")),
            ("htdocs", "/htdocs/state", Ok("/htdocs/state")),
            ("", "/state", Ok("/state")),
            ("/a/../b", "/b/state", Ok("/b/state")),
        ];
        for (root, value, want) in cases {
            match (locate_state_dir(root, value), want) {
                (Ok(got), Ok(w)) => assert_eq!(got, w, "{root} {value}"),
                (Err(e), Err(w)) => assert!(e.contains(w), "{root} {value}: {e}"),
                (got, w) => panic!("{root} {value}: {got:?}, wanted {w:?}"),
            }
        }
        assert!(in_web_root(".siteport"));
        assert!(!in_web_root("/private/state"));
    }
}
