//! Credential names to Key Vault secret names and back.

use crate::credential::CredentialName;

/// Key Vault's limit on secret names.
pub const MAX_SECRET_NAME: usize = 127;

/// The Key Vault secret name (without prefix) of a credential name: letters and digits as they
/// are, `-` → `--`, `.` → `-d`, `_` → `-u`.
pub fn encode_name(name: &CredentialName) -> String {
    let mut out = String::with_capacity(name.as_str().len() * 2);
    for c in name.as_str().chars() {
        match c {
            '-' => out.push_str("--"),
            '.' => out.push_str("-d"),
            '_' => out.push_str("-u"),
            c => out.push(c),
        }
    }
    out
}

/// The credential name a Key Vault secret name (without prefix) stands for, or `None` when it
/// is not the canonical encoding of a valid credential name. Key Vault names are
/// case-insensitive, so the input is read in lowercase.
pub fn decode_name(encoded: &str) -> Option<CredentialName> {
    let lower = encoded.to_ascii_lowercase();
    let mut out = String::with_capacity(lower.len());
    let mut chars = lower.chars();
    while let Some(c) = chars.next() {
        match c {
            '-' => out.push(match chars.next()? {
                '-' => '-',
                'd' => '.',
                'u' => '_',
                _ => return None,
            }),
            c if c.is_ascii_alphanumeric() => out.push(c),
            _ => return None,
        }
    }
    let name = CredentialName::new(&out).ok()?;
    (name.as_str() == out && encode_name(&name) == lower).then_some(name)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn examples() {
        let n = CredentialName::new("shop.example-com_2").unwrap();
        assert_eq!(encode_name(&n), "shop-dexample--com-u2");
        assert_eq!(decode_name("shop-dexample--com-u2"), Some(n.clone()));
        assert_eq!(decode_name("SHOP-DEXAMPLE--COM-U2"), Some(n));
        for bad in ["", "-", "a-", "a-x", "a.b", "a_b", "-da", "a---"] {
            assert_eq!(decode_name(bad), None, "{bad}");
        }
    }
}
