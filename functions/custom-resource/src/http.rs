//! The one HTTP and TLS stack of every provider binary: hyper 1 through hyper-util's pooled
//! client, hyper-rustls with rustls on ring and the system's roots, HTTP/1.1. The AWS SDK clients
//! use it through [`SdkHttpClient`] (the SDK crates are built without their default client, which
//! would link a second connector and HTTP/2), and the response PUT ([`crate::deliver`]) uses it
//! directly.

use aws_smithy_runtime_api::client::http::{
    HttpClient, HttpConnector, HttpConnectorFuture, HttpConnectorSettings, SharedHttpClient,
    SharedHttpConnector,
};
use aws_smithy_runtime_api::client::orchestrator::{HttpRequest, HttpResponse};
use aws_smithy_runtime_api::client::result::ConnectorError;
use aws_smithy_runtime_api::client::runtime_components::RuntimeComponents;
use aws_smithy_types::body::SdkBody;
use aws_smithy_types::retry::ErrorKind;
use hyper_rustls::{HttpsConnector, HttpsConnectorBuilder};
use hyper_util::client::legacy::connect::HttpConnector as TcpConnector;
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use std::error::Error as StdError;
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// A pooled HTTPS (and, where the caller allows it, plain HTTP) client with a body type `B`.
pub type HttpsClient<B> = Client<HttpsConnector<TcpConnector>, B>;

/// The client, with `connect_timeout` for the TCP connect. Fails only when the system's TLS roots
/// cannot be loaded.
pub fn https_client<B>(connect_timeout: Option<Duration>) -> Result<HttpsClient<B>, String>
where
    B: http_body::Body + Send + 'static,
    B::Data: Send,
{
    let mut tcp = TcpConnector::new();
    tcp.set_connect_timeout(connect_timeout);
    tcp.set_nodelay(true);
    // https for AWS; plain http where the caller allows it (local endpoints, checked response URLs).
    tcp.enforce_http(false);
    let https = HttpsConnectorBuilder::new()
        .with_provider_and_native_roots(rustls::crypto::ring::default_provider())
        .map_err(|error| format!("could not load the system's TLS roots: {error}"))?
        .https_or_http()
        .enable_http1()
        .wrap_connector(tcp);
    Ok(Client::builder(TokioExecutor::new()).build(https))
}

/// The AWS SDK's HTTP client: [`https_client`] per connect timeout the SDK asks for (one pool
/// each, kept for the process), the read timeout on the response head, and hyper's errors
/// classified as the SDK's own client classifies them (so its retries behave the same).
#[derive(Debug, Clone, Default)]
pub struct SdkHttpClient {
    pools: Arc<Mutex<Pools>>,
}

/// A client per connect timeout.
type Pools = Vec<(Option<Duration>, HttpsClient<SdkBody>)>;

impl SdkHttpClient {
    pub fn shared() -> SharedHttpClient {
        SharedHttpClient::new(Self::default())
    }

    fn pool(&self, connect_timeout: Option<Duration>) -> Result<HttpsClient<SdkBody>, String> {
        let mut pools = self
            .pools
            .lock()
            .map_err(|_| "HTTP pool lock poisoned".to_owned())?;
        if let Some((_, client)) = pools.iter().find(|(t, _)| *t == connect_timeout) {
            return Ok(client.clone());
        }
        let client = https_client(connect_timeout)?;
        pools.push((connect_timeout, client.clone()));
        Ok(client)
    }
}

impl HttpClient for SdkHttpClient {
    fn http_connector(
        &self,
        settings: &HttpConnectorSettings,
        _components: &RuntimeComponents,
    ) -> SharedHttpConnector {
        SharedHttpConnector::new(SdkConnector {
            client: self.pool(settings.connect_timeout()),
            read_timeout: settings.read_timeout(),
        })
    }
}

#[derive(Debug)]
struct SdkConnector {
    client: Result<HttpsClient<SdkBody>, String>,
    read_timeout: Option<Duration>,
}

impl HttpConnector for SdkConnector {
    fn call(&self, request: HttpRequest) -> HttpConnectorFuture {
        let (client, read_timeout) = (self.client.clone(), self.read_timeout);
        HttpConnectorFuture::new(async move {
            let client = client.map_err(|message| ConnectorError::other(message.into(), None))?;
            let request = request
                .try_into_http1x()
                .map_err(|error| ConnectorError::user(error.into()))?;
            let sent = client.request(request);
            let response = match read_timeout {
                Some(limit) => tokio::time::timeout(limit, sent).await.map_err(|_| {
                    ConnectorError::timeout(format!("no response within {limit:?}").into())
                })?,
                None => sent.await,
            }
            .map_err(classify)?;
            HttpResponse::try_from(response.map(SdkBody::from_body_1_x))
                .map_err(|error| ConnectorError::other(error.into(), None))
        })
    }
}

