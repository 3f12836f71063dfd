//! Reading a SAM/CloudFormation template and resolving its intrinsic functions.
//!
//! The YAML is parsed with `serde_yaml_ng`; short-form tags (`!Ref`, `!GetAtt`, `!Sub`, ...)
//! are normalised to their long JSON forms (`{"Ref": ..}`, `{"Fn::GetAtt": [..]}`, ...), so
//! the rest of devstack only deals with `serde_json::Value`.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::path::Path;

use anyhow::{Context, Result, anyhow, bail};
use serde_json::{Map, Value};

/// Region devstack pretends to run in.
pub const REGION: &str = "us-east-1";
/// Account id used until the emulator has told us its own (from the first ARN it returns).
pub const DEFAULT_ACCOUNT_ID: &str = "123456789012";

/// A template parameter declaration.
#[derive(Debug, Clone)]
pub struct ParameterDef {
    /// `Type` (String, Number, ...).
    pub param_type: String,
    /// `Default`, as a string.
    pub default: Option<String>,
    /// `AllowedValues`, as strings.
    pub allowed_values: Option<Vec<String>>,
}

/// One entry of the template's `Resources` section, with intrinsics normalised but unresolved.
#[derive(Debug, Clone)]
pub struct TemplateResource {
    /// Logical id (the key in `Resources`).
    pub logical_id: String,
    /// `Type`, e.g. `AWS::SQS::Queue`.
    pub resource_type: String,
    /// `Properties` (an object; empty if absent). For serverless functions, `Globals.Function`
    /// is already merged in.
    pub properties: Value,
    /// Explicit `DependsOn` entries.
    pub depends_on: Vec<String>,
    /// `Condition`: the name of a condition that must hold for the resource to exist.
    pub condition: Option<String>,
}

/// A parsed template.
#[derive(Debug, Clone)]
pub struct Template {
    /// `Parameters`, by name.
    pub parameters: BTreeMap<String, ParameterDef>,
    /// `Conditions`, by name (unevaluated).
    pub conditions: Map<String, Value>,
    /// `Resources`, in template order.
    pub resources: Vec<TemplateResource>,
}

impl Template {
    /// Reads and parses a template file.
    pub fn load(path: &Path) -> Result<Template> {
        let text = std::fs::read_to_string(path)
            .with_context(|| format!("reading template {}", path.display()))?;
        Template::parse(&text).with_context(|| format!("parsing template {}", path.display()))
    }

    /// Parses template text.
    pub fn parse(text: &str) -> Result<Template> {
        let yaml: serde_yaml_ng::Value =
            serde_yaml_ng::from_str(text).context("template is not valid YAML")?;
        let doc = normalise(&yaml)?;
        let doc = doc.as_object().context("template is not a YAML mapping")?;

        let mut parameters = BTreeMap::new();
        if let Some(params) = doc.get("Parameters") {
            let params = params.as_object().context("Parameters is not a mapping")?;
            for (name, def) in params {
                let param_type = def
                    .get("Type")
                    .and_then(Value::as_str)
                    .unwrap_or("String")
                    .to_string();
                let default = def.get("Default").map(scalar_to_string).transpose()?;
                let allowed_values = match def.get("AllowedValues") {
                    Some(Value::Array(values)) => Some(
                        values
                            .iter()
                            .map(scalar_to_string)
                            .collect::<Result<Vec<_>>>()
                            .with_context(|| format!("parameter {name} AllowedValues"))?,
                    ),
                    _ => None,
                };
                parameters.insert(
                    name.clone(),
                    ParameterDef {
                        param_type,
                        default,
                        allowed_values,
                    },
                );
            }
        }

        let conditions = match doc.get("Conditions") {
            Some(Value::Object(map)) => map.clone(),
            Some(_) => bail!("Conditions is not a mapping"),
            None => Map::new(),
        };

        let globals_function = doc
            .get("Globals")
            .and_then(|g| g.get("Function"))
            .cloned()
            .unwrap_or(Value::Object(Map::new()));

        let resources_map = doc
            .get("Resources")
            .and_then(Value::as_object)
            .context("template has no Resources mapping")?;
        let mut resources = Vec::new();
        for (logical_id, body) in resources_map {
            let resource_type = body
                .get("Type")
                .and_then(Value::as_str)
                .with_context(|| format!("resource {logical_id} has no Type"))?
                .to_string();
            let mut properties = match body.get("Properties") {
                None | Some(Value::Null) => Value::Object(Map::new()),
                Some(v @ Value::Object(_)) => v.clone(),
                Some(_) => bail!("resource {logical_id}: Properties is not a mapping"),
            };
            if resource_type == "AWS::Serverless::Function" {
                merge_function_globals(&mut properties, &globals_function);
            }
            let depends_on = match body.get("DependsOn") {
                None => Vec::new(),
                Some(Value::String(s)) => vec![s.clone()],
                Some(Value::Array(items)) => items
                    .iter()
                    .map(|v| v.as_str().map(str::to_string))
                    .collect::<Option<Vec<_>>>()
                    .with_context(|| format!("resource {logical_id}: DependsOn must be strings"))?,
                Some(_) => bail!("resource {logical_id}: DependsOn must be a string or a list"),
            };
            let condition = match body.get("Condition") {
                None => None,
                Some(Value::String(name)) => Some(name.clone()),
                Some(_) => bail!("resource {logical_id}: Condition must be a condition name"),
            };
            resources.push(TemplateResource {
                logical_id: logical_id.clone(),
                resource_type,
                properties,
                depends_on,
                condition,
            });
        }

        Ok(Template {
            parameters,
            conditions,
            resources,
        })
    }

