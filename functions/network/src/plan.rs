//! What to do: pure functions from (observed [`State`], [`Desired`]) to the actions of each
//! dependency round. Nothing here calls AWS; `apply.rs` turns actions into EC2 calls and their
//! results back into state, and `resource.rs` runs the rounds in order:
//!
//! A [`setup`] → B [`connect`] → (wait while NATs are pending; fail on a failed one) → C [`route`]
//! → D [`retire`] → (wait while NATs are deleting) → E [`release`] → tags [`retag`].
//! Delete: [`teardown`] in three rounds, then the VPC.
//!
//! Every round is computed from what exists, so a retried, redelivered or handed-over request
//! (which re-reads the state) plans exactly what is still missing: a resume cannot skip a step,
//! the retag included (it compares the tags each resource carries with the properties).

use crate::error::NetworkError;
use crate::layout;
use crate::properties::{NatGateways, NetworkProperties};
use crate::state::{DefaultRoute, Labels, Nat, NatState, Role, State};
use ipnet::Ipv4Net;

/// What the properties ask for, in the terms of one region's zones.
#[derive(Debug, Clone)]
pub struct Desired {
    pub name: String,
    /// The user's tags, sorted.
    pub tags: Vec<(String, String)>,
    pub azs: Vec<String>,
    pub public_blocks: Vec<Ipv4Net>,
    pub private_blocks: Vec<Ipv4Net>,
    pub nat: NatGateways,
    /// A new VPC: enable DNS support and hostnames (round A).
    pub configure_vpc: bool,
}

impl Desired {
    pub fn new(
        props: &NetworkProperties,
        azs: &[String],
        configure_vpc: bool,
    ) -> Result<Desired, NetworkError> {
        let (public_blocks, private_blocks) =
            layout::carve(props.cidr_block, azs.len()).map_err(|message| {
                NetworkError::Property {
                    property: "CidrBlock",
                    message,
                }
            })?;
        let mut tags: Vec<(String, String)> = props
            .tags
            .iter()
            .map(|t| (t.key.clone(), t.value.clone()))
            .collect();
        tags.sort();
        Ok(Desired {
            name: props.name.clone(),
            tags,
            azs: azs.to_vec(),
            public_blocks,
            private_blocks,
            nat: props.nat_gateways,
            configure_vpc,
        })
    }

    /// What a Delete plans with: no zones, no name (teardown reads only the state).
    pub fn nothing() -> Desired {
        Desired {
            name: String::new(),
            tags: Vec::new(),
            azs: Vec::new(),
            public_blocks: Vec::new(),
            private_blocks: Vec::new(),
            nat: NatGateways::None,
            configure_vpc: false,
        }
    }

    /// The zones that get a NAT gateway.
    pub fn nat_azs(&self) -> Vec<String> {
        match self.nat {
            NatGateways::None => Vec::new(),
            NatGateways::Single => self.azs.iter().take(1).cloned().collect(),
            NatGateways::PerAz => self.azs.clone(),
        }
    }

    /// The zone of the NAT a private subnet in `az` routes through, if any.
    pub fn nat_for(&self, az: &str) -> Option<String> {
        match self.nat {
            NatGateways::None => None,
            NatGateways::Single => self.azs.first().cloned(),
            NatGateways::PerAz => Some(az.to_owned()),
        }
    }

    /// The Name tag format of each role (one home for it) and the user's tags.
    pub fn labels(&self, role: Role, az: Option<&str>) -> Labels {
        let name = &self.name;
        let az = az.unwrap_or("eip");
        let label = match role {
            Role::Vpc => name.clone(),
            Role::InternetGateway => format!("{name}-igw"),
            Role::PublicSubnet => format!("{name}-public-{az}"),
            Role::PrivateSubnet => format!("{name}-private-{az}"),
            Role::PublicRouteTable => format!("{name}-public"),
            Role::PrivateRouteTable => format!("{name}-private-{az}"),
            Role::NatAddress | Role::NatGateway => format!("{name}-nat-{az}"),
        };
        Labels::new(&label, &self.tags)
    }
}

