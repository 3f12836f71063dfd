//! `devstack up` and the commands that talk to a running one (`trace`, `replay`).
//!
//! `up` writes `.local/devstack-up.json` (its URLs, for `trace` and `replay`) and one env
//! file per function, `.local/env/<LogicalId>.env` (the function's whole environment
//! against this stack, for `cargo lambda watch --env-file`), and removes the state file
//! when it stops.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use anyhow::{Context, Result, bail};
use devstack::lambda::FunctionHost;
use devstack::{Stack, StackConfig, TokenSpec, auth};
use serde_json::{Value, json};

use crate::simulator;

#[derive(Debug, clap::Args)]
pub struct UpArgs {
    /// Port of the HTTP API (and the dashboard) on 127.0.0.1.
    #[arg(long, default_value_t = 3000)]
    pub port: u16,
    /// Port of the Lambda service API (`aws lambda invoke --endpoint-url`, `cargo lambda
    /// invoke --invoke-port`); also served on [::1].
    #[arg(long, default_value_t = 9000)]
    pub lambda_port: u16,
    /// How often the template's schedules fire (`500ms`, `2s`, `1m`, `template`).
    #[arg(long)]
    pub schedule_interval: Option<String>,
    /// Rebuild the functions when a source under functions/ or shared/ changes, and run
    /// the next invocation of each changed function in a fresh process.
    #[arg(long)]
    pub watch: bool,
    /// Print the stack's URLs, tokens and env files as one JSON object (then keep running).
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, clap::Args)]
pub struct TraceArgs {
    /// The correlation id (the `X-Correlation-Id` of the POST, or `correlationId` of any
    /// event of the alert).
    pub correlation_id: String,
    /// The Lambda service API of the running stack (default: from .local/devstack-up.json).
    #[arg(long)]
    pub lambda_endpoint: Option<String>,
    /// Print the hops as JSON.
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, clap::Args)]
pub struct ReplayArgs {
    /// Messages to replay at most.
    #[arg(long, default_value_t = 100)]
    pub max: usize,
    /// Print the report as JSON.
    #[arg(long)]
    pub json: bool,
}

const STATE_FILE: &str = ".local/devstack-up.json";
const TOKEN_LIFETIME: i64 = 12 * 3600;

fn read_state(root: &Path) -> Result<Value> {
    let path = root.join(STATE_FILE);
    let text = std::fs::read_to_string(&path).with_context(|| {
        format!(
            "no running stack: {} is missing (start one with ./dev up)",
            path.display()
        )
    })?;
    serde_json::from_str(&text).with_context(|| format!("{} is not JSON", path.display()))
}

fn state_field(state: &Value, key: &str) -> Result<String> {
    state
        .get(key)
        .and_then(Value::as_str)
        .map(str::to_string)
        .with_context(|| format!("{STATE_FILE} has no {key}"))
}

/// `KEY="value"` lines (dotenv quoting) of a function's environment.
fn env_file_text(environment: &BTreeMap<String, String>) -> String {
    environment
        .iter()
        .map(|(key, value)| {
            let quoted = value
                .replace('\\', "\\\\")
                .replace('"', "\\\"")
                .replace('\n', "\\n");
            format!("{key}=\"{quoted}\"\n")
        })
        .collect()
}

/// Writes `.local/env/<LogicalId>.env` for every function; returns the paths.
fn write_env_files(root: &Path, stack: &Stack) -> Result<BTreeMap<String, PathBuf>> {
    let dir = root.join(".local/env");
    std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
    let mut files = BTreeMap::new();
    for spec in stack.function_specs() {
        let path = dir.join(format!("{}.env", spec.logical_id));
        std::fs::write(&path, env_file_text(&spec.environment))
            .with_context(|| format!("writing {}", path.display()))?;
        files.insert(spec.logical_id.clone(), path);
    }
    Ok(files)
}

