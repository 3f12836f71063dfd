//! Deterministic identifiers: the same facts always give the same id, so a redelivered
//! message produces the same event id and conditional writes can drop the duplicate.

use uuid::Uuid;

/// Namespace of every name-based id of this system (UUID v5).
const NAMESPACE: Uuid = Uuid::from_u128(0x6b1e_5c2a_93d4_4f0e_8a61_2f7d_c0de_a1e7);

/// A UUID v5 over the `parts`, joined with a separator that cannot occur in them unescaped.
pub fn deterministic_id(parts: &[&str]) -> String {
    deterministic_uuid(parts).to_string()
}

/// The UUID behind [`deterministic_id`]: its bytes are a hash of the parts (SHA-1, except
/// for the version and variant bits in bytes 6 and 8).
pub(crate) fn deterministic_uuid(parts: &[&str]) -> Uuid {
    let mut name = String::new();
    for (i, part) in parts.iter().enumerate() {
        if i > 0 {
            name.push('\u{1f}');
        }
        name.push_str(part);
    }
    Uuid::new_v5(&NAMESPACE, name.as_bytes())
}

/// A fresh random id (correlation ids of requests that did not bring one).
pub fn random_id() -> String {
    Uuid::new_v4().to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn same_parts_same_id_and_parts_do_not_run_together() {
        assert_eq!(deterministic_id(&["a", "b"]), deterministic_id(&["a", "b"]));
        assert_ne!(deterministic_id(&["a", "b"]), deterministic_id(&["ab"]));
        assert_ne!(
            deterministic_id(&["a", "bc"]),
            deterministic_id(&["ab", "c"])
        );
    }
}
