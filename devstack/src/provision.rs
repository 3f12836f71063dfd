//! Creating the template's resources in the emulator through the AWS APIs.

use std::collections::{BTreeMap, HashMap};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use aws_config::SdkConfig;
use serde_json::Value;

use crate::template::{
    DEFAULT_ACCOUNT_ID, REGION, Resolver, ResourceLookup, Template, TemplateResource,
    scalar_to_string,
};

/// Resource types that have no local equivalent and are skipped (with a debug log).
const IGNORED_TYPES: &[&str] = &[
    "AWS::SQS::QueuePolicy",
    "AWS::SNS::TopicPolicy",
    "AWS::IAM::Role",
    "AWS::IAM::Policy",
    "AWS::Logs::LogGroup",
    "AWS::CloudWatch::Alarm",
    "AWS::CloudWatch::Dashboard",
    "AWS::Lambda::Permission",
    "AWS::KMS::Key",
    "AWS::KMS::Alias",
];

/// Resource types created in the emulator.
const EMULATOR_TYPES: &[&str] = &[
    "AWS::Kinesis::Stream",
    "AWS::SQS::Queue",
    "AWS::SNS::Topic",
    "AWS::SNS::Subscription",
    "AWS::DynamoDB::Table",
];

/// How long to wait for a stream or table to become ACTIVE.
const ACTIVE_TIMEOUT: Duration = Duration::from_secs(60);

/// A resource of the template as provisioned locally.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Resource {
    /// Logical id in the template.
    pub logical_id: String,
    /// CloudFormation type, e.g. `AWS::SQS::Queue`.
    pub resource_type: String,
    /// What `!Ref` gives (queue URL, topic ARN, stream name, table name, function name, API id).
    pub ref_value: String,
    /// The resource's ARN, where it has one.
    pub arn: Option<String>,
    /// Physical name (table, stream, queue, topic or function name), where it has one.
    pub name: Option<String>,
}

/// A serverless function after resolution, ready to be run locally.
#[derive(Debug, Clone)]
pub struct ResolvedFunction {
    /// Logical id.
    pub logical_id: String,
    /// Physical function name.
    pub name: String,
    /// Function ARN.
    pub arn: String,
    /// Resolved `Properties` (Globals merged).
    pub properties: Value,
}

/// Everything provisioned so far; also answers `Ref`/`GetAtt` for the resolver.
#[derive(Debug, Clone, Default)]
pub struct Provisioned {
    /// Resources in creation order.
    pub resources: Vec<Resource>,
    /// GetAtt attributes by logical id.
    attributes: HashMap<String, BTreeMap<String, String>>,
    /// Account id learned from the first ARN the emulator returned.
    account_id: Option<String>,
}

impl Provisioned {
    /// The account id of the emulator (learned from ARNs; a default until one was seen).
    pub fn account_id(&self) -> &str {
        self.account_id.as_deref().unwrap_or(DEFAULT_ACCOUNT_ID)
    }

    /// Looks up a resource by logical id.
    pub fn get(&self, logical_id: &str) -> Option<&Resource> {
        self.resources.iter().find(|r| r.logical_id == logical_id)
    }

    /// Finds the resource with the given ARN.
    /// The resource with this ARN; for a DynamoDB stream ARN (`<table ARN>/stream/<label>`),
    /// its table.
    pub fn by_arn(&self, arn: &str) -> Option<&Resource> {
        let arn = match arn.split_once("/stream/") {
            Some((table, _)) if arn.starts_with("arn:aws:dynamodb:") => table,
            _ => arn,
        };
        self.resources
            .iter()
            .find(|r| r.arn.as_deref() == Some(arn))
    }

    /// The URL of the queue with the given ARN.
    pub fn queue_url_for_arn(&self, arn: &str) -> Result<String> {
        let resource = self
            .by_arn(arn)
            .filter(|r| r.resource_type == "AWS::SQS::Queue")
            .with_context(|| format!("no queue of the template has ARN {arn}"))?;
        Ok(resource.ref_value.clone())
    }

    fn add(&mut self, resource: Resource, attributes: BTreeMap<String, String>) {
        if self.account_id.is_none()
            && let Some(arn) = &resource.arn
            && let Some(account) = arn.split(':').nth(4).filter(|a| !a.is_empty())
        {
            self.account_id = Some(account.to_string());
        }
        self.attributes
            .insert(resource.logical_id.clone(), attributes);
        self.resources.push(resource);
    }
}

