//! Spot fallback, the part two functions share (one home): the state `spot-fallback` keeps on a
//! service (the tag [`crate::tags::SPOT_FALLBACK`]), the template's strategy it returns to (the tag
//! [`crate::tags::TEMPLATE_STRATEGY`], written by `Custom::FargateService`), and the strategy
//! arithmetic. `Custom::FargateService` applies the state to a new template strategy on Update, so
//! a stack update during a fallback keeps it until recovery.

use std::fmt;

/// The on-demand provider the fallback shifts tasks to, and the Spot provider it shifts them from.
pub const ON_DEMAND: &str = "FARGATE";
pub const SPOT: &str = "FARGATE_SPOT";

/// The longest back-off: the quiet period times 2^6 (with 15 minutes, 16 hours).
pub const MAX_BACKOFF_STEPS: u32 = 6;

/// One capacity-provider strategy item.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Item {
    pub provider: String,
    pub weight: i64,
    pub base: i64,
}

impl Item {
    pub fn new(provider: &str, weight: i64, base: i64) -> Self {
        Item {
            provider: provider.to_owned(),
            weight,
            base,
        }
    }
}

/// A strategy as a tag value: `FARGATE:1:0 FARGATE_SPOT:3:0` (provider:weight:base; spaces, since
/// tag values generally allow only letters, digits, spaces and `+ - = . _ : / @`).
pub fn strategy_tag(items: &[Item]) -> String {
    items
        .iter()
        .map(|i| format!("{}:{}:{}", i.provider, i.weight, i.base))
        .collect::<Vec<_>>()
        .join(" ")
}

/// Reads [`strategy_tag`]'s form (or `ecs::strategy_text`'s, comma-separated).
pub fn parse_strategy(text: &str) -> Result<Vec<Item>, String> {
    text.split([' ', ','])
        .filter(|part| !part.is_empty())
        .map(|part| {
            let mut fields = part.split(':');
            let (Some(provider), Some(weight), Some(base), None) =
                (fields.next(), fields.next(), fields.next(), fields.next())
            else {
                return Err(format!("{part:?} is not provider:weight:base"));
            };
            let number = |v: &str| {
                v.parse::<i64>()
                    .map_err(|_| format!("{part:?}: {v:?} is not a whole number"))
            };
            Ok(Item::new(provider, number(weight)?, number(base)?))
        })
        .collect()
}

/// Tasks per provider for `count` tasks, as ECS places them: the provider with a base gets up to
/// `base` first, the rest go by weight, each further task to the provider furthest below its
/// weighted share (ties: strategy order). The local engine's scheduler places the same way.
pub fn split(items: &[Item], count: i64) -> Vec<(String, i64)> {
    let mut counts: Vec<(String, i64)> = items.iter().map(|i| (i.provider.clone(), 0)).collect();
    if items.is_empty() {
        return counts;
    }
    if let Some((index, item)) = items.iter().enumerate().find(|(_, i)| i.base > 0) {
        counts[index].1 = item.base.min(count);
    }
    let rest = count - counts.iter().map(|(_, n)| n).sum::<i64>();
    // With no weight above 0, the first item takes the rest (as the engine's scheduler does).
    let mut weights: Vec<i64> = items.iter().map(|i| i.weight.max(0)).collect();
    if weights.iter().all(|&w| w == 0) {
        if let Some(first) = weights.first_mut() {
            *first = 1;
        }
    }
    let total: i64 = weights.iter().sum();
    let mut by_weight = vec![0i64; items.len()];
    for placed in 1..=rest {
        // deficit = weight * placed / total - assigned, compared in integers (times total)
        let deficit = |j: usize, by: &[i64]| weights[j] * placed - by[j] * total;
        let mut chosen = 0;
        for i in 1..items.len() {
            if weights[i] > 0
                && (weights[chosen] == 0 || deficit(i, &by_weight) > deficit(chosen, &by_weight))
            {
                chosen = i;
            }
        }
        by_weight[chosen] += 1;
    }
    for (i, n) in by_weight.into_iter().enumerate() {
        counts[i].1 += n;
    }
    counts
}

