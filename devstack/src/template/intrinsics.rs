//! Intrinsic functions: the references a value makes (`Ref`, `Fn::GetAtt`, `Fn::Sub`) and
//! their resolution, with the condition functions, against parameters, pseudo parameters
//! and provisioned resources.

use std::collections::{BTreeMap, BTreeSet};

use anyhow::{Context, Result, anyhow, bail};
use serde_json::{Map, Value};

use super::parse::TemplateResource;
use super::{REGION, scalar_to_string};

/// `"Res.Attr"` → `["Res", "Attr"]` (the attribute may itself contain dots).
pub(super) fn split_get_att(s: &str) -> Result<Value> {
    let (resource, attribute) = s
        .split_once('.')
        .with_context(|| format!("GetAtt {s:?} is not of the form Resource.Attribute"))?;
    Ok(Value::Array(vec![
        Value::String(resource.to_string()),
        Value::String(attribute.to_string()),
    ]))
}

/// If `value` is an intrinsic function call (`{"Ref": ..}`, `{"Fn::X": ..}`, `{"Condition": ..}`),
/// returns its name and argument.
fn as_intrinsic(value: &Value) -> Option<(&str, &Value)> {
    let map = value.as_object()?;
    if map.len() != 1 {
        return None;
    }
    let (key, arg) = map.iter().next()?;
    (key == "Ref" || key == "Condition" || key.starts_with("Fn::")).then_some((key.as_str(), arg))
}

/// Collects the names that `value` refers to through Ref, GetAtt and Sub (resources and
/// parameters alike; callers filter).
pub fn collect_references(value: &Value, out: &mut BTreeSet<String>) {
    if let Some((name, arg)) = as_intrinsic(value) {
        match name {
            "Ref" => {
                if let Some(s) = arg.as_str() {
                    out.insert(s.to_string());
                }
            }
            "Fn::GetAtt" => {
                let target = match arg {
                    Value::Array(items) => items.first().and_then(Value::as_str),
                    Value::String(s) => s.split('.').next(),
                    _ => None,
                };
                if let Some(t) = target {
                    out.insert(t.to_string());
                }
            }
            "Fn::Sub" => {
                let (text, vars) = match arg {
                    Value::String(s) => (Some(s.as_str()), None),
                    Value::Array(items) => (
                        items.first().and_then(Value::as_str),
                        items.get(1).and_then(Value::as_object),
                    ),
                    _ => (None, None),
                };
                if let Some(text) = text {
                    for part in parse_sub(text) {
                        if let SubPart::Var(var) = part {
                            if vars.is_some_and(|v| v.contains_key(&var)) {
                                continue;
                            }
                            let head = var.split('.').next().unwrap_or(&var);
                            out.insert(head.to_string());
                        }
                    }
                }
                if let Some(vars) = vars {
                    for v in vars.values() {
                        collect_references(v, out);
                    }
                }
                return;
            }
            _ => {}
        }
    }
    match value {
        Value::Array(items) => items.iter().for_each(|v| collect_references(v, out)),
        Value::Object(map) => map.values().for_each(|v| collect_references(v, out)),
        _ => {}
    }
}

/// A piece of a `Fn::Sub` string.
#[derive(Debug, PartialEq)]
enum SubPart {
    Text(String),
    Var(String),
}

/// Splits a `Fn::Sub` template into literal text and `${Var}` references (`${!X}` is the
/// literal `${X}`).
fn parse_sub(text: &str) -> Vec<SubPart> {
    let mut parts = Vec::new();
    let mut literal = String::new();
    let mut rest = text;
    while let Some(start) = rest.find("${") {
        literal.push_str(&rest[..start]);
        let after = &rest[start + 2..];
        match after.find('}') {
            Some(end) => {
                let inner = &after[..end];
                if let Some(escaped) = inner.strip_prefix('!') {
                    literal.push_str("${");
                    literal.push_str(escaped);
                    literal.push('}');
                } else {
                    if !literal.is_empty() {
                        parts.push(SubPart::Text(std::mem::take(&mut literal)));
                    }
                    parts.push(SubPart::Var(inner.trim().to_string()));
                }
                rest = &after[end + 1..];
            }
            None => {
                literal.push_str(&rest[start..]);
                rest = "";
            }
        }
    }
    literal.push_str(rest);
    if !literal.is_empty() {
        parts.push(SubPart::Text(literal));
    }
    parts
}

