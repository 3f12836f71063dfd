//! SNS topics (`AWS::SNS::Topic`) and subscriptions (`AWS::SNS::Subscription`).

use std::collections::{BTreeMap, HashMap};

use anyhow::{Context, Result, bail};

use super::Resource;
use super::context::{Ctx, attribute_string, check_length};

pub(super) async fn create_topic(
    ctx: &Ctx<'_>,
    sns: &aws_sdk_sns::Client,
) -> Result<(Resource, BTreeMap<String, String>)> {
    let fifo = ctx.bool("FifoTopic")?.unwrap_or(false);
    let mut name = ctx.physical_name(Some("TopicName"))?;
    if fifo && !name.ends_with(".fifo") {
        if ctx.string("TopicName")?.is_some() {
            bail!("FIFO topic name {name:?} must end in .fifo");
        }
        name.push_str(".fifo");
    }
    check_length("topic", &name, 256)?;
    ctx.log_skipped(&[
        "KmsMasterKeyId",
        "TracingConfig",
        "Tags",
        "Subscription",
        "DataProtectionPolicy",
    ]);
    let mut request = sns.create_topic().name(&name);
    for key in ["FifoTopic", "ContentBasedDeduplication", "DisplayName"] {
        if let Some(value) = ctx.properties.get(key) {
            request = request.attributes(key, attribute_string(value)?);
        }
    }
    let arn = request
        .send()
        .await
        .with_context(|| format!("CreateTopic {name}"))?
        .topic_arn
        .with_context(|| format!("CreateTopic {name}: no TopicArn"))?;
    let attributes = BTreeMap::from([
        ("TopicArn".to_string(), arn.clone()),
        ("TopicName".to_string(), name.clone()),
    ]);
    Ok((ctx.resource(arn.clone(), Some(arn), Some(name)), attributes))
}

pub(super) async fn create_subscription(
    ctx: &Ctx<'_>,
    sns: &aws_sdk_sns::Client,
) -> Result<(Resource, BTreeMap<String, String>)> {
    let topic_arn = ctx.string("TopicArn")?.context("TopicArn is required")?;
    let protocol = ctx.string("Protocol")?.context("Protocol is required")?;
    let endpoint = ctx.string("Endpoint")?.context("Endpoint is required")?;
    let mut attributes = HashMap::new();
    for key in [
        "RawMessageDelivery",
        "FilterPolicy",
        "FilterPolicyScope",
        "RedrivePolicy",
        "DeliveryPolicy",
    ] {
        if let Some(value) = ctx.properties.get(key) {
            attributes.insert(key.to_string(), attribute_string(value)?);
        }
    }

    // Reuse an identical subscription (second run against the same emulator) instead of
    // subscribing twice, which would deliver every message twice.
    let existing = find_subscription(sns, &topic_arn, &protocol, &endpoint).await?;
    let arn = match existing {
        Some(arn) => {
            tracing::info!(subscription = %arn, "subscription already exists; reusing it");
            for (name, value) in &attributes {
                sns.set_subscription_attributes()
                    .subscription_arn(&arn)
                    .attribute_name(name)
                    .attribute_value(value)
                    .send()
                    .await
                    .with_context(|| format!("SetSubscriptionAttributes {name}"))?;
            }
            arn
        }
        None => sns
            .subscribe()
            .topic_arn(&topic_arn)
            .protocol(&protocol)
            .endpoint(&endpoint)
            .set_attributes(Some(attributes))
            .return_subscription_arn(true)
            .send()
            .await
            .with_context(|| format!("Subscribe {protocol}:{endpoint} to {topic_arn}"))?
            .subscription_arn
            .context("Subscribe: no SubscriptionArn")?,
    };
    Ok((ctx.resource(arn.clone(), Some(arn), None), BTreeMap::new()))
}

async fn find_subscription(
    sns: &aws_sdk_sns::Client,
    topic_arn: &str,
    protocol: &str,
    endpoint: &str,
) -> Result<Option<String>> {
    let mut next_token = None;
    loop {
        let page = sns
            .list_subscriptions_by_topic()
            .topic_arn(topic_arn)
            .set_next_token(next_token)
            .send()
            .await
            .with_context(|| format!("ListSubscriptionsByTopic {topic_arn}"))?;
        for sub in page.subscriptions() {
            if sub.protocol() == Some(protocol)
                && sub.endpoint() == Some(endpoint)
                && let Some(arn) = sub.subscription_arn()
            {
                return Ok(Some(arn.to_string()));
            }
        }
        match page.next_token {
            Some(token) if !token.is_empty() => next_token = Some(token),
            _ => return Ok(None),
        }
    }
}
