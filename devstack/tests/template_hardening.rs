//! Hardening checks on `infra/template.yaml` (issue 13): limits that protect the alert path,
//! IAM gaps and data protection. Like `template_policy.rs`, each check returns the problems
//! it found; the tests assert there are none in the real template and that each check does
//! report a problem in a template broken on purpose.
//!
//! - Every GSI a function's code queries is granted (dynamodb:Query on the index ARN) to
//!   that function's role ([`QUERIED_INDEXES`], cross-checked against the index names the
//!   adapters pass to `.index_name(..)`).
//! - Only the roles that publish alerts may publish to a topic ([`TOPIC_PUBLISHERS`]); the
//!   SMS statement of NotifyRole (`sns:Publish` on `*`) is paired with an explicit Deny of
//!   `sns:Publish` on topic ARNs.
//! - Every queue, topic and bucket has a resource policy that denies requests without TLS
//!   (`aws:SecureTransport = false`), and no queue or topic is in two policies (the last
//!   one applied would replace the other).
//! - Table writers are scoped to their own keys ([`SCOPED_WRITERS`]).
//! - History and directory tables are retained and have point-in-time recovery
//!   ([`RETAINED_TABLES`]); every other table is listed with the reason it is not. So are
//!   history buckets ([`RETAINED_BUCKETS`]: also versioned, no public access).
//! - detect, route, notify and ingest have reserved concurrency (parameters whose defaults
//!   leave the account's unreserved minimum of 100); every SQS event source has a
//!   MaximumConcurrency within its function's reservation; every queue has an
//!   ApproximateAgeOfOldestMessage alarm that notifies the ops topic.

use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;

use devstack::template::{Template, TemplateResource, collect_references};
use serde_json::{Value, json};

fn workspace() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..")
}

fn template_path() -> PathBuf {
    workspace().join("infra/template.yaml")
}

fn load() -> Template {
    Template::load(&template_path()).expect("infra/template.yaml parses")
}

/// The whole template document, intrinsics normalised (for the resource attributes
/// `DeletionPolicy` and `UpdateReplacePolicy`, which [`Template`] does not keep).
fn load_document() -> Value {
    let text = std::fs::read_to_string(template_path()).expect("template readable");
    let yaml: serde_yaml_ng::Value = serde_yaml_ng::from_str(&text).expect("template is YAML");
    devstack::template::normalise(&yaml).expect("template normalises")
}

fn of_type<'a>(template: &'a Template, t: &'a str) -> impl Iterator<Item = &'a TemplateResource> {
    template
        .resources
        .iter()
        .filter(move |r| r.resource_type == t)
}

fn one_or_many(value: Option<&Value>) -> Vec<&Value> {
    match value {
        None => Vec::new(),
        Some(Value::Array(items)) => items.iter().collect(),
        Some(other) => vec![other],
    }
}

fn references(value: &Value) -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    collect_references(value, &mut out);
    out
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

/// The text of a `Fn::Sub` (or of a plain string).
fn sub_text(value: &Value) -> Option<&str> {
    value
        .as_str()
        .or_else(|| value.get("Fn::Sub").and_then(Value::as_str))
}

fn statements<'a>(template: &'a Template, role: &str) -> Vec<&'a Value> {
    let Some(role) = template.resource(role) else {
        return Vec::new();
    };
    one_or_many(role.properties.get("Policies"))
        .into_iter()
        .flat_map(|p| one_or_many(p.pointer("/PolicyDocument/Statement")))
        .collect()
}

fn actions(statement: &Value) -> Vec<&str> {
    one_or_many(statement.get("Action"))
        .into_iter()
        .filter_map(Value::as_str)
        .collect()
}

fn effect(statement: &Value) -> &str {
    statement
        .get("Effect")
        .and_then(Value::as_str)
        .unwrap_or("")
}

fn number(value: Option<&Value>) -> Option<i64> {
    match value? {
        Value::Number(n) => n.as_i64(),
        Value::String(s) => s.parse().ok(),
        _ => None,
    }
}

/// A number property, or the default of the Number parameter it refers to.
fn number_or_default(template: &Template, value: Option<&Value>) -> Option<i64> {
    if let Some(n) = number(value) {
        return Some(n);
    }
    let name = value?.get("Ref")?.as_str()?;
    let parameter = template.parameters.get(name)?;
    if parameter.param_type != "Number" {
        return None;
    }
    parameter.default.as_deref()?.parse().ok()
}

// ------------------------------------------------------------------ indexes

