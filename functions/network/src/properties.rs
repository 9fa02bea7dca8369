//! Properties of `Custom::Network` (see README.md for the contract table).

use crate::layout;
use custom_resource::{de, Properties, PropertyError};
use ipnet::Ipv4Net;
use serde::{Deserialize, Deserializer};
use std::net::Ipv4Addr;

/// How private subnets reach the internet.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
pub enum NatGateways {
    /// No NAT: private subnets have no default route (isolated).
    None,
    /// One NAT in the first AZ shared by all private subnets (cheaper; one AZ's failure cuts egress).
    #[default]
    Single,
    /// One NAT per AZ (production: egress survives the loss of an AZ).
    PerAz,
}

pub use custom_resource::properties::Tag;

#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct NetworkProperties {
    /// Required. 1-64 characters, used in Name tags. In place (re-tag).
    pub name: String,
    /// Default 10.0.0.0/16. IPv4 /16 to /24, a network address. Replacement.
    #[serde(default = "default_cidr", deserialize_with = "cidr")]
    pub cidr_block: Ipv4Net,
    /// Default 2. 1 to 6, at most the region's AZs. Replacement.
    #[serde(default = "two", deserialize_with = "de::number")]
    pub availability_zone_count: u8,
    /// Default: chosen. Zone ids (`use1-az1`) to build in, exactly AvailabilityZoneCount of them,
    /// each offering Fargate; list or comma-joined. Replacement.
    #[serde(default, deserialize_with = "de::string_list")]
    pub availability_zone_ids: Vec<String>,
    /// Default Single. None, Single or PerAz. In place.
    #[serde(default)]
    pub nat_gateways: NatGateways,
    /// Default []. Added to everything created. In place.
    #[serde(default)]
    pub tags: Vec<Tag>,
}

fn default_cidr() -> Ipv4Net {
    Ipv4Net::new(Ipv4Addr::new(10, 0, 0, 0), 16).expect("a valid constant")
}

fn two() -> u8 {
    2
}

fn cidr<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Ipv4Net, D::Error> {
    let text = String::deserialize(deserializer)?;
    text.trim().parse::<Ipv4Net>().map_err(|_| {
        serde::de::Error::custom(format!(
            "{text:?} is not an IPv4 CIDR block; write it like 10.0.0.0/16"
        ))
    })
}

impl NetworkProperties {
    /// True when a change from `self` to `new` needs a new VPC.
    pub fn needs_replacement(&self, new: &NetworkProperties) -> bool {
        self.cidr_block != new.cidr_block
            || self.availability_zone_count != new.availability_zone_count
            || self.availability_zone_ids != new.availability_zone_ids
    }
}

impl Properties for NetworkProperties {
    fn validate(&self) -> Result<(), PropertyError> {
        let name_len = self.name.chars().count();
        if !(1..=64).contains(&name_len) {
            return Err(PropertyError::new(
                "Name",
                format!("must be 1 to 64 characters (got {name_len})"),
            ));
        }
        validate_cidr(self.cidr_block)?;
        if !(1..=6).contains(&self.availability_zone_count) {
            return Err(PropertyError::new(
                "AvailabilityZoneCount",
                format!("must be 1 to 6 (got {})", self.availability_zone_count),
            ));
        }
        if let Err(message) = layout::carve(self.cidr_block, self.availability_zone_count as usize)
        {
            return Err(PropertyError::new("CidrBlock", message));
        }
        validate_tags(&self.tags)
    }
}

fn validate_cidr(cidr: Ipv4Net) -> Result<(), PropertyError> {
    if !(16..=24).contains(&cidr.prefix_len()) {
        return Err(PropertyError::new(
            "CidrBlock",
            format!(
                "{cidr} has a /{} prefix; use /16 (65,536 addresses) to /24 (256), e.g. 10.0.0.0/16",
                cidr.prefix_len()
            ),
        ));
    }
    if cidr.addr() != cidr.network() {
        return Err(PropertyError::new(
            "CidrBlock",
            format!(
                "{cidr} is not a network address (host bits are set); use {}",
                cidr.trunc()
            ),
        ));
    }
    let first = cidr.network();
    if first.is_loopback()
        || first.is_link_local()
        || first.is_multicast()
        || first.is_broadcast()
        || first.octets()[0] == 0
        || first.octets()[0] >= 240
    {
        return Err(PropertyError::new(
            "CidrBlock",
            format!("{cidr} is a reserved range AWS does not allow for a VPC; use a private range such as 10.0.0.0/16"),
        ));
    }
    Ok(())
}

