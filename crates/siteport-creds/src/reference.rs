//! References inside config strings: `${VAR}`, `${VAR:-default}`, `${cred:NAME}`,
//! `${cred:NAME#field}` and `$$`.
//!
//! Environment references behave as the original Python tool's `expand_env_vars` did, so old
//! configs keep working: `${VAR}` is the variable's value; `${VAR:-default}` is the value when
//! the variable is set (even to the empty string) and `default` when it is not (the default is
//! taken literally up to the first `}`); a `$` not followed by `{` stays a `$`. Two things are
//! new: `$$` is a literal `$`, and a variable that is unset without a default is an error
//! rather than an empty string (a silently empty password only fails later, at login).
//!
//! `${cred:NAME}` is the password of credential `NAME`; `${cred:NAME#username}`, `#password`,
//! `#host` and `#port` pick a field.
//!
//! [`parse`] returns [`Segment`]s with byte offsets into the input, so that callers can point
//! at a line and column; [`expand`] resolves them with a variable lookup and a credential
//! resolver. The expanded value is a [`SecretString`], since it may hold a password.

use std::fmt;
use std::ops::Range;

use async_trait::async_trait;
use secrecy::{ExposeSecret, SecretString};
use zeroize::Zeroizing;

use crate::backend::CredentialBackend;
use crate::credential::{Credential, CredentialName};

/// A field of a credential that `${cred:NAME#field}` can pick.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CredField {
    /// `#username`.
    Username,
    /// `#password` (also what `${cred:NAME}` means).
    Password,
    /// `#host`.
    Host,
    /// `#port`.
    Port,
}

impl CredField {
    /// The name used after `#`.
    pub fn as_str(self) -> &'static str {
        match self {
            CredField::Username => "username",
            CredField::Password => "password",
            CredField::Host => "host",
            CredField::Port => "port",
        }
    }
}

impl fmt::Display for CredField {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// What one piece of a parsed string is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SegmentKind {
    /// Text taken as is (`$$` already turned into `$`).
    Literal(String),
    /// `${VAR}` or `${VAR:-default}`.
    Env {
        /// The variable's name.
        var: String,
        /// The default, when given.
        default: Option<String>,
    },
    /// `${cred:NAME}` or `${cred:NAME#field}`.
    Cred {
        /// The credential.
        name: CredentialName,
        /// Which field.
        field: CredField,
    },
}

/// One piece of a parsed string and where it is (byte range in the input).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Segment {
    /// Byte range in the parsed string.
    pub span: Range<usize>,
    /// What it is.
    pub kind: SegmentKind,
}

/// Why a string could not be parsed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ParseErrorKind {
    /// `${` without a closing `}`.
    Unterminated,
    /// `${}` or a variable name that is not `[A-Za-z_][A-Za-z0-9_]*`.
    BadVariableName(String),
    /// `${kind:…}` with a kind other than `cred`.
    UnknownKind(String),
    /// `${cred:NAME}` with an invalid name.
    BadCredentialName(String),
    /// `${cred:NAME#field}` with an unknown field.
    UnknownField(String),
}

/// A reference that cannot be parsed, with the byte range of the offending part.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct ParseError {
    /// Byte range in the parsed string.
    pub span: Range<usize>,
    /// What is wrong.
    pub kind: ParseErrorKind,
    message: String,
}

impl ParseError {
    fn new(span: Range<usize>, kind: ParseErrorKind) -> Self {
        let message = match &kind {
            ParseErrorKind::Unterminated => {
                "unterminated reference: '${' without a closing '}' (write '$$' for a literal '$')"
                    .to_owned()
            }
            ParseErrorKind::BadVariableName(v) => format!(
                "invalid variable name '{}' in reference: use letters, digits and '_', not starting with a digit",
                printable(v)
            ),
            ParseErrorKind::UnknownKind(k) => format!(
                "unknown reference kind '{}': expected ${{VAR}}, ${{VAR:-default}} or ${{cred:NAME}}",
                printable(k)
            ),
            ParseErrorKind::BadCredentialName(reason) => {
                format!("invalid credential name in reference: {reason}")
            }
            ParseErrorKind::UnknownField(f) => format!(
                "unknown credential field '#{}': expected #username, #password, #host or #port",
                printable(f)
            ),
        };
        Self {
            span,
            kind,
            message,
        }
    }
}

