//! FileZilla's site manager (`sitemanager.xml`): servers in nested folders, passwords plain or
//! base64 (`<Pass encoding="base64">`); master-password-encrypted ones (`encoding="crypt"`)
//! cannot be read without FileZilla and are reported, not guessed.

use base64::Engine;
use secrecy::SecretString;

/// One `<Server>` entry.
#[derive(Debug, Clone)]
pub struct FileZillaServer {
    /// The folders it sits in, outermost first.
    pub folders: Vec<String>,
    /// `<Name>`, or the host when missing.
    pub name: String,
    /// `<Host>`.
    pub host: String,
    /// `<Port>`.
    pub port: Option<u16>,
    /// `<Protocol>`: 0 FTP (TLS if offered), 1 SFTP, 3 FTPS implicit, 4 FTPES explicit,
    /// 6 plain FTP only.
    pub protocol: u32,
    /// `<User>`.
    pub user: Option<String>,
    /// `<Pass>`, decoded.
    pub password: Option<SecretString>,
    /// Why a `<Pass>` present in the file could not be used.
    pub password_problem: Option<String>,
    /// `<RemoteDir>`, decoded from FileZilla's length-prefixed form to `/a/b`.
    pub remote_dir: Option<String>,
    /// `<LocalDir>`.
    pub local_dir: Option<String>,
}

/// Parses a `sitemanager.xml` document. Errors say what is wrong, never a value.
pub fn parse_sitemanager(xml: &str) -> Result<Vec<FileZillaServer>, String> {
    let doc = roxmltree::Document::parse(xml).map_err(|e| format!("not valid XML: {e}"))?;
    let root = doc.root_element();
    if root.tag_name().name() != "FileZilla3" {
        return Err(format!(
            "the root element is <{}>, not <FileZilla3>",
            root.tag_name().name()
        ));
    }
    let servers = root
        .children()
        .find(|n| n.has_tag_name("Servers"))
        .ok_or("no <Servers> element (is this FileZilla's sitemanager.xml?)")?;
    let mut out = Vec::new();
    walk(servers, &mut Vec::new(), &mut out)?;
    Ok(out)
}

fn walk(
    node: roxmltree::Node<'_, '_>,
    folders: &mut Vec<String>,
    out: &mut Vec<FileZillaServer>,
) -> Result<(), String> {
    for child in node.children().filter(|n| n.is_element()) {
        match child.tag_name().name() {
            "Folder" => {
                // The folder's name is its own text, before the nested elements.
                let name = child
                    .children()
                    .filter(|n| n.is_text())
                    .filter_map(|n| n.text())
                    .map(str::trim)
                    .find(|t| !t.is_empty())
                    .unwrap_or("folder")
                    .to_owned();
                folders.push(name);
                walk(child, folders, out)?;
                folders.pop();
            }
            "Server" => out.push(server(child, folders)?),
            _ => {}
        }
    }
    Ok(())
}

fn server(node: roxmltree::Node<'_, '_>, folders: &[String]) -> Result<FileZillaServer, String> {
    let field = |tag: &str| {
        node.children()
            .find(|n| n.has_tag_name(tag))
            .and_then(|n| n.text())
            .map(str::trim)
            .filter(|t| !t.is_empty())
            .map(str::to_owned)
    };
    let host = field("Host").ok_or("a <Server> has no <Host>")?;
    let port = match field("Port") {
        None => None,
        Some(p) => Some(siteport_creds::parse_port(&p).map_err(|e| format!("server {host}: {e}"))?),
    };
    let protocol = field("Protocol").and_then(|p| p.parse().ok()).unwrap_or(0);
    let (mut password, mut password_problem) = (None, None);
    if let Some(pass) = node.children().find(|n| n.has_tag_name("Pass")) {
        let text = pass.text().unwrap_or("").trim();
        match pass.attribute("encoding") {
            _ if text.is_empty() => {}
            None | Some("plain") => password = Some(SecretString::from(text.to_owned())),
            Some("base64") => match base64::engine::general_purpose::STANDARD
                .decode(text)
                .ok()
                .and_then(|b| String::from_utf8(b).ok())
            {
                Some(p) => password = Some(SecretString::from(p)),
                None => password_problem = Some("its base64 password does not decode".into()),
            },
            Some("crypt") => {
                password_problem = Some(
                    "its password is encrypted with a FileZilla master password; export the \
                     sites from FileZilla without a master password, or add the password with \
                     `siteport credential add`"
                        .into(),
                )
            }
            Some(other) => password_problem = Some(format!("unknown password encoding '{other}'")),
        }
    }
    Ok(FileZillaServer {
        folders: folders.to_vec(),
        name: field("Name").unwrap_or_else(|| host.clone()),
        host,
        port,
        protocol,
        user: field("User"),
        password,
        password_problem,
        remote_dir: field("RemoteDir").and_then(|r| remote_dir(&r)),
        local_dir: field("LocalDir"),
    })
}

/// FileZilla writes `/home/www` as `1 0 4 home 3 www`: a server type, then length-prefixed
/// segments (the first, empty, is the prefix). `None` when it does not fit that shape.
fn remote_dir(raw: &str) -> Option<String> {
    let mut rest = raw.trim();
    let (_kind, r) = rest.split_once(' ')?;
    rest = r;
    let mut segments = Vec::new();
    while !rest.is_empty() {
        let (len, r) = rest.split_once(' ').unwrap_or((rest, ""));
        let len: usize = len.parse().ok()?;
        let seg = r.get(..len)?;
        segments.push(seg.to_owned());
        rest = r.get(len..)?.trim_start_matches(' ');
    }
    let parts: Vec<String> = segments.into_iter().filter(|s| !s.is_empty()).collect();
    Some(format!("/{}", parts.join("/")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn remote_dirs_decode() {
        assert_eq!(remote_dir("1 0 4 home 3 www").as_deref(), Some("/home/www"));
        assert_eq!(remote_dir("1 0 7 my site").as_deref(), Some("/my site"));
        assert_eq!(remote_dir("1 0").as_deref(), Some("/"));
        assert_eq!(remote_dir("garbage"), None);
        assert_eq!(remote_dir("1 0 9 x"), None);
    }

    #[test]
    fn wrong_documents_are_refused() {
        assert!(
            parse_sitemanager("<nope/>")
                .unwrap_err()
                .contains("FileZilla3")
        );
        assert!(parse_sitemanager("not xml").unwrap_err().contains("XML"));
    }
}
