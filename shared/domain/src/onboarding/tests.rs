use super::*;

fn patient() -> PatientInput {
    PatientInput {
        name: Some("Amina".into()),
        village: Some("Bondo".into()),
        worker_id: Some("w-01".into()),
        family: Some(FamilyInput {
            name: Some("Baraka".into()),
            phone: Some("+254711000001".into()),
            language: None,
        }),
        devices: vec!["wearable-7".into()],
    }
}

fn worker(id: &str, village: &str) -> WorkerRecord {
    WorkerInput {
        name: Some(format!("Worker {id}")),
        phone: Some("+254700000001".into()),
        village: Some(village.into()),
        ..WorkerInput::default()
    }
    .validate(id)
    .unwrap()
}

fn fields(errors: &[FieldError]) -> Vec<&str> {
    errors.iter().map(|e| e.field.as_str()).collect()
}

#[test]
fn ids_phones_and_languages() {
    for good in ["p-1", "w.01", "A_9", &"x".repeat(64)] {
        assert!(valid_id(good), "{good}");
    }
    for bad in ["", "-p", "p#1", "village#x", "p 1", "é", &"x".repeat(65)] {
        assert!(!valid_id(bad), "{bad}");
    }
    for good in ["+254700000001", "+14155550100", "+4930123456"] {
        assert!(valid_e164(good), "{good}");
    }
    for bad in [
        "254700000001",
        "+0254700000",
        "+2547",
        "+25470000000012345",
        "+2547000a0001",
    ] {
        assert!(!valid_e164(bad), "{bad}");
    }
    for good in ["en", "sw", "luo", "en-KE"] {
        assert!(valid_language(good), "{good}");
    }
    for bad in ["", "EN", "english", "en-", "en-KE-x"] {
        assert!(!valid_language(bad), "{bad}");
    }
}

#[test]
fn a_good_patient_becomes_its_entry_family_and_wearables() {
    let p = patient().validate("p-1").unwrap();
    let entry = p.entry();
    assert_eq!(entry.worker_id, "w-01");
    assert!(entry.worker_phone.is_empty() && entry.worker_name.is_empty());
    assert_eq!(entry.device_ids, ["wearable-7"]);
    assert_eq!(p.family_contact().unwrap().phone, "+254711000001");
    // No language given: the family reads English.
    assert_eq!(p.family_contact().unwrap().language, "en");
    let mut hindi = patient();
    if let Some(f) = hindi.family.as_mut() {
        f.language = Some("hi".into());
    }
    let hindi = hindi.validate("p-1").unwrap();
    assert_eq!(hindi.family_contact().unwrap().language, "hi");
    assert_eq!(
        p.bindings(),
        [(
            "wearable-7".to_string(),
            DeviceBinding::Wearable {
                bound_patient_id: "p-1".into()
            }
        )]
    );
    assert_eq!(Patient::from_items(&entry, p.family_contact().as_ref()), p);
}

#[test]
fn every_bad_patient_field_is_named() {
    let bad = PatientInput {
        name: None,
        village: Some("  ".into()),
        worker_id: Some("w#1".into()),
        family: Some(FamilyInput {
            name: Some("Baraka".into()),
            phone: Some("0711000001".into()),
            language: Some("Hindi".into()),
        }),
        devices: vec!["ok".into(), "bad id".into(), "ok".into()],
    };
    let errors = bad.validate("p/1").unwrap_err();
    assert_eq!(
        fields(&errors),
        [
            "id",
            "name",
            "village",
            "workerId",
            "family.phone",
            "family.language",
            "devices[1]",
            "devices[2]"
        ]
    );
}

#[test]
fn every_bad_worker_field_is_named_and_defaults_apply() {
    let errors = WorkerInput {
        name: Some("Joseph".into()),
        phone: Some("+25470".into()),
        village: None,
        language: Some("Swahili".into()),
        on_duty: None,
        role: Some("boss".into()),
        roster_position: Some(0),
        supervises: vec![],
    }
    .validate("w-1")
    .unwrap_err();
    assert_eq!(
        fields(&errors),
        ["phone", "village", "language", "role", "rosterPosition"]
    );
    let w = worker("w-1", "Bondo");
    assert_eq!((w.language.as_str(), w.on_duty), ("en", true));
    assert!(w.worker().available);
    let errors = WorkerInput {
        supervises: vec!["Bondo".into()],
        ..WorkerInput::default()
    }
    .validate("w-1")
    .unwrap_err();
    assert!(fields(&errors).contains(&"supervises"));
}

