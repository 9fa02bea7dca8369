//! Create, update, delete and resume for `Custom::ExampleParameter`.

use crate::error::ExampleError;
use crate::properties::{On, ParameterProperties};
use aws_sdk_ssm::types::{ParameterType, Tag};
use custom_resource::{Completion, Context, Outcome, Request, RequestType, Resource};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use std::time::{Duration, SystemTime};

/// Tag that records which CloudFormation request created a parameter, so a duplicate delivery
/// of that request adopts it instead of failing.
const REQUEST_TAG: &str = "custom-resource:request-id";

pub struct ExampleParameter {
    ssm: aws_sdk_ssm::Client,
}

#[derive(Debug, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
struct Progress {
    ready_at_ms: u64,
    physical_id: String,
    replaced: bool,
}

fn now_ms() -> u64 {
    custom_resource::epoch_ms(SystemTime::now())
}

impl ExampleParameter {
    pub fn new(ssm: aws_sdk_ssm::Client) -> Self {
        Self { ssm }
    }

    async fn knobs(&self, on: On, properties: &ParameterProperties) -> Result<(), ExampleError> {
        if let Some(marker) = &properties.crash_once {
            if std::fs::metadata(marker).is_err() {
                let _ = std::fs::write(marker, b"crashed once");
                // A hard crash, as an out-of-memory kill would be: nothing can answer.
                std::process::abort();
            }
        }
        if properties.panic_on == Some(on) {
            panic!("PanicOn asked for a panic in {on:?}");
        }
        if properties.fail_on == Some(on) {
            let mut message = format!("{on:?} failed because FailOn asked for it");
            if let Some(size) = properties.reason_bytes {
                while message.len() < size {
                    message.push_str(" padding");
                }
            }
            return Err(ExampleError::Asked(message));
        }
        if let Some(seconds) = properties.hang_seconds {
            tokio::time::sleep(Duration::from_secs(seconds)).await;
        }
        Ok(())
    }

    async fn put(
        &self,
        ctx: &Context,
        properties: &ParameterProperties,
        overwrite: bool,
    ) -> Result<i64, ExampleError> {
        let mut request = self
            .ssm
            .put_parameter()
            .name(&properties.name)
            .value(&properties.value)
            .r#type(ParameterType::SecureString)
            .overwrite(overwrite)
            .set_description(properties.description.clone());
        if !overwrite {
            // Tags cannot be sent together with Overwrite.
            for (key, value) in [
                (REQUEST_TAG, ctx.request_id.as_str()),
                (
                    "custom-resource:logical-id",
                    ctx.logical_resource_id.as_str(),
                ),
                ("custom-resource:stack", ctx.stack_name()),
            ] {
                let tag = Tag::builder()
                    .key(key)
                    .value(value)
                    .build()
                    .map_err(|e| ExampleError::Asked(e.to_string()))?;
                request = request.tags(tag);
            }
        }
        match request.send().await {
            Ok(output) => Ok(output.version()),
            Err(error)
                if error
                    .as_service_error()
                    .is_some_and(|e| e.is_parameter_already_exists()) =>
            {
                self.adopt(ctx, &properties.name).await
            }
            Err(error) => Err(ExampleError::aws("PutParameter", error)),
        }
    }

    /// A parameter with our name exists: it is ours only if this same request created it.
    async fn adopt(&self, ctx: &Context, name: &str) -> Result<i64, ExampleError> {
        let tags = self
            .ssm
            .list_tags_for_resource()
            .resource_type(aws_sdk_ssm::types::ResourceTypeForTagging::Parameter)
            .resource_id(name)
            .send()
            .await
            .map_err(|e| ExampleError::aws("ListTagsForResource", e))?;
        let ours = tags
            .tag_list()
            .iter()
            .any(|tag| tag.key() == REQUEST_TAG && tag.value() == ctx.request_id);
        if !ours {
            return Err(ExampleError::NameTaken {
                name: name.to_owned(),
            });
        }
        tracing::info!(
            name,
            "duplicate delivery: adopting the parameter this request already created"
        );
        let found = self
            .ssm
            .get_parameter()
            .name(name)
            .send()
            .await
            .map_err(|e| ExampleError::aws("GetParameter", e))?;
        Ok(found.parameter().map(|p| p.version()).unwrap_or_default())
    }

