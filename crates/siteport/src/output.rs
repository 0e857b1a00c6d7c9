//! What commands print: human text and tables, or JSON objects with `--json`. Data goes to
//! stdout; errors go to stderr (redacted), as `error: …` + `hint: …` or as a JSON object.

use std::borrow::Cow;
use std::io::{self, Write};

use serde::Serialize;
use serde_json::{Value, json};
use siteport_creds::CredentialInfo;
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

use crate::error::{CliError, CliResult};
use crate::logging::eprint_redacted;

/// Where command results go, and in which form.
#[derive(Debug, Clone, Copy)]
pub struct Output {
    /// `--json`: one JSON object per command on stdout, JSON errors on stderr.
    pub json: bool,
}

impl Output {
    /// Prints `human` as a line, or `value` as JSON.
    pub fn result(&self, human: &str, value: &Value) -> CliResult {
        if self.json {
            self.json_line(value)
        } else {
            stdout_write(&format!("{human}\n"))
        }
    }

    /// Prints any serialisable value as one JSON document on stdout.
    pub fn json_line<T: Serialize>(&self, value: &T) -> CliResult {
        let text = serde_json::to_string_pretty(value)
            .map_err(|e| CliError::internal(format!("cannot encode JSON output: {e}")))?;
        stdout_write(&format!("{text}\n"))
    }

    /// `credential list`: a table, or `{"backend": …, "credentials": [...]}`.
    pub fn credential_list(&self, backend: &str, items: &[CredentialInfo]) -> CliResult {
        if self.json {
            return self.json_line(&json!({ "backend": backend, "credentials": items }));
        }
        if items.is_empty() {
            return stdout_write(&format!("no credentials in {backend}\n"));
        }
        let header = ["NAME", "USERNAME", "HOST", "PORT", "SOURCE", "UPDATED"];
        let rows: Vec<[String; 6]> = items
            .iter()
            .map(|i| {
                [
                    i.name.to_string(),
                    i.username.clone().unwrap_or_else(|| "-".into()),
                    i.host.clone().unwrap_or_else(|| "-".into()),
                    i.port.map_or_else(|| "-".into(), |p| p.to_string()),
                    i.source.to_string(),
                    timestamp(i.updated),
                ]
            })
            .collect();
        stdout_write(&table(&header, &rows))
    }

    /// Prints an error on stderr: `error: …` and `hint: …`, or a JSON object
    /// `{"error": {"kind", "message", "hint", "exit_code"}}`.
    pub fn error(&self, e: &CliError) {
        if self.json {
            let v = json!({
                "error": {
                    "kind": e.kind,
                    "message": e.message,
                    "hint": e.hint,
                    "exit_code": e.code,
                }
            });
            eprint_redacted(&format!("{v}\n"));
        } else {
            let mut text = format!("error: {}\n", e.message);
            if let Some(h) = &e.hint {
                text.push_str(&format!("hint: {h}\n"));
            }
            eprint_redacted(&text);
        }
    }
}

/// Prints `text` and a newline on stdout, escaped and redacted like stderr (a safety net:
/// callers never pass secrets).
pub fn print_line(text: &str) -> CliResult {
    stdout_write(&format!("{}\n", crate::logging::clean(text)))
}

/// `text` with every control character except line feed and tab (C0, DEL and C1: ESC, BEL,
/// CR, backspace, NUL, U+009B CSI, …) written as a Rust-style escape (`\u{1b}`).
///
/// Text that came from a server (a reply in an error, a listed name, a greeting at `-v`) may
/// carry terminal escape sequences: raw, they could recolour the terminal, move the cursor
/// over earlier lines, set the window title or hide what follows. This is the one function
/// that makes such text inert; every stream siteport prints to (stdout, stderr, log events,
/// `--log-file`, progress notes) passes through it, so no caller has to remember.
/// `--json` output needs nothing more: JSON strings already escape control characters.
pub fn escape_controls(text: &str) -> Cow<'_, str> {
    let unsafe_char = |c: char| c.is_control() && c != '\n' && c != '\t';
    if !text.contains(unsafe_char) {
        return Cow::Borrowed(text);
    }
    let mut out = String::with_capacity(text.len() + 8);
    for c in text.chars() {
        if unsafe_char(c) {
            out.extend(c.escape_unicode());
        } else {
            out.push(c);
        }
    }
    Cow::Owned(out)
}

/// A timestamp as RFC 3339 to the second, or `-`.
pub fn timestamp(t: Option<OffsetDateTime>) -> String {
    t.and_then(|t| t.replace_nanosecond(0).ok())
        .and_then(|t| t.format(&Rfc3339).ok())
        .unwrap_or_else(|| "-".into())
}

/// Left-aligned columns separated by two spaces, the last column unpadded.
fn table<const N: usize>(header: &[&str; N], rows: &[[String; N]]) -> String {
    let mut widths = header.map(|h| h.chars().count());
    for r in rows {
        for (w, cell) in widths.iter_mut().zip(r) {
            *w = (*w).max(cell.chars().count());
        }
    }
    let mut out = String::new();
    let mut line = |cells: Vec<&str>| {
        let mut l = String::new();
        for (i, c) in cells.iter().enumerate() {
            if i + 1 == N {
                l.push_str(c);
            } else {
                l.push_str(&format!("{c:<w$}  ", w = widths[i]));
            }
        }
        out.push_str(l.trim_end());
        out.push('\n');
    };
    line(header.to_vec());
    for r in rows {
        line(r.iter().map(String::as_str).collect());
    }
    out
}

/// Writes to stdout; a closed pipe (`siteport credential list | head -1`) is not an error worth
/// a message, but anything else is internal.
fn stdout_write(text: &str) -> CliResult {
    stdout_bytes(escape_controls(text).as_bytes())
}

/// Writes raw bytes to stdout (completion scripts, the man page) with the same rule: a reader
/// that closed the pipe (`siteport completions bash | head -1`) ends the command quietly.
pub fn stdout_bytes(bytes: &[u8]) -> CliResult {
    let mut out = io::stdout().lock();
    match out.write_all(bytes).and_then(|()| out.flush()) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == io::ErrorKind::BrokenPipe => Ok(()),
        Err(e) => Err(CliError::internal(format!("cannot write to stdout: {e}"))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn table_aligns_columns() {
        let t = table(
            &["NAME", "USER"],
            &[["a".into(), "x".into()], ["longer-name".into(), "y".into()]],
        );
        assert_eq!(t, "NAME         USER\na            x\nlonger-name  y\n");
    }

    #[test]
    fn control_characters_are_escaped_newlines_and_tabs_kept() {
        assert!(matches!(escape_controls("plain\ttext\n"), Cow::Borrowed(_)));
        assert_eq!(
            escape_controls("a\u{1b}[31mred\u{7}\r\u{0}\u{7f}\u{9b}2J ünï\n"),
            "a\\u{1b}[31mred\\u{7}\\u{d}\\u{0}\\u{7f}\\u{9b}2J ünï\n"
        );
    }

    #[test]
    fn timestamps() {
        assert_eq!(timestamp(None), "-");
        let t = OffsetDateTime::from_unix_timestamp(0).unwrap() + time::Duration::milliseconds(5);
        assert_eq!(timestamp(Some(t)), "1970-01-01T00:00:00Z");
    }
}
