//! Routing tables and request matching: gateway routes → virtual service → router routes →
//! weighted clusters, or Host-routed virtual hosts for egress.

use std::borrow::Cow;
use std::sync::Arc;
use std::time::Duration;

use http::request::Parts;
use regex::Regex;

use crate::fault::FaultPolicy;
use crate::retry::RetryPolicy;

/// How a route matches the path.
#[derive(Debug, Clone)]
pub enum PathMatch {
    /// Starts with this prefix (`/` matches everything).
    Prefix(String),
    /// Equals this path (query excluded).
    Exact(String),
    /// The whole path matches this regex.
    Regex(Regex),
}

/// How a header value is matched.
#[derive(Debug, Clone)]
pub enum HeaderMatchKind {
    /// Equal.
    Exact(String),
    /// Starts with.
    Prefix(String),
    /// Ends with.
    Suffix(String),
    /// The whole value matches.
    Regex(Regex),
    /// An integer in `[start, end)`.
    Range {
        /// Inclusive start.
        start: i64,
        /// Exclusive end.
        end: i64,
    },
    /// The header is present, whatever its value.
    Present,
}

/// One header condition of a route.
#[derive(Debug, Clone)]
pub struct HeaderMatch {
    /// Header name (lowercase).
    pub name: http::HeaderName,
    /// Match when the condition does *not* hold.
    pub invert: bool,
    /// The condition.
    pub kind: HeaderMatchKind,
}

/// How a gateway route matches the Host.
#[derive(Debug, Clone)]
pub enum HostMatch {
    /// Equal (case-insensitive, port ignored).
    Exact(String),
    /// Ends with (case-insensitive, port ignored).
    Suffix(String),
}

/// Every condition of a route; all must hold.
#[derive(Debug, Clone)]
pub struct HttpMatch {
    /// The path condition.
    pub path: PathMatch,
    /// The method, if one is required.
    pub method: Option<http::Method>,
    /// Header conditions.
    pub headers: Vec<HeaderMatch>,
    /// Host condition (gateway routes).
    pub hostname: Option<HostMatch>,
    /// Query parameters that must be present, with an exact value when given.
    pub query: Vec<(String, Option<String>)>,
}

/// A target cluster and its relative weight.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WeightedCluster {
    /// Cluster name.
    pub cluster: String,
    /// Relative weight (0 = never chosen unless all are 0).
    pub weight: u32,
}

/// A route of a virtual router (or the single route to a virtual-node provider).
#[derive(Debug, Clone)]
pub struct Route {
    /// `route/<name>` for logs.
    pub name: String,
    /// When it applies.
    pub matcher: HttpMatch,
    /// Where it sends requests.
    pub targets: Vec<WeightedCluster>,
    /// Its per-request timeout, when it sets one.
    pub timeout: Option<Duration>,
    /// Its stream idle timeout, when it sets one (replaces the listener's, as Envoy's route
    /// `idle_timeout` does).
    pub idle_timeout: Option<Duration>,
    /// Its retry policy (with the per-try timeout); `None` = never retried.
    pub retry: Option<RetryPolicy>,
    /// Faults it injects (Envoy's fault filter); `None` = none.
    pub fault: Option<FaultPolicy>,
}

/// A virtual service as a routing table: the Host names it answers and its routes in order.
#[derive(Debug, Clone)]
pub struct VirtualHost {
    /// The virtual service's name.
    pub name: String,
    /// Host values it answers (with and without port).
    pub domains: Vec<String>,
    /// Routes, first match wins.
    pub routes: Vec<Route>,
}

/// How a gateway route rewrites the path before the virtual service routes it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PathRewrite {
    /// Keep the path.
    Keep,
    /// Replace the matched prefix with this string (App Mesh's default is `/`).
    Prefix {
        /// The prefix the route matched.
        matched: String,
        /// Its replacement.
        with: String,
    },
    /// Replace the whole path.
    Exact(String),
}

