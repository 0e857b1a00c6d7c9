//! Asking a person: hidden password prompts on the terminal, visible ones for usernames, and
//! `--password-stdin`. Passwords never come from argv.

use std::fs::OpenOptions;
use std::io::{self, BufRead, BufReader, IsTerminal, Read, Write};

use secrecy::{ExposeSecret, SecretString};
use siteport_creds::{MAX_FIELD_LEN, Prompter};
use zeroize::Zeroizing;

use crate::error::{CliError, CliResult};
use crate::logging::register_secret;

/// The controlling terminal on Unix; rpassword reads and writes it too.
const TTY: &str = "/dev/tty";

/// Whether someone can answer a prompt: the user is at a terminal (stdin or stderr is one) and the
/// process has a controlling terminal to talk to. Checking stdin/stderr as well as `/dev/tty`
/// keeps scripts and test harnesses, whose streams are pipes, from blocking on a prompt even when
/// they were started from a terminal.
pub fn terminal_available() -> bool {
    (io::stdin().is_terminal() || io::stderr().is_terminal())
        && OpenOptions::new().read(true).write(true).open(TTY).is_ok()
}

/// The [`Prompter`] the library uses (passphrases): a hidden prompt on the terminal, or no answer
/// when there is no terminal.
#[derive(Debug, Clone, Copy, Default)]
pub struct TerminalPrompter;

impl Prompter for TerminalPrompter {
    fn secret(&self, prompt: &str) -> Option<SecretString> {
        if !terminal_available() {
            return None;
        }
        let prompt = if prompt.ends_with(' ') {
            prompt.to_owned()
        } else {
            format!("{prompt} ")
        };
        let answer = SecretString::from(rpassword::prompt_password(prompt).ok()?);
        register_secret(&answer);
        Some(answer)
    }
}

/// Reads one password line from stdin (`--password-stdin`): only the trailing newline (`\n` or
/// `\r\n`) is removed, spaces are kept. The value is registered for redaction.
pub fn password_from_stdin() -> CliResult<SecretString> {
    // Bounded read: a pasted file should fail validation, not fill memory.
    let limit = (MAX_FIELD_LEN + 3) as u64;
    let mut line = Zeroizing::new(String::with_capacity(MAX_FIELD_LEN + 3));
    io::stdin()
        .lock()
        .take(limit)
        .read_line(&mut line)
        .map_err(|e| {
            CliError::usage(format!("cannot read the password from stdin: {e}"))
                .with_hint("pipe exactly one line: `printf '%s\\n' \"$PW\" | siteport credential add NAME --password-stdin`")
        })?;
    let mut value: &str = line.as_str();
    if let Some(v) = value.strip_suffix('\n') {
        value = v.strip_suffix('\r').unwrap_or(v);
    }
    if value.is_empty() {
        return Err(
            CliError::usage("--password-stdin: stdin held no password (empty input)")
                .with_hint("pipe the password on one line: `printf '%s\\n' \"$PW\" | siteport credential add NAME --password-stdin`"),
        );
    }
    let secret = SecretString::from(value.to_owned());
    register_secret(&secret);
    Ok(secret)
}

/// Asks for a new password twice on the terminal, without echo, and refuses a mismatch.
pub fn new_password(name: &str) -> CliResult<SecretString> {
    if !terminal_available() {
        return Err(no_terminal("the password"));
    }
    let read = |prompt: String| -> CliResult<SecretString> {
        let s = SecretString::from(rpassword::prompt_password(prompt).map_err(|e| {
            CliError::usage(format!("cannot read the password from the terminal: {e}"))
                .with_hint("pipe it instead: `… | siteport credential add NAME --password-stdin`")
        })?);
        register_secret(&s);
        Ok(s)
    };
    let first = read(format!("Password for '{name}': "))?;
    if first.expose_secret().is_empty() {
        return Err(CliError::usage("no password entered (empty input)"));
    }
    let second = read(format!("Repeat password for '{name}': "))?;
    if first.expose_secret() != second.expose_secret() {
        return Err(
            CliError::usage("the two passwords do not match; nothing was stored")
                .with_hint("run the command again and type the same password twice"),
        );
    }
    Ok(first)
}

/// Asks for the username on the terminal, visibly.
pub fn username(name: &str) -> CliResult<String> {
    if !terminal_available() {
        return Err(
            CliError::usage("--username is required when there is no terminal to ask on")
                .with_hint(format!(
                    "pass it: `siteport credential add {name} --username USER --password-stdin`"
                )),
        );
    }
    let io_err =
        |e: io::Error| CliError::usage(format!("cannot read the username from the terminal: {e}"));
    let mut tty = OpenOptions::new()
        .read(true)
        .write(true)
        .open(TTY)
        .map_err(io_err)?;
    write!(tty, "Username for '{name}': ").map_err(io_err)?;
    tty.flush().map_err(io_err)?;
    let mut line = String::new();
    BufReader::new(tty)
        .take((MAX_FIELD_LEN + 3) as u64)
        .read_line(&mut line)
        .map_err(io_err)?;
    let value = line.trim_end_matches(['\n', '\r']);
    Ok(value.to_owned())
}

fn no_terminal(what: &str) -> CliError {
    CliError::usage(format!(
        "no terminal to prompt for {what} on, and --password-stdin was not given"
    ))
    .with_hint("pipe the password on stdin: `printf '%s\\n' \"$PW\" | siteport credential add NAME --username USER --password-stdin`")
}
