//! Hot partition keys (issue 15 part 1): no table or GSI of `infra/template.yaml` may have a
//! partition key that takes one constant value on every write of its items, the shape of
//! the event store's former `$all` counter item and `all-position` index (`allPk = "all"`).
//! GSI writes are not in the emulator's request log, so this is a static check, in three
//! parts:
//!
//! - every partition key (HASH) of every table and GSI is declared in [`PARTITION_KEYS`]
//!   with how its values spread, and every declaration is in the template: a new table or
//!   index cannot appear without that decision;
//! - no declaration is [`Spread::Constant`], except the waived read-model indexes in
//!   [`WAIVED`] (never the event store's table);
//! - no source file that writes items (`shared/aws-adapters/src`, `functions/*/src`, their
//!   code before any `#[cfg(test)]`) writes a partition key attribute with a constant: a
//!   string literal or a `SCREAMING_CASE` constant as the value of `.item("<key>", ..)` /
//!   `.key("<key>", ..)`, or, in the adapters (where rows are serialised into items), as
//!   the value of the key's field in a row (`all_pk: ALL_PK.to_string()`).
//!
//! Each check returns its problems; the tests assert there are none in the real template and
//! sources, and that each check reports the former event store (fixtures below).
//! The runtime twin, over the request log: `tests/event_store.rs`
//! (`no_partition_key_takes_more_than_its_share_of_the_writes`).

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use devstack::template::Template;
use serde_json::Value;

