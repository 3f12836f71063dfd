//! Policy checks on `infra/template.yaml`: what cfn-lint does not know about this project.
//!
//! - Least privilege: no function uses SAM `Policies` (SAM would attach AWS managed
//!   execution policies with `*` resources); each has its own role, and no statement of a
//!   role allows a `*` action or a `*` resource. The one exception is the statement with Sid
//!   `SmsToPhoneNumbers` of `NotifyRole`: exactly `sns:Publish` on `*`, because an SMS to a
//!   phone number has no ARN. And X-Ray: the role of every function with `Tracing: Active`
//!   has exactly one statement with Sid `XRayTraces`, exactly `xray:PutTraceSegments` and
//!   `xray:PutTelemetryRecords` on `*` (those actions have no resource ARN); no other role
//!   has one.
//! - Every queue has a dead-letter queue (with maxReceiveCount >= 5), unless it is itself a
//!   DLQ or an on-failure destination; every SQS-triggered function's queue has a visibility
//!   timeout of at least 6x the function timeout; the Kinesis mapping has bounded retries,
//!   bisect, a maximum record age, partial batch responses and an on-failure destination;
//!   a scheduled function (Schedule / ScheduleV2 events, invoked asynchronously) has bounded
//!   async retries and event age (EventInvokeConfig).
//! - Encryption at rest on streams, topics, queues and tables.
//! - Observability: each function has a log group with retention, error and throttle
//!   alarms, and JSON logs at the `LogLevel` parameter's level (LoggingConfig); each DLQ has
//!   a depth alarm; every alarm notifies the ops topic; alarms on our own metrics name the
//!   `MetricsNamespace` parameter, not a literal namespace (docs/observability.md).
//! - Alert policy: every subscription of the alerts topic filters on severity and never
//!   takes info alerts (dashboard only); the emergency queue's takes critical alerts for
//!   auto dispatch only.
//!
//! Each check returns the problems it found; the tests assert there are none in the real
//! template, and that each check does report a problem in a template broken on purpose.

use std::collections::BTreeSet;
use std::path::PathBuf;

use devstack::template::{Template, TemplateResource};
use serde_json::{Value, json};

/// The documented exception to "no `*` resource".
const SMS_EXCEPTION_ROLE: &str = "NotifyRole";
const SMS_EXCEPTION_SID: &str = "SmsToPhoneNumbers";
/// The X-Ray exception to "no `*` resource": in the role of every traced function.
const XRAY_SID: &str = "XRayTraces";
const XRAY_ACTIONS: [&str; 2] = ["xray:PutTraceSegments", "xray:PutTelemetryRecords"];

fn template_path() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../infra/template.yaml")
}

fn load() -> Template {
    Template::load(&template_path()).expect("infra/template.yaml parses")
}

fn of_type<'a>(template: &'a Template, t: &'a str) -> impl Iterator<Item = &'a TemplateResource> {
    template
        .resources
        .iter()
        .filter(move |r| r.resource_type == t)
}

/// A value that may be one item or a list, as IAM allows for Action and Resource.
fn one_or_many(value: Option<&Value>) -> Vec<&Value> {
    match value {
        None => Vec::new(),
        Some(Value::Array(items)) => items.iter().collect(),
        Some(other) => vec![other],
    }
}

/// The logical id a value refers to with `Ref` or `GetAtt` (`None` for anything else).
fn referenced_id(value: &Value) -> Option<&str> {
    if let Some(id) = value.get("Ref").and_then(Value::as_str) {
        return Some(id);
    }
    value
        .get("Fn::GetAtt")
        .and_then(|a| a.get(0))
        .and_then(Value::as_str)
}

/// Every literal string in a value (the text of `Fn::Sub`, the parts of `Fn::Join`, ...),
/// so a `*` cannot hide inside an intrinsic.
fn literal_strings(value: &Value, out: &mut Vec<String>) {
    match value {
        Value::String(s) => out.push(s.clone()),
        Value::Array(items) => items.iter().for_each(|v| literal_strings(v, out)),
        Value::Object(map) => {
            for (key, v) in map {
                if key == "Ref" || key == "Fn::GetAtt" {
                    continue; // names a resource or parameter: not a pattern
                }
                literal_strings(v, out);
            }
        }
        _ => {}
    }
}

/// A resource pattern with a wildcard. The trailing `:*` of a log group ARN names the log
/// streams of that one group (the form IAM needs for logs:PutLogEvents), so it is allowed.
fn is_wildcard_resource(text: &str) -> bool {
    let text = text
        .strip_suffix(":*")
        .filter(|rest| rest.contains(":log-group:"))
        .unwrap_or(text);
    text.contains('*')
}

/// The objects under one key prefix of a bucket of the template, `${Bucket.Arn}/prefix/*`
/// (the form IAM needs for s3:PutObject): allowed. The whole bucket (`${Bucket.Arn}/*`) is
/// not.
fn is_object_prefix(text: &str, buckets: &BTreeSet<&str>) -> bool {
    let Some(rest) = text.strip_prefix("${") else {
        return false;
    };
    let Some((bucket, path)) = rest.split_once(".Arn}/") else {
        return false;
    };
    let Some(prefix) = path.strip_suffix("/*") else {
        return false;
    };
    buckets.contains(bucket) && !prefix.is_empty() && !prefix.contains('*')
}