/// A gateway route: match, then hand the (rewritten) request to a virtual service.
#[derive(Debug, Clone)]
pub struct GatewayRoute {
    /// `gatewayroute/<name>` for logs.
    pub name: String,
    /// When it applies.
    pub matcher: HttpMatch,
    /// The target virtual service (shared with every other use of it).
    pub target: Arc<VirtualHost>,
    /// Path rewrite.
    pub rewrite_path: PathRewrite,
    /// Host rewrite (App Mesh's default: the target virtual service's name).
    pub rewrite_host: Option<String>,
}

/// Where a listener sends requests.
#[derive(Debug, Clone)]
pub enum Routing {
    /// Everything to one cluster (a node's ingress listener → its local app).
    Cluster(String),
    /// Routed by Host to virtual services (a node's egress listener).
    Hosts(Vec<Arc<VirtualHost>>),
    /// Gateway routes in priority order.
    Gateway(Vec<GatewayRoute>),
}

/// What routing decided for one request.
#[derive(Debug, Clone, PartialEq)]
pub struct RouteAction<'a> {
    /// The chosen cluster.
    pub cluster: &'a str,
    /// A new path, when a gateway route rewrote it.
    pub path: Option<String>,
    /// A new Host, when a gateway route rewrote it.
    pub host: Option<&'a str>,
    /// The route's timeout, when it sets one.
    pub timeout: Option<Duration>,
    /// The route's stream idle timeout, when it sets one.
    pub idle_timeout: Option<Duration>,
    /// The route's retry policy and per-try timeout; `None` (a node's ingress listener) =
    /// never retried.
    pub retry: Option<RetryPolicy>,
    /// Every target of the route `cluster` was picked from (empty for a node's ingress
    /// listener), for [`pick_usable`].
    pub targets: &'a [WeightedCluster],
    /// The route's fault injection, when it sets one.
    pub fault: Option<&'a FaultPolicy>,
}

fn host_of(parts: &Parts) -> Option<&str> {
    parts
        .headers
        .get(http::header::HOST)
        .and_then(|h| h.to_str().ok())
        .or_else(|| parts.uri.authority().map(|a| a.as_str()))
}

fn strip_port(host: &str) -> &str {
    match host.rsplit_once(':') {
        Some((h, p)) if !p.is_empty() && p.bytes().all(|b| b.is_ascii_digit()) => h,
        _ => host,
    }
}

impl HeaderMatch {
    fn holds(&self, parts: &Parts) -> bool {
        let value = parts.headers.get(&self.name).and_then(|v| v.to_str().ok());
        let hit = match (&self.kind, value) {
            (_, None) => false,
            (HeaderMatchKind::Present, Some(_)) => true,
            (HeaderMatchKind::Exact(e), Some(v)) => v == e,
            (HeaderMatchKind::Prefix(p), Some(v)) => v.starts_with(p.as_str()),
            (HeaderMatchKind::Suffix(s), Some(v)) => v.ends_with(s.as_str()),
            (HeaderMatchKind::Regex(r), Some(v)) => r.is_match(v),
            (HeaderMatchKind::Range { start, end }, Some(v)) => v
                .trim()
                .parse::<i64>()
                .is_ok_and(|n| n >= *start && n < *end),
        };
        hit != self.invert
    }
}