/// Role -> (table, index) of every GSI its function's code queries. Keep it in step with
/// the code: `index_problems` fails on an index the adapters query that is not listed.
/// - SweepRole: the detection sweep (`StateStore::due`, `DUE_INDEX`).
const QUERIED_INDEXES: &[(&str, &str, &str)] = &[
    ("SweepRole", "PatientStateTable", "due-at"),
    // issue 14: the query API's indexes (application::views::ViewIndex).
    ("QueryRole", "DashboardTable", "kind-since"),
    ("QueryRole", "DashboardTable", "kind-status-since"),
    ("QueryRole", "DashboardTable", "village-since"),
    ("QueryRole", "DashboardTable", "patient-since"),
    ("QueryRole", "DashboardTable", "routed-since"),
    ("QueryRole", "DashboardTable", "inbox-since"),
];

/// The index names the adapters query: each `.index_name(CONST)` whose `pub const CONST:
/// &str = "name"` is in the same file.
fn indexes_queried_by_code() -> BTreeSet<String> {
    let dir = workspace().join("shared/aws-adapters/src");
    let mut out = BTreeSet::new();
    for entry in std::fs::read_dir(&dir).expect("aws-adapters sources") {
        let path = entry.expect("dir entry").path();
        if path.extension().is_none_or(|e| e != "rs") {
            continue;
        }
        let text = std::fs::read_to_string(&path).expect("source readable");
        for line in text.lines() {
            let line = line.trim();
            let Some(rest) = line.strip_prefix("pub const ") else {
                continue;
            };
            let Some((name, value)) = rest.split_once(": &str = \"") else {
                continue;
            };
            let Some(index) = value.strip_suffix("\";") else {
                continue;
            };
            if text.contains(&format!(".index_name({name})")) {
                out.insert(index.to_string());
            }
        }
    }
    out
}

fn index_problems(template: &Template) -> Vec<String> {
    let mut problems = Vec::new();
    let listed: BTreeSet<&str> = QUERIED_INDEXES.iter().map(|(_, _, i)| *i).collect();
    for index in indexes_queried_by_code() {
        if !listed.contains(index.as_str()) {
            problems.push(format!(
                "index {index} is queried by the adapters but not in QUERIED_INDEXES"
            ));
        }
    }
    for (role, table, index) in QUERIED_INDEXES {
        let defined = template.resource(table).is_some_and(|t| {
            one_or_many(t.properties.get("GlobalSecondaryIndexes"))
                .iter()
                .any(|g| g.get("IndexName") == Some(&json!(index)))
        });
        if !defined {
            problems.push(format!("{table} has no index {index}"));
        }
        let arn = format!("${{{table}.Arn}}/index/{index}");
        let granted = statements(template, role).iter().any(|s| {
            effect(s) == "Allow"
                && actions(s).contains(&"dynamodb:Query")
                && one_or_many(s.get("Resource"))
                    .iter()
                    .any(|r| sub_text(r) == Some(arn.as_str()))
        });
        if !granted {
            problems.push(format!(
                "{role}: may not query {table} index {index} (dynamodb:Query on {arn})"
            ));
        }
    }
    problems
}

#[test]
fn every_index_a_function_queries_is_in_its_role() {
    assert_eq!(index_problems(&load()), Vec::<String>::new());
}

// ------------------------------------------------------------------ topics

/// The roles that may publish to a topic, and to which: the alert publishers (detect and
/// its sweep). CloudWatch (ops topic) and the SMS service (inbound SMS topic) publish by
/// topic policy, not with a role of the template.
const TOPIC_PUBLISHERS: &[(&str, &str)] =
    &[("DetectRole", "AlertsTopic"), ("SweepRole", "AlertsTopic")];

fn publishes(actions: &[&str]) -> bool {
    actions
        .iter()
        .any(|a| matches!(*a, "sns:Publish" | "sns:*" | "*"))
}