/// One EC2 change. Ids are those in the state the round was planned from.
#[derive(Debug, Clone, PartialEq)]
pub enum Action {
    EnableDns {
        hostnames: bool,
    },
    TagGatewayWithVpc {
        igw: String,
    },
    AttachGateway {
        igw: String,
    },
    CreateSubnet {
        az: String,
        public: bool,
        cidr: Ipv4Net,
    },
    /// `az` None: the public table.
    CreateRouteTable {
        az: Option<String>,
    },
    AllocateAddress {
        az: String,
    },
    EnablePublicIps {
        subnet: String,
    },
    Associate {
        table: String,
        subnet: String,
    },
    Reassociate {
        association: String,
        from: String,
        to: String,
        subnet: String,
    },
    /// The table's 0.0.0.0/0 route from `from` to `to` (create, replace or delete).
    SetDefaultRoute {
        table: String,
        from: Option<DefaultRoute>,
        to: Option<DefaultRoute>,
    },
    CreateNat {
        az: String,
        subnet: String,
        allocation: String,
    },
    DeleteNat {
        nat: String,
    },
    ReleaseAddress {
        allocation: String,
    },
    /// Name and user tags set to `set` (when given), and the `remove` keys dropped.
    Retag {
        resource: String,
        set: Option<Labels>,
        remove: Vec<String>,
    },
    Disassociate {
        association: String,
    },
    DetachGateway {
        igw: String,
    },
    DeleteRouteTable {
        table: String,
    },
    DeleteSubnet {
        subnet: String,
    },
    DeleteGateway {
        igw: String,
    },
}

/// Round A: everything that needs only the VPC (and the gateway made beside it).
pub fn setup(state: &State, d: &Desired) -> Vec<Action> {
    let mut actions = Vec::new();
    if d.configure_vpc {
        actions.extend([false, true].map(|hostnames| Action::EnableDns { hostnames }));
    }
    if let Some(igw) = &state.igw {
        if !igw.tagged_with_vpc {
            actions.push(Action::TagGatewayWithVpc {
                igw: igw.id.clone(),
            });
        }
        if !igw.attached {
            actions.push(Action::AttachGateway {
                igw: igw.id.clone(),
            });
        }
    }
    for (index, az) in d.azs.iter().enumerate() {
        for (public, cidr) in [
            (true, d.public_blocks[index]),
            (false, d.private_blocks[index]),
        ] {
            if state.subnet(az, public).is_none() {
                actions.push(Action::CreateSubnet {
                    az: az.clone(),
                    public,
                    cidr,
                });
            }
        }
    }
    if state.public_route_table().is_none() {
        actions.push(Action::CreateRouteTable { az: None });
    }
    for az in &d.azs {
        if state.private_route_table(az).is_none() {
            actions.push(Action::CreateRouteTable {
                az: Some(az.clone()),
            });
        }
    }
    for az in d.nat_azs() {
        if state.live_nat(&az).is_none() && state.spare_eip(&az).is_none() {
            actions.push(Action::AllocateAddress { az });
        }
    }
    actions
}

/// Round B: public addressing, associations, the public default route, new NAT gateways.
pub fn connect(state: &State, d: &Desired) -> Vec<Action> {
    let mut actions: Vec<Action> = state
        .subnets
        .iter()
        .filter(|s| s.public && !s.public_ips)
        .map(|s| Action::EnablePublicIps {
            subnet: s.id.clone(),
        })
        .collect();
    actions.extend(associations(state));
    if let (Some(table), Some(igw)) = (state.public_route_table(), &state.igw) {
        let want = Some(DefaultRoute::Gateway(igw.id.clone()));
        if table.default_route != want {
            actions.push(Action::SetDefaultRoute {
                table: table.id.clone(),
                from: table.default_route.clone(),
                to: want,
            });
        }
    }
    for az in d.nat_azs() {
        if state.live_nat(&az).is_some() {
            continue;
        }
        if let (Some(subnet), Some(eip)) = (state.subnet(&az, true), state.spare_eip(&az)) {
            actions.push(Action::CreateNat {
                az: az.clone(),
                subnet: subnet.id.clone(),
                allocation: eip.allocation_id.clone(),
            });
        }
    }
    actions
}