fn printable(s: &str) -> String {
    s.chars()
        .map(|c| if c.is_control() { '?' } else { c })
        .collect()
}

/// Splits `input` into literal text and references.
pub fn parse(input: &str) -> Result<Vec<Segment>, ParseError> {
    let mut out: Vec<Segment> = Vec::new();
    let mut lit = String::new();
    let mut lit_start = 0;
    let bytes = input.as_bytes();
    let mut i = 0;
    let flush = |out: &mut Vec<Segment>, lit: &mut String, start: usize, end: usize| {
        if !lit.is_empty() {
            out.push(Segment {
                span: start..end,
                kind: SegmentKind::Literal(std::mem::take(lit)),
            });
        }
    };
    while i < bytes.len() {
        match (bytes[i], bytes.get(i + 1)) {
            (b'$', Some(b'$')) => {
                if lit.is_empty() {
                    lit_start = i;
                }
                lit.push('$');
                i += 2;
            }
            (b'$', Some(b'{')) => {
                flush(&mut out, &mut lit, lit_start, i);
                let close = input[i + 2..]
                    .find('}')
                    .map(|p| i + 2 + p)
                    .ok_or_else(|| ParseError::new(i..input.len(), ParseErrorKind::Unterminated))?;
                let kind = parse_reference(&input[i + 2..close], i + 2)?;
                out.push(Segment {
                    span: i..close + 1,
                    kind,
                });
                i = close + 1;
                lit_start = i;
            }
            _ => {
                if lit.is_empty() {
                    lit_start = i;
                }
                // Copy a whole UTF-8 character; `$` and `{` are ASCII so boundaries are safe.
                let ch_len = input[i..].chars().next().map_or(1, char::len_utf8);
                lit.push_str(&input[i..i + ch_len]);
                i += ch_len;
            }
        }
    }
    flush(&mut out, &mut lit, lit_start, input.len());
    Ok(out)
}

/// Parses the inside of `${…}`; `base` is its byte offset in the input.
fn parse_reference(body: &str, base: usize) -> Result<SegmentKind, ParseError> {
    let ident_end = body
        .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
        .unwrap_or(body.len());
    let (ident, rest) = body.split_at(ident_end);
    let whole = base..base + body.len();
    if let Some(default) = rest.strip_prefix(":-") {
        check_var(ident, base)?;
        return Ok(SegmentKind::Env {
            var: ident.to_owned(),
            default: Some(default.to_owned()),
        });
    }
    if let Some(arg) = rest.strip_prefix(':') {
        if ident != "cred" {
            return Err(ParseError::new(
                base..base + ident.len(),
                ParseErrorKind::UnknownKind(ident.to_owned()),
            ));
        }
        let arg_base = base + ident.len() + 1;
        let (name, field) = match arg.split_once('#') {
            Some((n, f)) => {
                let field = match f {
                    "username" => CredField::Username,
                    "password" => CredField::Password,
                    "host" => CredField::Host,
                    "port" => CredField::Port,
                    other => {
                        let start = arg_base + n.len() + 1;
                        return Err(ParseError::new(
                            start..start + other.len(),
                            ParseErrorKind::UnknownField(other.to_owned()),
                        ));
                    }
                };
                (n, field)
            }
            None => (arg, CredField::Password),
        };
        // Names are stored lowercased, but a reference must spell one exactly as stored so
        // that `siteport migrate` and `config check` see the same name the user wrote.
        let name = CredentialName::new(name)
            .ok()
            .filter(|n| n.as_str() == name)
            .ok_or_else(|| {
                let reason = match CredentialName::new(name) {
                    Err(e) => e.reason,
                    Ok(_) => format!("'{}' must be lowercase", printable(name)),
                };
                ParseError::new(
                    arg_base..arg_base + name.len(),
                    ParseErrorKind::BadCredentialName(reason),
                )
            })?;
        return Ok(SegmentKind::Cred { name, field });
    }
    if !rest.is_empty() {
        return Err(ParseError::new(
            whole,
            ParseErrorKind::BadVariableName(body.to_owned()),
        ));
    }
    check_var(ident, base)?;
    Ok(SegmentKind::Env {
        var: ident.to_owned(),
        default: None,
    })
}

