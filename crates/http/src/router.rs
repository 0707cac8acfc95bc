//! Routing: `Host` (port ignored, case-insensitive) then the longest path prefix, matched on
//! segment boundaries. Routes naming a host are tried before routes for any host.

use arc_swap::ArcSwap;
use hearth_manifest::{RouteKey, bare_host, prefix_matches};
use hearth_runtime::{ComponentRuntime, RunningWorkload};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

/// What the host serves right now: its routing table. A change (a workload applied or
/// deleted) swaps in a new table as a whole; requests in flight keep the components they were
/// routed to, so nothing they use goes away under them.
///
/// Tables are persistent maps: a change copies only the path from the root to the host it
/// touches, so applying one workload among 100,000 costs the same as among ten.
pub struct Deployed {
    current: ArcSwap<Router>,
    /// Held while a change is made, so that two changes never race each other's copy.
    writing: Mutex<()>,
}

impl Deployed {
    pub fn new(workloads: Vec<Arc<RunningWorkload>>) -> Self {
        Self {
            current: ArcSwap::from_pointee(Router::new(&workloads)),
            writing: Mutex::new(()),
        }
    }

    /// The table being served now.
    pub fn load(&self) -> Arc<Router> {
        self.current.load_full()
    }

    /// Serves `next` instead of `previous` (either may be absent: a new or a deleted
    /// workload); returns the table it replaces.
    pub fn change(
        &self,
        previous: Option<&Arc<RunningWorkload>>,
        next: Option<&Arc<RunningWorkload>>,
    ) -> Arc<Router> {
        let _writing = self
            .writing
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let mut router = Router::clone(&self.current.load());
        if let Some(previous) = previous {
            router.remove(previous);
        }
        if let Some(next) = next {
            router.add(next);
        }
        self.current.swap(Arc::new(router))
    }

    /// The component serving `path` on `host`, as of now.
    pub fn lookup(&self, host: Option<&str>, path: &str) -> Option<Arc<ComponentRuntime>> {
        self.current.load().lookup(host, path).cloned()
    }

    /// Whether any route's workload has a home worker (see [`Router::home_of`]).
    pub fn any_homed(&self) -> bool {
        self.current.load().homed > 0
    }

    /// The home worker of the workload serving `path` on `host`, as of now.
    pub fn home_of(&self, host: Option<&str>, path: &str) -> Option<usize> {
        self.current.load().home_of(host, path)
    }
}

/// The routing table of a set of running workloads. Immutable once served: a changed copy
/// replaces it (cloning is cheap, the maps are shared until written).
#[derive(Default, Clone)]
pub struct Router {
    by_host: imbl::HashMap<String, Routes>,
    any_host: Routes,
    /// Workloads in the table whose service has a home worker: none, and the ingress need
    /// not look.
    homed: usize,
}

/// One host's routes, longest prefix first.
type Routes = Arc<Vec<Arc<Route>>>;

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
            router.add(w);
        }
        router
    }

    /// Adds the routes of `workload`'s components.
    fn add(&mut self, workload: &RunningWorkload) {
        self.homed += usize::from(workload.home().is_some());
        for c in &workload.components {
            let Some(route) = c.route() else { continue };
            let key = RouteKey::new(route.host.as_deref(), &route.path);
            self.edit(key.host, |routes| {
                // The lifecycle lets only replicas of one deployment share a route.
                let (targets, next) = match routes.iter().position(|r| r.prefix == key.path) {
                    Some(i) => {
                        let shared = routes.remove(i);
                        let mut targets = shared.targets.clone();
                        targets.push(Arc::clone(c));
                        (targets, shared.next.load(Ordering::Relaxed))
                    }
                    None => (vec![Arc::clone(c)], 0),
                };
                let at = routes
                    .iter()
                    .position(|r| r.prefix.len() < key.path.len())
                    .unwrap_or(routes.len());
                routes.insert(
                    at,
                    Arc::new(Route {
                        prefix: key.path.clone(),
                        targets,
                        next: AtomicUsize::new(next),
                    }),
                );
            });
        }
    }

    /// Removes the routes of `workload`'s components (other replicas sharing a route stay).
    fn remove(&mut self, workload: &RunningWorkload) {
        // A version's home is fixed when it starts: the count it added is the count it takes.
        self.homed = self
            .homed
            .saturating_sub(usize::from(workload.home().is_some()));
        for c in &workload.components {
            let Some(route) = c.route() else { continue };
            let key = RouteKey::new(route.host.as_deref(), &route.path);
            self.edit(key.host, |routes| {
                let Some(i) = routes.iter().position(|r| r.prefix == key.path) else {
                    return;
                };
                let targets: Vec<_> = routes[i]
                    .targets
                    .iter()
                    .filter(|t| !Arc::ptr_eq(t, c))
                    .cloned()
                    .collect();
                if targets.is_empty() {
                    routes.remove(i);
                } else {
                    let next = routes[i].next.load(Ordering::Relaxed);
                    routes[i] = Arc::new(Route {
                        prefix: key.path.clone(),
                        targets,
                        next: AtomicUsize::new(next),
                    });
                }
            });
        }
    }

    /// Changes the route list of `host` (or of any host) through a copy of it.
    fn edit(&mut self, host: Option<String>, change: impl FnOnce(&mut Vec<Arc<Route>>)) {
        match host {
            None => change(Arc::make_mut(&mut self.any_host)),
            Some(host) => {
                let mut routes = self.by_host.remove(&host).unwrap_or_default();
                change(Arc::make_mut(&mut routes));
                if !routes.is_empty() {
                    self.by_host.insert(host, routes);
                }
            }
        }
    }

    /// The component serving `path` on `host` (a `Host` header value, port allowed).
    pub fn lookup(&self, host: Option<&str>, path: &str) -> Option<&Arc<ComponentRuntime>> {
        self.route(host, path).map(|r| r.target())
    }

    /// The home worker of the workload serving `path` on `host`, if it has one; the round
    /// robin over replicas is not advanced. Replicas sharing a route may live on different
    /// workers: the first with a home is taken.
    pub fn home_of(&self, host: Option<&str>, path: &str) -> Option<usize> {
        if self.homed == 0 {
            return None;
        }
        self.route(host, path)
            .and_then(|r| r.targets.iter().find_map(|t| t.home()))
    }

    /// The route serving `path` on `host`: the host's longest match, else any host's.
    fn route(&self, host: Option<&str>, path: &str) -> Option<&Arc<Route>> {
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

fn longest<'a>(routes: &'a [Arc<Route>], path: &str) -> Option<&'a Arc<Route>> {
    routes.iter().find(|r| prefix_matches(&r.prefix, path))
}
