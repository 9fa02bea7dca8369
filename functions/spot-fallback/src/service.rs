//! The thin layer: reads the managed service (DescribeServices with tags, its PRIMARY deployment's
//! tasks), lets `decide` choose, then writes the state tag and sends at most one UpdateService.
//! The state tag is written first: if UpdateService then fails, Lambda's retry finds the state
//! and sends the strategy that follows from it.

use crate::decide::{self, Observed, Plan};
use crate::error::FallbackError;
use crate::event::{self, Envelope, Seen};
use aws_sdk_ecs::types::{
    CapacityProviderStrategyItem, DeploymentRolloutState, Service, ServiceField,
};
use custom_resource::ecs::{self, tag_of};
use custom_resource::fallback::{self, Item, State, SPOT};
use custom_resource::tags::{SPOT_FALLBACK, TEMPLATE_STRATEGY};
use serde_json::{json, Value};
use tracing::{info, warn};

/// Set by the template (cloudformation/spot-fallback.yaml).
pub struct Settings {
    pub cluster: String,
    pub service: String,
    /// Seconds Spot must hold before the template's strategy is kept, and the first wait before
    /// retrying it.
    pub quiet: i64,
}

impl Settings {
    pub fn from_env() -> Result<Self, FallbackError> {
        Self::from_lookup(|name| std::env::var(name).ok())
    }

    pub fn from_lookup(lookup: impl Fn(&str) -> Option<String>) -> Result<Self, FallbackError> {
        let required = |name: &'static str| {
            lookup(name)
                .filter(|v| !v.is_empty())
                .ok_or(FallbackError::Config {
                    name,
                    message: "missing: set it to the managed service's value".into(),
                })
        };
        let minutes = required("QUIET_PERIOD_MINUTES")?;
        let quiet =
            minutes
                .parse::<i64>()
                .ok()
                .filter(|m| *m > 0)
                .ok_or(FallbackError::Config {
                    name: "QUIET_PERIOD_MINUTES",
                    message: format!("{minutes:?} is not a whole number of minutes above 0"),
                })?
                * 60;
        Ok(Settings {
            cluster: required("CLUSTER_NAME")?,
            service: required("SERVICE_NAME")?,
            quiet,
        })
    }
}

pub struct Managed {
    ecs: aws_sdk_ecs::Client,
    settings: Settings,
}

fn now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() as i64)
}

fn items(strategy: &[CapacityProviderStrategyItem]) -> Vec<Item> {
    strategy
        .iter()
        .map(|i| {
            Item::new(
                i.capacity_provider(),
                i64::from(i.weight()),
                i64::from(i.base()),
            )
        })
        .collect()
}

fn strategy_request(items: &[Item]) -> Result<Vec<CapacityProviderStrategyItem>, FallbackError> {
    items
        .iter()
        .map(|i| {
            let number = |v: i64| {
                i32::try_from(v).map_err(|_| {
                    FallbackError::Service(format!(
                        "{} weight/base {v} is out of range",
                        i.provider
                    ))
                })
            };
            CapacityProviderStrategyItem::builder()
                .capacity_provider(&i.provider)
                .weight(number(i.weight)?)
                .base(number(i.base)?)
                .build()
                .map_err(|e| FallbackError::Service(e.to_string()))
        })
        .collect()
}

impl Managed {
    pub fn new(ecs: aws_sdk_ecs::Client, settings: Settings) -> Self {
        Managed { ecs, settings }
    }

    pub async fn handle(&self, payload: Value) -> Result<Value, FallbackError> {
        let envelope: Envelope = serde_json::from_value(payload)
            .map_err(|e| FallbackError::Service(format!("not an EventBridge event: {e}")))?;
        let (cluster, name) = (&self.settings.cluster, &self.settings.service);
        let signal = match event::classify(&envelope, cluster, name) {
            Seen::Signal(signal, what) => {
                info!(signal = ?signal, event = what, "event");
                signal
            }
            Seen::Ignored(why) => {
                info!(reason = %why, "event ignored");
                return Ok(json!({"ignored": why}));
            }
        };
        let Some((service, observed)) = self.observe().await? else {
            info!(service = %name, "service not active: nothing to do");
            return Ok(json!({"ignored": "service not active"}));
        };
        let now = event::epoch_seconds(&envelope, now());
        let plan = decide::decide(&observed, signal, now, self.settings.quiet);
        self.act(&service, &observed, &plan).await?;
        Ok(json!({
            "state": plan.state.to_string(),
            "updated": plan.strategy.is_some(),
            "why": plan.why,
        }))
    }

