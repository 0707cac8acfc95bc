//! `wasi:sockets/ip-name-lookup`: `localhost` (and `*.localhost`) resolve in-process to the
//! virtual loopback, IP literals to themselves, and other names through the host resolver,
//! but only names the egress policy allows. Addresses a lookup returns that no policy can open
//! (loopback, link-local, metadata) are dropped; the rest are remembered in the store's
//! [`NetCtx`](crate::NetCtx) so `connect` can allow them for the name's ports.

use crate::addr::ip_from_std;
use crate::bindings::sockets::ip_name_lookup;
use crate::bindings::sockets::network::IpAddress;
use crate::bindings::{ErrorCode, SocketResult};
use crate::ctx::{NetCtxView, NetworkResource};
use crate::policy::{denied_for_names, normalize_name};
use std::collections::VecDeque;
use std::future::Future;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll, Waker};
use tokio::task::JoinHandle;
use wasmtime::component::Resource;
use wasmtime_wasi::p2::{DynPollable, Pollable};

/// The `resolve-address-stream` resource.
pub struct ResolveAddressStream {
    state: Lookup,
}

enum Lookup {
    /// The host resolver is working on `name`.
    Pending {
        name: Arc<str>,
        task: JoinHandle<std::io::Result<Vec<IpAddr>>>,
    },
    /// The resolver answered; not yet filtered and remembered.
    Answered {
        name: Arc<str>,
        result: Result<Vec<IpAddr>, ErrorCode>,
    },
    /// Addresses still to hand out.
    Addresses(VecDeque<IpAddr>),
    Failed(ErrorCode),
}

impl ResolveAddressStream {
    fn poll_answer(&mut self, cx: &mut Context<'_>) -> Poll<()> {
        let Lookup::Pending { name, task } = &mut self.state else {
            return Poll::Ready(());
        };
        let result = match Pin::new(task).poll(cx) {
            Poll::Pending => return Poll::Pending,
            Poll::Ready(Ok(Ok(ips))) => Ok(ips),
            Poll::Ready(Ok(Err(err))) => {
                tracing::debug!(%name, %err, "name lookup failed");
                Err(ErrorCode::NameUnresolvable)
            }
            Poll::Ready(Err(_join)) => Err(ErrorCode::TemporaryResolverFailure),
        };
        let name = name.clone();
        self.state = Lookup::Answered { name, result };
        Poll::Ready(())
    }
}

#[async_trait::async_trait]
impl Pollable for ResolveAddressStream {
    async fn ready(&mut self) {
        std::future::poll_fn(|cx| self.poll_answer(cx)).await
    }
}

/// What a name means before any resolver is asked.
enum Parsed {
    Addresses(Vec<IpAddr>),
    Name(String),
}

fn parse_name(name: &str) -> Result<Parsed, ErrorCode> {
    let bare = name
        .strip_prefix('[')
        .and_then(|n| n.strip_suffix(']'))
        .unwrap_or(name);
    if let Ok(ip) = bare.parse::<IpAddr>() {
        return Ok(Parsed::Addresses(vec![ip]));
    }
    let name = normalize_name(name).ok_or(ErrorCode::InvalidArgument)?;
    if crate::addr::is_loopback_name(&name) {
        return Ok(Parsed::Addresses(vec![
            IpAddr::V4(Ipv4Addr::LOCALHOST),
            IpAddr::V6(Ipv6Addr::LOCALHOST),
        ]));
    }
    Ok(Parsed::Name(name))
}

