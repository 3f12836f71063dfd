//! The emulator's request log: every AWS API request the functions (and anything else)
//! made to moto while recording, read back as (service, operation). Tests use it to prove
//! that a refused request wrote nothing, and to count requests (moto's recorder,
//! `/moto-api/recorder/*`; moto only: LocalStack has no recorder).

use anyhow::{Context, Result, bail};
use base64::Engine;
use serde_json::Value;

use crate::Stack;

/// One recorded AWS API request.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct AwsRequest {
    /// The SigV4 signing name: `dynamodb`, `kinesis`, `sqs`, `sns`, `monitoring`, ...
    pub service: String,
    /// The API operation: `PutItem`, `PutRecords`, `SendMessage`, `Publish`, ...
    pub operation: String,
    /// The DynamoDB table a single-table request names (`TableName` of its JSON body), if
    /// any: lets a test count the writes of one table.
    pub table: Option<String>,
}

impl AwsRequest {
    /// Whether the operation changes state (puts, updates, deletes, sends, publishes).
    pub fn is_write(&self) -> bool {
        const READS: &[&str] = &[
            "Get",
            "List",
            "Describe",
            "Query",
            "Scan",
            "BatchGet",
            "Receive",
            "TransactGet",
        ];
        !READS
            .iter()
            .any(|prefix| self.operation.starts_with(prefix))
    }
}

async fn recorder(stack: &Stack, action: &str) -> Result<String> {
    recorder_at(stack.endpoint_url(), action).await
}

async fn recorder_at(endpoint: &str, action: &str) -> Result<String> {
    let url = format!("{endpoint}/moto-api/recorder/{action}");
    let client = reqwest::Client::new();
    let request = if action == "download-recording" {
        client.get(&url)
    } else {
        client.post(&url)
    };
    let response = request
        .send()
        .await
        .with_context(|| format!("moto recorder {action} (the request log needs moto)"))?;
    if !response.status().is_success() {
        bail!("moto recorder {action}: HTTP {}", response.status());
    }
    Ok(response.text().await?)
}

/// Empties the log and records from now on.
pub async fn start(stack: &Stack) -> Result<()> {
    recorder(stack, "reset-recording").await?;
    recorder(stack, "start-recording").await?;
    Ok(())
}

/// Empties the log (recording goes on).
pub async fn reset(stack: &Stack) -> Result<()> {
    recorder(stack, "reset-recording").await.map(drop)
}

/// The requests recorded since [`start`] or [`reset`], in order.
pub async fn requests(stack: &Stack) -> Result<Vec<AwsRequest>> {
    let text = recorder(stack, "download-recording").await?;
    // One JSON object per request; not always one per line (moto may write two on one
    // line while requests come in concurrently), so read them as a stream of values.
    serde_json::Deserializer::from_str(&text)
        .into_iter::<Value>()
        .map(|entry| Ok(parse(&entry.context("a recorded request")?)))
        .collect()
}

// ---- issue 15 part 1 (event-store): the items each DynamoDB write touched, so that a test
// can count the writes per partition key (hot keys). GSI writes are not requests: they are
// not here (devstack/tests/template_hot_keys.rs checks those statically).

/// One item written by a recorded DynamoDB request.
#[derive(Debug, Clone, PartialEq)]
pub struct ItemWrite {
    /// The operation: `PutItem`, `UpdateItem`, `DeleteItem`, `TransactWriteItems`,
    /// `BatchWriteItem`.
    pub operation: String,
    pub table: String,
    /// The item (a put) or its key (an update or delete), in DynamoDB JSON
    /// (`{"streamId": {"S": "alert-1"}, ...}`).
    pub item: Value,
}

impl ItemWrite {
    /// The string or number value of one attribute of the item (e.g. its partition key).
    pub fn attribute(&self, name: &str) -> Option<String> {
        let value = self.item.get(name)?;
        value
            .get("S")
            .or_else(|| value.get("N"))
            .and_then(Value::as_str)
            .map(str::to_string)
    }
}

/// Empties the log of the emulator at `endpoint` and records from now on (for tests that
/// run the emulator without a [`Stack`]).
pub async fn start_at(endpoint: &str) -> Result<()> {
    recorder_at(endpoint, "reset-recording").await?;
    recorder_at(endpoint, "start-recording").await?;
    Ok(())
}

/// Every item written since [`start`] (one entry per item: a transaction of 5 puts is 5;
/// condition checks write nothing and are left out).
pub async fn item_writes(stack: &Stack) -> Result<Vec<ItemWrite>> {
    item_writes_at(stack.endpoint_url()).await
}

