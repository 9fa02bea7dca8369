//! Create, update, delete and resume for `Custom::Network`: the order of the rounds. What each
//! round does is planned in `plan.rs` from what exists (read back by tags, `state.rs`) and the
//! properties; `apply.rs` makes the calls. A duplicate, retried or handed-over request therefore
//! continues where the last one stopped.

pub use crate::apply::Network;
use crate::apply::{is_code, log_round, Owner};
use crate::error::NetworkError;
use crate::plan::{self, Desired};
use crate::properties::{NatGateways, NetworkProperties};
use crate::state::{discover, filter, Igw, Role, State, TAG_LOGICAL, TAG_REQUEST};
use crate::zones;
use aws_sdk_ec2::types::{AvailabilityZoneOptInStatus, ResourceType};
use custom_resource::{
    AwsError, Completion, Context, Outcome, PhysicalId, Request, RequestType, Resource,
};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use std::collections::BTreeSet;
use std::time::Duration;
use tracing::info;

/// Saved between checks of a pending operation: everything else is read back from EC2, so a
/// resume re-plans exactly what is still to do (the retag included).
#[derive(Debug, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
struct Progress {
    vpc_id: String,
}

/// The EC2 account attribute holding the Elastic IP quota ("EC2-VPC Elastic IPs", Service
/// Quotas code L-0263D0A3; 5 per region by default).
pub const EIP_QUOTA_ATTRIBUTE: &str = "vpc-max-elastic-ips";

/// The account's Elastic IP addresses in use and its quota (None: the account did not report it).
#[derive(Debug, Clone, Copy)]
pub struct AddressRoom {
    pub in_use: usize,
    pub quota: Option<usize>,
}

/// Fails before anything is made when `needed` new addresses do not fit the quota.
pub fn check_address_quota(room: Option<AddressRoom>, needed: usize) -> Result<(), NetworkError> {
    let Some(AddressRoom { in_use, quota }) = room else {
        return Ok(());
    };
    if needed == 0 {
        return Ok(());
    }
    let Some(quota) = quota else {
        info!("the account did not report {EIP_QUOTA_ATTRIBUTE}; not checking the address quota");
        return Ok(());
    };
    match address_shortfall(needed, in_use, quota) {
        Some(message) => Err(NetworkError::Property {
            property: "NatGateways",
            message,
        }),
        None => Ok(()),
    }
}

/// Why the new NAT gateways cannot get their addresses, or None when the quota has room.
pub fn address_shortfall(needed: usize, in_use: usize, quota: usize) -> Option<String> {
    let free = quota.saturating_sub(in_use);
    (needed > free).then(|| {
        format!(
            "needs {needed} new Elastic IP address(es) for its NAT gateways, but the account uses {in_use} of its {quota} in this region ({EIP_QUOTA_ATTRIBUTE}; Service Quotas: Amazon EC2, \"EC2-VPC Elastic IPs\", L-0263D0A3), so only {free} are free. Release unused addresses, request a higher quota, or use fewer NAT gateways (NatGateways=Single, or None with VPC endpoints). Nothing was created or changed"
        )
    })
}

impl Network {
    pub fn new(ec2: aws_sdk_ec2::Client) -> Self {
        Self { ec2 }
    }

    /// The zones to build in ([`zones::choose_zones`]): the explicit `AvailabilityZoneIds`, or
    /// the first `AvailabilityZoneCount` standard zones by name that run Fargate.
    async fn zones(&self, props: &NetworkProperties) -> Result<Vec<String>, NetworkError> {
        let answer = self
            .ec2
            .describe_availability_zones()
            .send()
            .await
            .map_err(NetworkError::aws("DescribeAvailabilityZones"))?;
        let offered: Vec<zones::Zone> = answer
            .availability_zones()
            .iter()
            .filter(|z| {
                z.opt_in_status()
                    .is_none_or(|s| *s == AvailabilityZoneOptInStatus::OptInNotRequired)
            })
            .filter(|z| z.zone_type().is_none_or(|t| t == "availability-zone"))
            .filter(|z| z.state().is_none_or(|s| s.as_str() == "available"))
            .filter_map(|z| {
                Some(zones::Zone {
                    name: z.zone_name()?.to_owned(),
                    id: z.zone_id().unwrap_or_default().to_owned(),
                    region: z.region_name().unwrap_or_default().to_owned(),
                })
            })
            .collect();
        zones::choose_zones(
            &offered,
            props.availability_zone_count as usize,
            &props.availability_zone_ids,
        )
        .map(|zones| zones.into_iter().map(|z| z.name).collect())
        .map_err(|(property, message)| NetworkError::Property { property, message })
    }