fn validate_tags(tags: &[Tag]) -> Result<(), PropertyError> {
    custom_resource::properties::check_tags(
        tags,
        44,
        "EC2 allows 50 and this resource writes 6 of its own",
        &[(
            "Name",
            "Name tags are derived from the Name property; set Name instead",
        )],
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use custom_resource::properties::parse;
    use serde_json::json;

    #[test]
    fn defaults_are_a_two_az_slash_16_with_a_single_nat() {
        let p: NetworkProperties = parse(&json!({"Name": "dev"})).unwrap();
        assert_eq!(p.cidr_block.to_string(), "10.0.0.0/16");
        assert_eq!(p.availability_zone_count, 2);
        assert_eq!(p.nat_gateways, NatGateways::Single);
    }

    #[test]
    fn the_az_count_arrives_as_a_string() {
        let p: NetworkProperties =
            parse(&json!({"Name": "dev", "AvailabilityZoneCount": "3", "NatGateways": "PerAz"}))
                .unwrap();
        assert_eq!(p.availability_zone_count, 3);
        assert_eq!(p.nat_gateways, NatGateways::PerAz);
    }

    fn error(properties: serde_json::Value) -> PropertyError {
        parse::<NetworkProperties>(&properties).unwrap_err()
    }

    #[test]
    fn bad_input_names_the_property_and_the_fix() {
        let e = error(json!({"Name": "dev", "CidrBlock": "10.0.0.0/8"}));
        assert_eq!(e.property, "CidrBlock");
        assert!(e.message.contains("use /16"), "{}", e.message);

        let e = error(json!({"Name": "dev", "CidrBlock": "10.0.1.0/16"}));
        assert!(e.message.contains("use 10.0.0.0/16"), "{}", e.message);

        let e = error(json!({"Name": "dev", "CidrBlock": "10.0.0.300/16"}));
        assert_eq!(e.property, "CidrBlock");

        let e = error(json!({"Name": "dev", "CidrBlock": "127.0.0.0/16"}));
        assert!(e.message.contains("reserved range"));

        let e = error(json!({"Name": "dev", "AvailabilityZoneCount": "7"}));
        assert_eq!(e.property, "AvailabilityZoneCount");

        let e = error(json!({"Name": "dev", "NatGateways": "Double"}));
        assert_eq!(e.property, "NatGateways");
        assert!(
            e.message
                .contains("expected one of `None`, `Single`, `PerAz`"),
            "{}",
            e.message
        );

        let e =
            error(json!({"Name": "dev", "CidrBlock": "10.0.0.0/24", "AvailabilityZoneCount": 6}));
        assert_eq!(e.property, "CidrBlock");
        assert!(e.message.contains("too small"), "{}", e.message);

        let e = error(json!({"Name": ""}));
        assert_eq!(e.property, "Name");

        let e = error(json!({"Name": "dev", "Tags": [{"Key": "Name", "Value": "x"}]}));
        assert_eq!(e.property, "Tags[0].Key");

        let e = error(json!({"Name": "dev", "NatGateway": "Single"}));
        assert_eq!(e.property, "NatGateway");
        assert!(e.message.contains("did you mean NatGateways?"));
    }

    #[test]
    fn only_cidr_and_az_count_force_replacement() {
        let a: NetworkProperties = parse(&json!({"Name": "dev"})).unwrap();
        let b: NetworkProperties = parse(&json!({"Name": "prod", "NatGateways": "PerAz", "Tags": [{"Key": "team", "Value": "x"}]})).unwrap();
        assert!(!a.needs_replacement(&b));
        let c: NetworkProperties =
            parse(&json!({"Name": "dev", "CidrBlock": "10.1.0.0/16"})).unwrap();
        assert!(a.needs_replacement(&c));
        let d: NetworkProperties =
            parse(&json!({"Name": "dev", "AvailabilityZoneCount": 3})).unwrap();
        assert!(a.needs_replacement(&d));
    }
}