/// [`item_writes`] of the emulator at `endpoint`.
pub async fn item_writes_at(endpoint: &str) -> Result<Vec<ItemWrite>> {
    let text = recorder_at(endpoint, "download-recording").await?;
    let mut writes = Vec::new();
    for entry in serde_json::Deserializer::from_str(&text).into_iter::<Value>() {
        writes.extend(written_items(&entry.context("a recorded request")?));
    }
    Ok(writes)
}

/// The items a recorded DynamoDB request writes.
fn written_items(entry: &Value) -> Vec<ItemWrite> {
    let request = parse(entry);
    if request.service != "dynamodb" {
        return Vec::new();
    }
    let Ok(body) = serde_json::from_str::<Value>(&body_text(entry)) else {
        return Vec::new();
    };
    let operation = request.operation.clone();
    let write = |table: &Value, item: &Value| {
        table.as_str().map(|table| ItemWrite {
            operation: operation.clone(),
            table: table.to_string(),
            item: item.clone(),
        })
    };
    let mut out = Vec::new();
    match request.operation.as_str() {
        "PutItem" => out.extend(write(&body["TableName"], &body["Item"])),
        "UpdateItem" | "DeleteItem" => out.extend(write(&body["TableName"], &body["Key"])),
        "TransactWriteItems" => {
            for action in body["TransactItems"].as_array().into_iter().flatten() {
                if let Some(put) = action.get("Put") {
                    out.extend(write(&put["TableName"], &put["Item"]));
                }
                for kind in ["Update", "Delete"] {
                    if let Some(change) = action.get(kind) {
                        out.extend(write(&change["TableName"], &change["Key"]));
                    }
                }
            }
        }
        "BatchWriteItem" => {
            for (table, requests) in body["RequestItems"].as_object().into_iter().flatten() {
                for r in requests.as_array().into_iter().flatten() {
                    let item = r["PutRequest"]
                        .get("Item")
                        .or_else(|| r["DeleteRequest"].get("Key"));
                    if let Some(item) = item {
                        out.extend(write(&Value::String(table.clone()), item));
                    }
                }
            }
        }
        _ => {}
    }
    out
}

// ---- end of issue 15 part 1

/// The (service, operation) of a recorded request (see [`name_request`]).
fn parse(entry: &Value) -> AwsRequest {
    let header = |name: &str| {
        entry["headers"].as_object().and_then(|headers| {
            headers
                .iter()
                .find(|(key, _)| key.eq_ignore_ascii_case(name))
                .and_then(|(_, value)| value.as_str())
        })
    };
    name_request(
        header("Authorization"),
        header("X-Amz-Target"),
        entry["method"].as_str().unwrap_or("?"),
        entry["url"].as_str().unwrap_or("?"),
        &body_text(entry),
    )
}

/// Names an AWS API request from its `Authorization` header (the SigV4 credential scope
/// names the service), its `X-Amz-Target` header (the JSON protocols name the operation
/// there: `DynamoDB_20120810.PutItem`, `AmazonSQS.SendMessage`), its URL and its body (the
/// query protocol, SNS and CloudWatch, names it in the form body's or the URL's `Action`).
/// Also used by the counting proxy (`crate::proxy`).
pub fn name_request(
    authorization: Option<&str>,
    target: Option<&str>,
    method: &str,
    url: &str,
    body: &str,
) -> AwsRequest {
    let service = authorization
        .and_then(|auth| auth.split("Credential=").nth(1))
        .and_then(|credential| credential.split('/').nth(3))
        .unwrap_or("unknown")
        .to_string();
    let operation = target
        .and_then(|target| target.rsplit('.').next())
        .map(str::to_string)
        .or_else(|| {
            let query = url.split_once('?').map(|(_, q)| q).unwrap_or_default();
            action(body).or_else(|| action(query))
        })
        .unwrap_or_else(|| format!("{method} {url}"));
    let table = serde_json::from_str::<Value>(body)
        .ok()
        .and_then(|body| tables_named(&body));
    AwsRequest {
        service,
        operation,
        table,
    }
}