    /// The account's Elastic IP room (addresses in use, the quota), read when `props` wants NAT
    /// gateways. Its two calls need no answer of any other, so it runs beside the round that
    /// tells how many addresses are needed ([`check_address_quota`] compares).
    async fn address_room(
        &self,
        props: &NetworkProperties,
    ) -> Result<Option<AddressRoom>, NetworkError> {
        if props.nat_gateways == NatGateways::None {
            return Ok(None);
        }
        let started = std::time::Instant::now();
        let (attributes, addresses) = futures::try_join!(
            async {
                self.ec2
                    .describe_account_attributes()
                    .attribute_names(aws_sdk_ec2::types::AccountAttributeName::from(
                        EIP_QUOTA_ATTRIBUTE,
                    ))
                    .send()
                    .await
                    .map_err(NetworkError::aws("DescribeAccountAttributes"))
            },
            async {
                self.ec2
                    .describe_addresses()
                    .send()
                    .await
                    .map_err(NetworkError::aws("DescribeAddresses"))
            },
        )?;
        let quota = attributes
            .account_attributes()
            .iter()
            .filter(|a| a.attribute_name() == Some(EIP_QUOTA_ATTRIBUTE))
            .flat_map(|a| a.attribute_values())
            .find_map(|v| v.attribute_value()?.parse::<usize>().ok());
        log_round("quota", 2, started);
        Ok(Some(AddressRoom {
            in_use: addresses.addresses().len(),
            quota,
        }))
    }

    /// Addresses the wanted NAT gateways still need (no live NAT and no spare address of ours).
    fn addresses_needed(state: &State, d: &Desired) -> usize {
        d.nat_azs()
            .iter()
            .filter(|az| state.live_nat(az).is_none() && state.spare_eip(az).is_none())
            .count()
    }

    /// Tags that mark what this request created (a redelivered Create looks for them).
    fn request_filters(ctx: &Context) -> [aws_sdk_ec2::types::Filter; 2] {
        [
            filter(&format!("tag:{TAG_REQUEST}"), &ctx.request_id),
            filter(&format!("tag:{TAG_LOGICAL}"), &ctx.logical_resource_id),
        ]
    }

    /// The VPC this request already created, if any.
    async fn find_vpc(&self, ctx: &Context) -> Result<Option<String>, NetworkError> {
        let found = self
            .ec2
            .describe_vpcs()
            .set_filters(Some(Self::request_filters(ctx).to_vec()))
            .send()
            .await
            .map_err(NetworkError::aws("DescribeVpcs"))?;
        Ok(found
            .vpcs()
            .first()
            .and_then(|v| v.vpc_id())
            .map(str::to_owned))
    }

    /// The internet gateway this request already created, if any.
    async fn find_igw(&self, ctx: &Context) -> Result<Option<String>, NetworkError> {
        let found = self
            .ec2
            .describe_internet_gateways()
            .set_filters(Some(Self::request_filters(ctx).to_vec()))
            .send()
            .await
            .map_err(NetworkError::aws("DescribeInternetGateways"))?;
        Ok(found
            .internet_gateways()
            .first()
            .and_then(|g| g.internet_gateway_id())
            .map(str::to_owned))
    }

