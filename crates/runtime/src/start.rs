//! Starting: built parts become a [`RunningWorkload`]. In the order that keeps a failure
//! harmless: bind newly published host ports, subscribe the components to their brokers,
//! then start the service (stopping the one it replaces first, which may hold its ports) or
//! keep the running one and point its linked calls at the new components.
//!
//! Routing is not here: the lifecycle swaps the result in once it has started.

use crate::build::BuiltWorkload;
use crate::invoke::call::{Callee, Callees};
use crate::publish::Publishers;
use crate::service::ServiceRuntime;
use crate::workload::{ComponentRuntime, RunningWorkload};
use crate::{DeployError, Runtime};
use hearth_manifest::Part;
use std::sync::Arc;
use std::time::SystemTime;

/// Starts `built`. `previous` is the version it replaces, if any: its published ports are
/// carried over, and its service is either kept (when `built` has none of its own and the
/// workload still has one) or stopped before the new one starts.
pub(crate) async fn start(
    rt: &Arc<Runtime>,
    built: BuiltWorkload,
    previous: Option<&Arc<RunningWorkload>>,
) -> Result<RunningWorkload, DeployError> {
    let workload = &built.plan.workload;
    // The worker the service will run on, chosen first: its workload's published ports and
    // deliveries go beside it. A new service keeps its predecessor's worker, so connections
    // already steered there stay right.
    let workers = rt.workers();
    let previous_home = previous.and_then(|p| p.home());
    let (home, home_worker) = match (&built.service, built.keep_service) {
        (_, true) => (None, previous_home),
        (Some(_), false) => {
            let home = workers.home(previous_home);
            let worker = home.as_ref().map(|h| h.worker);
            (home, worker)
        }
        (None, false) => (None, None),
    };
    let place = home_worker.map_or_else(tokio::runtime::Handle::current, |w| {
        workers.handles()[w].clone()
    });
    let published = Publishers::update(
        workload,
        previous.map(|p| p.published.as_ref()),
        &built.network,
        rt.publish_ip,
        &place,
    )?;
    let spread = match home_worker {
        Some(w) => &workers.handles()[w..=w],
        None => workers.handles(),
    };
    let subscriptions = match subscribe(&built, (spread, home_worker.is_some()), &place).await {
        Ok(tasks) => tasks,
        Err(e) => {
            published.retire(previous.map_or(&Publishers::default(), |p| &p.published));
            return Err(e);
        }
    };
    let (service, callees) = if built.keep_service {
        keep_service(previous, &built.components, built.callees)
    } else {
        let new = built.service;
        match replace_service(&built.plan.workload, new, home, &built.network, previous).await {
            Ok(service) => (service, built.callees),
            Err(e) => {
                subscriptions
                    .iter()
                    .for_each(tokio::task::AbortHandle::abort);
                published.retire(previous.map_or(&Publishers::default(), |p| &p.published));
                return Err(e);
            }
        }
    };
    built.network.set_home(home_worker);
    Ok(RunningWorkload {
        name: workload.name.as_str().into(),
        source: workload.source.file.clone(),
        deployment: workload.deployment().map(Arc::from),
        generation: previous.map_or(1, |p| p.generation + 1),
        started: SystemTime::now(),
        components: built.components,
        service,
        network: built.network,
        service_ports: workload
            .spec
            .service
            .as_ref()
            .map(|s| s.ports.iter().map(|p| p.port).collect())
            .unwrap_or_default(),
        published: Arc::new(published),
        subscriptions,
        callees,
        topology: crate::topology::of(&built.plan),
        fingerprint: built.plan.fingerprint,
    })
}