/// Each subnet associated with its table (public: the public one; private: its zone's).
fn associations(state: &State) -> Vec<Action> {
    let mut actions = Vec::new();
    for subnet in &state.subnets {
        let target = if subnet.public {
            state.public_route_table()
        } else {
            state.private_route_table(&subnet.az)
        };
        let Some(target) = target.map(|t| t.id.clone()) else {
            continue;
        };
        let current = state.route_tables.iter().find_map(|t| {
            let (association, _) = t.associations.iter().find(|(_, s)| *s == subnet.id)?;
            Some((t.id.clone(), association.clone()))
        });
        match current {
            Some((table, _)) if table == target => {}
            Some((from, association)) => actions.push(Action::Reassociate {
                association,
                from,
                to: target,
                subnet: subnet.id.clone(),
            }),
            None => actions.push(Action::Associate {
                table: target,
                subnet: subnet.id.clone(),
            }),
        }
    }
    actions
}

/// A wanted zone's NAT that request `request_id` made and that failed (no live one beside it).
pub fn failed_nat<'a>(state: &'a State, d: &Desired, request_id: &str) -> Option<&'a Nat> {
    d.nat_azs()
        .iter()
        .filter(|az| state.live_nat(az).is_none())
        .find_map(|az| state.failed_nat_of(az, request_id))
}

/// The wanted NATs still pending (round C waits for them: a route to a pending NAT drops traffic).
pub fn pending_nats(state: &State, d: &Desired) -> Vec<String> {
    d.nat_azs()
        .iter()
        .filter_map(|az| state.live_nat(az))
        .filter(|n| n.state == NatState::Pending)
        .map(|n| n.id.clone())
        .collect()
}

/// Round C: private default routes, switched to the wanted NATs (before round D deletes the old).
pub fn route(state: &State, d: &Desired) -> Vec<Action> {
    let mut actions = Vec::new();
    for az in &d.azs {
        let Some(table) = state.private_route_table(az) else {
            continue;
        };
        let want = d
            .nat_for(az)
            .and_then(|nat_az| state.live_nat(&nat_az))
            .map(|n| DefaultRoute::Nat(n.id.clone()));
        if table.default_route != want {
            actions.push(Action::SetDefaultRoute {
                table: table.id.clone(),
                from: table.default_route.clone(),
                to: want,
            });
        }
    }
    actions
}

/// Round D: live NATs no wanted zone keeps (no route uses them after round C).
pub fn retire(state: &State, d: &Desired) -> Vec<Action> {
    let nat_azs = d.nat_azs();
    let kept: Vec<&str> = nat_azs
        .iter()
        .filter_map(|az| state.live_nat(az))
        .map(|n| n.id.as_str())
        .collect();
    state
        .nats
        .iter()
        .filter(|n| n.is_live() && !kept.contains(&n.id.as_str()))
        .map(|n| Action::DeleteNat { nat: n.id.clone() })
        .collect()
}

/// Round E: addresses no live NAT holds.
pub fn release(state: &State) -> Vec<Action> {
    state
        .eips
        .iter()
        .filter(|e| {
            !state
                .nats
                .iter()
                .any(|n| n.is_live() && n.allocation_ids.contains(&e.allocation_id))
        })
        .map(|e| Action::ReleaseAddress {
            allocation: e.allocation_id.clone(),
        })
        .collect()
}