    /// Create (or, for a redelivered request, find) the VPC and internet gateway, then build
    /// the rest. Returns the VPC id with the outcome.
    async fn build(
        &self,
        ctx: &Context,
        props: &NetworkProperties,
    ) -> Result<(String, Outcome), NetworkError> {
        // Round 1: what this request already made, the region's zones and the address quota.
        let started = std::time::Instant::now();
        let (vpc, igw, azs, room) = futures::try_join!(
            self.find_vpc(ctx),
            self.find_igw(ctx),
            self.zones(props),
            self.address_room(props)
        )?;
        log_round("lookup", 3, started);
        let desired = Desired::new(props, &azs, true)?;
        if vpc.is_none() {
            // Nothing exists yet: refuse now rather than with a half-built network.
            check_address_quota(room, desired.nat_azs().len())?;
        }
        let owner = Owner {
            ctx,
            desired: &desired,
        };
        let (vpc_id, fresh, igw_id) = self.make_vpc_and_gateway(&owner, props, vpc, igw).await?;
        let after_vpc = |cause: NetworkError| NetworkError::AfterVpc {
            vpc_id: vpc_id.clone(),
            cause: Box::new(cause),
        };
        let mut state = if fresh {
            let labels = desired.labels(Role::Vpc, None);
            State::empty(&vpc_id, &props.cidr_block.to_string(), labels)
        } else {
            discover(&self.ec2, &vpc_id).await.map_err(after_vpc)?
        };
        if state.igw.is_none() {
            state.igw = Some(Igw {
                id: igw_id,
                attached: false,
                tagged_with_vpc: false,
                labels: desired.labels(Role::InternetGateway, None),
            });
        }
        let outcome = self
            .reconcile(ctx, &desired, state)
            .await
            .map_err(after_vpc)?;
        Ok((vpc_id, outcome))
    }

    /// Round 2: the VPC and the internet gateway, concurrently (each found again when this
    /// request already made it). Returns (VPC id, whether it is new, gateway id).
    async fn make_vpc_and_gateway(
        &self,
        owner: &Owner<'_>,
        props: &NetworkProperties,
        vpc: Option<String>,
        igw: Option<String>,
    ) -> Result<(String, bool, String), NetworkError> {
        let started = std::time::Instant::now();
        let made = usize::from(vpc.is_none()) + usize::from(igw.is_none());
        let create_vpc = async {
            if let Some(id) = vpc {
                info!(vpc_id = %id, "redelivered request: continuing with the VPC it already created");
                return Ok::<_, NetworkError>((id, false));
            }
            let created = self
                .ec2
                .create_vpc()
                .cidr_block(props.cidr_block.to_string())
                .tag_specifications(owner.spec(ResourceType::Vpc, Role::Vpc, None, ""))
                .send()
                .await
                .map_err(NetworkError::aws("CreateVpc"))?;
            let id = created.vpc().and_then(|v| v.vpc_id());
            let id = id.ok_or(NetworkError::Missing {
                operation: "CreateVpc",
                field: "VpcId",
            })?;
            Ok((id.to_owned(), true))
        };
        let create_igw = async {
            if let Some(id) = igw {
                return Ok::<_, NetworkError>(id);
            }
            let spec = owner.spec(
                ResourceType::InternetGateway,
                Role::InternetGateway,
                None,
                "",
            );
            let created = self
                .ec2
                .create_internet_gateway()
                .tag_specifications(spec)
                .send()
                .await
                .map_err(NetworkError::aws("CreateInternetGateway"))?;
            let id = created
                .internet_gateway()
                .and_then(|g| g.internet_gateway_id());
            id.map(str::to_owned).ok_or(NetworkError::Missing {
                operation: "CreateInternetGateway",
                field: "InternetGatewayId",
            })
        };
        // join!, not try_join!: a failed call must not leave the other in flight (rounds.rs).
        let (vpc, igw) = futures::join!(create_vpc, create_igw);
        let ((vpc_id, fresh), igw_id) = match (vpc, igw) {
            (Ok(vpc), Ok(igw)) => (vpc, igw),
            (Err(error), Ok(igw_id)) => {
                // No VPC, so the answer carries no physical id and the rollback Delete has
                // nothing to read back: remove the gateway this Create just made.
                self.delete_orphan_gateway(&igw_id).await;
                return Err(error);
            }
            (Err(error), Err(_)) | (Ok(_), Err(error)) => return Err(error),
        };
        if made > 0 {
            log_round("vpc", made, started);
        }
        Ok((vpc_id, fresh, igw_id))
    }

