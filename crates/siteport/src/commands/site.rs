//! What the site commands share: a resolved site turned into the engine's [`Endpoint`], the
//! per-site journal path, and engine errors turned into CLI errors (exit codes from [`crate::exit`]).

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use secrecy::ExposeSecret;
use siteport_sync::{Endpoint, ErrorKind, FtpSettings, Login, Protocol, SftpSettings};

use crate::config::{ResolvedSite, SiteProtocol, TlsMode};
use crate::error::CliError;
use crate::exit::Failure;
use crate::logging::register_secret;

/// Logs `message` as a warning the first time this process sees it: a site's setting warned
/// about once, however many commands (`demo` runs five) build its endpoint.
fn warn_once(message: String) {
    static SEEN: Mutex<BTreeSet<String>> = Mutex::new(BTreeSet::new());
    // A poisoned lock only means a panic elsewhere; the set is still usable.
    if SEEN
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .insert(message.clone())
    {
        tracing::warn!("{message}");
    }
}

/// The endpoint of a resolved site. Registers the site's secrets (password, SSH key and
/// passphrase) with the redactor (so no later output can show them) and warns (once per
/// process) about settings that weaken the connection's protection.
pub fn endpoint(site: &ResolvedSite) -> Endpoint {
    register_secret(&site.password);
    let protocol = match site.protocol {
        SiteProtocol::Ftp => Protocol::Ftp(ftp_settings(site)),
        SiteProtocol::Sftp => Protocol::Sftp(sftp_settings(site)),
    };
    let mut login = Login::new(site.username.clone(), site.password.clone());
    if let Some(key) = &site.ssh_key {
        crate::logging::register_key(key);
        if let Some(p) = &site.ssh_key_passphrase {
            register_secret(p);
        }
        login = login.with_ssh_key(key.clone(), site.ssh_key_passphrase.clone());
    }
    Endpoint::new(
        site.host.clone(),
        site.port,
        protocol,
        site.remote.clone(),
        login,
    )
}

fn ftp_settings(site: &ResolvedSite) -> FtpSettings {
    let tls = site.tls;
    if tls == TlsMode::None {
        warn_once(format!(
            "site '{}' uses tls = \"none\": the password and files cross the network unencrypted",
            site.name
        ));
    }
    if !site.passive {
        warn_once(format!(
            "site '{}': passive = false is not supported; using passive mode",
            site.name
        ));
    }
    if site.insecure {
        warn_once(format!(
            "site '{}': insecure = true: the server certificate is not verified",
            site.name
        ));
    }
    FtpSettings {
        tls,
        ca_file: site.ca_file.clone(),
        fingerprint: site.fingerprint.clone(),
        insecure: site.insecure,
    }
}

fn sftp_settings(site: &ResolvedSite) -> SftpSettings {
    if site.insecure_host_key {
        warn_once(format!(
            "site '{}': insecure_host_key = true: ANY server key is accepted, so anyone on the \
             path can pose as the server and receive the login",
            site.name
        ));
    }
    SftpSettings {
        known_hosts: site.known_hosts.iter().cloned().collect(),
        no_user_known_hosts: false,
        host_key: site.host_key.clone(),
        insecure: site.insecure_host_key,
        file_mode: site.file_mode,
        dir_mode: site.dir_mode,
    }
}

/// `<dir>/<site>.json`, the site name made safe for a file name (anything outside
/// `[A-Za-z0-9._-]` becomes `_`, and a leading `.` too, so no name can climb out of `dir`).
/// Journals were kept there before they were named after their remote; kept to find such a
/// journal and move it (see `journal_place.rs`).
pub fn journal_path(dir: &Path, site: &str) -> PathBuf {
    let mut safe: String = site
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-') {
                c
            } else {
                '_'
            }
        })
        .collect();
    if safe.is_empty() || safe.starts_with('.') {
        safe.insert(0, '_');
    }
    dir.join(format!("{safe}.json"))
}