/// What a resolver needs to know about already-provisioned resources.
pub trait ResourceLookup {
    /// What `!Ref LogicalId` gives, or None if the resource is unknown / not yet provisioned.
    fn ref_value(&self, logical_id: &str) -> Option<String>;
    /// What `!GetAtt LogicalId.Attribute` gives.
    fn get_att(&self, logical_id: &str, attribute: &str) -> Result<String>;
}

/// Resolves intrinsic functions against parameters, pseudo parameters and provisioned resources.
pub struct Resolver<'a> {
    /// Parameter values.
    pub parameters: &'a BTreeMap<String, String>,
    /// `Conditions` of the template.
    pub conditions: &'a Map<String, Value>,
    /// `AWS::StackName`.
    pub stack_name: &'a str,
    /// `AWS::AccountId`.
    pub account_id: &'a str,
    /// Provisioned resources.
    pub resources: &'a dyn ResourceLookup,
}

impl Resolver<'_> {
    /// Whether a resource exists with these parameters: true unless its `Condition` is false.
    pub fn resource_exists(&self, resource: &TemplateResource) -> Result<bool> {
        match &resource.condition {
            None => Ok(true),
            Some(name) => self
                .condition(name)
                .with_context(|| format!("resource {} Condition", resource.logical_id)),
        }
    }

    /// Resolves every property of a resource; errors name the resource and property.
    pub fn resolve_properties(&self, resource: &TemplateResource) -> Result<Value> {
        let mut out = Map::new();
        if let Some(props) = resource.properties.as_object() {
            for (key, value) in props {
                let resolved = self
                    .resolve(value)
                    .with_context(|| format!("resource {} property {key}", resource.logical_id))?;
                if let Some(resolved) = resolved {
                    out.insert(key.clone(), resolved);
                }
            }
        }
        Ok(Value::Object(out))
    }

    /// Resolves a value; `None` means `AWS::NoValue` (the enclosing key/element disappears).
    pub fn resolve(&self, value: &Value) -> Result<Option<Value>> {
        if let Some((name, arg)) = as_intrinsic(value) {
            return self.resolve_intrinsic(name, arg);
        }
        Ok(Some(match value {
            Value::Array(items) => {
                let mut out = Vec::new();
                for item in items {
                    if let Some(v) = self.resolve(item)? {
                        out.push(v);
                    }
                }
                Value::Array(out)
            }
            Value::Object(map) => {
                let mut out = Map::new();
                for (k, v) in map {
                    if let Some(v) = self.resolve(v).with_context(|| format!("in {k}"))? {
                        out.insert(k.clone(), v);
                    }
                }
                Value::Object(out)
            }
            scalar => scalar.clone(),
        }))
    }

    /// Resolves a value that must produce a string.
    fn resolve_string(&self, value: &Value) -> Result<String> {
        let resolved = self
            .resolve(value)?
            .context("AWS::NoValue where a string is required")?;
        scalar_to_string(&resolved)
    }

    fn resolve_intrinsic(&self, name: &str, arg: &Value) -> Result<Option<Value>> {
        match name {
            "Ref" => {
                let target = self.resolve_string(arg).context("Ref argument")?;
                if target == "AWS::NoValue" {
                    return Ok(None);
                }
                self.reference(&target).map(|s| Some(Value::String(s)))
            }
            "Fn::GetAtt" => {
                let (target, attribute) = match arg {
                    Value::String(s) => {
                        let parts = split_get_att(s)?;
                        (scalar_to_string(&parts[0])?, scalar_to_string(&parts[1])?)
                    }
                    Value::Array(items) if items.len() == 2 => (
                        self.resolve_string(&items[0])?,
                        self.resolve_string(&items[1])?,
                    ),
                    other => bail!("Fn::GetAtt expects [Resource, Attribute], found {other}"),
                };
                if self.resources.ref_value(&target).is_none() {
                    bail!("Fn::GetAtt refers to {target}, which is not a provisioned resource");
                }
                let value = self
                    .resources
                    .get_att(&target, &attribute)
                    .with_context(|| format!("Fn::GetAtt {target}.{attribute}"))?;
                Ok(Some(Value::String(value)))
            }
            "Fn::Sub" => {
                let (text, vars) = match arg {
                    Value::String(s) => (s.as_str(), None),
                    Value::Array(items) if items.len() == 2 => (
                        items[0]
                            .as_str()
                            .context("Fn::Sub template must be a string")?,
                        Some(
                            items[1]
                                .as_object()
                                .context("Fn::Sub variables must be a mapping")?,
                        ),
                    ),
                    other => {
                        bail!("Fn::Sub expects a string or [string, variables], found {other}")
                    }
                };
                let mut out = String::new();
                for part in parse_sub(text) {
                    match part {
                        SubPart::Text(t) => out.push_str(&t),
                        SubPart::Var(var) => {
                            if let Some(v) = vars.and_then(|vars| vars.get(&var)) {
                                out.push_str(
                                    &self
                                        .resolve_string(v)
                                        .with_context(|| format!("Fn::Sub variable {var}"))?,
                                );
                            } else if let Some((target, attribute)) = var.split_once('.') {
                                if self.resources.ref_value(target).is_none() {
                                    bail!(
                                        "Fn::Sub ${{{var}}}: {target} is not a provisioned resource"
                                    );
                                }
                                out.push_str(&self.resources.get_att(target, attribute)?);
                            } else {
                                out.push_str(&self.reference(&var).context("in Fn::Sub")?);
                            }
                        }
                    }
                }
                Ok(Some(Value::String(out)))
            }
            "Fn::Join" => {
                let items = arg
                    .as_array()
                    .filter(|a| a.len() == 2)
                    .context("Fn::Join expects [separator, list]")?;
                let separator = self.resolve_string(&items[0])?;
                let list = self
                    .resolve(&items[1])?
                    .context("Fn::Join list is AWS::NoValue")?;
                // A string here is the Ref of a CommaDelimitedList parameter (parameters are
                // kept as their comma-separated text).
                let strings = match &list {
                    Value::String(text) if text.is_empty() => Vec::new(),
                    Value::String(text) => text.split(',').map(str::to_string).collect(),
                    other => other
                        .as_array()
                        .context("Fn::Join second argument must be a list")?
                        .iter()
                        .map(scalar_to_string)
                        .collect::<Result<Vec<_>>>()?,
                };
                Ok(Some(Value::String(strings.join(&separator))))
            }
            "Fn::Select" => {
                let items = arg
                    .as_array()
                    .filter(|a| a.len() == 2)
                    .context("Fn::Select expects [index, list]")?;
                let index: usize = self
                    .resolve_string(&items[0])?
                    .parse()
                    .context("Fn::Select index is not a non-negative integer")?;
                let list = self
                    .resolve(&items[1])?
                    .context("Fn::Select list is AWS::NoValue")?;
                let list = list
                    .as_array()
                    .context("Fn::Select second argument must be a list")?;
                list.get(index).cloned().map(Some).with_context(|| {
                    format!(
                        "Fn::Select index {index} out of range ({} items)",
                        list.len()
                    )
                })
            }
            "Fn::Split" => {
                let items = arg
                    .as_array()
                    .filter(|a| a.len() == 2)
                    .context("Fn::Split expects [delimiter, string]")?;
                let delimiter = self.resolve_string(&items[0])?;
                let source = self.resolve_string(&items[1])?;
                if delimiter.is_empty() {
                    bail!("Fn::Split delimiter is empty");
                }
                Ok(Some(Value::Array(
                    source
                        .split(delimiter.as_str())
                        .map(|s| Value::String(s.to_string()))
                        .collect(),
                )))
            }
            "Fn::If" => {
                let items = arg
                    .as_array()
                    .filter(|a| a.len() == 3)
                    .context("Fn::If expects [condition, value_if_true, value_if_false]")?;
                let condition = items[0]
                    .as_str()
                    .context("Fn::If condition must be a name")?;
                let branch = if self.condition(condition)? {
                    &items[1]
                } else {
                    &items[2]
                };
                self.resolve(branch)
            }
            "Fn::Base64" => {
                use base64::Engine as _;
                let text = self.resolve_string(arg)?;
                Ok(Some(Value::String(
                    base64::engine::general_purpose::STANDARD.encode(text),
                )))
            }
            other => bail!("unsupported intrinsic function {other}"),
        }
    }

    /// `Ref` of a parameter, pseudo parameter or resource.
    fn reference(&self, target: &str) -> Result<String> {
        if let Some(value) = self.parameters.get(target) {
            return Ok(value.clone());
        }
        match target {
            "AWS::Region" => return Ok(REGION.to_string()),
            "AWS::AccountId" => return Ok(self.account_id.to_string()),
            "AWS::StackName" => return Ok(self.stack_name.to_string()),
            "AWS::StackId" => {
                return Ok(format!(
                    "arn:aws:cloudformation:{REGION}:{}:stack/{}/devstack",
                    self.account_id, self.stack_name
                ));
            }
            "AWS::Partition" => return Ok("aws".to_string()),
            "AWS::URLSuffix" => return Ok("amazonaws.com".to_string()),
            _ => {}
        }
        if target.starts_with("AWS::") {
            bail!("unsupported pseudo parameter {target}");
        }
        self.resources
            .ref_value(target)
            .with_context(|| format!("Ref {target}: no such parameter or provisioned resource"))
    }

    /// Evaluates the named condition of the template.
    pub fn condition(&self, name: &str) -> Result<bool> {
        let body = self
            .conditions
            .get(name)
            .with_context(|| format!("unknown condition {name}"))?;
        self.evaluate_condition(body)
            .with_context(|| format!("condition {name}"))
    }

    fn evaluate_condition(&self, value: &Value) -> Result<bool> {
        let (name, arg) = as_intrinsic(value)
            .ok_or_else(|| anyhow!("a condition must be a condition function, found {value}"))?;
        let list = || {
            arg.as_array()
                .with_context(|| format!("{name} expects a list"))
        };
        match name {
            "Fn::Equals" => {
                let items = list()?;
                if items.len() != 2 {
                    bail!("Fn::Equals expects two values");
                }
                Ok(self.resolve_string(&items[0])? == self.resolve_string(&items[1])?)
            }
            "Fn::Not" => {
                let items = list()?;
                let first = items.first().context("Fn::Not expects one condition")?;
                Ok(!self.evaluate_condition(first)?)
            }
            "Fn::And" => {
                for item in list()? {
                    if !self.evaluate_condition(item)? {
                        return Ok(false);
                    }
                }
                Ok(true)
            }
            "Fn::Or" => {
                for item in list()? {
                    if self.evaluate_condition(item)? {
                        return Ok(true);
                    }
                }
                Ok(false)
            }
            "Condition" => self.condition(arg.as_str().context("Condition expects a name")?),
            other => bail!("unsupported condition function {other}"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sub_parsing_handles_escapes() {
        assert_eq!(
            parse_sub("a${X}b${!Y}c${Z.Arn}"),
            vec![
                SubPart::Text("a".into()),
                SubPart::Var("X".into()),
                SubPart::Text("b${Y}c".into()),
                SubPart::Var("Z.Arn".into()),
            ]
        );
    }
}
