//! How a stack is started: [`StackConfig`], its defaults for a checkout, and the local
//! schedule interval.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{Context, Result};

use crate::archive::ArchiveConfig;
use crate::{emulator, schedule};

/// How a [`Stack`] is started.
#[derive(Debug, Clone)]
pub struct StackConfig {
    /// The SAM template (infra/template.yaml).
    pub template: PathBuf,
    /// Directory holding the function binaries (target/debug; see [`PROFILE_ENV`]).
    pub bin_dir: PathBuf,
    /// `Some(url)`: use this running emulator; `None`: start moto server.
    pub endpoint: Option<String>,
    /// moto_server executable (used when `endpoint` is None).
    pub moto_server_bin: PathBuf,
    /// Prefix of generated physical names, e.g. "vitals-dev".
    pub stack_name: String,
    /// Overrides of template Parameters.
    pub parameter_overrides: BTreeMap<String, String>,
    /// Port of the HTTP API on 127.0.0.1 (0 = pick a free port).
    pub http_port: u16,
    /// Port of the Lambda service API on 127.0.0.1 (0 = pick a free port).
    pub lambda_port: u16,
    /// Failed SQS messages become visible again after this delay instead of the queue's
    /// visibility timeout (rounded up to whole seconds); after a crash or a timeout, no
    /// earlier than the function's timeout (+1 s), as on AWS. None = keep the queue's timeout.
    pub sqs_retry_delay: Option<Duration>,
    /// `Some(dir)`: each function's stdout+stderr is appended to `dir/<LogicalId>.log` (and
    /// moto's to `dir/moto.log`); `None`: forwarded to our stderr prefixed with `[LogicalId] `.
    pub function_log_dir: Option<PathBuf>,
    /// Extra environment variables by function logical id, set over the template's (e.g.
    /// `FAULT_INJECTION_PANIC_ON` for a test).
    pub function_environment: BTreeMap<String, BTreeMap<String, String>>,
    /// `Some(d)`: every schedule (`Schedule` / `ScheduleV2` events) fires every `d` instead
    /// of its template period (a `cron(...)` schedule needs this). `None`: the template's
    /// `rate(...)`. Set a long interval (e.g. 1 h) to fire schedules only through
    /// [`Stack::run_schedule`].
    pub schedule_interval: Option<Duration>,
    /// `Some(dir)`: the dashboard page's files (`web/`), served at `/` of the HTTP API with a
    /// generated `config.js` and the local-only sign-in (docs/dashboard.md); `None`: no page.
    pub web_dir: Option<PathBuf>,
    /// The archive's deliveries (Firehose and the events pipe, played into the emulator's
    /// S3; `crate::archive`). Off by default (tests turn it on where they need it); `./dev
    /// up` and `./dev demo` turn it on; `DEVSTACK_ARCHIVE` overrides both.
    pub archive: ArchiveConfig,
}

/// Environment variable naming the Cargo profile whose function binaries a stack runs:
/// unset, empty, `dev` or `debug` = `target/debug`; `ci` = `target/ci` (built with
/// `cargo build --profile ci`, the zips' panic strategy); any other profile `p` =
/// `target/p`.
pub const PROFILE_ENV: &str = "DEVSTACK_PROFILE";

/// The folder of `target` holding the binaries of `profile` (`dev` builds go to `debug`).
pub fn profile_dir(profile: Option<&str>) -> String {
    match profile.map(str::trim) {
        None | Some("") | Some("dev") | Some("debug") => "debug".to_string(),
        Some(other) => other.to_string(),
    }
}

/// Local period of every schedule when `DEVSTACK_SCHEDULE_INTERVAL` is not set.
pub const DEFAULT_LOCAL_SCHEDULE_INTERVAL: Duration = Duration::from_secs(5);

/// Reads `DEVSTACK_SCHEDULE_INTERVAL`: unset or empty = `Ok(None)`; `template` =
/// `Ok(Some(None))` (the template's periods); else an interval such as `500ms`, `2s`, `1m`.
pub fn schedule_interval_from_env() -> Result<Option<Option<Duration>>> {
    match std::env::var("DEVSTACK_SCHEDULE_INTERVAL") {
        Ok(value) if !value.trim().is_empty() => parse_schedule_interval(&value)
            .map(Some)
            .context("DEVSTACK_SCHEDULE_INTERVAL"),
        _ => Ok(None),
    }
}

