//! PLACEHOLDER: argument parsing and dispatch.
use std::process::ExitCode;

/// Runs the CLI.
pub fn main() -> ExitCode {
    ExitCode::from(2)
}
