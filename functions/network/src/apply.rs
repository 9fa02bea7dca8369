//! How to do it: each planned [`Action`] as one EC2 call, a round's calls run concurrently, and
//! what each call made or changed applied back to the in-memory [`State`] for the next round's
//! plan. No decisions here beyond tolerating "already done" answers.

use crate::error::NetworkError;
use crate::plan::{Action, Desired};
use crate::state::{
    DefaultRoute, Eip, Labels, Nat, NatState, Role, RouteTable, State, Subnet, TAG_AZ, TAG_LOGICAL,
    TAG_REQUEST, TAG_ROLE, TAG_STACK, TAG_VPC,
};
use aws_sdk_ec2::types::{
    AttributeBooleanValue, DomainType, ResourceType, Tag as Ec2Tag, TagSpecification,
};
use custom_resource::Context;
use futures::future::BoxFuture;
use tracing::info;

const ANYWHERE: &str = "0.0.0.0/0";

/// The EC2 client every call goes through (created once in main.rs; the resource's logic is in
/// resource.rs, which uses this module, never the other way round).
pub struct Network {
    pub(crate) ec2: aws_sdk_ec2::Client,
}

/// What one call changed.
pub enum Effect {
    Nothing,
    GatewayTagged,
    GatewayAttached,
    Subnet(Subnet),
    RouteTable(RouteTable),
    Eip(Eip),
    PublicIps(String),
    Associated {
        table: String,
        association: String,
        subnet: String,
    },
    Unassociated(String),
    Route {
        table: String,
        route: Option<DefaultRoute>,
    },
    Nat(Box<Nat>),
    NatDeleting(String),
    Released(String),
    Relabeled {
        resource: String,
        labels: Labels,
    },
}

type Call<'a> = BoxFuture<'a, Result<Effect, NetworkError>>;

/// Who owns what gets created: the tags every resource carries.
pub struct Owner<'a> {
    pub ctx: &'a Context,
    pub desired: &'a Desired,
}

impl Owner<'_> {
    pub fn spec(
        &self,
        kind: ResourceType,
        role: Role,
        az: Option<&str>,
        vpc_id: &str,
    ) -> TagSpecification {
        let labels = self.desired.labels(role, az);
        let mut tags = vec![
            ec2_tag("Name", &labels.name),
            ec2_tag(TAG_STACK, &self.ctx.stack_id),
            ec2_tag(TAG_LOGICAL, &self.ctx.logical_resource_id),
            ec2_tag(TAG_REQUEST, &self.ctx.request_id),
            ec2_tag(TAG_ROLE, role.tag()),
        ];
        if let Some(az) = az {
            tags.push(ec2_tag(TAG_AZ, az));
        }
        if role != Role::Vpc && role != Role::InternetGateway {
            tags.push(ec2_tag(TAG_VPC, vpc_id));
        }
        tags.extend(labels.tags.iter().map(|(k, v)| ec2_tag(k, v)));
        TagSpecification::builder()
            .resource_type(kind)
            .set_tags(Some(tags))
            .build()
    }
}

pub fn ec2_tag(key: &str, value: &str) -> Ec2Tag {
    Ec2Tag::builder().key(key).value(value).build()
}

fn yes() -> AttributeBooleanValue {
    AttributeBooleanValue::builder().value(true).build()
}

pub fn is_code<E: aws_sdk_ec2::error::ProvideErrorMetadata>(
    error: &aws_sdk_ec2::error::SdkError<E>,
    code: &str,
) -> bool {
    error.as_service_error().and_then(|e| e.code()) == Some(code)
}

/// One line per round of concurrent EC2 calls: the tests compare these with the calls seen on the wire.
pub fn log_round(label: &str, calls: usize, started: std::time::Instant) {
    info!(
        round = label,
        calls,
        duration_ms = started.elapsed().as_millis() as u64,
        "EC2 round done"
    );
}

impl Network {
    /// Runs one round's actions concurrently and applies their effects to `state`.
    pub async fn run(
        &self,
        label: &str,
        actions: Vec<Action>,
        owner: &Owner<'_>,
        state: &mut State,
    ) -> Result<(), NetworkError> {
        if actions.is_empty() {
            return Ok(());
        }
        let count = actions.len();
        let started = std::time::Instant::now();
        let vpc_id = state.vpc_id.clone();
        let calls: Vec<Call> = actions
            .into_iter()
            .map(|action| self.call(owner, &vpc_id, action))
            .collect();
        // Nothing left in flight on failure: the rollback Delete must see all that was made.
        let effects = custom_resource::rounds::all_settled(calls).await?;
        log_round(label, count, started);
        for effect in effects {
            apply(state, effect);
        }
        Ok(())
    }

