//! `~/.netrc`: `machine HOST login USER password PASS` entries (any whitespace between tokens,
//! `default` entries, `account`, and `macdef` bodies up to the next blank line), and
//! [`import_netrc`], which stores each login as a credential.

use std::collections::BTreeSet;
use std::path::Path;

use secrecy::SecretString;
use siteport_creds::CredentialBackend;

use super::MigrateOptions;
use super::error::{MigrateError, MigrateErrorKind};
use super::files::read_input;
use super::plan::{Pending, placeholder, slug};
use super::report::{Action, Finding, MigrationReport, SiteReport};
use super::store::{choose_names, ensure_writable, finish};
use crate::logging::register_secret;

/// One `machine` (or `default`) entry.
#[derive(Debug, Clone)]
pub struct NetrcEntry {
    /// The host; `None` for the `default` entry.
    pub machine: Option<String>,
    /// `login`.
    pub login: Option<String>,
    /// `password`.
    pub password: Option<SecretString>,
}

/// Parses netrc text. Errors never show a token (it may be a password).
pub fn parse_netrc(text: &str) -> Result<Vec<NetrcEntry>, String> {
    let mut out: Vec<NetrcEntry> = Vec::new();
    let mut lines = text.lines().peekable();
    let mut tokens: Vec<String> = Vec::new();
    // macdef bodies run to the next empty line and are not tokens: strip them first.
    while let Some(line) = lines.next() {
        let mut words = line.split_whitespace().peekable();
        while let Some(w) = words.next() {
            if w.starts_with('#') && tokens.last().is_none_or(|t| t != "password") {
                break;
            }
            if w == "macdef" {
                while lines.peek().is_some_and(|l| !l.trim().is_empty()) {
                    lines.next();
                }
                words = "".split_whitespace().peekable();
                continue;
            }
            tokens.push(w.to_owned());
        }
    }
    let mut it = tokens.into_iter();
    let value = |key: &str, it: &mut std::vec::IntoIter<String>| {
        it.next()
            .ok_or_else(|| format!("`{key}` at the end of the file has no value"))
    };
    while let Some(t) = it.next() {
        match t.as_str() {
            "machine" => out.push(NetrcEntry {
                machine: Some(value("machine", &mut it)?),
                login: None,
                password: None,
            }),
            "default" => out.push(NetrcEntry {
                machine: None,
                login: None,
                password: None,
            }),
            "login" | "password" | "account" => {
                let v = value(&t, &mut it)?;
                let entry = out
                    .last_mut()
                    .ok_or_else(|| format!("`{t}` before any `machine`"))?;
                match t.as_str() {
                    "login" => entry.login = Some(v),
                    "password" => entry.password = Some(SecretString::from(v)),
                    _ => {}
                }
            }
            // Unknown tokens are skipped, as ftp(1) and curl do; their text is not shown
            // since it could be a password.
            _ => {}
        }
    }
    Ok(out)
}

/// Imports the logins of a netrc file (`machine HOST login USER password PASS`) into
/// `backend`, one credential per machine named after the host, with the host set. Entries
/// without a login or password, and the `default` entry, are reported and skipped. A login
/// already stored with the same username and password is reused, so a re-run stores nothing.
pub async fn import_netrc(
    netrc: &Path,
    backend: &dyn CredentialBackend,
    options: MigrateOptions,
) -> Result<MigrationReport, MigrateError> {
    let entries = parse_netrc(&read_input(netrc, "netrc file")?).map_err(|e| {
        MigrateError::new(
            MigrateErrorKind::Config,
            format!("{}: {e}", netrc.display()),
        )
    })?;
    let mut report = MigrationReport::empty(None, backend, options);
    let mut pending = Vec::new();
    for e in entries {
        if let Some(p) = &e.password {
            register_secret(p);
        }
        let label = e.machine.clone().unwrap_or_else(|| "default".into());
        let mut entry = SiteReport {
            site: label.clone(),
            finding: Finding::Imported,
            action: Action::Skipped,
            credential: None,
            note: None,
        };
        match (e.machine, e.login, e.password) {
            (None, ..) => entry.note = Some("the `default` entry names no host".into()),
            (Some(_), None, _) | (Some(_), _, None) => {
                entry.note = Some("no login or no password".into())
            }
            (Some(host), Some(login), Some(password)) => {
                let p = Pending {
                    report: report.sites.len(),
                    base: slug(&[&host]),
                    username: login,
                    password,
                    ssh_key: None,
                    host: Some(host),
                    port: None,
                    name: None,
                    reuse: false,
                };
                match p.credential(placeholder()) {
                    Ok(_) => {
                        entry.action = Action::WouldMigrate;
                        pending.push(p);
                    }
                    Err(e) => entry.note = Some(format!("cannot store it: {e}")),
                }
            }
        }
        report.sites.push(entry);
    }
    if pending.is_empty() {
        return Ok(report);
    }
    ensure_writable(backend, &report, &pending)?;
    choose_names(backend, &mut pending, &BTreeSet::new()).await?;
    for p in &pending {
        let entry = &mut report.sites[p.report];
        entry.credential = p.name.clone();
        if p.reuse {
            entry.action = Action::LeftAlone;
            entry.note = Some("already stored".into());
        }
    }
    finish(netrc, None, "", backend, pending, &mut report, options).await?;
    Ok(report)
}

#[cfg(test)]
mod tests {
    use super::*;
    use secrecy::ExposeSecret;

    #[test]
    fn entries_macdef_and_default() {
        let e = parse_netrc(
            "machine a.example login u1 password p1\n# comment\nmacdef init\ncd /x\n\n\
             machine b.example\n  login u2\n  password p#2\ndefault login anonymous password me@\n",
        )
        .unwrap();
        assert_eq!(e.len(), 3);
        assert_eq!(e[0].machine.as_deref(), Some("a.example"));
        assert_eq!(e[1].password.as_ref().unwrap().expose_secret(), "p#2");
        assert_eq!(e[2].machine, None);
        assert!(parse_netrc("login x").unwrap_err().contains("before any"));
        let e = parse_netrc("machine h login u password").unwrap_err();
        assert!(e.contains("`password`"), "{e}");
    }
}
