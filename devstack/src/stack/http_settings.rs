//! The HTTP API's settings from the template: auth and throttling per HttpApi, and the
//! dashboard client's scopes.

use std::collections::BTreeMap;

use anyhow::{Context, Result};
use serde_json::Value;

use crate::http_api::ApiSettings;
use crate::provision::Provisioned;
use crate::template::{Resolver, Template};

/// Auth and throttling settings of the template's HttpApi resources, by API id.
pub(super) fn api_settings(
    template: &Template,
    parameters: &BTreeMap<String, String>,
    stack_name: &str,
    provisioned: &Provisioned,
) -> Result<BTreeMap<String, ApiSettings>> {
    let mut apis = BTreeMap::new();
    for resource in template
        .resources
        .iter()
        .filter(|r| r.resource_type == "AWS::Serverless::HttpApi")
    {
        let Some(api) = provisioned.get(&resource.logical_id) else {
            continue;
        };
        let resolver = Resolver {
            parameters,
            conditions: &template.conditions,
            stack_name,
            account_id: provisioned.account_id(),
            resources: provisioned,
        };
        let properties = resolver.resolve_properties(resource)?;
        let settings = ApiSettings::from_properties(&properties)
            .with_context(|| format!("HttpApi {}", resource.logical_id))?;
        apis.insert(api.ref_value.clone(), settings);
    }
    Ok(apis)
}

/// The resource-server scopes the template grants the dashboard's app client
/// (`DashboardClient`'s `AllowedOAuthScopes` without `openid`); None without that client.
pub(super) fn dashboard_scopes(template: &Template) -> Option<Vec<String>> {
    let client = template
        .resources
        .iter()
        .find(|r| r.logical_id == "DashboardClient")?;
    let scopes = client.properties.get("AllowedOAuthScopes")?.as_array()?;
    Some(
        scopes
            .iter()
            .filter_map(Value::as_str)
            .filter(|s| s.contains('/'))
            .map(str::to_string)
            .collect(),
    )
}