impl ResourceLookup for Provisioned {
    fn ref_value(&self, logical_id: &str) -> Option<String> {
        self.get(logical_id).map(|r| r.ref_value.clone())
    }

    fn get_att(&self, logical_id: &str, attribute: &str) -> Result<String> {
        let attributes = self
            .attributes
            .get(logical_id)
            .with_context(|| format!("{logical_id} is not provisioned"))?;
        attributes.get(attribute).cloned().with_context(|| {
            format!(
                "devstack does not know attribute {attribute} of {logical_id} (known: {:?})",
                attributes.keys().collect::<Vec<_>>()
            )
        })
    }
}

/// SDK clients for the emulator.
#[derive(Debug, Clone)]
pub struct Clients {
    /// SQS.
    pub sqs: aws_sdk_sqs::Client,
    /// SNS.
    pub sns: aws_sdk_sns::Client,
    /// Kinesis.
    pub kinesis: aws_sdk_kinesis::Client,
    /// DynamoDB.
    pub dynamodb: aws_sdk_dynamodb::Client,
}

impl Clients {
    /// Clients for the given SDK configuration.
    pub fn new(config: &SdkConfig) -> Clients {
        Clients {
            sqs: aws_sdk_sqs::Client::new(config),
            sns: aws_sdk_sns::Client::new(config),
            kinesis: aws_sdk_kinesis::Client::new(config),
            dynamodb: aws_sdk_dynamodb::Client::new(config),
        }
    }
}

/// Inputs of provisioning.
pub struct ProvisionInput<'a> {
    /// The parsed template.
    pub template: &'a Template,
    /// Parameter values (defaults + overrides).
    pub parameters: &'a BTreeMap<String, String>,
    /// Prefix of generated physical names.
    pub stack_name: &'a str,
    /// Emulator clients.
    pub clients: &'a Clients,
}

/// Creates every resource of the template in dependency order. Serverless functions are not
/// created in the emulator; they are returned resolved, to be run locally.
pub async fn provision(input: ProvisionInput<'_>) -> Result<(Provisioned, Vec<ResolvedFunction>)> {
    let ProvisionInput {
        template,
        parameters,
        stack_name,
        clients,
    } = input;
    for resource in &template.resources {
        let t = resource.resource_type.as_str();
        let known = EMULATOR_TYPES.contains(&t)
            || IGNORED_TYPES.contains(&t)
            || t == "AWS::Serverless::Function"
            || t == "AWS::Serverless::HttpApi";
        if !known {
            bail!(
                "resource type {t} ({}) is not supported by devstack",
                resource.logical_id
            );
        }
    }

    let order = template.creation_order(|r| EMULATOR_TYPES.contains(&r.resource_type.as_str()))?;
    let mut provisioned = Provisioned::default();
    let mut functions = Vec::new();
    for resource in order {
        let account_id = provisioned.account_id().to_string();
        let resolver = Resolver {
            parameters,
            conditions: &template.conditions,
            stack_name,
            account_id: &account_id,
            resources: &provisioned,
        };
        if !resolver.resource_exists(resource)? {
            tracing::debug!(logical_id = %resource.logical_id, "resource condition is false; not created");
            continue;
        }
        let properties = resolver.resolve_properties(resource)?;
        let ctx = Ctx {
            resource,
            properties: &properties,
            stack_name,
            account_id: &account_id,
        };
        let (created, attributes) = match resource.resource_type.as_str() {
            "AWS::Kinesis::Stream" => create_stream(&ctx, &clients.kinesis).await,
            "AWS::SQS::Queue" => create_queue(&ctx, &clients.sqs).await,
            "AWS::SNS::Topic" => create_topic(&ctx, &clients.sns).await,
            "AWS::SNS::Subscription" => create_subscription(&ctx, &clients.sns).await,
            "AWS::DynamoDB::Table" => create_table(&ctx, &clients.dynamodb).await,
            "AWS::Serverless::Function" => {
                let (created, attributes) = local_function(&ctx)?;
                functions.push(ResolvedFunction {
                    logical_id: resource.logical_id.clone(),
                    name: created.ref_value.clone(),
                    arn: created.arn.clone().unwrap_or_default(),
                    properties: properties.clone(),
                });
                Ok((created, attributes))
            }
            "AWS::Serverless::HttpApi" => Ok(http_api(&ctx)),
            other => {
                tracing::debug!(logical_id = %resource.logical_id, resource_type = other, "resource has no local equivalent; skipped");
                Ok((
                    ctx.resource(ctx.physical_name(None)?, None, None),
                    BTreeMap::new(),
                ))
            }
        }
        .with_context(|| {
            format!(
                "provisioning {} ({})",
                resource.logical_id, resource.resource_type
            )
        })?;
        tracing::debug!(logical_id = %created.logical_id, ref_value = %created.ref_value, "provisioned");
        provisioned.add(created, attributes);
    }
    tracing::info!(
        resources = provisioned.resources.len(),
        functions = functions.len(),
        account_id = provisioned.account_id(),
        "provisioned the template in the emulator"
    );
    Ok((provisioned, functions))
}