fn check_var(var: &str, base: usize) -> Result<(), ParseError> {
    let ok = var
        .chars()
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_');
    if ok {
        Ok(())
    } else {
        Err(ParseError::new(
            base..base + var.len(),
            ParseErrorKind::BadVariableName(var.to_owned()),
        ))
    }
}

/// Whether `input` holds any reference (`${…}`); `$$` alone does not count.
pub fn has_references(input: &str) -> bool {
    parse(input).map_or(true, |segs| {
        segs.iter()
            .any(|s| !matches!(s.kind, SegmentKind::Literal(_)))
    })
}

/// `input` with every `$` doubled, so that [`parse`] reads it back as the same literal text.
pub fn escape(input: &str) -> String {
    input.replace('$', "$$")
}

/// 1-based line and column (in characters) of byte `offset` in `text`.
pub fn line_col(text: &str, offset: usize) -> (usize, usize) {
    let offset = offset.min(text.len());
    let before = text.get(..offset).unwrap_or(text);
    let line = before.matches('\n').count() + 1;
    let col = before.rsplit('\n').next().map_or(0, |l| l.chars().count()) + 1;
    (line, col)
}

/// Something that hands out credentials by name; every [`CredentialBackend`] is one.
#[async_trait]
pub trait CredentialResolver: Send + Sync {
    /// The credential called `name`.
    async fn credential(&self, name: &CredentialName) -> crate::Result<Credential>;
    /// Where credentials come from, for messages (`file backend (/path)`).
    fn describe(&self) -> String;
}

#[async_trait]
impl<T: CredentialBackend + ?Sized> CredentialResolver for T {
    async fn credential(&self, name: &CredentialName) -> crate::Result<Credential> {
        self.get(name).await
    }
    fn describe(&self) -> String {
        CredentialBackend::describe(self)
    }
}

/// Why a parsed string could not be expanded. Never holds a secret value.
#[derive(Debug, thiserror::Error)]
pub enum ExpandError {
    /// `${VAR}` with `VAR` unset and no default.
    #[error("environment variable {var} is not set")]
    MissingVar {
        /// The variable.
        var: String,
        /// Where the reference is.
        span: Range<usize>,
    },
    /// The variable is set but not valid UTF-8.
    #[error("environment variable {var} is not valid UTF-8")]
    NotUtf8 {
        /// The variable.
        var: String,
        /// Where the reference is.
        span: Range<usize>,
    },
    /// The credential could not be had from the backend (not found, locked, …).
    #[error("credential '{name}': {source}")]
    Credential {
        /// The credential.
        name: CredentialName,
        /// Where the reference is.
        span: Range<usize>,
        /// The backend's error (with its kind and hint).
        #[source]
        source: crate::Error,
    },
    /// `${cred:NAME#host}` or `#port` on a credential that has none.
    #[error("credential '{name}' has no {field}")]
    MissingField {
        /// The credential.
        name: CredentialName,
        /// The field it lacks.
        field: CredField,
        /// Where the reference is.
        span: Range<usize>,
    },
}

impl ExpandError {
    /// Byte range of the reference in the parsed string.
    pub fn span(&self) -> Range<usize> {
        match self {
            ExpandError::MissingVar { span, .. }
            | ExpandError::NotUtf8 { span, .. }
            | ExpandError::Credential { span, .. }
            | ExpandError::MissingField { span, .. } => span.clone(),
        }
    }
}

/// A variable is set, but its value is not UTF-8.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("value is not valid UTF-8")]
pub struct NotUnicode;

