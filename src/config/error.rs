//! Config errors that name the file, the line, the column and the field, like `nginx -t`.

use std::fmt;
use std::path::{Path, PathBuf};

use super::locate::{PathIndex, Position};

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigError {
    pub file: PathBuf,
    pub line: usize,
    pub column: usize,
    /// Dotted path of the offending field, e.g. `routes[1].upstream`; empty for the whole file.
    pub field: String,
    pub message: String,
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let field = if self.field.is_empty() { "(file)" } else { &self.field };
        write!(
            f,
            "{}:{}:{}: {}: {}",
            self.file.display(),
            self.line,
            self.column,
            field,
            self.message
        )
    }
}

/// An error in one field of a block, before it is located: the field's path below the block
/// (`max_headers`, `headers.untrusted_remove[2]`) and the message. The caller, which knows the
/// file and where the block sits, turns it into a [`ConfigError`] with [`SourceFile::error`].
pub type FieldError = (String, String);

/// Every error found in one load; a load reports all of them, not only the first.
#[derive(Debug, Clone, Default)]
pub struct ConfigErrors(pub Vec<ConfigError>);

impl fmt::Display for ConfigErrors {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, e) in self.0.iter().enumerate() {
            if i > 0 {
                writeln!(f)?;
            }
            write!(f, "{e}")?;
        }
        Ok(())
    }
}

impl std::error::Error for ConfigErrors {}

impl ConfigErrors {
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
    pub fn single(e: ConfigError) -> Self {
        ConfigErrors(vec![e])
    }
}

/// One parsed file: its path, its text and where each field is written.
pub struct SourceFile {
    pub path: PathBuf,
    pub text: String,
    index: PathIndex,
}

impl SourceFile {
    pub fn read(path: &Path) -> Result<SourceFile, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|e| ConfigError {
            file: path.to_path_buf(),
            line: 0,
            column: 0,
            field: String::new(),
            message: format!("cannot read file: {e}"),
        })?;
        Ok(SourceFile::from_text(path, text))
    }

    pub fn from_text(path: &Path, text: String) -> SourceFile {
        let index = PathIndex::build(&text);
        SourceFile {
            path: path.to_path_buf(),
            text,
            index,
        }
    }

    /// An error at the place where `field` is written.
    pub fn error(&self, field: &str, message: impl fmt::Display) -> ConfigError {
        let Position { line, column } = self.index.find(field);
        ConfigError {
            file: self.path.clone(),
            line,
            column,
            field: field.to_string(),
            message: message.to_string(),
        }
    }

    /// Deserialises the file, turning serde_yaml's error into a located [`ConfigError`].
    pub fn parse<T: serde::de::DeserializeOwned>(&self) -> Result<T, ConfigError> {
        serde_yaml::from_str(&self.text).map_err(|e| self.serde_error(&e))
    }

    fn serde_error(&self, e: &serde_yaml::Error) -> ConfigError {
        let (line, column) = e.location().map(|l| (l.line(), l.column())).unwrap_or((1, 1));
        // serde_yaml renders "path.to.field: message at line L column C"; split it back up.
        let mut text = e.to_string();
        if let Some(cut) = text.rfind(" at line ") {
            text.truncate(cut);
        }
        let (field, message) = split_field(&text);
        // serde_yaml points at the enclosing mapping; point at the field itself where we can.
        if let Some(name) = between(&message, "unknown field `", "`") {
            let path = if field.is_empty() {
                name.to_string()
            } else {
                format!("{field}.{name}")
            };
            if self.index.contains(&path) {
                return self.error(&path, message);
            }
        }
        if let Some(value) = between(&message, "\"", "\"") {
            if let Some(path) = self.index.child_with_value(&field, value) {
                return self.error(&path, message);
            }
        }
        ConfigError {
            file: self.path.clone(),
            line,
            column,
            field,
            message,
        }
    }
}

fn between<'a>(text: &'a str, open: &str, close: &str) -> Option<&'a str> {
    let start = text.find(open)? + open.len();
    let len = text[start..].find(close)?;
    Some(&text[start..start + len])
}

fn split_field(text: &str) -> (String, String) {
    if let Some((head, rest)) = text.split_once(": ") {
        let looks_like_path = !head.is_empty()
            && !head.contains(' ')
            && head.chars().all(|c| c.is_ascii_alphanumeric() || "._-[]".contains(c));
        if looks_like_path {
            return (head.to_string(), rest.to_string());
        }
    }
    (String::new(), text.to_string())
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use super::*;

    /// Property (the `config` fuzz target's, 1,500 mutations each of the shipped `gateway.yaml`
    /// and policy): a load never panics, and every error it reports carries a line and column
    /// inside the file and a message. The files sit in a folder that does not exist, so the
    /// paths they name are missing, as a typo would make them.
    #[test]
    fn property_every_config_error_carries_a_line() {
        let gateway = include_str!("../../gateway.yaml");
        let policy = include_str!("../../policies/example.yaml");
        let alphabet = b" :-\n\t#[]{}\"'&*!|>0123456789abcdefghijklmnopqrstuvwxyz_.";
        let mut rng = crate::prop::rng(64);
        for case in 0..3_000 {
            let text = crate::prop::mutate_str(&mut rng, if case % 2 == 0 { gateway } else { policy }, alphabet);
            // Lines as YAML counts them (a bare CR ends one too); an error at the end of a file
            // without a final newline sits on the line after its last.
            let lines = text.replace("\r\n", "\n").split(['\n', '\r']).count().max(1);
            let result = if case % 2 == 0 {
                let src = SourceFile::from_text(Path::new("/nonexistent-qv-test/gateway.yaml"), text.clone());
                crate::config::GatewayConfig::from_source(&src).err()
            } else {
                let src = SourceFile::from_text(Path::new("/nonexistent-qv-test/policy.yaml"), text.clone());
                crate::config::PolicyConfig::from_sources(&[src]).err()
            };
            for e in result.iter().flat_map(|e| &e.0) {
                assert!(
                    e.line >= 1 && e.line <= lines + 1 && e.column >= 1 && !e.message.is_empty(),
                    "case {case}: {e} (file of {lines} lines):\n{text}"
                );
            }
        }
    }
}
