//! The siteport CLI: a thin layer over `siteport-creds` (and, later, the FTP and sync crates).
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
