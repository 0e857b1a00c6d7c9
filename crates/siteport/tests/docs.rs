//! The commands in the README and docs/ are real: every `siteport …` line of a shell block
//! parses with the real command-line definition, and the blocks marked `sh run` (quick start,
//! containers, security) run, in that order, as one bash script against a real FTP server.

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;

use clap::Parser;
use common::*;
use secrecy::ExposeSecret;
use siteport::cli::Cli;
use siteport_testsupport::{FtpServer, ServerKind};

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// Markdown files whose shell blocks are checked.
fn doc_files() -> Vec<PathBuf> {
    let mut v = vec![repo().join("README.md")];
    let mut docs: Vec<PathBuf> = std::fs::read_dir(repo().join("docs"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "md"))
        .collect();
    docs.sort();
    v.extend(docs);
    v
}

/// Shell code blocks of a markdown file: (runnable, text).
fn shell_blocks(text: &str) -> Vec<(bool, String)> {
    let mut out = Vec::new();
    // Inside a fence: (is a shell block, is runnable, body).
    let mut current: Option<(bool, bool, String)> = None;
    for line in text.lines() {
        if let Some(info) = line.trim_start().strip_prefix("```") {
            match current.take() {
                Some((true, run, body)) => out.push((run, body)),
                Some((false, ..)) => {}
                None => {
                    let mut words = info.split_whitespace();
                    let shell = matches!(
                        words.next().unwrap_or(""),
                        "sh" | "bash" | "console" | "shell"
                    );
                    current = Some((shell, words.any(|w| w == "run"), String::new()));
                }
            }
            continue;
        }
        if let Some((_, _, body)) = current.as_mut() {
            body.push_str(line);
            body.push('\n');
        }
    }
    out
}

/// A tiny shell tokenizer: words with '…' and "…" quoting and backslash escapes; stops at a
/// comment, a redirection, a pipe or a command separator (the rest is another command).
fn commands(script: &str) -> Vec<Vec<String>> {
    let joined = script.replace("\\\n", " ");
    let mut cmds = Vec::new();
    for line in joined.lines() {
        let line = line.trim().trim_start_matches("$ ");
        let mut words: Vec<String> = Vec::new();
        let mut word = String::new();
        let mut in_word = false;
        let mut chars = line.chars().peekable();
        let mut skip_rest_of_command = false;
        let flush = |words: &mut Vec<String>, word: &mut String, in_word: &mut bool| {
            if *in_word {
                words.push(std::mem::take(word));
                *in_word = false;
            }
        };
        while let Some(c) = chars.next() {
            match c {
                '\'' => {
                    in_word = true;
                    for q in chars.by_ref() {
                        if q == '\'' {
                            break;
                        }
                        word.push(q);
                    }
                }
                '"' => {
                    in_word = true;
                    while let Some(q) = chars.next() {
                        match q {
                            '"' => break,
                            '\\' => word.extend(chars.next()),
                            q => word.push(q),
                        }
                    }
                }
                '\\' => {
                    in_word = true;
                    word.extend(chars.next());
                }
                '#' if !in_word => break,
                '|' | ';' | '&' | '(' | ')' => {
                    flush(&mut words, &mut word, &mut in_word);
                    if !skip_rest_of_command {
                        cmds.push(std::mem::take(&mut words));
                    }
                    words.clear();
                    skip_rest_of_command = false;
                }
                '<' | '>' => {
                    flush(&mut words, &mut word, &mut in_word);
                    cmds.push(std::mem::take(&mut words));
                    skip_rest_of_command = true;
                }
                c if c.is_whitespace() => flush(&mut words, &mut word, &mut in_word),
                c => {
                    in_word = true;
                    word.push(c);
                }
            }
        }
        flush(&mut words, &mut word, &mut in_word);
        if !skip_rest_of_command {
            cmds.push(words);
        }
    }
    cmds.into_iter()
        .map(|mut w| {
            // Leading `VAR=value` assignments are environment, not arguments.
            let n = w
                .iter()
                .take_while(|x| x.contains('=') && !x.starts_with('-'))
                .count();
            w.drain(..n);
            w
        })
        .filter(|w| w.first().is_some_and(|x| x == "siteport"))
        .collect()
}