/// `template` = `None` (the template's periods), else an interval such as `500ms`, `2s`, `1m`.
pub fn parse_schedule_interval(text: &str) -> Result<Option<Duration>> {
    if text.trim().eq_ignore_ascii_case("template") {
        return Ok(None);
    }
    schedule::parse_interval(text).map(Some)
}

// --- issue 16 part 6 (habits): safe defaults, the standard endpoint variable.

/// The district hospital's desk on the local stack (`DistrictHospitalPhone`, which has no
/// default in the template): a stand-in number; local stacks only record notifications.
pub const LOCAL_HOSPITAL_PHONE: &str = "+254700009999";

/// The variables naming a running emulator to use instead of moto, first found wins:
/// the AWS SDKs' and CLI's standard `AWS_ENDPOINT_URL`, then `DEVSTACK_ENDPOINT` (the
/// earlier name, kept as an alias).
pub const ENDPOINT_ENV: [&str; 2] = ["AWS_ENDPOINT_URL", "DEVSTACK_ENDPOINT"];

/// The endpoint of a running emulator (LocalStack, ...) from [`ENDPOINT_ENV`], if any is
/// set and not blank.
pub fn endpoint_from_env() -> Option<String> {
    endpoint_from(|name| std::env::var(name).ok())
}

fn endpoint_from(var: impl Fn(&str) -> Option<String>) -> Option<String> {
    let found: Vec<(&str, String)> = ENDPOINT_ENV
        .iter()
        .filter_map(|name| Some((*name, var(name)?.trim().to_string())))
        .filter(|(_, value)| !value.is_empty())
        .collect();
    if let [(first, a), (second, b), ..] = found.as_slice()
        && a != b
    {
        tracing::warn!(
            using = %first, ignored = %second,
            "{first} and {second} name different endpoints; using {first}"
        );
    }
    found.into_iter().next().map(|(_, value)| value)
}

// --- end of issue 16 part 6

