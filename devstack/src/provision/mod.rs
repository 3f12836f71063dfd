//! Creating the template's resources in the emulator through the AWS APIs, in dependency
//! order; one module per service.
//!
//! - `context`: what every creator gets (resolved properties, physical names);
//! - `kinesis`, `sqs`, `sns`, `dynamodb`: the resources created in the emulator;
//! - `archive`: the archive bucket (created) and the Firehose streams and pipe (named only);
//! - `serverless`: functions and HTTP APIs, which are not created in the emulator (devstack
//!   runs them itself) but get names, ARNs and ids.

use std::collections::{BTreeMap, HashMap};

use anyhow::{Context, Result, bail};
use aws_config::SdkConfig;
use serde_json::Value;

use crate::template::{DEFAULT_ACCOUNT_ID, Resolver, ResourceLookup, Template};

mod archive;
mod context;
mod dynamodb;
mod kinesis;
mod serverless;
mod sns;
mod sqs;

use context::Ctx;
pub use serverless::api_id_for;

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
    // X-Ray: devstack gives each invocation a trace header but runs no X-Ray
    // (docs/observability.md).
    "AWS::XRay::ResourcePolicy",
    // Identity: devstack's local token issuer plays the user pool (crate::auth).
    "AWS::Cognito::UserPool",
    "AWS::Cognito::UserPoolGroup",
    "AWS::Cognito::UserPoolDomain",
    "AWS::Cognito::UserPoolResourceServer",
    "AWS::Cognito::UserPoolClient",
    // issue 14: the dashboard's CDN; devstack serves web/ itself (http_api::web). Their
    // attributes are placeholders (placeholder_attributes).
    "AWS::CloudFront::Distribution",
    "AWS::CloudFront::OriginAccessControl",
    "AWS::CloudFront::ResponseHeadersPolicy",
    // The archive's policy and SQL layer (issue 14): the emulator has no Glue or Athena
    // here; the archive is queried locally with DuckDB (docs/archive.md).
    "AWS::S3::BucketPolicy",
    "AWS::Glue::Database",
    "AWS::Glue::Table",
    "AWS::Athena::WorkGroup",
];

/// `Fn::GetAtt` values of a skipped resource that other resources refer to (the
/// distribution's domain name and ids), so their properties resolve.
fn placeholder_attributes(resource_type: &str, physical: &str) -> BTreeMap<String, String> {
    let physical = physical.to_lowercase();
    let pairs: Vec<(&str, String)> = match resource_type {
        "AWS::CloudFront::Distribution" => vec![
            ("DomainName", format!("{physical}.cloudfront.localhost")),
            ("Id", physical.clone()),
        ],
        "AWS::CloudFront::OriginAccessControl" | "AWS::CloudFront::ResponseHeadersPolicy" => {
            vec![("Id", physical)]
        }
        _ => Vec::new(),
    };
    pairs
        .into_iter()
        .map(|(name, value)| (name.to_string(), value))
        .collect()
}

/// Resource types created in the emulator.
const EMULATOR_TYPES: &[&str] = &[
    "AWS::Kinesis::Stream",
    "AWS::SQS::Queue",
    "AWS::SNS::Topic",
    "AWS::SNS::Subscription",
    "AWS::DynamoDB::Table",
    "AWS::S3::Bucket",
];

/// Resource types devstack plays itself (named here, delivered by `crate::archive`).
const EMULATED_TYPES: &[&str] = &["AWS::KinesisFirehose::DeliveryStream", "AWS::Pipes::Pipe"];

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
    /// S3 (plain HTTP, `crate::s3`).
    pub s3: crate::s3::S3,
}

impl Clients {
    /// Clients for the given SDK configuration (S3 at its endpoint URL).
    pub fn new(config: &SdkConfig) -> Clients {
        Clients {
            s3: crate::s3::S3::new(config.endpoint_url().unwrap_or("http://127.0.0.1:5000")),
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
            || EMULATED_TYPES.contains(&t)
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
            "AWS::Kinesis::Stream" => kinesis::create_stream(&ctx, &clients.kinesis).await,
            "AWS::SQS::Queue" => sqs::create_queue(&ctx, &clients.sqs).await,
            "AWS::SNS::Topic" => sns::create_topic(&ctx, &clients.sns).await,
            "AWS::SNS::Subscription" => sns::create_subscription(&ctx, &clients.sns).await,
            "AWS::DynamoDB::Table" => dynamodb::create_table(&ctx, &clients.dynamodb).await,
            "AWS::S3::Bucket" => archive::create_bucket(&ctx, &clients.s3).await,
            t if EMULATED_TYPES.contains(&t) => archive::emulated(&ctx),
            "AWS::Serverless::Function" => {
                let (created, attributes) = serverless::local_function(&ctx)?;
                functions.push(ResolvedFunction {
                    logical_id: resource.logical_id.clone(),
                    name: created.ref_value.clone(),
                    arn: created.arn.clone().unwrap_or_default(),
                    properties: properties.clone(),
                });
                Ok((created, attributes))
            }
            "AWS::Serverless::HttpApi" => Ok(serverless::http_api(&ctx)),
            // Not created, but the archive's streams and pipe name their roles' ARNs.
            "AWS::IAM::Role" => {
                let name = ctx.physical_name(Some("RoleName"))?;
                let arn = format!("arn:aws:iam::{account_id}:role/{name}");
                Ok((
                    ctx.resource(name.clone(), Some(arn.clone()), Some(name)),
                    BTreeMap::from([("Arn".to_string(), arn)]),
                ))
            }
            other => {
                tracing::debug!(logical_id = %resource.logical_id, resource_type = other, "resource has no local equivalent; skipped");
                let physical = ctx.physical_name(None)?;
                let attributes = placeholder_attributes(other, &physical);
                Ok((ctx.resource(physical, None, None), attributes))
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
