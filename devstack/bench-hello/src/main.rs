//! Hello world on `lambda_runtime`: answers every event with itself. The cold-start bench
//! (`./dev bench coldstart`, devstack/src/bench/coldstart.rs) compares each function's init
//! with this binary's, built with the same profile. Not a deployed function.

use lambda_runtime::{Error, LambdaEvent, service_fn};
use serde_json::Value;

#[tokio::main]
async fn main() -> Result<(), Error> {
    lambda_runtime::run(service_fn(async |event: LambdaEvent<Value>| {
        Ok::<Value, Error>(event.payload)
    }))
    .await
}
