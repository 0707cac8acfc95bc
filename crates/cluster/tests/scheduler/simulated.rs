//! Property tests: rollouts driven through a simulated cluster, invariants checked on every
//! step.

use super::*;
// The manifest's `Strategy` (named explicitly, it wins over both globs); proptest's
// trait of the same name is only needed for its methods.
use hearth_manifest::Strategy;
use proptest::prelude::*;
use proptest::strategy::Strategy as _;
use proptest::test_runner::TestCaseError;

const OFFERS: [&str; 2] = ["wasi:keyvalue=redis", "wasi:blobstore=s3"];
const STEP_MS: u64 = 1_000;
const BACKOFF_MS: u64 = 3_000;
/// Far more than any generated rollout needs when nothing fails.
const MAX_STEPS: usize = 250;

/// A small deterministic generator (SplitMix64), so a case replays from its seed.
struct Dice(u64);

impl Dice {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// True `percent` times in a hundred.
    fn chance(&mut self, percent: u64) -> bool {
        self.next() % 100 < percent
    }
}

/// The cluster as the controller would see it, moved along by `plan`'s actions and
/// by hosts reporting progress.
struct Sim {
    hosts: Vec<HostView>,
    replicas: Vec<Replica>,
    backoffs: Vec<Backoff>,
    now_ms: u64,
    next_id: u32,
    dice: Dice,
    /// Whether starting replicas sometimes fail.
    failures: bool,
}

impl Sim {
    fn new(hosts: Vec<HostView>, seed: u64, failures: bool) -> Self {
        Sim {
            hosts,
            replicas: Vec::new(),
            backoffs: Vec::new(),
            now_ms: 0,
            next_id: 0,
            dice: Dice(seed),
            failures,
        }
    }

    fn inputs<'a>(&'a self, desired: &'a [Desired]) -> Inputs<'a> {
        Inputs {
            desired,
            hosts: &self.hosts,
            current: &self.replicas,
            backoffs: &self.backoffs,
            now_ms: self.now_ms,
        }
    }

    fn is_live_host(&self, id: &str) -> bool {
        self.hosts.iter().any(|host| host.id == id)
    }

    /// The replicas of `deployment` on live hosts.
    fn of<'a>(&'a self, deployment: &'a str) -> impl Iterator<Item = &'a Replica> + 'a {
        self.replicas
            .iter()
            .filter(move |r| r.deployment == deployment && self.is_live_host(&r.host))
    }

    fn ready(&self, deployment: &str) -> usize {
        self.of(deployment)
            .filter(|r| r.state == ReplicaState::Ready)
            .count()
    }

    /// A start becomes a pending replica; a stop removes the replica, at once or
    /// after a stopping step.
    fn apply(&mut self, plan: &Plan) {
        for action in &plan.actions {
            match action {
                Action::Start {
                    deployment,
                    revision,
                    host,
                } => {
                    self.next_id += 1;
                    let id = format!("{deployment}-{:04}", self.next_id);
                    self.replicas.push(replica(
                        &id,
                        deployment,
                        revision,
                        host,
                        ReplicaState::Pending,
                    ));
                }
                Action::Stop { replica, .. } => {
                    let drains = self.dice.chance(50);
                    if let Some(index) = self.replicas.iter().position(|r| r.id == *replica) {
                        if drains {
                            self.replicas[index].state = ReplicaState::Stopping;
                        } else {
                            self.replicas.remove(index);
                        }
                    }
                }
            }
        }
    }

    /// Hosts report: pending → starting → ready (or failed, which backs the host off
    /// for the deployment), and stopping replicas finish. Time moves on.
    fn progress(&mut self) {
        let mut gone = Vec::new();
        for index in 0..self.replicas.len() {
            let state = self.replicas[index].state;
            let next = match state {
                ReplicaState::Pending if self.dice.chance(70) => ReplicaState::Starting,
                ReplicaState::Starting if self.failures && self.dice.chance(15) => {
                    let replica = &self.replicas[index];
                    self.backoffs.push(Backoff {
                        deployment: replica.deployment.clone(),
                        host: replica.host.clone(),
                        until_ms: self.now_ms + BACKOFF_MS,
                    });
                    ReplicaState::Failed
                }
                ReplicaState::Starting if self.dice.chance(60) => ReplicaState::Ready,
                ReplicaState::Stopping if self.dice.chance(50) => {
                    gone.push(index);
                    state
                }
                _ => state,
            };
            self.replicas[index].state = next;
        }
        for index in gone.into_iter().rev() {
            self.replicas.remove(index);
        }
        self.now_ms += STEP_MS;
    }
}

