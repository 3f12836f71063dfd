//! A per-record idempotency guard, modelled on Powertools for AWS Lambda.
//!
//! [`Idempotency::run`] takes a record's JSON payload and the side effect to perform:
//! - the key is a chosen part of the payload (a JSON pointer), hashed (SHA-256), prefixed
//!   with the function name;
//! - a record is created `IN_PROGRESS` with a conditional write, so only one invocation
//!   runs the side effect; a concurrent one gets [`IdempotencyError::AlreadyInProgress`];
//! - the in-progress record expires at the Lambda's deadline (`Context::deadline`), so an
//!   invocation that timed out does not block the retry;
//! - on success the record becomes `COMPLETED` with the result, kept for `expires_after`;
//!   a repeat gets the stored result back without running the side effect;
//! - a repeat whose payload hash (of another chosen part) differs is
//!   [`IdempotencyError::PayloadMismatch`];
//! - on failure the record is deleted so a retry can run.
//!
//! A record past its expiry is `EXPIRED` and treated as absent (DynamoDB's TTL removes it
//! later). Stores: `aws_adapters::DynamoIdempotencyStore`, `testkit::MemoryIdempotencyStore`.

use std::future::Future;
use std::sync::Arc;

use async_trait::async_trait;
use chrono::{DateTime, Duration, Utc};
use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_json::Value;
use sha2::{Digest, Sha256};

use crate::ports::PortError;

/// The state of a record at a given time.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Status {
    InProgress,
    Completed,
    Expired,
}

impl Status {
    pub fn as_str(self) -> &'static str {
        match self {
            Status::InProgress => "INPROGRESS",
            Status::Completed => "COMPLETED",
            Status::Expired => "EXPIRED",
        }
    }

    pub fn parse(text: &str) -> Option<Status> {
        match text {
            "INPROGRESS" => Some(Status::InProgress),
            "COMPLETED" => Some(Status::Completed),
            "EXPIRED" => Some(Status::Expired),
            _ => None,
        }
    }
}

/// One idempotency record as stored.
#[derive(Debug, Clone, PartialEq)]
pub struct Record {
    /// `<function>#<sha256 of the key part>`.
    pub key: String,
    /// The stored status (`InProgress` or `Completed`); see [`Record::status_at`].
    pub status: Status,
    /// When the record expires (epoch seconds; the table's TTL attribute).
    pub expires_at: i64,
    /// While in progress: when the invocation running it is over (epoch milliseconds).
    pub in_progress_expires_at: Option<i64>,
    /// SHA-256 of the validated part of the payload.
    pub payload_hash: String,
    /// The side effect's result as JSON, once completed.
    pub result: Option<String>,
}

impl Record {
    /// The status as seen at `now`: a record past its expiry, or an in-progress one whose
    /// invocation's deadline has passed, is `Expired`.
    pub fn status_at(&self, now: DateTime<Utc>) -> Status {
        if self.expires_at < now.timestamp() {
            return Status::Expired;
        }
        if self.status == Status::InProgress
            && self
                .in_progress_expires_at
                .is_some_and(|t| in_progress_expired(t, now))
        {
            return Status::Expired;
        }
        self.status
    }
}

/// Whether an in-progress claim held until `until_ms` (epoch milliseconds) is over at
/// `now`: the invocation that made it has ended (finished, timed out or crashed), so a retry
/// may take it over. The same rule for idempotency records and the saga's step ledger
/// (`ports::StepLedger`), whose DynamoDB adapters store it as `in_progress_expiration`.
pub fn in_progress_expired(until_ms: i64, now: DateTime<Utc>) -> bool {
    until_ms < now.timestamp_millis()
}

/// Where records live (a DynamoDB table, or memory in tests).
#[async_trait]
pub trait IdempotencyStore: Send + Sync {
    /// Creates `record` (in progress) unless a record with its key exists that is not
    /// expired at `now`. Returns `None` when created, or the existing record.
    async fn put_in_progress(
        &self,
        record: &Record,
        now: DateTime<Utc>,
    ) -> Result<Option<Record>, PortError>;
    /// Marks the record completed with `result`, expiring at `expires_at` (epoch seconds).
    async fn complete(&self, key: &str, result: &str, expires_at: i64) -> Result<(), PortError>;
    /// Deletes the record (after a failure, so a retry can run).
    async fn delete(&self, key: &str) -> Result<(), PortError>;
    /// Reads the record (strongly consistent).
    async fn get(&self, key: &str) -> Result<Option<Record>, PortError>;
}

