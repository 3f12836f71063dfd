//! Starting (or attaching to) the AWS API emulator and building SDK configuration for it.

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use aws_config::{BehaviorVersion, SdkConfig};
use tokio::process::{Child, Command};

use crate::template::REGION;

/// How long moto server may take to answer its first request.
const MOTO_READY_TIMEOUT: Duration = Duration::from_secs(30);
/// Python that starts moto server with DynamoDB requests serialised (see the file).
const MOTO_LAUNCHER: &str = include_str!("moto_launcher.py");
/// `install_checked_transactions()`, shared with the LocalStack provider plugin; put before
/// the launcher, which calls it.
const MOTO_TRANSACTIONS: &str =
    include_str!("../../localstack/moto-dynamodb-provider/vitals_localstack/transactions.py");

/// The emulator devstack talks to.
#[derive(Debug)]
pub struct Emulator {
    /// Base URL, e.g. `http://127.0.0.1:40123`.
    pub endpoint: String,
    /// The moto process, if devstack started it (killed on drop).
    pub child: Option<Child>,
}

impl Emulator {
    /// Uses an already running emulator.
    pub fn external(endpoint: &str) -> Emulator {
        Emulator {
            endpoint: endpoint.trim_end_matches('/').to_string(),
            child: None,
        }
    }

    /// Starts `moto_server` on a free port and waits until it answers HTTP.
    pub async fn start_moto(moto_server_bin: &Path, log_dir: Option<&Path>) -> Result<Emulator> {
        if !moto_server_bin.exists() {
            bail!(
                "moto server not found at {}; run ./dev setup",
                moto_server_bin.display()
            );
        }
        let port = free_port()?;
        let (stdout, stderr) = match log_dir {
            Some(dir) => {
                let path = dir.join("moto.log");
                let file = open_append(&path)?;
                let clone = file
                    .try_clone()
                    .with_context(|| format!("duplicating handle of {}", path.display()))?;
                (Stdio::from(file), Stdio::from(clone))
            }
            None => (Stdio::null(), Stdio::null()),
        };
        // Through the launcher (DynamoDB requests serialised, see moto_launcher.py) when the
        // venv's python is beside moto_server; otherwise moto_server as it is.
        let python = moto_server_bin.with_file_name("python");
        let mut command = if python.exists() {
            let mut c = Command::new(python);
            c.args(["-c", &format!("{MOTO_TRANSACTIONS}\n{MOTO_LAUNCHER}")]);
            c
        } else {
            Command::new(moto_server_bin)
        };
        // moto's request recorder (off until `request_log::start`) writes here.
        let recording = match log_dir {
            Some(dir) => dir.join("moto-requests.jsonl"),
            None => std::env::temp_dir().join(format!("devstack-moto-requests-{port}.jsonl")),
        };
        let mut child = command
            .env("MOTO_RECORDER_FILEPATH", &recording)
            .args(["-H", "127.0.0.1", "-p", &port.to_string()])
            .stdin(Stdio::null())
            .stdout(stdout)
            .stderr(stderr)
            .kill_on_drop(true)
            .spawn()
            .with_context(|| format!("starting {}", moto_server_bin.display()))?;
        let endpoint = format!("http://127.0.0.1:{port}");

        let client = reqwest::Client::builder()
            .timeout(Duration::from_secs(2))
            .build()
            .context("building HTTP client")?;
        let started = Instant::now();
        loop {
            if let Some(status) = child.try_wait().context("checking moto server process")? {
                bail!(
                    "moto server exited during startup ({status}); see moto.log if a log dir is set"
                );
            }
            if client
                .get(format!("{endpoint}/moto-api/"))
                .send()
                .await
                .is_ok()
            {
                break;
            }
            if started.elapsed() > MOTO_READY_TIMEOUT {
                bail!(
                    "moto server at {endpoint} did not answer within {}s",
                    MOTO_READY_TIMEOUT.as_secs()
                );
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        tracing::info!(%endpoint, elapsed_ms = started.elapsed().as_millis() as u64, "moto server ready");
        Ok(Emulator {
            endpoint,
            child: Some(child),
        })
    }

    /// Stops moto if devstack started it.
    pub async fn stop(&mut self) -> Result<()> {
        if let Some(mut child) = self.child.take() {
            child.kill().await.context("stopping moto server")?;
        }
        Ok(())
    }
}

/// SDK configuration for the emulator: region us-east-1, static credentials "test"/"test".
pub async fn sdk_config(endpoint: &str) -> SdkConfig {
    aws_config::defaults(BehaviorVersion::latest())
        .region(REGION)
        .endpoint_url(endpoint)
        .credentials_provider(aws_sdk_sqs::config::Credentials::new(
            "test", "test", None, None, "devstack",
        ))
        .load()
        .await
}

/// A TCP port on 127.0.0.1 that was free a moment ago.
pub fn free_port() -> Result<u16> {
    let listener = std::net::TcpListener::bind("127.0.0.1:0")
        .context("binding 127.0.0.1:0 to pick a free port")?;
    Ok(listener
        .local_addr()
        .context("reading local address")?
        .port())
}

/// Opens `path` for appending, creating it (and its directory) if needed.
pub fn open_append(path: &Path) -> Result<std::fs::File> {
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    }
    std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
        .with_context(|| format!("opening {}", path.display()))
}

/// `<root>/.local/moto/bin/moto_server`.
pub fn default_moto_server_bin(workspace_root: &Path) -> PathBuf {
    workspace_root.join(".local/moto/bin/moto_server")
}