/// An engine error that ended the run for `site`, as a CLI error naming the site, the
/// credential and the server (never the password), with the fix.
pub fn sync_error(site: &ResolvedSite, e: &siteport_sync::Error) -> CliError {
    let server = format!("{}:{}", site.host, site.port);
    let cred = site
        .credential
        .as_ref()
        .map(|c| format!(", credential '{c}'"))
        .unwrap_or_default();
    // No key and no password: the login went through the ssh-agent (SSH_AUTH_SOCK).
    let agent = site.protocol == SiteProtocol::Sftp
        && site.ssh_key.is_none()
        && site.password.expose_secret().is_empty();
    let (message, hint) = match e.kind() {
        ErrorKind::Login if agent => (
            format!(
                "site '{}': the SFTP login of user '{}'{cred} on {server} through the ssh-agent \
                 failed: {}",
                site.name,
                site.username,
                e.detail()
            ),
            Some(format!(
                "start ssh-agent and `ssh-add` a key the server authorizes (SSH_AUTH_SOCK must \
                 name its socket), or store the key instead: `siteport credential add {c} \
                 --username {} --ssh-key FILE`{set}",
                site.username,
                c = site.credential.as_ref().map_or("NAME", |c| c.as_str()),
                set = if site.credential.is_some() {
                    " --force"
                } else {
                    ", then set `credential = \"NAME\"` on the site in place of `password`"
                }
            )),
        ),
        ErrorKind::Login => (
            format!(
                "site '{}': the {} server {server} refused the login of user '{}'{cred}: {}",
                site.name,
                site.protocol.as_str().to_ascii_uppercase(),
                site.username,
                e.detail()
            ),
            Some(match &site.credential {
                Some(c) => format!(
                    "check the username and {what}; replace them with `siteport credential add {c} --force`",
                    what = if site.ssh_key.is_some() {
                        "SSH key"
                    } else {
                        "password"
                    }
                ),
                None => "check the username and password the site's config resolves to".into(),
            }),
        ),
        ErrorKind::HostKey => (
            format!("site '{}': {e}", site.name),
            Some(host_key_hint(site, e)),
        ),
        _ => (
            format!("site '{}': {e}", site.name),
            e.hint().map(str::to_owned),
        ),
    };
    let mut out = CliError::new(Failure::Sync(e.kind()), e.kind().as_str(), message);
    out.hint = hint.or_else(|| match e.kind() {
        ErrorKind::Network => Some(format!(
            "check that {server} is the right host and port and that the server is running \
             (`siteport credential test` tries a login)"
        )),
        _ => None,
    });
    out
}

/// The fix for an untrusted SFTP host key: `site trust` (which pins it) for an unknown key;
/// for a changed pin, `site trust --replace` once the change is confirmed; for a changed
/// known_hosts line, the library's own advice (which line to replace) and then `site trust`.
fn host_key_hint(site: &ResolvedSite, e: &siteport_sync::Error) -> String {
    let changed = e.is_changed_host_key();
    let trust = format!("`siteport site trust {}`", site.name);
    match (changed, e.hint()) {
        (true, _) if site.host_key.is_some() => format!(
            "if the server's key really changed (ask its administrator), run \
             `siteport site trust {} --replace` to pin the new one",
            site.name
        ),
        (true, Some(h)) => format!("{h}; then {trust} checks it"),
        (true, None) => format!("remove the old key, then run {trust}"),
        (false, _) => format!(
            "check the fingerprint with the server's administrator, then run {trust} \
             (it pins the key in the config as `host_key`; with --known-hosts it adds it to {} \
             instead)",
            site.known_hosts.as_deref().map_or_else(
                || "~/.ssh/known_hosts".to_owned(),
                |p| p.display().to_string()
            )
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn journal_names_cannot_escape() {
        let d = Path::new("/s");
        assert_eq!(journal_path(d, "acme"), Path::new("/s/acme.json"));
        assert_eq!(journal_path(d, "../x"), Path::new("/s/_.._x.json"));
        assert_eq!(journal_path(d, "a b/c"), Path::new("/s/a_b_c.json"));
        assert_eq!(journal_path(d, ".hidden"), Path::new("/s/_.hidden.json"));
    }
}
