//! DynamoDB tables (`AWS::DynamoDB::Table`): keys, indexes, streams and TTL.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use serde_json::Value;

use super::Resource;
use super::context::{ACTIVE_TIMEOUT, Ctx, check_length};
use crate::template::scalar_to_string;

pub(super) async fn create_table(
    ctx: &Ctx<'_>,
    dynamodb: &aws_sdk_dynamodb::Client,
) -> Result<(Resource, BTreeMap<String, String>)> {
    use aws_sdk_dynamodb::types::{
        AttributeDefinition, BillingMode, GlobalSecondaryIndex, KeySchemaElement, KeyType,
        LocalSecondaryIndex, Projection, ProjectionType, ProvisionedThroughput,
        ScalarAttributeType, StreamSpecification, StreamViewType, TimeToLiveSpecification,
    };

    fn text(value: &Value, key: &str) -> Result<String> {
        value
            .get(key)
            .map(scalar_to_string)
            .transpose()?
            .with_context(|| format!("{key} is required"))
    }
    fn list<'v>(value: &'v Value, key: &str) -> Result<&'v [Value]> {
        match value.get(key) {
            None => Ok(&[]),
            Some(Value::Array(items)) => Ok(items),
            Some(other) => bail!("{key} must be a list, found {other}"),
        }
    }
    fn key_schema(value: &Value) -> Result<Vec<KeySchemaElement>> {
        list(value, "KeySchema")?
            .iter()
            .map(|k| {
                Ok(KeySchemaElement::builder()
                    .attribute_name(text(k, "AttributeName")?)
                    .key_type(KeyType::from(text(k, "KeyType")?.as_str()))
                    .build()?)
            })
            .collect::<Result<Vec<_>>>()
            .context("KeySchema")
    }
    fn throughput(value: &Value) -> Result<Option<ProvisionedThroughput>> {
        let Some(t) = value.get("ProvisionedThroughput") else {
            return Ok(None);
        };
        let units = |key: &str| -> Result<i64> {
            text(t, key)?
                .parse()
                .with_context(|| format!("ProvisionedThroughput.{key} is not an integer"))
        };
        Ok(Some(
            ProvisionedThroughput::builder()
                .read_capacity_units(units("ReadCapacityUnits")?)
                .write_capacity_units(units("WriteCapacityUnits")?)
                .build()?,
        ))
    }
    fn projection(value: &Value) -> Result<Projection> {
        let p = value.get("Projection").context("Projection is required")?;
        let mut builder = Projection::builder();
        if let Some(t) = p.get("ProjectionType") {
            builder = builder.projection_type(ProjectionType::from(scalar_to_string(t)?.as_str()));
        }
        for attr in list(p, "NonKeyAttributes")? {
            builder = builder.non_key_attributes(scalar_to_string(attr)?);
        }
        Ok(builder.build())
    }

    let props = ctx.properties;
    let name = ctx.physical_name(Some("TableName"))?;
    check_length("table", &name, 255)?;
    ctx.log_skipped(&[
        "SSESpecification",
        "PointInTimeRecoverySpecification",
        "Tags",
        "DeletionProtectionEnabled",
        "TableClass",
        "ContributorInsightsSpecification",
        "KinesisStreamSpecification",
    ]);

    let mut request = dynamodb.create_table().table_name(&name);
    for def in list(props, "AttributeDefinitions")? {
        request = request.attribute_definitions(
            AttributeDefinition::builder()
                .attribute_name(text(def, "AttributeName")?)
                .attribute_type(ScalarAttributeType::from(
                    text(def, "AttributeType")?.as_str(),
                ))
                .build()
                .context("AttributeDefinitions")?,
        );
    }
    request = request.set_key_schema(Some(key_schema(props)?));
    let billing = ctx
        .string("BillingMode")?
        .unwrap_or_else(|| "PROVISIONED".to_string());
    request = request.billing_mode(BillingMode::from(billing.as_str()));
    if let Some(t) = throughput(props)? {
        request = request.provisioned_throughput(t);
    }
    for gsi in list(props, "GlobalSecondaryIndexes")? {
        let mut builder = GlobalSecondaryIndex::builder()
            .index_name(text(gsi, "IndexName")?)
            .set_key_schema(Some(key_schema(gsi)?))
            .projection(projection(gsi)?);
        if let Some(t) = throughput(gsi)? {
            builder = builder.provisioned_throughput(t);
        }
        request =
            request.global_secondary_indexes(builder.build().context("GlobalSecondaryIndexes")?);
    }
    for lsi in list(props, "LocalSecondaryIndexes")? {
        request = request.local_secondary_indexes(
            LocalSecondaryIndex::builder()
                .index_name(text(lsi, "IndexName")?)
                .set_key_schema(Some(key_schema(lsi)?))
                .projection(projection(lsi)?)
                .build()
                .context("LocalSecondaryIndexes")?,
        );
    }
    if let Some(spec) = props.get("StreamSpecification") {
        request = request.stream_specification(
            StreamSpecification::builder()
                .stream_enabled(true)
                .stream_view_type(StreamViewType::from(text(spec, "StreamViewType")?.as_str()))
                .build()
                .context("StreamSpecification")?,
        );
    }

    match request.send().await {
        Ok(_) => {}
        Err(err)
            if err
                .as_service_error()
                .is_some_and(|e| e.is_resource_in_use_exception()) =>
        {
            tracing::info!(table = %name, "table already exists; reusing it");
        }
        Err(err) => return Err(err).with_context(|| format!("CreateTable {name}")),
    }

    let started = Instant::now();
    let table = loop {
        let table = dynamodb
            .describe_table()
            .table_name(&name)
            .send()
            .await
            .with_context(|| format!("DescribeTable {name}"))?
            .table
            .with_context(|| format!("DescribeTable {name}: no table description"))?;
        if table.table_status == Some(aws_sdk_dynamodb::types::TableStatus::Active) {
            break table;
        }
        if started.elapsed() > ACTIVE_TIMEOUT {
            bail!("table {name} did not become ACTIVE within {ACTIVE_TIMEOUT:?}");
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    };

    if let Some(ttl) = props.get("TimeToLiveSpecification") {
        let enabled = match ttl.get("Enabled") {
            Some(Value::Bool(b)) => *b,
            Some(Value::String(s)) => s.eq_ignore_ascii_case("true"),
            _ => true,
        };
        let spec = TimeToLiveSpecification::builder()
            .attribute_name(text(ttl, "AttributeName")?)
            .enabled(enabled)
            .build()
            .context("TimeToLiveSpecification")?;
        if let Err(err) = dynamodb
            .update_time_to_live()
            .table_name(&name)
            .time_to_live_specification(spec)
            .send()
            .await
        {
            // A second run re-enabling TTL gets a ValidationException ("already enabled").
            tracing::debug!(table = %name, error = %aws_sdk_dynamodb::error::DisplayErrorContext(&err), "UpdateTimeToLive failed; continuing");
        }
    }

    let arn = table
        .table_arn
        .clone()
        .with_context(|| format!("DescribeTable {name}: no TableArn"))?;
    let mut attributes = BTreeMap::from([("Arn".to_string(), arn.clone())]);
    if let Some(stream_arn) = table.latest_stream_arn {
        attributes.insert("StreamArn".to_string(), stream_arn);
    }
    Ok((
        ctx.resource(name.clone(), Some(arn), Some(name)),
        attributes,
    ))
}
