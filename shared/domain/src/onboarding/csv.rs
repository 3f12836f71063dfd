//! The CSV of `POST /import`: patients and workers in one file, one row each, told apart
//! by the `kind` column (docs/onboarding.md has the format).
//!
//! The first line is the header: column names (any order; unknown names are refused,
//! `kind` and `id` are required). Fields follow RFC 4180: comma-separated, optionally
//! double-quoted (a quote inside a quoted field is doubled; quoted fields may hold commas
//! and line breaks). Lists (`devices`, `supervises`) are `;`-separated inside one field.
//! An empty field is an absent value. Blank lines are skipped.

use std::collections::BTreeMap;

use super::{FamilyInput, FieldError, PatientInput, WorkerInput};

/// Every column the format knows.
pub const COLUMNS: [&str; 15] = [
    "kind",
    "id",
    "name",
    "village",
    "phone",
    "language",
    "onDuty",
    "role",
    "supervises",
    "rosterPosition",
    "workerId",
    "familyName",
    "familyPhone",
    "devices",
    // i18n (issue 16): the language the family reads its SMS in (default en).
    "familyLanguage",
];

/// Columns a patient row may fill (the rest must be empty).
const PATIENT_COLUMNS: [&str; 9] = [
    "kind",
    "id",
    "name",
    "village",
    "workerId",
    "familyName",
    "familyPhone",
    "devices",
    "familyLanguage",
];
/// Columns a worker row may fill.
const WORKER_COLUMNS: [&str; 10] = [
    "kind",
    "id",
    "name",
    "village",
    "phone",
    "language",
    "onDuty",
    "role",
    "supervises",
    "rosterPosition",
];

/// One bad line of an import: its line number (1 = the header), the column and why.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct LineError {
    pub line: usize,
    pub field: String,
    pub reason: String,
}

/// A data row, parsed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Row {
    Patient { id: String, input: PatientInput },
    Worker { id: String, input: WorkerInput },
}

/// A row with the line it starts on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Line {
    pub line: usize,
    pub row: Row,
}

/// The file as a whole cannot be read (no header, an unknown column, an unclosed quote).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct FileError(pub String);

/// Splits `text` into records of fields, each with the line it starts on.
pub fn records(text: &str) -> Result<Vec<(usize, Vec<String>)>, FileError> {
    let mut out = Vec::new();
    let mut fields = Vec::new();
    let mut field = String::new();
    let mut quoted = false;
    let mut line = 1;
    let mut start = 1;
    let mut chars = text.chars().peekable();
    let mut any = false;
    while let Some(c) = chars.next() {
        if quoted {
            match c {
                '"' if chars.peek() == Some(&'"') => {
                    chars.next();
                    field.push('"');
                }
                '"' => quoted = false,
                '\n' => {
                    line += 1;
                    field.push(c);
                }
                _ => field.push(c),
            }
            continue;
        }
        match c {
            '"' if field.is_empty() => {
                quoted = true;
                any = true;
            }
            ',' => {
                fields.push(std::mem::take(&mut field));
                any = true;
            }
            '\r' if chars.peek() == Some(&'\n') => {}
            '\n' => {
                if any || !field.trim().is_empty() {
                    fields.push(std::mem::take(&mut field));
                    out.push((start, std::mem::take(&mut fields)));
                }
                field.clear();
                any = false;
                line += 1;
                start = line;
            }
            _ => {
                field.push(c);
                any = true;
            }
        }
    }
    if quoted {
        return Err(FileError(format!(
            "line {start}: a quoted field is not closed"
        )));
    }
    if any || !field.trim().is_empty() {
        fields.push(field);
        out.push((start, fields));
    }
    Ok(out)
}

