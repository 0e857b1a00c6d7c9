//! A config string's references, parsed when the file is loaded ([`Template`]), and what
//! needs them before any backend exists: mapping offsets back to file:line:column, expanding
//! `${VAR}` in backend settings.

use std::ops::Range;
use std::path::PathBuf;

use siteport_creds::reference::{self, NotUnicode, Segment, SegmentKind, VarLookup};
use toml::Spanned;

use super::Config;
use super::error::{ConfigError, ConfigErrorKind, Location, missing_var};

/// A parsed string value and where its literal is in the file.
#[derive(Debug, Clone)]
pub(super) struct Template {
    /// The parsed pieces.
    pub(super) segments: Vec<Segment>,
    /// Span of the TOML value (quotes included).
    pub(super) span: Range<usize>,
    /// The decoded string, to map offsets inside it back to the file.
    pub(super) text_len: usize,
}

impl Config {
    /// Location of byte `offset` inside the decoded string whose TOML value spans `span`.
    /// Exact when the literal has no escapes; otherwise the start of the value.
    pub(super) fn location_in(&self, t: &Template, offset: usize) -> Location {
        let raw = self.source.get(t.span.clone()).unwrap_or("");
        let delim = if raw.starts_with("\"\"\"") || raw.starts_with("'''") {
            3
        } else {
            1
        };
        let plain = raw.len() == t.text_len + 2 * delim && !raw.contains('\\');
        if plain {
            self.location(t.span.start + delim + offset)
        } else {
            self.location(t.span.start)
        }
    }

    pub(super) fn template(&self, v: &Spanned<String>) -> Result<Template, ConfigError> {
        let t = Template {
            segments: Vec::new(),
            span: v.span(),
            text_len: v.get_ref().len(),
        };
        let segments = reference::parse(v.get_ref()).map_err(|e| {
            ConfigError::new(ConfigErrorKind::Reference, e.to_string())
                .at(Some(self.location_in(&t, e.span.start)))
                .hint("write `$$` for a literal `$`")
        })?;
        Ok(Template { segments, ..t })
    }

    /// Expands an env-only template (backend settings are read before any backend exists).
    pub(super) fn expand_env_only(
        &self,
        t: &Template,
        env: &VarLookup<'_>,
        key: &str,
    ) -> Result<String, ConfigError> {
        let mut out = String::new();
        for s in &t.segments {
            match &s.kind {
                SegmentKind::Literal(l) => out.push_str(l),
                SegmentKind::Env { var, default } => match env(var) {
                    Ok(Some(v)) => out.push_str(&v),
                    Ok(None) => match default {
                        Some(d) => out.push_str(d),
                        None => {
                            return Err(
                                missing_var(var, key).at(Some(self.location_in(t, s.span.start)))
                            );
                        }
                    },
                    Err(NotUnicode) => {
                        return Err(ConfigError::new(
                            ConfigErrorKind::Reference,
                            format!("{key}: environment variable {var} is not valid UTF-8"),
                        )
                        .at(Some(self.location_in(t, s.span.start))));
                    }
                },
                SegmentKind::Cred { .. } => {
                    return Err(ConfigError::new(
                        ConfigErrorKind::Reference,
                        format!("{key}: credential references are not allowed here"),
                    )
                    .at(Some(self.location_in(t, s.span.start)))
                    .hint("use a literal path or ${VAR}"));
                }
            }
        }
        Ok(out)
    }

    pub(super) fn setting_path(
        &self,
        v: Option<Spanned<String>>,
        env: &VarLookup<'_>,
        key: &str,
    ) -> Result<Option<PathBuf>, ConfigError> {
        let Some(v) = v else { return Ok(None) };
        let t = self.template(&v)?;
        let p = PathBuf::from(self.expand_env_only(&t, env, key)?);
        Ok(Some(if p.is_relative() {
            self.base_dir().join(p)
        } else {
            p
        }))
    }
}