/// What a guard hashes and how long it remembers.
#[derive(Debug, Clone)]
pub struct Config {
    /// Prefix of every key (the function name), so functions sharing a table never collide.
    pub function: String,
    /// JSON pointer to the part of the payload that identifies the record ("" = all of it).
    pub key_pointer: String,
    /// JSON pointer to the part whose hash must match on a repeat ("" = all of it).
    pub validation_pointer: String,
    /// How long a completed record is kept (and repeats recognised).
    pub expires_after: Duration,
}

impl Config {
    pub fn new(function: &str, key_pointer: &str) -> Config {
        Config {
            function: function.to_string(),
            key_pointer: key_pointer.to_string(),
            validation_pointer: String::new(),
            expires_after: Duration::hours(1),
        }
    }

    pub fn validate(mut self, pointer: &str) -> Config {
        self.validation_pointer = pointer.to_string();
        self
    }

    pub fn expires_after(mut self, duration: Duration) -> Config {
        self.expires_after = duration;
        self
    }
}

/// Why a guarded call did not return a result.
#[derive(Debug, thiserror::Error)]
pub enum IdempotencyError<E> {
    /// The payload has nothing at the key pointer: the record cannot be guarded.
    #[error("the payload has no idempotency key at {pointer:?}")]
    MissingKey { pointer: String },
    /// Another invocation is running this record now (retry later).
    #[error("record {key} is already being processed by another invocation")]
    AlreadyInProgress { key: String },
    /// The same key was seen with a different payload.
    #[error("record {key} was seen before with a different payload (hash {stored}, now {actual})")]
    PayloadMismatch {
        key: String,
        stored: String,
        actual: String,
    },
    /// The store failed.
    #[error("idempotency store: {0}")]
    Store(PortError),
    /// The stored result or the new one does not (de)serialise.
    #[error("idempotency result of {key}: {reason}")]
    Result { key: String, reason: String },
    /// The side effect failed (its record was deleted so a retry can run).
    #[error("{0}")]
    Handler(E),
}

/// An [`IdempotencyError`] of the guard itself (never the effect's own error).
pub type GuardError = IdempotencyError<std::convert::Infallible>;

impl<E> IdempotencyError<E> {
    /// The effect's own error as it was, or the guard's failure converted into `E`: what a
    /// handler whose error type wraps [`GuardError`] propagates with `?`.
    pub fn into_inner(self) -> E
    where
        E: From<GuardError>,
    {
        let guard: GuardError = match self {
            IdempotencyError::Handler(e) => return e,
            IdempotencyError::MissingKey { pointer } => IdempotencyError::MissingKey { pointer },
            IdempotencyError::AlreadyInProgress { key } => {
                IdempotencyError::AlreadyInProgress { key }
            }
            IdempotencyError::PayloadMismatch {
                key,
                stored,
                actual,
            } => IdempotencyError::PayloadMismatch {
                key,
                stored,
                actual,
            },
            IdempotencyError::Store(e) => IdempotencyError::Store(e),
            IdempotencyError::Result { key, reason } => IdempotencyError::Result { key, reason },
        };
        guard.into()
    }
}

/// A guard failure where the effect's error is a [`PortError`]: the record could not be
/// guarded now (retry later).
impl From<GuardError> for PortError {
    fn from(err: GuardError) -> PortError {
        PortError::Backend(err.to_string())
    }
}

/// What a guarded call returned.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome<T> {
    /// The side effect ran now.
    Ran(T),
    /// A repeat: the stored result of an earlier run (the side effect did not run).
    Replayed(T),
}

impl<T> Outcome<T> {
    pub fn into_inner(self) -> T {
        match self {
            Outcome::Ran(t) | Outcome::Replayed(t) => t,
        }
    }

    pub fn replayed(&self) -> bool {
        matches!(self, Outcome::Replayed(_))
    }
}

/// The guard: a store, a config, and the deadline of the current invocation.
#[derive(Clone)]
pub struct Idempotency<'a> {
    store: &'a dyn IdempotencyStore,
    config: Arc<Config>,
    deadline: Option<DateTime<Utc>>,
}

/// SHA-256 hex of a JSON value (serde_json's maps are ordered, so equal values hash equal).
pub fn hash_json(value: &Value) -> String {
    let mut hasher = Sha256::new();
    hasher.update(value.to_string().as_bytes());
    format!("{:x}", hasher.finalize())
}

impl<'a> Idempotency<'a> {
    /// A guard over `store`. `config` may be shared (`Arc<Config>`): a function builds it
    /// once and a guard per invocation.
    pub fn new(store: &'a dyn IdempotencyStore, config: impl Into<Arc<Config>>) -> Self {
        Idempotency {
            store,
            config: config.into(),
            deadline: None,
        }
    }