/// `maxSurge` and `maxUnavailable` as the contract resolves them (`None`: no floor).
fn limits(desired: &Desired) -> (u32, Option<u32>) {
    match &desired.strategy {
        Strategy::Recreate => (0, None),
        Strategy::RollingUpdate { rolling_update } => {
            let surge = rolling_update
                .max_surge
                .resolve(desired.replicas, true)
                .unwrap();
            let unavailable = rolling_update
                .max_unavailable
                .resolve(desired.replicas, false)
                .unwrap();
            if surge == 0 && unavailable == 0 {
                (0, Some(1))
            } else {
                (surge, Some(unavailable))
            }
        }
    }
}

fn satisfies(host: &HostView, desired: &Desired) -> bool {
    desired
        .host_selector
        .iter()
        .all(|(key, value)| host.labels.get(key) == Some(value))
        && desired.needs.iter().all(|need| host.offers.contains(need))
        && !host.memory_short
}

/// Everything that must hold of one plan, whatever the cluster looks like.
fn check_plan(inputs: Inputs<'_>, plan: &Plan) -> Result<(), TestCaseError> {
    // Determinism, and independence from the order of the inputs.
    prop_assert_eq!(plan, &super::plan(inputs));
    let mut desired = inputs.desired.to_vec();
    desired.reverse();
    let mut hosts = inputs.hosts.to_vec();
    hosts.reverse();
    let mut current = inputs.current.to_vec();
    current.reverse();
    let shuffled = Inputs {
        desired: &desired,
        hosts: &hosts,
        current: &current,
        ..inputs
    };
    prop_assert_eq!(plan, &super::plan(shuffled));

    check_starts(inputs, plan)?;
    check_stops(inputs, plan)?;
    check_cleanup(inputs, plan)?;
    check_recreate(inputs, plan)
}

/// Failed replicas and those of deployments no longer desired are always stopped
/// (unless their host is lost, or they already stop).
fn check_cleanup(inputs: Inputs<'_>, plan: &Plan) -> Result<(), TestCaseError> {
    for replica in inputs.current {
        let on_live_host = inputs.hosts.iter().any(|h| h.id == replica.host);
        let desired = inputs.desired.iter().any(|d| d.name == replica.deployment);
        let must_stop = on_live_host
            && replica.state != ReplicaState::Stopping
            && (replica.state == ReplicaState::Failed || !desired);
        let stopped = plan
            .actions
            .iter()
            .any(|action| matches!(action, Action::Stop { replica: id, .. } if *id == replica.id));
        prop_assert!(stopped || !must_stop, "{} is left behind", replica.id);
    }
    Ok(())
}

/// `Recreate` starts nothing while any old replica exists, in any state.
fn check_recreate(inputs: Inputs<'_>, plan: &Plan) -> Result<(), TestCaseError> {
    for desired in inputs.desired {
        if !matches!(desired.strategy, Strategy::Recreate) {
            continue;
        }
        let old_exists = inputs.current.iter().any(|r| {
            r.deployment == desired.name
                && r.revision != desired.revision
                && inputs.hosts.iter().any(|h| h.id == r.host)
        });
        let starts = plan.actions.iter().any(|action| {
            matches!(action, Action::Start { deployment, .. } if *deployment == desired.name)
        });
        prop_assert!(
            !(old_exists && starts),
            "{} recreated too early",
            desired.name
        );
    }
    Ok(())
}