    /// Deletes an internet gateway made in a Create that failed before its VPC existed (best
    /// effort: the Create's own error is the one to report; a failure here is logged).
    async fn delete_orphan_gateway(&self, igw_id: &str) {
        let deleted = self
            .ec2
            .delete_internet_gateway()
            .internet_gateway_id(igw_id)
            .send()
            .await
            .map_err(AwsError::of("DeleteInternetGateway"));
        match deleted {
            Ok(_) => info!(
                igw_id,
                "deleted the internet gateway of a Create whose VPC failed"
            ),
            Err(error) => tracing::warn!(
                igw_id,
                %error,
                "could not delete the internet gateway of a failed Create: delete it by hand"
            ),
        }
    }

    /// Brings `state` in line with `desired`, in dependency rounds (module docs of `plan.rs`).
    async fn reconcile(
        &self,
        ctx: &Context,
        desired: &Desired,
        mut state: State,
    ) -> Result<Outcome, NetworkError> {
        let owner = Owner { ctx, desired };
        let vpc_id = state.vpc_id.clone();
        let pending = |waiting_for: String| {
            Ok(Outcome::pending(
                waiting_for,
                Progress {
                    vpc_id: vpc_id.clone(),
                },
            )
            .with_physical_id(vpc_id.clone()))
        };
        self.run("A", plan::setup(&state, desired), &owner, &mut state)
            .await?;
        fail_on_failed_nat(&state, desired, ctx)?;
        self.run("B", plan::connect(&state, desired), &owner, &mut state)
            .await?;
        fail_on_failed_nat(&state, desired, ctx)?;
        let waiting = plan::pending_nats(&state, desired);
        if !waiting.is_empty() {
            return pending(format!(
                "NAT gateways {} to become available",
                waiting.join(", ")
            ));
        }
        self.run("C", plan::route(&state, desired), &owner, &mut state)
            .await?;
        self.run("D", plan::retire(&state, desired), &owner, &mut state)
            .await?;
        if let Some(waiting) = self.nats_still_deleting(&state).await? {
            return pending(format!("NAT gateways {waiting} to be deleted"));
        }
        self.run("E", plan::release(&state), &owner, &mut state)
            .await?;
        self.run("tags", plan::retag(&state, desired), &owner, &mut state)
            .await?;
        Ok(data(&desired.azs, &state, PhysicalId::New(vpc_id)).into())
    }

    /// NATs of ours that are deleting, re-read from EC2 (deletion takes about a minute).
    async fn nats_still_deleting(&self, state: &State) -> Result<Option<String>, NetworkError> {
        if !state
            .nats
            .iter()
            .any(|n| n.state == crate::state::NatState::Deleting)
        {
            return Ok(None);
        }
        let fresh = discover(&self.ec2, &state.vpc_id).await?;
        let deleting: Vec<String> = fresh
            .nats
            .iter()
            .filter(|n| n.state == crate::state::NatState::Deleting)
            .map(|n| n.id.clone())
            .collect();
        Ok((!deleting.is_empty()).then(|| deleting.join(", ")))
    }

