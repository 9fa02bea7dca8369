//! `Custom::ExampleParameter`: an SSM SecureString parameter, and the library's test subject.
//!
//! A real resource (create, update in place, replace on rename, delete, duplicate-safe create)
//! plus test knobs (FailOn, PanicOn, HangSeconds, WaitSeconds, DataBytes, ReasonBytes) that let
//! the harness in `tests/` drive every protocol path through this binary. See README.md beside it.

mod error;
mod properties;
mod resource;

#[tokio::main]
async fn main() -> Result<(), lambda_runtime::Error> {
    custom_resource::init_tracing();
    let config = custom_resource::sdk_config().await;
    let resource = resource::ExampleParameter::new(custom_resource::client!(aws_sdk_ssm, &config));
    custom_resource::run(resource, &config).await
}