/// Least privilege across every function and role.
fn privilege_problems(template: &Template) -> Vec<String> {
    let mut problems = Vec::new();
    let roles: BTreeSet<&str> = of_type(template, "AWS::IAM::Role")
        .map(|r| r.logical_id.as_str())
        .collect();
    // The roles of functions with Tracing: Active (Globals merged in).
    let mut traced_roles = BTreeSet::new();
    for function in of_type(template, "AWS::Serverless::Function") {
        let id = &function.logical_id;
        if function.properties.get("Policies").is_some() {
            problems.push(format!(
                "{id}: uses SAM Policies (SAM then attaches managed policies with * resources); give it its own Role"
            ));
        }
        let mut refs = BTreeSet::new();
        if let Some(role) = function.properties.get("Role") {
            devstack::template::collect_references(role, &mut refs);
        }
        if !refs.iter().any(|r| roles.contains(r.as_str())) {
            problems.push(format!(
                "{id}: Role must be one of the template's IAM roles"
            ));
        }
        if function.properties.get("Tracing") == Some(&json!("Active")) {
            traced_roles.extend(refs.into_iter().filter(|r| roles.contains(r.as_str())));
        }
    }

    let buckets: BTreeSet<&str> = of_type(template, "AWS::S3::Bucket")
        .map(|r| r.logical_id.as_str())
        .collect();
    let mut sms_exceptions = 0;
    for role in of_type(template, "AWS::IAM::Role") {
        let role_id = &role.logical_id;
        let mut xray_statements = 0;
        if role.properties.get("ManagedPolicyArns").is_some() {
            problems.push(format!(
                "{role_id}: ManagedPolicyArns (use named statements)"
            ));
        }
        for policy in one_or_many(role.properties.get("Policies")) {
            let statements = one_or_many(
                policy
                    .get("PolicyDocument")
                    .and_then(|d| d.get("Statement")),
            );
            for statement in statements {
                let sid = statement.get("Sid").and_then(Value::as_str).unwrap_or("");
                let at = format!("{role_id} statement {sid:?}");
                if statement.get("NotAction").is_some() || statement.get("NotResource").is_some() {
                    problems.push(format!("{at}: NotAction/NotResource"));
                }
                if statement.get("Effect").and_then(Value::as_str) != Some("Allow") {
                    continue;
                }
                let actions = one_or_many(statement.get("Action"));
                let resources = one_or_many(statement.get("Resource"));
                if actions.is_empty() || resources.is_empty() {
                    problems.push(format!("{at}: needs Action and Resource"));
                }
                for action in &actions {
                    match action.as_str() {
                        Some(a) if !a.contains('*') => {}
                        _ => {
                            problems.push(format!("{at}: wildcard or non-literal action {action}"))
                        }
                    }
                }
                let is_sms_exception = role_id == SMS_EXCEPTION_ROLE
                    && sid == SMS_EXCEPTION_SID
                    && actions == [&json!("sns:Publish")]
                    && resources == [&json!("*")];
                if is_sms_exception {
                    sms_exceptions += 1;
                    continue;
                }
                if sid == XRAY_SID
                    && actions == XRAY_ACTIONS.map(Value::from).iter().collect::<Vec<_>>()
                    && resources == [&json!("*")]
                {
                    xray_statements += 1;
                    continue;
                }
                for resource in &resources {
                    let mut texts = Vec::new();
                    literal_strings(resource, &mut texts);
                    if texts
                        .iter()
                        .any(|t| is_wildcard_resource(t) && !is_object_prefix(t, &buckets))
                    {
                        problems.push(format!("{at}: wildcard resource {resource}"));
                    }
                }
            }
        }
        match (traced_roles.contains(role_id), xray_statements) {
            (true, 1) | (false, 0) => {}
            (true, n) => problems.push(format!(
                "{role_id}: its function is traced (Tracing: Active): needs exactly one {XRAY_SID} statement, has {n}"
            )),
            (false, _) => problems.push(format!(
                "{role_id}: {XRAY_SID} statement in the role of no traced function"
            )),
        }
    }
    if sms_exceptions > 1 {
        problems.push(format!(
            "the SMS exception ({SMS_EXCEPTION_ROLE}/{SMS_EXCEPTION_SID}) appears {sms_exceptions} times"
        ));
    }
    problems
}

/// Event sources of a function: (event name, Type, Properties).
fn events(function: &TemplateResource) -> Vec<(&str, &str, &Value)> {
    function
        .properties
        .get("Events")
        .and_then(Value::as_object)
        .map(|events| {
            events
                .iter()
                .filter_map(|(name, e)| {
                    Some((
                        name.as_str(),
                        e.get("Type")?.as_str()?,
                        e.get("Properties")?,
                    ))
                })
                .collect()
        })
        .unwrap_or_default()
}

fn number(value: Option<&Value>) -> Option<i64> {
    match value? {
        Value::Number(n) => n.as_i64(),
        Value::String(s) => s.parse().ok(),
        _ => None,
    }
}

fn has_partial_batch_responses(props: &Value) -> bool {
    one_or_many(props.get("FunctionResponseTypes")).contains(&&json!("ReportBatchItemFailures"))
}