/// Tasks `split` gives `provider`.
pub fn share(items: &[Item], count: i64, provider: &str) -> i64 {
    split(items, count)
        .into_iter()
        .filter(|(p, _)| p == provider)
        .map(|(_, n)| n)
        .sum()
}

/// `template` with FARGATE's base raised to `base` (never lowered). Only one item may carry a base
/// (ECS), so any other item's base is dropped; FARGATE is added with weight 0 if the template has
/// no FARGATE item (the cluster must offer FARGATE, which our cluster template does).
pub fn with_on_demand_base(template: &[Item], base: i64) -> Vec<Item> {
    if base <= on_demand_base(template) {
        return template.to_vec();
    }
    let mut items: Vec<Item> = template
        .iter()
        .map(|i| Item {
            base: if i.provider == ON_DEMAND { base } else { 0 },
            ..i.clone()
        })
        .collect();
    if !items.iter().any(|i| i.provider == ON_DEMAND) {
        items.push(Item::new(ON_DEMAND, 0, base));
    }
    items
}

/// The template's own FARGATE base (0 without one).
pub fn on_demand_base(template: &[Item]) -> i64 {
    template
        .iter()
        .find(|i| i.provider == ON_DEMAND)
        .map_or(0, |i| i.base)
}

/// The smallest FARGATE base that leaves Spot at most `spot_can_hold` of `desired` tasks: just
/// enough on-demand to cover what Spot cannot place.
pub fn base_to_cover(template: &[Item], desired: i64, spot_can_hold: i64) -> i64 {
    let start = on_demand_base(template);
    (start..desired.max(start))
        .find(|&b| share(&with_on_demand_base(template, b), desired, SPOT) <= spot_can_hold)
        .unwrap_or(desired.max(start))
}

/// What the fallback has done to a service, kept in its [`crate::tags::SPOT_FALLBACK`] tag.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum State {
    /// The template's strategy runs (no tag).
    Normal,
    /// FARGATE's base is raised to `base`; at `retry_at` (epoch seconds) the template's strategy
    /// is tried again. `attempts`: failed retries so far (the back-off's exponent).
    Fallback {
        base: i64,
        attempts: u32,
        retry_at: i64,
    },
    /// The template's strategy is being tried again since `since`; it is kept if Spot holds for a
    /// quiet period.
    Trial { attempts: u32, since: i64 },
}

impl fmt::Display for State {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            State::Normal => write!(f, "normal"),
            State::Fallback {
                base,
                attempts,
                retry_at,
            } => write!(
                f,
                "fallback base={base} attempts={attempts} retry-at={retry_at}"
            ),
            State::Trial { attempts, since } => {
                write!(f, "trial attempts={attempts} since={since}")
            }
        }
    }
}

impl State {
    /// Reads the tag's value (`None`: no tag, so Normal).
    pub fn parse(tag: Option<&str>) -> Result<State, String> {
        let Some(text) = tag else {
            return Ok(State::Normal);
        };
        let mut words = text.split_whitespace();
        let kind = words.next().unwrap_or("");
        let mut field = |name: &str| -> Result<i64, String> {
            let word = words.next().unwrap_or("");
            word.strip_prefix(name)
                .and_then(|w| w.strip_prefix('='))
                .and_then(|v| v.parse().ok())
                .ok_or_else(|| {
                    format!("spot-fallback state {text:?}: expected {name}=<number>, got {word:?}")
                })
        };
        match kind {
            "normal" => Ok(State::Normal),
            "fallback" => Ok(State::Fallback {
                base: field("base")?,
                attempts: u32::try_from(field("attempts")?).map_err(|e| e.to_string())?,
                retry_at: field("retry-at")?,
            }),
            "trial" => Ok(State::Trial {
                attempts: u32::try_from(field("attempts")?).map_err(|e| e.to_string())?,
                since: field("since")?,
            }),
            other => Err(format!(
                "spot-fallback state {text:?}: unknown kind {other:?}"
            )),
        }
    }