/// The value of a variable: `Ok(None)` if unset, `Err(NotUnicode)` if set but not UTF-8.
pub type VarLookup<'a> = dyn Fn(&str) -> Result<Option<String>, NotUnicode> + Send + Sync + 'a;

/// Looks variables up in the process environment.
pub fn process_env(var: &str) -> Result<Option<String>, NotUnicode> {
    match std::env::var(var) {
        Ok(v) => Ok(Some(v)),
        Err(std::env::VarError::NotPresent) => Ok(None),
        Err(std::env::VarError::NotUnicode(_)) => Err(NotUnicode),
    }
}

/// The result of [`expand`].
pub struct Expanded {
    /// The expanded text. Secret when [`has_password`](Self::has_password), and possibly
    /// secret anyway (a legacy `${FTP_PASSWORD}`), so always kept as a secret.
    pub value: SecretString,
    /// Whether a credential's password went into it.
    pub has_password: bool,
    /// The credentials it referred to, in order, without repeats.
    pub credentials: Vec<CredentialName>,
}

impl fmt::Debug for Expanded {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Expanded")
            .field("value", &"****")
            .field("has_password", &self.has_password)
            .field("credentials", &self.credentials)
            .finish()
    }
}

/// Expands parsed `segments`: variables through `env`, credentials through `creds`. Each
/// credential is fetched once even if referred to several times.
pub async fn expand<R: CredentialResolver + ?Sized>(
    segments: &[Segment],
    env: &VarLookup<'_>,
    creds: &R,
) -> Result<Expanded, ExpandError> {
    let mut out = Zeroizing::new(String::new());
    let mut has_password = false;
    let mut fetched: Vec<Credential> = Vec::new();
    for seg in segments {
        match &seg.kind {
            SegmentKind::Literal(t) => out.push_str(t),
            SegmentKind::Env { var, default } => match env(var) {
                Ok(Some(v)) => out.push_str(&Zeroizing::new(v)),
                Ok(None) => match default {
                    Some(d) => out.push_str(d),
                    None => {
                        return Err(ExpandError::MissingVar {
                            var: var.clone(),
                            span: seg.span.clone(),
                        });
                    }
                },
                Err(NotUnicode) => {
                    return Err(ExpandError::NotUtf8 {
                        var: var.clone(),
                        span: seg.span.clone(),
                    });
                }
            },
            SegmentKind::Cred { name, field } => {
                let cred = match fetched.iter().find(|c| c.name() == name) {
                    Some(c) => c,
                    None => {
                        let c = creds.credential(name).await.map_err(|source| {
                            ExpandError::Credential {
                                name: name.clone(),
                                span: seg.span.clone(),
                                source,
                            }
                        })?;
                        fetched.push(c);
                        fetched.last().expect("just pushed")
                    }
                };
                let missing = || ExpandError::MissingField {
                    name: name.clone(),
                    field: *field,
                    span: seg.span.clone(),
                };
                match field {
                    CredField::Username => out.push_str(cred.username()),
                    CredField::Password => {
                        has_password = true;
                        out.push_str(cred.password().expose_secret());
                    }
                    CredField::Host => out.push_str(cred.host().ok_or_else(missing)?),
                    CredField::Port => out.push_str(&cred.port().ok_or_else(missing)?.to_string()),
                }
            }
        }
    }
    Ok(Expanded {
        value: SecretString::from(out.as_str().to_owned()),
        has_password,
        credentials: fetched.iter().map(|c| c.name().clone()).collect(),
    })
}

/// [`parse`] then [`expand`], for callers that do not need the segments.
pub async fn expand_str<R: CredentialResolver + ?Sized>(
    input: &str,
    env: &VarLookup<'_>,
    creds: &R,
) -> Result<Expanded, ExpandStrError> {
    let segs = parse(input)?;
    Ok(expand(&segs, env, creds).await?)
}

