//! FileZilla's site manager (`sitemanager.xml`): servers in nested folders, passwords plain or
//! base64 (`<Pass encoding="base64">`); master-password-encrypted ones (`encoding="crypt"`)
//! cannot be read without FileZilla and are reported, not guessed. [`import_filezilla`] turns
//! the servers into `[[site]]` tables and their passwords into credentials. SFTP servers
//! (protocol 1) become `protocol = "sftp"` sites; a key file logon (`<Logontype>5`,
//! `<Keyfile>`) is read into the credential's `ssh_key`, so the store holds the key itself
//! and the file FileZilla pointed at is no longer needed.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use base64::Engine;
use secrecy::{ExposeSecret, SecretString};
use siteport_creds::reference;
use siteport_creds::{Credential, CredentialBackend, CredentialName, MAX_SSH_KEY_LEN};
use toml_edit::{DocumentMut, Item, Table};
use zeroize::Zeroizing;

use super::MigrateOptions;
use super::error::{MigrateError, MigrateErrorKind, unnamed};
use super::files::{read_config, read_input};
use super::plan::{Pending, placeholder, slug};
use super::report::{Action, Finding, MigrationReport, SiteReport};
use super::rewrite::{mask_password, mask_url, not_aot, parse_doc, site_table_mut, unified_diff};
use super::store::{choose_names, ensure_writable, finish};
use crate::config::{Config, suggested_name};
use crate::logging::{register_key, register_secret};

/// One `<Server>` entry.
#[derive(Debug, Clone)]
pub struct FileZillaServer {
    /// The folders it sits in, outermost first.
    pub folders: Vec<String>,
    /// `<Name>`, or the host when missing.
    pub name: String,
    /// `<Host>`.
    pub host: String,
    /// `<Port>`.
    pub port: Option<u16>,
    /// `<Protocol>`: 0 FTP (TLS if offered), 1 SFTP, 3 FTPS implicit, 4 FTPES explicit,
    /// 6 plain FTP only.
    pub protocol: u32,
    /// `<User>`.
    pub user: Option<String>,
    /// `<Logontype>`: 0 anonymous, 1 normal, 2 ask, 3 interactive, 4 account, 5 key file.
    pub logon_type: u32,
    /// `<Keyfile>`: the private key file of a key file logon, as written.
    pub key_file: Option<String>,
    /// `<Pass>`, decoded.
    pub password: Option<SecretString>,
    /// Why a `<Pass>` present in the file could not be used.
    pub password_problem: Option<String>,
    /// `<RemoteDir>`, decoded from FileZilla's length-prefixed form to `/a/b`.
    pub remote_dir: Option<String>,
    /// `<LocalDir>`.
    pub local_dir: Option<String>,
}

/// Parses a `sitemanager.xml` document. Errors say what is wrong, never a value.
pub fn parse_sitemanager(xml: &str) -> Result<Vec<FileZillaServer>, String> {
    let doc = roxmltree::Document::parse(xml).map_err(|e| format!("not valid XML: {e}"))?;
    let root = doc.root_element();
    if root.tag_name().name() != "FileZilla3" {
        return Err(format!(
            "the root element is <{}>, not <FileZilla3>",
            root.tag_name().name()
        ));
    }
    let servers = root
        .children()
        .find(|n| n.has_tag_name("Servers"))
        .ok_or("no <Servers> element (is this FileZilla's sitemanager.xml?)")?;
    let mut out = Vec::new();
    walk(servers, &mut Vec::new(), &mut out)?;
    Ok(out)
}

fn walk(
    node: roxmltree::Node<'_, '_>,
    folders: &mut Vec<String>,
    out: &mut Vec<FileZillaServer>,
) -> Result<(), String> {
    for child in node.children().filter(|n| n.is_element()) {
        match child.tag_name().name() {
            "Folder" => {
                // The folder's name is its own text, before the nested elements.
                let name = child
                    .children()
                    .filter(|n| n.is_text())
                    .filter_map(|n| n.text())
                    .map(str::trim)
                    .find(|t| !t.is_empty())
                    .unwrap_or("folder")
                    .to_owned();
                folders.push(name);
                walk(child, folders, out)?;
                folders.pop();
            }
            "Server" => out.push(server(child, folders)?),
            _ => {}
        }
    }
    Ok(())
}

