//! The deliveries of the template: each `AWS::KinesisFirehose::DeliveryStream` with an S3
//! destination, fed by its Kinesis stream (`KinesisStreamAsSource`) or by the
//! `AWS::Pipes::Pipe` whose target it is (a DynamoDB stream source, with its filters).

use std::collections::BTreeMap;

use anyhow::{Context, Result};
use serde_json::Value;

use crate::event_sources::stream_name_from_arn;
use crate::provision::Provisioned;
use crate::template::{Resolver, Template, scalar_to_string};

/// Where a delivery's records come from.
#[derive(Debug, Clone, PartialEq)]
pub enum Source {
    /// A Kinesis stream (Firehose's KinesisStreamAsSource): each record's data.
    Kinesis {
        /// Stream name.
        stream_name: String,
    },
    /// A DynamoDB stream through a pipe: each record as the pipe sends it (the stream
    /// record's JSON), if it matches one of the pipe's filters (none = every record).
    DynamoDbStream {
        /// Stream ARN.
        stream_arn: String,
        /// The pipe's `FilterCriteria` patterns.
        filters: Vec<Value>,
    },
}

/// One Firehose delivery stream to S3.
#[derive(Debug, Clone, PartialEq)]
pub struct Delivery {
    /// Logical id of the delivery stream.
    pub logical_id: String,
    /// Its physical name (the objects' name prefix).
    pub name: String,
    /// Destination bucket name.
    pub bucket: String,
    /// Key prefix, e.g. `readings/dt=!{timestamp:yyyy-MM-dd}/`.
    pub prefix: String,
    /// Where its records come from.
    pub source: Source,
}

fn text(properties: &Value, pointer: &str) -> Result<Option<String>> {
    properties
        .pointer(pointer)
        .map(scalar_to_string)
        .transpose()
        .with_context(|| pointer.to_string())
}

/// The deliveries of `template` as provisioned. A DirectPut stream no pipe feeds has no
/// records to play and is left out.
pub fn deliveries(
    template: &Template,
    parameters: &BTreeMap<String, String>,
    stack_name: &str,
    provisioned: &Provisioned,
) -> Result<Vec<Delivery>> {
    let resolver = Resolver {
        parameters,
        conditions: &template.conditions,
        stack_name,
        account_id: provisioned.account_id(),
        resources: provisioned,
    };
    let mut pipes = Vec::new();
    for pipe in template
        .resources
        .iter()
        .filter(|r| r.resource_type == "AWS::Pipes::Pipe")
    {
        if provisioned.get(&pipe.logical_id).is_some() {
            pipes.push(resolver.resolve_properties(pipe)?);
        }
    }
    let mut found = Vec::new();
    for stream in template
        .resources
        .iter()
        .filter(|r| r.resource_type == "AWS::KinesisFirehose::DeliveryStream")
    {
        let Some(provisioned_stream) = provisioned.get(&stream.logical_id) else {
            continue;
        };
        let at = || format!("delivery stream {}", stream.logical_id);
        let p = resolver.resolve_properties(stream).with_context(at)?;
        let Some(bucket_arn) = text(&p, "/ExtendedS3DestinationConfiguration/BucketARN")? else {
            tracing::debug!(logical_id = %stream.logical_id, "no S3 destination; not played");
            continue;
        };
        let bucket = bucket_arn
            .strip_prefix("arn:aws:s3:::")
            .with_context(|| format!("{} is not a bucket ARN", bucket_arn))
            .with_context(at)?
            .to_string();
        let prefix = text(&p, "/ExtendedS3DestinationConfiguration/Prefix")?.unwrap_or_default();
        let source = match text(&p, "/KinesisStreamSourceConfiguration/KinesisStreamARN")? {
            Some(arn) => Source::Kinesis {
                stream_name: stream_name_from_arn(&arn).with_context(at)?,
            },
            None => {
                let arn = provisioned_stream.arn.clone().unwrap_or_default();
                let Some(pipe) = pipes
                    .iter()
                    .find(|pipe| text(pipe, "/Target").ok().flatten().as_deref() == Some(&arn))
                else {
                    tracing::debug!(logical_id = %stream.logical_id, "DirectPut stream no pipe feeds; not played");
                    continue;
                };
                let stream_arn = text(pipe, "/Source")?.unwrap_or_default();
                if !stream_arn.starts_with("arn:aws:dynamodb:") {
                    tracing::debug!(logical_id = %stream.logical_id, source = %stream_arn, "pipe source is not a DynamoDB stream; not played");
                    continue;
                }
                let filters = pipe
                    .pointer("/SourceParameters/FilterCriteria/Filters")
                    .and_then(Value::as_array)
                    .map(|filters| {
                        filters
                            .iter()
                            .filter_map(|f| f.get("Pattern").and_then(Value::as_str))
                            .map(|pattern| {
                                serde_json::from_str(pattern)
                                    .with_context(|| format!("filter pattern {pattern}"))
                            })
                            .collect::<Result<Vec<Value>>>()
                    })
                    .transpose()
                    .with_context(at)?
                    .unwrap_or_default();
                Source::DynamoDbStream {
                    stream_arn,
                    filters,
                }
            }
        };
        found.push(Delivery {
            logical_id: stream.logical_id.clone(),
            name: provisioned_stream.ref_value.clone(),
            bucket,
            prefix,
            source,
        });
    }
    Ok(found)
}