impl StackConfig {
    /// Defaults for a checkout at `workspace_root`: template `infra/template.yaml`, binaries
    /// in `target/debug` (or `$CARGO_TARGET_DIR/debug`; another profile's folder with
    /// `DEVSTACK_PROFILE`, see [`PROFILE_ENV`]), moto from `.local/moto`, stack name
    /// "vitals-local", NotificationChannel=outbox, StageName=local, StepDeadlineSeconds=5,
    /// AckTimeoutSeconds=5, Heartbeat=off, DeviceClientIds = the demo's and tests' devices
    /// ([`crate::auth::DEFAULT_DEVICE_CLIENT_IDS`]), a free HTTP port, 500 ms
    /// SQS retry delay, function output on stderr, the endpoint from `AWS_ENDPOINT_URL`
    /// or `DEVSTACK_ENDPOINT` if set ([`endpoint_from_env`]), and schedules every `DEVSTACK_SCHEDULE_INTERVAL` (e.g. `2s`, `500ms`, `1m`,
    /// or `template` for the template's rates), else every 5 s. An invalid
    /// `DEVSTACK_SCHEDULE_INTERVAL` is logged and the 5 s default is used; the dashboard
    /// page from `web/`.
    pub fn for_workspace(workspace_root: &Path) -> StackConfig {
        let schedule_interval = match schedule_interval_from_env() {
            Ok(Some(interval)) => interval,
            Ok(None) => Some(DEFAULT_LOCAL_SCHEDULE_INTERVAL),
            Err(err) => {
                tracing::warn!(error = %format!("{err:#}"), default = ?DEFAULT_LOCAL_SCHEDULE_INTERVAL, "ignoring DEVSTACK_SCHEDULE_INTERVAL");
                Some(DEFAULT_LOCAL_SCHEDULE_INTERVAL)
            }
        };
        let target_dir = match std::env::var_os("CARGO_TARGET_DIR") {
            Some(dir) => {
                let dir = PathBuf::from(dir);
                if dir.is_absolute() {
                    dir
                } else {
                    std::env::current_dir()
                        .map(|cwd| cwd.join(&dir))
                        .unwrap_or(dir)
                }
            }
            None => workspace_root.join("target"),
        };
        StackConfig {
            template: workspace_root.join("infra/template.yaml"),
            bin_dir: target_dir.join(profile_dir(std::env::var(PROFILE_ENV).ok().as_deref())),
            endpoint: endpoint_from_env(),
            moto_server_bin: emulator::default_moto_server_bin(workspace_root),
            stack_name: "vitals-local".to_string(),
            parameter_overrides: BTreeMap::from([
                ("NotificationChannel".to_string(), "outbox".to_string()),
                ("StageName".to_string(), "local".to_string()),
                // Short saga step deadlines and acknowledgement timeouts, so local runs and
                // tests see them fire (and wait_idle does not wait minutes for them).
                ("StepDeadlineSeconds".to_string(), "5".to_string()),
                ("AckTimeoutSeconds".to_string(), "5".to_string()),
                // No heartbeat: its canary readings would run through every local stack
                // and test (tests/heartbeat.rs turns it on).
                ("Heartbeat".to_string(), "off".to_string()),
                // issue 16 (safe defaults): the template has no default hospital desk; the
                // local stack's stand-in (outbox only: nothing is sent).
                (
                    "DistrictHospitalPhone".to_string(),
                    LOCAL_HOSPITAL_PHONE.to_string(),
                ),
                // The local audience's devices: the demo's and the tests' (crate::auth).
                (
                    "DeviceClientIds".to_string(),
                    crate::auth::DEFAULT_DEVICE_CLIENT_IDS.join(","),
                ),
            ]),
            http_port: 0,
            lambda_port: 0,
            sqs_retry_delay: Some(Duration::from_millis(500)),
            function_log_dir: None,
            function_environment: BTreeMap::new(),
            schedule_interval,
            web_dir: Some(workspace_root.join("web")),
            archive: ArchiveConfig::from_env_or(ArchiveConfig::off()).unwrap_or_else(|err| {
                tracing::warn!(error = %format!("{err:#}"), "ignoring DEVSTACK_ARCHIVE");
                ArchiveConfig::off()
            }),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_endpoint_is_aws_endpoint_url_or_its_alias_devstack_endpoint() {
        let env = |pairs: &'static [(&'static str, &'static str)]| {
            move |name: &str| {
                pairs
                    .iter()
                    .find(|(k, _)| *k == name)
                    .map(|(_, v)| v.to_string())
            }
        };
        assert_eq!(endpoint_from(env(&[])), None);
        assert_eq!(
            endpoint_from(env(&[("DEVSTACK_ENDPOINT", "http://127.0.0.1:4566")])),
            Some("http://127.0.0.1:4566".to_string())
        );
        assert_eq!(
            endpoint_from(env(&[("AWS_ENDPOINT_URL", " http://127.0.0.1:4567 ")])),
            Some("http://127.0.0.1:4567".to_string())
        );
        // Both: the standard name wins; a blank one counts as unset.
        assert_eq!(
            endpoint_from(env(&[
                ("AWS_ENDPOINT_URL", "http://127.0.0.1:1"),
                ("DEVSTACK_ENDPOINT", "http://127.0.0.1:2"),
            ])),
            Some("http://127.0.0.1:1".to_string())
        );
        assert_eq!(
            endpoint_from(env(&[
                ("AWS_ENDPOINT_URL", " "),
                ("DEVSTACK_ENDPOINT", "http://127.0.0.1:2"),
            ])),
            Some("http://127.0.0.1:2".to_string())
        );
    }

    #[test]
    fn profile_folders() {
        assert_eq!(profile_dir(None), "debug");
        assert_eq!(profile_dir(Some("dev")), "debug");
        assert_eq!(profile_dir(Some("ci")), "ci");
        assert_eq!(profile_dir(Some("release")), "release");
    }

    #[test]
    fn schedule_interval_values() {
        assert_eq!(parse_schedule_interval("template").unwrap(), None);
        assert_eq!(
            parse_schedule_interval("250ms").unwrap(),
            Some(Duration::from_millis(250))
        );
        assert!(parse_schedule_interval("soon").is_err());
    }
}
