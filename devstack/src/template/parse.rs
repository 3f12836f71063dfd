//! Parsing a template: parameters, conditions and resources (with `Globals.Function`
//! merged into functions), and the order to create the resources in.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::path::Path;

use anyhow::{Context, Result, bail};
use serde_json::{Map, Value};

use super::intrinsics::{collect_references, split_get_att};
use super::scalar_to_string;

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

/// Merges `Globals.Function` into a function's properties as SAM does: maps are merged key
/// by key, recursively (`Environment.Variables`, `LoggingConfig`: the global `LogFormat`
/// and levels next to the function's `LogGroup`); for any other value, an intrinsic
/// function included, the function's own wins.
fn merge_function_globals(properties: &mut Value, globals: &Value) {
    let (Some(props), Some(globals)) = (properties.as_object_mut(), globals.as_object()) else {
        return;
    };
    for (key, global_value) in globals {
        match props.get_mut(key) {
            None => {
                props.insert(key.clone(), global_value.clone());
            }
            Some(own) if is_plain_map(own) && is_plain_map(global_value) => {
                merge_function_globals(own, global_value);
            }
            Some(_) => {}
        }
    }
}

/// An object that is not an intrinsic function (`{"Ref": ..}`, `{"Fn::Sub": ..}`).
fn is_plain_map(value: &Value) -> bool {
    value.as_object().is_some_and(|map| {
        !(map.len() == 1
            && map
                .keys()
                .all(|k| k == "Ref" || k == "Condition" || k.starts_with("Fn::")))
    })
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

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::merge_function_globals;

    #[test]
    fn globals_merge_into_maps_and_never_into_intrinsics() {
        let globals = json!({
            "Timeout": 10,
            "Tracing": "Active",
            "LoggingConfig": {"LogFormat": "JSON", "ApplicationLogLevel": {"Ref": "LogLevel"}},
            "Environment": {"Variables": {"STAGE": {"Ref": "StageName"}, "A": "global"}},
            "VpcConfig": {"Ref": "Vpc"}
        });
        let mut function = json!({
            "Timeout": 30,
            "LoggingConfig": {"LogGroup": {"Ref": "DetectLogGroup"}},
            "Environment": {"Variables": {"A": "own", "STAGE": {"Fn::Sub": "x"}}},
            "VpcConfig": {"Fn::If": ["HasVpc", {}, {}]}
        });
        merge_function_globals(&mut function, &globals);
        assert_eq!(
            function,
            json!({
                "Timeout": 30,
                "Tracing": "Active",
                "LoggingConfig": {
                    "LogGroup": {"Ref": "DetectLogGroup"},
                    "LogFormat": "JSON",
                    "ApplicationLogLevel": {"Ref": "LogLevel"}
                },
                "Environment": {"Variables": {"A": "own", "STAGE": {"Fn::Sub": "x"}}},
                "VpcConfig": {"Fn::If": ["HasVpc", {}, {}]}
            })
        );
    }
}