/// Dead-letter queues, redrive, visibility timeouts and mapping settings.
fn delivery_problems(template: &Template) -> Vec<String> {
    let mut problems = Vec::new();
    // Queues that receive failures: redrive targets and on-failure destinations.
    let mut failure_queues = BTreeSet::new();
    for queue in of_type(template, "AWS::SQS::Queue") {
        if let Some(target) = queue
            .properties
            .get("RedrivePolicy")
            .and_then(|p| p.get("deadLetterTargetArn"))
            .and_then(referenced_id)
        {
            failure_queues.insert(target.to_string());
        }
    }
    for function in of_type(template, "AWS::Serverless::Function") {
        for (_, _, props) in events(function) {
            if let Some(target) = props
                .pointer("/DestinationConfig/OnFailure/Destination")
                .and_then(referenced_id)
            {
                failure_queues.insert(target.to_string());
            }
        }
    }
    for queue in of_type(template, "AWS::SQS::Queue") {
        let id = &queue.logical_id;
        if failure_queues.contains(id) {
            continue;
        }
        let Some(redrive) = queue.properties.get("RedrivePolicy") else {
            problems.push(format!("{id}: has no dead-letter queue (RedrivePolicy)"));
            continue;
        };
        let target = redrive.get("deadLetterTargetArn").and_then(referenced_id);
        if target.is_none_or(|t| template.resource(t).is_none()) {
            problems.push(format!(
                "{id}: deadLetterTargetArn is not a queue of the template"
            ));
        }
        if number(redrive.get("maxReceiveCount")).is_none_or(|n| n < 5) {
            problems.push(format!("{id}: maxReceiveCount must be at least 5"));
        }
    }

    for function in of_type(template, "AWS::Serverless::Function") {
        let id = &function.logical_id;
        let timeout = number(function.properties.get("Timeout")).unwrap_or(3);
        for (name, kind, props) in events(function) {
            let at = format!("{id}.{name}");
            match kind {
                "SQS" => {
                    if !has_partial_batch_responses(props) {
                        problems.push(format!("{at}: no ReportBatchItemFailures"));
                    }
                    let queue = props
                        .get("Queue")
                        .and_then(referenced_id)
                        .and_then(|q| template.resource(q));
                    match queue {
                        None => {
                            problems.push(format!("{at}: Queue is not a queue of the template"))
                        }
                        Some(queue) => {
                            let visibility =
                                number(queue.properties.get("VisibilityTimeout")).unwrap_or(30);
                            if visibility < 6 * timeout {
                                problems.push(format!(
                                    "{at}: {} VisibilityTimeout {visibility} s < 6 x function Timeout {timeout} s",
                                    queue.logical_id
                                ));
                            }
                        }
                    }
                }
                "Kinesis" | "DynamoDB" => {
                    if !has_partial_batch_responses(props) {
                        problems.push(format!("{at}: no ReportBatchItemFailures"));
                    }
                    if !number(props.get("MaximumRetryAttempts"))
                        .is_some_and(|n| (0..=10).contains(&n))
                    {
                        problems.push(format!("{at}: MaximumRetryAttempts must be set, 0..=10"));
                    }
                    if props.get("BisectBatchOnFunctionError") != Some(&json!(true)) {
                        problems.push(format!("{at}: BisectBatchOnFunctionError must be true"));
                    }
                    if number(props.get("MaximumRecordAgeInSeconds")).is_none_or(|n| n <= 0) {
                        problems.push(format!("{at}: MaximumRecordAgeInSeconds must be set"));
                    }
                    if props
                        .pointer("/DestinationConfig/OnFailure/Destination")
                        .is_none()
                    {
                        problems.push(format!("{at}: no on-failure destination"));
                    }
                }
                "Schedule" | "ScheduleV2" => {
                    // Asynchronous invocations: Lambda retries a failed one twice by default,
                    // up to 6 hours later, overlapping the later runs of the schedule.
                    let config = function.properties.get("EventInvokeConfig");
                    let retries = config.and_then(|c| number(c.get("MaximumRetryAttempts")));
                    if !retries.is_some_and(|n| (0..=2).contains(&n)) {
                        problems.push(format!(
                            "{at}: EventInvokeConfig.MaximumRetryAttempts must be set, 0..=2"
                        ));
                    }
                    let age = config.and_then(|c| number(c.get("MaximumEventAgeInSeconds")));
                    if !age.is_some_and(|n| (60..=21600).contains(&n)) {
                        problems.push(format!(
                            "{at}: EventInvokeConfig.MaximumEventAgeInSeconds must be set, 60..=21600"
                        ));
                    }
                }
                _ => {}
            }
        }
    }
    problems
}

/// Encryption at rest on every stream, topic, queue and table.
fn encryption_problems(template: &Template) -> Vec<String> {
    let mut problems = Vec::new();
    for r in &template.resources {
        let p = &r.properties;
        let encrypted = match r.resource_type.as_str() {
            "AWS::Kinesis::Stream" => {
                p.pointer("/StreamEncryption/EncryptionType") == Some(&json!("KMS"))
            }
            "AWS::SNS::Topic" => p.get("KmsMasterKeyId").is_some(),
            "AWS::SQS::Queue" => {
                p.get("SqsManagedSseEnabled") == Some(&json!(true))
                    || p.get("KmsMasterKeyId").is_some()
            }
            "AWS::DynamoDB::Table" => {
                p.pointer("/SSESpecification/SSEEnabled") == Some(&json!(true))
            }
            "AWS::S3::Bucket" => p
                .pointer("/BucketEncryption/ServerSideEncryptionConfiguration/0/ServerSideEncryptionByDefault/SSEAlgorithm")
                .is_some(),
            // DirectPut: Firehose's own SSE. A Kinesis source cannot have it: the records
            // stay in the (encrypted, checked above) stream of the template it names.
            "AWS::KinesisFirehose::DeliveryStream" => match p.get("DeliveryStreamType") {
                Some(t) if t == &json!("KinesisStreamAsSource") => p
                    .pointer("/KinesisStreamSourceConfiguration/KinesisStreamARN")
                    .and_then(referenced_id)
                    .is_some_and(|id| {
                        of_type(template, "AWS::Kinesis::Stream").any(|s| s.logical_id == id)
                    }),
                _ => p
                    .pointer("/DeliveryStreamEncryptionConfigurationInput/KeyType")
                    .is_some(),
            },
            "AWS::Athena::WorkGroup" => {
                p.pointer("/WorkGroupConfiguration/EnforceWorkGroupConfiguration")
                    == Some(&json!(true))
                    && p.pointer(
                        "/WorkGroupConfiguration/ResultConfiguration/EncryptionConfiguration/EncryptionOption",
                    )
                    .is_some()
            }
            _ => continue,
        };
        if !encrypted {
            problems.push(format!("{}: not encrypted at rest", r.logical_id));
        }
    }
    problems
}

