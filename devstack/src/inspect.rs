//! Reading (and seeding) the provisioned resources: what the demo prints and what the
//! end-to-end tests assert on. Everything here reads the emulator, not the functions.

use std::collections::BTreeSet;

use anyhow::{Context, Result};
use aws_adapters::DynamoDirectory;
use aws_sdk_sqs::types::QueueAttributeName;
use domain::routing::DirectoryEntry;
use serde_json::Value;

use crate::Stack;
use crate::template::{Template, collect_references};

/// Logical ids of the template's dead-letter queues: the targets of every queue's
/// `RedrivePolicy` and of every event source's `DestinationConfig.OnFailure`.
pub fn dead_letter_queues(template: &Template) -> Vec<String> {
    let mut ids = BTreeSet::new();
    for resource in &template.resources {
        let props = &resource.properties;
        if let Some(target) = props.pointer("/RedrivePolicy/deadLetterTargetArn") {
            collect_references(target, &mut ids);
        }
        if let Some(Value::Object(events)) = props.get("Events") {
            for event in events.values() {
                if let Some(dest) =
                    event.pointer("/Properties/DestinationConfig/OnFailure/Destination")
                {
                    collect_references(dest, &mut ids);
                }
            }
        }
    }
    ids.into_iter().collect()
}

/// The dashboard's read models (every item of the dashboard table).
pub async fn dashboard_views(stack: &Stack) -> Result<Vec<domain::dashboard::View>> {
    scan(stack, "DashboardTable")
        .await?
        .into_iter()
        .map(|item| {
            serde_json::from_value(item["view"].clone())
                .with_context(|| format!("dashboard item {} is not a view", item["viewId"]))
        })
        .collect()
}

/// Writes directory entries (patient -> health worker) into the directory table.
pub async fn seed_directory(stack: &Stack, entries: &[DirectoryEntry]) -> Result<()> {
    let table = table_name(stack, "DirectoryTable")?;
    let directory = DynamoDirectory::new(stack.sdk_config(), table);
    for entry in entries {
        directory
            .put(entry)
            .await
            .with_context(|| format!("seeding directory entry {}", entry.patient_id))?;
    }
    Ok(())
}

/// Every item of a table as JSON (a full scan: for local inspection only).
pub async fn scan(stack: &Stack, table_logical_id: &str) -> Result<Vec<Value>> {
    let table = table_name(stack, table_logical_id)?;
    let client = aws_sdk_dynamodb::Client::new(stack.sdk_config());
    let mut items = Vec::new();
    let mut start = None;
    loop {
        let out = client
            .scan()
            .table_name(&table)
            .set_exclusive_start_key(start)
            .send()
            .await
            .with_context(|| format!("scanning {table}"))?;
        for item in out.items() {
            let json: Value = serde_dynamo::aws_sdk_dynamodb_1::from_item(item.clone())
                .with_context(|| format!("decoding an item of {table}"))?;
            items.push(json);
        }
        match out.last_evaluated_key {
            Some(key) if !key.is_empty() => start = Some(key),
            _ => return Ok(items),
        }
    }
}

/// Events of the event table with the given `eventType`.
pub async fn events_of_type(stack: &Stack, event_type: &str) -> Result<Vec<Value>> {
    Ok(scan(stack, "EventsTable")
        .await?
        .into_iter()
        .filter(|e| e["eventType"] == event_type)
        .collect())
}

/// Messages in a queue: visible + in flight + delayed.
pub async fn queue_depth(stack: &Stack, queue_logical_id: &str) -> Result<u64> {
    let url = stack.resource(queue_logical_id)?.ref_value.clone();
    let client = aws_sdk_sqs::Client::new(stack.sdk_config());
    let out = client
        .get_queue_attributes()
        .queue_url(&url)
        .attribute_names(QueueAttributeName::ApproximateNumberOfMessages)
        .attribute_names(QueueAttributeName::ApproximateNumberOfMessagesNotVisible)
        .attribute_names(QueueAttributeName::ApproximateNumberOfMessagesDelayed)
        .send()
        .await
        .with_context(|| format!("reading attributes of queue {queue_logical_id}"))?;
    let attrs = out.attributes.unwrap_or_default();
    Ok(attrs.values().map(|v| v.parse::<u64>().unwrap_or(0)).sum())
}

/// Depth of every dead-letter queue of the template, by logical id.
pub async fn dead_letter_depths(stack: &Stack) -> Result<Vec<(String, u64)>> {
    let template = Template::load(&stack.config().template)?;
    let mut depths = Vec::new();
    for id in dead_letter_queues(&template) {
        let depth = queue_depth(stack, &id).await?;
        depths.push((id, depth));
    }
    Ok(depths)
}

/// The bodies of the messages now visible in a queue. They are received (hidden for 30 s)
/// until the queue answers empty, then all made visible again.
pub async fn peek_queue(stack: &Stack, queue_logical_id: &str) -> Result<Vec<String>> {
    let url = stack.resource(queue_logical_id)?.ref_value.clone();
    let client = aws_sdk_sqs::Client::new(stack.sdk_config());
    let mut bodies = Vec::new();
    let mut handles = Vec::new();
    loop {
        let out = client
            .receive_message()
            .queue_url(&url)
            .max_number_of_messages(10)
            .visibility_timeout(30)
            .send()
            .await
            .with_context(|| format!("receiving from {queue_logical_id}"))?;
        let messages = out.messages.unwrap_or_default();
        if messages.is_empty() {
            break;
        }
        for m in messages {
            bodies.push(m.body.unwrap_or_default());
            handles.extend(m.receipt_handle);
        }
    }
    for handle in handles {
        client
            .change_message_visibility()
            .queue_url(&url)
            .receipt_handle(handle)
            .visibility_timeout(0)
            .send()
            .await
            .with_context(|| format!("releasing a message of {queue_logical_id}"))?;
    }
    Ok(bodies)
}