impl ip_name_lookup::Host for NetCtxView<'_> {
    fn resolve_addresses(
        &mut self,
        network: Resource<NetworkResource>,
        name: String,
    ) -> SocketResult<Resource<ResolveAddressStream>> {
        self.table.get(&network)?;
        let state = match parse_name(&name)? {
            Parsed::Addresses(ips) => Lookup::Addresses(ips.into()),
            Parsed::Name(name) => {
                if !self.ctx.policy().allows_name(&name, None) {
                    tracing::debug!(
                        workload = self.ctx.network().workload(),
                        name,
                        "name lookup denied by egress policy"
                    );
                    return Err(ErrorCode::PermanentResolverFailure.into());
                }
                let Ok(handle) = tokio::runtime::Handle::try_current() else {
                    return Err(ErrorCode::PermanentResolverFailure.into());
                };
                let query = name.clone();
                let task = handle.spawn(async move {
                    let addrs = tokio::net::lookup_host((query.as_str(), 0)).await?;
                    Ok(addrs.map(|a| a.ip().to_canonical()).collect())
                });
                Lookup::Pending {
                    name: Arc::from(name),
                    task,
                }
            }
        };
        Ok(self.table.push(ResolveAddressStream { state })?)
    }
}

impl ip_name_lookup::HostResolveAddressStream for NetCtxView<'_> {
    fn resolve_next_address(
        &mut self,
        this: Resource<ResolveAddressStream>,
    ) -> SocketResult<Option<IpAddress>> {
        let stream = self.table.get_mut(&this)?;
        if stream
            .poll_answer(&mut Context::from_waker(Waker::noop()))
            .is_pending()
        {
            return Err(ErrorCode::WouldBlock.into());
        }
        let state = std::mem::replace(&mut stream.state, Lookup::Failed(ErrorCode::Unknown));
        stream.state = match state {
            Lookup::Answered { name, result } => match result {
                Ok(mut ips) => {
                    ips.retain(|ip| !denied_for_names(*ip));
                    ips.dedup();
                    if ips.is_empty() {
                        Lookup::Failed(ErrorCode::NameUnresolvable)
                    } else {
                        self.ctx.remember_lookup(&name, &ips);
                        Lookup::Addresses(ips.into())
                    }
                }
                Err(code) => Lookup::Failed(code),
            },
            other => other,
        };
        match &mut stream.state {
            Lookup::Addresses(ips) => Ok(ips.pop_front().map(ip_from_std)),
            Lookup::Failed(code) => Err((*code).into()),
            Lookup::Pending { .. } | Lookup::Answered { .. } => Err(ErrorCode::WouldBlock.into()),
        }
    }

    fn subscribe(
        &mut self,
        this: Resource<ResolveAddressStream>,
    ) -> wasmtime::Result<Resource<DynPollable>> {
        wasmtime_wasi::p2::subscribe(self.table, this)
    }

    fn drop(&mut self, this: Resource<ResolveAddressStream>) -> wasmtime::Result<()> {
        let stream = self.table.delete(this)?;
        if let Lookup::Pending { task, .. } = &stream.state {
            task.abort();
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_before_the_resolver() {
        let ips = |n: &str| match parse_name(n) {
            Ok(Parsed::Addresses(ips)) => ips,
            _ => panic!("{n}"),
        };
        assert_eq!(
            ips("localhost"),
            vec![
                IpAddr::V4(Ipv4Addr::LOCALHOST),
                IpAddr::V6(Ipv6Addr::LOCALHOST)
            ]
        );
        assert_eq!(ips("LocalHost."), ips("localhost"));
        assert_eq!(ips("cache.localhost").len(), 2);
        assert_eq!(ips("10.0.0.1"), vec!["10.0.0.1".parse::<IpAddr>().unwrap()]);
        assert_eq!(ips("[::1]"), vec![IpAddr::V6(Ipv6Addr::LOCALHOST)]);
        assert_eq!(
            ips("2001:db8::1"),
            vec!["2001:db8::1".parse::<IpAddr>().unwrap()]
        );
        assert!(matches!(parse_name("Example.COM"), Ok(Parsed::Name(n)) if n == "example.com"));
        assert!(matches!(parse_name(""), Err(ErrorCode::InvalidArgument)));
        assert!(matches!(parse_name("a b"), Err(ErrorCode::InvalidArgument)));
    }
}