    /// The same guard for an invocation that must finish by `deadline`: its in-progress
    /// records expire then, so a retry after a timeout is not blocked.
    pub fn with_deadline(&self, deadline: Option<DateTime<Utc>>) -> Idempotency<'a> {
        Idempotency {
            deadline,
            ..self.clone()
        }
    }

    pub fn config(&self) -> &Config {
        &self.config
    }

    /// The record key for `payload`.
    pub fn key_for<E>(&self, payload: &Value) -> Result<String, IdempotencyError<E>> {
        let part = payload
            .pointer(&self.config.key_pointer)
            .filter(|v| !v.is_null())
            .ok_or_else(|| IdempotencyError::MissingKey {
                pointer: self.config.key_pointer.clone(),
            })?;
        Ok(format!("{}#{}", self.config.function, hash_json(part)))
    }

    /// [`Idempotency::run`] for a message: its JSON is the payload, and the effect's own
    /// error comes back as it was (a guard failure, or a message that does not serialise,
    /// converted into `E`): what a handler calls with `?`.
    pub async fn once<M, T, E, F, Fut>(
        &self,
        message: &M,
        now: DateTime<Utc>,
        effect: F,
    ) -> Result<Outcome<T>, E>
    where
        M: Serialize,
        T: Serialize + DeserializeOwned,
        E: From<GuardError> + From<serde_json::Error>,
        F: FnOnce() -> Fut,
        Fut: Future<Output = Result<T, E>>,
    {
        let payload = serde_json::to_value(message)?;
        self.run(&payload, now, effect)
            .await
            .map_err(IdempotencyError::into_inner)
    }

    /// Runs `effect` once per key (see the module docs). `now` is the current time.
    pub async fn run<T, E, F, Fut>(
        &self,
        payload: &Value,
        now: DateTime<Utc>,
        effect: F,
    ) -> Result<Outcome<T>, IdempotencyError<E>>
    where
        T: Serialize + DeserializeOwned,
        F: FnOnce() -> Fut,
        Fut: Future<Output = Result<T, E>>,
    {
        let key = self.key_for(payload)?;
        let payload_hash = hash_json(
            payload
                .pointer(&self.config.validation_pointer)
                .unwrap_or(&Value::Null),
        );
        let expires_at = (now + self.config.expires_after).timestamp();
        let in_progress_until = self
            .deadline
            .unwrap_or(now + self.config.expires_after)
            .timestamp_millis();
        let record = Record {
            key: key.clone(),
            status: Status::InProgress,
            expires_at,
            in_progress_expires_at: Some(in_progress_until),
            payload_hash: payload_hash.clone(),
            result: None,
        };
        let existing = self
            .store
            .put_in_progress(&record, now)
            .await
            .map_err(IdempotencyError::Store)?;
        if let Some(existing) = existing {
            if existing.payload_hash != payload_hash {
                return Err(IdempotencyError::PayloadMismatch {
                    key,
                    stored: existing.payload_hash,
                    actual: payload_hash,
                });
            }
            return match existing.status_at(now) {
                Status::Completed => {
                    let text = existing.result.unwrap_or_else(|| "null".into());
                    let value =
                        serde_json::from_str(&text).map_err(|e| IdempotencyError::Result {
                            key: key.clone(),
                            reason: format!("stored result does not decode: {e}"),
                        })?;
                    tracing::info!(idempotency_key = %key, "repeat: returning the stored result");
                    Ok(Outcome::Replayed(value))
                }
                // The store only returns live records, so Expired here means it expired
                // between its check and ours: report it as in progress and let a retry run.
                Status::InProgress | Status::Expired => {
                    Err(IdempotencyError::AlreadyInProgress { key })
                }
            };
        }

        match effect().await {
            Ok(value) => {
                let text = serde_json::to_string(&value).map_err(|e| IdempotencyError::Result {
                    key: key.clone(),
                    reason: format!("result does not serialise: {e}"),
                })?;
                self.store
                    .complete(&key, &text, expires_at)
                    .await
                    .map_err(IdempotencyError::Store)?;
                Ok(Outcome::Ran(value))
            }
            Err(err) => {
                if let Err(delete_err) = self.store.delete(&key).await {
                    // The in-progress record then expires at the deadline.
                    tracing::error!(idempotency_key = %key, error = %delete_err, "could not delete the in-progress record after a failure");
                }
                Err(IdempotencyError::Handler(err))
            }
        }
    }
}