/// Every record of a Kinesis stream, all shards, from the oldest: `(partition key, data)`.
pub async fn stream_records(
    stack: &Stack,
    stream_logical_id: &str,
) -> Result<Vec<(String, Vec<u8>)>> {
    let name = stack.resource(stream_logical_id)?.ref_value.clone();
    let client = aws_sdk_kinesis::Client::new(stack.sdk_config());
    let shards = client
        .list_shards()
        .stream_name(&name)
        .send()
        .await
        .with_context(|| format!("listing shards of {name}"))?;
    let mut records = Vec::new();
    for shard in shards.shards() {
        let mut iterator = client
            .get_shard_iterator()
            .stream_name(&name)
            .shard_id(shard.shard_id())
            .shard_iterator_type(aws_sdk_kinesis::types::ShardIteratorType::TrimHorizon)
            .send()
            .await
            .with_context(|| format!("getting an iterator for {}", shard.shard_id()))?
            .shard_iterator;
        while let Some(it) = iterator {
            let out = client
                .get_records()
                .shard_iterator(it)
                .send()
                .await
                .with_context(|| format!("reading shard {}", shard.shard_id()))?;
            let got = out.records().len();
            for r in out.records() {
                records.push((
                    r.partition_key().unwrap_or_default().to_string(),
                    r.data().as_ref().to_vec(),
                ));
            }
            if got == 0 {
                break;
            }
            iterator = out.next_shard_iterator;
        }
    }
    Ok(records)
}

fn table_name(stack: &Stack, logical_id: &str) -> Result<String> {
    Ok(stack.resource(logical_id)?.ref_value.clone())
}

/// Writes health workers (with availability) into the workers table.
pub async fn seed_workers(stack: &Stack, workers: &[domain::escalation::Worker]) -> Result<()> {
    let table = table_name(stack, "WorkersTable")?;
    let store = aws_adapters::DynamoWorkers::new(stack.sdk_config(), table);
    for worker in workers {
        store
            .put(worker)
            .await
            .with_context(|| format!("seeding worker {}", worker.worker_id))?;
    }
    Ok(())
}

/// Writes device bindings (docs/security.md, "Device bindings") into the directory table.
pub async fn seed_devices(
    stack: &Stack,
    devices: &[(&str, domain::access::DeviceBinding)],
) -> Result<()> {
    let table = table_name(stack, "DirectoryTable")?;
    let directory = DynamoDirectory::new(stack.sdk_config(), table);
    for (client_id, binding) in devices {
        directory
            .put_device(client_id, binding)
            .await
            .with_context(|| format!("seeding the device binding of {client_id}"))?;
    }
    Ok(())
}

/// Writes the demo's device bindings: the kiosk [`crate::auth::DEMO_KIOSK`] of Kisumu and
/// the wearable [`crate::auth::DEMO_WEARABLE`] of p-001.
pub async fn seed_demo_devices(stack: &Stack) -> Result<()> {
    use domain::access::DeviceBinding;
    seed_devices(
        stack,
        &[
            (
                crate::auth::DEMO_KIOSK,
                DeviceBinding::Kiosk {
                    village: "Kisumu".to_string(),
                },
            ),
            (
                crate::auth::DEMO_WEARABLE,
                DeviceBinding::Wearable {
                    bound_patient_id: "p-001".to_string(),
                },
            ),
        ],
    )
    .await
}

/// Writes village rosters and family contacts into the directory table.
pub async fn seed_contacts(
    stack: &Stack,
    rosters: &[domain::escalation::VillageRoster],
    families: &[domain::escalation::FamilyContact],
) -> Result<()> {
    let table = table_name(stack, "DirectoryTable")?;
    let directory = DynamoDirectory::new(stack.sdk_config(), table);
    for roster in rosters {
        directory
            .put_roster(roster)
            .await
            .with_context(|| format!("seeding the roster of {}", roster.village))?;
    }
    for family in families {
        directory
            .put_family(family)
            .await
            .with_context(|| format!("seeding the family of {}", family.patient_id))?;
    }
    Ok(())
}

/// `from` replies `text` to an SMS: AWS End User Messaging SMS publishes the two-way SMS
/// JSON to the inbound topic (`InboundSmsTopic`). `message_id` is its `inboundMessageId`.
pub async fn sms_reply(stack: &Stack, from: &str, text: &str, message_id: &str) -> Result<()> {
    let message = serde_json::json!({
        "originationNumber": from,
        "destinationNumber": "+254700009000",
        "messageKeyword": "ACK",
        "messageBody": text,
        "inboundMessageId": message_id,
        "previousPublishedMessageId": "previous-1",
    });
    let topic = stack.resource("InboundSmsTopic")?.ref_value.clone();
    aws_sdk_sns::Client::new(stack.sdk_config())
        .publish()
        .topic_arn(topic)
        .message(message.to_string())
        .send()
        .await
        .context("publishing the SMS reply")?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_every_dead_letter_queue_of_the_template() {
        let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../infra/template.yaml");
        let template = Template::load(&path).unwrap();
        assert_eq!(
            dead_letter_queues(&template),
            [
                "DetectFailureQueue",
                "EmergencyDLQ",
                "EscalationDLQ",
                "InboundSmsDLQ",
                "NotifyDLQ",
                "ProjectFailureQueue",
                "RouteDLQ",
                "SagaDLQ",
                "StepsDLQ",
                "TimersDLQ"
            ]
        );
    }
}
