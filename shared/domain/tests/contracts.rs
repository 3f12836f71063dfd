//! The JSON Schemas in `events/contracts/` are generated from the Rust types: this test
//! fails when a type changes without its published contract, when a type that implements
//! `EventData` has no contract, and when the folder holds a contract no type publishes.
//! Regenerate with `UPDATE_CONTRACTS=1 cargo test -p domain --test contracts`.
//!
//! One file per event type and schema version, `{eventType}.v{version}.schema.json`: the
//! schema of the whole envelope with its `data`. That covers every `EventData` type (the
//! events, the saga queue's `SagaInput` message and the steps queue's `StepCommand`) and
//! every stored saga event, one file per variant of `SagaEvent`.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use domain::Envelope;
use domain::envelope::EventData;
use domain::escalation::{AlertAcknowledged, AlertEscalated, AlertEscalationDue};
use domain::events::{
    AlertRaised, AlertResolved, AlertRouted, NotificationRequested, NotificationSent, ReadingLate,
};
use domain::reading::Reading;
use domain::saga::{
    CloseReason, EmergencyStarted, FamilyStage, SagaEvent, SagaMessage, Step, StepCommand,
};
use schemars::{JsonSchema, schema_for};
use serde_json::Value;

fn workspace_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..")
}

fn contracts_dir() -> PathBuf {
    workspace_root().join("events/contracts")
}

/// A contract as generated from the code: where it goes and what it says.
struct Contract {
    /// The Rust type it is generated from (for the messages of this test).
    rust_type: String,
    event_type: String,
    version: u32,
    schema: Value,
}

impl Contract {
    fn file_name(&self) -> String {
        format!("{}.v{}.schema.json", self.event_type, self.version)
    }
}

/// The contract of an `EventData` type: its envelope.
fn contract<T: EventData + JsonSchema>() -> Contract {
    let rust_type = std::any::type_name::<T>();
    Contract {
        rust_type: rust_type
            .rsplit("::")
            .next()
            .unwrap_or(rust_type)
            .to_string(),
        event_type: T::EVENT_TYPE.to_string(),
        version: T::VERSION,
        schema: serde_json::to_value(schema_for!(Envelope<T>)).expect("schema serialises"),
    }
}

/// Every `EventData` type. `every_event_data_type_is_published` fails when one is missing.
fn event_data_contracts() -> Vec<Contract> {
    vec![
        contract::<Reading>(),
        contract::<AlertRaised>(),
        contract::<AlertRouted>(),
        contract::<AlertResolved>(),
        contract::<ReadingLate>(),
        contract::<NotificationRequested>(),
        contract::<NotificationSent>(),
        contract::<AlertAcknowledged>(),
        contract::<AlertEscalated>(),
        contract::<AlertEscalationDue>(),
        contract::<SagaMessage>(),
        contract::<StepCommand>(),
    ]
}

/// One contract per stored saga event: the envelope of `SagaEvent` with `data` narrowed to
/// the variant whose `type` tag is the stored `eventType`, and only the definitions it uses.
fn saga_event_contracts() -> Vec<Contract> {
    let envelope = serde_json::to_value(schema_for!(Envelope<SagaEvent>)).expect("serialises");
    let variants = envelope["$defs"]["SagaEvent"]["oneOf"]
        .as_array()
        .expect("SagaEvent is a oneOf of its variants")
        .clone();
    variants
        .into_iter()
        .map(|variant| {
            let event_type = variant["properties"]["type"]["const"]
                .as_str()
                .expect("each variant has a const `type` tag")
                .to_string();
            let mut schema = envelope.clone();
            schema["properties"]["data"] = variant;
            prune_definitions(&mut schema);
            Contract {
                rust_type: format!("SagaEvent::{event_type}"),
                event_type,
                version: SagaEvent::VERSION,
                schema,
            }
        })
        .collect()
}

