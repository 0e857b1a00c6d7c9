//! One module per command group; each turns parsed arguments into library calls and output.

pub mod config_check;
pub mod credential;
pub mod credential_export;
pub mod demo;
pub mod journal_place;
pub mod login_test;
pub mod migrate;
pub mod site;
pub mod sync;
