//! The siteport CLI: a thin layer over `siteport-creds` (credentials) and `siteport-sync` (the
//! mirror engine, which alone reaches the FTP and SFTP wires); `siteport-ftpd` serves `demo`.
//! `cli` parses the command line and dispatches to `commands` (one module per command, with
//! its arguments); `config` reads `siteport.toml`; `context` holds what a command run shares
//! (the config, read once; the backend); `error` is the CLI's failure type and `exit` maps
//! every failure to its documented exit code, `remedy` adds the command that fixes it;
//! `migrate` moves hard-coded passwords into a store; `logging`, `output`, `progress` and
//! `prompt` are the terminal side (masked logs, text/JSON output, progress bars, prompts).
#![forbid(unsafe_code)]
#![warn(missing_docs)]

pub mod cli;
pub mod commands;
pub mod config;
pub mod context;
pub mod error;
pub mod exit;
pub mod logging;
pub mod migrate;
pub mod output;
pub mod progress;
pub mod prompt;
mod remedy;
