//! Create, update, delete and resume for `Custom::Network`.
//!
//! Every step is "make the VPC look like the properties": it reads what exists (by tags), then
//! runs the missing calls in dependency rounds, each round's calls concurrently. A duplicate,
//! retried or handed-over request therefore continues where the last one stopped.

use crate::error::NetworkError;
use crate::layout;
use crate::properties::{NatGateways, NetworkProperties};
use crate::state::{
    discover, filter, DefaultRoute, Eip, Igw, Nat, RouteTable, State, Subnet, TAG_AZ, TAG_LOGICAL,
    TAG_REQUEST, TAG_ROLE, TAG_STACK, TAG_VPC,
};
use crate::zones;
use aws_sdk_ec2::types::{
    AttributeBooleanValue, AvailabilityZoneOptInStatus, DomainType, ResourceType, Tag as Ec2Tag,
    TagSpecification,
};
use custom_resource::{
    AwsError, Completion, Context, Outcome, PhysicalId, Request, RequestType, Resource,
};
use futures::future::{try_join_all, BoxFuture};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use std::collections::BTreeSet;
use std::time::Duration;
use tracing::info;

const ANYWHERE: &str = "0.0.0.0/0";

pub struct Network {
    ec2: aws_sdk_ec2::Client,
}

/// Saved between checks of a pending operation.
#[derive(Debug, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
struct Progress {
    vpc_id: String,
}

/// What one call changed, applied to the in-memory state after its round.
enum Effect {
    Nothing,
    Igw(Igw),
    Subnet(Subnet),
    RouteTable(RouteTable),
    Eip(Eip),
    Associated {
        table: String,
        association: String,
        subnet: String,
    },
    Reassociated {
        from: String,
        to: String,
        association: String,
        subnet: String,
    },
    Route {
        table: String,
        route: Option<DefaultRoute>,
    },
    Nat(Nat),
    NatDeleting(String),
    Released(String),
}

type Call<'a> = BoxFuture<'a, Result<Effect, NetworkError>>;

/// Who owns what gets created: the tags every resource carries.
struct Owner<'a> {
    ctx: &'a Context,
    props: &'a NetworkProperties,
}

impl Owner<'_> {
    fn tags(&self, name: &str, role: &str, az: Option<&str>, vpc_id: Option<&str>) -> Vec<Ec2Tag> {
        let mut tags = vec![
            ec2_tag("Name", name),
            ec2_tag(TAG_STACK, &self.ctx.stack_id),
            ec2_tag(TAG_LOGICAL, &self.ctx.logical_resource_id),
            ec2_tag(TAG_REQUEST, &self.ctx.request_id),
            ec2_tag(TAG_ROLE, role),
        ];
        if let Some(az) = az {
            tags.push(ec2_tag(TAG_AZ, az));
        }
        if let Some(vpc_id) = vpc_id {
            tags.push(ec2_tag(TAG_VPC, vpc_id));
        }
        tags.extend(self.props.tags.iter().map(|t| ec2_tag(&t.key, &t.value)));
        tags
    }

    fn spec(
        &self,
        kind: ResourceType,
        name: &str,
        role: &str,
        az: Option<&str>,
        vpc_id: Option<&str>,
    ) -> TagSpecification {
        TagSpecification::builder()
            .resource_type(kind)
            .set_tags(Some(self.tags(name, role, az, vpc_id)))
            .build()
    }
}

fn ec2_tag(key: &str, value: &str) -> Ec2Tag {
    Ec2Tag::builder().key(key).value(value).build()
}

fn yes() -> AttributeBooleanValue {
    AttributeBooleanValue::builder().value(true).build()
}

fn desired_nat_azs(mode: NatGateways, azs: &[String]) -> Vec<String> {
    match mode {
        NatGateways::None => Vec::new(),
        NatGateways::Single => azs.iter().take(1).cloned().collect(),
        NatGateways::PerAz => azs.to_vec(),
    }
}

/// Fails when a wanted zone has no live NAT and the NAT this request made there failed.
fn check_no_failed_nat(
    state: &State,
    wanted: &[String],
    request_id: &str,
) -> Result<(), NetworkError> {
    for az in wanted {
        if state.live_nat(az).is_some() {
            continue;
        }
        if let Some(nat) = state.failed_nat_of(az, request_id) {
            let (code, message) = nat.failure.clone().unwrap_or_default();
            return Err(NetworkError::NatFailed {
                nat_id: nat.id.clone(),
                az: az.clone(),
                code,
                message,
            });
        }
    }
    Ok(())
}

/// The NAT a private subnet in `az` should route through, if any.
fn nat_for(mode: NatGateways, azs: &[String], az: &str) -> Option<String> {
    match mode {
        NatGateways::None => None,
        NatGateways::Single => azs.first().cloned(),
        NatGateways::PerAz => Some(az.to_owned()),
    }
}