/// The last round: every resource whose Name or user tags differ from the properties.
pub fn retag(state: &State, d: &Desired) -> Vec<Action> {
    let mut found: Vec<(&str, &Labels, Labels)> = vec![(
        state.vpc_id.as_str(),
        &state.vpc_labels,
        d.labels(Role::Vpc, None),
    )];
    if let Some(igw) = &state.igw {
        found.push((&igw.id, &igw.labels, d.labels(Role::InternetGateway, None)));
    }
    for s in &state.subnets {
        let role = if s.public {
            Role::PublicSubnet
        } else {
            Role::PrivateSubnet
        };
        found.push((&s.id, &s.labels, d.labels(role, Some(&s.az))));
    }
    for t in &state.route_tables {
        let role = if t.public {
            Role::PublicRouteTable
        } else {
            Role::PrivateRouteTable
        };
        found.push((&t.id, &t.labels, d.labels(role, t.az.as_deref())));
    }
    for n in state.nats.iter().filter(|n| n.is_live()) {
        found.push((&n.id, &n.labels, d.labels(Role::NatGateway, Some(&n.az))));
    }
    for e in &state.eips {
        found.push((
            &e.allocation_id,
            &e.labels,
            d.labels(Role::NatAddress, e.az.as_deref()),
        ));
    }
    found
        .into_iter()
        .filter_map(|(id, have, want)| relabel(id, have, want))
        .collect()
}

fn relabel(resource: &str, have: &Labels, want: Labels) -> Option<Action> {
    let missing = have.name != want.name || want.tags.iter().any(|t| !have.tags.contains(t));
    let remove: Vec<String> = have
        .tags
        .iter()
        .filter(|(key, _)| !want.tags.iter().any(|(k, _)| k == key))
        .map(|(key, _)| key.clone())
        .collect();
    (missing || !remove.is_empty()).then(|| Action::Retag {
        resource: resource.to_owned(),
        set: missing.then_some(want),
        remove,
    })
}

