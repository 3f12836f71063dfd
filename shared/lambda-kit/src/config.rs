//! Configuration from the environment (set by the SAM template or the local runner).

/// A required environment variable, with an error naming it when it is missing.
pub fn required_env(name: &str) -> Result<String, ConfigError> {
    match std::env::var(name) {
        Ok(value) if !value.trim().is_empty() => Ok(value),
        _ => Err(ConfigError::Missing(name.to_string())),
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("environment variable {0} is not set")]
    Missing(String),
    #[error("environment variable {name} has an invalid value {value:?}: {reason}")]
    Invalid {
        name: String,
        value: String,
        reason: String,
    },
}

/// A required environment variable parsed as `T` (surrounding blanks ignored).
pub fn parsed<T>(name: &str) -> Result<T, ConfigError>
where
    T: std::str::FromStr,
    T::Err: std::fmt::Display,
{
    parse(name, required_env(name)?)
}

/// An optional environment variable parsed as `T`, `default` when it is unset or blank.
pub fn parsed_or<T>(name: &str, default: T) -> Result<T, ConfigError>
where
    T: std::str::FromStr,
    T::Err: std::fmt::Display,
{
    match std::env::var(name) {
        Ok(value) if !value.trim().is_empty() => parse(name, value),
        _ => Ok(default),
    }
}

fn parse<T>(name: &str, value: String) -> Result<T, ConfigError>
where
    T: std::str::FromStr,
    T::Err: std::fmt::Display,
{
    value
        .trim()
        .parse()
        .map_err(|e: T::Err| ConfigError::Invalid {
            name: name.to_string(),
            reason: e.to_string(),
            value,
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parsed_values_name_the_variable_when_they_are_missing_or_invalid() {
        // Names no other test sets.
        // SAFETY: this test is the only user of these variables.
        unsafe {
            std::env::set_var("LAMBDA_KIT_TEST_SECONDS", " 42 ");
            std::env::set_var("LAMBDA_KIT_TEST_BAD", "forty");
        }
        assert_eq!(parsed::<u32>("LAMBDA_KIT_TEST_SECONDS").unwrap(), 42);
        assert_eq!(parsed_or::<u32>("LAMBDA_KIT_TEST_UNSET", 7).unwrap(), 7);
        assert!(matches!(
            parsed::<u32>("LAMBDA_KIT_TEST_UNSET"),
            Err(ConfigError::Missing(name)) if name == "LAMBDA_KIT_TEST_UNSET"
        ));
        let err = parsed_or::<u32>("LAMBDA_KIT_TEST_BAD", 7).unwrap_err();
        assert!(err.to_string().contains("LAMBDA_KIT_TEST_BAD"), "{err}");
    }
}