    /// Anything in the VPC that this resource did not create and that would make DeleteVpc fail.
    async fn blockers(&self, state: &State) -> Result<Vec<String>, NetworkError> {
        let enis = self
            .ec2
            .describe_network_interfaces()
            .filters(filter("vpc-id", &state.vpc_id))
            .send();
        let groups = self
            .ec2
            .describe_security_groups()
            .filters(filter("vpc-id", &state.vpc_id))
            .send();
        let (enis, groups) = futures::try_join!(
            async {
                enis.await
                    .map_err(NetworkError::aws("DescribeNetworkInterfaces"))
            },
            async {
                groups
                    .await
                    .map_err(NetworkError::aws("DescribeSecurityGroups"))
            },
        )?;
        let ours: BTreeSet<&String> = state
            .nats
            .iter()
            .flat_map(|n| n.interface_ids.iter())
            .collect();
        let mut found = Vec::new();
        for eni in enis.network_interfaces() {
            let nat_owned = eni
                .network_interface_id()
                .is_some_and(|id| ours.contains(&id.to_owned()))
                || eni
                    .interface_type()
                    .is_some_and(|t| t.as_str() == "nat_gateway")
                || eni
                    .description()
                    .is_some_and(|d| d.starts_with("Interface for NAT Gateway"));
            if !nat_owned {
                found.push(format!(
                    "network interface {} ({})",
                    eni.network_interface_id().unwrap_or_default(),
                    eni.description()
                        .filter(|d| !d.is_empty())
                        .unwrap_or("no description")
                ));
            }
        }
        for group in groups.security_groups() {
            if group.group_name() != Some("default") {
                found.push(format!(
                    "security group {} ({})",
                    group.group_id().unwrap_or_default(),
                    group.group_name().unwrap_or_default()
                ));
            }
        }
        found.extend(state.foreign.iter().cloned());
        Ok(found)
    }

    async fn remove(&self, ctx: &Context, vpc_id: &str) -> Result<Outcome, NetworkError> {
        let mut state = discover(&self.ec2, vpc_id).await?;
        if state.vpc_exists {
            let blockers = self.blockers(&state).await?;
            if !blockers.is_empty() {
                return Err(NetworkError::Blocked {
                    vpc_id: vpc_id.to_owned(),
                    blockers: blockers.join(", "),
                });
            }
        }
        // Delete plans use no property; an empty Desired names nothing.
        let nothing = Desired::nothing();
        let owner = Owner {
            ctx,
            desired: &nothing,
        };
        let [nats, _, _] = plan::teardown(&state);
        self.run("delete-1", nats, &owner, &mut state).await?;
        if let Some(waiting) = self.nats_still_deleting(&state).await? {
            let progress = Progress {
                vpc_id: vpc_id.to_owned(),
            };
            return Ok(Outcome::pending(
                format!("NAT gateways {waiting} to be deleted"),
                progress,
            ));
        }
        let [_, detach, _] = plan::teardown(&state);
        self.run("delete-2", detach, &owner, &mut state).await?;
        let [_, _, remove] = plan::teardown(&state);
        self.run("delete-3", remove, &owner, &mut state).await?;
        if state.vpc_exists {
            match self.ec2.delete_vpc().vpc_id(vpc_id).send().await {
                Ok(_) => {}
                Err(e) if is_code(&e, "InvalidVpcID.NotFound") => {}
                Err(e) => return Err(NetworkError::aws("DeleteVpc")(e)),
            }
        }
        Ok(Completion::unchanged().into())
    }

    /// AZs of an existing network, from its subnets (the region's list may have changed since).
    async fn existing_zones(
        &self,
        state: &State,
        props: &NetworkProperties,
    ) -> Result<Vec<String>, NetworkError> {
        let mut azs: Vec<String> = state
            .subnets
            .iter()
            .map(|s| s.az.clone())
            .collect::<BTreeSet<_>>()
            .into_iter()
            .collect();
        if azs.len() != props.availability_zone_count as usize {
            azs = self.zones(props).await?;
        }
        Ok(azs)
    }

    async fn update_in_place(
        &self,
        ctx: &Context,
        vpc_id: &str,
        new: &NetworkProperties,
    ) -> Result<Outcome, NetworkError> {
        let (state, room) =
            futures::try_join!(discover(&self.ec2, vpc_id), self.address_room(new))?;
        if !state.vpc_exists {
            return Err(NetworkError::from(AwsError::new(
                "DescribeVpcs",
                "InvalidVpcID.NotFound",
                format!("VPC {vpc_id} no longer exists; it was deleted outside CloudFormation. Remove the resource from the stack or restore the VPC"),
            )));
        }
        let azs = self.existing_zones(&state, new).await?;
        let desired = Desired::new(new, &azs, false)?;
        check_address_quota(room, Self::addresses_needed(&state, &desired))?;
        let outcome = self.reconcile(ctx, &desired, state).await?;
        Ok(keep_id(outcome))
    }

