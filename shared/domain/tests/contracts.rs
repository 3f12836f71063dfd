//! The JSON Schemas in `events/contracts/` are generated from the Rust types: this test
//! fails when a type changes without its published contract. Regenerate with
//! `UPDATE_CONTRACTS=1 cargo test -p domain --test contracts`.

use std::path::PathBuf;

use domain::Envelope;
use domain::envelope::EventData;
use domain::events::{
    AlertRaised, AlertResolved, AlertRouted, NotificationRequested, NotificationSent, ReadingLate,
};
use domain::reading::Reading;
use schemars::{JsonSchema, schema_for};

fn contracts_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../events/contracts")
}

fn check<T: EventData + JsonSchema>() -> Option<String> {
    let schema = schema_for!(Envelope<T>);
    let mut text = serde_json::to_string_pretty(&schema).expect("schema serialises");
    text.push('\n');
    let path = contracts_dir().join(format!("{}.v{}.schema.json", T::EVENT_TYPE, T::VERSION));
    if std::env::var_os("UPDATE_CONTRACTS").is_some() {
        std::fs::create_dir_all(contracts_dir()).expect("creating events/contracts");
        std::fs::write(&path, &text).expect("writing the contract");
        return None;
    }
    match std::fs::read_to_string(&path) {
        Ok(existing) if existing == text => None,
        Ok(_) => Some(format!("{} differs from the Rust type", path.display())),
        Err(e) => Some(format!("{}: {e}", path.display())),
    }
}

#[test]
fn published_contracts_match_the_event_types() {
    let problems: Vec<String> = [
        check::<Reading>(),
        check::<AlertRaised>(),
        check::<AlertRouted>(),
        check::<AlertResolved>(),
        check::<ReadingLate>(),
        check::<NotificationRequested>(),
        check::<NotificationSent>(),
    ]
    .into_iter()
    .flatten()
    .collect();
    assert!(
        problems.is_empty(),
        "{problems:#?}\nregenerate with UPDATE_CONTRACTS=1 cargo test -p domain --test contracts"
    );
}