    /// Looks up a resource by logical id.
    pub fn resource(&self, logical_id: &str) -> Option<&TemplateResource> {
        self.resources.iter().find(|r| r.logical_id == logical_id)
    }

    /// Parameter values: defaults overridden by `overrides`, checked against `AllowedValues`.
    pub fn parameter_values(
        &self,
        overrides: &BTreeMap<String, String>,
    ) -> Result<BTreeMap<String, String>> {
        for name in overrides.keys() {
            if !self.parameters.contains_key(name) {
                tracing::warn!(parameter = %name, "parameter override for a parameter the template does not declare");
            }
        }
        let mut values = BTreeMap::new();
        for (name, def) in &self.parameters {
            let value = overrides
                .get(name)
                .cloned()
                .or_else(|| def.default.clone())
                .with_context(|| format!("parameter {name} has no Default and no override"))?;
            if let Some(allowed) = &def.allowed_values
                && !allowed.contains(&value)
            {
                bail!("parameter {name} = {value:?} is not one of its AllowedValues {allowed:?}");
            }
            if def.param_type == "Number" && value.parse::<f64>().is_err() {
                bail!("parameter {name} has Type Number but value {value:?} is not a number");
            }
            values.insert(name.clone(), value);
        }
        Ok(values)
    }

    /// Resources in an order where every resource comes after the resources it references
    /// (Ref, GetAtt, Sub, DependsOn). Among resources that are ready at the same time, those
    /// for which `prefer` returns true come first; otherwise template order is kept.
    pub fn creation_order(
        &self,
        prefer: impl Fn(&TemplateResource) -> bool,
    ) -> Result<Vec<&TemplateResource>> {
        let ids: BTreeSet<&str> = self
            .resources
            .iter()
            .map(|r| r.logical_id.as_str())
            .collect();
        let mut deps: HashMap<&str, BTreeSet<String>> = HashMap::new();
        for resource in &self.resources {
            let mut refs = BTreeSet::new();
            collect_references(&resource.properties, &mut refs);
            refs.extend(resource.depends_on.iter().cloned());
            refs.retain(|r| ids.contains(r.as_str()) && r != &resource.logical_id);
            for dep in &resource.depends_on {
                if !ids.contains(dep.as_str()) {
                    bail!(
                        "resource {} DependsOn unknown resource {dep}",
                        resource.logical_id
                    );
                }
            }
            deps.insert(resource.logical_id.as_str(), refs);
        }

        let mut done: BTreeSet<String> = BTreeSet::new();
        let mut order = Vec::new();
        while order.len() < self.resources.len() {
            let ready = |r: &&TemplateResource| {
                !done.contains(&r.logical_id)
                    && deps
                        .get(r.logical_id.as_str())
                        .is_none_or(|d| d.iter().all(|x| done.contains(x)))
            };
            let next = self
                .resources
                .iter()
                .filter(ready)
                .find(|r| prefer(r))
                .or_else(|| self.resources.iter().find(ready));
            match next {
                Some(resource) => {
                    done.insert(resource.logical_id.clone());
                    order.push(resource);
                }
                None => {
                    let stuck: Vec<&str> = self
                        .resources
                        .iter()
                        .filter(|r| !done.contains(&r.logical_id))
                        .map(|r| r.logical_id.as_str())
                        .collect();
                    bail!("circular references between resources {stuck:?}");
                }
            }
        }
        Ok(order)
    }
}

