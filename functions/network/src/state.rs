//! What exists in a VPC, read back from EC2 by tags (the source of truth for every step, so a
//! retried, duplicated or handed-over request continues from where the last one stopped).

use crate::error::NetworkError;
use aws_sdk_ec2::types::{Filter, Tag as Ec2Tag};
use futures::try_join;

pub const TAG_STACK: &str = "custom-resource:stack-id";
pub const TAG_LOGICAL: &str = "custom-resource:logical-id";
pub const TAG_REQUEST: &str = "custom-resource:request-id";
pub const TAG_ROLE: &str = "custom-resource:role";
pub const TAG_AZ: &str = "custom-resource:az";
pub const TAG_VPC: &str = "custom-resource:vpc-id";

pub fn filter(name: &str, value: &str) -> Filter {
    Filter::builder().name(name).values(value).build()
}

fn tag<'a>(tags: &'a [Ec2Tag], key: &str) -> Option<&'a str> {
    tags.iter()
        .find(|t| t.key() == Some(key))
        .and_then(|t| t.value())
}

#[derive(Debug, Clone)]
pub struct Subnet {
    pub id: String,
    pub az: String,
    /// The zone's id (`use1-az1`): the same physical zone in every account, unlike its name.
    pub az_id: String,
    pub public: bool,
}

#[derive(Debug, Clone, PartialEq)]
pub enum DefaultRoute {
    Gateway(String),
    Nat(String),
    Other,
}

#[derive(Debug, Clone)]
pub struct RouteTable {
    pub id: String,
    pub public: bool,
    pub az: Option<String>,
    /// (association id, subnet id)
    pub associations: Vec<(String, String)>,
    pub default_route: Option<DefaultRoute>,
}

#[derive(Debug, Clone)]
pub struct Nat {
    pub id: String,
    pub az: String,
    pub state: String,
    pub allocation_ids: Vec<String>,
    /// The NAT's own network interfaces (not blockers for Delete, even while they linger).
    pub interface_ids: Vec<String>,
    /// The CloudFormation request that made it (its `custom-resource:request-id` tag).
    pub request_id: String,
    /// FailureCode and FailureMessage of a `failed` NAT.
    pub failure: Option<(String, String)>,
}

impl Nat {
    pub fn is_live(&self) -> bool {
        matches!(self.state.as_str(), "pending" | "available")
    }
    pub fn is_gone(&self) -> bool {
        matches!(self.state.as_str(), "deleted" | "failed")
    }
}

#[derive(Debug, Clone)]
pub struct Eip {
    pub allocation_id: String,
    pub az: Option<String>,
}

#[derive(Debug, Clone)]
pub struct Igw {
    pub id: String,
    pub attached: bool,
}

/// Everything this resource made in (or for) one VPC, plus what others put there.
#[derive(Debug, Clone, Default)]
pub struct State {
    pub vpc_id: String,
    pub vpc_exists: bool,
    pub cidr: String,
    pub igw: Option<Igw>,
    pub subnets: Vec<Subnet>,
    pub route_tables: Vec<RouteTable>,
    pub nats: Vec<Nat>,
    pub eips: Vec<Eip>,
    /// Subnets and route tables in the VPC without our role tag (they block Delete).
    pub foreign: Vec<String>,
}

impl State {
    pub fn empty(vpc_id: &str, cidr: &str) -> Self {
        State {
            vpc_id: vpc_id.to_owned(),
            vpc_exists: true,
            cidr: cidr.to_owned(),
            ..State::default()
        }
    }

    pub fn subnet(&self, az: &str, public: bool) -> Option<&Subnet> {
        self.subnets
            .iter()
            .find(|s| s.az == az && s.public == public)
    }

    pub fn public_route_table(&self) -> Option<&RouteTable> {
        self.route_tables.iter().find(|rt| rt.public)
    }

    pub fn private_route_table(&self, az: &str) -> Option<&RouteTable> {
        self.route_tables
            .iter()
            .find(|rt| !rt.public && rt.az.as_deref() == Some(az))
    }

    /// A NAT in `az` that request `request_id` made and that failed (an older request's failure,
    /// still listed for about an hour, is not this one's: a new request makes a new NAT).
    pub fn failed_nat_of(&self, az: &str, request_id: &str) -> Option<&Nat> {
        self.nats
            .iter()
            .find(|n| n.az == az && n.state == "failed" && n.request_id == request_id)
    }

    /// The live (pending or available) NAT in `az`, if any.
    pub fn live_nat(&self, az: &str) -> Option<&Nat> {
        self.nats.iter().find(|n| n.az == az && n.is_live())
    }
}

/// The EC2 calls one [`discover`] makes (all at once).
pub const DISCOVER_CALLS: usize = 6;