/// As aws-smithy-http-client's `downcast_error`: timeouts, user errors, I/O (retried), an
/// incomplete message (transient, retried), anything else.
fn classify(error: hyper_util::client::legacy::Error) -> ConnectorError {
    let hyper_error = find_source::<hyper::Error>(&error);
    let io = error.is_connect() || find_source::<std::io::Error>(&error).is_some();
    match hyper_error {
        Some(e) if e.is_timeout() => ConnectorError::timeout(error.into()),
        Some(e) if e.is_user() => ConnectorError::user(error.into()),
        Some(e) if e.is_closed() || e.is_canceled() => ConnectorError::io(error.into()),
        Some(e) if e.is_incomplete_message() => {
            ConnectorError::other(error.into(), Some(ErrorKind::TransientError))
        }
        _ if io => ConnectorError::io(error.into()),
        _ => ConnectorError::other(error.into(), None),
    }
}

fn find_source<'a, E: StdError + 'static>(error: &'a (dyn StdError + 'static)) -> Option<&'a E> {
    let mut next = Some(error);
    while let Some(error) = next {
        if let Some(found) = error.downcast_ref::<E>() {
            return Some(found);
        }
        next = error.source();
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::{Read, Write};

    /// One canned HTTP answer on a loopback port; returns the URL and the request it read.
    fn serve_once(answer: &'static str) -> (String, std::thread::JoinHandle<String>) {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let url = format!("http://{}/", listener.local_addr().unwrap());
        let handle = std::thread::spawn(move || {
            let (mut stream, _) = listener.accept().unwrap();
            let mut buffer = [0u8; 4096];
            let n = stream.read(&mut buffer).unwrap();
            stream.write_all(answer.as_bytes()).unwrap();
            String::from_utf8_lossy(&buffer[..n]).into_owned()
        });
        (url, handle)
    }

    fn connector() -> SdkConnector {
        SdkConnector {
            client: SdkHttpClient::default().pool(Some(Duration::from_secs(1))),
            read_timeout: Some(Duration::from_secs(2)),
        }
    }

    #[tokio::test]
    async fn an_sdk_request_goes_out_as_http1_and_its_answer_comes_back_whole() {
        let (url, server) = serve_once(
            "HTTP/1.1 200 OK\r\ncontent-length: 5\r\nx-amzn-requestid: r-1\r\n\r\nhello",
        );
        let request = http::Request::post(&url)
            .header(
                "x-amz-target",
                "AmazonEC2ContainerServiceV20141113.DescribeServices",
            )
            .body(SdkBody::from("{}"))
            .unwrap();
        let response = connector()
            .call(HttpRequest::try_from(request).unwrap())
            .await
            .unwrap();
        assert_eq!(response.status().as_u16(), 200);
        assert_eq!(response.headers().get("x-amzn-requestid"), Some("r-1"));
        assert_eq!(
            response.body().bytes(),
            None,
            "a streamed body, read by the SDK"
        );
        let sent = server.join().unwrap();
        assert!(sent.starts_with("POST / HTTP/1.1\r\n"), "{sent}");
        assert!(sent.contains("x-amz-target: AmazonEC2ContainerServiceV20141113.DescribeServices"));
    }

    #[tokio::test]
    async fn a_refused_connection_is_an_io_error_the_sdk_retries() {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let request = http::Request::get(format!("http://127.0.0.1:{port}/"))
            .body(SdkBody::empty())
            .unwrap();
        let error = connector()
            .call(HttpRequest::try_from(request).unwrap())
            .await
            .unwrap_err();
        assert!(error.is_io(), "{error:?}");
    }

    #[tokio::test]
    async fn no_answer_within_the_read_timeout_is_a_timeout() {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let url = format!("http://{}/", listener.local_addr().unwrap());
        let connector = SdkConnector {
            read_timeout: Some(Duration::from_millis(200)),
            ..connector()
        };
        let request = http::Request::get(url).body(SdkBody::empty()).unwrap();
        let error = connector
            .call(HttpRequest::try_from(request).unwrap())
            .await
            .unwrap_err();
        assert!(error.is_timeout(), "{error:?}");
        drop(listener);
    }

    #[test]
    fn one_pool_per_connect_timeout() {
        let client = SdkHttpClient::default();
        client.pool(Some(Duration::from_secs(1))).unwrap();
        client.pool(Some(Duration::from_secs(1))).unwrap();
        client.pool(None).unwrap();
        assert_eq!(client.pools.lock().unwrap().len(), 2);
    }
}