#[test]
fn rosters_keep_places_insert_at_positions_and_follow_moves() {
    let bondo = VillageRoster {
        village: "Bondo".into(),
        worker_ids: vec!["w-1".into(), "w-2".into()],
        supervisor_id: "s-1".into(),
    };
    let current = BTreeMap::from([
        ("Bondo".to_string(), Some(bondo.clone())),
        ("Kisumu".to_string(), None),
    ]);
    // Already on the roster, no position: nothing changes.
    assert!(plan_rosters(&current, &[worker("w-2", "Bondo")]).is_empty());
    // New, at position 1.
    let mut first = worker("w-3", "Bondo");
    first.roster_position = Some(1);
    let changed = plan_rosters(&current, &[first]);
    assert_eq!(changed.len(), 1);
    assert_eq!(changed[0].0.worker_ids, ["w-3", "w-1", "w-2"]);
    assert_eq!(changed[0].1, Some(bondo.clone()));
    // Moved to Kisumu: off Bondo's roster, on a new Kisumu roster with no supervisor yet.
    let changed = plan_rosters(&current, &[worker("w-1", "Kisumu")]);
    assert_eq!(changed.len(), 2);
    assert_eq!(changed[0].0.worker_ids, ["w-2"]);
    assert_eq!(changed[1].0.worker_ids, ["w-1"]);
    assert_eq!(changed[1].0.supervisor_id, "");
    assert_eq!(changed[1].1, None);
    // A supervisor supervises, and is on no roster.
    let s = WorkerInput {
        name: Some("Sup".into()),
        phone: Some("+254700000009".into()),
        village: Some("Kisumu".into()),
        role: Some("supervisor".into()),
        supervises: vec!["Kisumu".into()],
        ..WorkerInput::default()
    }
    .validate("s-9")
    .unwrap();
    let changed = plan_rosters(&current, &[worker("w-1", "Kisumu"), s]);
    let kisumu = &changed[1].0;
    assert_eq!(
        (kisumu.worker_ids.as_slice(), kisumu.supervisor_id.as_str()),
        (&["w-1".to_string()][..], "s-9")
    );
}

#[test]
fn a_csv_with_quotes_lists_and_both_kinds_parses() {
    let text = "kind,id,name,village,phone,workerId,familyName,familyPhone,devices,onDuty,rosterPosition\r\n\
        worker,w-1,\"Joseph, Jr.\",Bondo,+254700000001,,,,,yes,1\n\
        \n\
        patient,p-1,\"Amina \"\"Mama\"\" O.\",Bondo,,w-1,Baraka,+254711000001,wearable-1;wearable-2,,\n";
    let (rows, errors) = csv::parse(text).unwrap();
    assert!(errors.is_empty(), "{errors:?}");
    assert_eq!(rows.len(), 2);
    assert_eq!(rows[0].line, 2);
    assert_eq!(rows[1].line, 4);
    let csv::Row::Worker { input, .. } = &rows[0].row else {
        panic!("worker expected")
    };
    assert_eq!(input.name.as_deref(), Some("Joseph, Jr."));
    assert_eq!(
        (input.on_duty, input.roster_position),
        (Some(true), Some(1))
    );
    let csv::Row::Patient { id, input } = &rows[1].row else {
        panic!("patient expected")
    };
    assert_eq!(id, "p-1");
    assert_eq!(input.name.as_deref(), Some("Amina \"Mama\" O."));
    assert_eq!(input.devices, ["wearable-1", "wearable-2"]);
    assert_eq!(
        input.family.as_ref().unwrap().phone.as_deref(),
        Some("+254711000001")
    );
}

#[test]
fn bad_rows_are_reported_with_line_and_column_and_bad_files_refused() {
    let text = "kind,id,name,phone,onDuty,workerId\n\
        nurse,x-1,,,,\n\
        worker,w-1,Jo,+254700000001,maybe,w-2\n\
        patient,p-1,Amina,,,w-1,extra\n";
    let (rows, errors) = csv::parse(text).unwrap();
    assert!(rows.is_empty());
    let got: Vec<(usize, &str)> = errors.iter().map(|e| (e.line, e.field.as_str())).collect();
    assert_eq!(got, [(2, "kind"), (3, "workerId"), (3, "onDuty"), (4, "*")]);
    assert!(csv::parse("").is_err());
    assert!(csv::parse("kind,id,colour\n").is_err());
    assert!(csv::parse("name,village\n").is_err());
    assert!(csv::parse("kind,id\nworker,\"w-1\n").is_err());
    assert_eq!(csv::column_of("family.phone"), "familyPhone");
    assert_eq!(csv::column_of("family.language"), "familyLanguage");
    assert_eq!(csv::column_of("devices[3]"), "devices");
}
