//! FileZilla's site manager (`sitemanager.xml`): servers in nested folders, passwords plain or
//! base64 (`<Pass encoding="base64">`); master-password-encrypted ones (`encoding="crypt"`)
//! cannot be read without FileZilla and are reported, not guessed. [`import_filezilla`] turns
//! the servers into `[[site]]` tables and their passwords into credentials.

use std::collections::BTreeSet;
use std::path::Path;

use base64::Engine;
use secrecy::SecretString;
use siteport_creds::reference;
use siteport_creds::{CredentialBackend, CredentialName};
use toml_edit::{DocumentMut, Item, Table};

use super::MigrateOptions;
use super::error::{MigrateError, MigrateErrorKind, unnamed};
use super::files::{read_config, read_input};
use super::plan::{Pending, placeholder, slug};
use super::report::{Action, Finding, MigrationReport, SiteReport};
use super::rewrite::{mask_password, mask_url, not_aot, parse_doc, site_table_mut, unified_diff};
use super::store::{choose_names, ensure_writable, finish};
use crate::config::{Config, suggested_name};
use crate::logging::register_secret;

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

/// Imports FileZilla's `sitemanager.xml` at `xml`: each FTP/FTPS server becomes a `[[site]]`
/// appended to the config at `config` (created 0600 if missing) and its password a credential.
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
    /// Plans one FileZilla server: skipped (SFTP, unknown protocol), left alone (already in
    /// the config) or a new `[[site]]` table, its password pending.
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
            0 | 4 => "explicit",
            3 => "implicit",
            6 => "none",
            1 => {
                entry.action = Action::Skipped;
                entry.note = Some("SFTP is not supported by siteport".into());
                self.report.sites.push(entry);
                return;
            }
            other => {
                entry.action = Action::Skipped;
                entry.note = Some(format!("FileZilla protocol {other} is not FTP or FTPS"));
                self.report.sites.push(entry);
                return;
            }
        };
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
        let default_port = if tls == "implicit" { 990 } else { 21 };
        if let Some(p) = s.port.filter(|p| *p != default_port) {
            t.insert("port", toml_edit::value(i64::from(p)));
        }
        t.insert("tls", toml_edit::value(tls));
        let user = s.user.clone().unwrap_or_else(|| "anonymous".into());
        let pidx = self.password(&s, &site_name, &user, &mut entry);
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

    /// The server's password as a pending credential (its index), or a note on `entry` saying
    /// why there is none.
    fn password(
        &mut self,
        s: &FileZillaServer,
        site_name: &str,
        user: &str,
        entry: &mut SiteReport,
    ) -> Option<usize> {
        match (&s.password, &s.password_problem) {
            (Some(pw), _) => {
                let p = Pending {
                    report: self.report.sites.len(),
                    base: suggested_name(site_name),
                    username: user.to_owned(),
                    password: pw.clone(),
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
                        entry.note = Some(format!("password not imported: {e}"));
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
    fn wrong_documents_are_refused() {
        assert!(
            parse_sitemanager("<nope/>")
                .unwrap_err()
                .contains("FileZilla3")
        );
        assert!(parse_sitemanager("not xml").unwrap_err().contains("XML"));
    }
}
