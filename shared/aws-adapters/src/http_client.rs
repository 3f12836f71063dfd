//! One HTTPS client for every SDK client of a process (issue 15, cold start).
//!
//! Without it, each service client (`aws_sdk_dynamodb::Client::new`, ...) gets its own
//! default hyper client, and each one, when the client is built, builds a throwaway TLS
//! connector "so that native certs load at client initialization time" — that is, it
//! parses the whole root store into a `rustls::RootCertStore` again (the certificates
//! themselves are read from disk once per process). A function with six clients did that
//! six times during init, then once more per client on its first request.
//!
//! [`shared_https_client`] is the SDK's default client (rustls with aws-lc, proxy settings
//! from the environment, the same as `aws-smithy-runtime`'s `default_https_client`), built
//! once and shared through the `SdkConfig`: its connector cache is shared, so the TLS
//! connector is built once per set of connector settings, and the eager check at client
//! construction runs for the first client only. The certificates still load during init.

use std::sync::atomic::{AtomicBool, Ordering};

use aws_smithy_http_client::proxy::ProxyConfig;
use aws_smithy_http_client::tls::{self, rustls_provider::CryptoMode};
use aws_smithy_http_client::{Builder, ConnectorBuilder};
use aws_smithy_runtime_api::box_error::BoxError;
use aws_smithy_runtime_api::client::connector_metadata::ConnectorMetadata;
use aws_smithy_runtime_api::client::http::{
    HttpClient, HttpConnectorSettings, SharedHttpClient, SharedHttpConnector,
};
use aws_smithy_runtime_api::client::runtime_components::{
    RuntimeComponents, RuntimeComponentsBuilder,
};
use aws_smithy_runtime_api::shared::IntoShared;
use aws_smithy_types::config_bag::ConfigBag;

/// The SDK's default HTTPS client, shared by every client built from one `SdkConfig`; see
/// the module's documentation.
pub fn shared_https_client() -> SharedHttpClient {
    let inner = Builder::new().build_with_connector_fn(|settings, components| {
        let mut builder =
            ConnectorBuilder::default().tls_provider(tls::Provider::Rustls(CryptoMode::AwsLc));
        builder.set_connector_settings(settings.cloned());
        if let Some(components) = components {
            builder.set_sleep_impl(components.sleep_impl());
        }
        builder.set_proxy_config(Some(ProxyConfig::from_env()));
        builder.build()
    });
    validated_once(inner)
}

/// `inner`, its base-config check run for the first client built with it only.
fn validated_once(inner: SharedHttpClient) -> SharedHttpClient {
    ValidatedOnce {
        inner,
        validated: AtomicBool::new(false),
    }
    .into_shared()
}

/// Delegates to `inner`, but runs its base-config check (which builds a TLS connector) for
/// the first client only: the other clients share the same HTTP client and connector cache.
#[derive(Debug)]
struct ValidatedOnce {
    inner: SharedHttpClient,
    validated: AtomicBool,
}

impl HttpClient for ValidatedOnce {
    fn http_connector(
        &self,
        settings: &HttpConnectorSettings,
        components: &RuntimeComponents,
    ) -> SharedHttpConnector {
        self.inner.http_connector(settings, components)
    }

    fn validate_base_client_config(
        &self,
        runtime_components: &RuntimeComponentsBuilder,
        cfg: &ConfigBag,
    ) -> Result<(), BoxError> {
        if self.validated.swap(true, Ordering::AcqRel) {
            return Ok(());
        }
        let result = self
            .inner
            .validate_base_client_config(runtime_components, cfg);
        if result.is_err() {
            self.validated.store(false, Ordering::Release);
        }
        result
    }

    fn validate_final_config(
        &self,
        runtime_components: &RuntimeComponents,
        cfg: &ConfigBag,
    ) -> Result<(), BoxError> {
        self.inner.validate_final_config(runtime_components, cfg)
    }

    fn connector_metadata(&self) -> Option<ConnectorMetadata> {
        self.inner.connector_metadata()
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;
    use std::sync::atomic::AtomicUsize;

    use super::*;

    /// Counts the base-config checks; never asked for a connector (no request is sent).
    #[derive(Debug, Default)]
    struct Counting(Arc<AtomicUsize>);

    impl HttpClient for Counting {
        fn http_connector(
            &self,
            _: &HttpConnectorSettings,
            _: &RuntimeComponents,
        ) -> SharedHttpConnector {
            unreachable!("no request is sent")
        }

        fn validate_base_client_config(
            &self,
            _: &RuntimeComponentsBuilder,
            _: &ConfigBag,
        ) -> Result<(), BoxError> {
            self.0.fetch_add(1, Ordering::SeqCst);
            Ok(())
        }
    }

    fn config(http_client: SharedHttpClient) -> aws_config::SdkConfig {
        aws_config::SdkConfig::builder()
            .behavior_version(aws_config::BehaviorVersion::latest())
            .region(aws_config::Region::new("us-east-1"))
            .http_client(http_client)
            .build()
    }

    #[test]
    fn only_the_first_client_checks_the_shared_http_client() {
        let checks = Arc::new(AtomicUsize::new(0));
        let config = config(validated_once(Counting(checks.clone()).into_shared()));
        let _dynamodb = aws_sdk_dynamodb::Client::new(&config);
        let _sqs = aws_sdk_sqs::Client::new(&config);
        let _sns = aws_sdk_sns::Client::new(&config);
        assert_eq!(checks.load(Ordering::SeqCst), 1);
    }

    #[test]
    fn the_shared_client_builds_clients() {
        let config = config(shared_https_client());
        let a = aws_sdk_dynamodb::Client::new(&config);
        let b = aws_sdk_kinesis::Client::new(&config);
        assert!(a.config().http_client().is_some());
        assert!(b.config().http_client().is_some());
    }
}