/// Alarms (and their metric dimensions) that watch a given resource.
fn alarms_on<'a>(
    template: &'a Template,
    metric: &str,
    resource: &str,
) -> Vec<&'a TemplateResource> {
    of_type(template, "AWS::CloudWatch::Alarm")
        .filter(|a| a.properties.get("MetricName") == Some(&json!(metric)))
        .filter(|a| {
            let mut refs = BTreeSet::new();
            if let Some(d) = a.properties.get("Dimensions") {
                devstack::template::collect_references(d, &mut refs);
            }
            refs.contains(resource)
        })
        .collect()
}

/// Log groups, alarms and where alarms go.
fn observability_problems(template: &Template) -> Vec<String> {
    let mut problems = Vec::new();
    let Some(ops_topic) = of_type(template, "AWS::SNS::Topic").find(|t| t.logical_id == "OpsTopic")
    else {
        return vec!["no OpsTopic".to_string()];
    };
    for alarm in of_type(template, "AWS::CloudWatch::Alarm") {
        if let Some(namespace) = alarm.properties.get("Namespace").and_then(Value::as_str)
            && !namespace.starts_with("AWS/")
        {
            problems.push(format!(
                "{}: Namespace {namespace}: use !Ref MetricsNamespace",
                alarm.logical_id
            ));
        }
        let actions = one_or_many(alarm.properties.get("AlarmActions"));
        if !actions
            .iter()
            .any(|a| referenced_id(a) == Some(ops_topic.logical_id.as_str()))
        {
            problems.push(format!("{}: does not notify OpsTopic", alarm.logical_id));
        }
    }
    let log_groups: Vec<&TemplateResource> = of_type(template, "AWS::Logs::LogGroup").collect();
    for group in &log_groups {
        if group.properties.get("RetentionInDays").is_none() {
            problems.push(format!("{}: no RetentionInDays", group.logical_id));
        }
    }
    for function in of_type(template, "AWS::Serverless::Function") {
        let id = function.logical_id.as_str();
        // The function's log group is /aws/lambda/<FunctionName>, and LoggingConfig names it.
        let name = function
            .properties
            .get("FunctionName")
            .and_then(|n| n.get("Fn::Sub"));
        let group = function
            .properties
            .pointer("/LoggingConfig/LogGroup")
            .and_then(referenced_id)
            .and_then(|g| log_groups.iter().find(|l| l.logical_id == g));
        match (name.and_then(Value::as_str), group) {
            (Some(name), Some(group))
                if group.properties.get("LogGroupName")
                    == Some(&json!({"Fn::Sub": format!("/aws/lambda/{name}")})) => {}
            _ => problems.push(format!(
                "{id}: needs FunctionName and a LoggingConfig.LogGroup named /aws/lambda/<FunctionName>"
            )),
        }
        let logging = function.properties.get("LoggingConfig");
        let json_logs = logging.and_then(|l| l.get("LogFormat")) == Some(&json!("JSON"));
        let level = logging.and_then(|l| l.get("ApplicationLogLevel"));
        if !json_logs || level.and_then(referenced_id) != Some("LogLevel") {
            problems.push(format!(
                "{id}: LoggingConfig needs LogFormat JSON and ApplicationLogLevel !Ref LogLevel"
            ));
        }
        for metric in ["Errors", "Throttles"] {
            if alarms_on(template, metric, id).is_empty() {
                problems.push(format!("{id}: no {metric} alarm"));
            }
        }
    }
    let mut dead_letter_queues = BTreeSet::new();
    for queue in of_type(template, "AWS::SQS::Queue") {
        if let Some(target) = queue
            .properties
            .pointer("/RedrivePolicy/deadLetterTargetArn")
            .and_then(referenced_id)
        {
            dead_letter_queues.insert(target.to_string());
        }
    }
    for function in of_type(template, "AWS::Serverless::Function") {
        for (_, kind, props) in events(function) {
            if let Some(target) = props
                .pointer("/DestinationConfig/OnFailure/Destination")
                .and_then(referenced_id)
            {
                dead_letter_queues.insert(target.to_string());
            }
            if matches!(kind, "Kinesis" | "DynamoDB")
                && alarms_on(template, "IteratorAge", &function.logical_id).is_empty()
            {
                problems.push(format!("{}: no IteratorAge alarm", function.logical_id));
            }
        }
    }
    for dlq in &dead_letter_queues {
        if alarms_on(template, "ApproximateNumberOfMessagesVisible", dlq).is_empty() {
            problems.push(format!("{dlq}: no depth alarm"));
        }
    }
    // The archive (issue 14): a stalled or failing delivery is silent otherwise.
    for stream in of_type(template, "AWS::KinesisFirehose::DeliveryStream") {
        for metric in ["DeliveryToS3.DataFreshness", "DeliveryToS3.Success"] {
            if alarms_on(template, metric, &stream.logical_id).is_empty() {
                problems.push(format!("{}: no {metric} alarm", stream.logical_id));
            }
        }
    }
    for pipe in of_type(template, "AWS::Pipes::Pipe") {
        if alarms_on(template, "ExecutionFailed", &pipe.logical_id).is_empty() {
            problems.push(format!("{}: no ExecutionFailed alarm", pipe.logical_id));
        }
    }
    if of_type(template, "AWS::CloudWatch::Alarm")
        .all(|a| a.properties.get("MetricName") != Some(&json!("EndToEndLagMs")))
    {
        problems.push("no alert-processing lag alarm (Vitals EndToEndLagMs)".to_string());
    }
    if of_type(template, "AWS::CloudWatch::Dashboard")
        .next()
        .is_none()
    {
        problems.push("no dashboard".to_string());
    }
    problems
}