fn server(node: roxmltree::Node<'_, '_>, folders: &[String]) -> Result<FileZillaServer, String> {
    let field = |tag: &str| {
        node.children()
            .find(|n| n.has_tag_name(tag))
            .and_then(|n| n.text())
            .map(str::trim)
            .filter(|t| !t.is_empty())
            .map(str::to_owned)
    };
    let host = field("Host").ok_or("a <Server> has no <Host>")?;
    let port = match field("Port") {
        None => None,
        Some(p) => Some(siteport_creds::parse_port(&p).map_err(|e| format!("server {host}: {e}"))?),
    };
    let protocol = field("Protocol").and_then(|p| p.parse().ok()).unwrap_or(0);
    let (mut password, mut password_problem) = (None, None);
    if let Some(pass) = node.children().find(|n| n.has_tag_name("Pass")) {
        let text = pass.text().unwrap_or("").trim();
        match pass.attribute("encoding") {
            _ if text.is_empty() => {}
            None | Some("plain") => password = Some(SecretString::from(text.to_owned())),
            Some("base64") => match base64::engine::general_purpose::STANDARD
                .decode(text)
                .ok()
                .and_then(|b| String::from_utf8(b).ok())
            {
                Some(p) => password = Some(SecretString::from(p)),
                None => password_problem = Some("its base64 password does not decode".into()),
            },
            Some("crypt") => {
                password_problem = Some(
                    "its password is encrypted with a FileZilla master password; export the \
                     sites from FileZilla without a master password, or add the password with \
                     `siteport credential add`"
                        .into(),
                )
            }
            Some(other) => password_problem = Some(format!("unknown password encoding '{other}'")),
        }
    }
    Ok(FileZillaServer {
        folders: folders.to_vec(),
        name: field("Name").unwrap_or_else(|| host.clone()),
        host,
        port,
        protocol,
        user: field("User"),
        logon_type: field("Logontype").and_then(|l| l.parse().ok()).unwrap_or(1),
        key_file: field("Keyfile"),
        password,
        password_problem,
        remote_dir: field("RemoteDir").and_then(|r| remote_dir(&r)),
        local_dir: field("LocalDir"),
    })
}

/// FileZilla writes `/home/www` as `1 0 4 home 3 www`: a server type, then length-prefixed
/// segments (the first, empty, is the prefix). `None` when it does not fit that shape.
fn remote_dir(raw: &str) -> Option<String> {
    let mut rest = raw.trim();
    let (_kind, r) = rest.split_once(' ')?;
    rest = r;
    let mut segments = Vec::new();
    while !rest.is_empty() {
        let (len, r) = rest.split_once(' ').unwrap_or((rest, ""));
        let len: usize = len.parse().ok()?;
        let seg = r.get(..len)?;
        segments.push(seg.to_owned());
        rest = r.get(len..)?.trim_start_matches(' ');
    }
    let parts: Vec<String> = segments.into_iter().filter(|s| !s.is_empty()).collect();
    Some(format!("/{}", parts.join("/")))
}

/// Imports FileZilla's `sitemanager.xml` at `xml`: each FTP/FTPS/SFTP server becomes a
/// `[[site]]` appended to the config at `config` (created 0600 if missing) and its password
/// (or the SSH key its key file holds) a credential.
/// Servers already in the config (same name and host) are left alone, so a re-run does nothing.
pub async fn import_filezilla(
    config: &Path,
    xml: &Path,
    backend: &dyn CredentialBackend,
    options: MigrateOptions,
) -> Result<MigrationReport, MigrateError> {
    let servers = parse_sitemanager(&read_input(xml, "FileZilla site manager")?).map_err(|e| {
        MigrateError::new(MigrateErrorKind::Config, format!("{}: {e}", xml.display()))
            .hint("export it from FileZilla with File > Export…, or pass ~/.config/filezilla/sitemanager.xml")
    })?;
    for s in &servers {
        if let Some(p) = &s.password {
            register_secret(p);
        }
    }
    let old_text = if config.exists() {
        Some(read_config(config)?)
    } else {
        None
    };
    let text = old_text.clone().unwrap_or_default();
    let cfg = Config::parse(&text, config, &reference::process_env)?;
    let mut doc = parse_doc(&text, config)?;
    let mut plan = Import {
        report: MigrationReport::empty(Some(config.to_owned()), backend, options),
        pending: Vec::new(),
        new_sites: Vec::new(),
        names: cfg.sites.iter().map(|s| s.name.clone()).collect(),
    };
    for s in servers {
        plan.server(&cfg, s);
    }
    let Import {
        mut report,
        mut pending,
        new_sites,
        ..
    } = plan;
    if new_sites.is_empty() {
        for e in &mut report.sites {
            if e.action == Action::WouldMigrate {
                e.action = Action::LeftAlone;
            }
        }
        return Ok(report);
    }
    if !pending.is_empty() {
        ensure_writable(backend, &report, &pending)?;
    }
    let taken: BTreeSet<CredentialName> = cfg
        .sites
        .iter()
        .flat_map(|s| s.credential_names())
        .collect();
    choose_names(backend, &mut pending, &taken).await?;
    append_sites(&mut doc, new_sites, &pending, &mut report, config)?;
    let new_text = doc.to_string();
    Config::parse(&new_text, config, &reference::process_env).map_err(|e| {
        MigrateError::new(
            MigrateErrorKind::Config,
            format!("the imported sites would not load ({e}); nothing was changed"),
        )
    })?;
    report.diff = Some(masked_diff(&cfg, &text, &new_text, config)?);
    report.changed = true;
    finish(
        config,
        old_text.as_deref(),
        &new_text,
        backend,
        pending,
        &mut report,
        options,
    )
    .await?;
    if !options.dry_run {
        for e in &mut report.sites {
            if e.action == Action::WouldMigrate {
                e.action = Action::Migrated;
            }
        }
    }
    Ok(report)
}

