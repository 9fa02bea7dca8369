//! Delivering the answer: the response-URL allow-list and the PUT with retries.

use crate::error::Error;
use crate::http::HttpsClient;
use bytes::Bytes;
use http::{Request, StatusCode};
use http_body_util::{BodyExt, Full};
use std::future::Future;
use std::time::Duration;
use tokio::time::Instant;

/// The DNS suffix of AWS endpoints in every partition, as the SDK's partition table lists them
/// (aws-smithy / aws-sdk `partitions.json`: `dnsSuffix` of aws, aws-us-gov, aws-cn, aws-iso,
/// aws-iso-b, aws-iso-e, aws-iso-f and aws-eusc). CloudFormation's pre-signed response URLs are
/// S3 URLs in the stack's own partition, so each partition's suffix must be accepted.
pub const AWS_DNS_SUFFIXES: &[&str] = &[
    "amazonaws.com",    // aws, aws-us-gov
    "amazonaws.com.cn", // aws-cn
    "c2s.ic.gov",       // aws-iso
    "sc2s.sgov.gov",    // aws-iso-b
    "cloud.adc-e.uk",   // aws-iso-e
    "csp.hci.ic.gov",   // aws-iso-f
    "amazonaws.eu",     // aws-eusc (European Sovereign Cloud)
];

/// Which response URLs the function may PUT to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum UrlPolicy {
    /// `https://` on an AWS host of any partition ([`AWS_DNS_SUFFIXES`]): CloudFormation's
    /// pre-signed S3 URLs.
    AmazonS3,
    /// Any URL starting with one of these prefixes (`RESPONSE_URL_ALLOWED_PREFIXES`).
    Prefixes(Vec<String>),
}

impl UrlPolicy {
    /// Reads `RESPONSE_URL_ALLOWED_PREFIXES` (comma-separated URL prefixes).
    pub fn from_env() -> Self {
        Self::from_setting(
            std::env::var("RESPONSE_URL_ALLOWED_PREFIXES")
                .ok()
                .as_deref(),
        )
    }

    pub fn from_setting(setting: Option<&str>) -> Self {
        let prefixes: Vec<String> = setting
            .unwrap_or_default()
            .split(',')
            .map(str::trim)
            .filter(|prefix| !prefix.is_empty())
            .map(str::to_owned)
            .collect();
        if prefixes.is_empty() {
            UrlPolicy::AmazonS3
        } else {
            UrlPolicy::Prefixes(prefixes)
        }
    }

    pub fn allows(&self, url: &str) -> bool {
        match self {
            UrlPolicy::AmazonS3 => match url::Url::parse(url) {
                Ok(parsed) => {
                    parsed.scheme() == "https"
                        && parsed.host_str().is_some_and(|host| {
                            AWS_DNS_SUFFIXES.iter().any(|suffix| {
                                host.strip_suffix(suffix)
                                    .is_some_and(|rest| rest.ends_with('.'))
                            })
                        })
                }
                Err(_) => false,
            },
            UrlPolicy::Prefixes(prefixes) => prefixes
                .iter()
                .any(|prefix| url.starts_with(prefix.as_str())),
        }
    }

    pub fn describe(&self) -> String {
        match self {
            UrlPolicy::AmazonS3 => format!(
                "unset: only https URLs on an AWS host ({})",
                AWS_DNS_SUFFIXES.join(", ")
            ),
            UrlPolicy::Prefixes(prefixes) => prefixes.join(","),
        }
    }
}

/// Sends a rendered body to the response URL. The HTTP implementation is [`HttpDelivery`]; tests
/// substitute a recorder.
pub trait Deliver: Send + Sync + 'static {
    fn deliver(
        &self,
        url: &str,
        body: Vec<u8>,
        give_up_at: Instant,
    ) -> impl Future<Output = Result<u32, Error>> + Send;
}

/// PUT with exponential backoff on connection errors, timeouts and 5xx. A 4xx is final (the
/// pre-signed URL is wrong or expired; retrying cannot help). On the client the AWS SDK clients
/// use too ([`crate::http`]), so every binary carries one HTTP and TLS stack.
#[derive(Clone)]
pub struct HttpDelivery {
    client: HttpsClient<Full<Bytes>>,
    max_attempts: u32,
    first_backoff: Duration,
}

impl std::fmt::Debug for HttpDelivery {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HttpDelivery")
            .field("max_attempts", &self.max_attempts)
            .finish()
    }
}

/// How long one PUT may take, connection included.
const ATTEMPT_TIMEOUT: Duration = Duration::from_secs(15);

impl HttpDelivery {
    pub fn new() -> Result<Self, Error> {
        let client =
            crate::http::https_client(Some(Duration::from_secs(5))).map_err(|message| {
                Error::Delivery {
                    attempts: 0,
                    message,
                }
            })?;
        Ok(Self {
            client,
            max_attempts: 8,
            first_backoff: Duration::from_millis(200),
        })
    }

