//! What a resource creator gets: the resource, its resolved properties, and helpers for
//! properties and physical names.

use std::time::Duration;

use anyhow::{Context, Result, bail};
use serde_json::Value;

use super::Resource;
use crate::template::{TemplateResource, scalar_to_string};

/// How long to wait for a stream or table to become ACTIVE.
pub(super) const ACTIVE_TIMEOUT: Duration = Duration::from_secs(60);

/// What a resource creator needs.
pub(super) struct Ctx<'a> {
    pub(super) resource: &'a TemplateResource,
    pub(super) properties: &'a Value,
    pub(super) stack_name: &'a str,
    pub(super) account_id: &'a str,
}

impl Ctx<'_> {
    pub(super) fn id(&self) -> &str {
        &self.resource.logical_id
    }

    /// A property as a string, if present.
    pub(super) fn string(&self, key: &str) -> Result<Option<String>> {
        self.properties
            .get(key)
            .map(scalar_to_string)
            .transpose()
            .with_context(|| format!("property {key}"))
    }

    /// A property as a boolean (accepts true/"true").
    pub(super) fn bool(&self, key: &str) -> Result<Option<bool>> {
        match self.properties.get(key) {
            None => Ok(None),
            Some(Value::Bool(b)) => Ok(Some(*b)),
            Some(Value::String(s)) if s.eq_ignore_ascii_case("true") => Ok(Some(true)),
            Some(Value::String(s)) if s.eq_ignore_ascii_case("false") => Ok(Some(false)),
            Some(other) => bail!("property {key} must be a boolean, found {other}"),
        }
    }

    /// The explicit name from `name_property`, or `{stack_name}-{LogicalId}`.
    pub(super) fn physical_name(&self, name_property: Option<&str>) -> Result<String> {
        if let Some(key) = name_property
            && let Some(name) = self.string(key)?
        {
            return Ok(name);
        }
        Ok(format!("{}-{}", self.stack_name, self.id()))
    }

    pub(super) fn resource(
        &self,
        ref_value: String,
        arn: Option<String>,
        name: Option<String>,
    ) -> Resource {
        Resource {
            logical_id: self.id().to_string(),
            resource_type: self.resource.resource_type.clone(),
            ref_value,
            arn,
            name,
        }
    }

    pub(super) fn log_skipped(&self, keys: &[&str]) {
        for key in keys {
            if self.properties.get(*key).is_some() {
                tracing::debug!(logical_id = %self.id(), property = key, "property not applied locally");
            }
        }
    }
}

/// Renders a value as an attribute string: objects and arrays as JSON, scalars as text.
pub(super) fn attribute_string(value: &Value) -> Result<String> {
    match value {
        Value::Object(_) | Value::Array(_) => Ok(value.to_string()),
        other => scalar_to_string(other),
    }
}

pub(super) fn check_length(kind: &str, name: &str, max: usize) -> Result<()> {
    if name.len() > max {
        bail!("{kind} name {name:?} is longer than {max} characters");
    }
    Ok(())
}