/// Every start lands on a live host that satisfies the deployment's selector and
/// needs, has a slot (this plan's earlier starts included), memory, and no backoff.
fn check_starts(inputs: Inputs<'_>, plan: &Plan) -> Result<(), TestCaseError> {
    let mut used: BTreeMap<&str, u32> = BTreeMap::new();
    for replica in inputs.current {
        *used.entry(replica.host.as_str()).or_insert(0) += 1;
    }
    for action in &plan.actions {
        let Action::Start {
            deployment,
            revision,
            host,
        } = action
        else {
            continue;
        };
        let desired = inputs.desired.iter().find(|d| d.name == *deployment);
        prop_assert!(desired.is_some(), "start of an undesired {deployment}");
        let desired = desired.unwrap();
        prop_assert_eq!(revision, &desired.revision);
        let view = inputs.hosts.iter().find(|h| h.id == *host);
        prop_assert!(view.is_some(), "start on a lost host {host}");
        let view = view.unwrap();
        prop_assert!(satisfies(view, desired), "{host} cannot run {deployment}");
        let slots = used.entry(host.as_str()).or_insert(0);
        prop_assert!(*slots < view.max_replicas, "{host} is full");
        *slots += 1;
        prop_assert!(
            !inputs.backoffs.iter().any(|b| b.deployment == *deployment
                && b.host == *host
                && b.until_ms > inputs.now_ms),
            "{host} backs off from {deployment}"
        );
    }
    Ok(())
}

/// Every stop names a replica on a live host that is not already stopping, once, for
/// the right reason; a ready replica of the desired revision only goes when there
/// are more than `replicas` of it.
fn check_stops(inputs: Inputs<'_>, plan: &Plan) -> Result<(), TestCaseError> {
    let mut seen = BTreeSet::new();
    let mut ready_new_stopped: BTreeMap<&str, usize> = BTreeMap::new();
    for action in &plan.actions {
        let Action::Stop { replica, why, .. } = action else {
            continue;
        };
        prop_assert!(seen.insert(replica.clone()), "{replica} stopped twice");
        let target = inputs.current.iter().find(|r| r.id == *replica);
        prop_assert!(target.is_some(), "stop of an unknown {replica}");
        let target = target.unwrap();
        prop_assert!(inputs.hosts.iter().any(|h| h.id == target.host));
        prop_assert_ne!(target.state, ReplicaState::Stopping);
        let desired = inputs.desired.iter().find(|d| d.name == target.deployment);
        let expected = match desired {
            None => StopReason::Deleted,
            Some(_) if target.state == ReplicaState::Failed => StopReason::Failed,
            Some(d) if target.revision != d.revision => StopReason::Replaced,
            Some(_) => StopReason::ScaledDown,
        };
        prop_assert_eq!(*why, expected);
        if let Some(d) = desired
            && target.revision == d.revision
            && target.state == ReplicaState::Ready
        {
            *ready_new_stopped.entry(d.name.as_str()).or_insert(0) += 1;
        }
    }
    for (name, stopped) in ready_new_stopped {
        let desired = inputs.desired.iter().find(|d| d.name == name).unwrap();
        let live_new = inputs
            .current
            .iter()
            .filter(|r| {
                r.deployment == name
                    && r.revision == desired.revision
                    && matches!(
                        r.state,
                        ReplicaState::Pending | ReplicaState::Starting | ReplicaState::Ready
                    )
                    && inputs.hosts.iter().any(|h| h.id == r.host)
            })
            .count();
        prop_assert!(
            live_new - stopped >= desired.replicas as usize,
            "ready replicas of {name} stopped below its count"
        );
    }
    Ok(())
}

/// Done: exactly `replicas` ready replicas at the desired revision, and a plan with
/// nothing left to do.
fn converged(sim: &Sim, desired: &Desired) -> bool {
    let replicas: Vec<&Replica> = sim.of(&desired.name).collect();
    replicas.len() == desired.replicas as usize
        && replicas
            .iter()
            .all(|r| r.state == ReplicaState::Ready && r.revision == desired.revision)
}