#[test]
fn every_documented_siteport_command_parses() {
    let mut checked = 0;
    let mut failures = Vec::new();
    for file in doc_files() {
        let text = std::fs::read_to_string(&file).unwrap();
        for (_, block) in shell_blocks(&text) {
            for cmd in commands(&block) {
                checked += 1;
                if let Err(e) = Cli::try_parse_from(&cmd) {
                    use clap::error::ErrorKind;
                    if !matches!(e.kind(), ErrorKind::DisplayHelp | ErrorKind::DisplayVersion) {
                        failures.push(format!("{}: `{}`: {e}", file.display(), cmd.join(" ")));
                    }
                }
            }
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
    assert!(
        checked >= 40,
        "only {checked} commands found: is the extraction broken?"
    );
    // The checker itself rejects a wrong command.
    let bad = commands("siteport credential export --format zip -o x\n");
    assert_eq!(bad.len(), 1);
    assert!(Cli::try_parse_from(&bad[0]).is_err());
}

/// `siteport …` in inline code spans (`` `siteport export acme` ``) of any text.
fn inline_commands(text: &str) -> Vec<String> {
    text.split('`')
        .skip(1)
        .step_by(2)
        .filter(|span| span.starts_with("siteport ") && !span.contains('\n'))
        .map(str::to_owned)
        .collect()
}

/// Every file under examples/ and deploy/ that is text (configs, manifests, Dockerfile).
fn example_files() -> Vec<PathBuf> {
    let mut out = Vec::new();
    let mut stack = vec![repo().join("examples"), repo().join("deploy")];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).unwrap() {
            let p = e.unwrap().path();
            if p.is_dir() {
                stack.push(p);
            } else if p
                .extension()
                .is_none_or(|x| x != "html" && x != "css" && x != "png")
            {
                out.push(p);
            }
        }
    }
    out.sort();
    out
}

