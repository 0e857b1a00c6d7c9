//! `siteport site trust SITE`: show an SFTP server's host key and, once a person has
//! confirmed its fingerprint (`--yes`, or `y` at a prompt), pin it in the config file as the
//! site's `host_key = "SHA256:…"` (the file edited with `toml_edit`, so every other key,
//! comment and layout stays; replaced atomically, its mode kept). With `--known-hosts` the
//! key's line goes to the site's `known_hosts` file (else `~/.ssh/known_hosts`) instead, the
//! way `ssh` asks on a first connection. A key that differs from the pinned or recorded one
//! is refused (exit 6) unless `--replace` says the change was checked, and even then a loud
//! warning is printed.
//!
//! No password or key is ever offered while doing so: the key is read during the key
//! exchange, and the check against the site's own policy authenticates through an agent
//! socket that does not exist, so the session ends before any authentication request.

use std::fs::OpenOptions;
use std::io::{self, BufRead, BufReader, Read, Seek, SeekFrom, Write};

use std::path::{Path, PathBuf};

use clap::{Args, Subcommand};
use serde_json::json;
use siteport_creds::reference::process_env;
use siteport_sync::ErrorKind as SyncKind;
use siteport_sync::{HostKey, HostKeyVerdict, host_key_verdict, offered_host_key};
use toml_edit::{DocumentMut, Item, Value};

use crate::commands::site_lock::resolve;
use crate::config::{Config, ResolvedSite, SiteProtocol};
use crate::context::Context;
use crate::error::{CliError, CliResult};
use crate::exit::Failure;
use crate::prompt::terminal_available;

/// `siteport site …`.
#[derive(Debug, Subcommand)]
pub enum SiteCommand {
    /// Show an SFTP server's host key fingerprint and, when confirmed, pin it in the config
    /// as the site's `host_key` (or, with --known-hosts, add it to a known_hosts file). No
    /// password or key is sent.
    Trust(TrustArgs),
}

/// `siteport site trust SITE [--yes] [--replace | --known-hosts]`.
#[derive(Debug, Args)]
pub struct TrustArgs {
    /// Site name (a `[[site]]` with `protocol = "sftp"`).
    pub site: String,
    /// Trust the key without asking (check the fingerprint with the server's administrator
    /// first).
    #[arg(long, short = 'y')]
    pub yes: bool,
    /// Replace a different key already pinned (or recorded in known_hosts for this server),
    /// only once the server's administrator has confirmed that its key changed.
    #[arg(long, conflicts_with = "known_hosts")]
    pub replace: bool,
    /// Add the key's line to the site's `known_hosts` file (else ~/.ssh/known_hosts) instead
    /// of pinning it in the config, e.g. to share it with ssh and sftp.
    #[arg(long)]
    pub known_hosts: bool,
}

/// Runs a `site` subcommand.
pub async fn run(ctx: &Context, cmd: SiteCommand) -> CliResult {
    match cmd {
        SiteCommand::Trust(a) => trust(ctx, a).await,
    }
}