/// How a partition key's values spread over the writes of its items.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Spread {
    /// One value per entity (stream, patient, notification, event id...): grows with them.
    PerEntity(&'static str),
    /// A fixed number of values, each write picking one by hash.
    Sharded(&'static str),
    /// A small set of values chosen by a state (each shared by many items).
    FewValues(&'static str),
    /// One constant value on every write of its items: a hot key.
    Constant(&'static str),
}

/// (table, index or `None` for the table itself, partition key attribute, spread).
const PARTITION_KEYS: &[(&str, Option<&str>, &str, Spread)] = &[
    (
        "EventsTable",
        None,
        "streamId",
        Spread::PerEntity(
            "the event's stream (alert-<id>, patient-<id>, ...) or $event#<eventId> for dedupe items",
        ),
    ),
    (
        "PatientStateTable",
        None,
        "patientId",
        Spread::PerEntity("patient"),
    ),
    (
        "PatientStateTable",
        Some("due-at"),
        "dueShard",
        Spread::Sharded("domain::detection::due_shard(patient_id)"),
    ),
    (
        "DirectoryTable",
        None,
        "patientId",
        Spread::PerEntity("patient, village or ack#<code>"),
    ),
    (
        "IdempotencyTable",
        None,
        "id",
        Spread::PerEntity("<function>#<payload hash>"),
    ),
    (
        "OutboxTable",
        None,
        "notificationId",
        Spread::PerEntity("notification"),
    ),
    (
        "WorkersTable",
        None,
        "workerId",
        Spread::PerEntity("worker"),
    ),
    (
        "StepLedgerTable",
        None,
        "stepKey",
        Spread::PerEntity("saga step"),
    ),
    (
        "DashboardTable",
        None,
        "viewId",
        Spread::PerEntity("alert#<id> / emergency#<id>"),
    ),
    (
        "DashboardTable",
        Some("board-since"),
        "board",
        Spread::Constant("\"open\" on every open view (domain::dashboard::View::board)"),
    ),
    (
        "DashboardTable",
        Some("kind-since"),
        "listKind",
        Spread::Constant("\"alert\" on every alert view, \"emergency\" on every emergency view"),
    ),
    (
        "DashboardTable",
        Some("kind-status-since"),
        "kindStatus",
        Spread::FewValues("<kind>#<status>: about ten values"),
    ),
    (
        "DashboardTable",
        Some("village-since"),
        "village",
        Spread::PerEntity("village"),
    ),
    (
        "DashboardTable",
        Some("patient-since"),
        "patientId",
        Spread::PerEntity("patient"),
    ),
    (
        "DashboardTable",
        Some("routed-since"),
        "routedTo",
        Spread::PerEntity("worker"),
    ),
    (
        "DashboardTable",
        Some("inbox-since"),
        "inbox",
        Spread::PerEntity("worker"),
    ),
    (
        "VitalsTable",
        None,
        "patientId",
        Spread::PerEntity("patient"),
    ),
    (
        "VillageStatsTable",
        None,
        "village",
        Spread::PerEntity("village"),
    ),
];

/// Constant partition keys known and left for another issue: the dashboard's read-model
/// indexes (issue 14's query API), written by the projector once per projected event. They
/// are hot within the dashboard table, not in the event store: a view write costs one
/// write of each index it is in. Never the event store's table.
const WAIVED: &[(&str, &str)] = &[
    ("DashboardTable", "board-since"),
    ("DashboardTable", "kind-since"),
];

/// Items with a constant key that are not written per append but once per rare fact,
/// (source file, constant, why): the check above is about items every write touches.
const RARE_CONSTANT_KEYS: &[(&str, &str, &str)] = &[(
    "shared/aws-adapters/src/shard_state.rs",
    "REGISTRY_KEY",
    "detect's shard registry: written once per Kinesis shard, the first time detect sees \
     the shard (a shard count's worth of writes over the stream's life), read by the query API",
)];

/// The event store's table: no waiver may ever name it.
const EVENT_STORE_TABLE: &str = "EventsTable";

fn workspace() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// (table, index, partition key attribute) of every table and GSI in the template.
fn template_partition_keys(template: &Template) -> Vec<(String, Option<String>, String)> {
    let hash_key = |schema: Option<&Value>| -> Option<String> {
        schema?
            .as_array()?
            .iter()
            .find(|k| k.get("KeyType").and_then(Value::as_str) == Some("HASH"))?
            .get("AttributeName")?
            .as_str()
            .map(str::to_string)
    };
    let mut out = Vec::new();
    for table in template
        .resources
        .iter()
        .filter(|r| r.resource_type == "AWS::DynamoDB::Table")
    {
        let id = table.logical_id.clone();
        out.push((
            id.clone(),
            None,
            hash_key(table.properties.get("KeySchema")).unwrap_or_default(),
        ));
        let indexes = table
            .properties
            .get("GlobalSecondaryIndexes")
            .and_then(Value::as_array);
        for index in indexes.into_iter().flatten() {
            let name = index
                .get("IndexName")
                .and_then(Value::as_str)
                .unwrap_or_default();
            out.push((
                id.clone(),
                Some(name.to_string()),
                hash_key(index.get("KeySchema")).unwrap_or_default(),
            ));
        }
    }
    out
}

fn describe(table: &str, index: Option<&str>) -> String {
    match index {
        Some(index) => format!("{table} index {index}"),
        None => table.to_string(),
    }
}

/// Template keys not declared (or declared with another attribute), and declarations of
/// keys the template does not have.
fn declaration_problems(
    template: &Template,
    declared: &[(&str, Option<&str>, &str, Spread)],
) -> Vec<String> {
    let mut problems = Vec::new();
    let in_template = template_partition_keys(template);
    for (table, index, attribute) in &in_template {
        let found = declared
            .iter()
            .find(|(t, i, _, _)| t == table && *i == index.as_deref());
        match found {
            None => problems.push(format!(
                "{} (partition key {attribute}) is not declared in PARTITION_KEYS: say how its values spread",
                describe(table, index.as_deref())
            )),
            Some((_, _, a, _)) if a != attribute => problems.push(format!(
                "{}: partition key is {attribute}, PARTITION_KEYS says {a}",
                describe(table, index.as_deref())
            )),
            Some(_) => {}
        }
    }
    for (table, index, _, _) in declared {
        if !in_template
            .iter()
            .any(|(t, i, _)| t == table && i.as_deref() == *index)
        {
            problems.push(format!(
                "PARTITION_KEYS declares {}, which the template does not have",
                describe(table, *index)
            ));
        }
    }
    problems
}

/// Declarations of a constant partition key that are not waived (the event store's table
/// never is).
fn constant_problems(
    declared: &[(&str, Option<&str>, &str, Spread)],
    waived: &[(&str, &str)],
) -> Vec<String> {
    let mut problems = Vec::new();
    for (table, index, attribute, spread) in declared {
        let Spread::Constant(why) = spread else {
            continue;
        };
        let is_waived =
            *table != EVENT_STORE_TABLE && index.is_some_and(|i| waived.contains(&(*table, i)));
        if !is_waived {
            problems.push(format!(
                "{}: partition key {attribute} has one constant value on every write ({why}): a hot key",
                describe(table, *index)
            ));
        }
    }
    problems
}

fn snake_case(attribute: &str) -> String {
    let mut out = String::new();
    for c in attribute.chars() {
        if c.is_ascii_uppercase() {
            out.push('_');
            out.push(c.to_ascii_lowercase());
        } else {
            out.push(c);
        }
    }
    out
}

/// Whether an expression is a constant: a string literal or a `SCREAMING_CASE` name
/// (optionally borrowed, or converted with `.to_string()` / `.into()` / `.to_owned()`).
fn is_constant(expression: &str) -> bool {
    let e = expression.trim().trim_start_matches('&');
    let e = [".to_string()", ".into()", ".to_owned()"]
        .iter()
        .fold(e, |e, suffix| e.strip_suffix(suffix).unwrap_or(e));
    if e.starts_with('"') && e.ends_with('"') && e.len() >= 2 {
        return true;
    }
    let name = e.rsplit("::").next().unwrap_or(e);
    !name.is_empty()
        && name.chars().next().is_some_and(|c| c.is_ascii_uppercase())
        && name
            .chars()
            .all(|c| c.is_ascii_uppercase() || c.is_ascii_digit() || c == '_')
}

/// The argument of the attribute-value constructor in `rest` (`s(X)`, `n(X)`,
/// `AttributeValue::S(X)`), up to its closing parenthesis.
fn constructor_argument(rest: &str) -> Option<&str> {
    let open = rest.find('(')?;
    let inner = &rest[open + 1..];
    let mut depth = 0usize;
    for (i, c) in inner.char_indices() {
        match c {
            '(' => depth += 1,
            ')' if depth == 0 => return Some(&inner[..i]),
            ')' => depth -= 1,
            _ => {}
        }
    }
    None
}

/// Lines of `sources` that write one of `attributes` (partition keys) with a constant.
fn code_problems(sources: &[(String, String)], attributes: &BTreeSet<String>) -> Vec<String> {
    let mut problems = Vec::new();
    for (path, text) in sources {
        let code_end = text.find("#[cfg(test)]").unwrap_or(text.len());
        let rows = path.contains("aws-adapters") || path.ends_with("former.rs");
        for (number, line) in text[..code_end].lines().enumerate() {
            let code = line.trim();
            if code.starts_with("//") {
                continue;
            }
            for attribute in attributes {
                let mut constant = false;
                for call in [".item(", ".key("] {
                    let needle = format!("{call}\"{attribute}\",");
                    if let Some(at) = code.find(&needle) {
                        let rest = &code[at + needle.len()..];
                        constant |= constructor_argument(rest).is_some_and(is_constant);
                    }
                }
                let field = format!("{}: ", snake_case(attribute));
                if let Some(value) = code.strip_prefix(&field).filter(|_| rows) {
                    constant |= is_constant(value.trim_end_matches(','));
                }
                if constant {
                    problems.push(format!(
                        "{path}:{}: partition key {attribute} written with a constant: {code}",
                        number + 1
                    ));
                }
            }
        }
    }
    problems
}

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for entry in entries.flatten() {
        let path = entry.path();
        if path.is_dir() {
            rust_files(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

/// The sources that write items: the adapters and the functions (not their tests).
fn writer_sources() -> Vec<(String, String)> {
    let root = workspace();
    let mut files = Vec::new();
    rust_files(&root.join("shared/aws-adapters/src"), &mut files);
    if let Ok(functions) = std::fs::read_dir(root.join("functions")) {
        for function in functions.flatten() {
            rust_files(&function.path().join("src"), &mut files);
        }
    }
    files.sort();
    files
        .into_iter()
        .map(|path| {
            let text = std::fs::read_to_string(&path).expect("source readable");
            let shown = path
                .strip_prefix(&root)
                .unwrap_or(&path)
                .display()
                .to_string();
            (shown, text)
        })
        .collect()
}

fn load() -> Template {
    Template::load(&workspace().join("infra/template.yaml")).expect("infra/template.yaml parses")
}

#[test]
fn every_partition_key_is_declared_with_its_spread() {
    assert_eq!(
        declaration_problems(&load(), PARTITION_KEYS),
        Vec::<String>::new()
    );
}

#[test]
fn no_partition_key_has_one_constant_value_on_every_write() {
    assert_eq!(
        constant_problems(PARTITION_KEYS, WAIVED),
        Vec::<String>::new()
    );
    assert!(
        WAIVED.iter().all(|(table, _)| *table != EVENT_STORE_TABLE),
        "the event store's table is never waived"
    );
}

#[test]
fn no_code_writes_a_partition_key_with_a_constant() {
    let attributes: BTreeSet<String> = template_partition_keys(&load())
        .into_iter()
        .map(|(_, _, attribute)| attribute)
        .collect();
    let problems: Vec<String> = code_problems(&writer_sources(), &attributes)
        .into_iter()
        .filter(|problem| {
            !RARE_CONSTANT_KEYS.iter().any(|(file, constant, _)| {
                problem.starts_with(&format!("{file}:")) && problem.contains(constant)
            })
        })
        .collect();
    assert_eq!(problems, Vec::<String>::new());
    assert!(
        RARE_CONSTANT_KEYS
            .iter()
            .all(|(file, _, _)| !file.contains("event_store")),
        "the event store's writes are never waived"
    );
}

// ------------------------------------------------------------------ the former design

/// The event store's table as it was before issue 15 (the `all-position` index on `allPk`).
const FORMER_EVENTS_TABLE: &str = r#"
Resources:
  EventsTable:
    Type: AWS::DynamoDB::Table
    Properties:
      BillingMode: PAY_PER_REQUEST
      AttributeDefinitions:
        - { AttributeName: streamId, AttributeType: S }
        - { AttributeName: version, AttributeType: N }
        - { AttributeName: allPk, AttributeType: S }
        - { AttributeName: position, AttributeType: N }
      KeySchema:
        - { AttributeName: streamId, KeyType: HASH }
        - { AttributeName: version, KeyType: RANGE }
      GlobalSecondaryIndexes:
        - IndexName: all-position
          KeySchema:
            - { AttributeName: allPk, KeyType: HASH }
            - { AttributeName: position, KeyType: RANGE }
          Projection: { ProjectionType: ALL }
"#;

/// The lines of the former adapter that wrote the counter item and the index key.
const FORMER_ADAPTER: &str = r#"
        let mut counter = Update::builder()
            .table_name(&self.table)
            .key("streamId", s(COUNTER_STREAM))
            .key("version", n(0))
            let item: Item = to_item(EventRow {
                stream_id: stream_id.to_string(),
                position: position + 1 + i as u64,
                all_pk: ALL_PK.to_string(),
"#;

#[test]
fn the_former_event_store_is_reported_by_each_check() {
    let former = Template::parse(FORMER_EVENTS_TABLE).expect("fixture parses");
    let events_only: Vec<_> = PARTITION_KEYS
        .iter()
        .copied()
        .filter(|(t, _, _, _)| *t == EVENT_STORE_TABLE)
        .collect();
    let problems = declaration_problems(&former, &events_only);
    assert!(
        problems
            .iter()
            .any(|p| p.contains("EventsTable index all-position (partition key allPk)")),
        "{problems:?}"
    );

    // Declared honestly, it is a constant; a waiver does not cover the event store.
    let declared = [(
        EVENT_STORE_TABLE,
        Some("all-position"),
        "allPk",
        Spread::Constant("\"all\" on every event"),
    )];
    let problems = constant_problems(&declared, &[(EVENT_STORE_TABLE, "all-position")]);
    assert_eq!(problems.len(), 1, "{problems:?}");

    let attributes: BTreeSet<String> = template_partition_keys(&former)
        .into_iter()
        .map(|(_, _, attribute)| attribute)
        .collect();
    let problems = code_problems(
        &[("former.rs".to_string(), FORMER_ADAPTER.to_string())],
        &attributes,
    );
    assert_eq!(problems.len(), 2, "{problems:?}");
    assert!(problems[0].contains("streamId written with a constant"));
    assert!(problems[1].contains("allPk written with a constant"));
}

#[test]
fn constants_are_told_from_computed_values() {
    for constant in [
        "\"all\"",
        "ALL_PK",
        "&ALL_PK",
        "ALL_PK.to_string()",
        "crate::X::COUNTER",
    ] {
        assert!(is_constant(constant), "{constant}");
    }
    for computed in [
        "stream_id",
        "&dedupe_stream(&event.event_id)",
        "patient_id.to_string()",
        "Some(x)",
        "view.board()",
    ] {
        assert!(!is_constant(computed), "{computed}");
    }
}