/// Removes the `$defs` that nothing outside `$defs` refers to, directly or through another.
fn prune_definitions(schema: &mut Value) {
    let Some(Value::Object(defs)) = schema.as_object_mut().and_then(|s| s.remove("$defs")) else {
        return;
    };
    let mut used = BTreeSet::new();
    let mut pending = references(schema);
    while let Some(name) = pending.pop() {
        if used.insert(name.clone())
            && let Some(def) = defs.get(&name)
        {
            pending.extend(references(def));
        }
    }
    let kept: serde_json::Map<String, Value> = defs
        .into_iter()
        .filter(|(name, _)| used.contains(name))
        .collect();
    if !kept.is_empty() {
        schema["$defs"] = Value::Object(kept);
    }
}

/// The names of the `#/$defs/…` a schema refers to.
fn references(schema: &Value) -> Vec<String> {
    match schema {
        Value::Object(map) => map
            .iter()
            .flat_map(|(key, value)| match (key.as_str(), value) {
                ("$ref", Value::String(r)) => r
                    .strip_prefix("#/$defs/")
                    .map(|name| vec![name.to_string()])
                    .unwrap_or_default(),
                _ => references(value),
            })
            .collect(),
        Value::Array(items) => items.iter().flat_map(references).collect(),
        _ => Vec::new(),
    }
}

fn all_contracts() -> Vec<Contract> {
    let mut all = event_data_contracts();
    all.extend(saga_event_contracts());
    all
}

/// The published text: schemars orders the keywords (`$schema`, `title`, `type`, ...).
fn pretty(schema: &Value) -> String {
    let schema = schemars::Schema::try_from(schema.clone()).expect("a schema object");
    let mut text = serde_json::to_string_pretty(&schema).expect("schema serialises");
    text.push('\n');
    text
}

const REGENERATE: &str = "regenerate with UPDATE_CONTRACTS=1 cargo test -p domain --test contracts";

#[test]
fn published_contracts_match_the_event_types() {
    let contracts = all_contracts();
    let mut problems = Vec::new();
    let mut names = BTreeMap::new();
    for c in &contracts {
        if let Some(other) = names.insert(c.file_name(), &c.rust_type) {
            problems.push(format!(
                "{} and {other} both publish {}",
                c.rust_type,
                c.file_name()
            ));
        }
    }
    let update = std::env::var_os("UPDATE_CONTRACTS").is_some();
    if update {
        std::fs::create_dir_all(contracts_dir()).expect("creating events/contracts");
    }
    for c in &contracts {
        let path = contracts_dir().join(c.file_name());
        let text = pretty(&c.schema);
        if update {
            std::fs::write(&path, &text).expect("writing the contract");
            continue;
        }
        match std::fs::read_to_string(&path) {
            Ok(existing) if existing == text => {}
            Ok(_) => problems.push(format!("{} differs from {}", path.display(), c.rust_type)),
            Err(e) => problems.push(format!("{} ({}): {e}", path.display(), c.rust_type)),
        }
    }
    assert!(problems.is_empty(), "{problems:#?}\n{REGENERATE}");
}

/// An older version of a published event type stays published (the store holds events of
/// it, upcast on read); any other file in the folder is a contract that no type publishes.
#[test]
fn the_contracts_folder_holds_only_published_contracts() {
    let contracts = all_contracts();
    let current: BTreeMap<&str, u32> = contracts
        .iter()
        .map(|c| (c.event_type.as_str(), c.version))
        .collect();
    let expected: BTreeSet<String> = contracts.iter().map(Contract::file_name).collect();
    let mut unknown = Vec::new();
    for entry in std::fs::read_dir(contracts_dir()).expect("events/contracts exists") {
        let name = entry
            .expect("a directory entry")
            .file_name()
            .to_string_lossy()
            .into_owned();
        if expected.contains(&name) {
            continue;
        }
        let older = name
            .strip_suffix(".schema.json")
            .and_then(|stem| stem.rsplit_once(".v"))
            .and_then(|(event_type, v)| Some((current.get(event_type)?, v.parse::<u32>().ok()?)))
            .is_some_and(|(current, v)| v >= 1 && v < *current);
        if !older {
            unknown.push(name);
        }
    }
    assert!(
        unknown.is_empty(),
        "no type publishes {unknown:?}: delete them, or publish the type in tests/contracts.rs"
    );
}

