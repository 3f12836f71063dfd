//! [`ReadingSink`] on Kinesis: the readings stream.

use async_trait::async_trait;
use aws_sdk_kinesis::Client;
use aws_sdk_kinesis::primitives::Blob;
use aws_sdk_kinesis::types::PutRecordsRequestEntry;
use chrono::{DateTime, Utc};

use application::ports::{PortError, ReadingSink, StreamRecord};
use application::retry::{RetryPolicy, put_all};

use crate::attributes::sdk_failure;

/// Puts readings on a Kinesis stream with `PutRecords`, retrying only the records the
/// stream reports as failed (throttling, internal errors) with backoff, within the
/// invocation's deadline (`application::retry::put_all`).
pub struct KinesisSink {
    client: Client,
    stream_name: String,
    retry: RetryPolicy,
}

impl KinesisSink {
    pub fn new(config: &aws_config::SdkConfig, stream_name: String, retry: RetryPolicy) -> Self {
        KinesisSink {
            client: Client::new(config),
            stream_name,
            retry,
        }
    }
}

#[async_trait]
impl ReadingSink for KinesisSink {
    async fn put(
        &self,
        records: Vec<StreamRecord>,
        deadline: Option<DateTime<Utc>>,
    ) -> Result<(), PortError> {
        put_all(records, &self.retry, deadline, |batch| async move {
            let entries = batch
                .into_iter()
                .map(|r| {
                    PutRecordsRequestEntry::builder()
                        .partition_key(r.partition_key)
                        .data(Blob::new(r.data))
                        .build()
                        .map_err(|e| PortError::backend("building a PutRecords entry", e))
                })
                .collect::<Result<Vec<_>, _>>()?;
            let out = self
                .client
                .put_records()
                .stream_name(&self.stream_name)
                .set_records(Some(entries))
                .send()
                .await
                .map_err(|e| sdk_failure("PutRecords", &e))?;
            Ok(out
                .records()
                .iter()
                .map(|r| {
                    r.error_code()
                        .map(|code| format!("{code}: {}", r.error_message().unwrap_or_default()))
                })
                .collect())
        })
        .await
    }
}