/// What one run checks besides the per-plan rules.
#[derive(Clone, Copy)]
struct Watch {
    /// Ready replicas must never drop below this (no failures, started converged).
    ready_floor: Option<usize>,
    /// Replicas per host must stay within one of each other.
    even_spread: bool,
}

/// Plans and applies until `desired` converges or `MAX_STEPS` pass; whether it
/// converged.
fn drive(sim: &mut Sim, desired: &Desired, watch: Watch) -> Result<bool, TestCaseError> {
    let all = std::slice::from_ref(desired);
    let (surge, _) = limits(desired);
    for _ in 0..MAX_STEPS {
        if converged(sim, desired) {
            prop_assert_eq!(super::plan(sim.inputs(all)), Plan::default());
            return Ok(true);
        }
        let plan = super::plan(sim.inputs(all));
        check_plan(sim.inputs(all), &plan)?;
        if let Some(floor) = watch.ready_floor {
            let stopped_ready = plan
                .actions
                .iter()
                .filter(|action| match action {
                    Action::Stop { replica, .. } => sim
                        .replicas
                        .iter()
                        .any(|r| r.id == *replica && r.state == ReplicaState::Ready),
                    Action::Start { .. } => false,
                })
                .count();
            prop_assert!(sim.ready(&desired.name) - stopped_ready >= floor);
        }
        sim.apply(&plan);
        let existing = sim.of(&desired.name).count();
        prop_assert!(
            existing <= (desired.replicas + surge) as usize,
            "{existing} replicas exist, beyond {} + {surge}",
            desired.replicas
        );
        if let Some(floor) = watch.ready_floor {
            prop_assert!(sim.ready(&desired.name) >= floor);
        }
        if watch.even_spread {
            check_even(sim, &desired.name)?;
        }
        sim.progress();
    }
    Ok(converged(sim, desired))
}

/// The plan never takes a deployment beyond `replicas + maxSurge`: it starts nothing
/// that would, and otherwise leaves no more replicas than it found (a scale-down can
/// leave extra ones stopping for a while).
fn check_surge(
    before: usize,
    sim: &Sim,
    desired: &Desired,
    plan: &Plan,
) -> Result<(), TestCaseError> {
    let (surge, _) = limits(desired);
    let bound = (desired.replicas + surge) as usize;
    let after = sim.of(&desired.name).count();
    let started = plan.actions.iter().any(
        |action| matches!(action, Action::Start { deployment, .. } if *deployment == desired.name),
    );
    prop_assert!(
        after <= bound.max(before),
        "{after} replicas exist, beyond {bound}"
    );
    prop_assert!(!started || after <= bound, "started beyond {bound}");
    Ok(())
}

/// Live replicas of `deployment` per host differ by at most one across all hosts.
fn check_even(sim: &Sim, deployment: &str) -> Result<(), TestCaseError> {
    let per_host: Vec<usize> = sim
        .hosts
        .iter()
        .map(|host| {
            sim.of(deployment)
                .filter(|r| r.host == host.id && r.state != ReplicaState::Stopping)
                .count()
        })
        .collect();
    let most = per_host.iter().max().copied().unwrap_or(0);
    let least = per_host.iter().min().copied().unwrap_or(0);
    prop_assert!(most - least <= 1, "uneven spread {per_host:?}");
    Ok(())
}

// -- Generators -----------------------------------------------------------------------

fn count_or_percent() -> impl proptest::strategy::Strategy<Value = IntOrPercent> {
    prop_oneof![
        (0u32..4).prop_map(IntOrPercent::Int),
        prop::sample::select(vec!["0%", "10%", "25%", "50%", "100%"])
            .prop_map(|p| IntOrPercent::Percent(p.into())),
    ]
}