impl HttpMatch {
    /// Whether the request (with `path` in place of its own) meets every condition.
    pub fn matches(&self, parts: &Parts, path: &str) -> bool {
        let path_ok = match &self.path {
            PathMatch::Prefix(p) => path.starts_with(p.as_str()),
            PathMatch::Exact(e) => path == e,
            PathMatch::Regex(r) => r.is_match(path),
        };
        if !path_ok {
            return false;
        }
        if let Some(m) = &self.method {
            if parts.method != *m {
                return false;
            }
        }
        if let Some(h) = &self.hostname {
            let Some(host) = host_of(parts).map(strip_port) else {
                return false;
            };
            let ok = match h {
                HostMatch::Exact(e) => host.eq_ignore_ascii_case(e),
                HostMatch::Suffix(s) => {
                    host.len() >= s.len() && host[host.len() - s.len()..].eq_ignore_ascii_case(s)
                }
            };
            if !ok {
                return false;
            }
        }
        if !self.query.is_empty() {
            let q = parts.uri.query().unwrap_or("");
            for (name, want) in &self.query {
                let found = q.split('&').any(|kv| {
                    let (k, v) = kv.split_once('=').unwrap_or((kv, ""));
                    k == name && want.as_deref().is_none_or(|w| w == v)
                });
                if !found {
                    return false;
                }
            }
        }
        self.headers.iter().all(|h| h.holds(parts))
    }
}

/// Picks one of the targets `usable` accepts, by weight (uniformly among them when their
/// weights are all 0); `None` when it accepts none. A weighted split uses it to send a request
/// that drew a target without a usable host (every host ejected or failing its health check,
/// or an Istio subset no endpoint matches) to the others instead, where Envoy would answer
/// 503 `UH` for the share of that target.
pub fn pick_usable(
    targets: &[WeightedCluster],
    usable: impl Fn(&str) -> bool,
) -> Option<&WeightedCluster> {
    let ok = |t: &&WeightedCluster| usable(&t.cluster);
    let total: u64 = targets.iter().filter(ok).map(|t| u64::from(t.weight)).sum();
    if total == 0 {
        let n = targets.iter().filter(ok).count();
        return targets.iter().filter(ok).nth(fastrand::usize(..n.max(1)));
    }
    let mut r = fastrand::u64(..total);
    for t in targets.iter().filter(ok) {
        let w = u64::from(t.weight);
        if r < w {
            return Some(t);
        }
        r -= w;
    }
    None
}

/// Picks one of `targets` by weight (uniformly among all when every weight is 0).
pub fn pick_weighted(targets: &[WeightedCluster]) -> Option<&WeightedCluster> {
    let total: u64 = targets.iter().map(|t| u64::from(t.weight)).sum();
    if total == 0 {
        return targets.get(fastrand::usize(..targets.len().max(1)));
    }
    let mut r = fastrand::u64(..total);
    for t in targets {
        let w = u64::from(t.weight);
        if r < w {
            return Some(t);
        }
        r -= w;
    }
    targets.last()
}

impl VirtualHost {
    fn route<'a>(&'a self, parts: &Parts, path: &str) -> Option<(&'a Route, &'a str)> {
        let route = self
            .routes
            .iter()
            .find(|r| r.matcher.matches(parts, path))?;
        let target = pick_weighted(&route.targets)?;
        Some((route, target.cluster.as_str()))
    }

    /// Whether a request with this `Host` (port optional) is routed by this virtual host.
    pub fn answers(&self, host: &str) -> bool {
        self.domains.iter().any(|d| d.eq_ignore_ascii_case(host))
            || self
                .domains
                .iter()
                .any(|d| d.eq_ignore_ascii_case(strip_port(host)))
    }
}

impl Routing {
    /// The virtual services of a Host-routed (egress) listener; none for other listeners.
    pub fn virtual_hosts(&self) -> &[Arc<VirtualHost>] {
        match self {
            Routing::Hosts(hosts) => hosts,
            _ => &[],
        }
    }

    /// The clusters a virtual service's routes may send to.
    pub fn clusters_of(vh: &VirtualHost) -> impl Iterator<Item = &str> {
        vh.routes
            .iter()
            .flat_map(|r| r.targets.iter().map(|t| t.cluster.as_str()))
    }

