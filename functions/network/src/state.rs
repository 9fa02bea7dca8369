//! What exists in a VPC, read back from EC2 by tags (the source of truth for every step, so a
//! retried, duplicated or handed-over request continues from where the last one stopped).

use crate::error::NetworkError;
use aws_sdk_ec2::types::{Filter, NatGatewayState, Tag as Ec2Tag};
use futures::try_join;

pub use custom_resource::tags::{
    LOGICAL_ID as TAG_LOGICAL, REQUEST_ID as TAG_REQUEST, STACK_ID as TAG_STACK,
};
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

/// What each thing this resource makes is, as its `custom-resource:role` tag says.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    Vpc,
    InternetGateway,
    PublicSubnet,
    PrivateSubnet,
    PublicRouteTable,
    PrivateRouteTable,
    NatAddress,
    NatGateway,
}

impl Role {
    pub const fn tag(self) -> &'static str {
        match self {
            Role::Vpc => "vpc",
            Role::InternetGateway => "internet-gateway",
            Role::PublicSubnet => "public-subnet",
            Role::PrivateSubnet => "private-subnet",
            Role::PublicRouteTable => "public-route-table",
            Role::PrivateRouteTable => "private-route-table",
            Role::NatAddress => "nat-eip",
            Role::NatGateway => "nat-gateway",
        }
    }

    pub fn parse(tag: &str) -> Option<Role> {
        [
            Role::Vpc,
            Role::InternetGateway,
            Role::PublicSubnet,
            Role::PrivateSubnet,
            Role::PublicRouteTable,
            Role::PrivateRouteTable,
            Role::NatAddress,
            Role::NatGateway,
        ]
        .into_iter()
        .find(|role| role.tag() == tag)
    }
}

/// A NAT gateway's state (EC2 API Reference, NatGateway: pending | failed | available | deleting
/// | deleted).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NatState {
    Pending,
    Available,
    Deleting,
    Deleted,
    Failed,
}

impl NatState {
    /// A state EC2 may add later counts as pending: waited for, never routed to.
    pub fn of(state: Option<&NatGatewayState>) -> NatState {
        match state {
            Some(NatGatewayState::Available) => NatState::Available,
            Some(NatGatewayState::Deleting) => NatState::Deleting,
            Some(NatGatewayState::Deleted) => NatState::Deleted,
            Some(NatGatewayState::Failed) => NatState::Failed,
            _ => NatState::Pending,
        }
    }
}

/// The Name tag and the user's tags (not ours, not `aws:`) something carries.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Labels {
    pub name: String,
    /// Sorted by key.
    pub tags: Vec<(String, String)>,
}

impl Labels {
    pub fn new(name: &str, tags: &[(String, String)]) -> Labels {
        let mut tags = tags.to_vec();
        tags.sort();
        Labels {
            name: name.to_owned(),
            tags,
        }
    }

    pub fn read(tags: &[Ec2Tag]) -> Labels {
        let user: Vec<(String, String)> = tags
            .iter()
            .filter_map(|t| {
                Some((
                    t.key()?.to_owned(),
                    t.value().unwrap_or_default().to_owned(),
                ))
            })
            .filter(|(k, _)| {
                k != "Name"
                    && !k.starts_with(custom_resource::tags::PREFIX)
                    && !k.starts_with("aws:")
            })
            .collect();
        Labels::new(tag(tags, "Name").unwrap_or_default(), &user)
    }
}

#[derive(Debug, Clone)]
pub struct Subnet {
    pub id: String,
    pub az: String,
    /// The zone's id (`use1-az1`): the same physical zone in every account, unlike its name.
    pub az_id: String,
    pub public: bool,
    /// MapPublicIpOnLaunch (tasks in public subnets need public addresses).
    pub public_ips: bool,
    pub labels: Labels,
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
    pub labels: Labels,
}

#[derive(Debug, Clone)]
pub struct Nat {
    pub id: String,
    pub az: String,
    pub state: NatState,
    pub allocation_ids: Vec<String>,
    /// The NAT's own network interfaces (not blockers for Delete, even while they linger).
    pub interface_ids: Vec<String>,
    /// The CloudFormation request that made it (its `custom-resource:request-id` tag).
    pub request_id: String,
    /// FailureCode and FailureMessage of a `failed` NAT.
    pub failure: Option<(String, String)>,
    pub labels: Labels,
}

