//! `siteport site trust SITE`: show an SFTP server's host key and, once a person has
//! confirmed its fingerprint (`--yes`, or `y` at a prompt), record it in the site's
//! `known_hosts` file (else `~/.ssh/known_hosts`), the way `ssh` asks on a first connection.
//!
//! No password or key is ever offered while doing so: the key is read during the key
//! exchange, and the check against the site's own policy authenticates through an agent
//! socket that does not exist, so the session ends before any authentication request.

use std::fs::OpenOptions;
use std::io::{self, BufRead, BufReader, Read, Seek, SeekFrom, Write};

use std::path::{Path, PathBuf};

use clap::{Args, Subcommand};
use serde_json::json;
use siteport_sync::ErrorKind as SyncKind;
use siteport_sync::{HostKey, HostKeyVerdict, host_key_verdict, offered_host_key};

use crate::commands::site_lock::resolve;
use crate::config::{ResolvedSite, SiteProtocol};
use crate::context::Context;
use crate::error::{CliError, CliResult};
use crate::exit::Failure;
use crate::prompt::terminal_available;

/// `siteport site …`.
#[derive(Debug, Subcommand)]
pub enum SiteCommand {
    /// Show an SFTP server's host key fingerprint and, when confirmed, add it to the site's
    /// `known_hosts` file (else ~/.ssh/known_hosts). No password or key is sent.
    Trust(TrustArgs),
}

/// `siteport site trust SITE [--yes]`.
#[derive(Debug, Args)]
pub struct TrustArgs {
    /// Site name (a `[[site]]` with `protocol = "sftp"`).
    pub site: String,
    /// Trust the key without asking (check the fingerprint with the server's administrator
    /// first).
    #[arg(long, short = 'y')]
    pub yes: bool,
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
    let endpoint = crate::commands::site::endpoint(&site);
    let info = offered_host_key(&endpoint)
        .await
        .map_err(|e| connect_error(&site, &e))?;
    let file = target_file(&site)?;
    let human_key = format!(
        "site '{}': {}:{} offers the {} host key {}",
        site.name, site.host, site.port, info.algorithm, info.fingerprint
    );
    match host_key_verdict(&endpoint)
        .await
        .map_err(|e| connect_error(&site, &e))?
    {
        HostKeyVerdict::Trusted => {
            return ctx.output.result(
                &format!("{human_key}\nit is already trusted; nothing to do"),
                &json!({"site": site.name, "algorithm": info.algorithm,
                        "fingerprint": info.fingerprint, "added": false, "trusted": true}),
            );
        }
        HostKeyVerdict::Changed { message, key } => {
            return Err(changed_error(&site, &info, key.as_ref(), &message));
        }
        HostKeyVerdict::Unknown => {}
    }
    if site.host_key.is_some() || site.insecure_host_key {
        // The pin (or "accept anything") decides; a known_hosts line would change nothing.
        return Err(CliError::usage(format!(
            "{human_key}; the site's `host_key` pin decides which key is accepted"
        ))
        .with_hint(format!(
            "check the fingerprint, then set host_key = \"{}\" on the site",
            info.fingerprint
        )));
    }
    if !args.yes && !confirm(&human_key, &file)? {
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

/// Asks on the terminal; without one, says how to confirm non-interactively.
fn confirm(what: &str, file: &Path) -> CliResult<bool> {
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
    let asked = writeln!(out, "{what}")
        .and_then(|()| write!(out, "Trust it and add it to {}? [y/N] ", file.display()));
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