/// Stops the previous version's service, if any (the new one may bind the same ports), then
/// starts `new`, if any.
async fn replace_service(
    workload: &hearth_manifest::Workload,
    new: Option<crate::build::BuiltService>,
    home: Option<crate::placement::Home>,
    network: &Arc<hearth_net::Network>,
    previous: Option<&Arc<RunningWorkload>>,
) -> Result<Option<Arc<ServiceRuntime>>, DeployError> {
    if let Some(old) = previous.and_then(|p| p.service.clone()) {
        tokio::task::spawn_blocking(move || old.stop()).await.ok();
    }
    let Some(new) = new else {
        return Ok(None);
    };
    let restart = workload
        .spec
        .service
        .as_ref()
        .map(|s| s.restart)
        .unwrap_or_default();
    let service = Arc::new(ServiceRuntime::new(
        new.pre,
        new.template,
        restart,
        Arc::clone(network),
        new.code,
    ));
    service.start(home).map_err(|e| {
        DeployError::at(
            workload,
            workload.field_of(Part::Service, "image"),
            format!("cannot start the service thread: {e}"),
        )
    })?;
    Ok(Some(service))
}

/// The previous version's service, with its linked calls pointed at `components`.
fn keep_service(
    previous: Option<&Arc<RunningWorkload>>,
    components: &[Arc<ComponentRuntime>],
    fresh: Callees,
) -> (Option<Arc<ServiceRuntime>>, Callees) {
    let Some(previous) = previous.filter(|p| p.service.is_some()) else {
        return (None, fresh);
    };
    let callees = components
        .iter()
        .map(|c| {
            let slot = match previous.callees.iter().find(|(n, _)| *n == c.name) {
                Some((_, slot)) => {
                    slot.set(c);
                    Arc::clone(slot)
                }
                None => Callee::new(c),
            };
            (Arc::clone(&c.name), slot)
        })
        .collect();
    (previous.service.clone(), callees)
}

/// Subscribes every component with `subscriptions` to its broker and starts delivering: on
/// each of `workers`, each with its share of the messages, where the broker can share a
/// subscription (on one worker, the workload's home, too: the subscription's connection then
/// lives there); else once, on `place`.
async fn subscribe(
    built: &BuiltWorkload,
    (workers, homed): (&[tokio::runtime::Handle], bool),
    place: &tokio::runtime::Handle,
) -> Result<Vec<tokio::task::AbortHandle>, DeployError> {
    let workload = &built.plan.workload;
    let mut tasks = Vec::new();
    let parts = workload.spec.components.iter().zip(&built.components);
    for (i, (spec, component)) in parts.enumerate() {
        for (j, pattern) in spec.subscriptions.iter().enumerate() {
            let bound = &built.interfaces.components[i];
            let group = match (workers.len(), homed) {
                (0, _) | (1, false) => None,
                _ => hearth_interfaces::messaging::share_group(bound),
            };
            let subscribed = match group {
                Some(group) => {
                    subscribe_shared(bound, pattern, &group, workers, component, &mut tasks).await
                }
                None => hearth_interfaces::messaging::subscribe(bound, pattern)
                    .await
                    .map(|subscription| {
                        tasks.push(crate::invoke::message::deliver(
                            component,
                            pattern.clone(),
                            subscription,
                            place,
                        ));
                    }),
            };
            if let Err(why) = subscribed {
                tasks.iter().for_each(tokio::task::AbortHandle::abort);
                let field = workload.field_of(Part::Component(i), &format!("subscriptions[{j}]"));
                return Err(DeployError::at(workload, field, why));
            }
        }
    }
    Ok(tasks)
}

/// One member of `group` per worker, subscribed on the worker (so its connection lives
/// there) and delivered there.
async fn subscribe_shared(
    bound: &Arc<hearth_interfaces::PartInterfaces>,
    pattern: &str,
    group: &str,
    workers: &[tokio::runtime::Handle],
    component: &Arc<ComponentRuntime>,
    tasks: &mut Vec<tokio::task::AbortHandle>,
) -> Result<(), String> {
    for worker in workers {
        let (bound, p, g) = (Arc::clone(bound), pattern.to_string(), group.to_string());
        let subscription = worker
            .spawn(
                async move { hearth_interfaces::messaging::subscribe_shared(&bound, &p, &g).await },
            )
            .await
            .map_err(|e| format!("the worker could not subscribe: {e}"))??;
        tasks.push(crate::invoke::message::deliver(
            component,
            pattern.to_string(),
            subscription,
            worker,
        ));
    }
    Ok(())
}