/// Roles that may publish to topics they should not: an Allow of sns:Publish on a topic not
/// in [`TOPIC_PUBLISHERS`], or on a wildcard that matches topic ARNs without an explicit
/// Deny of sns:Publish on `arn:${AWS::Partition}:sns:*:*:*`.
fn topic_publish_problems(template: &Template) -> Vec<String> {
    let topics: BTreeSet<&str> = of_type(template, "AWS::SNS::Topic")
        .map(|t| t.logical_id.as_str())
        .collect();
    let mut problems = Vec::new();
    for role in of_type(template, "AWS::IAM::Role") {
        let id = role.logical_id.as_str();
        let statements = statements(template, id);
        let denies_topics = statements.iter().any(|s| {
            effect(s) == "Deny"
                && publishes(&actions(s))
                && s.get("Condition").is_none()
                && one_or_many(s.get("Resource"))
                    .iter()
                    .any(|r| matches!(sub_text(r), Some("*" | "arn:${AWS::Partition}:sns:*:*:*")))
        });
        for statement in statements
            .iter()
            .filter(|s| effect(s) == "Allow" && publishes(&actions(s)))
        {
            for resource in one_or_many(statement.get("Resource")) {
                match referenced_id(resource) {
                    Some(topic) if topics.contains(topic) => {
                        if !TOPIC_PUBLISHERS.contains(&(id, topic)) {
                            problems.push(format!("{id}: may publish to {topic}"));
                        }
                    }
                    _ => {
                        let wildcard = sub_text(resource).is_some_and(|t| t.contains('*'));
                        if wildcard && !denies_topics {
                            problems.push(format!(
                                "{id}: may publish to any topic (sns:Publish on {resource} without a Deny on topic ARNs)"
                            ));
                        }
                    }
                }
            }
        }
    }
    problems
}

#[test]
fn only_the_alert_publishers_may_publish_to_a_topic() {
    assert_eq!(topic_publish_problems(&load()), Vec::<String>::new());
}

// ------------------------------------------------------------------ TLS only

/// Every queue, topic and bucket must be named by a resource policy with a statement
/// `Effect: Deny, Principal: "*", Condition: {Bool: {aws:SecureTransport: false}}` whose
/// resources include it; a queue or topic may be named by one policy only.
fn secure_transport_problems(template: &Template) -> Vec<String> {
    let kinds = [
        ("AWS::SQS::Queue", "AWS::SQS::QueuePolicy", "Queues"),
        ("AWS::SNS::Topic", "AWS::SNS::TopicPolicy", "Topics"),
        ("AWS::S3::Bucket", "AWS::S3::BucketPolicy", "Bucket"),
    ];
    let mut problems = Vec::new();
    for (resource_type, policy_type, targets_key) in kinds {
        let mut covered = BTreeSet::new();
        let mut policies_of: BTreeMap<String, Vec<&str>> = BTreeMap::new();
        for policy in of_type(template, policy_type) {
            let targets: BTreeSet<String> = one_or_many(policy.properties.get(targets_key))
                .into_iter()
                .flat_map(references)
                .collect();
            for target in &targets {
                policies_of
                    .entry(target.clone())
                    .or_default()
                    .push(&policy.logical_id);
            }
            for statement in one_or_many(policy.properties.pointer("/PolicyDocument/Statement")) {
                let principal_all = matches!(
                    statement.get("Principal"),
                    Some(p) if p == &json!("*") || p == &json!({"AWS": "*"})
                );
                let insecure = statement
                    .pointer("/Condition/Bool/aws:SecureTransport")
                    .is_some_and(|v| v == &json!(false) || v == &json!("false"));
                if effect(statement) != "Deny" || !principal_all || !insecure {
                    continue;
                }
                let resources: BTreeSet<String> = one_or_many(statement.get("Resource"))
                    .into_iter()
                    .flat_map(references)
                    .collect();
                covered.extend(targets.intersection(&resources).cloned());
            }
        }
        for r in of_type(template, resource_type) {
            let id = &r.logical_id;
            if !covered.contains(id) {
                problems.push(format!(
                    "{id}: no {policy_type} denies aws:SecureTransport = false"
                ));
            }
            if let Some(policies) = policies_of.get(id).filter(|p| p.len() > 1) {
                problems.push(format!(
                    "{id}: in more than one {policy_type}: {policies:?}"
                ));
            }
        }
    }
    problems
}

#[test]
fn every_queue_topic_and_bucket_denies_requests_without_tls() {
    assert_eq!(secure_transport_problems(&load()), Vec::<String>::new());
}

// ------------------------------------------------------------------ scoped writers

/// (role, table, leading keys): a role that writes only its own keys of a shared table has
/// every statement that writes the table conditioned on `ForAllValues:StringLike:
/// dynamodb:LeadingKeys` = these patterns.
/// - IdempotencyTable: keys are `<function>#<hash>` (application::idempotency::key_for);
///   the functions are `detect-publish` (detect and its sweep, detect's
///   publish_idempotency_config), `route` and `notify` (their SOURCE).
/// - DirectoryTable: the pipeline's functions write only acknowledgement codes (`ack#<code>`,
///   aws_adapters::ack_codes); patients, workers and villages are written only by the
///   onboarding API (DirectoryRole, which is denied the `ack#*` keys).
///
/// Not scoped: EventsTable (every writer appends `$event#<id>` dedupe items, and an alert's
/// stream is written by detect, route, notify and the coordinator), and the tables with a single writer (PatientStateTable,
/// OutboxTable, WorkersTable, StepLedgerTable, DashboardTable).
const SCOPED_WRITERS: &[(&str, &str, &[&str])] = &[
    ("DetectRole", "IdempotencyTable", &["detect-publish#*"]),
    ("SweepRole", "IdempotencyTable", &["detect-publish#*"]),
    ("RouteRole", "IdempotencyTable", &["route#*"]),
    ("NotifyRole", "IdempotencyTable", &["notify#*"]),
    ("RouteRole", "DirectoryTable", &["ack#*"]),
    ("EmergencyCoordinatorRole", "DirectoryTable", &["ack#*"]),
    ("EmergencyStepsRole", "DirectoryTable", &["ack#*"]),
];

