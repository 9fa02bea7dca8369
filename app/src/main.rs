//! The sample app: `GET /` shows which task answered (task id, host, Availability Zone, launch
//! type, capacity provider), the image tag and which expected secrets are set (names only);
//! `GET /?format=json` the same as JSON; `GET /health` for the target group. See app/README.md.

mod config;
mod metadata;
mod page;
mod server;

use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

/// One JSON line on stdout (CloudWatch Logs through the awslogs driver). Never a secret value:
/// nothing here reads one.
pub fn log(event: &str, message: &str) {
    println!(
        "{}",
        serde_json::json!({"event": event, "message": message})
    );
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() -> ExitCode {
    let settings = match config::Settings::from_env() {
        Ok(settings) => settings,
        Err(error) => {
            log("config_error", &error.to_string());
            return ExitCode::from(2);
        }
    };
    let listener = match tokio::net::TcpListener::bind(settings.listen).await {
        Ok(listener) => listener,
        Err(error) => {
            log("bind_failed", &format!("{}: {error}", settings.listen));
            return ExitCode::from(1);
        }
    };
    log("listening", &settings.listen.to_string());
    let hostname = std::fs::read_to_string("/proc/sys/kernel/hostname")
        .ok()
        .map(|h| h.trim().to_owned())
        .or_else(|| std::env::var("HOSTNAME").ok());
    let state = Arc::new(server::State::new(settings, hostname));
    tokio::spawn(discover(state.clone()));
    server::run(listener, state, stop_signal()).await;
    ExitCode::SUCCESS
}

/// SIGTERM (ECS stopping the task) or SIGINT (Ctrl-C locally).
async fn stop_signal() {
    use tokio::signal::unix::{signal, SignalKind};
    match (
        signal(SignalKind::terminate()),
        signal(SignalKind::interrupt()),
    ) {
        (Ok(mut term), Ok(mut int)) => {
            tokio::select! {
                _ = term.recv() => log("signal", "SIGTERM"),
                _ = int.recv() => log("signal", "SIGINT"),
            }
        }
        _ => {
            log(
                "signal_error",
                "cannot listen for SIGTERM; stopping only when killed",
            );
            std::future::pending::<()>().await
        }
    }
}

/// Fills in the task's metadata, then its capacity provider; retries a few times (the endpoint
/// and DescribeTasks can lag the container's start by a moment).
async fn discover(state: Arc<server::State>) {
    let Some(uri) = state.settings.metadata_uri.clone() else {
        log(
            "metadata",
            "ECS_CONTAINER_METADATA_URI_V4 is not set (not on ECS): task fields read unknown",
        );
        return;
    };
    let mut info = None;
    for attempt in 1..=10 {
        match metadata::fetch(&uri).await {
            Ok(found) => {
                info = Some(found);
                break;
            }
            Err(error) => log("metadata", &format!("attempt {attempt}: {error}")),
        }
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
    let Some(info) = info else { return };
    let (cluster, task_arn) = (info.cluster.clone(), info.task_arn.clone());
    state.set_info(|i| *i = info);
    let (Some(cluster), Some(task_arn)) = (cluster, task_arn) else {
        return;
    };
    let config = aws_config::defaults(aws_config::BehaviorVersion::latest())
        .http_client(custom_resource::http_client())
        .load()
        .await;
    let ecs = aws_sdk_ecs::Client::new(&config);
    let mut outcome = Err(String::new());
    for _ in 0..5 {
        outcome = metadata::capacity_provider(&ecs, &cluster, &task_arn).await;
        if matches!(outcome, Ok(Some(_))) {
            break;
        }
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
    match outcome {
        Ok(provider) => state.set_info(|i| i.capacity_provider = provider),
        Err(error) => {
            log("capacity_provider", &error);
            state.set_info(|i| i.capacity_provider_error = Some(error));
        }
    }
}