    /// A resumed Create (or replacement): the state and the zones, re-read.
    async fn resume_build(
        &self,
        ctx: &Context,
        vpc_id: &str,
        props: &NetworkProperties,
    ) -> Result<Outcome, NetworkError> {
        let started = std::time::Instant::now();
        let (state, azs) = futures::try_join!(discover(&self.ec2, vpc_id), self.zones(props))?;
        log_round("observe", crate::state::DISCOVER_CALLS + 1, started);
        let desired = Desired::new(props, &azs, false)?;
        self.reconcile(ctx, &desired, state).await
    }
}

/// A wanted NAT this request made that failed ends the request: a retry with the same token would
/// only return the failed NAT, and routing around it would answer SUCCESS without egress.
fn fail_on_failed_nat(state: &State, desired: &Desired, ctx: &Context) -> Result<(), NetworkError> {
    match plan::failed_nat(state, desired, &ctx.request_id) {
        None => Ok(()),
        Some(nat) => {
            let (code, message) = nat.failure.clone().unwrap_or_default();
            Err(NetworkError::NatFailed {
                nat_id: nat.id.clone(),
                az: nat.az.clone(),
                code,
                message,
            })
        }
    }
}

/// An in-place update answers with the event's physical id.
fn keep_id(outcome: Outcome) -> Outcome {
    match outcome {
        Outcome::Done(mut done) => {
            done.physical_id = PhysicalId::Unchanged;
            Outcome::Done(done)
        }
        pending => pending,
    }
}

/// A replacement answers with the new VPC's id as a replacement; still pending, it declares so,
/// and the library completes it that way after the wait (resume does not decide it again).
fn as_replacement(vpc_id: &str, outcome: Outcome) -> Outcome {
    match outcome {
        Outcome::Done(mut done) => {
            done.physical_id = PhysicalId::Replaced(vpc_id.to_owned());
            Outcome::Done(done)
        }
        pending => pending.replacing(vpc_id),
    }
}

/// The Data the resource returns (lists comma-joined in AZ order; empty string when none).
fn data(azs: &[String], state: &State, id: PhysicalId) -> Completion {
    let join = |items: Vec<String>| items.join(",");
    let public: Vec<String> = azs
        .iter()
        .filter_map(|az| state.subnet(az, true).map(|s| s.id.clone()))
        .collect();
    let private: Vec<String> = azs
        .iter()
        .filter_map(|az| state.subnet(az, false).map(|s| s.id.clone()))
        .collect();
    let private_tables: Vec<String> = azs
        .iter()
        .filter_map(|az| state.private_route_table(az).map(|t| t.id.clone()))
        .collect();
    let nats: Vec<String> = azs
        .iter()
        .filter_map(|az| state.live_nat(az).map(|n| n.id.clone()))
        .collect();
    let mut completion = match id {
        PhysicalId::New(id) => Completion::created(id),
        PhysicalId::Replaced(id) => Completion::replaced(id),
        PhysicalId::Unchanged => Completion::unchanged(),
    };
    completion = completion
        .data("VpcId", &state.vpc_id)
        .data("VpcCidrBlock", &state.cidr)
        .data("AvailabilityZones", join(azs.to_vec()))
        .data(
            "AvailabilityZoneIds",
            join(
                azs.iter()
                    .filter_map(|az| state.subnet(az, true).map(|s| s.az_id.clone()))
                    .collect(),
            ),
        )
        .data("PublicSubnetIds", join(public))
        .data("PrivateSubnetIds", join(private))
        .data(
            "PublicRouteTableId",
            state
                .public_route_table()
                .map(|t| t.id.clone())
                .unwrap_or_default(),
        )
        .data("PrivateRouteTableIds", join(private_tables))
        .data("NatGatewayIds", join(nats))
        .data(
            "InternetGatewayId",
            state.igw.as_ref().map(|g| g.id.clone()).unwrap_or_default(),
        );
    completion
}