/// Merges `Globals.Function` into a function's properties: the function's own values win;
/// `Environment.Variables` are merged key by key.
fn merge_function_globals(properties: &mut Value, globals: &Value) {
    let (Some(props), Some(globals)) = (properties.as_object_mut(), globals.as_object()) else {
        return;
    };
    for (key, global_value) in globals {
        if key == "Environment" {
            let global_vars = global_value
                .get("Variables")
                .and_then(Value::as_object)
                .cloned()
                .unwrap_or_default();
            let env = props
                .entry("Environment")
                .or_insert_with(|| Value::Object(Map::new()));
            if let Some(env) = env.as_object_mut() {
                let vars = env
                    .entry("Variables")
                    .or_insert_with(|| Value::Object(Map::new()));
                if let Some(vars) = vars.as_object_mut() {
                    for (name, value) in global_vars {
                        vars.entry(name).or_insert(value);
                    }
                }
            }
        } else if !props.contains_key(key) {
            props.insert(key.clone(), global_value.clone());
        }
    }
}

/// Converts parsed YAML to JSON, turning short-form tags into long-form intrinsics.
pub fn normalise(yaml: &serde_yaml_ng::Value) -> Result<Value> {
    use serde_yaml_ng::Value as Y;
    Ok(match yaml {
        Y::Null => Value::Null,
        Y::Bool(b) => Value::Bool(*b),
        Y::Number(n) => {
            if let Some(i) = n.as_i64() {
                Value::from(i)
            } else if let Some(u) = n.as_u64() {
                Value::from(u)
            } else {
                let f = n.as_f64().context("unrepresentable YAML number")?;
                serde_json::Number::from_f64(f)
                    .map(Value::Number)
                    .with_context(|| format!("YAML number {f} cannot be represented in JSON"))?
            }
        }
        Y::String(s) => Value::String(s.clone()),
        Y::Sequence(items) => Value::Array(items.iter().map(normalise).collect::<Result<_>>()?),
        Y::Mapping(map) => {
            let mut out = Map::new();
            for (k, v) in map {
                let key = match k {
                    Y::String(s) => s.clone(),
                    Y::Number(n) => n.to_string(),
                    Y::Bool(b) => b.to_string(),
                    other => bail!("unsupported YAML mapping key {other:?}"),
                };
                out.insert(key, normalise(v)?);
            }
            Value::Object(out)
        }
        Y::Tagged(tagged) => {
            let tag = tagged.tag.to_string();
            let name = tag.trim_start_matches('!');
            let inner = normalise(&tagged.value)?;
            let (key, arg) = match name {
                "Ref" => ("Ref".to_string(), inner),
                "Condition" => ("Condition".to_string(), inner),
                "GetAtt" => {
                    let arg = match inner {
                        Value::String(s) => split_get_att(&s)?,
                        other => other,
                    };
                    ("Fn::GetAtt".to_string(), arg)
                }
                other => (format!("Fn::{other}"), inner),
            };
            let mut out = Map::new();
            out.insert(key, arg);
            Value::Object(out)
        }
    })
}

/// `"Res.Attr"` → `["Res", "Attr"]` (the attribute may itself contain dots).
fn split_get_att(s: &str) -> Result<Value> {
    let (resource, attribute) = s
        .split_once('.')
        .with_context(|| format!("GetAtt {s:?} is not of the form Resource.Attribute"))?;
    Ok(Value::Array(vec![
        Value::String(resource.to_string()),
        Value::String(attribute.to_string()),
    ]))
}

/// Renders a scalar (string, number, bool) as a string.
pub fn scalar_to_string(value: &Value) -> Result<String> {
    match value {
        Value::String(s) => Ok(s.clone()),
        Value::Number(n) => Ok(n.to_string()),
        Value::Bool(b) => Ok(b.to_string()),
        other => bail!("expected a string, number or boolean, found {other}"),
    }
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
                let list = list
                    .as_array()
                    .context("Fn::Join second argument must be a list")?;
                let strings = list
                    .iter()
                    .map(scalar_to_string)
                    .collect::<Result<Vec<_>>>()?;
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

    /// Evaluates a named condition.
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
    fn short_and_long_forms_normalise_to_the_same_value() {
        let short = Template::parse(
            "Resources:\n  A:\n    Type: T\n    Properties:\n      X: !GetAtt B.Arn\n      Y: !Ref B\n      Z: !Sub '${B}-x'\n",
        )
        .unwrap();
        let long = Template::parse(
            "Resources:\n  A:\n    Type: T\n    Properties:\n      X: {'Fn::GetAtt': [B, Arn]}\n      Y: {Ref: B}\n      Z: {'Fn::Sub': '${B}-x'}\n",
        )
        .unwrap();
        assert_eq!(short.resources[0].properties, long.resources[0].properties);
    }

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