/// The EC2 account attribute holding the Elastic IP quota ("EC2-VPC Elastic IPs", Service
/// Quotas code L-0263D0A3; 5 per region by default).
pub const EIP_QUOTA_ATTRIBUTE: &str = "vpc-max-elastic-ips";

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
            .map_err(NetworkError::ec2("DescribeAvailabilityZones"))?;
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

    /// Fails before anything is made when `needed` new addresses do not fit the quota.
    async fn check_address_quota(&self, needed: usize) -> Result<(), NetworkError> {
        if needed == 0 {
            return Ok(());
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
                    .map_err(NetworkError::ec2("DescribeAccountAttributes"))
            },
            async {
                self.ec2
                    .describe_addresses()
                    .send()
                    .await
                    .map_err(NetworkError::ec2("DescribeAddresses"))
            },
        )?;
        let quota = attributes
            .account_attributes()
            .iter()
            .filter(|a| a.attribute_name() == Some(EIP_QUOTA_ATTRIBUTE))
            .flat_map(|a| a.attribute_values())
            .find_map(|v| v.attribute_value()?.parse::<usize>().ok());
        log_round("quota", 2, started);
        let Some(quota) = quota else {
            info!(
                "the account did not report {EIP_QUOTA_ATTRIBUTE}; not checking the address quota"
            );
            return Ok(());
        };
        match address_shortfall(needed, addresses.addresses().len(), quota) {
            Some(message) => Err(NetworkError::Property {
                property: "NatGateways",
                message,
            }),
            None => Ok(()),
        }
    }

    /// Addresses the wanted NAT gateways still need (no live NAT and no spare address of ours).
    fn addresses_needed(&self, state: &State, wanted_nats: &[String]) -> usize {
        wanted_nats
            .iter()
            .filter(|az| state.live_nat(az).is_none() && self.spare_eip(state, az).is_none())
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
            .map_err(NetworkError::ec2("DescribeVpcs"))?;
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
            .map_err(NetworkError::ec2("DescribeInternetGateways"))?;
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
        let owner = Owner { ctx, props };
        // Round 1: what this request already made, and the region's zones.
        let started = std::time::Instant::now();
        let (vpc, igw, azs) =
            futures::try_join!(self.find_vpc(ctx), self.find_igw(ctx), self.zones(props),)?;
        log_round("lookup", 3, started);
        if vpc.is_none() {
            // Nothing exists yet: refuse now rather than with a half-built network.
            self.check_address_quota(desired_nat_azs(props.nat_gateways, &azs).len())
                .await?;
        }
        let cidr = props.cidr_block.to_string();
        // Round 2: the VPC and the internet gateway, concurrently.
        let started = std::time::Instant::now();
        let round_two = usize::from(vpc.is_none()) + usize::from(igw.is_none());
        let create_vpc = async {
            if let Some(id) = vpc.clone() {
                info!(vpc_id = %id, "redelivered request: continuing with the VPC it already created");
                return Ok::<_, NetworkError>((id, false));
            }
            let created = self
                .ec2
                .create_vpc()
                .cidr_block(&cidr)
                .tag_specifications(owner.spec(ResourceType::Vpc, &props.name, "vpc", None, None))
                .send()
                .await
                .map_err(NetworkError::ec2("CreateVpc"))?;
            let id = created
                .vpc()
                .and_then(|v| v.vpc_id())
                .ok_or(NetworkError::Missing {
                    operation: "CreateVpc",
                    field: "VpcId",
                })?;
            Ok((id.to_owned(), true))
        };
        let create_igw = async {
            if let Some(id) = igw.clone() {
                return Ok::<_, NetworkError>(id);
            }
            let created = self
                .ec2
                .create_internet_gateway()
                .tag_specifications(owner.spec(
                    ResourceType::InternetGateway,
                    &format!("{}-igw", props.name),
                    "internet-gateway",
                    None,
                    None,
                ))
                .send()
                .await
                .map_err(NetworkError::ec2("CreateInternetGateway"))?;
            created
                .internet_gateway()
                .and_then(|g| g.internet_gateway_id())
                .map(str::to_owned)
                .ok_or(NetworkError::Missing {
                    operation: "CreateInternetGateway",
                    field: "InternetGatewayId",
                })
        };
        let ((vpc_id, fresh), igw_id) = futures::try_join!(create_vpc, create_igw)?;
        if round_two > 0 {
            log_round("vpc", round_two, started);
        }
        let after_vpc = |cause: NetworkError| NetworkError::AfterVpc {
            vpc_id: vpc_id.clone(),
            cause: Box::new(cause),
        };
        let mut state = if fresh {
            State::empty(&vpc_id, &cidr)
        } else {
            discover(&self.ec2, &vpc_id).await.map_err(after_vpc)?
        };
        if state.igw.is_none() {
            state.igw = Some(Igw {
                id: igw_id,
                attached: false,
            });
        }
        let outcome = self
            .reconcile(&owner, &azs, state, true, None)
            .await
            .map_err(after_vpc)?;
        Ok((vpc_id, outcome))
    }

    /// Brings `state` in line with the properties, in dependency rounds.
    async fn reconcile(
        &self,
        owner: &Owner<'_>,
        azs: &[String],
        mut state: State,
        setup_vpc: bool,
        retag_removed: Option<Vec<String>>,
    ) -> Result<Outcome, NetworkError> {
        let props = owner.props;
        let vpc_id = state.vpc_id.clone();
        let name = props.name.as_str();
        let (public_blocks, private_blocks) =
            layout::carve(props.cidr_block, azs.len()).map_err(|message| {
                NetworkError::Property {
                    property: "CidrBlock",
                    message,
                }
            })?;
        let wanted_nats = desired_nat_azs(props.nat_gateways, azs);

        // Round A: everything that needs only the VPC.
        let mut calls: Vec<Call> = Vec::new();
        if setup_vpc {
            for hostnames in [false, true] {
                let vpc_id = vpc_id.clone();
                calls.push(Box::pin(async move {
                    let request = self.ec2.modify_vpc_attribute().vpc_id(vpc_id);
                    let request = if hostnames {
                        request.enable_dns_hostnames(yes())
                    } else {
                        request.enable_dns_support(yes())
                    };
                    request
                        .send()
                        .await
                        .map_err(NetworkError::ec2("ModifyVpcAttribute"))?;
                    Ok(Effect::Nothing)
                }));
            }
        }
        if let Some(igw) = state.igw.clone().filter(|igw| !igw.attached) {
            let (tag_igw, tag_vpc) = (igw.id.clone(), vpc_id.clone());
            calls.push(Box::pin(async move {
                // Lets a later Delete find the gateway by VPC even if it is detached.
                self.ec2
                    .create_tags()
                    .resources(tag_igw)
                    .tags(ec2_tag(TAG_VPC, &tag_vpc))
                    .send()
                    .await
                    .map_err(NetworkError::ec2("CreateTags"))?;
                Ok(Effect::Nothing)
            }));
            let vpc_id = vpc_id.clone();
            calls.push(Box::pin(async move {
                match self
                    .ec2
                    .attach_internet_gateway()
                    .internet_gateway_id(&igw.id)
                    .vpc_id(&vpc_id)
                    .send()
                    .await
                {
                    Ok(_) => {}
                    // Already attached to this VPC by an earlier delivery.
                    Err(e) if is_code(&e, "Resource.AlreadyAssociated") => {}
                    Err(e) => return Err(NetworkError::ec2("AttachInternetGateway")(e)),
                }
                Ok(Effect::Igw(Igw {
                    id: igw.id,
                    attached: true,
                }))
            }));
        }
        for (index, az) in azs.iter().enumerate() {
            for (public, block) in [(true, public_blocks[index]), (false, private_blocks[index])] {
                if state.subnet(az, public).is_some() {
                    continue;
                }
                let kind = if public { "public" } else { "private" };
                let spec = owner.spec(
                    ResourceType::Subnet,
                    &format!("{name}-{kind}-{az}"),
                    &format!("{kind}-subnet"),
                    Some(az),
                    Some(&vpc_id),
                );
                let (vpc_id, az) = (vpc_id.clone(), az.clone());
                calls.push(Box::pin(async move {
                    let created = self
                        .ec2
                        .create_subnet()
                        .vpc_id(vpc_id)
                        .cidr_block(block.to_string())
                        .availability_zone(&az)
                        .tag_specifications(spec)
                        .send()
                        .await
                        .map_err(NetworkError::ec2("CreateSubnet"))?;
                    let id = created.subnet().and_then(|s| s.subnet_id()).ok_or(
                        NetworkError::Missing {
                            operation: "CreateSubnet",
                            field: "SubnetId",
                        },
                    )?;
                    let az_id = created
                        .subnet()
                        .and_then(|s| s.availability_zone_id())
                        .unwrap_or_default()
                        .to_owned();
                    Ok(Effect::Subnet(Subnet {
                        id: id.to_owned(),
                        az,
                        az_id,
                        public,
                    }))
                }));
            }
        }
        let mut wanted_tables: Vec<(bool, Option<String>)> = vec![(true, None)];
        wanted_tables.extend(azs.iter().map(|az| (false, Some(az.clone()))));
        for (public, az) in wanted_tables {
            let exists = if public {
                state.public_route_table().is_some()
            } else {
                state
                    .private_route_table(az.as_deref().unwrap_or_default())
                    .is_some()
            };
            if exists {
                continue;
            }
            let (table_name, role) = match &az {
                None => (format!("{name}-public"), "public-route-table"),
                Some(az) => (format!("{name}-private-{az}"), "private-route-table"),
            };
            let spec = owner.spec(
                ResourceType::RouteTable,
                &table_name,
                role,
                az.as_deref(),
                Some(&vpc_id),
            );
            let vpc_id = vpc_id.clone();
            calls.push(Box::pin(async move {
                let created = self
                    .ec2
                    .create_route_table()
                    .vpc_id(vpc_id)
                    .tag_specifications(spec)
                    .send()
                    .await
                    .map_err(NetworkError::ec2("CreateRouteTable"))?;
                let id = created
                    .route_table()
                    .and_then(|t| t.route_table_id())
                    .ok_or(NetworkError::Missing {
                        operation: "CreateRouteTable",
                        field: "RouteTableId",
                    })?;
                Ok(Effect::RouteTable(RouteTable {
                    id: id.to_owned(),
                    public,
                    az,
                    associations: Vec::new(),
                    default_route: None,
                }))
            }));
        }
        for az in &wanted_nats {
            let has_nat = state.live_nat(az).is_some();
            let spare = self.spare_eip(&state, az);
            if has_nat || spare.is_some() {
                continue;
            }
            let spec = owner.spec(
                ResourceType::ElasticIp,
                &format!("{name}-nat-{az}"),
                "nat-eip",
                Some(az),
                Some(&vpc_id),
            );
            let az = az.clone();
            calls.push(Box::pin(async move {
                let created = self
                    .ec2
                    .allocate_address()
                    .domain(DomainType::Vpc)
                    .tag_specifications(spec)
                    .send()
                    .await
                    .map_err(NetworkError::ec2("AllocateAddress"))?;
                let id = created.allocation_id().ok_or(NetworkError::Missing {
                    operation: "AllocateAddress",
                    field: "AllocationId",
                })?;
                Ok(Effect::Eip(Eip {
                    allocation_id: id.to_owned(),
                    az: Some(az),
                }))
            }));
        }
        let subnets_before: BTreeSet<String> = state.subnets.iter().map(|s| s.id.clone()).collect();
        self.round("A", calls, &mut state).await?;

        // Round B: associations, the public default route, NAT gateways, public addressing.
        let mut calls: Vec<Call> = Vec::new();
        for subnet in state
            .subnets
            .iter()
            .filter(|s| s.public && !subnets_before.contains(&s.id))
            .cloned()
        {
            // Tasks placed in public subnets need public addresses.
            calls.push(Box::pin(async move {
                self.ec2
                    .modify_subnet_attribute()
                    .subnet_id(&subnet.id)
                    .map_public_ip_on_launch(yes())
                    .send()
                    .await
                    .map_err(NetworkError::ec2("ModifySubnetAttribute"))?;
                Ok(Effect::Nothing)
            }));
        }
        for subnet in state.subnets.clone() {
            let target = if subnet.public {
                state.public_route_table()
            } else {
                state.private_route_table(&subnet.az)
            };
            let Some(target) = target.map(|t| t.id.clone()) else {
                continue;
            };
            let current = state.route_tables.iter().find_map(|t| {
                t.associations
                    .iter()
                    .find(|(_, s)| *s == subnet.id)
                    .map(|(a, _)| (t.id.clone(), a.clone()))
            });
            match current {
                Some((table, _)) if table == target => {}
                Some((table, association)) => calls.push(Box::pin(async move {
                    let replaced = self
                        .ec2
                        .replace_route_table_association()
                        .association_id(association)
                        .route_table_id(&target)
                        .send()
                        .await
                        .map_err(NetworkError::ec2("ReplaceRouteTableAssociation"))?;
                    Ok(Effect::Reassociated {
                        from: table,
                        to: target,
                        association: replaced.new_association_id().unwrap_or_default().to_owned(),
                        subnet: subnet.id,
                    })
                })),
                None => calls.push(Box::pin(async move {
                    let associated = self
                        .ec2
                        .associate_route_table()
                        .route_table_id(&target)
                        .subnet_id(&subnet.id)
                        .send()
                        .await
                        .map_err(NetworkError::ec2("AssociateRouteTable"))?;
                    Ok(Effect::Associated {
                        table: target,
                        association: associated.association_id().unwrap_or_default().to_owned(),
                        subnet: subnet.id,
                    })
                })),
            }
        }
        if let (Some(table), Some(igw)) = (state.public_route_table().cloned(), state.igw.clone()) {
            let want = DefaultRoute::Gateway(igw.id.clone());
            if table.default_route.as_ref() != Some(&want) {
                let replace = table.default_route.is_some();
                calls.push(Box::pin(async move {
                    if replace {
                        self.ec2
                            .replace_route()
                            .route_table_id(&table.id)
                            .destination_cidr_block(ANYWHERE)
                            .gateway_id(&igw.id)
                            .send()
                            .await
                            .map_err(NetworkError::ec2("ReplaceRoute"))?;
                    } else {
                        self.ec2
                            .create_route()
                            .route_table_id(&table.id)
                            .destination_cidr_block(ANYWHERE)
                            .gateway_id(&igw.id)
                            .send()
                            .await
                            .map_err(NetworkError::ec2("CreateRoute"))?;
                    }
                    Ok(Effect::Route {
                        table: table.id,
                        route: Some(want),
                    })
                }));
            }
        }
        // A NAT this operation made that failed ends it: a retry with the same token would only
        // return the failed NAT, and routing around it would answer SUCCESS without egress.
        let request_id = owner.ctx.request_id.as_str();
        check_no_failed_nat(&state, &wanted_nats, request_id)?;
        for az in &wanted_nats {
            if state.live_nat(az).is_some() {
                continue;
            }
            let (Some(subnet), Some(eip)) =
                (state.subnet(az, true).cloned(), self.spare_eip(&state, az))
            else {
                continue;
            };
            let spec = owner.spec(
                ResourceType::Natgateway,
                &format!("{name}-nat-{az}"),
                "nat-gateway",
                Some(az),
                Some(&vpc_id),
            );
            // Same token for a redelivered request: EC2 returns the NAT it already made.
            let token: String = format!("{}-{az}", owner.ctx.idempotency_token(40))
                .chars()
                .take(64)
                .collect();
            let az = az.clone();
            calls.push(Box::pin(async move {
                let created = self
                    .ec2
                    .create_nat_gateway()
                    .subnet_id(&subnet.id)
                    .allocation_id(&eip)
                    .client_token(token)
                    .tag_specifications(spec)
                    .send()
                    .await
                    .map_err(NetworkError::ec2("CreateNatGateway"))?;
                let nat = created.nat_gateway().ok_or(NetworkError::Missing {
                    operation: "CreateNatGateway",
                    field: "NatGateway",
                })?;
                Ok(Effect::Nat(Nat {
                    id: nat.nat_gateway_id().unwrap_or_default().to_owned(),
                    az,
                    state: nat
                        .state()
                        .map(|s| s.as_str().to_owned())
                        .unwrap_or_else(|| "pending".into()),
                    allocation_ids: vec![eip],
                    interface_ids: nat
                        .nat_gateway_addresses()
                        .iter()
                        .filter_map(|a| a.network_interface_id().map(str::to_owned))
                        .collect(),
                    request_id: request_id.to_owned(),
                    failure: crate::state::failure(nat),
                }))
            }));
        }
        self.round("B", calls, &mut state).await?;
        check_no_failed_nat(&state, &wanted_nats, request_id)?;

        let pending: Vec<String> = wanted_nats
            .iter()
            .filter_map(|az| state.live_nat(az))
            .filter(|n| n.state == "pending")
            .map(|n| n.id.clone())
            .collect();
        if !pending.is_empty() {
            return Ok(Outcome::pending(
                format!("NAT gateways {} to become available", pending.join(", ")),
                Progress {
                    vpc_id: vpc_id.clone(),
                },
            )
            .with_physical_id(vpc_id));
        }

        // Round C: private default routes, switched to the new NATs before the old ones go.
        let mut calls: Vec<Call> = Vec::new();
        for az in azs {
            let Some(table) = state.private_route_table(az).cloned() else {
                continue;
            };
            let want = nat_for(props.nat_gateways, azs, az).and_then(|nat_az| {
                state
                    .live_nat(&nat_az)
                    .map(|n| DefaultRoute::Nat(n.id.clone()))
            });
            if table.default_route == want {
                continue;
            }
            calls.push(Box::pin(async move {
                match (&table.default_route, &want) {
                    (Some(_), Some(DefaultRoute::Nat(nat))) => {
                        self.ec2
                            .replace_route()
                            .route_table_id(&table.id)
                            .destination_cidr_block(ANYWHERE)
                            .nat_gateway_id(nat)
                            .send()
                            .await
                            .map_err(NetworkError::ec2("ReplaceRoute"))?;
                    }
                    (None, Some(DefaultRoute::Nat(nat))) => {
                        self.ec2
                            .create_route()
                            .route_table_id(&table.id)
                            .destination_cidr_block(ANYWHERE)
                            .nat_gateway_id(nat)
                            .send()
                            .await
                            .map_err(NetworkError::ec2("CreateRoute"))?;
                    }
                    _ => {
                        self.ec2
                            .delete_route()
                            .route_table_id(&table.id)
                            .destination_cidr_block(ANYWHERE)
                            .send()
                            .await
                            .map_err(NetworkError::ec2("DeleteRoute"))?;
                    }
                }
                Ok(Effect::Route {
                    table: table.id,
                    route: want,
                })
            }));
        }
        self.round("C", calls, &mut state).await?;

        // Round D: NATs no longer wanted (now unused), then their addresses.
        let keep: BTreeSet<String> = wanted_nats
            .iter()
            .filter_map(|az| state.live_nat(az))
            .map(|n| n.id.clone())
            .collect();
        let retired: Vec<Nat> = state
            .nats
            .iter()
            .filter(|n| n.is_live() && !keep.contains(&n.id))
            .cloned()
            .collect();
        let calls = self.nat_deletions(retired);
        self.round("D", calls, &mut state).await?;
        if let Some(waiting) = self.nats_still_deleting(&state, &vpc_id).await? {
            return Ok(Outcome::pending(
                format!("NAT gateways {waiting} to be deleted"),
                Progress {
                    vpc_id: vpc_id.clone(),
                },
            )
            .with_physical_id(vpc_id));
        }
        let in_use: BTreeSet<String> = state
            .nats
            .iter()
            .filter(|n| n.is_live())
            .flat_map(|n| n.allocation_ids.clone())
            .collect();
        let unused: Vec<Eip> = state
            .eips
            .iter()
            .filter(|e| !in_use.contains(&e.allocation_id))
            .cloned()
            .collect();
        let calls = self.address_releases(unused);
        self.round("E", calls, &mut state).await?;

        if let Some(removed) = retag_removed {
            self.retag(owner, &state, &removed).await?;
        }
        Ok(data(azs, &state, PhysicalId::New(vpc_id)).into())
    }

    /// DeleteNatGateway for each (deletion then takes about a minute; callers wait for it).
    fn nat_deletions(&self, nats: Vec<Nat>) -> Vec<Call<'_>> {
        nats.into_iter()
            .map(|nat| -> Call<'_> {
                Box::pin(async move {
                    self.ec2
                        .delete_nat_gateway()
                        .nat_gateway_id(&nat.id)
                        .send()
                        .await
                        .map_err(NetworkError::ec2("DeleteNatGateway"))?;
                    Ok(Effect::NatDeleting(nat.id))
                })
            })
            .collect()
    }

    /// ReleaseAddress for each; an address already released counts as released.
    fn address_releases(&self, eips: Vec<Eip>) -> Vec<Call<'_>> {
        eips.into_iter()
            .map(|eip| -> Call<'_> {
                Box::pin(async move {
                    match self
                        .ec2
                        .release_address()
                        .allocation_id(&eip.allocation_id)
                        .send()
                        .await
                    {
                        Ok(_) => {}
                        Err(e) if is_code(&e, "InvalidAllocationID.NotFound") => {}
                        Err(e) => return Err(NetworkError::ec2("ReleaseAddress")(e)),
                    }
                    Ok(Effect::Released(eip.allocation_id))
                })
            })
            .collect()
    }

    /// An allocated, unused address for a NAT in `az`.
    fn spare_eip(&self, state: &State, az: &str) -> Option<String> {
        let used: BTreeSet<&String> = state
            .nats
            .iter()
            .filter(|n| !n.is_gone())
            .flat_map(|n| n.allocation_ids.iter())
            .collect();
        state
            .eips
            .iter()
            .find(|e| e.az.as_deref() == Some(az) && !used.contains(&e.allocation_id))
            .map(|e| e.allocation_id.clone())
    }

    /// NATs of ours that are deleting, re-read from EC2 (deletion takes about a minute).
    async fn nats_still_deleting(
        &self,
        state: &State,
        vpc_id: &str,
    ) -> Result<Option<String>, NetworkError> {
        if !state.nats.iter().any(|n| n.state == "deleting") {
            return Ok(None);
        }
        let fresh = discover(&self.ec2, vpc_id).await?;
        let deleting: Vec<String> = fresh
            .nats
            .iter()
            .filter(|n| n.state == "deleting")
            .map(|n| n.id.clone())
            .collect();
        Ok((!deleting.is_empty()).then(|| deleting.join(", ")))
    }

    async fn round(
        &self,
        label: &str,
        calls: Vec<Call<'_>>,
        state: &mut State,
    ) -> Result<(), NetworkError> {
        if calls.is_empty() {
            return Ok(());
        }
        let count = calls.len();
        let started = std::time::Instant::now();
        let effects = try_join_all(calls).await?;
        log_round(label, count, started);
        for effect in effects {
            apply(state, effect);
        }
        Ok(())
    }

    /// Re-applies Name and user tags (after a Name or Tags change) and removes dropped tag keys.
    async fn retag(
        &self,
        owner: &Owner<'_>,
        state: &State,
        removed: &[String],
    ) -> Result<(), NetworkError> {
        let name = &owner.props.name;
        let mut targets: Vec<(String, String)> = vec![(state.vpc_id.clone(), name.clone())];
        if let Some(igw) = &state.igw {
            targets.push((igw.id.clone(), format!("{name}-igw")));
        }
        for s in &state.subnets {
            targets.push((
                s.id.clone(),
                format!(
                    "{name}-{}-{}",
                    if s.public { "public" } else { "private" },
                    s.az
                ),
            ));
        }
        for t in &state.route_tables {
            let label = match &t.az {
                Some(az) if !t.public => format!("{name}-private-{az}"),
                _ => format!("{name}-public"),
            };
            targets.push((t.id.clone(), label));
        }
        for n in state.nats.iter().filter(|n| n.is_live()) {
            targets.push((n.id.clone(), format!("{name}-nat-{}", n.az)));
        }
        for e in &state.eips {
            targets.push((
                e.allocation_id.clone(),
                format!("{name}-nat-{}", e.az.as_deref().unwrap_or("eip")),
            ));
        }
        let ids: Vec<String> = targets.iter().map(|(id, _)| id.clone()).collect();
        let mut calls: Vec<BoxFuture<'_, Result<(), NetworkError>>> = Vec::new();
        for (id, label) in targets {
            let mut tags = vec![ec2_tag("Name", &label)];
            tags.extend(owner.props.tags.iter().map(|t| ec2_tag(&t.key, &t.value)));
            calls.push(Box::pin(async move {
                self.ec2
                    .create_tags()
                    .resources(id)
                    .set_tags(Some(tags))
                    .send()
                    .await
                    .map_err(NetworkError::ec2("CreateTags"))?;
                Ok(())
            }));
        }
        if !removed.is_empty() {
            let keys: Vec<Ec2Tag> = removed
                .iter()
                .map(|k| Ec2Tag::builder().key(k).build())
                .collect();
            calls.push(Box::pin(async move {
                self.ec2
                    .delete_tags()
                    .set_resources(Some(ids))
                    .set_tags(Some(keys))
                    .send()
                    .await
                    .map_err(NetworkError::ec2("DeleteTags"))?;
                Ok(())
            }));
        }
        try_join_all(calls).await?;
        Ok(())
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
                    .map_err(NetworkError::ec2("DescribeNetworkInterfaces"))
            },
            async {
                groups
                    .await
                    .map_err(NetworkError::ec2("DescribeSecurityGroups"))
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

    async fn remove(&self, vpc_id: &str) -> Result<Outcome, NetworkError> {
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
        // Round 1: NAT gateways (they hold addresses and sit in the public subnets).
        let live: Vec<Nat> = state.nats.iter().filter(|n| n.is_live()).cloned().collect();
        let calls = self.nat_deletions(live);
        self.round("delete-1", calls, &mut state).await?;
        if let Some(waiting) = self.nats_still_deleting(&state, vpc_id).await? {
            return Ok(Outcome::pending(
                format!("NAT gateways {waiting} to be deleted"),
                Progress {
                    vpc_id: vpc_id.to_owned(),
                },
            ));
        }
        // Round 2: addresses, route-table associations, the gateway attachment.
        let mut calls = self.address_releases(state.eips.clone());
        for table in state.route_tables.clone() {
            for (association, _) in table.associations {
                calls.push(Box::pin(async move {
                    self.ec2
                        .disassociate_route_table()
                        .association_id(association)
                        .send()
                        .await
                        .map_err(NetworkError::ec2("DisassociateRouteTable"))?;
                    Ok(Effect::Nothing)
                }));
            }
        }
        if let Some(igw) = state.igw.clone().filter(|g| g.attached) {
            let vpc_id = vpc_id.to_owned();
            calls.push(Box::pin(async move {
                self.ec2
                    .detach_internet_gateway()
                    .internet_gateway_id(&igw.id)
                    .vpc_id(vpc_id)
                    .send()
                    .await
                    .map_err(NetworkError::ec2("DetachInternetGateway"))?;
                Ok(Effect::Nothing)
            }));
        }
        self.round("delete-2", calls, &mut state).await?;
        // Round 3: route tables, subnets, the gateway.
        let mut calls: Vec<Call> = Vec::new();
        for table in state.route_tables.clone() {
            calls.push(Box::pin(async move {
                self.ec2
                    .delete_route_table()
                    .route_table_id(&table.id)
                    .send()
                    .await
                    .map_err(NetworkError::ec2("DeleteRouteTable"))?;
                Ok(Effect::Nothing)
            }));
        }
        for subnet in state.subnets.clone() {
            calls.push(Box::pin(async move {
                self.ec2
                    .delete_subnet()
                    .subnet_id(&subnet.id)
                    .send()
                    .await
                    .map_err(NetworkError::ec2("DeleteSubnet"))?;
                Ok(Effect::Nothing)
            }));
        }
        if let Some(igw) = state.igw.clone() {
            calls.push(Box::pin(async move {
                self.ec2
                    .delete_internet_gateway()
                    .internet_gateway_id(&igw.id)
                    .send()
                    .await
                    .map_err(NetworkError::ec2("DeleteInternetGateway"))?;
                Ok(Effect::Nothing)
            }));
        }
        self.round("delete-3", calls, &mut state).await?;
        // Round 4: the VPC itself.
        if state.vpc_exists {
            match self.ec2.delete_vpc().vpc_id(vpc_id).send().await {
                Ok(_) => {}
                Err(e) if is_code(&e, "InvalidVpcID.NotFound") => {}
                Err(e) => return Err(NetworkError::ec2("DeleteVpc")(e)),
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
        old: Option<&NetworkProperties>,
        new: &NetworkProperties,
    ) -> Result<Outcome, NetworkError> {
        let state = discover(&self.ec2, vpc_id).await?;
        if !state.vpc_exists {
            return Err(NetworkError::from(AwsError::new(
                "DescribeVpcs",
                "InvalidVpcID.NotFound",
                format!("VPC {vpc_id} no longer exists; it was deleted outside CloudFormation. Remove the resource from the stack or restore the VPC"),
            )));
        }
        let azs = self.existing_zones(&state, new).await?;
        let needed = self.addresses_needed(&state, &desired_nat_azs(new.nat_gateways, &azs));
        self.check_address_quota(needed).await?;
        let retag = old.map(|old| {
            let kept: BTreeSet<&String> = new.tags.iter().map(|t| &t.key).collect();
            let removed: Vec<String> = old
                .tags
                .iter()
                .map(|t| t.key.clone())
                .filter(|k| !kept.contains(k))
                .collect();
            (old.name != new.name || old.tags != new.tags, removed)
        });
        let retag = match retag {
            Some((true, removed)) => Some(removed),
            _ => None,
        };
        let owner = Owner { ctx, props: new };
        let outcome = self.reconcile(&owner, &azs, state, false, retag).await?;
        Ok(keep_id(outcome))
    }
}

/// One line per round of concurrent EC2 calls: the tests compare these with the calls seen on the wire.
fn log_round(label: &str, calls: usize, started: std::time::Instant) {
    info!(
        round = label,
        calls,
        duration_ms = started.elapsed().as_millis() as u64,
        "EC2 round done"
    );
}

fn is_code<E: aws_sdk_ec2::error::ProvideErrorMetadata>(
    error: &aws_sdk_ec2::error::SdkError<E>,
    code: &str,
) -> bool {
    error.as_service_error().and_then(|e| e.code()) == Some(code)
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

/// A replacement answers with the new VPC's id as a replacement.
fn as_replacement(vpc_id: &str, outcome: Outcome) -> Outcome {
    match outcome {
        Outcome::Done(mut done) => {
            done.physical_id = PhysicalId::Replaced(vpc_id.to_owned());
            Outcome::Done(done)
        }
        pending => pending,
    }
}

fn apply(state: &mut State, effect: Effect) {
    match effect {
        Effect::Nothing => {}
        Effect::Igw(igw) => state.igw = Some(igw),
        Effect::Subnet(subnet) => state.subnets.push(subnet),
        Effect::RouteTable(table) => state.route_tables.push(table),
        Effect::Eip(eip) => state.eips.push(eip),
        Effect::Associated {
            table,
            association,
            subnet,
        } => {
            if let Some(t) = state.route_tables.iter_mut().find(|t| t.id == table) {
                t.associations.push((association, subnet));
            }
        }
        Effect::Reassociated {
            from,
            to,
            association,
            subnet,
        } => {
            if let Some(t) = state.route_tables.iter_mut().find(|t| t.id == from) {
                t.associations.retain(|(_, s)| *s != subnet);
            }
            if let Some(t) = state.route_tables.iter_mut().find(|t| t.id == to) {
                t.associations.push((association, subnet));
            }
        }
        Effect::Route { table, route } => {
            if let Some(t) = state.route_tables.iter_mut().find(|t| t.id == table) {
                t.default_route = route;
            }
        }
        Effect::Nat(nat) => state.nats.push(nat),
        Effect::NatDeleting(id) => {
            if let Some(n) = state.nats.iter_mut().find(|n| n.id == id) {
                n.state = "deleting".into();
            }
        }
        Effect::Released(id) => state.eips.retain(|e| e.allocation_id != id),
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
        self.update_in_place(ctx, physical_id, Some(old), new).await
    }

    async fn delete(
        &self,
        _ctx: &Context,
        physical_id: &str,
        _props: &NetworkProperties,
    ) -> Result<Outcome, NetworkError> {
        self.remove(physical_id).await
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
                let started = std::time::Instant::now();
                let (state, azs) =
                    futures::try_join!(discover(&self.ec2, &saved.vpc_id), self.zones(properties))?;
                log_round("observe", crate::state::DISCOVER_CALLS + 1, started);
                let owner = Owner {
                    ctx,
                    props: properties,
                };
                Box::pin(self.reconcile(&owner, &azs, state, false, None)).await
            }
            Request::Update { old, new, .. } if old.needs_replacement(new) => {
                let state = discover(&self.ec2, &saved.vpc_id).await?;
                let azs = self.zones(new).await?;
                let owner = Owner { ctx, props: new };
                let outcome = Box::pin(self.reconcile(&owner, &azs, state, false, None)).await?;
                Ok(as_replacement(&saved.vpc_id, outcome))
            }
            Request::Update {
                physical_id,
                old,
                new,
            } => {
                // The retag runs last in reconcile, after the NAT wait: it is still to do here.
                Box::pin(self.update_in_place(ctx, physical_id, Some(old), new)).await
            }
            Request::Delete { physical_id, .. } => {
                debug_assert_eq!(ctx.request_type, RequestType::Delete);
                Box::pin(self.remove(physical_id)).await
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn azs() -> Vec<String> {
        vec![
            "us-east-1a".into(),
            "us-east-1b".into(),
            "us-east-1c".into(),
        ]
    }

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

    #[test]
    fn single_nat_lives_in_the_first_zone_and_serves_every_private_subnet() {
        assert_eq!(desired_nat_azs(NatGateways::Single, &azs()), ["us-east-1a"]);
        for az in azs() {
            assert_eq!(
                nat_for(NatGateways::Single, &azs(), &az).as_deref(),
                Some("us-east-1a")
            );
        }
    }

    #[test]
    fn per_az_nats_serve_their_own_zone_and_none_means_no_route() {
        assert_eq!(desired_nat_azs(NatGateways::PerAz, &azs()), azs());
        assert_eq!(
            nat_for(NatGateways::PerAz, &azs(), "us-east-1b").as_deref(),
            Some("us-east-1b")
        );
        assert!(desired_nat_azs(NatGateways::None, &azs()).is_empty());
        assert_eq!(nat_for(NatGateways::None, &azs(), "us-east-1b"), None);
    }
}
