//! A WIT call on the one invoke path: a service (the seed's cron pattern) or a component calls
//! an export of another component of its workload, and every call gets a fresh instance of
//! the callee, within its limits (`maxConcurrency`, deadline, memory), like an HTTP request.
//! Also defines those imports in a linker ([`link_export`]).

use super::{Admission, InvokeError};
use crate::state::InvocationState;
use crate::trace;
use crate::workload::ComponentRuntime;
use opentelemetry::trace::SpanKind;
use std::sync::Arc;
use wasmtime::component::{Linker, Val};

/// Where linked calls to a component go. An update that keeps the service points it at the
/// new version of the component, so the running service calls the new code.
pub(crate) struct Callee {
    current: arc_swap::ArcSwap<ComponentRuntime>,
}

/// Where each component's linked calls go, by component name.
pub(crate) type Callees = Vec<(Arc<str>, Arc<Callee>)>;

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
    /// Calls `interface`.`func` on a fresh instance with `params`, filling `results`;
    /// `caller` is the caller's span of the call, when tracing.
    pub async fn call_export(
        self: &Arc<Self>,
        interface: &str,
        func: &str,
        params: &[Val],
        results: &mut [Val],
        caller: Option<&opentelemetry::Context>,
    ) -> Result<(), InvokeError> {
        let span = caller.and_then(|parent| {
            trace::invocation(
                Some(parent),
                &self.workload,
                &self.name,
                format!("{interface}.{func}"),
                SpanKind::Server,
            )
        });
        let called = self
            .call_traced(interface, func, params, results, span.as_ref())
            .await;
        if let Some(span) = span {
            span.end(called.as_ref().err().map(InvokeError::short_reason));
        }
        called
    }

    async fn call_traced(
        self: &Arc<Self>,
        interface: &str,
        func: &str,
        params: &[Val],
        results: &mut [Val],
        span: Option<&trace::Span>,
    ) -> Result<(), InvokeError> {
        let super::Invocation {
            mut store,
            deadline,
            timeout,
            permit: _permit,
        } = self.admit(Admission::Bounded).await?;
        if let Some(span) = span {
            store.data_mut().set_trace_context(span.context());
        }
        let call = async {
            let called = async {
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
            }
            .await;
            called.map_err(|e| store.data().explain(e))
        };
        self.complete(deadline, timeout, call).await
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
        inst.func_new_async(name, move |store, _ty, params, results| {
            let callee = callee.get();
            let interface = interface.clone();
            let func_name = func_name.clone();
            let span = store
                .data()
                .trace()
                .and_then(|caller| trace::call(caller, &interface, &func_name));
            Box::new(async move {
                let called = callee
                    .call_export(
                        &interface,
                        &func_name,
                        params,
                        results,
                        span.as_ref().map(trace::Span::context),
                    )
                    .await;
                if let Some(span) = span {
                    span.end(called.as_ref().err().map(InvokeError::short_reason));
                }
                match called {
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
