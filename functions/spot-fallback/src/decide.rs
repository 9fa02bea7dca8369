//! What the fallback does, decided from (observed service, signal, time) alone (pure, unit
//! tested). The target strategy always follows from the state ([`State::strategy`]), and
//! UpdateService is sent only when the service runs something else: a duplicate or late event
//! finds nothing to change, and a retried invocation finishes what a failed one began.

use custom_resource::fallback::{self, Item, State, MAX_BACKOFF_STEPS, SPOT};

/// What woke the function.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Signal {
    /// Spot could not place a task or interrupted one.
    SpotShort,
    /// The schedule: time for a due retry or for ending a trial.
    Tick,
}

/// The service as DescribeServices/DescribeTasks show it.
#[derive(Clone, Debug, PartialEq)]
pub struct Observed {
    /// The PRIMARY deployment's desired count.
    pub desired: i64,
    /// Its tasks running or starting.
    pub placed: i64,
    /// Of which on FARGATE_SPOT.
    pub spot_placed: i64,
    /// One deployment, COMPLETED, running all its tasks.
    pub settled: bool,
    /// The template's strategy (tag `custom-resource:template-strategy`).
    pub template: Vec<Item>,
    /// The strategy the service runs.
    pub current: Vec<Item>,
    pub state: State,
}

#[derive(Clone, Debug, PartialEq)]
pub struct Plan {
    pub state: State,
    /// The strategy to send with UpdateService (None: the service already runs it).
    pub strategy: Option<Vec<Item>>,
    pub why: &'static str,
}

/// The wait before retry `attempts` (0: first retry): the quiet period doubled per failed retry,
/// at most 2^[`MAX_BACKOFF_STEPS`] times.
pub fn backoff(quiet: i64, attempts: u32) -> i64 {
    quiet.saturating_mul(1i64 << attempts.min(MAX_BACKOFF_STEPS))
}

pub fn decide(o: &Observed, signal: Signal, now: i64, quiet: i64) -> Plan {
    let (state, why) = next_state(o, signal, now, quiet);
    let target = state.strategy(&o.template);
    Plan {
        state,
        strategy: (target != o.current).then_some(target),
        why,
    }
}

fn next_state(o: &Observed, signal: Signal, now: i64, quiet: i64) -> (State, &'static str) {
    if !o.template.iter().any(|i| i.provider == SPOT) {
        return (
            State::Normal,
            "the template's strategy uses no FARGATE_SPOT",
        );
    }
    let short = o.placed < o.desired;
    let cover = fallback::base_to_cover(&o.template, o.desired, o.spot_placed);
    let spot_short = short && cover > fallback::on_demand_base(&o.template);
    match (o.state, signal) {
        (State::Normal, Signal::SpotShort) if spot_short => (
            State::Fallback {
                base: cover,
                attempts: 0,
                retry_at: now + quiet,
            },
            "FARGATE_SPOT is short of tasks: FARGATE's base covers the shortfall",
        ),
        (
            State::Fallback {
                base,
                attempts,
                retry_at,
            },
            Signal::SpotShort,
        ) if spot_short && cover > base => (
            State::Fallback {
                base: cover,
                attempts,
                retry_at,
            },
            "FARGATE_SPOT is shorter still: FARGATE's base covers more",
        ),
        (State::Trial { attempts, .. }, Signal::SpotShort) if spot_short => retreat(
            cover,
            attempts,
            now,
            quiet,
            "FARGATE_SPOT is still short on retry: back on FARGATE, retrying later",
        ),
        (
            State::Fallback {
                attempts, retry_at, ..
            },
            Signal::Tick,
        ) if now >= retry_at => (
            State::Trial {
                attempts,
                since: now,
            },
            "quiet period over: trying the template's strategy again",
        ),
        (State::Trial { attempts, since }, Signal::Tick) if now >= since + quiet => {
            if spot_short {
                retreat(cover, attempts, now, quiet, "FARGATE_SPOT still short a quiet period into the retry: back on FARGATE, retrying later")
            } else if o.settled {
                (
                    State::Normal,
                    "FARGATE_SPOT held for a quiet period: the template's strategy is back",
                )
            } else {
                (o.state, "the retry's deployment is still in progress")
            }
        }
        (state, _) => (state, "nothing to change"),
    }
}

