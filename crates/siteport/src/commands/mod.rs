//! One module per command group; each turns parsed arguments into library calls and output.

pub mod ci_action;
pub mod config_check;
pub mod credential;
pub mod credential_export;
pub mod credential_key;
pub mod credential_test;
pub mod credential_verify;
pub mod demo;
pub mod export_import;
pub mod filters;
pub mod interrupt;
pub mod journal_place;
pub mod migrate;
pub mod site;
pub mod site_lock;
pub mod site_trust;
pub mod status;
