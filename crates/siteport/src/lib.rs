//! The siteport CLI: a thin layer over `siteport-creds` (credentials), `siteport-sync` (the
//! mirror engine) and `siteport-ftp`. `cli` parses the command line and dispatches to
//! `commands` (one module per command, with its arguments); `config` reads `siteport.toml`;
//! `context` holds what a command run shares (the config, read once; the backend); `exit` maps
//! every failure to its documented exit code; `migrate` moves hard-coded passwords into a store.
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