/// Reads the whole state of `vpc_id` in one round of concurrent calls.
pub async fn discover(ec2: &aws_sdk_ec2::Client, vpc_id: &str) -> Result<State, NetworkError> {
    let vpcs = ec2.describe_vpcs().filters(filter("vpc-id", vpc_id)).send();
    let subnets = ec2
        .describe_subnets()
        .filters(filter("vpc-id", vpc_id))
        .send();
    let tables = ec2
        .describe_route_tables()
        .filters(filter("vpc-id", vpc_id))
        .send();
    let nats = ec2
        .describe_nat_gateways()
        .filter(filter("vpc-id", vpc_id))
        .send();
    let eips = ec2
        .describe_addresses()
        .filters(filter(&format!("tag:{TAG_VPC}"), vpc_id))
        .send();
    let igws = ec2
        .describe_internet_gateways()
        .filters(filter(&format!("tag:{TAG_VPC}"), vpc_id))
        .send();
    let (vpcs, subnets, tables, nats, eips, igws) = try_join!(
        async { vpcs.await.map_err(NetworkError::ec2("DescribeVpcs")) },
        async { subnets.await.map_err(NetworkError::ec2("DescribeSubnets")) },
        async {
            tables
                .await
                .map_err(NetworkError::ec2("DescribeRouteTables"))
        },
        async { nats.await.map_err(NetworkError::ec2("DescribeNatGateways")) },
        async { eips.await.map_err(NetworkError::ec2("DescribeAddresses")) },
        async {
            igws.await
                .map_err(NetworkError::ec2("DescribeInternetGateways"))
        },
    )?;
    let mut state = State {
        vpc_id: vpc_id.to_owned(),
        ..State::default()
    };
    if let Some(vpc) = vpcs.vpcs().first() {
        state.vpc_exists = true;
        state.cidr = vpc.cidr_block().unwrap_or_default().to_owned();
    }
    for subnet in subnets.subnets() {
        let id = subnet.subnet_id().unwrap_or_default().to_owned();
        match tag(subnet.tags(), TAG_ROLE) {
            Some(role @ ("public-subnet" | "private-subnet")) => state.subnets.push(Subnet {
                id,
                az: subnet.availability_zone().unwrap_or_default().to_owned(),
                az_id: subnet.availability_zone_id().unwrap_or_default().to_owned(),
                public: role == "public-subnet",
            }),
            _ => state.foreign.push(format!("subnet {id}")),
        }
    }
    for table in tables.route_tables() {
        let id = table.route_table_id().unwrap_or_default().to_owned();
        let main = table.associations().iter().any(|a| a.main() == Some(true));
        let role = tag(table.tags(), TAG_ROLE);
        if main && role.is_none() {
            continue; // the VPC's main table goes with the VPC
        }
        let public = match role {
            Some("public-route-table") => true,
            Some("private-route-table") => false,
            _ => {
                state.foreign.push(format!("route table {id}"));
                continue;
            }
        };
        let default_route = table
            .routes()
            .iter()
            .find(|r| r.destination_cidr_block() == Some("0.0.0.0/0"))
            .map(|r| {
                if let Some(nat) = r.nat_gateway_id() {
                    DefaultRoute::Nat(nat.to_owned())
                } else if let Some(gateway) = r.gateway_id() {
                    DefaultRoute::Gateway(gateway.to_owned())
                } else {
                    DefaultRoute::Other
                }
            });
        state.route_tables.push(RouteTable {
            id,
            public,
            az: tag(table.tags(), TAG_AZ).map(str::to_owned),
            associations: table
                .associations()
                .iter()
                .filter(|a| a.main() != Some(true))
                .filter_map(|a| {
                    Some((
                        a.route_table_association_id()?.to_owned(),
                        a.subnet_id()?.to_owned(),
                    ))
                })
                .collect(),
            default_route,
        });
    }
    for nat in nats.nat_gateways() {
        // Only NATs this resource made (tagged); others in the VPC are left alone.
        let Some(az) = tag(nat.tags(), TAG_AZ) else {
            continue;
        };
        state.nats.push(Nat {
            id: nat.nat_gateway_id().unwrap_or_default().to_owned(),
            az: az.to_owned(),
            state: nat
                .state()
                .map(|s| s.as_str().to_owned())
                .unwrap_or_default(),
            allocation_ids: nat
                .nat_gateway_addresses()
                .iter()
                .filter_map(|a| a.allocation_id().map(str::to_owned))
                .collect(),
            interface_ids: nat
                .nat_gateway_addresses()
                .iter()
                .filter_map(|a| a.network_interface_id().map(str::to_owned))
                .collect(),
            request_id: tag(nat.tags(), TAG_REQUEST).unwrap_or_default().to_owned(),
            failure: failure(nat),
        });
    }
    for eip in eips.addresses() {
        if let Some(id) = eip.allocation_id() {
            state.eips.push(Eip {
                allocation_id: id.to_owned(),
                az: tag(eip.tags(), TAG_AZ).map(str::to_owned),
            });
        }
    }
    if let Some(igw) = igws.internet_gateways().first() {
        state.igw = Some(Igw {
            id: igw.internet_gateway_id().unwrap_or_default().to_owned(),
            attached: igw.attachments().iter().any(|a| a.vpc_id() == Some(vpc_id)),
        });
    }
    Ok(state)
}

/// The (FailureCode, FailureMessage) of a failed NAT gateway.
pub fn failure(nat: &aws_sdk_ec2::types::NatGateway) -> Option<(String, String)> {
    let failed = nat.state() == Some(&aws_sdk_ec2::types::NatGatewayState::Failed);
    failed.then(|| {
        (
            nat.failure_code().unwrap_or("failed").to_owned(),
            nat.failure_message()
                .unwrap_or("EC2 gave no failure message")
                .to_owned(),
        )
    })
}
