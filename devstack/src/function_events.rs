//! A function's SAM `Events`, read once: event source mappings (Kinesis, DynamoDB stream,
//! SQS), schedules (`Schedule`, `ScheduleV2`) and HTTP API routes (`HttpApi`).

use anyhow::{Context, Result, bail};
use serde_json::Value;

use crate::event_sources::{EventSourceMapping, SourceKind};
use crate::provision::{self, ResolvedFunction};
use crate::schedule::{ScheduleEvent, ScheduleKind};
use crate::template::scalar_to_string;

/// A function `Events` entry devstack acts on.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum FunctionEvent {
    /// A Kinesis, DynamoDB or SQS event source mapping.
    Mapping(EventSourceMapping),
    /// A `Schedule` or `ScheduleV2` event.
    Schedule(ScheduleEvent),
    /// An `HttpApi` route.
    Route {
        /// `Method` (upper case), or None for ANY.
        method: Option<String>,
        /// `Path`, or `$default`.
        path: String,
        /// `ApiId`, else the implicit API's id.
        api_id: String,
        /// The event's `Auth` (`Authorizer`, `AuthorizationScopes`), if any.
        auth: Option<Value>,
    },
}

/// Reads a resolved function's `Events`.
pub(crate) fn parse_events(
    function: &ResolvedFunction,
    stack_name: &str,
) -> Result<Vec<FunctionEvent>> {
    let id = &function.logical_id;
    let Some(events) = function.properties.get("Events") else {
        return Ok(Vec::new());
    };
    let events = events
        .as_object()
        .with_context(|| format!("function {id}: Events must be a mapping"))?;
    let mut out = Vec::new();
    for (name, event) in events {
        let event_type = event
            .get("Type")
            .and_then(Value::as_str)
            .with_context(|| format!("function {id} event {name} has no Type"))?;
        let empty = Value::Object(serde_json::Map::new());
        let props = event.get("Properties").unwrap_or(&empty);
        let parsed = match event_type {
            "Kinesis" => FunctionEvent::Mapping(
                EventSourceMapping::from_event(name, SourceKind::Kinesis, props)
                    .with_context(|| format!("function {id}"))?,
            ),
            "SQS" => FunctionEvent::Mapping(
                EventSourceMapping::from_event(name, SourceKind::Sqs, props)
                    .with_context(|| format!("function {id}"))?,
            ),
            "DynamoDB" => FunctionEvent::Mapping(
                EventSourceMapping::from_event(name, SourceKind::DynamoDb, props)
                    .with_context(|| format!("function {id}"))?,
            ),
            "Schedule" | "ScheduleV2" => {
                let kind = if event_type == "Schedule" {
                    ScheduleKind::Rule
                } else {
                    ScheduleKind::Scheduler
                };
                FunctionEvent::Schedule(
                    ScheduleEvent::from_event(name, kind, props)
                        .with_context(|| format!("function {id}"))?,
                )
            }
            "HttpApi" => {
                let text = |key: &str| -> Result<Option<String>> {
                    props
                        .get(key)
                        .map(scalar_to_string)
                        .transpose()
                        .with_context(|| format!("function {id} event {name} {key}"))
                };
                let path = text("Path")?.unwrap_or_else(|| "$default".to_string());
                let method = text("Method")?
                    .map(|m| m.to_ascii_uppercase())
                    .filter(|m| m != "ANY" && m != "*" && m != "X-AMAZON-APIGATEWAY-ANY-METHOD");
                let api_id = text("ApiId")?
                    .unwrap_or_else(|| provision::api_id_for(stack_name, "ServerlessHttpApi"));
                FunctionEvent::Route {
                    method,
                    path,
                    api_id,
                    auth: props.get("Auth").cloned(),
                }
            }
            other => bail!("event type {other} of {id}.{name} is not supported by devstack"),
        };
        out.push(parsed);
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use std::path::Path;
    use std::time::Duration;

    use super::*;
    use crate::stack::StackConfig;
    use crate::template::tests::{FakeResources, template_path};
    use crate::template::{Resolver, Template, TemplateResource};

    fn resolve_function(template: &Template, resource: &TemplateResource) -> ResolvedFunction {
        let parameters = template
            .parameter_values(&StackConfig::for_workspace(Path::new("/w")).parameter_overrides)
            .unwrap();
        let properties = Resolver {
            parameters: &parameters,
            conditions: &template.conditions,
            stack_name: "vitals-test",
            account_id: "123456789012",
            resources: &FakeResources(template),
        }
        .resolve_properties(resource)
        .unwrap();
        ResolvedFunction {
            logical_id: resource.logical_id.clone(),
            name: format!("vitals-test-{}", resource.logical_id),
            arn: "arn:aws:lambda:us-east-1:123456789012:function:x".to_string(),
            properties,
        }
    }

    #[test]
    fn every_function_resolves_its_environment_and_events() {
        let template = Template::load(&template_path()).unwrap();
        let functions: Vec<_> = template
            .resources
            .iter()
            .filter(|r| r.resource_type == "AWS::Serverless::Function")
            .collect();
        assert_eq!(functions.len(), 11);
        for resource in functions {
            let function = resolve_function(&template, resource);
            let vars = function.properties["Environment"]["Variables"]
                .as_object()
                .unwrap();
            // Globals merged in, parameters overridden.
            assert_eq!(vars["STAGE"], "local", "{}", resource.logical_id);
            assert_eq!(vars["POWERTOOLS_SERVICE_NAME"], "vitals");
            assert_eq!(vars["POWERTOOLS_METRICS_NAMESPACE"], "Vitals");
            assert!(vars.get("RUST_LOG").is_none());
            // Globals' LoggingConfig merged with the function's own log group (as SAM does).
            let logging = &function.properties["LoggingConfig"];
            assert_eq!(logging["LogFormat"], "JSON", "{}", resource.logical_id);
            assert_eq!(logging["ApplicationLogLevel"], "INFO");
            assert_eq!(logging["SystemLogLevel"], "WARN");
            assert!(logging["LogGroup"].is_string(), "{logging}");
            assert_eq!(function.properties["Tracing"], "Active");
            // The sweep visits every due patient.
            let timeout = match resource.logical_id.as_str() {
                "SweepFunction" => 60,
                // An import of 1,000 lines reads each line's worker, roster and entry once.
                "DirectoryFunction" => 30,
                _ => 10,
            };
            assert_eq!(function.properties["Timeout"], timeout);
            assert_eq!(function.properties["MemorySize"], 256);
            for value in vars.values() {
                assert!(value.is_string(), "{value}");
            }
            parse_events(&function, "vitals-test").unwrap();
        }
    }

    #[test]
    fn detect_kinesis_source_resolves_to_the_stream_arn() {
        let template = Template::load(&template_path()).unwrap();
        let detect = template.resource("DetectFunction").unwrap();
        let function = resolve_function(&template, detect);
        let events = parse_events(&function, "vitals-test").unwrap();
        let [FunctionEvent::Mapping(mapping)] = events.as_slice() else {
            panic!("expected one mapping, got {events:?}");
        };
        assert_eq!(mapping.kind, SourceKind::Kinesis);
        assert_eq!(
            mapping.source_arn,
            "arn:aws:kinesis:us-east-1:123456789012:ReadingsStream/Arn"
        );
        assert_eq!(mapping.batch_size, 100);
        assert_eq!(mapping.max_retry_attempts, Some(3));
        assert!(mapping.bisect_on_error && mapping.report_batch_item_failures);
        assert_eq!(mapping.max_record_age, Some(Duration::from_secs(3600)));
        assert_eq!(
            mapping.on_failure_arn.as_deref(),
            Some("arn:aws:sqs:us-east-1:123456789012:DetectFailureQueue/Arn")
        );

        let ingest = resolve_function(&template, template.resource("IngestFunction").unwrap());
        let events = parse_events(&ingest, "vitals-test").unwrap();
        assert_eq!(
            events,
            vec![FunctionEvent::Route {
                method: Some("POST".to_string()),
                path: "/readings".to_string(),
                api_id: "vitals-test-HttpApi".to_string(),
                auth: Some(serde_json::json!({
                    "Authorizer": "CognitoJwt",
                    "AuthorizationScopes": ["vitals/readings.write"]
                })),
            }]
        );
        assert_eq!(
            ingest.properties["Environment"]["Variables"]["READINGS_STREAM"],
            "vitals-test-ReadingsStream"
        );
        let notify = resolve_function(&template, template.resource("NotifyFunction").unwrap());
        assert_eq!(
            notify.properties["Environment"]["Variables"]["NOTIFICATION_CHANNEL"],
            "outbox"
        );
    }

    #[test]
    fn the_sweep_runs_on_a_one_minute_schedule() {
        let template = Template::load(&template_path()).unwrap();
        let sweep = resolve_function(&template, template.resource("SweepFunction").unwrap());
        let events = parse_events(&sweep, "vitals-test").unwrap();
        let [FunctionEvent::Schedule(schedule)] = events.as_slice() else {
            panic!("expected one schedule, got {events:?}");
        };
        assert_eq!(schedule.kind, ScheduleKind::Rule);
        assert_eq!(schedule.event_name, "Sweep");
        assert!(schedule.enabled && schedule.input.is_none());
        assert_eq!(schedule.period(None).unwrap(), Duration::from_secs(60));
        assert_eq!(
            schedule.period(Some(Duration::from_secs(5))).unwrap(),
            Duration::from_secs(5)
        );
        let vars = &sweep.properties["Environment"]["Variables"];
        assert_eq!(vars["DETECT_MODE"], "sweep");
        assert_eq!(vars["AUTO_DISPATCH_MAX_AGE_SECONDS"], "900");
        assert_eq!(
            sweep.properties["CodeUri"],
            template.resource("DetectFunction").unwrap().properties["CodeUri"]
        );
    }

    #[test]
    fn schedule_events_are_read_and_bad_ones_name_the_function() {
        let function = |events: Value| ResolvedFunction {
            logical_id: "TickFunction".to_string(),
            name: "s-tick".to_string(),
            arn: "arn:aws:lambda:us-east-1:1:function:s-tick".to_string(),
            properties: serde_json::json!({ "Events": events }),
        };
        let events = parse_events(
            &function(serde_json::json!({
                "Every": {"Type": "Schedule", "Properties": {"Schedule": "rate(5 minutes)", "Enabled": false}},
                "V2": {"Type": "ScheduleV2", "Properties": {"ScheduleExpression": "rate(1 hour)", "Input": "{\"a\":1}"}},
            })),
            "s",
        )
        .unwrap();
        let schedules: Vec<&ScheduleEvent> = events
            .iter()
            .map(|e| match e {
                FunctionEvent::Schedule(s) => s,
                other => panic!("not a schedule: {other:?}"),
            })
            .collect();
        assert_eq!(schedules.len(), 2);
        let every = schedules.iter().find(|s| s.event_name == "Every").unwrap();
        assert!(!every.enabled);
        let v2 = schedules.iter().find(|s| s.event_name == "V2").unwrap();
        assert_eq!(v2.kind, ScheduleKind::Scheduler);
        assert_eq!(v2.input, Some(serde_json::json!({"a": 1})));

        let err = parse_events(
            &function(serde_json::json!({
                "Bad": {"Type": "Schedule", "Properties": {"Schedule": "rate(5 minute)"}},
            })),
            "s",
        )
        .unwrap_err();
        let err = format!("{err:#}");
        assert!(err.contains("TickFunction") && err.contains("Bad"), "{err}");
    }
}
