//! AWS Secrets Manager against a real `moto_server`: the shared cycles (the credential one
//! selecting the backend with `--credential-backend aws`), and an unreachable endpoint.

use siteport_testsupport::{FtpServer, MotoServer, ServerKind};

use super::{Added, Cli, credential_cycle, export_import_cycle};
use crate::common::{Sandbox, assert_code, stderr};

/// Static test keys; region and endpoint come from the config.
fn key_env() -> Vec<(&'static str, String)> {
    vec![
        ("AWS_ACCESS_KEY_ID", "testing".to_owned()),
        ("AWS_SECRET_ACCESS_KEY", "testing".to_owned()),
        ("AWS_EC2_METADATA_DISABLED", "true".to_owned()),
    ]
}

fn cli<'a>(sb: &'a Sandbox, env: Vec<(&'static str, String)>, flags: bool) -> Cli<'a> {
    Cli {
        sb,
        kind: "aws",
        env,
        backend_flags: if flags {
            vec!["--credential-backend", "aws"]
        } else {
            Vec::new()
        },
        verbose: false,
        leaks: Box::new(Vec::new),
    }
}

#[test]
fn credential_add_list_show_against_moto() {
    let moto = MotoServer::start();
    let sb = Sandbox::new();
    let cli = cli(&sb, moto.aws_env(), true);
    let c = Added {
        name: "acme",
        username: "acme-deploy",
        host: "ftp.acme.example",
        secret: "Cli-aws-S3cret-pw!",
    };
    credential_cycle(&cli, &c, || {}, None);
}

#[test]
fn unreachable_endpoint_exits_3_naming_backend_and_address() {
    let sb = Sandbox::new();
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let endpoint = format!("http://127.0.0.1:{port}");
    std::fs::write(
        sb.workdir().join("siteport.toml"),
        format!(
            "[credentials]\nbackend = \"aws\"\n\n[credentials.aws]\nregion = \"eu-west-1\"\nendpoint_url = \"{endpoint}\"\nmax_attempts = 2\n"
        ),
    )
    .unwrap();
    let o = cli(&sb, key_env(), false).run_quiet(&["credential", "list"], "");
    assert_code(&o, 3);
    let err = stderr(&o);
    assert!(err.contains("aws backend"), "{err}");
    assert!(err.contains(&endpoint), "{err}");
}

#[test]
fn export_import_cycle_with_password_from_aws() {
    let moto = MotoServer::start();
    let server = FtpServer::start(ServerKind::InProcess, false);
    let sb = Sandbox::new();
    // Region and endpoint from the config, keys from the environment.
    let tables = format!(
        "[credentials]\nbackend = \"aws\"\n\n[credentials.aws]\nregion = \"us-east-1\"\nendpoint_url = \"{}\"\nprefix = \"ftp/\"\n",
        moto.endpoint()
    );
    export_import_cycle(&cli(&sb, key_env(), false), &server, &tables, || {});
}