/// The rows of an import file, each validated as far as a row alone allows (its kind, its
/// columns, a number or flag that does not parse); field validation is the inputs'.
/// `Err` when the file itself cannot be read; otherwise the good rows and the bad lines.
pub fn parse(text: &str) -> Result<(Vec<Line>, Vec<LineError>), FileError> {
    let mut records = records(text)?.into_iter();
    let Some((_, header)) = records.next() else {
        return Err(FileError(
            "the file is empty: a header line is required".into(),
        ));
    };
    let header: Vec<String> = header.iter().map(|h| h.trim().to_string()).collect();
    for name in &header {
        if !COLUMNS.contains(&name.as_str()) {
            return Err(FileError(format!(
                "unknown column {name:?} in the header (known: {})",
                COLUMNS.join(",")
            )));
        }
        if header.iter().filter(|h| *h == name).count() > 1 {
            return Err(FileError(format!("column {name:?} appears twice")));
        }
    }
    for required in ["kind", "id"] {
        if !header.iter().any(|h| h == required) {
            return Err(FileError(format!("the header has no {required:?} column")));
        }
    }
    let mut rows = Vec::new();
    let mut errors = Vec::new();
    for (line, fields) in records {
        if fields.len() != header.len() {
            errors.push(LineError {
                line,
                field: "*".into(),
                reason: format!("{} fields, the header has {}", fields.len(), header.len()),
            });
            continue;
        }
        let cells: BTreeMap<&str, String> = header
            .iter()
            .map(String::as_str)
            .zip(fields.into_iter().map(|f| f.trim().to_string()))
            .filter(|(_, v)| !v.is_empty())
            .collect();
        match row(&cells) {
            Ok(row) => rows.push(Line { line, row }),
            Err(bad) => errors.extend(bad.into_iter().map(|e| LineError {
                line,
                field: e.field,
                reason: e.reason,
            })),
        }
    }
    Ok((rows, errors))
}

/// The CSV column of an input field name (`family.phone` -> `familyPhone`, `devices[2]` ->
/// `devices`).
pub fn column_of(field: &str) -> String {
    match field.split('[').next().unwrap_or(field) {
        "family.name" => "familyName",
        "family.phone" => "familyPhone",
        "family.language" => "familyLanguage",
        other => other,
    }
    .to_string()
}

fn list(cell: Option<&String>) -> Vec<String> {
    cell.map(|c| {
        c.split(';')
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .map(str::to_string)
            .collect()
    })
    .unwrap_or_default()
}

fn row(cells: &BTreeMap<&str, String>) -> Result<Row, Vec<FieldError>> {
    let mut errors = Vec::new();
    let get = |name: &str| cells.get(name).cloned();
    let id = get("id").unwrap_or_default();
    if id.is_empty() {
        errors.push(FieldError::new("id", "required"));
    }
    let kind = get("kind").unwrap_or_default();
    let allowed: &[&str] = match kind.as_str() {
        "patient" => &PATIENT_COLUMNS[..],
        "worker" => &WORKER_COLUMNS[..],
        other => {
            errors.push(FieldError::new(
                "kind",
                format!("{other:?} is not patient or worker"),
            ));
            return Err(errors);
        }
    };
    for name in cells.keys() {
        if !allowed.contains(name) {
            errors.push(FieldError::new(
                *name,
                format!("not a column of a {kind} row (leave it empty)"),
            ));
        }
    }
    // Any family column makes a family contact (familyLanguage: i18n, issue 16).
    let has_family = ["familyName", "familyPhone", "familyLanguage"]
        .iter()
        .any(|c| cells.contains_key(c));
    let row = if kind == "patient" {
        let family = has_family.then(|| FamilyInput {
            name: get("familyName"),
            phone: get("familyPhone"),
            language: get("familyLanguage"),
        });
        Row::Patient {
            id,
            input: PatientInput {
                name: get("name"),
                village: get("village"),
                worker_id: get("workerId"),
                family,
                devices: list(cells.get("devices")),
            },
        }
    } else {
        let on_duty = match get("onDuty")
            .as_deref()
            .map(str::to_ascii_lowercase)
            .as_deref()
        {
            None => None,
            Some("true" | "yes" | "1") => Some(true),
            Some("false" | "no" | "0") => Some(false),
            Some(other) => {
                errors.push(FieldError::new(
                    "onDuty",
                    format!("{other:?} is not true or false"),
                ));
                None
            }
        };
        let roster_position = match get("rosterPosition") {
            None => None,
            Some(p) => match p.parse::<u32>() {
                Ok(p) => Some(p),
                Err(_) => {
                    errors.push(FieldError::new(
                        "rosterPosition",
                        format!("{p:?} is not a positive whole number"),
                    ));
                    None
                }
            },
        };
        Row::Worker {
            id,
            input: WorkerInput {
                name: get("name"),
                phone: get("phone"),
                village: get("village"),
                language: get("language"),
                on_duty,
                role: get("role"),
                roster_position,
                supervises: list(cells.get("supervises")),
            },
        }
    };
    if errors.is_empty() {
        Ok(row)
    } else {
        Err(errors)
    }
}