    fn call<'a>(&'a self, owner: &'a Owner<'a>, vpc_id: &str, action: Action) -> Call<'a> {
        let vpc_id = vpc_id.to_owned();
        match action {
            Action::EnableDns { hostnames } => Box::pin(self.enable_dns(vpc_id, hostnames)),
            Action::TagGatewayWithVpc { igw } => Box::pin(self.tag_gateway(igw, vpc_id)),
            Action::AttachGateway { igw } => Box::pin(self.attach_gateway(igw, vpc_id)),
            Action::CreateSubnet { az, public, cidr } => {
                Box::pin(self.create_subnet(owner, vpc_id, az, public, cidr.to_string()))
            }
            Action::CreateRouteTable { az } => Box::pin(self.create_route_table(owner, vpc_id, az)),
            Action::AllocateAddress { az } => Box::pin(self.allocate_address(owner, vpc_id, az)),
            Action::EnablePublicIps { subnet } => Box::pin(self.enable_public_ips(subnet)),
            Action::Associate { table, subnet } => Box::pin(self.associate(table, subnet)),
            Action::Reassociate {
                association,
                to,
                subnet,
                ..
            } => Box::pin(self.reassociate(association, to, subnet)),
            Action::SetDefaultRoute { table, from, to } => {
                Box::pin(self.set_route(table, from, to))
            }
            Action::CreateNat {
                az,
                subnet,
                allocation,
            } => Box::pin(self.create_nat(owner, vpc_id, az, subnet, allocation)),
            Action::DeleteNat { nat } => Box::pin(self.delete_nat(nat)),
            Action::ReleaseAddress { allocation } => Box::pin(self.release_address(allocation)),
            Action::Retag {
                resource,
                set,
                remove,
            } => Box::pin(self.retag(resource, set, remove)),
            Action::Disassociate { association } => Box::pin(self.disassociate(association)),
            Action::DetachGateway { igw } => Box::pin(self.detach_gateway(igw, vpc_id)),
            Action::DeleteRouteTable { table } => Box::pin(self.delete_route_table(table)),
            Action::DeleteSubnet { subnet } => Box::pin(self.delete_subnet(subnet)),
            Action::DeleteGateway { igw } => Box::pin(self.delete_gateway(igw)),
        }
    }

    async fn enable_dns(&self, vpc_id: String, hostnames: bool) -> Result<Effect, NetworkError> {
        let request = self.ec2.modify_vpc_attribute().vpc_id(vpc_id);
        let request = if hostnames {
            request.enable_dns_hostnames(yes())
        } else {
            request.enable_dns_support(yes())
        };
        request
            .send()
            .await
            .map_err(NetworkError::aws("ModifyVpcAttribute"))?;
        Ok(Effect::Nothing)
    }

    /// Lets a later Delete find the gateway by VPC even if it is detached.
    async fn tag_gateway(&self, igw: String, vpc_id: String) -> Result<Effect, NetworkError> {
        let request = self
            .ec2
            .create_tags()
            .resources(igw)
            .tags(ec2_tag(TAG_VPC, &vpc_id));
        request
            .send()
            .await
            .map_err(NetworkError::aws("CreateTags"))?;
        Ok(Effect::GatewayTagged)
    }

    async fn attach_gateway(&self, igw: String, vpc_id: String) -> Result<Effect, NetworkError> {
        let request = self
            .ec2
            .attach_internet_gateway()
            .internet_gateway_id(igw)
            .vpc_id(vpc_id);
        match request.send().await {
            Ok(_) => Ok(Effect::GatewayAttached),
            // Already attached to this VPC by an earlier delivery.
            Err(e) if is_code(&e, "Resource.AlreadyAssociated") => Ok(Effect::GatewayAttached),
            Err(e) => Err(NetworkError::aws("AttachInternetGateway")(e)),
        }
    }

    async fn create_subnet(
        &self,
        owner: &Owner<'_>,
        vpc_id: String,
        az: String,
        public: bool,
        cidr: String,
    ) -> Result<Effect, NetworkError> {
        let role = if public {
            Role::PublicSubnet
        } else {
            Role::PrivateSubnet
        };
        let spec = owner.spec(ResourceType::Subnet, role, Some(&az), &vpc_id);
        let request = self.ec2.create_subnet().vpc_id(vpc_id).cidr_block(cidr);
        let created = request
            .availability_zone(&az)
            .tag_specifications(spec)
            .send()
            .await
            .map_err(NetworkError::aws("CreateSubnet"))?;
        let subnet = created.subnet();
        let id = subnet
            .and_then(|s| s.subnet_id())
            .ok_or(NetworkError::Missing {
                operation: "CreateSubnet",
                field: "SubnetId",
            })?;
        Ok(Effect::Subnet(Subnet {
            id: id.to_owned(),
            az_id: subnet
                .and_then(|s| s.availability_zone_id())
                .unwrap_or_default()
                .to_owned(),
            public,
            public_ips: subnet
                .and_then(|s| s.map_public_ip_on_launch())
                .unwrap_or_default(),
            labels: owner.desired.labels(role, Some(&az)),
            az,
        }))
    }

    async fn create_route_table(
        &self,
        owner: &Owner<'_>,
        vpc_id: String,
        az: Option<String>,
    ) -> Result<Effect, NetworkError> {
        let role = if az.is_some() {
            Role::PrivateRouteTable
        } else {
            Role::PublicRouteTable
        };
        let spec = owner.spec(ResourceType::RouteTable, role, az.as_deref(), &vpc_id);
        let created = self
            .ec2
            .create_route_table()
            .vpc_id(vpc_id)
            .tag_specifications(spec)
            .send()
            .await
            .map_err(NetworkError::aws("CreateRouteTable"))?;
        let id = created
            .route_table()
            .and_then(|t| t.route_table_id())
            .ok_or(NetworkError::Missing {
                operation: "CreateRouteTable",
                field: "RouteTableId",
            })?;
        Ok(Effect::RouteTable(RouteTable {
            id: id.to_owned(),
            public: az.is_none(),
            labels: owner.desired.labels(role, az.as_deref()),
            az,
            associations: Vec::new(),
            default_route: None,
        }))
    }

    async fn allocate_address(
        &self,
        owner: &Owner<'_>,
        vpc_id: String,
        az: String,
    ) -> Result<Effect, NetworkError> {
        let spec = owner.spec(
            ResourceType::ElasticIp,
            Role::NatAddress,
            Some(&az),
            &vpc_id,
        );
        let created = self
            .ec2
            .allocate_address()
            .domain(DomainType::Vpc)
            .tag_specifications(spec)
            .send()
            .await
            .map_err(NetworkError::aws("AllocateAddress"))?;
        let id = created.allocation_id().ok_or(NetworkError::Missing {
            operation: "AllocateAddress",
            field: "AllocationId",
        })?;
        Ok(Effect::Eip(Eip {
            allocation_id: id.to_owned(),
            labels: owner.desired.labels(Role::NatAddress, Some(&az)),
            az: Some(az),
        }))
    }

    /// Tasks placed in public subnets need public addresses.
    async fn enable_public_ips(&self, subnet: String) -> Result<Effect, NetworkError> {
        let request = self.ec2.modify_subnet_attribute().subnet_id(&subnet);
        let request = request.map_public_ip_on_launch(yes());
        request
            .send()
            .await
            .map_err(NetworkError::aws("ModifySubnetAttribute"))?;
        Ok(Effect::PublicIps(subnet))
    }

    async fn associate(&self, table: String, subnet: String) -> Result<Effect, NetworkError> {
        let request = self
            .ec2
            .associate_route_table()
            .route_table_id(&table)
            .subnet_id(&subnet);
        let done = request
            .send()
            .await
            .map_err(NetworkError::aws("AssociateRouteTable"))?;
        let association = done.association_id().unwrap_or_default().to_owned();
        Ok(Effect::Associated {
            table,
            association,
            subnet,
        })
    }

    async fn reassociate(
        &self,
        association: String,
        table: String,
        subnet: String,
    ) -> Result<Effect, NetworkError> {
        let request = self
            .ec2
            .replace_route_table_association()
            .association_id(association);
        let done = request
            .route_table_id(&table)
            .send()
            .await
            .map_err(NetworkError::aws("ReplaceRouteTableAssociation"))?;
        let association = done.new_association_id().unwrap_or_default().to_owned();
        Ok(Effect::Associated {
            table,
            association,
            subnet,
        })
    }

    async fn set_route(
        &self,
        table: String,
        from: Option<DefaultRoute>,
        to: Option<DefaultRoute>,
    ) -> Result<Effect, NetworkError> {
        let (gateway, nat) = match &to {
            Some(DefaultRoute::Gateway(id)) => (Some(id.clone()), None),
            Some(DefaultRoute::Nat(id)) => (None, Some(id.clone())),
            _ => (None, None),
        };
        match (from.is_some(), to.is_some()) {
            (_, false) => {
                let request = self.ec2.delete_route().route_table_id(&table);
                let request = request.destination_cidr_block(ANYWHERE);
                request
                    .send()
                    .await
                    .map_err(NetworkError::aws("DeleteRoute"))?;
            }
            (true, true) => {
                let request = self.ec2.replace_route().route_table_id(&table);
                let request = request.destination_cidr_block(ANYWHERE);
                let request = request.set_gateway_id(gateway).set_nat_gateway_id(nat);
                request
                    .send()
                    .await
                    .map_err(NetworkError::aws("ReplaceRoute"))?;
            }
            (false, true) => {
                let request = self.ec2.create_route().route_table_id(&table);
                let request = request.destination_cidr_block(ANYWHERE);
                let request = request.set_gateway_id(gateway).set_nat_gateway_id(nat);
                request
                    .send()
                    .await
                    .map_err(NetworkError::aws("CreateRoute"))?;
            }
        }
        Ok(Effect::Route { table, route: to })
    }

    async fn create_nat(
        &self,
        owner: &Owner<'_>,
        vpc_id: String,
        az: String,
        subnet: String,
        allocation: String,
    ) -> Result<Effect, NetworkError> {
        let spec = owner.spec(
            ResourceType::Natgateway,
            Role::NatGateway,
            Some(&az),
            &vpc_id,
        );
        // Same token for a redelivered request: EC2 returns the NAT it already made.
        let token: String = format!("{}-{az}", owner.ctx.idempotency_token(40))
            .chars()
            .take(64)
            .collect();
        let created = self
            .ec2
            .create_nat_gateway()
            .subnet_id(subnet)
            .allocation_id(&allocation)
            .client_token(token)
            .tag_specifications(spec)
            .send()
            .await
            .map_err(NetworkError::aws("CreateNatGateway"))?;
        let nat = created.nat_gateway().ok_or(NetworkError::Missing {
            operation: "CreateNatGateway",
            field: "NatGateway",
        })?;
        let mut made = crate::state::read_nat(nat).unwrap_or_else(|| Nat {
            id: nat.nat_gateway_id().unwrap_or_default().to_owned(),
            az: az.clone(),
            state: NatState::of(nat.state()),
            allocation_ids: vec![allocation.clone()],
            interface_ids: Vec::new(),
            request_id: owner.ctx.request_id.clone(),
            failure: None,
            labels: Labels::default(),
        });
        made.labels = owner.desired.labels(Role::NatGateway, Some(&az));
        if made.allocation_ids.is_empty() {
            made.allocation_ids = vec![allocation];
        }
        Ok(Effect::Nat(Box::new(made)))
    }

    async fn delete_nat(&self, nat: String) -> Result<Effect, NetworkError> {
        let request = self.ec2.delete_nat_gateway().nat_gateway_id(&nat);
        request
            .send()
            .await
            .map_err(NetworkError::aws("DeleteNatGateway"))?;
        Ok(Effect::NatDeleting(nat))
    }

    /// An address already released counts as released.
    async fn release_address(&self, allocation: String) -> Result<Effect, NetworkError> {
        match self
            .ec2
            .release_address()
            .allocation_id(&allocation)
            .send()
            .await
        {
            Ok(_) => {}
            Err(e) if is_code(&e, "InvalidAllocationID.NotFound") => {}
            Err(e) => return Err(NetworkError::aws("ReleaseAddress")(e)),
        }
        Ok(Effect::Released(allocation))
    }

    async fn retag(
        &self,
        resource: String,
        set: Option<Labels>,
        remove: Vec<String>,
    ) -> Result<Effect, NetworkError> {
        if let Some(labels) = &set {
            let mut tags = vec![ec2_tag("Name", &labels.name)];
            tags.extend(labels.tags.iter().map(|(k, v)| ec2_tag(k, v)));
            let request = self
                .ec2
                .create_tags()
                .resources(&resource)
                .set_tags(Some(tags));
            request
                .send()
                .await
                .map_err(NetworkError::aws("CreateTags"))?;
        }
        if !remove.is_empty() {
            let keys: Vec<Ec2Tag> = remove
                .iter()
                .map(|k| Ec2Tag::builder().key(k).build())
                .collect();
            let request = self
                .ec2
                .delete_tags()
                .resources(&resource)
                .set_tags(Some(keys));
            request
                .send()
                .await
                .map_err(NetworkError::aws("DeleteTags"))?;
        }
        Ok(match set {
            Some(labels) => Effect::Relabeled { resource, labels },
            None => Effect::Nothing,
        })
    }

    async fn disassociate(&self, association: String) -> Result<Effect, NetworkError> {
        let request = self
            .ec2
            .disassociate_route_table()
            .association_id(&association);
        request
            .send()
            .await
            .map_err(NetworkError::aws("DisassociateRouteTable"))?;
        Ok(Effect::Unassociated(association))
    }

    async fn detach_gateway(&self, igw: String, vpc_id: String) -> Result<Effect, NetworkError> {
        let request = self
            .ec2
            .detach_internet_gateway()
            .internet_gateway_id(igw)
            .vpc_id(vpc_id);
        request
            .send()
            .await
            .map_err(NetworkError::aws("DetachInternetGateway"))?;
        Ok(Effect::Nothing)
    }

    async fn delete_route_table(&self, table: String) -> Result<Effect, NetworkError> {
        let request = self.ec2.delete_route_table().route_table_id(table);
        request
            .send()
            .await
            .map_err(NetworkError::aws("DeleteRouteTable"))?;
        Ok(Effect::Nothing)
    }

    async fn delete_subnet(&self, subnet: String) -> Result<Effect, NetworkError> {
        let request = self.ec2.delete_subnet().subnet_id(subnet);
        request
            .send()
            .await
            .map_err(NetworkError::aws("DeleteSubnet"))?;
        Ok(Effect::Nothing)
    }

    async fn delete_gateway(&self, igw: String) -> Result<Effect, NetworkError> {
        let request = self.ec2.delete_internet_gateway().internet_gateway_id(igw);
        request
            .send()
            .await
            .map_err(NetworkError::aws("DeleteInternetGateway"))?;
        Ok(Effect::Nothing)
    }
}

