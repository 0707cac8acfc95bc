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
use wasmtime::component::{ComponentType, Lift, Linker, LinkerInstance, Lower, Val};

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

/// A linked call's arguments: as `Val`s (any signature, results written to the slice), or
/// for the commonest shapes typed, so a large argument or result is copied from one
/// instance's memory to the host and into the other's as one block, never lifted into a
/// `Val` per element.
pub(crate) enum Args<'a> {
    Vals(&'a [Val], &'a mut [Val]),
    /// `func(list<u8>) -> list<u8>`
    Bytes(Vec<u8>),
    /// `func(string) -> string`
    Text(String),
}

/// What a call returned: in the `Vals` slice, or typed like its [`Args`].
pub(crate) enum Returned {
    Vals,
    Bytes(Vec<u8>),
    Text(String),
}

/// The typed shape of a function, when it has one of the shapes [`Args`] carries typed.
#[derive(Clone, Copy)]
enum Shape {
    Bytes,
    Text,
}

impl Shape {
    fn of(func: &wasmtime::component::types::ComponentFunc) -> Option<Self> {
        use wasmtime::component::types::Type;
        let bytes = |t: &Type| matches!(t, Type::List(l) if matches!(l.ty(), Type::U8));
        let mut params = func.params().map(|(_, t)| t);
        let mut results = func.results();
        let (Some(param), None, Some(result), None) =
            (params.next(), params.next(), results.next(), results.next())
        else {
            return None;
        };
        match (&param, &result) {
            (p, r) if bytes(p) && bytes(r) => Some(Shape::Bytes),
            (Type::String, Type::String) => Some(Shape::Text),
            _ => None,
        }
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
        self.call_shaped(interface, func, Args::Vals(params, results), caller)
            .await
            .map(|_| ())
    }

    /// [`call_export`](Self::call_export) with typed arguments for the shapes [`Args`] has.
    pub(crate) async fn call_shaped(
        self: &Arc<Self>,
        interface: &str,
        func: &str,
        args: Args<'_>,
        caller: Option<&opentelemetry::Context>,
    ) -> Result<Returned, InvokeError> {
        let span = caller.and_then(|parent| {
            trace::invocation(
                Some(parent),
                &self.workload,
                &self.name,
                format!("{interface}.{func}"),
                SpanKind::Server,
            )
        });
        let called = self.call_traced(interface, func, args, span.as_ref()).await;
        if let Some(span) = span {
            span.end(called.as_ref().err().map(InvokeError::short_reason));
        }
        called
    }

    async fn call_traced(
        self: &Arc<Self>,
        interface: &str,
        func: &str,
        args: Args<'_>,
        span: Option<&trace::Span>,
    ) -> Result<Returned, InvokeError> {
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
                match args {
                    Args::Vals(params, results) => {
                        f.call_async(&mut store, params, results).await?;
                        Ok(Returned::Vals)
                    }
                    Args::Bytes(bytes) => {
                        call_typed(f, &mut store, bytes).await.map(Returned::Bytes)
                    }
                    Args::Text(text) => call_typed(f, &mut store, text).await.map(Returned::Text),
                }
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
/// Functions of the shapes [`Args`] carries typed are defined typed.
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
        let target = Arc::new(Target {
            callee: Arc::clone(callee),
            interface: export.to_string(),
            func: name.to_string(),
        });
        match Shape::of(&func) {
            Some(Shape::Bytes) => link_typed(&mut inst, name, target, Args::Bytes, |r| match r {
                Returned::Bytes(out) => Some(out),
                _ => None,
            })?,
            Some(Shape::Text) => link_typed(&mut inst, name, target, Args::Text, |r| match r {
                Returned::Text(out) => Some(out),
                _ => None,
            })?,
            None => {
                inst.func_new_async(name, move |store, _ty, params, results| {
                    let (target, span) = (Arc::clone(&target), target.span(store.data()));
                    Box::new(async move {
                        match target.call(span, Args::Vals(params, results)).await {
                            Ok(_) => Ok(()),
                            Err(e) if returns_string_error => {
                                if let Some(slot) = results.first_mut() {
                                    *slot = Val::Result(Err(Some(Box::new(Val::String(
                                        e.short_reason(),
                                    )))));
                                }
                                Ok(())
                            }
                            Err(e) => Err(target.failed(&e.short_reason())),
                        }
                    })
                })?;
            }
        }
    }
    Ok(())
}

/// Calls `f`, of the shape `func(V) -> V`, typed.
async fn call_typed<V>(
    f: wasmtime::component::Func,
    store: &mut wasmtime::Store<InvocationState>,
    value: V,
) -> wasmtime::Result<V>
where
    V: ComponentType + Lift + Lower + Send + Sync + 'static,
{
    let f = f.typed::<(V,), (V,)>(&*store)?;
    let (out,) = f.call_async(store, (value,)).await?;
    Ok(out)
}

/// Defines `name`, of the shape `func(V) -> V`, typed: its argument becomes `args(value)`
/// and the callee's result comes back through `returned`.
fn link_typed<V>(
    inst: &mut LinkerInstance<'_, InvocationState>,
    name: &str,
    target: Arc<Target>,
    args: fn(V) -> Args<'static>,
    returned: fn(Returned) -> Option<V>,
) -> wasmtime::Result<()>
where
    V: ComponentType + Lift + Lower + Send + Sync + 'static,
{
    inst.func_wrap_async(name, move |store, (value,): (V,)| {
        let (target, span) = (Arc::clone(&target), target.span(store.data()));
        Box::new(async move {
            match target.call(span, args(value)).await {
                Ok(out) => returned(out)
                    .map(|out| (out,))
                    .ok_or_else(|| target.failed("returned another shape")),
                Err(e) => Err(target.failed(&e.short_reason())),
            }
        })
    })
}

/// Where one linked function's calls go.
struct Target {
    callee: Arc<Callee>,
    interface: String,
    func: String,
}

impl Target {
    /// The caller's span of this call, if the caller is traced.
    fn span(&self, caller: &InvocationState) -> Option<trace::Span> {
        caller
            .trace()
            .and_then(|caller| trace::call(caller, &self.interface, &self.func))
    }

    /// Calls the callee's current version, ending `span` with the outcome.
    async fn call(
        &self,
        span: Option<trace::Span>,
        args: Args<'_>,
    ) -> Result<Returned, InvokeError> {
        let called = self
            .callee
            .get()
            .call_shaped(
                &self.interface,
                &self.func,
                args,
                span.as_ref().map(trace::Span::context),
            )
            .await;
        if let Some(span) = span {
            span.end(called.as_ref().err().map(InvokeError::short_reason));
        }
        called
    }

    /// The trap the caller gets when the call failed.
    fn failed(&self, reason: &str) -> wasmtime::Error {
        wasmtime::Error::msg(format!(
            "call to `{}.{}` failed: {reason}",
            self.interface, self.func
        ))
    }
}
