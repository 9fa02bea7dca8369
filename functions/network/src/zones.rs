//! Choosing the availability zones (pure).
//!
//! Zones are chosen by **zone id** where it matters: zone names (`us-west-1a`) map to different
//! physical zones in each account, zone ids (`usw1-az1`) do not, and AWS documents Fargate support
//! by zone id.

/// Regions where Fargate runs only in some zones, with the zone ids it runs in. Source: Amazon
/// ECS Developer Guide, "Supported Regions for Amazon ECS on AWS Fargate" (Linux containers:
/// "us-west-1 (usw1-az1 & usw1-az3 only)", "ap-northeast-1 (apne1-az1, apne1-az2, & apne1-az4
/// only)", "cn-north-1 (cnn1-az1 & cnn1-az2 only)"). Every other region: all its zones.
pub const FARGATE_ONLY_IN: &[(&str, &[&str])] = &[
    ("us-west-1", &["usw1-az1", "usw1-az3"]),
    ("ap-northeast-1", &["apne1-az1", "apne1-az2", "apne1-az4"]),
    ("cn-north-1", &["cnn1-az1", "cnn1-az2"]),
];

/// A standard availability zone that needs no opt-in and is available.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Zone {
    pub name: String,
    pub id: String,
    pub region: String,
}

impl Zone {
    pub fn runs_fargate(&self) -> bool {
        match FARGATE_ONLY_IN
            .iter()
            .find(|(region, _)| *region == self.region)
        {
            Some((_, ids)) => ids.contains(&self.id.as_str()),
            None => true,
        }
    }
}

/// The zones to use, in name order: the `explicit` ids when given (exactly `count` of them,
/// each offered and running Fargate), else the first `count` zones that run Fargate. Errors
/// name the property to fix.
pub fn choose_zones(
    offered: &[Zone],
    count: usize,
    explicit: &[String],
) -> Result<Vec<Zone>, (&'static str, String)> {
    let mut fargate: Vec<Zone> = offered
        .iter()
        .filter(|z| z.runs_fargate())
        .cloned()
        .collect();
    fargate.sort_by(|a, b| a.name.cmp(&b.name));
    let listed = |zones: &[Zone]| {
        zones
            .iter()
            .map(|z| format!("{} ({})", z.id, z.name))
            .collect::<Vec<_>>()
            .join(", ")
    };
    if !explicit.is_empty() {
        if explicit.len() != count {
            return Err((
                "AvailabilityZoneIds",
                format!(
                    "lists {} zones but AvailabilityZoneCount is {count}; list exactly {count} zone ids or leave it empty",
                    explicit.len()
                ),
            ));
        }
        let mut chosen = Vec::new();
        for id in explicit {
            match offered.iter().find(|z| &z.id == id) {
                None => {
                    return Err((
                        "AvailabilityZoneIds",
                        format!(
                            "{id} is not an available standard zone of this region; use one of: {}",
                            listed(&fargate)
                        ),
                    ))
                }
                Some(zone) if !zone.runs_fargate() => {
                    return Err((
                        "AvailabilityZoneIds",
                        format!(
                            "Fargate does not run in {id} ({}); use one of: {}",
                            zone.name,
                            listed(&fargate)
                        ),
                    ))
                }
                Some(zone) if chosen.contains(zone) => {
                    return Err(("AvailabilityZoneIds", format!("{id} is listed twice")))
                }
                Some(zone) => chosen.push(zone.clone()),
            }
        }
        chosen.sort_by(|a, b| a.name.cmp(&b.name));
        return Ok(chosen);
    }
    if fargate.len() < count {
        return Err((
            "AvailabilityZoneCount",
            format!(
                "this region has only {} zone(s) that run Fargate and need no opt-in ({}); use {} or fewer, or another region",
                fargate.len(),
                listed(&fargate),
                fargate.len()
            ),
        ));
    }
    fargate.truncate(count);
    Ok(fargate)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn zone(name: &str, id: &str) -> Zone {
        let region = name[..name.len() - 1].to_owned();
        Zone {
            name: name.into(),
            id: id.into(),
            region,
        }
    }

    /// us-west-1 as an account may see it: the names hide which physical zone is which.
    fn us_west_1() -> Vec<Zone> {
        vec![
            zone("us-west-1a", "usw1-az2"),
            zone("us-west-1b", "usw1-az1"),
            zone("us-west-1c", "usw1-az3"),
        ]
    }

    #[test]
    fn a_zone_without_fargate_is_skipped_even_when_its_name_comes_first() {
        let chosen = choose_zones(&us_west_1(), 2, &[]).unwrap();
        let ids: Vec<&str> = chosen.iter().map(|z| z.id.as_str()).collect();
        assert_eq!(ids, ["usw1-az1", "usw1-az3"]);
    }

    #[test]
    fn asking_for_more_zones_than_run_fargate_names_the_usable_ones() {
        let (property, message) = choose_zones(&us_west_1(), 3, &[]).unwrap_err();
        assert_eq!(property, "AvailabilityZoneCount");
        assert!(
            message.contains("only 2 zone(s)") && message.contains("usw1-az1 (us-west-1b)"),
            "{message}"
        );
    }

    #[test]
    fn explicit_zone_ids_are_used_and_checked() {
        let ids = vec!["usw1-az3".to_owned(), "usw1-az1".to_owned()];
        let chosen = choose_zones(&us_west_1(), 2, &ids).unwrap();
        assert_eq!(
            chosen.iter().map(|z| z.name.as_str()).collect::<Vec<_>>(),
            ["us-west-1b", "us-west-1c"]
        );
        let (property, message) =
            choose_zones(&us_west_1(), 2, &["usw1-az2".into(), "usw1-az1".into()]).unwrap_err();
        assert_eq!(property, "AvailabilityZoneIds");
        assert!(
            message.contains("Fargate does not run in usw1-az2"),
            "{message}"
        );
        assert!(choose_zones(&us_west_1(), 2, &["usw1-az9".into(), "usw1-az1".into()]).is_err());
        assert!(choose_zones(&us_west_1(), 2, &["usw1-az1".into(), "usw1-az1".into()]).is_err());
        assert!(choose_zones(&us_west_1(), 3, &["usw1-az1".into()]).is_err());
    }

    #[test]
    fn regions_without_restrictions_use_every_zone() {
        let zones = vec![
            zone("us-east-1a", "use1-az6"),
            zone("us-east-1b", "use1-az1"),
            zone("us-east-1c", "use1-az2"),
        ];
        assert_eq!(choose_zones(&zones, 3, &[]).unwrap().len(), 3);
    }
}
