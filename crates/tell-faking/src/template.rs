//! Prompt templates: text files with `{{name}}` placeholders.
//!
//! Placeholders are checked when the suite loads, not when a prompt is rendered, so a typo fails
//! before any model time is spent, with the file and the placeholder named.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use crate::error::{Error, Result};

/// One piece of a parsed template.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Piece {
    Text(String),
    Var(String),
}

/// A parsed template file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Template {
    /// The file it came from (for error messages).
    pub path: PathBuf,
    pieces: Vec<Piece>,
}

impl Template {
    /// Parses `text` (read from `path`) into literal text and `{{name}}` placeholders.
    pub fn parse(path: &Path, text: &str) -> Result<Self> {
        let mut pieces = Vec::new();
        let mut rest = text;
        let mut offset = 0;
        while let Some(start) = rest.find("{{") {
            if start > 0 {
                pieces.push(Piece::Text(rest[..start].to_owned()));
            }
            let after = &rest[start + 2..];
            let end = after.find("}}").ok_or(Error::UnclosedPlaceholder {
                template: path.to_owned(),
                offset: offset + start,
            })?;
            pieces.push(Piece::Var(after[..end].trim().to_owned()));
            let consumed = start + 2 + end + 2;
            offset += consumed;
            rest = &rest[consumed..];
        }
        if !rest.is_empty() {
            pieces.push(Piece::Text(rest.to_owned()));
        }
        Ok(Self {
            path: path.to_owned(),
            pieces,
        })
    }

    /// Reads and parses the template file at `path`.
    pub fn load(path: &Path) -> Result<Self> {
        let text = std::fs::read_to_string(path).map_err(|e| Error::io(path, e))?;
        Self::parse(path, &text)
    }

    /// The placeholder names used, in order of first use.
    pub fn placeholders(&self) -> Vec<&str> {
        let mut seen: Vec<&str> = Vec::new();
        for p in &self.pieces {
            if let Piece::Var(v) = p {
                if !seen.contains(&v.as_str()) {
                    seen.push(v);
                }
            }
        }
        seen
    }

    /// Fails with the first placeholder not in `known`.
    pub fn check(&self, known: &[&str]) -> Result<()> {
        for name in self.placeholders() {
            if !known.contains(&name) {
                let mut k: Vec<&str> = known.to_vec();
                k.sort_unstable();
                return Err(Error::UnknownPlaceholder {
                    template: self.path.clone(),
                    placeholder: name.to_owned(),
                    known: k.join(", "),
                });
            }
        }
        Ok(())
    }

    /// Fills every placeholder from `values`; a missing value is an unknown-placeholder error.
    pub fn render(&self, values: &BTreeMap<&str, &str>) -> Result<String> {
        let mut out = String::new();
        for p in &self.pieces {
            match p {
                Piece::Text(t) => out.push_str(t),
                Piece::Var(v) => match values.get(v.as_str()) {
                    Some(val) => out.push_str(val),
                    None => {
                        return Err(Error::UnknownPlaceholder {
                            template: self.path.clone(),
                            placeholder: v.clone(),
                            known: values.keys().copied().collect::<Vec<_>>().join(", "),
                        })
                    }
                },
            }
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_and_renders() {
        let t = Template::parse(Path::new("t.txt"), "Hi {{ who }}, {{who}} and {{x}}!").unwrap();
        assert_eq!(t.placeholders(), ["who", "x"]);
        let vals = BTreeMap::from([("who", "A"), ("x", "B")]);
        assert_eq!(t.render(&vals).unwrap(), "Hi A, A and B!");
        let err = t.check(&["who"]).unwrap_err().to_string();
        assert!(err.contains("t.txt") && err.contains("{{x}}"), "{err}");
    }

    #[test]
    fn unclosed_is_an_error() {
        let err = Template::parse(Path::new("u.txt"), "ab {{oops").unwrap_err();
        assert!(err
            .to_string()
            .contains("u.txt: unclosed placeholder starting at byte 3"));
    }
}
