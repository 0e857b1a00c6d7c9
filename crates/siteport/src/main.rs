//! The siteport command-line tool.

fn main() -> std::process::ExitCode {
    siteport::cli::main()
}
