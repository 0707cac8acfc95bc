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
    let place = rt.place();
    let published = Publishers::update(
        workload,
        previous.map(|p| p.published.as_ref()),
        &built.network,
        rt.publish_ip,
        &place,
    )?;
    let subscriptions = match subscribe(rt, &built, &place).await {
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
        match replace_service(rt, &built.plan.workload, new, &built.network, previous).await {
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
    rt: &Arc<Runtime>,
    workload: &hearth_manifest::Workload,
    new: Option<crate::build::BuiltService>,
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
    service.start(rt.service_place()).map_err(|e| {
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
/// every HTTP worker, each with its share of the messages, where the broker can share a
/// subscription and there are several workers; else once, on `place`.
async fn subscribe(
    rt: &Runtime,
    built: &BuiltWorkload,
    place: &tokio::runtime::Handle,
) -> Result<Vec<tokio::task::AbortHandle>, DeployError> {
    let workload = &built.plan.workload;
    let workers = rt.workers();
    let mut tasks = Vec::new();
    let parts = workload.spec.components.iter().zip(&built.components);
    for (i, (spec, component)) in parts.enumerate() {
        for (j, pattern) in spec.subscriptions.iter().enumerate() {
            let bound = &built.interfaces.components[i];
            let group = match workers.len() {
                0 | 1 => None,
                _ => hearth_interfaces::messaging::share_group(bound),
            };
            let subscribed = match group {
                Some(group) => {
                    subscribe_shared(bound, pattern, &group, &workers, component, &mut tasks).await
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