    fn finish(
        &self,
        physical_id: &str,
        replaced: bool,
        created: bool,
        properties: &ParameterProperties,
        version: Option<i64>,
    ) -> Completion {
        let mut completion = if created {
            Completion::created(physical_id)
        } else if replaced {
            Completion::replaced(physical_id)
        } else {
            Completion::unchanged()
        };
        completion = completion
            .data("Name", physical_id)
            .data("Type", "SecureString")
            .secret_data("Value", properties.value.clone());
        if let Some(version) = version {
            completion = completion.data("Version", version.to_string());
        }
        if let Some(size) = properties.data_bytes {
            completion = completion.data("Padding", "x".repeat(size));
        }
        completion
    }

    fn maybe_wait(
        &self,
        properties: &ParameterProperties,
        physical_id: &str,
        replaced: bool,
        done: Completion,
    ) -> Outcome {
        match properties.wait_seconds {
            Some(seconds) if seconds > 0 => Outcome::pending(
                format!("parameter {physical_id} to settle ({seconds} s)"),
                Progress {
                    ready_at_ms: now_ms() + seconds * 1000,
                    physical_id: physical_id.to_owned(),
                    replaced,
                },
            )
            .with_physical_id(physical_id),
            _ => Outcome::Done(done),
        }
    }
}

impl Resource for ExampleParameter {
    type Properties = ParameterProperties;
    type Error = ExampleError;

    fn is_not_found(&self, error: &ExampleError) -> bool {
        error.code() == Some("ParameterNotFound")
    }

    async fn create(
        &self,
        ctx: &Context,
        properties: &ParameterProperties,
    ) -> Result<Outcome, ExampleError> {
        self.knobs(On::Create, properties).await?;
        let version = self.put(ctx, properties, false).await?;
        let done = self.finish(&properties.name, false, true, properties, Some(version));
        Ok(self.maybe_wait(properties, &properties.name, false, done))
    }

    async fn update(
        &self,
        ctx: &Context,
        physical_id: &str,
        old: &ParameterProperties,
        new: &ParameterProperties,
    ) -> Result<Outcome, ExampleError> {
        self.knobs(On::Update, new).await?;
        if old.name != new.name {
            // Name forces replacement: make the new one; CloudFormation deletes the old later.
            let version = self.put(ctx, new, false).await?;
            let done = self.finish(&new.name, true, false, new, Some(version));
            return Ok(self.maybe_wait(new, &new.name, true, done));
        }
        let version = self.put(ctx, new, true).await?;
        let done = self.finish(physical_id, false, false, new, Some(version));
        Ok(self.maybe_wait(new, physical_id, false, done))
    }

    async fn delete(
        &self,
        _ctx: &Context,
        physical_id: &str,
        properties: &ParameterProperties,
    ) -> Result<Outcome, ExampleError> {
        self.knobs(On::Delete, properties).await?;
        self.ssm
            .delete_parameter()
            .name(physical_id)
            .send()
            .await
            .map_err(|e| ExampleError::aws("DeleteParameter", e))?;
        Ok(Completion::unchanged().into())
    }

    async fn resume(
        &self,
        ctx: &Context,
        request: &Request<ParameterProperties>,
        progress: &Value,
    ) -> Result<Outcome, ExampleError> {
        let saved: Progress = serde_json::from_value(progress.clone())
            .map_err(|e| ExampleError::Asked(format!("unreadable progress: {e}")))?;
        let properties = match request {
            Request::Create { properties } => properties,
            Request::Update { new, .. } => new,
            Request::Delete { properties, .. } => properties,
        };
        if now_ms() < saved.ready_at_ms {
            let left = (saved.ready_at_ms - now_ms()).div_ceil(1000);
            return Ok(Outcome::pending(
                format!("parameter {} to settle ({left} s left)", saved.physical_id),
                saved,
            ));
        }
        let created = ctx.request_type == RequestType::Create;
        Ok(self
            .finish(
                &saved.physical_id,
                saved.replaced,
                created,
                properties,
                None,
            )
            .into())
    }
}