/// An import under way: the report, the secrets to store, the site tables to append (each
/// with its index into `pending`, if it has a password) and the site names taken so far.
struct Import {
    report: MigrationReport,
    pending: Vec<Pending>,
    new_sites: Vec<(Table, Option<usize>)>,
    names: BTreeSet<String>,
}

impl Import {
    /// Plans one FileZilla server: skipped (unknown protocol, unreadable key file), left
    /// alone (already in the config) or a new `[[site]]` table, its password or key pending.
    fn server(&mut self, cfg: &Config, s: FileZillaServer) {
        let mut parts: Vec<&str> = s.folders.iter().map(String::as_str).collect();
        parts.push(&s.name);
        let base = slug(&parts);
        let mut entry = SiteReport {
            site: base.clone(),
            finding: Finding::Imported,
            action: Action::WouldMigrate,
            credential: None,
            note: None,
        };
        if let Some(existing) = cfg.site(&base)
            && existing.host.as_deref() == Some(s.host.as_str())
        {
            entry.action = Action::LeftAlone;
            entry.note = Some("already in the config".into());
            self.report.sites.push(entry);
            return;
        }
        let tls = match s.protocol {
            0 | 4 => Some("explicit"),
            3 => Some("implicit"),
            6 => Some("none"),
            1 => None,
            other => {
                entry.action = Action::Skipped;
                entry.note = Some(format!(
                    "FileZilla protocol {other} is not FTP, FTPS or SFTP"
                ));
                self.report.sites.push(entry);
                return;
            }
        };
        let user = s.user.clone().unwrap_or_else(|| "anonymous".into());
        // A key file logon: the key moves into the store. One that cannot be read skips the
        // site (import again once the path is fixed); an encrypted one is imported without
        // a credential, since FileZilla does not keep the passphrase and a terminal must ask.
        let (mut key, mut key_problem) = (None, None);
        if tls.is_none() && s.logon_type == KEY_FILE_LOGON {
            let Some(path) = s.key_file.as_deref() else {
                entry.action = Action::Skipped;
                entry.note = Some("key file logon, but FileZilla names no <Keyfile>".into());
                self.report.sites.push(entry);
                return;
            };
            let path = expand_home(path);
            match read_key_file(&path) {
                Ok(k) if crate::commands::credential_key::is_encrypted(k.expose_secret()) => {
                    key_problem = Some(format!(
                        "its key file {} is encrypted and FileZilla does not keep the \
                         passphrase; store it with `siteport credential add {} --username \
                         {user} --ssh-key {}` (asks for the passphrase) and add \
                         `credential = \"{1}\"` to the site",
                        path.display(),
                        suggested_name(&base),
                        path.display()
                    ));
                }
                Ok(k) => key = Some(k),
                Err(why) => {
                    entry.action = Action::Skipped;
                    entry.note = Some(format!(
                        "key file {}: {why}; nothing imported for this site: fix the file \
                         and import again",
                        path.display()
                    ));
                    self.report.sites.push(entry);
                    return;
                }
            }
        }
        let mut site_name = base.clone();
        let mut n = 2;
        while self.names.contains(&site_name) {
            site_name = format!("{base}-{n}");
            n += 1;
        }
        self.names.insert(site_name.clone());
        entry.site = site_name.clone();
        let mut t = Table::new();
        t.insert("name", toml_edit::value(site_name.as_str()));
        t.insert("host", toml_edit::value(s.host.as_str()));
        let default_port = match tls {
            Some("implicit") => 990,
            Some(_) => 21,
            None => 22,
        };
        if let Some(p) = s.port.filter(|p| *p != default_port) {
            t.insert("port", toml_edit::value(i64::from(p)));
        }
        match tls {
            Some(tls) => t.insert("tls", toml_edit::value(tls)),
            None => t.insert("protocol", toml_edit::value("sftp")),
        };
        let pidx = self.login(&s, &site_name, &user, key, key_problem, &mut entry);
        if tls.is_none() {
            // FileZilla's trusted host keys stay in FileZilla: the first export would stop
            // at the unknown key (exit 6), so say how to check and pin it now.
            add_note(
                &mut entry,
                format!("check and pin its host key with `siteport site trust {site_name}`"),
            );
        }
        if pidx.is_none() {
            t.insert("user", toml_edit::value(user.as_str()));
        }
        let local = s
            .local_dir
            .clone()
            .unwrap_or_else(|| format!("sites/{site_name}"));
        t.insert("local", toml_edit::value(local));
        if let Some(r) = s.remote_dir.as_deref().filter(|r| *r != "/") {
            t.insert("remote", toml_edit::value(r));
        }
        self.new_sites.push((t, pidx));
        self.report.sites.push(entry);
    }