fn tokens(stack: &Stack) -> Result<Vec<(&'static str, String)>> {
    let specs = [
        ("operator op-1", TokenSpec::operator("op-1")),
        ("health worker w-01", TokenSpec::health_worker("w-01")),
        ("supervisor s-01", TokenSpec::supervisor("s-01")),
        ("kiosk (Kisumu)", TokenSpec::device(auth::DEMO_KIOSK)),
        ("wearable (p-001)", TokenSpec::device(auth::DEMO_WEARABLE)),
    ];
    specs
        .into_iter()
        .map(|(who, spec)| {
            Ok((
                who,
                stack.issue_token(&spec.with_lifetime_seconds(TOKEN_LIFETIME))?,
            ))
        })
        .collect()
}

/// The exports a shell needs to talk to the stack.
fn exports(stack: &Stack, operator_token: &str) -> Vec<(&'static str, String)> {
    vec![
        ("API", stack.api_url()),
        ("TOKEN", operator_token.to_string()),
        ("AWS_ENDPOINT_URL", stack.endpoint_url().to_string()),
        ("AWS_ENDPOINT_URL_LAMBDA", stack.lambda_url()),
        ("LAMBDA_ENDPOINT", stack.lambda_url()),
        ("AWS_ACCESS_KEY_ID", "test".to_string()),
        ("AWS_SECRET_ACCESS_KEY", "test".to_string()),
        ("AWS_REGION", devstack::template::REGION.to_string()),
        // The AWS CLI v1 reads only this one.
        ("AWS_DEFAULT_REGION", devstack::template::REGION.to_string()),
    ]
}

fn print_text(stack: &Stack, tokens: &[(&str, String)], env_files: &BTreeMap<String, PathBuf>) {
    println!(
        "local stack up; directory seeded with patients p-001..p-012, workers w-01..w-04, supervisor s-01, devices {} and {}",
        auth::DEMO_KIOSK,
        auth::DEMO_WEARABLE
    );
    println!("  HTTP API  {}  (POST /readings)", stack.api_url());
    if let Some(url) = stack.dashboard_url() {
        println!(
            "  dashboard {url}  (sign in with the LOCAL-ONLY form: health worker w-01..w-04, supervisor s-01, operator op-1)"
        );
    }
    println!(
        "  lambda    {}  (aws lambda invoke --endpoint-url; cargo lambda invoke -A 127.0.0.1 -P {})",
        stack.lambda_url(),
        stack.lambda_url().rsplit(':').next().unwrap_or("")
    );
    println!(
        "  emulator  {}  (AWS_ENDPOINT_URL for the aws CLI)",
        stack.endpoint_url()
    );
    if let Some(bucket) = stack.archive().and_then(|a| a.bucket()) {
        println!("  archive   s3://{bucket}/  (readings/, events/; docs/archive.md)");
    }
    for (function, event, period) in stack.schedules() {
        match period {
            Some(period) => println!("  schedule  {function} ({event}) every {period:?}"),
            None => println!("  schedule  {function} ({event}) disabled"),
        }
    }
    if let Some(dir) = env_files.values().next().and_then(|p| p.parent()) {
        println!(
            "  env files {}/<LogicalId>.env  (cargo lambda watch --env-file ...)",
            dir.display()
        );
    }
    println!(
        "  tokens    issuer {} (valid 12 h)",
        stack.token_issuer().issuer()
    );
    for (who, token) in tokens {
        println!("    {who}:\n      {token}");
    }
    let operator = tokens.first().map(|(_, t)| t.as_str()).unwrap_or("");
    println!("# paste into a shell:");
    for (name, value) in exports(stack, operator) {
        println!("export {name}={value}");
    }
    let now = chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
    println!("# then try:");
    println!(
        "curl -i -X POST $API/readings -H \"Authorization: Bearer $TOKEN\" -H 'content-type: application/json' -d '[{{\"patientId\":\"p-001\",\"deviceId\":\"{}\",\"type\":\"heart_rate\",\"value\":72,\"unit\":\"bpm\",\"timestamp\":\"{now}\"}}]'",
        auth::DEMO_WEARABLE
    );
    println!("aws lambda list-functions --endpoint-url $LAMBDA_ENDPOINT");
    println!("Ctrl-C to stop");
}

