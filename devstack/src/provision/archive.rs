//! The archive's resources (issue 14): the bucket is created in the emulator's S3; the
//! Firehose delivery streams and the pipe are not created (devstack's archive emulation,
//! `crate::archive`, plays them) but get names and ARNs so the template resolves.

use std::collections::BTreeMap;

use anyhow::Result;

use super::Resource;
use super::context::{Ctx, check_length};
use crate::s3::S3;
use crate::template::REGION;

/// S3's rules: lowercase letters, digits and hyphens, at most 63 characters.
fn bucket_name(name: &str) -> String {
    let name: String = name
        .to_lowercase()
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '-' {
                c
            } else {
                '-'
            }
        })
        .take(63)
        .collect();
    name.trim_end_matches('-').to_string()
}

/// `AWS::S3::Bucket`: a lowercase name (`{stack}-{logicalid}`, S3's rule) unless the
/// template names it.
pub(super) async fn create_bucket(
    ctx: &Ctx<'_>,
    s3: &S3,
) -> Result<(Resource, BTreeMap<String, String>)> {
    let name = bucket_name(&ctx.physical_name(Some("BucketName"))?);
    ctx.log_skipped(&[
        "BucketEncryption",
        "PublicAccessBlockConfiguration",
        "LifecycleConfiguration",
        "VersioningConfiguration",
        "OwnershipControls",
    ]);
    s3.create_bucket(&name).await?;
    let arn = format!("arn:aws:s3:::{name}");
    let attributes = BTreeMap::from([
        ("Arn".to_string(), arn.clone()),
        ("DomainName".to_string(), format!("{name}.s3.amazonaws.com")),
        (
            "RegionalDomainName".to_string(),
            format!("{name}.s3.{REGION}.amazonaws.com"),
        ),
    ]);
    Ok((
        ctx.resource(name.clone(), Some(arn), Some(name)),
        attributes,
    ))
}

/// `AWS::KinesisFirehose::DeliveryStream` and `AWS::Pipes::Pipe`: named, not created.
pub(super) fn emulated(ctx: &Ctx<'_>) -> Result<(Resource, BTreeMap<String, String>)> {
    let (name_property, arn_kind) = match ctx.resource.resource_type.as_str() {
        "AWS::Pipes::Pipe" => ("Name", "pipes"),
        _ => ("DeliveryStreamName", "firehose"),
    };
    let name = ctx.physical_name(Some(name_property))?;
    check_length("archive resource", &name, 64)?;
    let arn = match arn_kind {
        "pipes" => format!("arn:aws:pipes:{REGION}:{}:pipe/{name}", ctx.account_id),
        _ => format!(
            "arn:aws:firehose:{REGION}:{}:deliverystream/{name}",
            ctx.account_id
        ),
    };
    tracing::debug!(logical_id = %ctx.id(), "not created in the emulator; devstack's archive emulation delivers it");
    let attributes = BTreeMap::from([("Arn".to_string(), arn.clone())]);
    Ok((
        ctx.resource(name.clone(), Some(arn), Some(name)),
        attributes,
    ))
}

#[cfg(test)]
mod tests {
    #[test]
    fn bucket_names_follow_s3_rules() {
        assert_eq!(
            super::bucket_name("vitals-local-ArchiveBucket"),
            "vitals-local-archivebucket"
        );
        let long = super::bucket_name(&format!("t1-{}-ArchiveBucket", "x_y".repeat(30)));
        assert_eq!(long.len(), 63);
        assert!(
            long.chars()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
        );
    }
}