    /// The server's password and/or SSH key as a pending credential (its index), or a note
    /// on `entry` saying why there is none (`key_problem` first, then the password's).
    fn login(
        &mut self,
        s: &FileZillaServer,
        site_name: &str,
        user: &str,
        key: Option<SecretString>,
        key_problem: Option<String>,
        entry: &mut SiteReport,
    ) -> Option<usize> {
        let password = match (&s.password, &key) {
            (Some(pw), _) => Some(pw.clone()),
            // A key logs in alone; an empty password marks a key-only credential.
            (None, Some(_)) => Some(SecretString::from(String::new())),
            (None, None) => None,
        };
        if password.is_none()
            && let Some(kp) = key_problem
        {
            // It already says how to store the key by hand.
            entry.note = Some(kp);
            return None;
        }
        match (password, &s.password_problem) {
            (Some(pw), _) => {
                let p = Pending {
                    report: self.report.sites.len(),
                    base: suggested_name(site_name),
                    username: user.to_owned(),
                    password: pw,
                    ssh_key: key,
                    host: Some(s.host.clone()),
                    port: s.port,
                    name: None,
                    reuse: false,
                };
                match p.credential(placeholder()) {
                    Ok(_) => {
                        self.pending.push(p);
                        Some(self.pending.len() - 1)
                    }
                    Err(e) => {
                        entry.note = Some(format!("login not imported: {e}"));
                        None
                    }
                }
            }
            (None, problem) => {
                entry.note = Some(format!(
                    "{}; store one with `siteport credential add {1} --username {user}` and add \
                     `credential = \"{1}\"` to the site",
                    problem
                        .as_deref()
                        .unwrap_or("no password saved in FileZilla"),
                    suggested_name(site_name)
                ));
                None
            }
        }
    }
}

/// FileZilla's `<Logontype>` of a key file logon (SFTP only).
const KEY_FILE_LOGON: u32 = 5;

/// Adds `note` to the entry's note (after a `; `).
fn add_note(entry: &mut SiteReport, note: String) {
    entry.note = Some(match entry.note.take() {
        Some(n) => format!("{n}; {note}"),
        None => note,
    });
}

/// `~/x` as `$HOME/x` (FileZilla on Linux may write it so); other paths as written.
fn expand_home(path: &str) -> PathBuf {
    match (path.strip_prefix("~/"), std::env::var_os("HOME")) {
        (Some(rest), Some(home)) if !home.is_empty() => PathBuf::from(home).join(rest),
        _ => PathBuf::from(path),
    }
}

/// The private key in `path`, read bounded (a wrong path to a big file fails fast) and
/// checked to be an OpenSSH or PEM key. The error says why, never quoting the file.
fn read_key_file(path: &Path) -> Result<SecretString, String> {
    use std::io::Read;
    let file = std::fs::File::open(path).map_err(|e| format!("cannot open it: {e}"))?;
    let mut buf = Zeroizing::new(Vec::with_capacity(8192));
    file.take(MAX_SSH_KEY_LEN as u64 + 1)
        .read_to_end(&mut buf)
        .map_err(|e| format!("cannot read it: {e}"))?;
    if buf.len() > MAX_SSH_KEY_LEN {
        return Err(format!(
            "it is larger than {MAX_SSH_KEY_LEN} bytes; it is not a private key"
        ));
    }
    let text = std::str::from_utf8(&buf).map_err(|_| "it is not a text key file".to_owned())?;
    if text.starts_with("PuTTY-User-Key-File-") {
        return Err(format!(
            "it is a PuTTY key (.ppk), which siteport does not read; convert it with \
             `puttygen {0} -O private-openssh -o KEY` and point FileZilla (or a copy of \
             sitemanager.xml) at KEY",
            path.display()
        ));
    }
    let key = SecretString::from(text.to_owned());
    register_key(&key);
    // Validated as a credential would be, so a bad file skips the site here rather than
    // failing the whole import when it is stored.
    Credential::with_ssh_key_only(placeholder(), "check", key.clone(), None)
        .map_err(|e| e.to_string())?;
    Ok(key)
}

