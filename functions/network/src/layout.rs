//! Carving the VPC block into subnets (pure, with ipnet).
//!
//! The first half of the block holds the private subnets, the third quarter the public ones, and
//! the last quarter stays free for later (database or endpoint subnets). Each AZ gets an equal
//! slot, so private subnets are twice the size of public ones:
//! 10.0.0.0/16 over 3 AZs → private /19s at 10.0.0.0, 10.0.32.0, 10.0.64.0 and public /20s at
//! 10.0.128.0, 10.0.144.0, 10.0.160.0.

use ipnet::Ipv4Net;

/// AWS's smallest subnet.
const SMALLEST_SUBNET_PREFIX: u8 = 28;

/// Subnet blocks for `az_count` AZs: (public, private), one per AZ, in AZ order.
pub fn carve(vpc: Ipv4Net, az_count: usize) -> Result<(Vec<Ipv4Net>, Vec<Ipv4Net>), String> {
    if az_count == 0 {
        return Err("at least one availability zone is needed".into());
    }
    // Bits to give every AZ its own slot: 1 AZ → 0, 2 → 1, 3-4 → 2, 5-8 → 3.
    let az_bits = (az_count as u32).next_power_of_two().trailing_zeros() as u8;
    let base = vpc.prefix_len();
    let private_prefix = base + 1 + az_bits;
    let public_prefix = base + 2 + az_bits;
    if public_prefix > SMALLEST_SUBNET_PREFIX {
        let needed = SMALLEST_SUBNET_PREFIX - 2 - az_bits;
        return Err(format!(
            "{vpc} is too small for {az_count} availability zones: public subnets would be /{public_prefix} and AWS's smallest subnet is /28; use a /{needed} or larger block, or fewer zones"
        ));
    }
    let halves: Vec<Ipv4Net> = vpc.subnets(base + 1).map_err(|e| e.to_string())?.collect();
    let quarters: Vec<Ipv4Net> = vpc.subnets(base + 2).map_err(|e| e.to_string())?.collect();
    let private = halves[0]
        .subnets(private_prefix)
        .map_err(|e| e.to_string())?
        .take(az_count)
        .collect();
    let public = quarters[2]
        .subnets(public_prefix)
        .map_err(|e| e.to_string())?
        .take(az_count)
        .collect();
    Ok((public, private))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn net(text: &str) -> Ipv4Net {
        text.parse().unwrap()
    }

    fn show(nets: &[Ipv4Net]) -> Vec<String> {
        nets.iter().map(ToString::to_string).collect()
    }

    #[test]
    fn three_azs_in_a_slash_16_get_private_slash_19s_and_public_slash_20s() {
        let (public, private) = carve(net("10.0.0.0/16"), 3).unwrap();
        assert_eq!(
            show(&private),
            ["10.0.0.0/19", "10.0.32.0/19", "10.0.64.0/19"]
        );
        assert_eq!(
            show(&public),
            ["10.0.128.0/20", "10.0.144.0/20", "10.0.160.0/20"]
        );
    }

    #[test]
    fn two_azs_split_halves_and_quarters() {
        let (public, private) = carve(net("172.16.0.0/20"), 2).unwrap();
        assert_eq!(show(&private), ["172.16.0.0/22", "172.16.4.0/22"]);
        assert_eq!(show(&public), ["172.16.8.0/23", "172.16.10.0/23"]);
    }

    #[test]
    fn subnets_never_overlap_and_stay_inside_the_vpc() {
        for prefix in 16..=24u8 {
            for azs in 1..=6usize {
                let vpc = Ipv4Net::new("10.20.0.0".parse().unwrap(), prefix)
                    .unwrap()
                    .trunc();
                let Ok((public, private)) = carve(vpc, azs) else {
                    continue;
                };
                let all: Vec<Ipv4Net> = public.iter().chain(private.iter()).copied().collect();
                assert_eq!(all.len(), azs * 2);
                for (i, a) in all.iter().enumerate() {
                    assert!(vpc.contains(a), "{a} outside {vpc}");
                    assert!(a.prefix_len() <= 28);
                    for b in &all[i + 1..] {
                        assert!(!a.contains(b) && !b.contains(a), "{a} overlaps {b}");
                    }
                }
                assert!(private[0].hosts().count() > public[0].hosts().count());
            }
        }
    }

    #[test]
    fn a_block_too_small_says_what_size_is_needed() {
        let error = carve(net("10.0.0.0/24"), 6).unwrap_err();
        assert!(error.contains("use a /23 or larger"), "{error}");
        assert!(carve(net("10.0.0.0/24"), 4).is_ok());
    }
}
