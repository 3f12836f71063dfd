//! A function's local run specification (binary, timeout, memory, environment) from its
//! resolved properties.

use std::collections::BTreeMap;
use std::path::Path;
use std::time::Duration;

use anyhow::{Context, Result, bail};
use serde_json::Value;

use crate::lambda::{FunctionSpec, lambda_environment, logging_environment};
use crate::provision::ResolvedFunction;
use crate::template::{Template, scalar_to_string};

/// Fails early (before starting anything) if a function binary is missing.
pub(super) fn check_binaries(template: &Template, bin_dir: &Path) -> Result<()> {
    for resource in &template.resources {
        if resource.resource_type != "AWS::Serverless::Function" {
            continue;
        }
        if let Some(code_uri) = resource.properties.get("CodeUri").and_then(Value::as_str) {
            let binary = bin_dir.join(binary_name(code_uri)?);
            if !binary.is_file() {
                bail!(
                    "function binary {} not found; run cargo build --workspace",
                    binary.display()
                );
            }
        }
    }
    Ok(())
}

/// Last path component of a CodeUri (`../functions/ingest` → `ingest`).
fn binary_name(code_uri: &str) -> Result<String> {
    Path::new(code_uri.trim_end_matches('/'))
        .file_name()
        .and_then(|n| n.to_str())
        .map(str::to_string)
        .with_context(|| format!("CodeUri {code_uri:?} has no last path component"))
}

/// Builds the local run specification of a resolved function.
pub(super) fn function_spec(
    function: &ResolvedFunction,
    bin_dir: &Path,
    endpoint: &str,
) -> Result<FunctionSpec> {
    let props = &function.properties;
    let id = &function.logical_id;
    let code_uri = props
        .get("CodeUri")
        .and_then(Value::as_str)
        .with_context(|| format!("function {id}: CodeUri must be a path string"))?;
    let binary = bin_dir.join(binary_name(code_uri)?);
    if !binary.is_file() {
        bail!(
            "function binary {} not found; run cargo build --workspace",
            binary.display()
        );
    }
    let number = |key: &str, default: u64| -> Result<u64> {
        match props.get(key) {
            None => Ok(default),
            Some(v) => scalar_to_string(v)?
                .parse()
                .with_context(|| format!("function {id}: {key} is not a positive integer")),
        }
    };
    let timeout = Duration::from_secs(number("Timeout", 3)?.max(1));
    let memory_mb = u32::try_from(number("MemorySize", 128)?)
        .with_context(|| format!("function {id}: MemorySize too large"))?;

    let mut environment = BTreeMap::new();
    if let Some(vars) = props
        .get("Environment")
        .and_then(|e| e.get("Variables"))
        .and_then(Value::as_object)
    {
        for (name, value) in vars {
            let value = scalar_to_string(value)
                .with_context(|| format!("function {id}: environment variable {name}"))?;
            environment.insert(name.clone(), value);
        }
    }
    environment.extend(lambda_environment(&function.name, memory_mb, endpoint));
    environment.extend(logging_environment(props.get("LoggingConfig")));
    // The developer's own settings win: AWS_LAMBDA_LOG_LEVEL=DEBUG ./dev up logs every
    // function at debug (lambda-kit reads AWS_LAMBDA_LOG_LEVEL first, then RUST_LOG).
    for name in ["AWS_LAMBDA_LOG_LEVEL", "RUST_LOG", "RUST_BACKTRACE"] {
        if let Ok(value) = std::env::var(name) {
            environment.insert(name.to_string(), value);
        }
    }
    Ok(FunctionSpec {
        logical_id: id.clone(),
        name: function.name.clone(),
        arn: function.arn.clone(),
        binary,
        timeout,
        memory_mb,
        environment,
    })
}