/// The key prefixes of [`SCOPED_WRITERS`] as the code writes them.
const KEY_PREFIXES_IN_CODE: &[(&str, &str)] = &[
    (
        "functions/detect/src/lib.rs",
        "Config::new(\"detect-publish\", ",
    ),
    (
        "functions/route/src/lib.rs",
        "pub const SOURCE: &str = \"route\";",
    ),
    ("functions/route/src/lib.rs", "Config::new(SOURCE, "),
    (
        "functions/notify/src/lib.rs",
        "pub const SOURCE: &str = \"notify\";",
    ),
    ("functions/notify/src/lib.rs", "Config::new(SOURCE, "),
    (
        "shared/application/src/idempotency.rs",
        "format!(\"{}#{}\", self.config.function,",
    ),
    (
        "shared/aws-adapters/src/ack_codes.rs",
        "format!(\"ack#{code}\")",
    ),
];

const WRITE_ACTIONS: &[&str] = &[
    "dynamodb:PutItem",
    "dynamodb:UpdateItem",
    "dynamodb:DeleteItem",
    "dynamodb:BatchWriteItem",
    "dynamodb:*",
    "*",
];

fn scoped_writer_problems(template: &Template) -> Vec<String> {
    let mut problems = Vec::new();
    for (role, table, patterns) in SCOPED_WRITERS {
        let writes: Vec<&Value> = statements(template, role)
            .into_iter()
            .filter(|s| {
                effect(s) == "Allow"
                    && actions(s).iter().any(|a| WRITE_ACTIONS.contains(a))
                    && one_or_many(s.get("Resource"))
                        .iter()
                        .any(|r| referenced_id(r) == Some(table))
            })
            .collect();
        if writes.is_empty() {
            problems.push(format!("{role}: writes no {table} items (SCOPED_WRITERS)"));
        }
        for statement in writes {
            let keys = statement.pointer("/Condition/ForAllValues:StringLike/dynamodb:LeadingKeys");
            let keys: Vec<&str> = one_or_many(keys)
                .into_iter()
                .filter_map(Value::as_str)
                .collect();
            if keys != *patterns {
                problems.push(format!(
                    "{role}: writes {table} with dynamodb:LeadingKeys {keys:?}, not {patterns:?}"
                ));
            }
        }
    }
    problems
}

#[test]
fn table_writers_are_scoped_to_their_own_keys() {
    assert_eq!(scoped_writer_problems(&load()), Vec::<String>::new());
    for (file, text) in KEY_PREFIXES_IN_CODE {
        let source = std::fs::read_to_string(workspace().join(file)).expect("source readable");
        assert!(
            source.contains(text),
            "{file} no longer has {text:?}: update SCOPED_WRITERS"
        );
    }
}

// ------------------------------------------------------------------ retained tables

/// Tables of history or directory data: `DeletionPolicy: Retain`, `UpdateReplacePolicy:
/// Retain` and point-in-time recovery.
const RETAINED_TABLES: &[&str] = &[
    "EventsTable",       // the event store: the audit history of every alert and emergency
    "DirectoryTable",    // patients, villages, rosters, health workers' phones
    "WorkersTable",      // health workers and their availability
    "OutboxTable",       // the record of every notification sent (audit of what was sent)
    "VillageStatsTable", // daily readings counts (not re-derivable without the archive)
];

/// Tables that may be lost: state and caches, rebuilt or re-derived.
const DISPOSABLE_TABLES: &[&str] = &[
    "PatientStateTable", // detection windows: refilled by the next readings
    "IdempotencyTable",  // records with a TTL of hours
    "StepLedgerTable",   // claims of saga steps in flight
    "DashboardTable",    // read models: project rebuilds them from the events table
    "VitalsTable",       // 8-day cache of recent vitals; the archive keeps the history
];

