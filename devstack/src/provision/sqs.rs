//! SQS queues (`AWS::SQS::Queue`), standard and FIFO, with their attributes.

use std::collections::{BTreeMap, HashMap};

use anyhow::{Context, Result, bail};

use super::Resource;
use super::context::{Ctx, attribute_string, check_length};

pub(super) async fn create_queue(
    ctx: &Ctx<'_>,
    sqs: &aws_sdk_sqs::Client,
) -> Result<(Resource, BTreeMap<String, String>)> {
    use aws_sdk_sqs::types::QueueAttributeName;
    let fifo = ctx.bool("FifoQueue")?.unwrap_or(false);
    let mut name = ctx.physical_name(Some("QueueName"))?;
    if fifo && !name.ends_with(".fifo") {
        if ctx.string("QueueName")?.is_some() {
            bail!("FIFO queue name {name:?} must end in .fifo");
        }
        name.push_str(".fifo");
    }
    check_length("queue", &name, 80)?;
    ctx.log_skipped(&[
        "SqsManagedSseEnabled",
        "KmsMasterKeyId",
        "KmsDataKeyReusePeriodSeconds",
        "Tags",
    ]);

    const PASSED: &[&str] = &[
        "VisibilityTimeout",
        "MessageRetentionPeriod",
        "DelaySeconds",
        "MaximumMessageSize",
        "ReceiveMessageWaitTimeSeconds",
        "RedrivePolicy",
        "RedriveAllowPolicy",
        "FifoQueue",
        "ContentBasedDeduplication",
        "DeduplicationScope",
        "FifoThroughputLimit",
    ];
    let mut attributes = HashMap::new();
    for key in PASSED {
        if let Some(value) = ctx.properties.get(*key) {
            let text = attribute_string(value).with_context(|| format!("property {key}"))?;
            attributes.insert(QueueAttributeName::from(*key), text);
        }
    }

    let created = sqs
        .create_queue()
        .queue_name(&name)
        .set_attributes(Some(attributes.clone()))
        .send()
        .await;
    let url = match created {
        Ok(out) => out
            .queue_url
            .with_context(|| format!("CreateQueue {name}: no QueueUrl"))?,
        Err(create_err) => {
            // Most likely the queue exists with different attributes (a second run against the
            // same emulator): reuse it and bring its attributes in line.
            let url = match sqs.get_queue_url().queue_name(&name).send().await {
                Ok(out) => out.queue_url.context("GetQueueUrl: no QueueUrl")?,
                Err(_) => return Err(create_err).with_context(|| format!("CreateQueue {name}")),
            };
            tracing::info!(queue = %name, "queue already exists; reusing it");
            attributes.remove(&QueueAttributeName::FifoQueue);
            if !attributes.is_empty() {
                sqs.set_queue_attributes()
                    .queue_url(&url)
                    .set_attributes(Some(attributes))
                    .send()
                    .await
                    .with_context(|| format!("SetQueueAttributes {name}"))?;
            }
            url
        }
    };
    let arn = sqs
        .get_queue_attributes()
        .queue_url(&url)
        .attribute_names(QueueAttributeName::QueueArn)
        .send()
        .await
        .with_context(|| format!("GetQueueAttributes {name}"))?
        .attributes
        .and_then(|mut a| a.remove(&QueueAttributeName::QueueArn))
        .with_context(|| format!("GetQueueAttributes {name}: no QueueArn"))?;
    let attributes = BTreeMap::from([
        ("Arn".to_string(), arn.clone()),
        ("QueueName".to_string(), name.clone()),
        ("QueueUrl".to_string(), url.clone()),
    ]);
    Ok((ctx.resource(url, Some(arn), Some(name)), attributes))
}