/// Type names with `#[derive(…EventData…)]` or `impl EventData for` in the non-test source
/// of the workspace's library and function crates (`shared/*/src`, `functions/*/src`).
fn event_data_implementors() -> BTreeSet<String> {
    let mut found = BTreeSet::new();
    for group in ["shared", "functions"] {
        let Ok(crates) = std::fs::read_dir(workspace_root().join(group)) else {
            continue;
        };
        for krate in crates.flatten() {
            for file in rust_files(&krate.path().join("src")) {
                let text = std::fs::read_to_string(&file).expect("reading a source file");
                found.extend(implementors_in(&text));
            }
        }
    }
    found
}

/// The `.rs` files under `dir`, without `tests.rs` files and `tests/` folders.
fn rust_files(dir: &Path) -> Vec<PathBuf> {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return Vec::new();
    };
    let mut files = Vec::new();
    for path in entries.flatten().map(|e| e.path()) {
        let name = path
            .file_name()
            .and_then(|n| n.to_str())
            .unwrap_or_default();
        if path.is_dir() && name != "tests" {
            files.extend(rust_files(&path));
        } else if name.ends_with(".rs") && name != "tests.rs" {
            files.push(path);
        }
    }
    files
}

/// The `EventData` implementors of one file, up to its inline `#[cfg(test)]` module.
fn implementors_in(text: &str) -> Vec<String> {
    let code: String = text
        .split("#[cfg(test)]\nmod ")
        .next()
        .unwrap_or(text)
        .lines()
        .filter(|line| !line.trim_start().starts_with("//"))
        .flat_map(|line| [line, "\n"])
        .collect();
    let mut names = Vec::new();
    let mut rest = code.as_str();
    while let Some(at) = rest.find("#[derive(") {
        let (derive, after) = rest[at..].split_once(")]").unwrap_or((&rest[at..], ""));
        let derives_it = derive
            .split(|c: char| c == ',' || c == '(' || c.is_whitespace())
            .any(|path| path.rsplit("::").next() == Some("EventData"));
        let mut words = after.split_whitespace();
        if derives_it && words.any(|word| word == "struct" || word == "enum") {
            names.extend(words.next().map(identifier));
        }
        rest = after;
    }
    for line in code
        .lines()
        .map(str::trim)
        .filter(|l| l.starts_with("impl"))
    {
        if let Some(rest) = line.split("EventData for ").nth(1) {
            names.push(identifier(rest));
        }
    }
    names
}

fn identifier(text: &str) -> String {
    text.chars()
        .take_while(|c| c.is_alphanumeric() || *c == '_')
        .collect()
}

#[test]
fn every_event_data_type_is_published() {
    let published: BTreeSet<String> = event_data_contracts()
        .into_iter()
        .map(|c| c.rust_type)
        .collect();
    let implementors = event_data_implementors();
    let unpublished: Vec<&String> = implementors.difference(&published).collect();
    assert!(
        unpublished.is_empty(),
        "{unpublished:?} implement EventData but have no contract: add them to \
         event_data_contracts() in shared/domain/tests/contracts.rs"
    );
    // The scan itself still sees the types (it would pass vacuously otherwise).
    let missed: Vec<&String> = published.difference(&implementors).collect();
    assert!(missed.is_empty(), "the source scan did not find {missed:?}");
}

#[test]
fn the_scan_finds_derived_and_hand_written_implementations() {
    let source = "/// Not `#[derive(EventData)]`: a comment.\n#[derive(\n    Debug, Clone,\n    \
                  domain::envelope::EventData,\n)]\n#[serde(rename_all = \"camelCase\")]\n\
                  pub struct Derived {}\n#[derive(Debug)]\nenum Other {}\n\
                  #[derive(EventData)]\npub(crate) enum Derived2 {}\n\
                  impl EventData for HandWritten {}\n#[cfg(test)]\nmod tests {\n\
                  #[derive(EventData)]\nstruct OnlyInTests;\n}\n";
    assert_eq!(
        implementors_in(source),
        ["Derived", "Derived2", "HandWritten"]
    );
}