fn strategy() -> impl proptest::strategy::Strategy<Value = Strategy> {
    prop_oneof![
        4 => (count_or_percent(), count_or_percent()).prop_map(|(s, u)| rolling(s, u)),
        1 => Just(Strategy::Recreate),
    ]
}

/// Host `host-<n>`: maybe a zone, usually most offers, 0 to 8 slots (mostly enough),
/// rarely short of memory. Most clusters can run most deployments, so that the
/// convergence checks get exercised; the rest exercise the bounds when stuck.
fn hosts() -> impl proptest::strategy::Strategy<Value = Vec<HostView>> {
    let one = (
        prop::option::of(prop::sample::select(vec!["eu", "us"])),
        prop::collection::vec(prop::bool::weighted(0.8), OFFERS.len()),
        prop_oneof![1 => 0u32..=2, 4 => 2u32..=8],
        prop::bool::weighted(0.1),
    );
    prop::collection::vec(one, 1..=6).prop_map(|specs| {
        specs
            .into_iter()
            .enumerate()
            .map(|(n, (zone, offers, max_replicas, memory_short))| HostView {
                id: format!("host-{n}"),
                labels: zone
                    .map(|z| BTreeMap::from([("zone".to_owned(), z.to_owned())]))
                    .unwrap_or_default(),
                offers: OFFERS
                    .iter()
                    .zip(offers)
                    .filter(|(_, offered)| *offered)
                    .map(|(offer, _)| (*offer).to_owned())
                    .collect(),
                max_replicas,
                memory_short,
            })
            .collect()
    })
}

/// `web` at revision `r1`, sometimes with a zone selector or needs.
fn web() -> impl proptest::strategy::Strategy<Value = Desired> {
    (
        1u32..10,
        strategy(),
        prop::bool::weighted(0.25),
        prop::option::weighted(0.25, prop::sample::select(OFFERS.to_vec())),
    )
        .prop_map(|(replicas, strategy, in_eu, needs)| Desired {
            strategy,
            host_selector: if in_eu {
                BTreeMap::from([("zone".to_owned(), "eu".to_owned())])
            } else {
                BTreeMap::new()
            },
            needs: needs.into_iter().map(str::to_owned).collect(),
            ..deployment("web", "r1", replicas)
        })
}

