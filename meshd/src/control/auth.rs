//! Who may change the mesh: the caller's credentials come from the kernel (SO_PEERCRED), so
//! they cannot be forged. Allowed: root, meshd's own user, and members of the socket's group.

use nix::sys::socket::{getsockopt, sockopt::PeerCredentials};
use nix::unistd::{Gid, Group, Uid, User};

/// The caller of one connection, as the kernel reports it.
#[derive(Debug, Clone, Copy)]
pub struct Caller {
    /// User id.
    pub uid: u32,
    /// Primary group id.
    pub gid: u32,
    /// Process id.
    pub pid: i32,
}

/// Reads the peer credentials of a connected Unix socket.
pub fn caller(stream: &tokio::net::UnixStream) -> std::io::Result<Caller> {
    let cred = getsockopt(stream, PeerCredentials).map_err(std::io::Error::from)?;
    Ok(Caller {
        uid: cred.uid(),
        gid: cred.gid(),
        pid: cred.pid(),
    })
}

/// The rule for mutating calls.
#[derive(Debug, Clone)]
pub struct Policy {
    /// meshd's own user.
    pub own_uid: u32,
    /// The socket's group.
    pub group: u32,
    /// The socket path, for messages.
    pub socket: std::path::PathBuf,
}

impl Policy {
    /// `Ok` when `caller` may change the mesh; otherwise a message saying who was refused and
    /// why.
    pub fn check(&self, caller: &Caller) -> Result<(), String> {
        if caller.uid == 0 || caller.uid == self.own_uid || caller.gid == self.group {
            return Ok(());
        }
        let user = User::from_uid(Uid::from_raw(caller.uid)).ok().flatten();
        let group = Group::from_gid(Gid::from_raw(self.group)).ok().flatten();
        if let (Some(user), Some(group)) = (&user, &group) {
            if user.gid.as_raw() == self.group || group.mem.contains(&user.name) {
                return Ok(());
            }
        }
        let who = match &user {
            Some(u) => format!("user {} (uid {})", u.name, caller.uid),
            None => format!("uid {}", caller.uid),
        };
        let own = User::from_uid(Uid::from_raw(self.own_uid))
            .ok()
            .flatten()
            .map(|u| u.name)
            .unwrap_or_else(|| format!("uid {}", self.own_uid));
        let group_name = group
            .map(|g| g.name)
            .unwrap_or_else(|| format!("gid {}", self.group));
        Err(format!(
            "{who} may not change the mesh: only root, meshd's user ({own}) and members of the \
             socket's group \"{group_name}\" may; add the user to that group (or meshd's \
             --socket-group) or run as root"
        ))
    }
}