impl Nat {
    pub fn is_live(&self) -> bool {
        matches!(self.state, NatState::Pending | NatState::Available)
    }
    pub fn is_gone(&self) -> bool {
        matches!(self.state, NatState::Deleted | NatState::Failed)
    }
}

#[derive(Debug, Clone)]
pub struct Eip {
    pub allocation_id: String,
    pub az: Option<String>,
    pub labels: Labels,
}

#[derive(Debug, Clone)]
pub struct Igw {
    pub id: String,
    pub attached: bool,
    /// Tagged with the VPC's id (how a Delete finds it even detached).
    pub tagged_with_vpc: bool,
    pub labels: Labels,
}

/// Everything this resource made in (or for) one VPC, plus what others put there.
#[derive(Debug, Clone, Default)]
pub struct State {
    pub vpc_id: String,
    pub vpc_exists: bool,
    pub cidr: String,
    pub vpc_labels: Labels,
    pub igw: Option<Igw>,
    pub subnets: Vec<Subnet>,
    pub route_tables: Vec<RouteTable>,
    pub nats: Vec<Nat>,
    pub eips: Vec<Eip>,
    /// Subnets and route tables in the VPC without our role tag (they block Delete).
    pub foreign: Vec<String>,
}

impl State {
    pub fn empty(vpc_id: &str, cidr: &str, vpc_labels: Labels) -> Self {
        State {
            vpc_id: vpc_id.to_owned(),
            vpc_exists: true,
            cidr: cidr.to_owned(),
            vpc_labels,
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
            .find(|n| n.az == az && n.state == NatState::Failed && n.request_id == request_id)
    }

    /// The live (pending or available) NAT in `az`, if any.
    pub fn live_nat(&self, az: &str) -> Option<&Nat> {
        self.nats.iter().find(|n| n.az == az && n.is_live())
    }

    /// An allocated address for a NAT in `az` that no NAT holds.
    pub fn spare_eip(&self, az: &str) -> Option<&Eip> {
        self.eips.iter().find(|e| {
            e.az.as_deref() == Some(az)
                && !self
                    .nats
                    .iter()
                    .any(|n| !n.is_gone() && n.allocation_ids.contains(&e.allocation_id))
        })
    }
}

/// The EC2 calls one [`discover`] makes (all at once).
pub const DISCOVER_CALLS: usize = 6;

/// Reads the whole state of `vpc_id` in one round of concurrent calls.
pub async fn discover(ec2: &aws_sdk_ec2::Client, vpc_id: &str) -> Result<State, NetworkError> {
    let by_vpc = || filter("vpc-id", vpc_id);
    let by_tag = || filter(&format!("tag:{TAG_VPC}"), vpc_id);
    let (vpcs, subnets, tables, nats, eips, igws) = try_join!(
        async {
            let found = ec2.describe_vpcs().filters(by_vpc()).send().await;
            found.map_err(NetworkError::aws("DescribeVpcs"))
        },
        async {
            let found = ec2.describe_subnets().filters(by_vpc()).send().await;
            found.map_err(NetworkError::aws("DescribeSubnets"))
        },
        async {
            let found = ec2.describe_route_tables().filters(by_vpc()).send().await;
            found.map_err(NetworkError::aws("DescribeRouteTables"))
        },
        async {
            let found = ec2.describe_nat_gateways().filter(by_vpc()).send().await;
            found.map_err(NetworkError::aws("DescribeNatGateways"))
        },
        async {
            let found = ec2.describe_addresses().filters(by_tag()).send().await;
            found.map_err(NetworkError::aws("DescribeAddresses"))
        },
        async {
            let found = ec2
                .describe_internet_gateways()
                .filters(by_tag())
                .send()
                .await;
            found.map_err(NetworkError::aws("DescribeInternetGateways"))
        },
    )?;
    let mut state = State {
        vpc_id: vpc_id.to_owned(),
        ..State::default()
    };
    if let Some(vpc) = vpcs.vpcs().first() {
        state.vpc_exists = true;
        state.cidr = vpc.cidr_block().unwrap_or_default().to_owned();
        state.vpc_labels = Labels::read(vpc.tags());
    }
    read_subnets(&mut state, subnets.subnets());
    read_route_tables(&mut state, tables.route_tables());
    state.nats = nats.nat_gateways().iter().filter_map(read_nat).collect();
    state.eips = eips.addresses().iter().filter_map(read_eip).collect();
    state.igw = igws.internet_gateways().first().map(|igw| Igw {
        id: igw.internet_gateway_id().unwrap_or_default().to_owned(),
        attached: igw.attachments().iter().any(|a| a.vpc_id() == Some(vpc_id)),
        tagged_with_vpc: true,
        labels: Labels::read(igw.tags()),
    });
    Ok(state)
}

fn read_subnets(state: &mut State, subnets: &[aws_sdk_ec2::types::Subnet]) {
    for subnet in subnets {
        let id = subnet.subnet_id().unwrap_or_default().to_owned();
        let role = tag(subnet.tags(), TAG_ROLE).and_then(Role::parse);
        match role {
            Some(role @ (Role::PublicSubnet | Role::PrivateSubnet)) => state.subnets.push(Subnet {
                id,
                az: subnet.availability_zone().unwrap_or_default().to_owned(),
                az_id: subnet.availability_zone_id().unwrap_or_default().to_owned(),
                public: role == Role::PublicSubnet,
                public_ips: subnet.map_public_ip_on_launch().unwrap_or_default(),
                labels: Labels::read(subnet.tags()),
            }),
            _ => state.foreign.push(format!("subnet {id}")),
        }
    }
}

fn read_route_tables(state: &mut State, tables: &[aws_sdk_ec2::types::RouteTable]) {
    for table in tables {
        let id = table.route_table_id().unwrap_or_default().to_owned();
        let main = table.associations().iter().any(|a| a.main() == Some(true));
        let role = tag(table.tags(), TAG_ROLE).and_then(Role::parse);
        let public = match role {
            None if main => continue, // the VPC's main table goes with the VPC
            Some(Role::PublicRouteTable) => true,
            Some(Role::PrivateRouteTable) => false,
            _ => {
                state.foreign.push(format!("route table {id}"));
                continue;
            }
        };
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
            default_route: default_route(table.routes()),
            labels: Labels::read(table.tags()),
        });
    }
}