/// Every HttpApi has a default authorizer and a default throttle; every route names an
/// authorizer (not NONE) and the scopes it accepts (docs/security.md, "Scopes").
fn api_problems(template: &Template) -> Vec<String> {
    let mut problems: Vec<String> = Vec::new();
    for api in of_type(template, "AWS::Serverless::HttpApi") {
        let auth = api.properties.pointer("/Auth/DefaultAuthorizer");
        if auth.is_none() || auth == Some(&json!("NONE")) {
            problems.push(format!("{}: no DefaultAuthorizer", api.logical_id));
        }
        if api.properties.get("DefaultRouteSettings").is_none() {
            problems.push(format!(
                "{}: no DefaultRouteSettings (throttling)",
                api.logical_id
            ));
        }
    }
    for function in of_type(template, "AWS::Serverless::Function") {
        let Some(events) = function.properties.get("Events").and_then(Value::as_object) else {
            continue;
        };
        for (name, event) in events {
            if event["Type"] != "HttpApi" {
                continue;
            }
            let auth = &event["Properties"]["Auth"];
            let authorizer = auth["Authorizer"].as_str().unwrap_or("NONE");
            let scopes = auth["AuthorizationScopes"]
                .as_array()
                .map(|s| s.len())
                .unwrap_or(0);
            if authorizer == "NONE" || scopes == 0 {
                problems.push(format!(
                    "{}.{name}: route without an authorizer and scopes",
                    function.logical_id
                ));
            }
        }
    }
    problems
}

fn alert_policy_problems(template: &Template) -> Vec<String> {
    let mut problems = Vec::new();
    for sub in of_type(template, "AWS::SNS::Subscription")
        .filter(|s| referenced_id(&s.properties["TopicArn"]) == Some("AlertsTopic"))
    {
        let id = &sub.logical_id;
        let policy = &sub.properties["FilterPolicy"];
        let severities: Vec<&str> = policy["severity"]
            .as_array()
            .map(|a| a.iter().filter_map(Value::as_str).collect())
            .unwrap_or_default();
        if severities.is_empty() {
            problems.push(format!("{id}: no severity filter (info alerts would pass)"));
        } else if severities.contains(&"info") {
            problems.push(format!("{id}: takes info alerts"));
        }
        if referenced_id(&sub.properties["Endpoint"]) == Some("EmergencyQueue") {
            if severities != ["critical"] {
                problems.push(format!("{id}: takes more than critical alerts"));
            }
            let dispatch: Vec<&Value> = policy["dispatch"]
                .as_array()
                .map(|a| a.iter().collect())
                .unwrap_or_default();
            if !dispatch.contains(&&json!("auto")) || dispatch.contains(&&json!("manual")) {
                problems.push(format!("{id}: does not keep to dispatch = auto"));
            }
        }
    }
    problems
}

// ------------------------------------------------------------------ the real template

#[test]
fn info_alerts_notify_nobody_and_manual_dispatch_starts_no_saga() {
    assert_eq!(alert_policy_problems(&load()), Vec::<String>::new());
}

#[test]
fn template_grants_least_privilege() {
    let template = load();
    assert_eq!(privilege_problems(&template), Vec::<String>::new());
    // + QueryFunction and DirectoryFunction (issue 14).
    assert_eq!(of_type(&template, "AWS::Serverless::Function").count(), 11);
}

#[test]
fn every_queue_has_a_dlq_and_mappings_are_bounded() {
    assert_eq!(delivery_problems(&load()), Vec::<String>::new());
}

#[test]
fn streams_topics_queues_and_tables_are_encrypted() {
    assert_eq!(encryption_problems(&load()), Vec::<String>::new());
}

#[test]
fn functions_have_log_groups_and_alarms_reach_the_ops_topic() {
    assert_eq!(observability_problems(&load()), Vec::<String>::new());
}

#[test]
fn http_api_requires_auth() {
    assert_eq!(api_problems(&load()), Vec::<String>::new());
}

// ------------------------------------------------------------------ the checks can fail

fn resource_mut<'a>(template: &'a mut Template, id: &str) -> &'a mut TemplateResource {
    template
        .resources
        .iter_mut()
        .find(|r| r.logical_id == id)
        .unwrap_or_else(|| panic!("no {id}"))
}

fn statements_mut<'a>(template: &'a mut Template, role: &str) -> &'a mut Vec<Value> {
    resource_mut(template, role).properties["Policies"][0]["PolicyDocument"]["Statement"]
        .as_array_mut()
        .expect("statements")
}

fn has_problem(problems: &[String], role: &str, what: &str) -> bool {
    problems
        .iter()
        .any(|p| p.starts_with(role) && p.contains(what))
}