fn retention_problems(template: &Template, document: &Value) -> Vec<String> {
    let mut problems = Vec::new();
    for table in of_type(template, "AWS::DynamoDB::Table") {
        let id = table.logical_id.as_str();
        if DISPOSABLE_TABLES.contains(&id) {
            continue;
        }
        if !RETAINED_TABLES.contains(&id) {
            problems.push(format!(
                "{id}: in neither RETAINED_TABLES nor DISPOSABLE_TABLES"
            ));
            continue;
        }
        let body = &document["Resources"][id];
        for attribute in ["DeletionPolicy", "UpdateReplacePolicy"] {
            if body.get(attribute) != Some(&json!("Retain")) {
                problems.push(format!("{id}: {attribute} is not Retain"));
            }
        }
        if table
            .properties
            .pointer("/PointInTimeRecoverySpecification/PointInTimeRecoveryEnabled")
            != Some(&json!(true))
        {
            problems.push(format!("{id}: no point-in-time recovery"));
        }
    }
    problems
}

/// Buckets of history (issue 14): `DeletionPolicy: Retain`, `UpdateReplacePolicy: Retain`,
/// versioning and every public access blocked. Every other bucket is listed in
/// [`DISPOSABLE_BUCKETS`] with the reason it may be lost.
const RETAINED_BUCKETS: &[&str] = &[
    "ArchiveBucket", // every reading and stored event, beyond Kinesis' 24 h (docs/archive.md)
];

/// Buckets that may be lost (e.g. static files rebuilt by a deploy).
const DISPOSABLE_BUCKETS: &[&str] = &[
    "WebBucket", // the dashboard's static files; scripts/deploy-web.sh uploads them again
];

fn bucket_retention_problems(template: &Template, document: &Value) -> Vec<String> {
    let mut problems = Vec::new();
    for bucket in of_type(template, "AWS::S3::Bucket") {
        let id = bucket.logical_id.as_str();
        if DISPOSABLE_BUCKETS.contains(&id) {
            continue;
        }
        if !RETAINED_BUCKETS.contains(&id) {
            problems.push(format!(
                "{id}: in neither RETAINED_BUCKETS nor DISPOSABLE_BUCKETS"
            ));
            continue;
        }
        let body = &document["Resources"][id];
        for attribute in ["DeletionPolicy", "UpdateReplacePolicy"] {
            if body.get(attribute) != Some(&json!("Retain")) {
                problems.push(format!("{id}: {attribute} is not Retain"));
            }
        }
        if bucket.properties.pointer("/VersioningConfiguration/Status") != Some(&json!("Enabled")) {
            problems.push(format!("{id}: no versioning"));
        }
        for flag in [
            "BlockPublicAcls",
            "BlockPublicPolicy",
            "IgnorePublicAcls",
            "RestrictPublicBuckets",
        ] {
            if bucket
                .properties
                .pointer(&format!("/PublicAccessBlockConfiguration/{flag}"))
                != Some(&json!(true))
            {
                problems.push(format!("{id}: {flag} is not true"));
            }
        }
    }
    problems
}

#[test]
fn history_buckets_are_retained_versioned_and_private() {
    assert_eq!(
        bucket_retention_problems(&load(), &load_document()),
        Vec::<String>::new()
    );
    let mut template = load();
    resource_mut(&mut template, "ArchiveBucket").properties["PublicAccessBlockConfiguration"]["BlockPublicPolicy"] =
        json!(false);
    let mut document = load_document();
    document["Resources"]["ArchiveBucket"]
        .as_object_mut()
        .unwrap()
        .remove("DeletionPolicy");
    template.resources.push(TemplateResource {
        logical_id: "NewBucket".into(),
        resource_type: "AWS::S3::Bucket".into(),
        properties: json!({}),
        depends_on: Vec::new(),
        condition: None,
    });
    assert_eq!(
        bucket_retention_problems(&template, &document),
        vec![
            "ArchiveBucket: DeletionPolicy is not Retain",
            "ArchiveBucket: BlockPublicPolicy is not true",
            "NewBucket: in neither RETAINED_BUCKETS nor DISPOSABLE_BUCKETS",
        ]
    );
}