    /// One PUT: `Ok(status, first 300 characters of the body)`, or the transport error.
    async fn put(&self, url: &str, body: &[u8]) -> Result<(StatusCode, String), String> {
        // S3 pre-signed PUTs are signed without a content type: send an empty one.
        let request = Request::put(url)
            .header("Content-Type", "")
            .body(Full::new(Bytes::copy_from_slice(body)))
            .map_err(|error| format!("invalid request: {error}"))?;
        let exchange = async {
            let response = self
                .client
                .request(request)
                .await
                .map_err(|error| crate::error::chain(&error))?;
            let status = response.status();
            let text = match response.into_body().collect().await {
                Ok(collected) => String::from_utf8_lossy(&collected.to_bytes())
                    .chars()
                    .take(300)
                    .collect(),
                Err(_) => String::new(),
            };
            Ok((status, text))
        };
        tokio::time::timeout(ATTEMPT_TIMEOUT, exchange)
            .await
            .unwrap_or_else(|_| Err(format!("no answer within {} s", ATTEMPT_TIMEOUT.as_secs())))
    }
}

impl Deliver for HttpDelivery {
    async fn deliver(&self, url: &str, body: Vec<u8>, give_up_at: Instant) -> Result<u32, Error> {
        let mut backoff = self.first_backoff;
        let mut attempt = 0;
        loop {
            attempt += 1;
            let (retryable, message) = match self.put(url, &body).await {
                Ok((status, _)) if status.is_success() => return Ok(attempt),
                Ok((status, snippet)) => (
                    status.is_server_error() || status.as_u16() == 429,
                    format!("HTTP {status}: {snippet}"),
                ),
                Err(message) => (true, message),
            };
            let out_of_time = Instant::now() + backoff >= give_up_at;
            if !retryable || attempt >= self.max_attempts || out_of_time {
                return Err(Error::Delivery {
                    attempts: attempt,
                    message,
                });
            }
            tracing::warn!(attempt, error = %message, retry_in_ms = backoff.as_millis() as u64, "response PUT failed; retrying");
            tokio::time::sleep(backoff).await;
            backoff = (backoff * 2).min(Duration::from_secs(4));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn by_default_only_https_urls_on_amazonaws_hosts_are_allowed() {
        let policy = UrlPolicy::from_setting(None);
        assert!(policy.allows("https://cloudformation-custom-resource-response-useast1.s3.amazonaws.com/arn%3A?X-Amz-Signature=1"));
        assert!(policy.allows("https://s3.eu-west-1.amazonaws.com/bucket/key"));
        assert!(!policy.allows("http://s3.amazonaws.com/bucket/key"));
        assert!(!policy.allows("https://amazonaws.com.evil.example/key"));
        assert!(!policy.allows("https://evil.example/?x=.amazonaws.com"));
        assert!(!policy.allows("http://127.0.0.1:8080/response"));
        assert!(!policy.allows("not a url"));
    }

    /// One pre-signed response URL per partition, shaped as CloudFormation sends them.
    #[test]
    fn response_urls_of_every_aws_partition_are_allowed() {
        let policy = UrlPolicy::from_setting(None);
        for (partition, url) in [
            ("aws", "https://cloudformation-custom-resource-response-useast1.s3.amazonaws.com/arn%3Aaws%3A?X-Amz-Signature=1"),
            ("aws-us-gov", "https://cloudformation-custom-resource-response-usgovwest1.s3.us-gov-west-1.amazonaws.com/arn%3Aaws-us-gov%3A?X-Amz-Signature=1"),
            ("aws-cn", "https://cloudformation-custom-resource-response-cnnorth1.s3.cn-north-1.amazonaws.com.cn/arn%3Aaws-cn%3A?X-Amz-Signature=1"),
            ("aws-iso", "https://cloudformation-custom-resource-response-usisoeast1.s3.us-iso-east-1.c2s.ic.gov/x?X-Amz-Signature=1"),
            ("aws-iso-b", "https://cloudformation-custom-resource-response-usisobeast1.s3.us-isob-east-1.sc2s.sgov.gov/x?X-Amz-Signature=1"),
            ("aws-iso-e", "https://cloudformation-custom-resource-response-euisoewest1.s3.eu-isoe-west-1.cloud.adc-e.uk/x?X-Amz-Signature=1"),
            ("aws-iso-f", "https://cloudformation-custom-resource-response-usisofsouth1.s3.us-isof-south-1.csp.hci.ic.gov/x?X-Amz-Signature=1"),
            ("aws-eusc", "https://cloudformation-custom-resource-response-euscdeeast1.s3.eusc-de-east-1.amazonaws.eu/x?X-Amz-Signature=1"),
        ] {
            assert!(policy.allows(url), "{partition}: {url}");
        }
    }

    #[test]
    fn look_alike_hosts_of_other_partitions_are_refused() {
        let policy = UrlPolicy::from_setting(None);
        assert!(!policy.allows("https://evilamazonaws.com.cn/key"));
        assert!(!policy.allows("https://amazonaws.com.cn.evil.example/key"));
        assert!(!policy.allows("https://c2s.ic.gov.evil.example/key"));
        assert!(!policy.allows("http://s3.cn-north-1.amazonaws.com.cn/key"));
    }

    #[test]
    fn configured_prefixes_replace_the_default() {
        let policy = UrlPolicy::from_setting(Some(" http://127.0.0.1:8080/ , http://localhost:9/"));
        assert!(policy.allows("http://127.0.0.1:8080/responses/1"));
        assert!(policy.allows("http://localhost:9/x"));
        assert!(!policy.allows("http://127.0.0.1:8081/responses/1"));
        assert!(!policy.allows("https://s3.amazonaws.com/bucket/key"));
    }

    #[test]
    fn an_empty_setting_means_the_default() {
        assert_eq!(UrlPolicy::from_setting(Some(" , ")), UrlPolicy::AmazonS3);
    }
}
