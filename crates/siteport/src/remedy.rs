//! The `siteport` command lines that carry out a credential library [`Remedy`].
//!
//! The library (`siteport-creds`) says what is wrong and which kind of fix applies; this module
//! is the one place that turns that fix into the command a user types.

use siteport_creds::Remedy;

/// The remedy as the hint text the CLI prints, with its `siteport …` command.
pub fn render(r: &Remedy) -> String {
    match r {
        Remedy::AddCredential(name) => format!("add it with `siteport credential add {name}`"),
        Remedy::AddCredentialInto { name, backend } => {
            format!("add it with `siteport credential add {name}` (stores into the {backend})")
        }
        Remedy::ReplaceCredential(name) => {
            format!("replace it with `siteport credential add {name} --force`")
        }
        Remedy::RewriteCredential(name) => format!(
            "rewrite it with `siteport credential add {} --force`",
            name.as_ref().map_or("NAME", |n| n.as_str())
        ),
        Remedy::AddCredentialAgain(name) => {
            format!("add it again with `siteport credential add {name} --force`")
        }
        Remedy::InitStore => "create it with `siteport credential init`".to_owned(),
        Remedy::InitStoreAndIdentity => {
            "create a store and identity with `siteport credential init`".to_owned()
        }
        Remedy::InitStoreThenAdd(name) => format!(
            "create it with `siteport credential init`, then `siteport credential add {name}`"
        ),
        Remedy::CreateIdentity => "create one with `siteport credential init`".to_owned(),
        Remedy::RekeyOrReinit => "change its keys with `siteport credential rekey`, or start over \
             with `siteport credential init --force` (the old store is kept as a backup)"
            .to_owned(),
        Remedy::AddRecipient(recipient) => format!(
            "ask someone who can open it to add you with `siteport credential rekey --recipient {}`",
            recipient.as_deref().unwrap_or("<your age1… public key>")
        ),
        Remedy::RebuildWithFeature(feature) => {
            format!("rebuild with `cargo install siteport --features {feature}`")
        }
        Remedy::AddToFileBackend(name) => format!(
            "store it in the file backend with `siteport --credential-backend file credential add {name}`"
        ),
        Remedy::CreateThroughOrchestrator { dir, name } => format!(
            "create {0}/username and {0}/password through your orchestrator (e.g. `siteport \
             credential export --format k8s-secret {name}`), or use the file backend",
            dir.display()
        ),
        Remedy::UseVerboseLogging => {
            "use `siteport -vvv` for siteport's own redacted logs".to_owned()
        }
        // A remedy added to the library after this CLI was written: say what kind of fix it is.
        other => format!("{other:?}"),
    }
}

/// The whole hint of a credential error: its text with the rendered remedy in place.
pub fn hint(e: &siteport_creds::Error) -> Option<String> {
    e.hint_with(render)
}

#[cfg(test)]
mod tests {
    use super::*;
    use siteport_creds::{CredentialName, Error};

    fn name(s: &str) -> CredentialName {
        CredentialName::new(s).unwrap()
    }

    #[test]
    fn not_found_and_exists_render_the_commands_they_always_had() {
        let e = Error::not_found("file backend (/x)", &name("acme"));
        assert_eq!(
            hint(&e).as_deref(),
            Some("add it with `siteport credential add acme`")
        );
        let e = Error::already_exists("file backend (/x)", &name("acme"));
        assert_eq!(
            hint(&e).as_deref(),
            Some("replace it with `siteport credential add acme --force`")
        );
    }

    #[test]
    fn placeholders_when_the_library_has_no_value() {
        assert_eq!(
            render(&Remedy::RewriteCredential(None)),
            "rewrite it with `siteport credential add NAME --force`"
        );
        assert!(render(&Remedy::AddRecipient(None)).contains("<your age1… public key>"));
        assert_eq!(
            render(&Remedy::RebuildWithFeature("azure".into())),
            "rebuild with `cargo install siteport --features azure`"
        );
    }
}