fn default_route(routes: &[aws_sdk_ec2::types::Route]) -> Option<DefaultRoute> {
    let route = routes
        .iter()
        .find(|r| r.destination_cidr_block() == Some("0.0.0.0/0"))?;
    Some(if let Some(nat) = route.nat_gateway_id() {
        DefaultRoute::Nat(nat.to_owned())
    } else if let Some(gateway) = route.gateway_id() {
        DefaultRoute::Gateway(gateway.to_owned())
    } else {
        DefaultRoute::Other
    })
}

/// A NAT this resource made (tagged with its zone); others in the VPC are left alone.
pub fn read_nat(nat: &aws_sdk_ec2::types::NatGateway) -> Option<Nat> {
    let az = tag(nat.tags(), TAG_AZ)?;
    let addresses = nat.nat_gateway_addresses();
    Some(Nat {
        id: nat.nat_gateway_id().unwrap_or_default().to_owned(),
        az: az.to_owned(),
        state: NatState::of(nat.state()),
        allocation_ids: addresses
            .iter()
            .filter_map(|a| a.allocation_id().map(str::to_owned))
            .collect(),
        interface_ids: addresses
            .iter()
            .filter_map(|a| a.network_interface_id().map(str::to_owned))
            .collect(),
        request_id: tag(nat.tags(), TAG_REQUEST).unwrap_or_default().to_owned(),
        failure: failure(nat),
        labels: Labels::read(nat.tags()),
    })
}

fn read_eip(eip: &aws_sdk_ec2::types::Address) -> Option<Eip> {
    Some(Eip {
        allocation_id: eip.allocation_id()?.to_owned(),
        az: tag(eip.tags(), TAG_AZ).map(str::to_owned),
        labels: Labels::read(eip.tags()),
    })
}

/// The (FailureCode, FailureMessage) of a failed NAT gateway.
fn failure(nat: &aws_sdk_ec2::types::NatGateway) -> Option<(String, String)> {
    let failed = nat.state() == Some(&NatGatewayState::Failed);
    failed.then(|| {
        (
            nat.failure_code().unwrap_or("failed").to_owned(),
            nat.failure_message()
                .unwrap_or("EC2 gave no failure message")
                .to_owned(),
        )
    })
}
