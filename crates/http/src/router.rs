//! Routing: `Host` (port ignored, case-insensitive) then the longest path prefix, matched on
//! segment boundaries. Routes naming a host are tried before routes for any host.

use arc_swap::ArcSwap;
use hearth_manifest::{RouteKey, bare_host, prefix_matches};
use hearth_runtime::{ComponentRuntime, RunningWorkload};
use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

/// What the host serves right now: the running workloads and their routing table. A reload
/// (`hearth dev`) swaps in a new set as a whole; requests in flight keep the components they
/// were routed to, so nothing they use goes away under them.
pub struct Deployed {
    current: ArcSwap<Snapshot>,
}

/// One consistent set of workloads and the routes built from them.
pub struct Snapshot {
    pub workloads: Vec<Arc<RunningWorkload>>,
    pub router: Router,
}

impl Deployed {
    pub fn new(workloads: Vec<Arc<RunningWorkload>>) -> Self {
        Self {
            current: ArcSwap::from_pointee(Snapshot::new(workloads)),
        }
    }

    /// The set being served now.
    pub fn load(&self) -> Arc<Snapshot> {
        self.current.load_full()
    }

    /// Serves `workloads` from now on; returns the set it replaces.
    pub fn replace(&self, workloads: Vec<Arc<RunningWorkload>>) -> Arc<Snapshot> {
        self.current.swap(Arc::new(Snapshot::new(workloads)))
    }

    /// The component serving `path` on `host`, as of now.
    pub fn lookup(&self, host: Option<&str>, path: &str) -> Option<Arc<ComponentRuntime>> {
        self.current.load().router.lookup(host, path).cloned()
    }
}

impl Snapshot {
    fn new(workloads: Vec<Arc<RunningWorkload>>) -> Self {
        Self {
            router: Router::new(&workloads),
            workloads,
        }
    }
}

/// The routing table of a set of running workloads. Immutable: a new table replaces the old.
#[derive(Default)]
pub struct Router {
    by_host: HashMap<String, Vec<Route>>,
    any_host: Vec<Route>,
}

/// One path prefix and what serves it: one component, or the same component of several
/// replicas of one deployment, taken in turn.
struct Route {
    prefix: String,
    targets: Vec<Arc<ComponentRuntime>>,
    next: AtomicUsize,
}

impl Route {
    fn target(&self) -> &Arc<ComponentRuntime> {
        match self.targets.as_slice() {
            [one] => one,
            many => &many[self.next.fetch_add(1, Ordering::Relaxed) % many.len()],
        }
    }
}

impl Router {
    /// Builds the table from the HTTP-routed components of `workloads`.
    pub fn new(workloads: &[Arc<RunningWorkload>]) -> Self {
        let mut router = Router::default();
        for w in workloads {
            for c in &w.components {
                let Some(route) = c.route() else { continue };
                let key = RouteKey::new(route.host.as_deref(), &route.path);
                let routes = match key.host {
                    Some(host) => router.by_host.entry(host).or_default(),
                    None => &mut router.any_host,
                };
                // The lifecycle lets only replicas of one deployment share a route.
                match routes.iter_mut().find(|r| r.prefix == key.path) {
                    Some(shared) => shared.targets.push(Arc::clone(c)),
                    None => routes.push(Route {
                        prefix: key.path,
                        targets: vec![Arc::clone(c)],
                        next: AtomicUsize::new(0),
                    }),
                }
            }
        }
        let longest_first = |a: &Route, b: &Route| b.prefix.len().cmp(&a.prefix.len());
        router.any_host.sort_by(longest_first);
        for routes in router.by_host.values_mut() {
            routes.sort_by(longest_first);
        }
        router
    }

    /// The component serving `path` on `host` (a `Host` header value, port allowed).
    pub fn lookup(&self, host: Option<&str>, path: &str) -> Option<&Arc<ComponentRuntime>> {
        if let Some(host) = host.map(bare_host)
            && let Some(routes) = self.by_host.get(host.as_ref())
            && let Some(hit) = longest(routes, path)
        {
            return Some(hit);
        }
        longest(&self.any_host, path)
    }

    /// Whether any route exists at all.
    pub fn is_empty(&self) -> bool {
        self.any_host.is_empty() && self.by_host.is_empty()
    }
}

fn longest<'a>(routes: &'a [Route], path: &str) -> Option<&'a Arc<ComponentRuntime>> {
    routes
        .iter()
        .find(|r| prefix_matches(&r.prefix, path))
        .map(Route::target)
}