/// Delete, in three rounds: NAT gateways (they hold addresses and sit in the public subnets; the
/// caller waits for them to be deleted); then addresses, associations and the gateway's
/// attachment; then route tables, subnets and the gateway. The VPC goes last.
pub fn teardown(state: &State) -> [Vec<Action>; 3] {
    let nats = state
        .nats
        .iter()
        .filter(|n| n.is_live())
        .map(|n| Action::DeleteNat { nat: n.id.clone() })
        .collect();
    let mut detach: Vec<Action> = state
        .eips
        .iter()
        .map(|e| Action::ReleaseAddress {
            allocation: e.allocation_id.clone(),
        })
        .collect();
    detach.extend(state.route_tables.iter().flat_map(|t| {
        t.associations
            .iter()
            .map(|(association, _)| Action::Disassociate {
                association: association.clone(),
            })
    }));
    let mut remove: Vec<Action> = state
        .route_tables
        .iter()
        .map(|t| Action::DeleteRouteTable {
            table: t.id.clone(),
        })
        .collect();
    remove.extend(state.subnets.iter().map(|s| Action::DeleteSubnet {
        subnet: s.id.clone(),
    }));
    if let Some(igw) = &state.igw {
        if igw.attached {
            detach.push(Action::DetachGateway {
                igw: igw.id.clone(),
            });
        }
        remove.push(Action::DeleteGateway {
            igw: igw.id.clone(),
        });
    }
    [nats, detach, remove]
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::properties::Tag;
    use crate::state::{Eip, Igw, RouteTable, Subnet};

    const AZS: [&str; 3] = ["us-east-1a", "us-east-1b", "us-east-1c"];

    fn props(nat: NatGateways, zones: usize) -> (NetworkProperties, Vec<String>) {
        let props: NetworkProperties = serde_json::from_value(serde_json::json!({
            "Name": "dev", "NatGateways": match nat {
                NatGateways::None => "None", NatGateways::Single => "Single", NatGateways::PerAz => "PerAz",
            }, "Tags": [{"Key": "team", "Value": "a"}],
        }))
        .unwrap();
        (props, AZS[..zones].iter().map(|z| z.to_string()).collect())
    }

    fn desired(nat: NatGateways, zones: usize) -> Desired {
        let (props, azs) = props(nat, zones);
        Desired::new(&props, &azs, false).unwrap()
    }

    /// What a finished network with `d`'s layout looks like (NATs available, routes set).
    fn built(d: &Desired) -> State {
        let mut state = State::empty("vpc-1", "10.0.0.0/16", d.labels(Role::Vpc, None));
        state.igw = Some(Igw {
            id: "igw-1".into(),
            attached: true,
            tagged_with_vpc: true,
            labels: d.labels(Role::InternetGateway, None),
        });
        let public = RouteTable {
            id: "rtb-public".into(),
            public: true,
            az: None,
            associations: vec![],
            default_route: Some(DefaultRoute::Gateway("igw-1".into())),
            labels: d.labels(Role::PublicRouteTable, None),
        };
        state.route_tables.push(public);
        for az in &d.azs {
            for public in [true, false] {
                let role = if public {
                    Role::PublicSubnet
                } else {
                    Role::PrivateSubnet
                };
                let id = format!("subnet-{}-{az}", if public { "pub" } else { "priv" });
                state.subnets.push(Subnet {
                    id: id.clone(),
                    az: az.clone(),
                    az_id: String::new(),
                    public,
                    public_ips: public,
                    labels: d.labels(role, Some(az)),
                });
                let table = if public {
                    "rtb-public".to_owned()
                } else {
                    format!("rtb-{az}")
                };
                if !public {
                    state.route_tables.push(RouteTable {
                        id: table.clone(),
                        public: false,
                        az: Some(az.clone()),
                        associations: vec![],
                        default_route: None,
                        labels: d.labels(Role::PrivateRouteTable, Some(az)),
                    });
                }
                let t = state
                    .route_tables
                    .iter_mut()
                    .find(|t| t.id == table)
                    .unwrap();
                t.associations.push((format!("assoc-{id}"), id));
            }
        }
        for az in d.nat_azs() {
            add_nat(&mut state, d, &az, NatState::Available);
        }
        for az in &d.azs {
            let route = d.nat_for(az).map(|n| DefaultRoute::Nat(format!("nat-{n}")));
            let t = state
                .route_tables
                .iter_mut()
                .find(|t| t.az.as_deref() == Some(az))
                .unwrap();
            t.default_route = route;
        }
        state
    }

    fn add_nat(state: &mut State, d: &Desired, az: &str, nat_state: NatState) {
        state.eips.push(Eip {
            allocation_id: format!("eipalloc-{az}"),
            az: Some(az.to_owned()),
            labels: d.labels(Role::NatAddress, Some(az)),
        });
        state.nats.push(Nat {
            id: format!("nat-{az}"),
            az: az.to_owned(),
            state: nat_state,
            allocation_ids: vec![format!("eipalloc-{az}")],
            interface_ids: vec![],
            request_id: "request-1".into(),
            failure: None,
            labels: d.labels(Role::NatGateway, Some(az)),
        });
    }

    fn count(actions: &[Action], kind: fn(&Action) -> bool) -> usize {
        actions.iter().filter(|a| kind(a)).count()
    }

    #[test]
    fn a_new_vpc_gets_two_subnets_and_a_table_per_zone_one_public_table_and_one_address_per_nat() {
        let d = desired(NatGateways::PerAz, 3);
        let state = State::empty("vpc-1", "10.0.0.0/16", d.labels(Role::Vpc, None));
        let a = setup(
            &state,
            &Desired {
                configure_vpc: true,
                ..d.clone()
            },
        );
        assert_eq!(count(&a, |a| matches!(a, Action::EnableDns { .. })), 2);
        assert_eq!(count(&a, |a| matches!(a, Action::CreateSubnet { .. })), 6);
        assert_eq!(
            count(&a, |a| matches!(a, Action::CreateRouteTable { .. })),
            4
        );
        assert_eq!(
            count(&a, |a| matches!(a, Action::AllocateAddress { .. })),
            3
        );
        assert!(a.contains(&Action::CreateSubnet {
            az: "us-east-1b".into(),
            public: false,
            cidr: "10.0.32.0/19".parse().unwrap(),
        }));
    }

    #[test]
    fn a_finished_network_plans_nothing_in_any_round() {
        for nat in [NatGateways::None, NatGateways::Single, NatGateways::PerAz] {
            let d = desired(nat, 3);
            let state = built(&d);
            assert_eq!(setup(&state, &d), vec![], "{nat:?}");
            assert_eq!(connect(&state, &d), vec![], "{nat:?}");
            assert_eq!(route(&state, &d), vec![], "{nat:?}");
            assert_eq!(retire(&state, &d), vec![], "{nat:?}");
            assert_eq!(release(&state), vec![], "{nat:?}");
            assert_eq!(retag(&state, &d), vec![], "{nat:?}");
        }
    }

    #[test]
    fn single_to_per_az_adds_addresses_and_nats_then_reroutes_and_deletes_nothing() {
        let state = built(&desired(NatGateways::Single, 3));
        let d = desired(NatGateways::PerAz, 3);
        let a = setup(&state, &d);
        assert_eq!(
            a,
            ["us-east-1b", "us-east-1c"]
                .map(|az| Action::AllocateAddress { az: az.into() })
                .to_vec()
        );
        let mut state = state;
        for az in ["us-east-1b", "us-east-1c"] {
            add_nat(&mut state, &d, az, NatState::Pending);
        }
        assert_eq!(
            pending_nats(&state, &d),
            ["nat-us-east-1b", "nat-us-east-1c"]
        );
        state
            .nats
            .iter_mut()
            .for_each(|n| n.state = NatState::Available);
        let c = route(&state, &d);
        assert_eq!(c.len(), 2, "the first zone keeps its route");
        assert!(c.contains(&Action::SetDefaultRoute {
            table: "rtb-us-east-1b".into(),
            from: Some(DefaultRoute::Nat("nat-us-east-1a".into())),
            to: Some(DefaultRoute::Nat("nat-us-east-1b".into())),
        }));
        assert_eq!(retire(&state, &d), vec![]);
    }

    #[test]
    fn per_az_to_single_reroutes_to_the_first_zone_before_retiring_the_others() {
        let d = desired(NatGateways::Single, 3);
        let state = built(&desired(NatGateways::PerAz, 3));
        assert_eq!(setup(&state, &d), vec![]);
        assert_eq!(connect(&state, &d), vec![]);
        let c = route(&state, &d);
        assert_eq!(c.len(), 2);
        assert!(c.iter().all(|a| matches!(a, Action::SetDefaultRoute {
            to: Some(DefaultRoute::Nat(nat)), ..
        } if nat == "nat-us-east-1a")));
        assert_eq!(
            retire(&state, &d),
            ["us-east-1b", "us-east-1c"].map(|az| Action::DeleteNat {
                nat: format!("nat-{az}")
            })
        );
    }

    #[test]
    fn to_none_deletes_every_route_then_every_nat_and_then_releases_the_addresses() {
        let d = desired(NatGateways::None, 2);
        let mut state = built(&desired(NatGateways::PerAz, 2));
        let c = route(&state, &d);
        assert!(c
            .iter()
            .all(|a| matches!(a, Action::SetDefaultRoute { to: None, .. })));
        assert_eq!(c.len(), 2);
        assert_eq!(retire(&state, &d).len(), 2);
        assert_eq!(
            release(&state),
            vec![],
            "addresses go only once their NATs are gone"
        );
        state
            .nats
            .iter_mut()
            .for_each(|n| n.state = NatState::Deleted);
        assert_eq!(release(&state).len(), 2);
    }

    #[test]
    fn none_to_single_allocates_creates_and_routes_every_zone_through_the_first() {
        let d = desired(NatGateways::Single, 2);
        let mut state = built(&desired(NatGateways::None, 2));
        assert_eq!(
            setup(&state, &d),
            vec![Action::AllocateAddress {
                az: "us-east-1a".into()
            }]
        );
        state.eips.push(Eip {
            allocation_id: "eipalloc-new".into(),
            az: Some("us-east-1a".into()),
            labels: d.labels(Role::NatAddress, Some("us-east-1a")),
        });
        assert_eq!(
            connect(&state, &d),
            vec![Action::CreateNat {
                az: "us-east-1a".into(),
                subnet: "subnet-pub-us-east-1a".into(),
                allocation: "eipalloc-new".into(),
            }]
        );
        assert_eq!(
            route(&state, &d),
            vec![],
            "no route to a NAT that does not exist yet"
        );
    }

    #[test]
    fn a_zone_more_gets_its_subnets_table_associations_and_its_own_nat() {
        let mut state = built(&desired(NatGateways::PerAz, 2));
        let d = desired(NatGateways::PerAz, 3);
        let a = setup(&state, &d);
        assert_eq!(
            count(
                &a,
                |a| matches!(a, Action::CreateSubnet { az, .. } if az == "us-east-1c")
            ),
            2
        );
        assert_eq!(
            a.iter()
                .filter(|a| matches!(a, Action::CreateRouteTable { .. }))
                .count(),
            1
        );
        assert!(a.contains(&Action::AllocateAddress {
            az: "us-east-1c".into()
        }));
        state.subnets.push(Subnet {
            id: "subnet-new".into(),
            az: "us-east-1c".into(),
            az_id: String::new(),
            public: true,
            public_ips: false,
            labels: Labels::default(),
        });
        let b = connect(&state, &d);
        assert!(b.contains(&Action::EnablePublicIps {
            subnet: "subnet-new".into()
        }));
        assert!(b.contains(&Action::Associate {
            table: "rtb-public".into(),
            subnet: "subnet-new".into()
        }));
    }

    #[test]
    fn a_failed_nat_of_this_request_is_found_and_one_from_an_earlier_request_is_not() {
        let d = desired(NatGateways::Single, 2);
        let mut state = built(&desired(NatGateways::None, 2));
        add_nat(&mut state, &d, "us-east-1a", NatState::Failed);
        assert_eq!(
            failed_nat(&state, &d, "request-1").map(|n| n.id.as_str()),
            Some("nat-us-east-1a")
        );
        assert!(failed_nat(&state, &d, "request-2").is_none());
        assert!(
            connect(&state, &d).contains(&Action::CreateNat {
                az: "us-east-1a".into(),
                subnet: "subnet-pub-us-east-1a".into(),
                allocation: "eipalloc-us-east-1a".into(),
            }),
            "a retry makes a new NAT with the address the failed one let go"
        );
    }

    #[test]
    fn a_name_or_tag_change_retags_everything_and_drops_removed_keys_even_after_a_wait() {
        let state = built(&desired(NatGateways::Single, 2));
        let (mut props, azs) = props(NatGateways::Single, 2);
        props.name = "dev2".into();
        props.tags = vec![Tag {
            key: "owner".into(),
            value: "b".into(),
        }];
        let d = Desired::new(&props, &azs, false).unwrap();
        let tags = retag(&state, &d);
        // VPC, gateway, 4 subnets, 3 tables, 1 NAT, 1 address.
        assert_eq!(tags.len(), 11);
        assert!(tags.iter().all(|a| matches!(a, Action::Retag { set: Some(_), remove, .. } if remove == &["team".to_owned()])));
        assert!(tags.contains(&Action::Retag {
            resource: "subnet-priv-us-east-1b".into(),
            set: Some(Labels::new(
                "dev2-private-us-east-1b",
                &[("owner".into(), "b".into())]
            )),
            remove: vec!["team".into()],
        }));
    }

    #[test]
    fn delete_removes_nats_first_then_addresses_and_links_then_tables_subnets_and_the_gateway() {
        let state = built(&desired(NatGateways::PerAz, 2));
        let [first, second, third] = teardown(&state);
        assert!(first.iter().all(|a| matches!(a, Action::DeleteNat { .. })) && first.len() == 2);
        assert_eq!(
            count(&second, |a| matches!(a, Action::ReleaseAddress { .. })),
            2
        );
        assert_eq!(
            count(&second, |a| matches!(a, Action::Disassociate { .. })),
            4
        );
        assert!(second.contains(&Action::DetachGateway {
            igw: "igw-1".into()
        }));
        assert_eq!(
            count(&third, |a| matches!(a, Action::DeleteRouteTable { .. })),
            3
        );
        assert_eq!(
            count(&third, |a| matches!(a, Action::DeleteSubnet { .. })),
            4
        );
        assert_eq!(
            third.last(),
            Some(&Action::DeleteGateway {
                igw: "igw-1".into()
            })
        );
    }
}
