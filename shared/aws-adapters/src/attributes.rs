//! The one helper module of the adapters: DynamoDB attribute values (the [`Item`] map,
//! building `S` and `N` values, reading string and number attributes), the string message
//! attributes of SNS and SQS, the `AWSTraceHeader` system attribute of SQS sends, the
//! conditional-check test of a DynamoDB write, and the text of an SDK error.

use std::collections::HashMap;
use std::str::FromStr;

use aws_sdk_dynamodb::error::{ProvideErrorMetadata, SdkError};
use aws_sdk_dynamodb::types::AttributeValue;

use application::ports::PortError;

/// A DynamoDB item: attribute name to value.
pub(crate) type Item = HashMap<String, AttributeValue>;

/// A string (`S`) attribute value.
pub(crate) fn s(value: &str) -> AttributeValue {
    AttributeValue::S(value.to_string())
}

/// A number (`N`) attribute value.
pub(crate) fn n(value: impl ToString) -> AttributeValue {
    AttributeValue::N(value.to_string())
}

/// The string attribute `name` of `item`, if it is there and is a string.
pub(crate) fn string_attr<'a>(item: &'a Item, name: &str) -> Option<&'a str> {
    item.get(name)
        .and_then(|v| v.as_s().ok())
        .map(String::as_str)
}

/// The number attribute `name` of `item`, if it is there and parses as a `T`.
pub(crate) fn number_attr<T: FromStr>(item: &Item, name: &str) -> Option<T> {
    item.get(name).and_then(|v| number(v).ok())
}

/// The number in `value`; otherwise the text `expected a number, got {value:?}`.
pub(crate) fn number<T: FromStr>(value: &AttributeValue) -> Result<T, String> {
    value
        .as_n()
        .ok()
        .and_then(|v| v.parse().ok())
        .ok_or_else(|| format!("expected a number, got {value:?}"))
}

/// Whether a DynamoDB write failed its condition expression
/// (`ConditionalCheckFailedException`).
pub(crate) fn conditional_failed<E: ProvideErrorMetadata, R>(err: &SdkError<E, R>) -> bool {
    err.as_service_error()
        .and_then(|e| e.code())
        .is_some_and(|code| code == "ConditionalCheckFailedException")
}

/// Builds a `String` message attribute of SNS or SQS (each has its own type).
macro_rules! string_attribute {
    ($name:ident, $attribute:ty) => {
        /// A `String` message attribute holding `value`.
        pub(crate) fn $name(value: &str) -> Result<$attribute, PortError> {
            <$attribute>::builder()
                .data_type("String")
                .string_value(value)
                .build()
                .map_err(|e| PortError::backend("building a message attribute", e))
        }
    };
}

string_attribute!(sns_attribute, aws_sdk_sns::types::MessageAttributeValue);
string_attribute!(sqs_attribute, aws_sdk_sqs::types::MessageAttributeValue);

/// The environment variable lambda_runtime sets to the current invocation's X-Ray trace
/// header (`Root=...;Parent=...;Sampled=...`) before calling the handler; unset when the
/// invocation is not traced.
pub(crate) const TRACE_ID_ENV: &str = "_X_AMZN_TRACE_ID";

/// The SQS message system attributes of a send: `AWSTraceHeader` = the invocation's trace
/// header ([`TRACE_ID_ENV`]), so the function that receives the message joins the same
/// trace (Lambda's SQS poller uses it as that invocation's trace header). None when the
/// invocation is not traced.
pub(crate) fn sqs_trace_attributes() -> Option<
    HashMap<
        aws_sdk_sqs::types::MessageSystemAttributeNameForSends,
        aws_sdk_sqs::types::MessageSystemAttributeValue,
    >,
> {
    trace_attributes_from(std::env::var(TRACE_ID_ENV).ok().as_deref())
}

fn trace_attributes_from(
    trace_header: Option<&str>,
) -> Option<
    HashMap<
        aws_sdk_sqs::types::MessageSystemAttributeNameForSends,
        aws_sdk_sqs::types::MessageSystemAttributeValue,
    >,
> {
    use aws_sdk_sqs::types::{MessageSystemAttributeNameForSends, MessageSystemAttributeValue};
    let header = trace_header.map(str::trim).filter(|h| !h.is_empty())?;
    let value = MessageSystemAttributeValue::builder()
        .data_type("String")
        .string_value(header)
        .build()
        .ok()?;
    Some(HashMap::from([(
        MessageSystemAttributeNameForSends::AwsTraceHeader,
        value,
    )]))
}

/// Text of an SDK error with its service error details (the default `Display` says only
/// "service error"). The SDK error type is shared by every `aws-sdk-*` crate.
pub(crate) fn describe<E, R>(err: &SdkError<E, R>) -> String
where
    E: std::error::Error + 'static,
    R: std::fmt::Debug,
{
    use std::error::Error;
    let mut text = err.to_string();
    let mut source = err.source();
    while let Some(s) = source {
        text.push_str(": ");
        text.push_str(&s.to_string());
        source = s.source();
    }
    text
}

/// The backend error of a failed SDK call: `{what}: {describe(err)}`, where `what` names
/// the call (`PutItem {table}`, `SQS SendMessage`, ...).
pub(crate) fn sdk_failure<E, R>(what: &str, err: &SdkError<E, R>) -> PortError
where
    E: std::error::Error + 'static,
    R: std::fmt::Debug,
{
    PortError::Backend(format!("{what}: {}", describe(err)))
}

#[cfg(test)]
mod tests {
    use aws_sdk_sqs::types::MessageSystemAttributeNameForSends;

    use super::trace_attributes_from;

    #[test]
    fn the_trace_header_becomes_the_aws_trace_header_attribute() {
        let header = "Root=1-5759e988-bd862e3fe1be46a994272793;Parent=53995c3f42cd8ad8;Sampled=1";
        let attributes = trace_attributes_from(Some(header)).expect("a traced invocation");
        let value = &attributes[&MessageSystemAttributeNameForSends::AwsTraceHeader];
        assert_eq!(value.string_value(), Some(header));
        assert_eq!(value.data_type(), "String");
        assert_eq!(attributes.len(), 1);
        assert!(trace_attributes_from(None).is_none());
        assert!(trace_attributes_from(Some("  ")).is_none());
    }
}