    async fn observe(&self) -> Result<Option<(Service, Observed)>, FallbackError> {
        let (cluster, name) = (&self.settings.cluster, &self.settings.service);
        let described = self
            .ecs
            .describe_services()
            .cluster(cluster)
            .services(name)
            .include(ServiceField::Tags)
            .send()
            .await
            .map_err(FallbackError::aws("DescribeServices"))?;
        let Some(service) = described
            .services()
            .first()
            .filter(|s| s.status() == Some("ACTIVE"))
            .cloned()
        else {
            return Ok(None);
        };
        let primary = service
            .deployments()
            .iter()
            .find(|d| d.status() == Some("PRIMARY"));
        let primary_id = primary.and_then(|d| d.id()).unwrap_or_default().to_owned();
        let (placed, spot_placed) = self.placed(&primary_id).await?;
        let desired = i64::from(service.desired_count());
        let settled = service.deployments().len() == 1
            && primary.is_some_and(|d| {
                d.rollout_state() == Some(&DeploymentRolloutState::Completed)
                    && i64::from(d.running_count()) == desired
            });
        let current = items(service.capacity_provider_strategy());
        let state = State::parse(tag_of(&service, SPOT_FALLBACK)).unwrap_or_else(|problem| {
            warn!(%problem, "unreadable state tag: treated as normal");
            State::Normal
        });
        let template = match tag_of(&service, TEMPLATE_STRATEGY).map(fallback::parse_strategy) {
            Some(Ok(template)) => template,
            Some(Err(problem)) => {
                return Err(FallbackError::Service(format!(
                    "service {name}: tag {TEMPLATE_STRATEGY} is unreadable ({problem}); update the stack to rewrite it"
                )))
            }
            // A service made before the tag: its strategy is the template's unless we changed it.
            None if state == State::Normal => current.clone(),
            None => {
                return Err(FallbackError::Service(format!(
                    "service {name}: in fallback without tag {TEMPLATE_STRATEGY}; update the stack to rewrite it"
                )))
            }
        };
        let observed = Observed {
            desired,
            placed,
            spot_placed,
            settled,
            template,
            current,
            state,
        };
        Ok(Some((service, observed)))
    }

    /// The PRIMARY deployment's tasks running or starting, and how many of them are on Spot.
    async fn placed(&self, deployment: &str) -> Result<(i64, i64), FallbackError> {
        let (cluster, name) = (&self.settings.cluster, &self.settings.service);
        let mut arns = Vec::new();
        let mut pages = self
            .ecs
            .list_tasks()
            .cluster(cluster)
            .service_name(name)
            .desired_status(aws_sdk_ecs::types::DesiredStatus::Running)
            .into_paginator()
            .send();
        while let Some(page) = pages.next().await {
            arns.extend(
                page.map_err(FallbackError::aws("ListTasks"))?
                    .task_arns()
                    .iter()
                    .cloned(),
            );
        }
        let (mut placed, mut spot) = (0, 0);
        for batch in arns.chunks(100) {
            let described = self
                .ecs
                .describe_tasks()
                .cluster(cluster)
                .set_tasks(Some(batch.to_vec()))
                .send()
                .await
                .map_err(FallbackError::aws("DescribeTasks"))?;
            for task in described.tasks() {
                let of_primary =
                    deployment.is_empty() || task.started_by().is_none_or(|s| s == deployment);
                if of_primary && task.last_status() != Some("STOPPED") {
                    placed += 1;
                    spot += i64::from(task.capacity_provider_name() == Some(SPOT));
                }
            }
        }
        Ok((placed, spot))
    }

    async fn act(&self, service: &Service, o: &Observed, plan: &Plan) -> Result<(), FallbackError> {
        let arn = service.service_arn().unwrap_or_default();
        if plan.state != o.state {
            if plan.state == State::Normal {
                self.ecs
                    .untag_resource()
                    .resource_arn(arn)
                    .tag_keys(SPOT_FALLBACK)
                    .send()
                    .await
                    .map_err(FallbackError::aws("UntagResource"))?;
            } else {
                self.ecs
                    .tag_resource()
                    .resource_arn(arn)
                    .tags(ecs::tag(SPOT_FALLBACK, &plan.state.to_string()))
                    .tags(ecs::tag(
                        TEMPLATE_STRATEGY,
                        &fallback::strategy_tag(&o.template),
                    ))
                    .send()
                    .await
                    .map_err(FallbackError::aws("TagResource"))?;
            }
        }
        if let Some(strategy) = &plan.strategy {
            self.ecs
                .update_service()
                .cluster(&self.settings.cluster)
                .service(&self.settings.service)
                .set_capacity_provider_strategy(Some(strategy_request(strategy)?))
                // A new mix only takes effect with a new deployment.
                .force_new_deployment(true)
                .send()
                .await
                .map_err(FallbackError::aws("UpdateService"))?;
        }
        if plan.state != o.state || plan.strategy.is_some() {
            info!(
                service = %self.settings.service,
                from = %o.state,
                to = %plan.state,
                strategy = %fallback::strategy_tag(&plan.state.strategy(&o.template)),
                desired = o.desired,
                placed = o.placed,
                spot_placed = o.spot_placed,
                why = plan.why,
                "spot fallback change"
            );
        } else {
            info!(state = %o.state, why = plan.why, "no change");
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn settings_name_the_missing_or_wrong_variable() {
        let env = |pairs: &'static [(&'static str, &'static str)]| {
            move |name: &str| {
                pairs
                    .iter()
                    .find(|(k, _)| *k == name)
                    .map(|(_, v)| v.to_string())
            }
        };
        let ok = Settings::from_lookup(env(&[
            ("CLUSTER_NAME", "app-dev"),
            ("SERVICE_NAME", "web"),
            ("QUIET_PERIOD_MINUTES", "15"),
        ]))
        .unwrap();
        assert_eq!(
            (ok.cluster.as_str(), ok.service.as_str(), ok.quiet),
            ("app-dev", "web", 900)
        );
        let missing = Settings::from_lookup(env(&[("QUIET_PERIOD_MINUTES", "15")]))
            .err()
            .unwrap();
        assert!(missing.to_string().contains("CLUSTER_NAME"), "{missing}");
        let zero = Settings::from_lookup(env(&[
            ("CLUSTER_NAME", "c"),
            ("SERVICE_NAME", "s"),
            ("QUIET_PERIOD_MINUTES", "0"),
        ]))
        .err()
        .unwrap();
        assert!(zero.to_string().contains("QUIET_PERIOD_MINUTES"), "{zero}");
    }
}