async fn trust(ctx: &Context, args: TrustArgs) -> CliResult {
    let site = resolve(ctx, &args.site).await?;
    if site.protocol != SiteProtocol::Sftp {
        return Err(CliError::usage(format!(
            "site '{}' is an FTP site; `site trust` records SSH host keys of SFTP sites",
            site.name
        ))
        .with_hint("for a self-signed FTPS server, set `fingerprint` or `ca_file` on the site"));
    }
    if site.insecure_host_key {
        // Any key is accepted while it is set: a pin or a known_hosts line would change nothing.
        return Err(CliError::usage(format!(
            "site '{}' has insecure_host_key = true, so any host key is accepted and trusting \
             one would change nothing",
            site.name
        ))
        .with_hint(format!(
            "remove insecure_host_key from the site, then run `siteport site trust {}`",
            site.name
        )));
    }
    let endpoint = crate::commands::site::endpoint(&site);
    let info = offered_host_key(&endpoint)
        .await
        .map_err(|e| connect_error(&site, &e))?;
    let human_key = format!(
        "site '{}': {}:{} offers the {} host key {}",
        site.name, site.host, site.port, info.algorithm, info.fingerprint
    );
    if args.known_hosts {
        return trust_known_hosts(ctx, &args, &site, &endpoint, &info, &human_key).await;
    }
    let config = ctx.config()?.path.clone();
    let mut replacing = None;
    match site.host_key.as_deref() {
        Some(pin) if same_pin(pin, &info.fingerprint) => {
            return ctx.output.result(
                &format!(
                    "{human_key}\nit is already pinned in {}; nothing to do",
                    config.display()
                ),
                &json!({"site": site.name, "algorithm": info.algorithm,
                        "fingerprint": info.fingerprint, "pinned": false, "trusted": true,
                        "config": config}),
            );
        }
        Some(pin) => {
            let warning = format!(
                "WARNING: REMOTE HOST IDENTIFICATION HAS CHANGED: site '{}' pins {pin}, but \
                 {}:{} offers the {} key {}; someone may be intercepting the connection",
                site.name, site.host, site.port, info.algorithm, info.fingerprint
            );
            if !args.replace {
                return Err(host_key_error(format!("{warning}. Nothing was changed."))
                    .with_hint(replace_hint(&site)));
            }
            replacing = Some(warning);
        }
        None => match host_key_verdict(&endpoint)
            .await
            .map_err(|e| connect_error(&site, &e))?
        {
            HostKeyVerdict::Changed { message, key } => {
                if !args.replace {
                    let mut e = changed_error(&site, &info, key.as_ref(), &message);
                    e.hint = Some(format!(
                        "{}; or, to pin the new key in the config instead, {}",
                        e.hint.unwrap_or_default(),
                        replace_hint(&site)
                    ));
                    return Err(e);
                }
                replacing = Some(message);
            }
            HostKeyVerdict::Trusted | HostKeyVerdict::Unknown => {}
        },
    }
    if let Some(warning) = &replacing {
        // Loud even with --yes and --json: a changed key is never replaced quietly.
        crate::logging::eprint_redacted(&format!(
            "{warning}\n--replace: pinning the new key; do this only if the server's \
             administrator confirmed it (on the server: \
             `ssh-keygen -lf /etc/ssh/ssh_host_ed25519_key.pub`)\n"
        ));
    }
    let question = format!(
        "Pin it in {} as the host_key of site '{}'?",
        config.display(),
        site.name
    );
    if !args.yes && !confirm(&human_key, &question)? {
        return Err(CliError::usage(format!(
            "site '{}': the host key was not trusted; nothing was written",
            site.name
        )));
    }
    pin_in_config(&config, &site.name, &info.fingerprint)?;
    ctx.output.result(
        &format!(
            "{human_key}\npinned in {}: host_key = \"{}\"",
            config.display(),
            info.fingerprint
        ),
        &json!({"site": site.name, "algorithm": info.algorithm, "fingerprint": info.fingerprint,
                "pinned": true, "replaced": replacing.is_some(), "trusted": true,
                "config": config}),
    )
}

/// `--known-hosts`: the key's line appended to the site's known_hosts file (the behaviour
/// before pins were written), for keys shared with ssh and sftp.
async fn trust_known_hosts(
    ctx: &Context,
    args: &TrustArgs,
    site: &ResolvedSite,
    endpoint: &siteport_sync::Endpoint,
    info: &HostKey,
    human_key: &str,
) -> CliResult {
    let file = target_file(site)?;
    match host_key_verdict(endpoint)
        .await
        .map_err(|e| connect_error(site, &e))?
    {
        HostKeyVerdict::Trusted => {
            return ctx.output.result(
                &format!("{human_key}\nit is already trusted; nothing to do"),
                &json!({"site": site.name, "algorithm": info.algorithm,
                        "fingerprint": info.fingerprint, "added": false, "trusted": true}),
            );
        }
        HostKeyVerdict::Changed { message, key } => {
            return Err(changed_error(site, info, key.as_ref(), &message));
        }
        HostKeyVerdict::Unknown => {}
    }
    if site.host_key.is_some() {
        // The pin decides; a known_hosts line would change nothing.
        return Err(CliError::usage(format!(
            "{human_key}; the site's `host_key` pin decides which key is accepted"
        ))
        .with_hint(format!(
            "check the fingerprint, then run `siteport site trust {}` without --known-hosts \
             to pin it",
            site.name
        )));
    }
    let question = format!("Trust it and add it to {}?", file.display());
    if !args.yes && !confirm(human_key, &question)? {
        return Err(CliError::usage(format!(
            "site '{}': the host key was not trusted; nothing was written",
            site.name
        )));
    }
    append_line(&file, &info.known_hosts_line).map_err(|e| {
        CliError::local_write(format!(
            "cannot add the host key to {}: {e}",
            file.display()
        ))
        .with_hint("make the directory writable, or set `known_hosts` on the site")
    })?;
    ctx.output.result(
        &format!(
            "{human_key}\nadded to {}: {}",
            file.display(),
            info.known_hosts_line
        ),
        &json!({"site": site.name, "algorithm": info.algorithm, "fingerprint": info.fingerprint,
                "added": true, "trusted": true, "file": file, "line": info.known_hosts_line}),
    )
}