/// The DynamoDB table(s) a request body names: `TableName`, or for `TransactWriteItems` /
/// `TransactGetItems` / `BatchWriteItem` / `BatchGetItem` the tables of their items, sorted
/// and joined with `+`.
fn tables_named(body: &Value) -> Option<String> {
    if let Some(table) = body["TableName"].as_str() {
        return Some(table.to_string());
    }
    let mut tables: Vec<String> = Vec::new();
    if let Some(items) = body["TransactItems"].as_array() {
        for item in items {
            if let Some(action) = item.as_object().and_then(|o| o.values().next())
                && let Some(table) = action["TableName"].as_str()
            {
                tables.push(table.to_string());
            }
        }
    }
    if let Some(items) = body["RequestItems"].as_object() {
        tables.extend(items.keys().cloned());
    }
    tables.sort();
    tables.dedup();
    (!tables.is_empty()).then(|| tables.join("+"))
}

/// The request body as text (moto records it base64-encoded when `body_encoded`).
fn body_text(entry: &Value) -> String {
    let body = entry["body"].as_str().unwrap_or_default();
    if entry["body_encoded"].as_bool() == Some(true) {
        base64::engine::general_purpose::STANDARD
            .decode(body)
            .ok()
            .and_then(|bytes| String::from_utf8(bytes).ok())
            .unwrap_or_default()
    } else {
        body.to_string()
    }
}

/// The `Action` parameter of a form-encoded string.
fn action(form: &str) -> Option<String> {
    form.split('&')
        .find_map(|pair| pair.strip_prefix("Action="))
        .map(str::to_string)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn json_and_query_protocol_requests_are_named() {
        let put = json!({
            "headers": {
                "Authorization": "AWS4-HMAC-SHA256 Credential=test/20261130/us-east-1/dynamodb/aws4_request, SignedHeaders=host, Signature=x",
                "X-Amz-Target": "DynamoDB_20120810.PutItem"
            },
            "method": "POST", "url": "http://127.0.0.1:5000/", "body": "{\"TableName\": \"t-vitals\"}", "body_encoded": false
        });
        let publish = json!({
            "headers": {"authorization": "AWS4-HMAC-SHA256 Credential=test/20261130/us-east-1/sns/aws4_request"},
            "method": "POST", "url": "http://127.0.0.1:5000/",
            "body": base64::engine::general_purpose::STANDARD.encode("Action=Publish&Version=2010-03-31"),
            "body_encoded": true
        });
        let query = json!({
            "headers": {"Authorization": "AWS4-HMAC-SHA256 Credential=test/20261130/us-east-1/dynamodb/aws4_request"},
            "method": "POST", "url": "http://127.0.0.1:5000/?Action=Query", "body": "", "body_encoded": false
        });
        assert_eq!(
            parse(&put),
            AwsRequest {
                service: "dynamodb".into(),
                operation: "PutItem".into(),
                table: Some("t-vitals".into()),
            }
        );
        let transact = name_request(
            None,
            Some("DynamoDB_20120810.TransactWriteItems"),
            "POST",
            "/",
            r#"{"TransactItems":[{"Put":{"TableName":"t-events"}},{"Update":{"TableName":"t-all"}},{"Put":{"TableName":"t-events"}}]}"#,
        );
        assert_eq!(transact.table.as_deref(), Some("t-all+t-events"));
        assert_eq!(parse(&publish).operation, "Publish");
        assert_eq!(parse(&publish).service, "sns");
        assert!(parse(&put).is_write() && parse(&publish).is_write());
        assert!(!parse(&query).is_write());
    }

    #[test]
    fn a_transaction_writes_its_puts_and_updates_not_its_checks() {
        let body = json!({"TransactItems": [
            {"ConditionCheck": {"TableName": "t", "Key": {"streamId": {"S": "s"}, "version": {"N": "1"}}}},
            {"Put": {"TableName": "t", "Item": {"streamId": {"S": "s"}, "version": {"N": "2"}, "x": {"S": "y"}}}},
            {"Update": {"TableName": "t", "Key": {"streamId": {"S": "$all"}, "version": {"N": "0"}}}},
        ]});
        let entry = json!({
            "headers": {
                "Authorization": "AWS4-HMAC-SHA256 Credential=test/20261130/us-east-1/dynamodb/aws4_request",
                "X-Amz-Target": "DynamoDB_20120810.TransactWriteItems"
            },
            "method": "POST", "url": "http://127.0.0.1:5000/", "body": body.to_string(), "body_encoded": false
        });
        let writes = written_items(&entry);
        let keys: Vec<_> = writes
            .iter()
            .map(|w| {
                (
                    w.table.as_str(),
                    w.attribute("streamId"),
                    w.attribute("version"),
                )
            })
            .collect();
        assert_eq!(
            keys,
            [
                ("t", Some("s".to_string()), Some("2".to_string())),
                ("t", Some("$all".to_string()), Some("0".to_string()))
            ]
        );
    }
}
