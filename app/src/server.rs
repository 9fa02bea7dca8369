//! The HTTP server and its shutdown. On SIGTERM (ECS stopping the task: a new deployment, scale
//! in, or Spot's two-minute interruption notice) /health answers 503 for `drain` while requests are
//! still served, so the load balancer stops sending; then the listener closes and in-flight
//! requests get up to `grace` to finish before the process exits, inside the container's
//! stopTimeout (after which ECS sends SIGKILL).

use crate::config::Settings;
use crate::metadata::TaskInfo;
use crate::page::Snapshot;
use bytes::Bytes;
use http::{header, Method, Request, Response, StatusCode};
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use hyper_util::server::graceful::GracefulShutdown;
use std::future::Future;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};
use tokio::net::TcpListener;

/// The longest `?delay_ms=` a request may ask for (to watch a drain with a slow request).
pub const MAX_DELAY: Duration = Duration::from_secs(10);

/// What every request reads; the metadata fills in after start.
pub struct State {
    pub settings: Settings,
    pub info: RwLock<TaskInfo>,
    pub hostname: Option<String>,
    started: Instant,
    requests: AtomicU64,
    draining: AtomicBool,
}

impl State {
    pub fn new(settings: Settings, hostname: Option<String>) -> Self {
        Self {
            settings,
            info: RwLock::new(TaskInfo::default()),
            hostname,
            started: Instant::now(),
            requests: AtomicU64::new(0),
            draining: AtomicBool::new(false),
        }
    }

    pub fn set_info(&self, update: impl FnOnce(&mut TaskInfo)) {
        if let Ok(mut info) = self.info.write() {
            update(&mut info);
        }
    }

    fn snapshot(&self, requests: u64) -> Snapshot {
        let info = self.info.read().map(|i| i.clone()).unwrap_or_default();
        let secrets = self
            .settings
            .expected_secrets
            .iter()
            .map(|name| {
                (
                    name.clone(),
                    std::env::var_os(name).is_some_and(|v| !v.is_empty()),
                )
            })
            .collect();
        Snapshot {
            info,
            hostname: self.hostname.clone(),
            secrets,
            fallback_image_tag: self.settings.image_tag.clone(),
            uptime_s: self.started.elapsed().as_secs(),
            requests,
        }
    }
}

fn respond(status: StatusCode, content_type: &str, body: String) -> Response<Full<Bytes>> {
    let mut response = Response::new(Full::new(Bytes::from(body)));
    *response.status_mut() = status;
    if let Ok(value) = content_type.parse() {
        response.headers_mut().insert(header::CONTENT_TYPE, value);
    }
    response
}

fn query_value<'a>(query: &'a str, key: &str) -> Option<&'a str> {
    query
        .split('&')
        .filter_map(|pair| pair.split_once('='))
        .find(|(k, _)| *k == key)
        .map(|(_, v)| v)
}

/// One request: `/health`, `/` (HTML, or JSON with `?format=json`; `delay_ms` waits first).
pub async fn handle(state: Arc<State>, request: Request<Incoming>) -> Response<Full<Bytes>> {
    if request.method() != Method::GET && request.method() != Method::HEAD {
        return respond(
            StatusCode::METHOD_NOT_ALLOWED,
            "text/plain",
            "GET only\n".into(),
        );
    }
    let query = request.uri().query().unwrap_or("");
    match request.uri().path() {
        "/health" if state.draining.load(Ordering::SeqCst) => respond(
            StatusCode::SERVICE_UNAVAILABLE,
            "text/plain",
            "draining\n".into(),
        ),
        "/health" => respond(StatusCode::OK, "text/plain", "ok\n".into()),
        "/" => {
            let requests = state.requests.fetch_add(1, Ordering::SeqCst) + 1;
            if let Some(ms) = query_value(query, "delay_ms").and_then(|v| v.parse::<u64>().ok()) {
                tokio::time::sleep(Duration::from_millis(ms).min(MAX_DELAY)).await;
            }
            let snapshot = state.snapshot(requests);
            if query_value(query, "format") == Some("json") {
                respond(
                    StatusCode::OK,
                    "application/json",
                    format!("{}\n", snapshot.json()),
                )
            } else {
                respond(StatusCode::OK, "text/html; charset=utf-8", snapshot.html())
            }
        }
        _ => respond(StatusCode::NOT_FOUND, "text/plain", "not found\n".into()),
    }
}

fn serve_one(state: &Arc<State>, graceful: &GracefulShutdown, stream: tokio::net::TcpStream) {
    let state = state.clone();
    let service = service_fn(move |request| {
        let state = state.clone();
        async move { Ok::<_, std::convert::Infallible>(handle(state, request).await) }
    });
    let connection = http1::Builder::new().serve_connection(TokioIo::new(stream), service);
    let watched = graceful.watch(connection);
    tokio::spawn(async move {
        let _ = watched.await;
    });
}

/// Serves until `stop` resolves, then drains and shuts down as the module says.
pub async fn run(listener: TcpListener, state: Arc<State>, stop: impl Future<Output = ()>) {
    let graceful = GracefulShutdown::new();
    tokio::pin!(stop);
    loop {
        tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok((stream, _)) => serve_one(&state, &graceful, stream),
                Err(error) => crate::log("accept_failed", &error.to_string()),
            },
            () = &mut stop => break,
        }
    }
    state.draining.store(true, Ordering::SeqCst);
    let (drain, grace) = (state.settings.drain, state.settings.grace);
    crate::log(
        "draining",
        &format!(
            "/health answers 503 for {} s, then the listener closes",
            drain.as_secs()
        ),
    );
    let drained = tokio::time::sleep(drain);
    tokio::pin!(drained);
    loop {
        tokio::select! {
            accepted = listener.accept() => if let Ok((stream, _)) = accepted {
                serve_one(&state, &graceful, stream);
            },
            () = &mut drained => break,
        }
    }
    drop(listener);
    tokio::select! {
        () = graceful.shutdown() => crate::log("stopped", "every in-flight request completed"),
        () = tokio::time::sleep(grace) => crate::log("stopped", &format!("requests still open after {} s were cut", grace.as_secs())),
    }
}
