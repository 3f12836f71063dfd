//! infra/openapi.yaml and infra/template.yaml describe the same HTTP API: every HttpApi
//! route of the template is in the document and every documented operation is in the
//! template (operations marked `x-planned: true` are placeholders of routes being built).
//! The validator of tests/support/openapi.rs accepts documented shapes and refuses others.

use std::collections::BTreeSet;

use devstack::template::Template;
use e2e::openapi::{document, path_template};
use e2e::validate_response;
use serde_json::{Value, json};

fn template_routes() -> BTreeSet<String> {
    let template = Template::load(&e2e::workspace_root().join("infra/template.yaml"))
        .expect("infra/template.yaml parses");
    let mut routes = BTreeSet::new();
    for function in template
        .resources
        .iter()
        .filter(|r| r.resource_type == "AWS::Serverless::Function")
    {
        let Some(events) = function.properties.get("Events").and_then(Value::as_object) else {
            continue;
        };
        for event in events.values() {
            if event.get("Type") != Some(&json!("HttpApi")) {
                continue;
            }
            let props = &event["Properties"];
            let method = props["Method"].as_str().unwrap_or_default().to_uppercase();
            let path = props["Path"].as_str().unwrap_or_default();
            routes.insert(format!("{method} {path}"));
        }
    }
    routes
}

fn documented(planned: bool) -> BTreeSet<String> {
    let mut routes = BTreeSet::new();
    for (path, item) in document()["paths"].as_object().expect("paths") {
        for (method, operation) in item.as_object().expect("path item") {
            let is_planned = operation["x-planned"] == json!(true);
            if is_planned == planned {
                routes.insert(format!("{} {path}", method.to_uppercase()));
            }
        }
    }
    routes
}

#[test]
fn every_template_route_is_documented_and_every_documented_route_is_in_the_template() {
    let template = template_routes();
    let built = documented(false);
    let planned = documented(true);
    assert!(template.len() >= 10, "{template:?}");
    let undocumented: Vec<_> = template
        .iter()
        .filter(|r| !built.contains(*r) && !planned.contains(*r))
        .collect();
    assert!(
        undocumented.is_empty(),
        "routes missing from infra/openapi.yaml: {undocumented:?}"
    );
    let missing: Vec<_> = built.difference(&template).collect();
    assert!(
        missing.is_empty(),
        "documented routes not in the template (mark them x-planned: true?): {missing:?}"
    );
    let built_but_planned: Vec<_> = planned.intersection(&template).collect();
    assert!(
        built_but_planned.is_empty(),
        "routes in the template still marked x-planned: {built_but_planned:?}"
    );
}

#[test]
fn paths_match_their_templates() {
    assert_eq!(path_template("/alerts").as_deref(), Some("/alerts"));
    assert_eq!(
        path_template("/alerts/a-1?x=1").as_deref(),
        Some("/alerts/{id}")
    );
    assert_eq!(
        path_template("/alerts/a-1/ack").as_deref(),
        Some("/alerts/{id}/ack")
    );
    assert_eq!(
        path_template("/workers/w-1/inbox").as_deref(),
        Some("/workers/{id}/inbox")
    );
    assert_eq!(
        path_template("/workers/w-1").as_deref(),
        Some("/workers/{id}")
    );
    assert_eq!(path_template("/nope"), None);
}

#[test]
fn the_validator_accepts_documented_bodies_and_refuses_others() {
    let alert = json!({
        "alertId": "a-1", "patientId": "p-1", "village": "Bondo", "severity": "critical",
        "ruleId": "spo2-low", "description": "spo2 below 90 %", "status": "routed",
        "raisedAt": "2026-11-24T08:00:00Z", "routedTo": "w-1", "acknowledgedBy": null,
        "escalationLevel": 0, "resolvedAt": null,
    });
    let list = json!({"items": [alert], "nextCursor": null});
    validate_response("GET", "/alerts?limit=1", 200, &list).unwrap();
    validate_response("GET", "/workers/w-1/inbox", 200, &list).unwrap();
    validate_response("GET", "/alerts", 304, &json!("")).unwrap();
    let error = json!({"error": "InvalidCursor", "message": "m", "correlationId": "c"});
    validate_response("GET", "/alerts", 400, &error).unwrap();
    validate_response("GET", "/alerts", 401, &json!({"message": "Unauthorized"})).unwrap();
    // Anything else is refused, with what is wrong.
    let mut bad = alert.clone();
    bad["status"] = json!("lost");
    let err = validate_response(
        "GET",
        "/alerts",
        200,
        &json!({"items": [bad], "nextCursor": null}),
    )
    .unwrap_err();
    assert!(err.contains("lost"), "{err}");
    assert!(validate_response("GET", "/alerts", 200, &json!({"items": []})).is_err());
    assert!(validate_response("GET", "/alerts", 304, &json!({"items": []})).is_err());
    assert!(validate_response("DELETE", "/alerts", 200, &list).is_err());
    assert!(validate_response("GET", "/nope", 200, &list).is_err());
    let accepted = json!({"accepted": 1, "eventIds": ["e"], "correlationId": "c"});
    validate_response("POST", "/readings", 202, &accepted).unwrap();
    assert!(validate_response("POST", "/readings", 202, &json!({"accepted": 1})).is_err());
}
