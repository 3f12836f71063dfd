//! Gives a target its acknowledgement code: the first of its candidate codes
//! ([`AckCode::candidates`]: 6 characters, else 8) that is free or already its own.

use domain::ack::{AckCode, AckTarget};

use crate::ports::{AckCodes, PortError, Registered};

/// Registers `target`'s code and returns it. Deterministic for a given register: a repeat
/// (a redelivered routing) finds the same code already registered to the target, and a code
/// taken by another target is skipped for the target's longer one.
pub async fn assign_code(codes: &dyn AckCodes, target: &AckTarget) -> Result<AckCode, PortError> {
    for code in AckCode::candidates(target) {
        match codes.register(&code, target).await? {
            Registered::New | Registered::Existing => return Ok(code),
            Registered::Taken => continue,
        }
    }
    // Both the 30-bit and the 40-bit code of this target are taken by other targets.
    Err(PortError::Backend(format!(
        "every acknowledgement code of {} {} is taken",
        target.kind(),
        target.id()
    )))
}