/// What a resource creator needs.
struct Ctx<'a> {
    resource: &'a TemplateResource,
    properties: &'a Value,
    stack_name: &'a str,
    account_id: &'a str,
}

impl Ctx<'_> {
    fn id(&self) -> &str {
        &self.resource.logical_id
    }

    /// A property as a string, if present.
    fn string(&self, key: &str) -> Result<Option<String>> {
        self.properties
            .get(key)
            .map(scalar_to_string)
            .transpose()
            .with_context(|| format!("property {key}"))
    }

    /// A property as a boolean (accepts true/"true").
    fn bool(&self, key: &str) -> Result<Option<bool>> {
        match self.properties.get(key) {
            None => Ok(None),
            Some(Value::Bool(b)) => Ok(Some(*b)),
            Some(Value::String(s)) if s.eq_ignore_ascii_case("true") => Ok(Some(true)),
            Some(Value::String(s)) if s.eq_ignore_ascii_case("false") => Ok(Some(false)),
            Some(other) => bail!("property {key} must be a boolean, found {other}"),
        }
    }

    /// The explicit name from `name_property`, or `{stack_name}-{LogicalId}`.
    fn physical_name(&self, name_property: Option<&str>) -> Result<String> {
        if let Some(key) = name_property
            && let Some(name) = self.string(key)?
        {
            return Ok(name);
        }
        Ok(format!("{}-{}", self.stack_name, self.id()))
    }

    fn resource(&self, ref_value: String, arn: Option<String>, name: Option<String>) -> Resource {
        Resource {
            logical_id: self.id().to_string(),
            resource_type: self.resource.resource_type.clone(),
            ref_value,
            arn,
            name,
        }
    }

    fn log_skipped(&self, keys: &[&str]) {
        for key in keys {
            if self.properties.get(*key).is_some() {
                tracing::debug!(logical_id = %self.id(), property = key, "property not applied locally");
            }
        }
    }
}

/// Renders a value as an attribute string: objects and arrays as JSON, scalars as text.
fn attribute_string(value: &Value) -> Result<String> {
    match value {
        Value::Object(_) | Value::Array(_) => Ok(value.to_string()),
        other => scalar_to_string(other),
    }
}

fn check_length(kind: &str, name: &str, max: usize) -> Result<()> {
    if name.len() > max {
        bail!("{kind} name {name:?} is longer than {max} characters");
    }
    Ok(())
}

async fn create_stream(
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

async fn create_queue(
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

async fn create_topic(
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

async fn create_subscription(
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

async fn create_table(
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

fn local_function(ctx: &Ctx<'_>) -> Result<(Resource, BTreeMap<String, String>)> {
    let name = ctx.physical_name(Some("FunctionName"))?;
    check_length("function", &name, 64)?;
    let arn = format!("arn:aws:lambda:{REGION}:{}:function:{name}", ctx.account_id);
    let attributes = BTreeMap::from([("Arn".to_string(), arn.clone())]);
    Ok((
        ctx.resource(name.clone(), Some(arn), Some(name)),
        attributes,
    ))
}

fn http_api(ctx: &Ctx<'_>) -> (Resource, BTreeMap<String, String>) {
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
