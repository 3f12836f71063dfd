//! Kinesis streams (`AWS::Kinesis::Stream`).

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};

use super::Resource;
use super::context::{ACTIVE_TIMEOUT, Ctx, check_length};

pub(super) async fn create_stream(
    ctx: &Ctx<'_>,
    kinesis: &aws_sdk_kinesis::Client,
) -> Result<(Resource, BTreeMap<String, String>)> {
    let name = ctx.physical_name(Some("Name"))?;
    check_length("stream", &name, 128)?;
    let shard_count: i32 = ctx
        .string("ShardCount")?
        .unwrap_or_else(|| "1".to_string())
        .parse()
        .context("ShardCount is not an integer")?;
    ctx.log_skipped(&[
        "StreamEncryption",
        "RetentionPeriodHours",
        "StreamModeDetails",
        "Tags",
    ]);
    match kinesis
        .create_stream()
        .stream_name(&name)
        .shard_count(shard_count)
        .send()
        .await
    {
        Ok(_) => {}
        Err(err)
            if err
                .as_service_error()
                .is_some_and(|e| e.is_resource_in_use_exception()) =>
        {
            tracing::info!(stream = %name, "stream already exists; reusing it");
        }
        Err(err) => return Err(err).with_context(|| format!("CreateStream {name}")),
    }
    let started = Instant::now();
    let arn = loop {
        let summary = kinesis
            .describe_stream_summary()
            .stream_name(&name)
            .send()
            .await
            .with_context(|| format!("DescribeStreamSummary {name}"))?;
        let summary = summary
            .stream_description_summary
            .with_context(|| format!("DescribeStreamSummary {name}: no summary"))?;
        if summary.stream_status == aws_sdk_kinesis::types::StreamStatus::Active {
            break summary.stream_arn;
        }
        if started.elapsed() > ACTIVE_TIMEOUT {
            bail!("stream {name} did not become ACTIVE within {ACTIVE_TIMEOUT:?}");
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    let attributes = BTreeMap::from([("Arn".to_string(), arn.clone())]);
    Ok((
        ctx.resource(name.clone(), Some(arn), Some(name)),
        attributes,
    ))
}