/// `devstack up`.
pub async fn run(mut config: StackConfig, root: &Path, args: UpArgs) -> Result<bool> {
    // Function logs go to the terminal while the stack is up.
    config.function_log_dir = None;
    config.http_port = args.port;
    config.lambda_port = args.lambda_port;
    let stack = Stack::start(config).await?;
    // Through the onboarding API (POST /import), as an operator would.
    simulator::onboard(&stack, &simulator::patients(12, 4)).await?;
    let env_files = write_env_files(root, &stack)?;
    let tokens = tokens(&stack)?;
    let operator = tokens.first().map(|(_, t)| t.clone()).unwrap_or_default();
    let state = json!({
        "pid": std::process::id(),
        "api": stack.api_url(),
        "lambdaEndpoint": stack.lambda_url(),
        "awsEndpointUrl": stack.endpoint_url(),
        "detectFailureQueueUrl": stack.resource("DetectFailureQueue").map(|r| r.ref_value.clone()).ok(),
        "dashboard": stack.dashboard_url(),
        "exports": exports(&stack, &operator).into_iter().collect::<BTreeMap<_, _>>(),
        "tokens": tokens.iter().map(|(who, t)| (who.to_string(), t.clone())).collect::<BTreeMap<_, _>>(),
        "envFiles": env_files,
    });
    let state_path = root.join(STATE_FILE);
    std::fs::write(&state_path, serde_json::to_string_pretty(&state)?)
        .with_context(|| format!("writing {}", state_path.display()))?;
    if args.json {
        println!("{state}");
    } else {
        print_text(&stack, &tokens, &env_files);
    }
    let watcher = args.watch.then(|| {
        let hosts = Arc::new(stack.function_hosts().clone());
        tokio::spawn(watch(root.to_path_buf(), hosts))
    });
    tokio::signal::ctrl_c()
        .await
        .context("waiting for Ctrl-C")?;
    if let Some(watcher) = watcher {
        watcher.abort();
    }
    let _ = std::fs::remove_file(&state_path);
    let _ = stack.wait_idle(Duration::from_secs(1)).await;
    stack.shutdown().await?;
    Ok(true)
}

/// The newest modification time of the sources a function binary is built from.
fn sources_mtime(root: &Path) -> Option<SystemTime> {
    fn walk(dir: &Path, newest: &mut Option<SystemTime>) {
        let Ok(entries) = std::fs::read_dir(dir) else {
            return;
        };
        for entry in entries.flatten() {
            let path = entry.path();
            let name = entry.file_name();
            if path.is_dir() {
                if name != "target" && name != "tests" && name != "benches" {
                    walk(&path, newest);
                }
            } else if path
                .extension()
                .is_some_and(|e| e == "rs" || e == "toml" || e == "yaml")
                && let Ok(modified) = entry.metadata().and_then(|m| m.modified())
            {
                *newest = (*newest).max(Some(modified));
            }
        }
    }
    let mut newest = None;
    for dir in ["functions", "shared"] {
        walk(&root.join(dir), &mut newest);
    }
    newest
}

fn binary_mtime(host: &FunctionHost) -> Option<SystemTime> {
    std::fs::metadata(&host.spec().binary)
        .and_then(|m| m.modified())
        .ok()
}