#[test]
fn wildcard_action_or_resource_is_reported() {
    let mut template = load();
    statements_mut(&mut template, "RouteRole").push(json!({
        "Effect": "Allow", "Action": "dynamodb:*", "Resource": {"Fn::GetAtt": ["EventsTable", "Arn"]}
    }));
    statements_mut(&mut template, "IngestRole").push(json!({
        "Effect": "Allow", "Action": ["kinesis:PutRecord"], "Resource": "*"
    }));
    statements_mut(&mut template, "DetectRole").push(json!({
        "Effect": "Allow", "Action": ["sqs:SendMessage"],
        "Resource": {"Fn::Sub": "arn:${AWS::Partition}:sqs:${AWS::Region}:${AWS::AccountId}:*"}
    }));
    // The sweep may query its one index, not every index of the table.
    statements_mut(&mut template, "SweepRole").push(json!({
        "Effect": "Allow", "Action": ["dynamodb:Query"],
        "Resource": {"Fn::Sub": "${PatientStateTable.Arn}/index/*"}
    }));
    // Firehose may write its own key prefix of the archive, not the whole bucket.
    statements_mut(&mut template, "EventsArchiveRole").push(json!({
        "Effect": "Allow", "Action": ["s3:PutObject"],
        "Resource": {"Fn::Sub": "${ArchiveBucket.Arn}/*"}
    }));
    let problems = privilege_problems(&template);
    assert_eq!(problems.len(), 5, "{problems:#?}");
    assert!(has_problem(
        &problems,
        "EventsArchiveRole",
        "wildcard resource"
    ));
    let has = |role: &str, what: &str| {
        problems
            .iter()
            .any(|p| p.starts_with(role) && p.contains(what))
    };
    assert!(has("IngestRole", "wildcard resource"), "{problems:#?}");
    assert!(has("DetectRole", "wildcard resource"), "{problems:#?}");
    assert!(has("SweepRole", "wildcard resource"), "{problems:#?}");
    assert!(has("RouteRole", "\"dynamodb:*\""), "{problems:#?}");
}

#[test]
fn the_sms_exception_is_exactly_sns_publish_in_notify_role() {
    let mut template = load();
    // The same statement in another role is not excepted.
    let sms = statements_mut(&mut template, "NotifyRole")
        .iter()
        .find(|s| s["Sid"] == SMS_EXCEPTION_SID)
        .cloned()
        .expect("NotifyRole has the documented SMS statement");
    statements_mut(&mut template, "RouteRole").push(sms);
    // A second action in the excepted statement breaks the exception.
    for s in statements_mut(&mut template, "NotifyRole") {
        if s["Sid"] == SMS_EXCEPTION_SID {
            s["Action"] = json!(["sns:Publish", "sns:Subscribe"]);
        }
    }
    let problems = privilege_problems(&template);
    assert_eq!(problems.len(), 2, "{problems:#?}");
    assert!(
        problems
            .iter()
            .any(|p| p.starts_with("RouteRole") && p.contains("wildcard resource"))
    );
    assert!(
        problems
            .iter()
            .any(|p| p.starts_with("NotifyRole") && p.contains("wildcard resource"))
    );
}

#[test]
fn the_xray_exception_is_exactly_the_two_writes_in_traced_function_roles() {
    let mut template = load();
    let xray = statements_mut(&mut template, "RouteRole")
        .iter()
        .find(|s| s["Sid"] == XRAY_SID)
        .cloned()
        .expect("RouteRole has the X-Ray statement");
    // In the role of no traced function (Firehose's).
    statements_mut(&mut template, "EventsArchiveRole").push(xray);
    // A third action in it: no longer the exception.
    for s in statements_mut(&mut template, "NotifyRole") {
        if s["Sid"] == XRAY_SID {
            s["Action"] = json!([
                "xray:PutTraceSegments",
                "xray:PutTelemetryRecords",
                "xray:GetTraceSummaries"
            ]);
        }
    }
    // A traced function's role without it.
    statements_mut(&mut template, "IngestRole").retain(|s| s["Sid"] != XRAY_SID);
    let problems = privilege_problems(&template);
    assert_eq!(problems.len(), 4, "{problems:#?}");
    assert!(has_problem(
        &problems,
        "EventsArchiveRole",
        "role of no traced function"
    ));
    assert!(has_problem(&problems, "NotifyRole", "wildcard resource"));
    assert!(has_problem(&problems, "NotifyRole", "has 0"));
    assert!(has_problem(&problems, "IngestRole", "has 0"));
}

#[test]
fn text_logs_and_a_literal_metrics_namespace_are_reported() {
    let mut template = load();
    resource_mut(&mut template, "RouteFunction").properties["LoggingConfig"]["LogFormat"] =
        json!("Text");
    let lag_alarm = template
        .resources
        .iter_mut()
        .find(|r| r.properties.get("MetricName") == Some(&json!("EndToEndLagMs")))
        .expect("the lag alarm");
    lag_alarm.properties["Namespace"] = json!("Vitals");
    let lag_alarm = lag_alarm.logical_id.clone();
    let problems = observability_problems(&template);
    assert_eq!(problems.len(), 2, "{problems:#?}");
    assert!(has_problem(&problems, "RouteFunction", "LogFormat JSON"));
    assert!(has_problem(&problems, &lag_alarm, "MetricsNamespace"));
}

#[test]
fn sam_policies_on_a_function_are_reported() {
    let mut template = load();
    let route = resource_mut(&mut template, "RouteFunction");
    route.properties["Policies"] = json!([{"SQSPollerPolicy": {"QueueName": "x"}}]);
    route.properties.as_object_mut().unwrap().remove("Role");
    let problems = privilege_problems(&template);
    // (And RouteRole, now no traced function's role, keeps an X-Ray statement.)
    assert_eq!(problems.len(), 3, "{problems:#?}");
    assert!(has_problem(
        &problems,
        "RouteRole",
        "role of no traced function"
    ));
}

