//! Calls into a component's exports over WIT, for a service (issue 4's cron pattern): every
//! call gets a fresh instance of the exporting component, within that component's limits
//! (`maxConcurrency`, deadline, memory), exactly like an HTTP request.

use crate::deploy::ComponentRuntime;
use crate::invoke::InvokeError;
use crate::state::InvocationState;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};
use wasmtime::Trap;
use wasmtime::component::{Linker, Val};

/// Where linked calls to a component go. `hearth dev` points it at the new version of the
/// component on reload, so a service that keeps running calls the new code.
pub(crate) struct Callee {
    current: arc_swap::ArcSwap<ComponentRuntime>,
}

impl Callee {
    pub(crate) fn new(component: &Arc<ComponentRuntime>) -> Arc<Self> {
        Arc::new(Self {
            current: arc_swap::ArcSwap::new(Arc::clone(component)),
        })
    }

    pub(crate) fn get(&self) -> Arc<ComponentRuntime> {
        self.current.load_full()
    }

    pub(crate) fn set(&self, component: &Arc<ComponentRuntime>) {
        self.current.store(Arc::clone(component));
    }
}

impl ComponentRuntime {
    /// Calls `interface`.`func` on a fresh instance with `params`, filling `results`.
    pub async fn call_export(
        self: &Arc<Self>,
        interface: &str,
        func: &str,
        params: &[Val],
        results: &mut [Val],
    ) -> Result<(), InvokeError> {
        self.stats.requests.fetch_add(1, Ordering::Relaxed);
        let Some(_permit) = self.gate.enter().await else {
            self.stats.rejected.fetch_add(1, Ordering::Relaxed);
            return Err(InvokeError::Overloaded);
        };
        let timeout = Duration::from_millis(self.limits.timeout_ms);
        let deadline = Instant::now() + timeout;
        let mut store = self.new_store(deadline);
        let run = async {
            let instance = self.pre.instantiate_async(&mut store).await?;
            let iface = instance
                .get_export_index(&mut store, None, interface)
                .ok_or_else(|| wasmtime::Error::msg(format!("no export `{interface}`")))?;
            let index = instance
                .get_export_index(&mut store, Some(&iface), func)
                .ok_or_else(|| {
                    wasmtime::Error::msg(format!("no function `{func}` in `{interface}`"))
                })?;
            let f = instance.get_func(&mut store, index).ok_or_else(|| {
                wasmtime::Error::msg(format!("`{interface}.{func}` is not a function"))
            })?;
            f.call_async(&mut store, params, results).await
        };
        match tokio::time::timeout_at(deadline.into(), run).await {
            Ok(Ok(())) => Ok(()),
            Ok(Err(e)) if matches!(e.downcast_ref::<Trap>(), Some(Trap::Interrupt)) => {
                self.stats.timed_out.fetch_add(1, Ordering::Relaxed);
                Err(InvokeError::Timeout(timeout))
            }
            Ok(Err(e)) => {
                self.stats.failed.fetch_add(1, Ordering::Relaxed);
                tracing::warn!(workload = %self.workload, component = %self.name, reason = %e.root_cause(), detail = ?e, "call failed");
                Err(InvokeError::Guest(e))
            }
            Err(_) => {
                self.stats.timed_out.fetch_add(1, Ordering::Relaxed);
                Err(InvokeError::Timeout(timeout))
            }
        }
    }
}

impl InvokeError {
    /// A one-line reason a caller may see, without guest internals.
    pub fn short_reason(&self) -> String {
        match self {
            InvokeError::Overloaded => "the component is at its concurrency limit".into(),
            InvokeError::Timeout(t) => {
                format!("the component did not return within {} ms", t.as_millis())
            }
            InvokeError::Guest(e) => match e.downcast_ref::<Trap>() {
                Some(trap) => format!("the component trapped: {trap}"),
                None => "the component failed".into(),
            },
            InvokeError::ErrorCode(_) | InvokeError::NotHttp => "the component failed".into(),
        }
    }
}

/// Whether a value of `ty` carries a resource handle (not supported across components yet).
fn has_resource(ty: &wasmtime::component::types::Type) -> bool {
    use wasmtime::component::types::Type;
    match ty {
        Type::Own(_) | Type::Borrow(_) | Type::Future(_) | Type::Stream(_) | Type::ErrorContext => {
            true
        }
        Type::List(l) => has_resource(&l.ty()),
        Type::Record(r) => r.fields().any(|f| has_resource(&f.ty)),
        Type::Tuple(t) => t.types().any(|t| has_resource(&t)),
        Type::Variant(v) => v.cases().any(|c| c.ty.as_ref().is_some_and(has_resource)),
        Type::Option(o) => has_resource(&o.ty()),
        Type::Result(r) => {
            r.ok().as_ref().is_some_and(has_resource) || r.err().as_ref().is_some_and(has_resource)
        }
        _ => false,
    }
}

/// Defines every function of `export` (an interface `callee` exports) in `linker` under the
/// same name, each call going to a fresh instance of `callee`. A function returning
/// `result<_, string>` gets `Err(reason)` when the call fails; any other traps the caller.
pub(crate) fn link_export(
    linker: &mut Linker<InvocationState>,
    engine: &wasmtime::Engine,
    component: &wasmtime::component::Component,
    export: &str,
    import: &str,
    callee: &Arc<Callee>,
) -> wasmtime::Result<()> {
    use wasmtime::component::types::ComponentItem;
    let ty = component.component_type();
    let Some(ComponentItem::ComponentInstance(instance)) =
        ty.get_export(engine, export).map(|e| e.ty)
    else {
        return Err(wasmtime::Error::msg(format!(
            "`{export}` is not an exported interface"
        )));
    };
    let mut root = linker.root();
    let mut inst = root.instance(import)?;
    for (name, item) in instance.exports(engine) {
        let ComponentItem::ComponentFunc(func) = item.ty else {
            continue;
        };
        if func.params().any(|(_, t)| has_resource(&t)) || func.results().any(|t| has_resource(&t))
        {
            return Err(wasmtime::Error::msg(format!(
                "`{export}.{name}` passes a resource; resources across the component boundary are not supported yet"
            )));
        }
        let returns_string_error = {
            let mut results = func.results();
            matches!(
                (results.next(), results.next()),
                (Some(wasmtime::component::types::Type::Result(r)), None)
                    if matches!(r.err(), Some(wasmtime::component::types::Type::String))
            )
        };
        let callee = Arc::clone(callee);
        let interface = export.to_string();
        let func_name = name.to_string();
        inst.func_new_async(name, move |_store, _ty, params, results| {
            let callee = callee.get();
            let interface = interface.clone();
            let func_name = func_name.clone();
            Box::new(async move {
                match callee
                    .call_export(&interface, &func_name, params, results)
                    .await
                {
                    Ok(()) => Ok(()),
                    Err(e) if returns_string_error => {
                        if let Some(slot) = results.first_mut() {
                            *slot = Val::Result(Err(Some(Box::new(Val::String(e.short_reason())))));
                        }
                        Ok(())
                    }
                    Err(e) => Err(wasmtime::Error::msg(format!(
                        "call to `{interface}.{func_name}` failed: {}",
                        e.short_reason()
                    ))),
                }
            })
        })?;
    }
    Ok(())
}