/// `up --watch`: polls the sources every second; on a change, `cargo build --workspace
/// --locked` (./dev's own build: another feature set would relink every binary), then
/// every host whose binary changed is reloaded.
async fn watch(root: PathBuf, hosts: Arc<BTreeMap<String, Arc<FunctionHost>>>) {
    let mut seen = sources_mtime(&root);
    let mut binaries: BTreeMap<String, Option<SystemTime>> = hosts
        .iter()
        .map(|(id, host)| (id.clone(), binary_mtime(host)))
        .collect();
    println!("watching functions/ and shared/ for changes");
    loop {
        tokio::time::sleep(Duration::from_secs(1)).await;
        let now = sources_mtime(&root);
        if now == seen {
            continue;
        }
        seen = now;
        println!("[watch] sources changed: cargo build");
        // The workspace's feature set, as ./dev builds it: only what changed is rebuilt.
        let mut command = tokio::process::Command::new("cargo");
        command
            .current_dir(&root)
            .args(["build", "--workspace", "--locked"]);
        match command.status().await {
            Ok(status) if status.success() => {}
            Ok(status) => {
                println!("[watch] cargo build failed ({status}); the functions keep running");
                continue;
            }
            Err(err) => {
                println!("[watch] could not run cargo: {err}");
                continue;
            }
        }
        for (id, host) in hosts.iter() {
            let mtime = binary_mtime(host);
            let before = binaries.insert(id.clone(), mtime);
            if before != Some(mtime) {
                host.reload();
                println!("[watch] {id} reloaded (next invocation runs the new binary)");
            }
        }
    }
}

/// `devstack trace`.
pub async fn trace(root: &Path, args: TraceArgs) -> Result<bool> {
    let endpoint = match args.lambda_endpoint {
        Some(endpoint) => endpoint,
        None => state_field(&read_state(root)?, "lambdaEndpoint")?,
    };
    let url = format!(
        "{}/devstack/trace/{}",
        endpoint.trim_end_matches('/'),
        args.correlation_id
    );
    let response = reqwest::get(&url)
        .await
        .with_context(|| format!("GET {url}"))?;
    if !response.status().is_success() {
        bail!("GET {url}: {}", response.status());
    }
    let body: Value = response.json().await.context("the trace is not JSON")?;
    let hops: Vec<devstack::trace::Hop> =
        serde_json::from_value(body.get("hops").cloned().unwrap_or(Value::Null))
            .context("the trace has no hops")?;
    if args.json {
        println!(
            "{}",
            json!({"correlationId": args.correlation_id, "hops": hops})
        );
    } else {
        print!("{}", devstack::trace::render(&args.correlation_id, &hops));
    }
    Ok(!hops.is_empty())
}

/// `devstack replay`.
pub async fn replay(root: &Path, args: ReplayArgs) -> Result<bool> {
    let state = read_state(root)?;
    let endpoint = state_field(&state, "awsEndpointUrl")?;
    let target = devstack::replay::ReplayTarget {
        sdk_config: devstack::emulator::sdk_config(&endpoint).await,
        queue_url: state_field(&state, "detectFailureQueueUrl")?,
        lambda_url: state_field(&state, "lambdaEndpoint")?,
        function: "DetectFunction".to_string(),
    };
    let report = devstack::replay::replay(&target, args.max).await?;
    if args.json {
        println!("{}", serde_json::to_string(&report)?);
    } else {
        println!(
            "replayed {} batch(es), {} record(s) through {}; {} message(s) left",
            report.replayed,
            report.records,
            target.function,
            report.left.len()
        );
        for left in &report.left {
            println!("  left: {left}");
        }
    }
    Ok(report.left.is_empty())
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    #[test]
    fn env_files_quote_every_value() {
        let env = BTreeMap::from([
            ("A".to_string(), "plain".to_string()),
            ("B".to_string(), "say \"hi\"\\n".to_string()),
        ]);
        assert_eq!(
            env_file_text(&env),
            "A=\"plain\"\nB=\"say \\\"hi\\\"\\\\n\"\n"
        );
    }

    #[test]
    fn every_subcommand_has_help() {
        let mut command = crate::Cli::command();
        command.build();
        let mut missing = Vec::new();
        fn visit(command: &clap::Command, path: &str, missing: &mut Vec<String>) {
            for sub in command.get_subcommands() {
                let path = format!("{path} {}", sub.get_name());
                if sub.get_name() != "help" && sub.get_about().is_none() {
                    missing.push(path.clone());
                }
                visit(sub, &path, missing);
            }
        }
        visit(&command, "devstack", &mut missing);
        assert_eq!(missing, Vec::<String>::new());
        command.debug_assert();
    }
}