#[test]
fn a_queue_without_dlq_and_a_short_visibility_timeout_are_reported() {
    let mut template = load();
    resource_mut(&mut template, "NotifyQueue")
        .properties
        .as_object_mut()
        .unwrap()
        .remove("RedrivePolicy");
    resource_mut(&mut template, "RouteQueue").properties["VisibilityTimeout"] = json!(59);
    resource_mut(&mut template, "RouteQueue").properties["RedrivePolicy"]["maxReceiveCount"] =
        json!(4);
    let detect = resource_mut(&mut template, "DetectFunction");
    detect.properties["Events"]["Readings"]["Properties"]
        .as_object_mut()
        .unwrap()
        .remove("MaximumRecordAgeInSeconds");
    resource_mut(&mut template, "SweepFunction")
        .properties
        .as_object_mut()
        .unwrap()
        .remove("EventInvokeConfig");
    let problems = delivery_problems(&template);
    assert_eq!(problems.len(), 7, "{problems:#?}");
    assert!(
        problems
            .iter()
            .any(|p| p.starts_with("NotifyQueue: has no dead-letter queue"))
    );
    // With the redrive policy gone, NotifyDLQ is an ordinary queue without a DLQ.
    assert!(
        problems
            .iter()
            .any(|p| p.starts_with("NotifyDLQ: has no dead-letter queue"))
    );
    assert!(
        problems
            .iter()
            .any(|p| p.starts_with("RouteQueue: maxReceiveCount"))
    );
    assert!(
        problems
            .iter()
            .any(|p| p.contains("VisibilityTimeout 59 s < 6 x function Timeout 10 s"))
    );
    assert!(
        problems
            .iter()
            .any(|p| p.contains("MaximumRecordAgeInSeconds"))
    );
    assert!(problems.iter().any(|p| {
        p.starts_with("SweepFunction.Sweep: EventInvokeConfig.MaximumRetryAttempts must be set")
    }));
    assert!(problems.iter().any(|p| p.starts_with(
        "SweepFunction.Sweep: EventInvokeConfig.MaximumEventAgeInSeconds must be set"
    )));
}

#[test]
fn missing_encryption_alarm_or_auth_is_reported() {
    let mut template = load();
    resource_mut(&mut template, "EventsTable")
        .properties
        .as_object_mut()
        .unwrap()
        .remove("SSESpecification");
    assert_eq!(
        encryption_problems(&template),
        vec!["EventsTable: not encrypted at rest"]
    );
    resource_mut(&mut template, "EventsArchive")
        .properties
        .as_object_mut()
        .unwrap()
        .remove("DeliveryStreamEncryptionConfigurationInput");
    resource_mut(&mut template, "ArchiveBucket")
        .properties
        .as_object_mut()
        .unwrap()
        .remove("BucketEncryption");
    resource_mut(&mut template, "ArchiveWorkGroup").properties["WorkGroupConfiguration"]["EnforceWorkGroupConfiguration"] =
        json!(false);
    assert_eq!(
        encryption_problems(&template),
        vec![
            "ArchiveBucket: not encrypted at rest",
            "ArchiveWorkGroup: not encrypted at rest",
            "EventsArchive: not encrypted at rest",
            "EventsTable: not encrypted at rest",
        ]
    );

    template.resources.retain(|r| {
        !matches!(
            r.logical_id.as_str(),
            "RouteDLQDepthAlarm"
                | "NotifyThrottlesAlarm"
                | "SweepErrorsAlarm"
                | "ReadingsArchiveFreshnessAlarm"
                | "EventsArchivePipeFailureAlarm"
        )
    });
    resource_mut(&mut template, "AlertLagAlarm").properties["AlarmActions"] = json!([]);
    resource_mut(&mut template, "SweepFunction")
        .properties
        .as_object_mut()
        .unwrap()
        .remove("LoggingConfig");
    let problems = observability_problems(&template);
    assert_eq!(problems.len(), 8, "{problems:#?}");
    assert!(has_problem(&problems, "SweepFunction", "LogFormat JSON"));
    assert!(problems.contains(&"ReadingsArchive: no DeliveryToS3.DataFreshness alarm".to_string()));
    assert!(problems.contains(&"EventsArchivePipe: no ExecutionFailed alarm".to_string()));
    assert!(problems.contains(&"AlertLagAlarm: does not notify OpsTopic".to_string()));
    assert!(problems.contains(&"NotifyFunction: no Throttles alarm".to_string()));
    assert!(problems.contains(&"RouteDLQ: no depth alarm".to_string()));
    assert!(problems.contains(&"SweepFunction: no Errors alarm".to_string()));
    assert!(
        problems
            .iter()
            .any(|p| p.starts_with("SweepFunction: needs FunctionName and a LoggingConfig"))
    );

    resource_mut(&mut template, "HttpApi").properties["Auth"]["DefaultAuthorizer"] = json!("NONE");
    resource_mut(&mut template, "IngestFunction").properties["Events"]["PostReadings"]
        ["Properties"]
        .as_object_mut()
        .unwrap()
        .remove("Auth");
    assert_eq!(
        api_problems(&template),
        vec![
            "HttpApi: no DefaultAuthorizer",
            "IngestFunction.PostReadings: route without an authorizer and scopes",
        ]
    );
}

#[test]
fn a_subscription_that_lets_info_alerts_or_manual_dispatch_through_is_reported() {
    let mut template = load();
    resource_mut(&mut template, "AlertsToRouteSubscription").properties["FilterPolicy"]
        .as_object_mut()
        .unwrap()
        .remove("severity");
    resource_mut(&mut template, "AlertsToEscalationSubscription").properties["FilterPolicy"]["severity"] =
        json!(["info", "warning", "critical"]);
    resource_mut(&mut template, "AlertsToEmergencySubscription").properties["FilterPolicy"]["dispatch"] =
        json!(["auto", "manual"]);
    assert_eq!(
        alert_policy_problems(&template),
        vec![
            "AlertsToEmergencySubscription: does not keep to dispatch = auto",
            "AlertsToEscalationSubscription: takes info alerts",
            "AlertsToRouteSubscription: no severity filter (info alerts would pass)",
        ]
    );
}