/// Back to FARGATE after a failed retry, the next one later.
fn retreat(
    cover: i64,
    attempts: u32,
    now: i64,
    quiet: i64,
    why: &'static str,
) -> (State, &'static str) {
    let attempts = attempts + 1;
    (
        State::Fallback {
            base: cover,
            attempts,
            retry_at: now + backoff(quiet, attempts),
        },
        why,
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use custom_resource::fallback::ON_DEMAND;

    const QUIET: i64 = 900;

    fn template() -> Vec<Item> {
        vec![Item::new(ON_DEMAND, 1, 0), Item::new(SPOT, 3, 0)]
    }

    fn on_demand(base: i64) -> Vec<Item> {
        vec![Item::new(ON_DEMAND, 1, base), Item::new(SPOT, 3, 0)]
    }

    /// 4 tasks wanted (1 FARGATE, 3 Spot) on the template's strategy, all placed.
    fn full() -> Observed {
        Observed {
            desired: 4,
            placed: 4,
            spot_placed: 3,
            settled: true,
            template: template(),
            current: template(),
            state: State::Normal,
        }
    }

    /// Spot lost all three of its tasks and cannot place them again.
    fn spot_gone() -> Observed {
        Observed {
            placed: 1,
            spot_placed: 0,
            settled: false,
            ..full()
        }
    }

    #[test]
    fn a_spot_shortfall_raises_fargates_base_just_enough_with_one_update() {
        let plan = decide(&spot_gone(), Signal::SpotShort, 1000, QUIET);
        assert_eq!(
            plan.state,
            State::Fallback {
                base: 4,
                attempts: 0,
                retry_at: 1000 + QUIET
            }
        );
        assert_eq!(plan.strategy, Some(on_demand(4)));
        // Spot still holds one task: a base of 2 leaves it exactly one.
        let partial = Observed {
            placed: 2,
            spot_placed: 1,
            ..spot_gone()
        };
        assert_eq!(
            decide(&partial, Signal::SpotShort, 1000, QUIET).strategy,
            Some(on_demand(2))
        );
    }

    #[test]
    fn duplicate_and_late_events_change_nothing() {
        let engaged = State::Fallback {
            base: 4,
            attempts: 0,
            retry_at: 1900,
        };
        let during = Observed {
            state: engaged,
            current: on_demand(4),
            ..spot_gone()
        };
        let again = decide(&during, Signal::SpotShort, 1001, QUIET);
        assert_eq!(
            (again.state, again.strategy),
            (engaged, None),
            "a duplicate stacks nothing"
        );
        let covered = Observed {
            placed: 4,
            spot_placed: 0,
            settled: true,
            ..during
        };
        let late = decide(&covered, Signal::SpotShort, 1002, QUIET);
        assert_eq!(
            (late.state, late.strategy),
            (engaged, None),
            "a late interruption finds the count covered"
        );
        let recovered = decide(&full(), Signal::SpotShort, 5000, QUIET);
        assert_eq!((recovered.state, recovered.strategy), (State::Normal, None));
    }

    #[test]
    fn a_shortfall_spot_did_not_cause_is_left_to_ecs() {
        // A deployment starting its FARGATE task while Spot holds its share.
        let starting = Observed {
            placed: 3,
            spot_placed: 3,
            settled: false,
            ..full()
        };
        let plan = decide(&starting, Signal::SpotShort, 1000, QUIET);
        assert_eq!((plan.state, plan.strategy), (State::Normal, None));
    }

    #[test]
    fn after_the_quiet_period_the_template_is_tried_and_kept_when_spot_holds() {
        let engaged = State::Fallback {
            base: 4,
            attempts: 0,
            retry_at: 1900,
        };
        let covered = Observed {
            placed: 4,
            spot_placed: 0,
            state: engaged,
            current: on_demand(4),
            ..full()
        };
        let early = decide(&covered, Signal::Tick, 1899, QUIET);
        assert_eq!(
            (early.state, early.strategy),
            (engaged, None),
            "not before the quiet period"
        );
        let retry = decide(&covered, Signal::Tick, 1900, QUIET);
        assert_eq!(
            retry.state,
            State::Trial {
                attempts: 0,
                since: 1900
            }
        );
        assert_eq!(retry.strategy, Some(template()));
        let trying = Observed {
            state: retry.state,
            current: template(),
            ..full()
        };
        let kept = decide(&trying, Signal::Tick, 1900 + QUIET, QUIET);
        assert_eq!((kept.state, kept.strategy), (State::Normal, None));
        let soon = decide(&trying, Signal::Tick, 1900 + QUIET - 1, QUIET);
        assert_eq!(soon.state, retry.state, "a trial lasts a quiet period");
    }

    #[test]
    fn spot_still_short_at_retry_falls_back_again_and_backs_off() {
        let trying = Observed {
            state: State::Trial {
                attempts: 0,
                since: 1900,
            },
            ..spot_gone()
        };
        let plan = decide(&trying, Signal::SpotShort, 1950, QUIET);
        assert_eq!(
            plan.state,
            State::Fallback {
                base: 4,
                attempts: 1,
                retry_at: 1950 + 2 * QUIET
            }
        );
        assert_eq!(plan.strategy, Some(on_demand(4)));
        let third = Observed {
            state: State::Trial {
                attempts: 2,
                since: 0,
            },
            ..spot_gone()
        };
        let later = decide(&third, Signal::Tick, QUIET, QUIET);
        assert_eq!(
            later.state,
            State::Fallback {
                base: 4,
                attempts: 3,
                retry_at: QUIET + 8 * QUIET
            }
        );
        assert_eq!(
            backoff(QUIET, 40),
            QUIET << MAX_BACKOFF_STEPS,
            "the back-off is capped"
        );
    }

    #[test]
    fn a_new_template_during_a_fallback_keeps_the_fallback_on_top_of_it() {
        // The stack update changed the weights to 2:2; the service resource applied the state.
        let new_template = vec![Item::new(ON_DEMAND, 2, 0), Item::new(SPOT, 2, 0)];
        let engaged = State::Fallback {
            base: 4,
            attempts: 0,
            retry_at: 1900,
        };
        let updated = Observed {
            template: new_template.clone(),
            current: engaged.strategy(&new_template),
            state: engaged,
            placed: 4,
            spot_placed: 0,
            ..full()
        };
        let plan = decide(&updated, Signal::SpotShort, 1000, QUIET);
        assert_eq!((plan.state, plan.strategy), (engaged, None));
        let retry = decide(&updated, Signal::Tick, 1900, QUIET);
        assert_eq!(
            retry.strategy,
            Some(new_template),
            "the retry runs the new template"
        );
    }

    #[test]
    fn a_template_without_spot_ends_any_fallback() {
        let fargate_only = vec![Item::new(ON_DEMAND, 1, 0)];
        let engaged = State::Fallback {
            base: 4,
            attempts: 0,
            retry_at: 1900,
        };
        let o = Observed {
            template: fargate_only.clone(),
            current: fargate_only,
            state: engaged,
            ..full()
        };
        let plan = decide(&o, Signal::SpotShort, 1000, QUIET);
        assert_eq!((plan.state, plan.strategy), (State::Normal, None));
    }
}