/// `SHA256:abc` and `SHA256:abc=` are the same pin; so are `sha256:` and `SHA256:`.
fn same_pin(a: &str, b: &str) -> bool {
    let norm = |p: &str| {
        let p = p.trim().trim_end_matches('=');
        match p.get(..7) {
            Some(prefix) if prefix.eq_ignore_ascii_case("SHA256:") => format!("SHA256:{}", &p[7..]),
            _ => p.to_owned(),
        }
    };
    norm(a) == norm(b)
}

fn replace_hint(site: &ResolvedSite) -> String {
    format!(
        "if the server's key really changed (ask its administrator), run \
         `siteport site trust {} --replace`",
        site.name
    )
}

/// A host key refused: exit 6, like a refused key during an export.
fn host_key_error(message: String) -> CliError {
    CliError::new(
        Failure::Sync(SyncKind::HostKey),
        SyncKind::HostKey.as_str(),
        message,
    )
}

/// Writes `host_key = "<fingerprint>"` into the `[[site]]` table named `site` of the config
/// at `path`: the value replaced in place when the key is there, else added at the end of the
/// table with a comment saying where it came from. The new text must load and pin the key
/// before it replaces the file (atomically, its mode kept).
fn pin_in_config(path: &Path, site: &str, fingerprint: &str) -> CliResult<()> {
    let config_err = |what: String| {
        CliError::usage(format!(
            "cannot pin the host key in {}: {what}; nothing was written",
            path.display()
        ))
        .with_hint(format!(
            "add `host_key = \"{fingerprint}\"` to the [[site]] table of '{site}' by hand"
        ))
    };
    let text = std::fs::read_to_string(path).map_err(|e| config_err(e.to_string()))?;
    let mut doc: DocumentMut = text
        .parse()
        .map_err(|e: toml_edit::TomlError| config_err(e.message().to_owned()))?;
    let table = doc
        .get_mut("site")
        .and_then(Item::as_array_of_tables_mut)
        .and_then(|a| {
            a.iter_mut()
                .find(|t| t.get("name").and_then(Item::as_str) == Some(site))
        })
        .ok_or_else(|| config_err(format!("no [[site]] table named '{site}' in the file")))?;
    match table.get_mut("host_key").and_then(Item::as_value_mut) {
        Some(v) => {
            // In place: the comments around it and its spacing stay.
            let decor = v.decor().clone();
            *v = Value::from(fingerprint);
            *v.decor_mut() = decor;
        }
        None => {
            let day = time::OffsetDateTime::now_utc().date();
            let v = Value::from(fingerprint)
                .decorated(" ", format!("  # pinned by `siteport site trust` on {day}"));
            table.insert("host_key", Item::Value(v));
        }
    }
    let new_text = doc.to_string();
    let check = Config::parse(&new_text, path, &process_env)
        .map_err(|e| config_err(format!("the edited file would not load ({e})")))?;
    let pinned = check
        .site(site)
        .and_then(|s| s.sftp.host_key.as_deref())
        .is_some_and(|p| same_pin(p, fingerprint));
    if !pinned {
        return Err(config_err("the edited file does not pin the key".into()));
    }
    crate::migrate::write_atomic(path, &new_text).map_err(|e| {
        CliError::local_write(e.message).with_hint("make the config file's directory writable")
    })
}

fn connect_error(site: &ResolvedSite, e: &siteport_sync::Error) -> CliError {
    let kind = e.kind();
    let mut out = CliError::new(
        Failure::Sync(kind),
        kind.as_str(),
        format!("site '{}': {e}", site.name),
    );
    out.hint = Some(e.hint().map(str::to_owned).unwrap_or_else(|| {
        format!(
            "check that {}:{} is the right host and port and that sshd is running",
            site.host, site.port
        )
    }));
    out
}