    /// The strategy the service runs in this state, for a template strategy.
    pub fn strategy(&self, template: &[Item]) -> Vec<Item> {
        match self {
            State::Fallback { base, .. } => with_on_demand_base(template, *base),
            State::Normal | State::Trial { .. } => template.to_vec(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn mix(fargate: (i64, i64), spot: (i64, i64)) -> Vec<Item> {
        vec![
            Item::new(ON_DEMAND, fargate.0, fargate.1),
            Item::new(SPOT, spot.0, spot.1),
        ]
    }

    #[test]
    fn a_strategy_round_trips_through_its_tag_and_reads_the_comma_form_too() {
        let items = mix((1, 2), (3, 0));
        assert_eq!(strategy_tag(&items), "FARGATE:1:2 FARGATE_SPOT:3:0");
        assert_eq!(parse_strategy(&strategy_tag(&items)).unwrap(), items);
        assert_eq!(
            parse_strategy("FARGATE:1:2,FARGATE_SPOT:3:0").unwrap(),
            items
        );
        assert!(parse_strategy("FARGATE:1")
            .unwrap_err()
            .contains("provider:weight:base"));
        assert!(parse_strategy("FARGATE:x:0")
            .unwrap_err()
            .contains("whole number"));
    }

    #[test]
    fn split_places_the_base_first_then_by_weight() {
        let counts = |items: &[Item], n| {
            split(items, n)
                .into_iter()
                .map(|(_, c)| c)
                .collect::<Vec<_>>()
        };
        assert_eq!(counts(&mix((1, 0), (3, 0)), 4), vec![1, 3]);
        assert_eq!(counts(&mix((1, 0), (3, 0)), 6), vec![2, 4]);
        assert_eq!(counts(&mix((1, 2), (3, 0)), 6), vec![3, 3]);
        assert_eq!(counts(&mix((0, 4), (1, 0)), 6), vec![4, 2]);
        assert_eq!(counts(&mix((0, 0), (1, 0)), 3), vec![0, 3]);
    }

    #[test]
    fn the_base_to_cover_is_just_enough_for_what_spot_cannot_hold() {
        let template = mix((1, 0), (3, 0));
        // 4 tasks: 1 FARGATE, 3 Spot. Spot holds 1: FARGATE needs a base of 2 (2 + (2 split 1:3)).
        let base = base_to_cover(&template, 4, 1);
        assert_eq!(base, 2);
        assert_eq!(share(&with_on_demand_base(&template, base), 4, SPOT), 1);
        // Spot holds nothing: everything on FARGATE.
        assert_eq!(base_to_cover(&template, 4, 0), 4);
        // Spot holds its whole share: the template's own base.
        assert_eq!(base_to_cover(&template, 4, 3), 0);
    }

    #[test]
    fn raising_the_base_keeps_one_based_item_and_adds_fargate_when_missing() {
        let spot_only = vec![Item::new(SPOT, 1, 2)];
        assert_eq!(
            with_on_demand_base(&spot_only, 3),
            vec![Item::new(SPOT, 1, 0), Item::new(ON_DEMAND, 0, 3)]
        );
        let template = mix((1, 2), (3, 0));
        assert_eq!(with_on_demand_base(&template, 1), template, "never lowered");
    }

    #[test]
    fn the_state_round_trips_through_its_tag_and_refuses_garbage() {
        for state in [
            State::Normal,
            State::Fallback {
                base: 3,
                attempts: 1,
                retry_at: 1_764_700_000,
            },
            State::Trial {
                attempts: 2,
                since: 1_764_700_000,
            },
        ] {
            assert_eq!(State::parse(Some(&state.to_string())).unwrap(), state);
        }
        assert_eq!(State::parse(None).unwrap(), State::Normal);
        assert!(State::parse(Some("fallback base=x"))
            .unwrap_err()
            .contains("base"));
        assert!(State::parse(Some("sideways"))
            .unwrap_err()
            .contains("unknown kind"));
    }

    #[test]
    fn a_fallback_state_applies_to_a_new_template_and_a_trial_runs_the_template() {
        let fallback = State::Fallback {
            base: 3,
            attempts: 0,
            retry_at: 0,
        };
        assert_eq!(fallback.strategy(&mix((2, 0), (1, 0))), mix((2, 3), (1, 0)));
        let trial = State::Trial {
            attempts: 0,
            since: 0,
        };
        assert_eq!(trial.strategy(&mix((2, 0), (1, 0))), mix((2, 0), (1, 0)));
    }
}
