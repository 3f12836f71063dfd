//! Serverless functions and HTTP APIs: not created in the emulator (devstack runs them
//! itself), but given the names, ARNs and ids that `Ref` and `GetAtt` return.

use std::collections::BTreeMap;

use anyhow::Result;

use super::Resource;
use super::context::{Ctx, check_length};
use crate::template::REGION;

pub(super) fn local_function(ctx: &Ctx<'_>) -> Result<(Resource, BTreeMap<String, String>)> {
    let name = ctx.physical_name(Some("FunctionName"))?;
    check_length("function", &name, 64)?;
    let arn = format!("arn:aws:lambda:{REGION}:{}:function:{name}", ctx.account_id);
    let attributes = BTreeMap::from([("Arn".to_string(), arn.clone())]);
    Ok((
        ctx.resource(name.clone(), Some(arn), Some(name)),
        attributes,
    ))
}

pub(super) fn http_api(ctx: &Ctx<'_>) -> (Resource, BTreeMap<String, String>) {
    let api_id = api_id_for(ctx.stack_name, ctx.id());
    let attributes = BTreeMap::from([("ApiId".to_string(), api_id.clone())]);
    (ctx.resource(api_id, None, None), attributes)
}

/// A stable, API-Gateway-looking id (10 lowercase alphanumerics) for an HTTP API.
pub fn api_id_for(stack_name: &str, logical_id: &str) -> String {
    // FNV-1a: stable across runs, unlike std's randomly seeded hasher.
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    for byte in stack_name.bytes().chain([b'/']).chain(logical_id.bytes()) {
        hash ^= u64::from(byte);
        hash = hash.wrapping_mul(0x0100_0000_01b3);
    }
    const ALPHABET: &[u8] = b"abcdefghijklmnopqrstuvwxyz0123456789";
    (0..10)
        .map(|_| {
            let c = ALPHABET[(hash % 36) as usize] as char;
            hash /= 36;
            c
        })
        .collect()
}