impl Resource for Network {
    type Properties = NetworkProperties;
    type Error = NetworkError;

    /// NAT gateways take minutes each way; the whole operation stays well inside an hour.
    fn timeout(&self) -> Duration {
        Duration::from_secs(3000)
    }

    fn is_not_found(&self, error: &NetworkError) -> bool {
        error.code() == Some("InvalidVpcID.NotFound")
    }

    /// Every step re-reads the VPC and does only what is missing.
    fn steps_rerun_safely(&self) -> bool {
        true
    }

    fn made_before_failing(&self, error: &NetworkError) -> Option<String> {
        match error {
            NetworkError::AfterVpc { vpc_id, .. } => Some(vpc_id.clone()),
            _ => None,
        }
    }

    async fn create(
        &self,
        ctx: &Context,
        props: &NetworkProperties,
    ) -> Result<Outcome, NetworkError> {
        let (_, outcome) = self.build(ctx, props).await?;
        Ok(outcome)
    }

    async fn update(
        &self,
        ctx: &Context,
        physical_id: &str,
        old: &NetworkProperties,
        new: &NetworkProperties,
    ) -> Result<Outcome, NetworkError> {
        if old.needs_replacement(new) {
            info!(
                old_vpc = physical_id,
                "CidrBlock or AvailabilityZoneCount changed: building a replacement VPC"
            );
            let (vpc_id, outcome) = self.build(ctx, new).await?;
            return Ok(as_replacement(&vpc_id, outcome));
        }
        self.update_in_place(ctx, physical_id, new).await
    }

    async fn delete(
        &self,
        ctx: &Context,
        physical_id: &str,
        _props: &NetworkProperties,
    ) -> Result<Outcome, NetworkError> {
        self.remove(ctx, physical_id).await
    }

    async fn resume(
        &self,
        ctx: &Context,
        request: &Request<NetworkProperties>,
        progress: &Value,
    ) -> Result<Outcome, NetworkError> {
        let saved: Progress =
            serde_json::from_value(progress.clone()).map_err(|e| NetworkError::Missing {
                operation: "resume",
                field: if e.is_data() {
                    "VpcId in the saved progress"
                } else {
                    "saved progress"
                },
            })?;
        // Each branch's future is boxed: resume's state machine would otherwise hold all of them,
        // and polling it overflowed a worker thread's stack in the debug build after a few checks
        // of a slow NAT deletion (LOCAL_AWS_NAT_PENDING_DESCRIBES=12), killing the process unanswered.
        match request {
            Request::Create { properties } => {
                Box::pin(self.resume_build(ctx, &saved.vpc_id, properties)).await
            }
            // A replacement still building: how it completes was declared when it went pending.
            Request::Update { old, new, .. } if old.needs_replacement(new) => {
                Box::pin(self.resume_build(ctx, &saved.vpc_id, new)).await
            }
            // The state says what is still to do, the retag included (plan::retag).
            Request::Update {
                physical_id, new, ..
            } => Box::pin(self.update_in_place(ctx, physical_id, new)).await,
            Request::Delete { physical_id, .. } => {
                debug_assert_eq!(ctx.request_type, RequestType::Delete);
                Box::pin(self.remove(ctx, physical_id)).await
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn new_nat_addresses_beyond_the_quota_are_refused_naming_quota_and_numbers() {
        assert_eq!(address_shortfall(2, 3, 5), None);
        assert_eq!(address_shortfall(0, 5, 5), None);
        let message = address_shortfall(3, 3, 5).unwrap();
        assert!(message.contains("needs 3 new Elastic IP"), "{message}");
        assert!(message.contains("uses 3 of its 5"), "{message}");
        assert!(message.contains("only 2 are free"), "{message}");
        assert!(message.contains("L-0263D0A3"), "{message}");
    }
}
