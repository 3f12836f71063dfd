//! Reading a SAM/CloudFormation template and resolving its intrinsic functions.
//!
//! The YAML is parsed with `serde_yaml_ng`; short-form tags (`!Ref`, `!GetAtt`, `!Sub`, ...)
//! are normalised to their long JSON forms (`{"Ref": ..}`, `{"Fn::GetAtt": [..]}`, ...), so
//! the rest of devstack only deals with `serde_json::Value`.
//!
//! - `parse`: the template's parameters, conditions and resources, and their creation order;
//! - `intrinsics`: `Ref`, `Fn::GetAtt`, `Fn::Sub` and the other intrinsic and condition
//!   functions, resolved against parameters and provisioned resources.

use anyhow::{Result, bail};
use serde_json::Value;

mod intrinsics;
mod parse;

pub use intrinsics::{Resolver, ResourceLookup, collect_references};
pub use parse::{ParameterDef, Template, TemplateResource, normalise};

/// Region devstack pretends to run in.
pub const REGION: &str = "us-east-1";
/// Account id used until the emulator has told us its own (from the first ARN it returns).
pub const DEFAULT_ACCOUNT_ID: &str = "123456789012";

/// Renders a scalar (string, number, bool) as a string.
pub fn scalar_to_string(value: &Value) -> Result<String> {
    match value {
        Value::String(s) => Ok(s.clone()),
        Value::Number(n) => Ok(n.to_string()),
        Value::Bool(b) => Ok(b.to_string()),
        other => bail!("expected a string, number or boolean, found {other}"),
    }
}

#[cfg(test)]
pub(crate) mod tests;
