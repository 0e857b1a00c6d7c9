//! One module per command group; each turns parsed arguments into library calls and output.

pub mod credential;
pub mod credential_export;