/// One stored saga event of every kind.
fn every_saga_event() -> Vec<SagaEvent> {
    vec![
        SagaEvent::EmergencyStarted(EmergencyStarted {
            emergency_id: "em-1".into(),
            patient_id: "p-1".into(),
            village: "v".into(),
            reason: "r".into(),
            reporter: "alert:a-1".into(),
            ambulance_required: true,
            request_hash: Some("h-1".into()),
        }),
        SagaEvent::WorkerAssigned {
            worker_id: "w-1".into(),
        },
        SagaEvent::WorkerUnavailable { reason: "r".into() },
        SagaEvent::AmbulanceDispatched {
            request_id: "q-1".into(),
        },
        SagaEvent::AmbulanceDispatchFailed {
            request_id: "q-1".into(),
            reason: "r".into(),
        },
        SagaEvent::WorkerNotified {
            notification_id: "n-w".into(),
        },
        SagaEvent::FamilyNotified {
            notification_id: None,
            stage: FamilyStage::Hospital,
        },
        SagaEvent::StepTimedOut {
            step: Step::DispatchAmbulance,
        },
        SagaEvent::AmbulanceCancelled {
            request_id: "q-1".into(),
        },
        SagaEvent::WorkerReleased {
            worker_id: "w-1".into(),
        },
        SagaEvent::EscalatedToHospital {
            notification_id: "n-1".into(),
        },
        SagaEvent::EmergencyAcknowledged {
            worker_id: "w-1".into(),
        },
        SagaEvent::AmbulanceRequested {
            requested_by: "w-1".into(),
        },
        SagaEvent::EmergencyClosed {
            closed_by: "w-1".into(),
            reason: CloseReason::TimedOut,
        },
    ]
}

/// The stored `eventType` of each saga event names its contract, and the JSON the event is
/// stored as has the fields that contract lists (the schema was split from the enum's).
#[test]
fn each_stored_saga_event_has_the_contract_of_its_event_type() {
    let contracts: BTreeMap<String, Value> = saga_event_contracts()
        .into_iter()
        .map(|c| (c.event_type, c.schema))
        .collect();
    let events = every_saga_event();
    let stored: BTreeSet<&str> = events.iter().map(SagaEvent::event_type).collect();
    assert_eq!(stored, contracts.keys().map(String::as_str).collect());
    for event in &events {
        let json = serde_json::to_value(event).expect("serialises");
        let data = &contracts[event.event_type()]["properties"]["data"];
        assert_eq!(json["type"], data["properties"]["type"]["const"], "{json}");
        let fields: BTreeSet<&str> = json
            .as_object()
            .expect("an object")
            .keys()
            .map(String::as_str)
            .collect();
        let mut allowed: BTreeSet<&str> = names_of(&data["properties"]);
        if let Some(def) = data["$ref"]
            .as_str()
            .and_then(|r| r.strip_prefix("#/$defs/"))
        {
            allowed.extend(names_of(
                &contracts[event.event_type()]["$defs"][def]["properties"],
            ));
        }
        assert!(
            fields.is_subset(&allowed),
            "{json} has fields outside {allowed:?}"
        );
        for required in data["required"].as_array().expect("required fields") {
            assert!(
                fields.contains(required.as_str().expect("a name")),
                "{json}: {required}"
            );
        }
    }
}

fn names_of(properties: &Value) -> BTreeSet<&str> {
    properties
        .as_object()
        .map(|p| p.keys().map(String::as_str).collect())
        .unwrap_or_default()
}

/// A type outside the domain crate derives `EventData` through `domain::envelope`.
#[allow(dead_code, reason = "only its constants are used")]
#[derive(EventData)]
#[event_data(event_type = "SomethingHappened", version = 4)]
struct Renamed;

#[allow(dead_code, reason = "only its constants are used")]
#[derive(EventData)]
struct Defaulted<T>(T);

#[test]
fn the_derive_names_the_event_type_and_version() {
    assert_eq!(Renamed::EVENT_TYPE, "SomethingHappened");
    assert_eq!(Renamed::VERSION, 4);
    assert_eq!(<Defaulted<u8>>::EVENT_TYPE, "Defaulted");
    assert_eq!(<Defaulted<u8>>::VERSION, 1);
    assert_eq!(Reading::EVENT_TYPE, "ReadingRecorded");
    assert_eq!(SagaMessage::EVENT_TYPE, "SagaInput");
}