/// What a call changed, applied to the state the next round is planned from.
fn apply(state: &mut State, effect: Effect) {
    match effect {
        Effect::Nothing => {}
        Effect::GatewayTagged => state.igw.iter_mut().for_each(|g| g.tagged_with_vpc = true),
        Effect::GatewayAttached => state.igw.iter_mut().for_each(|g| g.attached = true),
        Effect::Subnet(subnet) => state.subnets.push(subnet),
        Effect::RouteTable(table) => state.route_tables.push(table),
        Effect::Eip(eip) => state.eips.push(eip),
        Effect::PublicIps(id) => state
            .subnets
            .iter_mut()
            .filter(|s| s.id == id)
            .for_each(|s| s.public_ips = true),
        Effect::Associated {
            table,
            association,
            subnet,
        } => {
            for t in &mut state.route_tables {
                t.associations.retain(|(_, s)| *s != subnet);
            }
            if let Some(t) = state.route_tables.iter_mut().find(|t| t.id == table) {
                t.associations.push((association, subnet));
            }
        }
        Effect::Unassociated(association) => {
            for t in &mut state.route_tables {
                t.associations.retain(|(a, _)| *a != association);
            }
        }
        Effect::Route { table, route } => state
            .route_tables
            .iter_mut()
            .filter(|t| t.id == table)
            .for_each(|t| t.default_route = route.clone()),
        Effect::Nat(nat) => state.nats.push(*nat),
        Effect::NatDeleting(id) => state
            .nats
            .iter_mut()
            .filter(|n| n.id == id)
            .for_each(|n| n.state = NatState::Deleting),
        Effect::Released(id) => state.eips.retain(|e| e.allocation_id != id),
        Effect::Relabeled { resource, labels } => relabel(state, &resource, labels),
    }
}

fn relabel(state: &mut State, resource: &str, labels: Labels) {
    if state.vpc_id == resource {
        state.vpc_labels = labels;
        return;
    }
    let found = state
        .igw
        .iter_mut()
        .filter(|g| g.id == resource)
        .map(|g| &mut g.labels)
        .chain(
            state
                .subnets
                .iter_mut()
                .filter(|s| s.id == resource)
                .map(|s| &mut s.labels),
        )
        .chain(
            state
                .route_tables
                .iter_mut()
                .filter(|t| t.id == resource)
                .map(|t| &mut t.labels),
        )
        .chain(
            state
                .nats
                .iter_mut()
                .filter(|n| n.id == resource)
                .map(|n| &mut n.labels),
        )
        .chain(
            state
                .eips
                .iter_mut()
                .filter(|e| e.allocation_id == resource)
                .map(|e| &mut e.labels),
        )
        .next();
    if let Some(found) = found {
        *found = labels;
    }
}