// --- issue 16 part 6 (habits): safe defaults. The dev environment records notifications
// without sending SMS; the hospital desk has no placeholder default, and the deploy refuses
// to start without a real one.

fn workspace_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// `parameter_overrides` of `[ENV.deploy.parameters]` in infra/samconfig.toml, as pairs.
fn samconfig_overrides(environment: &str) -> Vec<(String, String)> {
    let text = std::fs::read_to_string(workspace_root().join("infra/samconfig.toml"))
        .expect("samconfig readable");
    let header = format!("[{environment}.deploy.parameters]");
    let section = text
        .split_once(&header)
        .map(|(_, rest)| rest.split("\n[").next().unwrap_or(""))
        .unwrap_or_else(|| panic!("no {header} in samconfig"));
    let line = section
        .lines()
        .find_map(|l| l.trim().strip_prefix("parameter_overrides = "))
        .unwrap_or("\"\"");
    let unquoted = line.trim_matches('"').replace("\\\"", "\"");
    unquoted
        .split_whitespace()
        .filter_map(|pair| pair.split_once('='))
        .map(|(k, v)| (k.to_string(), v.trim_matches('"').to_string()))
        .collect()
}

#[test]
fn the_hospital_phone_has_no_placeholder_default_and_must_be_e164() {
    let text = std::fs::read_to_string(template_path()).expect("template readable");
    let yaml: serde_yaml_ng::Value = serde_yaml_ng::from_str(&text).expect("template is YAML");
    let parameter = &yaml["Parameters"]["DistrictHospitalPhone"];
    assert!(parameter.is_mapping(), "DistrictHospitalPhone is declared");
    assert!(
        parameter.get("Default").is_none(),
        "DistrictHospitalPhone must have no default: {parameter:?}"
    );
    assert_eq!(
        parameter["AllowedPattern"].as_str(),
        Some(r"^\+[1-9][0-9]{7,14}$"),
        "an E.164 pattern, so a blank or malformed desk is refused by CloudFormation"
    );
    // The local stack supplies its stand-in, which the pattern accepts.
    assert_eq!(devstack::stack::LOCAL_HOSPITAL_PHONE, "+254700009999");
}

#[test]
fn the_dev_environment_delivers_to_the_outbox_and_prod_names_no_placeholder() {
    let dev = samconfig_overrides("default");
    assert!(
        dev.contains(&("NotificationChannel".into(), "outbox".into())),
        "the default (dev) environment must not send SMS: {dev:?}"
    );
    let prod = samconfig_overrides("prod");
    assert!(
        !prod
            .iter()
            .any(|(k, v)| k == "DistrictHospitalPhone" && v == "+254700009999"),
        "prod must not deploy the local stand-in as its hospital desk: {prod:?}"
    );
}

/// Runs `./dev deploy prod` with a stand-in `sam` on PATH that records its arguments.
fn deploy_prod(phone: Option<&str>) -> (std::process::Output, String) {
    let dir = std::env::temp_dir().join(format!("vitals-deploy-test-{}", uuid_like()));
    std::fs::create_dir_all(&dir).expect("temp dir");
    let calls = dir.join("calls");
    let sam = dir.join("sam");
    std::fs::write(
        &sam,
        format!("#!/bin/sh\necho \"$@\" >> {}\n", calls.display()),
    )
    .expect("fake sam");
    std::process::Command::new("chmod")
        .arg("+x")
        .arg(&sam)
        .status()
        .expect("chmod");
    let mut command = std::process::Command::new(workspace_root().join("scripts/deploy.sh"));
    command
        .arg("prod")
        .env_remove("DISTRICT_HOSPITAL_PHONE")
        .env(
            "PATH",
            format!(
                "{}:{}",
                dir.display(),
                std::env::var("PATH").unwrap_or_default()
            ),
        );
    if let Some(phone) = phone {
        command.env("DISTRICT_HOSPITAL_PHONE", phone);
    }
    let output = command.output().expect("scripts/deploy.sh runs");
    let recorded = std::fs::read_to_string(&calls).unwrap_or_default();
    let _ = std::fs::remove_dir_all(&dir);
    (output, recorded)
}

fn uuid_like() -> String {
    format!(
        "{}-{}",
        std::process::id(),
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos())
            .unwrap_or_default()
    )
}

#[test]
fn the_prod_deploy_refuses_to_start_without_a_real_hospital_phone() {
    for phone in [None, Some("+254700009999"), Some("0700 000 999")] {
        let (output, sam_calls) = deploy_prod(phone);
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert_eq!(output.status.code(), Some(2), "{phone:?}: {stderr}");
        assert!(
            stderr.contains("deploy refused: DistrictHospitalPhone"),
            "{stderr}"
        );
        assert!(sam_calls.is_empty(), "sam must not run: {sam_calls}");
    }
    let (output, sam_calls) = deploy_prod(Some("+254711111111"));
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let lines: Vec<&str> = sam_calls.lines().collect();
    assert_eq!(lines.len(), 2, "sam build, then sam deploy: {sam_calls}");
    assert!(
        lines[0].starts_with("build --config-env prod"),
        "{sam_calls}"
    );
    // samconfig's own overrides are kept beside the phone (--parameter-overrides replaces
    // the list rather than adding to it).
    for expected in [
        "deploy --config-env prod --parameter-overrides",
        "StageName=prod",
        "NotificationChannel=sms",
        "DistrictHospitalPhone=+254711111111",
    ] {
        assert!(lines[1].contains(expected), "{expected}: {sam_calls}");
    }
}
// --- end of issue 16 part 6