/// The archive's delivery streams (issue 14): gzip, a date-partitioned prefix
/// (`dt=!{timestamp:yyyy-MM-dd}/`, what the Glue tables' projection expects) and an error
/// prefix, one record per line; and each Glue table projects `dt` over its own prefix.
fn archive_problems(template: &Template) -> Vec<String> {
    let mut problems = Vec::new();
    for stream in of_type(template, "AWS::KinesisFirehose::DeliveryStream") {
        let id = &stream.logical_id;
        let s3 = &stream.properties["ExtendedS3DestinationConfiguration"];
        if s3.get("CompressionFormat") != Some(&json!("GZIP")) {
            problems.push(format!("{id}: not GZIP"));
        }
        let prefix = s3.get("Prefix").and_then(Value::as_str).unwrap_or("");
        if !prefix.ends_with("/dt=!{timestamp:yyyy-MM-dd}/") {
            problems.push(format!("{id}: prefix {prefix:?} is not partitioned by dt"));
        }
        if s3.get("ErrorOutputPrefix").is_none() {
            problems.push(format!("{id}: no ErrorOutputPrefix"));
        }
        let delimited = one_or_many(s3.pointer("/ProcessingConfiguration/Processors"))
            .iter()
            .any(|p| p.get("Type") == Some(&json!("AppendDelimiterToRecord")));
        if !delimited {
            problems.push(format!("{id}: records are not one per line"));
        }
    }
    for table in of_type(template, "AWS::Glue::Table") {
        let id = &table.logical_id;
        let input = &table.properties["TableInput"];
        if input.pointer("/Parameters/projection.enabled") != Some(&json!("true")) {
            problems.push(format!("{id}: no partition projection"));
        }
        let template_text = input
            .pointer("/Parameters/storage.location.template")
            .and_then(sub_text)
            .unwrap_or("");
        let location = input
            .pointer("/StorageDescriptor/Location")
            .and_then(sub_text)
            .unwrap_or("");
        if template_text != format!("{location}dt=${{!dt}}/") {
            problems.push(format!(
                "{id}: storage.location.template {template_text:?} is not {location:?} + dt"
            ));
        }
    }
    problems
}

#[test]
fn archive_streams_are_compressed_and_partitioned_by_date() {
    let mut template = load();
    assert_eq!(archive_problems(&template), Vec::<String>::new());
    resource_mut(&mut template, "ReadingsArchive").properties["ExtendedS3DestinationConfiguration"]
        ["Prefix"] = json!("readings/");
    assert_eq!(
        archive_problems(&template),
        vec!["ReadingsArchive: prefix \"readings/\" is not partitioned by dt"]
    );
}

#[test]
fn history_and_directory_tables_are_retained_with_point_in_time_recovery() {
    assert_eq!(
        retention_problems(&load(), &load_document()),
        Vec::<String>::new()
    );
}

// ------------------------------------------------------------------ limits

/// Functions of the alert path with reserved concurrency (so a flood elsewhere in the
/// account cannot starve them, and ingest cannot flood the path).
const RESERVED: &[&str] = &[
    "IngestFunction",
    "DetectFunction",
    "RouteFunction",
    "NotifyFunction",
];

/// The account's default concurrency quota, and what must stay unreserved.
const ACCOUNT_CONCURRENCY: i64 = 1000;
const UNRESERVED_MINIMUM: i64 = 100;

fn concurrency_problems(template: &Template) -> Vec<String> {
    let mut problems = Vec::new();
    let mut reserved_total = 0;
    let mut reserved_of = BTreeMap::new();
    for function in of_type(template, "AWS::Serverless::Function") {
        let id = function.logical_id.as_str();
        let value = function.properties.get("ReservedConcurrentExecutions");
        match number_or_default(template, value) {
            Some(n) if n >= 1 => {
                reserved_total += n;
                reserved_of.insert(id, n);
            }
            Some(n) => problems.push(format!("{id}: ReservedConcurrentExecutions {n} < 1")),
            None if value.is_some() => problems.push(format!(
                "{id}: ReservedConcurrentExecutions is not a number or a Number parameter with a default"
            )),
            None if RESERVED.contains(&id) => {
                problems.push(format!("{id}: no ReservedConcurrentExecutions"))
            }
            None => {}
        }
    }
    if reserved_total > ACCOUNT_CONCURRENCY - UNRESERVED_MINIMUM {
        problems.push(format!(
            "reserved concurrency {reserved_total} leaves less than {UNRESERVED_MINIMUM} of {ACCOUNT_CONCURRENCY} unreserved"
        ));
    }
    for function in of_type(template, "AWS::Serverless::Function") {
        let id = function.logical_id.as_str();
        let Some(events) = function.properties.get("Events").and_then(Value::as_object) else {
            continue;
        };
        let mut sqs_total = 0;
        for (name, event) in events {
            if event.get("Type") != Some(&json!("SQS")) {
                continue;
            }
            let max = number_or_default(
                template,
                event.pointer("/Properties/ScalingConfig/MaximumConcurrency"),
            );
            match max {
                Some(n) if (2..=1000).contains(&n) => sqs_total += n,
                _ => problems.push(format!(
                    "{id}.{name}: ScalingConfig.MaximumConcurrency must be set, 2..=1000"
                )),
            }
        }
        if let Some(reserved) = reserved_of.get(id)
            && sqs_total > *reserved
        {
            problems.push(format!(
                "{id}: its SQS sources may poll {sqs_total} at once, more than its {reserved} reserved"
            ));
        }
    }
    problems
}

