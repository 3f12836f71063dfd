//! The detection rules `detect` runs with: the embedded `rules.yaml`, or a file that
//! replaces it.

use std::path::{Path, PathBuf};

use domain::detection::{ConfigError, RuleSet};

/// The default rules, compiled into the binary so the Lambda zip stays one file.
pub const DEFAULT_RULES_YAML: &str = include_str!("../rules.yaml");

/// Environment variable naming a rules file that replaces the default.
pub const RULES_PATH_ENV: &str = "DETECT_RULES_PATH";

/// The embedded default rules, validated.
pub fn default_rules() -> Result<RuleSet, ConfigError> {
    RuleSet::from_yaml(DEFAULT_RULES_YAML)
}

/// The rules of the file at `path`, or the default ones; validated either way. The error
/// names the file and every problem in it.
pub fn load_rules(path: Option<&Path>) -> Result<RuleSet, RulesError> {
    match path {
        None => default_rules().map_err(RulesError::Embedded),
        Some(path) => {
            let text = std::fs::read_to_string(path).map_err(|source| RulesError::Read {
                path: path.to_path_buf(),
                source,
            })?;
            RuleSet::from_yaml(&text).map_err(|source| RulesError::Invalid {
                path: path.to_path_buf(),
                source,
            })
        }
    }
}

/// Why the rules could not be loaded (the function does not start).
#[derive(Debug, thiserror::Error)]
pub enum RulesError {
    #[error("embedded rules.yaml: {0}")]
    Embedded(#[source] ConfigError),
    #[error("reading rules file {}: {source}", path.display())]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("rules file {}: {source}", path.display())]
    Invalid { path: PathBuf, source: ConfigError },
}