/// Appends the new site tables to `doc`, each with its credential once named.
fn append_sites(
    doc: &mut DocumentMut,
    new_sites: Vec<(Table, Option<usize>)>,
    pending: &[Pending],
    report: &mut MigrationReport,
    config: &Path,
) -> Result<(), MigrateError> {
    let aot = doc
        .entry("site")
        .or_insert(Item::ArrayOfTables(Default::default()))
        .as_array_of_tables_mut()
        .ok_or_else(|| not_aot(config))?;
    for (mut t, pidx) in new_sites {
        if let Some(p) = pidx {
            let name = pending[p].name.clone().ok_or_else(unnamed)?;
            let pos = t.len() - usize::from(t.contains_key("remote")) - 1;
            t.insert("credential", toml_edit::value(name.as_str()));
            // Keep `credential` before `local`/`remote`, as in the documented example.
            let order = [
                "name",
                "host",
                "port",
                "protocol",
                "tls",
                "credential",
                "user",
                "local",
                "remote",
            ];
            let rank = |k: &str| order.iter().position(|o| *o == k).unwrap_or(pos);
            t.sort_values_by(|a, _, b, _| rank(a.get()).cmp(&rank(b.get())));
            report.sites[pending[p].report].credential = Some(name);
        }
        t.decor_mut().set_prefix("\n");
        aot.push(t);
    }
    Ok(())
}

/// The diff from `text` to `new_text`, with the secrets already in the config masked.
fn masked_diff(
    cfg: &Config,
    text: &str,
    new_text: &str,
    config: &Path,
) -> Result<String, MigrateError> {
    let mut masked_old = parse_doc(text, config)?;
    let mut masked_new = parse_doc(new_text, config)?;
    for (i, s) in cfg.sites.iter().enumerate() {
        for d in [&mut masked_old, &mut masked_new] {
            if s.password_in_url() {
                mask_url(site_table_mut(d, i, config)?);
            } else if s.has_literal_password() {
                mask_password(site_table_mut(d, i, config)?);
            }
        }
    }
    Ok(unified_diff(
        config,
        &masked_old.to_string(),
        &masked_new.to_string(),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn remote_dirs_decode() {
        assert_eq!(remote_dir("1 0 4 home 3 www").as_deref(), Some("/home/www"));
        assert_eq!(remote_dir("1 0 7 my site").as_deref(), Some("/my site"));
        assert_eq!(remote_dir("1 0").as_deref(), Some("/"));
        assert_eq!(remote_dir("garbage"), None);
        assert_eq!(remote_dir("1 0 9 x"), None);
    }

    #[test]
    fn key_files_are_read_or_refused_with_the_reason() {
        let dir = tempfile::tempdir().unwrap();
        let write = |name: &str, text: &str| {
            let p = dir.path().join(name);
            std::fs::write(&p, text).unwrap();
            p
        };
        let ok = write("id", siteport_creds::testkit::FIXTURE_SSH_KEY);
        assert_eq!(
            read_key_file(&ok).unwrap().expose_secret(),
            siteport_creds::testkit::FIXTURE_SSH_KEY
        );
        let ppk = write(
            "id.ppk",
            "PuTTY-User-Key-File-3: ssh-ed25519\nEncryption: none\n",
        );
        assert!(read_key_file(&ppk).unwrap_err().contains("puttygen"));
        let public = write("id.pub", "ssh-ed25519 AAAAC3Nza siteport-test\n");
        assert!(
            read_key_file(&public)
                .unwrap_err()
                .contains("not a private key")
        );
        let missing = dir.path().join("nope");
        assert!(read_key_file(&missing).unwrap_err().contains("cannot open"));
        let big = write("big", &"x".repeat(MAX_SSH_KEY_LEN + 1));
        assert!(read_key_file(&big).unwrap_err().contains("larger than"));
    }

    #[test]
    fn wrong_documents_are_refused() {
        assert!(
            parse_sitemanager("<nope/>")
                .unwrap_err()
                .contains("FileZilla3")
        );
        assert!(parse_sitemanager("not xml").unwrap_err().contains("XML"));
    }
}