/// The inline `siteport …` spans of README, docs/ and every example and deploy file parse too
/// (placeholders in CAPITALS parse as positional values; `…` marks an elided rest).
#[test]
fn every_inline_siteport_command_parses() {
    let mut checked = 0;
    let mut failures = Vec::new();
    let mut files = doc_files();
    files.extend(example_files());
    for file in files {
        let Ok(text) = std::fs::read_to_string(&file) else {
            continue;
        };
        for span in inline_commands(&text) {
            // A synopsis (`[--backend KIND]`) is checked by the README's command list.
            let Some(span) = span.split('…').next().filter(|s| !s.contains('[')) else {
                continue;
            };
            for cmd in commands(span) {
                checked += 1;
                if let Err(e) = Cli::try_parse_from(&cmd) {
                    use clap::error::ErrorKind;
                    // An inline span may name a command without all its arguments
                    // (`siteport credential add`); a wrong command or flag is what fails.
                    if !matches!(
                        e.kind(),
                        ErrorKind::DisplayHelp
                            | ErrorKind::DisplayVersion
                            | ErrorKind::MissingRequiredArgument
                            | ErrorKind::InvalidValue
                            | ErrorKind::DisplayHelpOnMissingArgumentOrSubcommand
                    ) {
                        failures.push(format!("{}: `{}`: {e}", file.display(), cmd.join(" ")));
                    }
                }
            }
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
    assert!(checked >= 40, "only {checked} inline commands found");
    // The rename that went unnoticed: `credential rm` is not a command.
    assert!(Cli::try_parse_from(["siteport", "credential", "rm", "acme"]).is_err());
}

#[test]
fn runnable_doc_blocks_run() {
    let server = FtpServer::start(ServerKind::InProcess, false);
    let sb = Sandbox::new();
    let mut script = String::from("set -euo pipefail\n");
    let mut blocks = 0;
    for name in ["quickstart.md", "containers.md", "security.md"] {
        let text = std::fs::read_to_string(repo().join("docs").join(name)).unwrap();
        for (run, block) in shell_blocks(&text) {
            if run {
                script.push_str(&format!("echo '== docs/{name} block' >&2\n{block}"));
                blocks += 1;
            }
        }
    }
    assert!(blocks >= 7, "{blocks} runnable blocks");
    std::fs::write(
        sb.workdir().join("ftp-password.txt"),
        format!("{}\n", server.password.expose_secret()),
    )
    .unwrap();
    let bin_dir = bin().parent().unwrap().to_path_buf();
    let path = format!("{}:/usr/bin:/bin", bin_dir.display());
    let o = Command::new("bash")
        .arg("-c")
        .arg(&script)
        .env_clear()
        .envs(sb.envs())
        .env("PATH", path)
        .env("FTP_HOST", "127.0.0.1")
        .env("FTP_PORT", server.port.to_string())
        .env("FTP_TLS", "none")
        .env("FTP_USER", &server.user)
        .current_dir(sb.workdir())
        .output()
        .unwrap();
    assert_code(&o, 0);
    assert_eq!(
        std::fs::read_to_string(server.root().join("index.html")).unwrap(),
        "<h1>hello</h1>\n"
    );
    let out = stdout(&o);
    assert!(out.contains("600 exported.env"), "{out}");
    // `ls secrets/acme` of containers.md: the exported secrets directory.
    assert!(out.contains("password\nusername\n"), "{out}");
    assert!(!stderr(&o).contains(server.password.expose_secret()));
}

/// The rows of the README's "## Exit codes" table: (code, meaning).
fn readme_exit_codes() -> Vec<(u8, String)> {
    let text = std::fs::read_to_string(repo().join("README.md")).unwrap();
    let section = text
        .split("\n## Exit codes\n")
        .nth(1)
        .expect("README has an '## Exit codes' section");
    let section = section.split("\n## ").next().unwrap_or(section);
    section
        .lines()
        .filter_map(|l| {
            let cells: Vec<&str> = l.trim().trim_matches('|').split('|').collect();
            let code = cells.first()?.trim().parse::<u8>().ok()?;
            Some((code, cells.get(1)?.trim().to_owned()))
        })
        .collect()
}

/// The rows of `exit::HELP_TABLE` (what `siteport --help` ends with): (code, meaning).
fn help_exit_codes() -> Vec<(u8, String)> {
    siteport::exit::HELP_TABLE
        .lines()
        .skip(1)
        .map(|l| {
            let (code, meaning) = l.trim().split_once("  ").unwrap_or_else(|| {
                panic!("HELP_TABLE line `{l}` is not `CODE  MEANING`");
            });
            (code.parse().unwrap(), meaning.trim().to_owned())
        })
        .collect()
}

#[test]
fn exit_code_tables_agree() {
    let constants: Vec<u8> = siteport::exit::ALL.iter().map(|(c, _)| *c).collect();
    let readme = readme_exit_codes();
    let help = help_exit_codes();
    let codes = |rows: &[(u8, String)]| rows.iter().map(|(c, _)| *c).collect::<Vec<u8>>();
    assert_eq!(codes(&readme), constants, "README exit codes vs exit::ALL");
    assert_eq!(
        codes(&help),
        constants,
        "HELP_TABLE exit codes vs exit::ALL"
    );
    assert!(siteport::exit::HELP_TABLE.starts_with("Exit codes:\n"));
    // The same meaning in both: the README row starts with the help line's headline (the
    // help line up to its parenthesis, which only abbreviates the README's examples).
    let mut failures = Vec::new();
    for ((code, long), (_, short)) in readme.iter().zip(&help) {
        let headline = short.split(" (").next().unwrap_or(short);
        if !long.starts_with(headline) {
            failures.push(format!(
                "code {code}: README says `{long}`, --help says `{short}`"
            ));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
    // The numbers scripts rely on (SPEC §5).
    use siteport::exit::*;
    assert_eq!(
        [
            OK,
            INTERNAL,
            USAGE,
            CREDENTIAL,
            LOGIN_REFUSED,
            TRANSFERS_FAILED,
            NETWORK,
            LOCKED
        ],
        [0, 1, 2, 3, 4, 5, 6, 7]
    );
}

/// The `toml` blocks of README and docs/ that hold a `[[site]]` parse with the real config
/// reader, so a documented site key (`state_dir`, `max_delete`, …) is one the reader knows.
#[test]
fn documented_site_configs_parse() {
    let mut checked = 0;
    let mut failures = Vec::new();
    for file in doc_files() {
        let text = std::fs::read_to_string(&file).unwrap();
        let mut block: Option<String> = None;
        for line in text.lines() {
            let fence = line.trim_start().strip_prefix("```");
            match (fence, block.as_mut()) {
                (Some(_), Some(_)) => {
                    let body = block.take().unwrap_or_default();
                    if body.contains("[[site]]") {
                        checked += 1;
                        let env = |_: &str| {
                            Ok::<_, siteport_creds::reference::NotUnicode>(Some("x".to_owned()))
                        };
                        let path = Path::new("/docs/siteport.toml");
                        if let Err(e) = siteport::config::Config::parse(&body, path, &env) {
                            failures.push(format!("{}: {e}\n{body}", file.display()));
                        }
                    }
                }
                (Some(info), None) if info.trim() == "toml" => block = Some(String::new()),
                (Some(_), None) => block = Some(String::from("not toml")),
                (None, Some(b)) if !b.starts_with("not toml") => {
                    b.push_str(line);
                    b.push('\n');
                }
                (None, _) => {}
            }
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n\n"));
    assert!(checked >= 5, "only {checked} site configs found");
}