/// Whether the eligible hosts have room for `replicas + maxSurge`, so that a rollout
/// with no failures can always make progress.
fn has_room(hosts: &[HostView], desired: &Desired) -> bool {
    let (surge, _) = limits(desired);
    let slots: u32 = hosts
        .iter()
        .filter(|host| satisfies(host, desired))
        .map(|host| host.max_replicas)
        .sum();
    slots >= desired.replicas + surge
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

    /// Scale from zero at `r1`, then roll out `r2`: bounds, placement rules, the ready
    /// floor and convergence on every step.
    #[test]
    fn rollouts_keep_their_bounds_and_converge(
        hosts in hosts(),
        web in web(),
        failures in prop::bool::weighted(0.3),
        seed in any::<u64>(),
    ) {
        let mut sim = Sim::new(hosts.clone(), seed, failures);
        let room = has_room(&hosts, &web) && !failures;
        let quiet = Watch { ready_floor: None, even_spread: false };

        let started = drive(&mut sim, &web, quiet)?;
        prop_assert!(started || !room, "scale-up did not converge");

        let next = Desired { revision: "r2".into(), ..web.clone() };
        let floor = match limits(&next) {
            (_, Some(unavailable)) if started && !failures => {
                Some((next.replicas.saturating_sub(unavailable)) as usize)
            }
            _ => None,
        };
        let rolled = drive(&mut sim, &next, Watch { ready_floor: floor, ..quiet })?;
        prop_assert!(rolled || !room, "rollout did not converge");
    }

    /// With every host eligible and slots to spare, replicas spread evenly from zero,
    /// and stay even when scaled down and up again.
    #[test]
    fn scaling_from_zero_spreads_evenly(
        host_count in 1usize..=6,
        replicas in 1u32..10,
        smaller in 0u32..10,
        spare in 0u32..3,
        busy in prop::collection::vec(0u32..3, 6),
        strategy in strategy(),
        seed in any::<u64>(),
    ) {
        // Other work leaves every host room for its even share, however unequal, and
        // for as many replicas still stopping after a scale-down.
        let share = 2 * replicas.div_ceil(host_count as u32) + 1;
        let hosts: Vec<HostView> = (0..host_count)
            .map(|n| host(&format!("host-{n}"), share + spare + busy[n]))
            .collect();
        let mut sim = Sim::new(hosts, seed, false);
        for (n, count) in busy.iter().take(host_count).enumerate() {
            for k in 0..*count {
                sim.replicas.push(replica(
                    &format!("db-{n}-{k}"), "db", "x", &format!("host-{n}"), ReplicaState::Ready,
                ));
            }
        }
        let even = Watch { ready_floor: None, even_spread: true };
        // `db` is not desired here, so the plan would stop it: drive `web` with `db`
        // hidden from the deletion pass by desiring it as it is.
        let web = Desired { strategy, ..deployment("web", "r1", replicas) };
        prop_assert!(drive_beside(&mut sim, &web, &busy[..host_count], even)?);
        let down = Desired { replicas: smaller.min(replicas), ..web.clone() };
        prop_assert!(drive_beside(&mut sim, &down, &busy[..host_count], even)?);
        prop_assert!(drive_beside(&mut sim, &web, &busy[..host_count], even)?);
    }

    /// Several deployments, a deleted one, failures and a host lost midway: every plan
    /// keeps the per-plan rules, each deployment its surge bound.
    #[test]
    fn several_deployments_share_hosts_safely(
        hosts in hosts(),
        web in web(),
        api_replicas in 0u32..5,
        api_strategy in strategy(),
        leftovers in 0usize..4,
        lose_at in 0usize..40,
        seed in any::<u64>(),
    ) {
        let mut sim = Sim::new(hosts.clone(), seed, true);
        for n in 0..leftovers {
            let on = &hosts[n % hosts.len()].id;
            sim.replicas.push(replica(&format!("old-{n}"), "old", "x", on, ReplicaState::Ready));
        }
        let api = Desired { strategy: api_strategy, ..deployment("api", "a1", api_replicas) };
        let mut desired = vec![web.clone(), api];
        for step in 0..60 {
            if step == 30 {
                desired[0].revision = "r2".into();
            }
            if step == lose_at && sim.hosts.len() > 1 {
                sim.hosts.remove(0);
            }
            let plan = super::plan(sim.inputs(&desired));
            check_plan(sim.inputs(&desired), &plan)?;
            let before: Vec<usize> = desired.iter().map(|d| sim.of(&d.name).count()).collect();
            sim.apply(&plan);
            for (d, before) in desired.iter().zip(before) {
                check_surge(before, &sim, d, &plan)?;
            }
            prop_assert!(sim.of("old").all(|r| r.state == ReplicaState::Stopping));
            sim.progress();
        }
    }
}

/// `drive`, with `db` desired as it stands (one ready replica per entry of `busy`
/// per host), so that it only takes slots.
fn drive_beside(
    sim: &mut Sim,
    web: &Desired,
    busy: &[u32],
    watch: Watch,
) -> Result<bool, TestCaseError> {
    let db = deployment("db", "x", busy.iter().sum());
    let all = [web.clone(), db];
    for _ in 0..MAX_STEPS {
        if converged(sim, web) {
            prop_assert_eq!(super::plan(sim.inputs(&all)), Plan::default());
            return Ok(true);
        }
        let plan = super::plan(sim.inputs(&all));
        check_plan(sim.inputs(&all), &plan)?;
        let before = sim.of("web").count();
        sim.apply(&plan);
        check_surge(before, sim, web, &plan)?;
        if watch.even_spread {
            check_even(sim, "web")?;
        }
        sim.progress();
    }
    Ok(false)
}