    /// Routes one request; `None` means no route (404, flag NR).
    pub fn route<'a>(&'a self, parts: &Parts) -> Option<RouteAction<'a>> {
        let path = parts.uri.path();
        match self {
            Routing::Cluster(c) => Some(RouteAction {
                cluster: c,
                path: None,
                host: None,
                timeout: None,
                idle_timeout: None,
                retry: None,
                targets: &[],
                fault: None,
            }),
            Routing::Hosts(hosts) => {
                let host = host_of(parts)?;
                let vh = hosts.iter().find(|v| v.answers(host))?;
                let (route, cluster) = vh.route(parts, path)?;
                Some(RouteAction {
                    cluster,
                    path: None,
                    host: None,
                    timeout: route.timeout,
                    idle_timeout: route.idle_timeout,
                    retry: route.retry,
                    targets: &route.targets,
                    fault: route.fault.as_ref(),
                })
            }
            Routing::Gateway(routes) => {
                let gr = routes.iter().find(|g| g.matcher.matches(parts, path))?;
                let new_path: Cow<'_, str> = match &gr.rewrite_path {
                    PathRewrite::Keep => Cow::Borrowed(path),
                    PathRewrite::Prefix { matched, with } => {
                        let rest = path.strip_prefix(matched.as_str()).unwrap_or(path);
                        let mut p = with.clone();
                        if p.ends_with('/') && rest.starts_with('/') {
                            p.push_str(&rest[1..]);
                        } else {
                            p.push_str(rest);
                        }
                        Cow::Owned(p)
                    }
                    PathRewrite::Exact(e) => Cow::Borrowed(e.as_str()),
                };
                let (route, cluster) = gr.target.route(parts, &new_path)?;
                let path = match new_path {
                    Cow::Owned(p) => Some(p),
                    Cow::Borrowed(p) if p != path => Some(p.to_owned()),
                    Cow::Borrowed(_) => None,
                };
                Some(RouteAction {
                    cluster,
                    path,
                    host: gr.rewrite_host.as_deref(),
                    timeout: route.timeout,
                    idle_timeout: route.idle_timeout,
                    retry: route.retry,
                    targets: &route.targets,
                    fault: route.fault.as_ref(),
                })
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parts(method: &str, uri: &str, headers: &[(&str, &str)]) -> Parts {
        let mut b = http::Request::builder().method(method).uri(uri);
        for (k, v) in headers {
            b = b.header(*k, *v);
        }
        b.body(()).expect("request").into_parts().0
    }

    fn prefix(p: &str) -> HttpMatch {
        HttpMatch {
            path: PathMatch::Prefix(p.into()),
            method: None,
            headers: vec![],
            hostname: None,
            query: vec![],
        }
    }

    fn vh(routes: Vec<(&str, &str)>) -> VirtualHost {
        VirtualHost {
            name: "color-paths".into(),
            domains: vec!["color-paths".into(), "color-paths:8080".into()],
            routes: routes
                .into_iter()
                .map(|(p, c)| Route {
                    name: format!("route{p}"),
                    matcher: prefix(p),
                    targets: vec![WeightedCluster {
                        cluster: c.into(),
                        weight: 1,
                    }],
                    timeout: None,
                    idle_timeout: None,
                    retry: None,
                    fault: None,
                })
                .collect(),
        }
    }

    #[test]
    fn an_egress_listener_lists_its_virtual_services_and_their_clusters() {
        let r = Routing::Hosts(vec![Arc::new(vh(vec![("/a", "a"), ("/b", "b")]))]);
        let names: Vec<&str> = r.virtual_hosts().iter().map(|v| v.name.as_str()).collect();
        assert_eq!(names, ["color-paths"]);
        let clusters: Vec<&str> = Routing::clusters_of(&r.virtual_hosts()[0]).collect();
        assert_eq!(clusters, ["a", "b"]);
        assert!(Routing::Cluster("c".into()).virtual_hosts().is_empty());
    }

    #[test]
    fn gateway_routes_by_prefix_and_keeps_the_path_when_rewrite_is_disabled() {
        let target = vh(vec![("/paths/red", "red"), ("/paths/green", "green")]);
        let routing = Routing::Gateway(vec![GatewayRoute {
            name: "green".into(),
            matcher: prefix("/paths/green"),
            target: target.into(),
            rewrite_path: PathRewrite::Keep,
            rewrite_host: Some("color-paths".into()),
        }]);
        let p = parts("GET", "/paths/green?x=1", &[("host", "gw")]);
        let a = routing.route(&p).expect("routed");
        assert_eq!(a.cluster, "green");
        assert_eq!(a.path, None);
        assert_eq!(a.host, Some("color-paths"));
        assert!(routing.route(&parts("GET", "/other", &[])).is_none());
    }

    #[test]
    fn default_prefix_rewrite_replaces_the_matched_prefix() {
        let routing = Routing::Gateway(vec![GatewayRoute {
            name: "r".into(),
            matcher: prefix("/color/"),
            target: vh(vec![("/", "c")]).into(),
            rewrite_path: PathRewrite::Prefix {
                matched: "/color/".into(),
                with: "/".into(),
            },
            rewrite_host: None,
        }]);
        let a = routing
            .route(&parts("GET", "/color/blue", &[]))
            .expect("routed");
        assert_eq!(a.path.as_deref(), Some("/blue"));
    }

    #[test]
    fn egress_routes_by_host_with_or_without_port() {
        let routing = Routing::Hosts(vec![vh(vec![("/", "green")]).into()]);
        for host in ["color-paths", "color-paths:8080", "COLOR-PATHS:9"] {
            let a = routing.route(&parts("GET", "/", &[("host", host)]));
            assert_eq!(a.map(|a| a.cluster), Some("green"), "{host}");
        }
        assert!(routing
            .route(&parts("GET", "/", &[("host", "undeclared")]))
            .is_none());
    }

    #[test]
    fn header_method_and_query_conditions() {
        let mut m = prefix("/");
        m.method = Some(http::Method::POST);
        m.headers.push(HeaderMatch {
            name: http::HeaderName::from_static("x-canary"),
            invert: false,
            kind: HeaderMatchKind::Exact("true".into()),
        });
        m.query.push(("v".into(), Some("2".into())));
        let yes = parts("POST", "/a?v=2", &[("x-canary", "true")]);
        assert!(m.matches(&yes, "/a"));
        assert!(!m.matches(&parts("GET", "/a?v=2", &[("x-canary", "true")]), "/a"));
        assert!(!m.matches(&parts("POST", "/a?v=3", &[("x-canary", "true")]), "/a"));
        m.headers[0].invert = true;
        assert!(!m.matches(&yes, "/a"));
        let range = HeaderMatch {
            name: http::HeaderName::from_static("x-n"),
            invert: false,
            kind: HeaderMatchKind::Range { start: 1, end: 5 },
        };
        assert!(range.holds(&parts("GET", "/", &[("x-n", "4")])));
        assert!(!range.holds(&parts("GET", "/", &[("x-n", "5")])));
    }

    #[test]
    fn weights_pick_only_positive_targets() {
        let t = vec![
            WeightedCluster {
                cluster: "a".into(),
                weight: 0,
            },
            WeightedCluster {
                cluster: "b".into(),
                weight: 3,
            },
        ];
        for _ in 0..100 {
            assert_eq!(pick_weighted(&t).map(|w| w.cluster.as_str()), Some("b"));
        }
    }

    #[test]
    fn pick_usable_skips_targets_without_usable_hosts_and_keeps_the_weights_of_the_rest() {
        let t = |c: &str, w: u32| WeightedCluster {
            cluster: c.into(),
            weight: w,
        };
        let targets = [t("a", 50), t("b", 50), t("c", 0)];
        for _ in 0..200 {
            let got = pick_usable(&targets, |c| c != "b").map(|t| t.cluster.as_str());
            assert_eq!(got, Some("a"));
        }
        assert!(pick_usable(&targets, |_| false).is_none());
        // Only 0-weight targets left: uniformly among them.
        assert_eq!(
            pick_usable(&targets, |c| c == "c").map(|t| t.cluster.as_str()),
            Some("c")
        );
    }
}
