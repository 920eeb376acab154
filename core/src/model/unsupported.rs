//! Settings refused until meshd implements them: security settings that meshd would otherwise
//! ignore in silence. A listener with `tls.mode: STRICT` would serve plain text to any client,
//! and a client policy that enforces TLS would send plain text to the backend, so both are
//! refused with "not supported yet" and what is allowed today.
//!
//! The check runs inside [`validate_resource`](super::validate_resource), so every path refuses
//! them with the same message: `meshctl validate` offline, the control API's apply, meshd's
//! start and its directory watcher.

use super::common::{BackendDefaults, ClientPolicy, ListenerTls, ListenerTlsMode};
use super::node::Backend;
use super::resource::Resource;
use super::validate::{at, idx, Checker};

/// What a refused listener TLS mode is told.
const LISTENER_TLS_ALLOWED: &str =
    "allowed today: \"mode\": \"DISABLED\", or no tls (plain text, which is what meshd serves)";

/// What a refused client policy is told.
const CLIENT_TLS_ALLOWED: &str =
    "allowed today: \"enforce\": false, or no tls (plain text, which is what meshd sends)";

/// Pushes an error for every security setting meshd does not implement yet.
pub(crate) fn check(c: &mut Checker, resource: &Resource) {
    match resource {
        Resource::Istio(_) => {} // Istio's TLS settings: `istio::check_resource`.
        Resource::VirtualNode(vn) => {
            for (i, l) in vn.listeners().iter().enumerate() {
                if let Some(tls) = &l.tls {
                    listener_tls(c, &at(&idx("spec.listeners", i), "tls"), tls);
                }
            }
            if let Some(bd) = &vn.spec.backend_defaults {
                backend_defaults(c, bd);
            }
            for (i, b) in vn
                .spec
                .backends
                .as_deref()
                .unwrap_or(&[])
                .iter()
                .enumerate()
            {
                let Backend::VirtualService(b) = b;
                if let Some(cp) = &b.client_policy {
                    let p = at(&idx("spec.backends", i), "virtualService.clientPolicy");
                    client_policy(c, &p, cp);
                }
            }
        }
        Resource::VirtualGateway(vg) => {
            for (i, l) in vg.spec.listeners.iter().enumerate() {
                if let Some(tls) = &l.tls {
                    listener_tls(c, &at(&idx("spec.listeners", i), "tls"), tls);
                }
            }
            if let Some(bd) = &vg.spec.backend_defaults {
                backend_defaults(c, bd);
            }
        }
        Resource::Mesh(_)
        | Resource::GatewayRoute(_)
        | Resource::VirtualRouter(_)
        | Resource::Route(_)
        | Resource::VirtualService(_) => {}
    }
}

/// `STRICT` and `PERMISSIVE` promise TLS that meshd does not terminate.
fn listener_tls(c: &mut Checker, p: &str, tls: &ListenerTls) {
    if tls.mode == ListenerTlsMode::Disabled {
        return;
    }
    c.push(
        at(p, "mode"),
        format!(
            "TLS mode {} is not supported yet: meshd does not terminate TLS, so this listener \
             would serve plain text; {LISTENER_TLS_ALLOWED}",
            tls.mode
        ),
    );
}

fn backend_defaults(c: &mut Checker, bd: &BackendDefaults) {
    if let Some(cp) = &bd.client_policy {
        client_policy(c, "spec.backendDefaults.clientPolicy", cp);
    }
}

/// A client policy TLS that is enforced (App Mesh's default) promises TLS to the backend.
fn client_policy(c: &mut Checker, p: &str, cp: &ClientPolicy) {
    let Some(tls) = &cp.tls else { return };
    if !tls.enforce_or_default() {
        return;
    }
    let tp = at(p, "tls");
    let (path, why) = match tls.enforce {
        Some(_) => (at(&tp, "enforce"), "enforce is true"),
        None => (tp, "enforce defaults to true"),
    };
    c.push(
        path,
        format!(
            "TLS to backends is not supported yet ({why}): meshd would connect to the backend \
             in plain text; {CLIENT_TLS_ALLOWED}"
        ),
    );
}