/// Either failure of [`expand_str`].
#[derive(Debug, thiserror::Error)]
pub enum ExpandStrError {
    /// The string is malformed.
    #[error(transparent)]
    Parse(#[from] ParseError),
    /// A reference could not be resolved.
    #[error(transparent)]
    Expand(#[from] ExpandError),
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ErrorKind;
    use crate::testkit::MemoryBackend;
    use crate::{BackendKind, StoreMode};

    fn lit(s: &str, span: Range<usize>) -> Segment {
        Segment {
            span,
            kind: SegmentKind::Literal(s.into()),
        }
    }

    #[test]
    fn parses_with_offsets() {
        let s = "ftp://${USER:-anon}@${cred:acme.prod#host}:$$x/${HOME}";
        let segs = parse(s).unwrap();
        assert_eq!(segs[0], lit("ftp://", 0..6));
        assert_eq!(
            segs[1],
            Segment {
                span: 6..19,
                kind: SegmentKind::Env {
                    var: "USER".into(),
                    default: Some("anon".into())
                }
            }
        );
        assert_eq!(&s[segs[1].span.clone()], "${USER:-anon}");
        assert_eq!(segs[2], lit("@", 19..20));
        assert_eq!(&s[segs[3].span.clone()], "${cred:acme.prod#host}");
        assert_eq!(
            segs[3].kind,
            SegmentKind::Cred {
                name: CredentialName::new("acme.prod").unwrap(),
                field: CredField::Host
            }
        );
        assert_eq!(segs[4], lit(":$x/", 42..47));
        assert_eq!(&s[segs[5].span.clone()], "${HOME}");
    }

    #[test]
    fn python_compatible_edges() {
        // A lone `$`, `$VAR` without braces and a trailing `$` stay literal.
        assert_eq!(parse("a$b $ c$").unwrap(), vec![lit("a$b $ c$", 0..8)]);
        // The default runs to the first `}` and is literal (no nesting).
        let segs = parse("${X:-a:b${y}").unwrap();
        assert_eq!(
            segs[0].kind,
            SegmentKind::Env {
                var: "X".into(),
                default: Some("a:b${y".into())
            }
        );
        assert_eq!(
            parse("${X:-}").unwrap()[0].kind,
            SegmentKind::Env {
                var: "X".into(),
                default: Some(String::new())
            }
        );
        // Unicode around references keeps byte offsets right.
        let s = "é${A}ü";
        let segs = parse(s).unwrap();
        assert_eq!(&s[segs[1].span.clone()], "${A}");
        assert_eq!(segs[2], lit("ü", 6..8));
        assert!(parse("").unwrap().is_empty());
    }

    #[test]
    fn errors_point_at_the_problem() {
        let e = parse("abc ${FOO").unwrap_err();
        assert_eq!(e.kind, ParseErrorKind::Unterminated);
        assert_eq!(e.span.start, 4);
        let e = parse("${}").unwrap_err();
        assert!(matches!(e.kind, ParseErrorKind::BadVariableName(_)));
        let e = parse("${1X}").unwrap_err();
        assert!(matches!(e.kind, ParseErrorKind::BadVariableName(_)));
        let e = parse("${A-B}").unwrap_err();
        assert!(matches!(e.kind, ParseErrorKind::BadVariableName(_)));
        let e = parse("x${vault:secret}").unwrap_err();
        assert_eq!(e.kind, ParseErrorKind::UnknownKind("vault".into()));
        assert_eq!(e.span, 3..8);
        assert!(e.to_string().contains("unknown reference kind 'vault'"));
        let e = parse("${cred:Acme}").unwrap_err();
        assert!(
            matches!(e.kind, ParseErrorKind::BadCredentialName(_)),
            "{e:?}"
        );
        let e = parse("${cred:a/b}").unwrap_err();
        assert!(
            matches!(e.kind, ParseErrorKind::BadCredentialName(_)),
            "{e:?}"
        );
        assert_eq!(e.span, 7..10);
        let e = parse("${cred:}").unwrap_err();
        assert!(matches!(e.kind, ParseErrorKind::BadCredentialName(_)));
        let e = parse("${cred:acme#secret}").unwrap_err();
        assert_eq!(e.kind, ParseErrorKind::UnknownField("secret".into()));
        assert_eq!(e.span, 12..18);
    }

    #[test]
    fn helpers() {
        assert!(has_references("${A}"));
        assert!(has_references("${cred:a}"));
        assert!(!has_references("pa$$word"));
        assert!(!has_references("plain"));
        let odd = "p$${x}$";
        let back = parse(&escape(odd)).unwrap();
        assert_eq!(back, vec![lit(odd, 0..escape(odd).len())]);
        assert_eq!(line_col("ab\ncdé\nx", 0), (1, 1));
        assert_eq!(line_col("ab\ncdé\nx", 3), (2, 1));
        assert_eq!(line_col("ab\ncdé\nx", 8), (3, 1));
        assert_eq!(line_col("ab\ncdé\nx", 99), (3, 2));
        assert_eq!(line_col("ab\ncdé\nx", 7), (2, 4));
    }

    fn env(
        pairs: &'static [(&'static str, &'static str)],
    ) -> impl Fn(&str) -> Result<Option<String>, NotUnicode> + Send + Sync {
        move |v| {
            Ok(pairs
                .iter()
                .find(|(k, _)| *k == v)
                .map(|(_, x)| (*x).to_owned()))
        }
    }

    async fn store() -> MemoryBackend {
        let b = MemoryBackend::new(BackendKind::File);
        let c = Credential::new(
            CredentialName::new("acme").unwrap(),
            "deploy",
            SecretString::from("acme-pw$".to_owned()),
        )
        .unwrap()
        .with_host("ftp.acme.example")
        .unwrap();
        b.store(&c, StoreMode::CreateNew).await.unwrap();
        b
    }

    #[tokio::test]
    async fn expands_env_and_credentials() {
        let b = store().await;
        let e = env(&[("USER", "bob"), ("EMPTY", "")]);
        let x = expand_str("${USER}:${NOPE:-dflt}:${EMPTY:-unused}:$$", &e, &b)
            .await
            .unwrap();
        assert_eq!(x.value.expose_secret(), "bob:dflt::$");
        assert!(!x.has_password);
        let x = expand_str(
            "${cred:acme#username}@${cred:acme#host}/${cred:acme}",
            &e,
            &b,
        )
        .await
        .unwrap();
        assert_eq!(x.value.expose_secret(), "deploy@ftp.acme.example/acme-pw$");
        assert!(x.has_password);
        assert_eq!(x.credentials.len(), 1);
        assert!(!format!("{x:?}").contains("acme-pw"));
    }

    #[tokio::test]
    async fn expansion_errors_carry_span_and_kind() {
        let b = store().await;
        let e = env(&[]);
        let err = expand_str("x ${MISSING}", &e, &b).await.unwrap_err();
        let ExpandStrError::Expand(err) = err else {
            panic!("{err:?}")
        };
        assert_eq!(err.span(), 2..12);
        assert_eq!(err.to_string(), "environment variable MISSING is not set");

        let err = expand_str("${cred:other}", &e, &b).await.unwrap_err();
        let ExpandStrError::Expand(ExpandError::Credential { source, .. }) = err else {
            panic!("{err:?}")
        };
        assert_eq!(source.kind(), ErrorKind::NotFound);
        assert_eq!(
            source.remedy(),
            Some(&crate::Remedy::AddCredential(
                CredentialName::new("other").unwrap()
            ))
        );

        let err = expand_str("${cred:acme#port}", &e, &b).await.unwrap_err();
        assert_eq!(err.to_string(), "credential 'acme' has no port");

        let bad = |_: &str| Err(NotUnicode);
        let err = expand_str("${X}", &bad, &b).await.unwrap_err();
        assert_eq!(err.to_string(), "environment variable X is not valid UTF-8");
        let err = expand_str("${X", &e, &b).await.unwrap_err();
        assert!(matches!(err, ExpandStrError::Parse(_)));
    }
}