fn changed_error(
    site: &ResolvedSite,
    info: &HostKey,
    changed: Option<&HostKey>,
    message: &str,
) -> CliError {
    let mut out = CliError::new(
        Failure::Sync(SyncKind::HostKey),
        SyncKind::HostKey.as_str(),
        format!("site '{}': {message}", site.name),
    );
    let recorded_at = changed.and_then(|k| k.recorded_at.as_ref());
    out.hint = Some(match (recorded_at, &site.host_key) {
        (_, Some(_)) => format!(
            "if the server's key really changed (ask its administrator), set host_key = \"{}\"",
            info.fingerprint
        ),
        (Some(at), None) => format!(
            "if the server's key really changed (ask its administrator), delete the old line at \
             {at}, then run `siteport site trust {}` again",
            site.name
        ),
        (None, None) => format!(
            "remove the old key, then run `siteport site trust {}` again",
            site.name
        ),
    });
    out
}

/// Where the line goes: the site's `known_hosts`, else `~/.ssh/known_hosts`.
fn target_file(site: &ResolvedSite) -> CliResult<PathBuf> {
    if let Some(f) = &site.known_hosts {
        return Ok(f.clone());
    }
    std::env::var_os("HOME")
        .filter(|h| !h.is_empty())
        .map(|h| PathBuf::from(h).join(".ssh/known_hosts"))
        .ok_or_else(|| {
            CliError::usage("HOME is not set, so there is no ~/.ssh/known_hosts to add to")
                .with_hint("set `known_hosts = \"PATH\"` on the site")
        })
}

/// Shows `what`, asks `question` on the terminal; without one, says how to confirm
/// non-interactively.
fn confirm(what: &str, question: &str) -> CliResult<bool> {
    if !terminal_available() {
        return Err(
            CliError::usage(format!("{what}; there is no terminal to confirm it on")).with_hint(
                "check the fingerprint with the server's administrator (on the server: \
             `ssh-keygen -lf /etc/ssh/ssh_host_ed25519_key.pub`), then rerun with --yes",
            ),
        );
    }
    let tty = OpenOptions::new()
        .read(true)
        .write(true)
        .open("/dev/tty")
        .map_err(|e| CliError::usage(format!("cannot open the terminal: {e}")))?;
    let mut out = &tty;
    let asked = writeln!(out, "{what}").and_then(|()| write!(out, "{question} [y/N] "));
    asked
        .and_then(|()| out.flush())
        .map_err(|e| CliError::usage(format!("cannot write to the terminal: {e}")))?;
    let mut answer = String::new();
    BufReader::new(&tty)
        .take(64)
        .read_line(&mut answer)
        .map_err(|e| CliError::usage(format!("cannot read the answer: {e}")))?;
    Ok(matches!(answer.trim(), "y" | "Y" | "yes" | "Yes" | "YES"))
}

/// Appends `line` to `file` (created 0600, its directory 0700 when missing), on a line of its
/// own even when the file does not end with a newline, and syncs it.
fn append_line(file: &Path, line: &str) -> io::Result<()> {
    if let Some(dir) = file.parent().filter(|d| !d.as_os_str().is_empty())
        && !dir.exists()
    {
        siteport_fsguard::create_private_dir(dir)?;
    }
    // A host key file in a directory another user can write could be swapped for theirs.
    siteport_fsguard::check_parent("known hosts directory", file, false).map_err(|e| {
        let hint = e.hint().unwrap_or_default();
        io::Error::other(format!("{e}; {hint}"))
    })?;
    let mut f = siteport_fsguard::open(
        siteport_fsguard::private_file()
            .read(true)
            .append(true)
            .create(true),
        file,
    )?;
    let len = f.metadata()?.len();
    let mut text = String::new();
    if len > 0 {
        let mut last = [0u8; 1];
        f.seek(SeekFrom::Start(len - 1))?;
        f.read_exact(&mut last)?;
        if last[0] != b'\n' {
            text.push('\n');
        }
    }
    text.push_str(line);
    text.push('\n');
    f.write_all(text.as_bytes())?;
    f.sync_all()
}