#[test]
fn alert_path_concurrency_is_reserved_and_sqs_sources_are_capped() {
    assert_eq!(concurrency_problems(&load()), Vec::<String>::new());
}

fn queue_age_problems(template: &Template) -> Vec<String> {
    let mut problems = Vec::new();
    for queue in of_type(template, "AWS::SQS::Queue") {
        let id = queue.logical_id.as_str();
        let alarmed = of_type(template, "AWS::CloudWatch::Alarm").any(|a| {
            let p = &a.properties;
            p.get("Namespace") == Some(&json!("AWS/SQS"))
                && p.get("MetricName") == Some(&json!("ApproximateAgeOfOldestMessage"))
                && one_or_many(p.get("Dimensions")).iter().any(|d| {
                    d.get("Name") == Some(&json!("QueueName"))
                        && d.get("Value").and_then(referenced_id) == Some(id)
                })
                && one_or_many(p.get("AlarmActions"))
                    .iter()
                    .any(|t| referenced_id(t) == Some("OpsTopic"))
        });
        if !alarmed {
            problems.push(format!(
                "{id}: no ApproximateAgeOfOldestMessage alarm to OpsTopic"
            ));
        }
    }
    problems
}

#[test]
fn every_queue_has_an_age_alarm() {
    assert_eq!(queue_age_problems(&load()), Vec::<String>::new());
}

/// Silence: a scheduled function runs whether or not readings flow, so its invocations
/// are the pipeline's pulse. Each has an alarm on `Invocations` below 1 that treats
/// missing data as breaching (every other alarm treats it as not breaching, so a stopped
/// schedule would otherwise go unnoticed).
fn silence_problems(template: &Template) -> Vec<String> {
    let mut problems = Vec::new();
    for function in of_type(template, "AWS::Serverless::Function") {
        let id = function.logical_id.as_str();
        let scheduled = function
            .properties
            .get("Events")
            .and_then(Value::as_object)
            .is_some_and(|events| {
                events.values().any(|e| {
                    matches!(
                        e.get("Type").and_then(Value::as_str),
                        Some("Schedule" | "ScheduleV2")
                    )
                })
            });
        if !scheduled {
            continue;
        }
        let alarmed = of_type(template, "AWS::CloudWatch::Alarm").any(|a| {
            let p = &a.properties;
            p.get("Namespace") == Some(&json!("AWS/Lambda"))
                && p.get("MetricName") == Some(&json!("Invocations"))
                && p.get("ComparisonOperator") == Some(&json!("LessThanThreshold"))
                && p.get("TreatMissingData") == Some(&json!("breaching"))
                && one_or_many(p.get("Dimensions")).iter().any(|d| {
                    d.get("Name") == Some(&json!("FunctionName"))
                        && d.get("Value").and_then(referenced_id) == Some(id)
                })
                && one_or_many(p.get("AlarmActions"))
                    .iter()
                    .any(|t| referenced_id(t) == Some("OpsTopic"))
        });
        if !alarmed {
            problems.push(format!(
                "{id}: scheduled, but no silence alarm (Invocations < 1, missing data breaching)"
            ));
        }
    }
    problems
}

#[test]
fn scheduled_functions_have_a_silence_alarm() {
    assert_eq!(silence_problems(&load()), Vec::<String>::new());
}

#[test]
fn a_missing_silence_alarm_is_reported() {
    let mut template = load();
    template
        .resources
        .retain(|r| r.logical_id != "SweepSilenceAlarm");
    assert_eq!(
        silence_problems(&template),
        vec![
            "SweepFunction: scheduled, but no silence alarm (Invocations < 1, missing data breaching)"
        ]
    );
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

#[test]
fn broken_hardening_is_reported() {
    let mut template = load();
    // A role that loses its index grant.
    statements_mut(&mut template, "SweepRole").retain(|s| {
        !one_or_many(s.get("Resource"))
            .iter()
            .any(|r| sub_text(r).is_some_and(|t| t.ends_with("/index/due-at")))
    });
    assert_eq!(
        index_problems(&template),
        vec![
            "SweepRole: may not query PatientStateTable index due-at (dynamodb:Query on ${PatientStateTable.Arn}/index/due-at)"
        ]
    );

    // route may not publish alerts; notify without its Deny may publish anywhere.
    statements_mut(&mut template, "RouteRole").push(
        json!({"Effect": "Allow", "Action": ["sns:Publish"], "Resource": {"Ref": "AlertsTopic"}}),
    );
    statements_mut(&mut template, "NotifyRole").retain(|s| effect(s) != "Deny");
    let problems = topic_publish_problems(&template);
    assert_eq!(problems.len(), 2, "{problems:#?}");
    assert!(problems.contains(&"RouteRole: may publish to AlertsTopic".to_string()));
    assert!(
        problems
            .iter()
            .any(|p| p.starts_with("NotifyRole: may publish to any topic"))
    );

    // A queue policy that replaces another's, and a topic without TLS deny.
    template.resources.push(TemplateResource {
        logical_id: "ExtraPolicy".into(),
        resource_type: "AWS::SQS::QueuePolicy".into(),
        properties: json!({"Queues": [{"Ref": "RouteQueue"}], "PolicyDocument": {"Statement": []}}),
        depends_on: Vec::new(),
        condition: None,
    });
    template.resources.push(TemplateResource {
        logical_id: "ExtraTopic".into(),
        resource_type: "AWS::SNS::Topic".into(),
        properties: json!({}),
        depends_on: Vec::new(),
        condition: None,
    });
    let problems = secure_transport_problems(&template);
    assert_eq!(problems.len(), 2, "{problems:#?}");
    assert!(
        problems
            .iter()
            .any(|p| p.starts_with("RouteQueue: in more than one"))
    );
    assert!(
        problems
            .iter()
            .any(|p| p.starts_with("ExtraTopic: no AWS::SNS::TopicPolicy"))
    );

    // An unscoped idempotency write.
    for s in statements_mut(&mut template, "NotifyRole") {
        if let Some(c) = s.as_object_mut().and_then(|s| s.get_mut("Condition"))
            && c.pointer("/ForAllValues:StringLike/dynamodb:LeadingKeys/0")
                == Some(&json!("notify#*"))
        {
            *c = json!({});
        }
    }
    let problems = scoped_writer_problems(&template);
    assert_eq!(problems.len(), 1, "{problems:#?}");
    assert!(
        problems[0].starts_with("NotifyRole: writes IdempotencyTable"),
        "{problems:#?}"
    );

    // A new table nobody classified, and the outbox without PITR.
    template.resources.push(TemplateResource {
        logical_id: "NewTable".into(),
        resource_type: "AWS::DynamoDB::Table".into(),
        properties: json!({}),
        depends_on: Vec::new(),
        condition: None,
    });
    resource_mut(&mut template, "OutboxTable")
        .properties
        .as_object_mut()
        .unwrap()
        .remove("PointInTimeRecoverySpecification");
    let mut document = load_document();
    document["Resources"]["WorkersTable"]
        .as_object_mut()
        .unwrap()
        .remove("UpdateReplacePolicy");
    let problems = retention_problems(&template, &document);
    assert_eq!(
        problems,
        vec![
            "OutboxTable: no point-in-time recovery",
            "WorkersTable: UpdateReplacePolicy is not Retain",
            "NewTable: in neither RETAINED_TABLES nor DISPOSABLE_TABLES",
        ]
    );

    // No reservation on notify, an uncapped SQS source, too much reserved.
    resource_mut(&mut template, "NotifyFunction")
        .properties
        .as_object_mut()
        .unwrap()
        .remove("ReservedConcurrentExecutions");
    resource_mut(&mut template, "EmergencyStepsFunction").properties["Events"]["Steps"]
        ["Properties"]
        .as_object_mut()
        .unwrap()
        .remove("ScalingConfig");
    resource_mut(&mut template, "SweepFunction").properties["ReservedConcurrentExecutions"] =
        json!(900);
    let problems = concurrency_problems(&template);
    assert_eq!(problems.len(), 3, "{problems:#?}");
    assert!(problems.contains(&"NotifyFunction: no ReservedConcurrentExecutions".to_string()));
    assert!(
        problems
            .iter()
            .any(|p| p.starts_with("EmergencyStepsFunction.Steps: ScalingConfig"))
    );
    assert!(problems.iter().any(|p| p.contains("unreserved")));

    // A queue whose age alarm is gone.
    template
        .resources
        .retain(|r| r.logical_id != "NotifyQueueAgeAlarm");
    assert_eq!(
        queue_age_problems(&template),
        vec!["NotifyQueue: no ApproximateAgeOfOldestMessage alarm to OpsTopic"]
    );
}
