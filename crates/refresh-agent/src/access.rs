//! Who may read a profile's token over the socket: the caller's uid and gid, as the kernel reports them for the
//! socket's peer (`SO_PEERCRED`), checked against the profile's readers. A caller cannot claim an identity: it is
//! the one of the process that connected.

use serde::Deserialize;

/// The identity of the process at the other end of a unix socket connection.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Peer {
    pub uid: u32,
    pub gid: u32,
    pub pid: Option<i32>,
}

impl
    axum::extract::connect_info::Connected<
        axum::serve::IncomingStream<'_, tokio::net::UnixListener>,
    > for Peer
{
    fn connect_info(stream: axum::serve::IncomingStream<'_, tokio::net::UnixListener>) -> Self {
        match stream.io().peer_cred() {
            Ok(credentials) => Peer {
                uid: credentials.uid(),
                gid: credentials.gid(),
                pid: credentials.pid(),
            },
            // Unknown: an identity that no profile lists (root's would be the worst guess).
            Err(_) => Peer {
                uid: u32::MAX,
                gid: u32::MAX,
                pid: None,
            },
        }
    }
}

/// The callers a profile's token is served to (`[profiles.NAME.readers]`): these uids, and any member of these
/// gids (the caller's primary group). The agent's own uid always may; nobody else unless listed.
#[derive(Clone, Debug, Default, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Readers {
    #[serde(default)]
    pub uids: Vec<u32>,
    #[serde(default)]
    pub gids: Vec<u32>,
}

impl Readers {
    /// Whether `peer` may read, for an agent running as `agent_uid`.
    pub fn allow(&self, peer: &Peer, agent_uid: u32) -> bool {
        peer.uid == agent_uid || self.uids.contains(&peer.uid) || self.gids.contains(&peer.gid)
    }
}

/// The uid this process runs as.
pub fn own_uid() -> u32 {
    // SAFETY: getuid has no preconditions and cannot fail.
    unsafe { libc::getuid() }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn peer(uid: u32, gid: u32) -> Peer {
        Peer {
            uid,
            gid,
            pid: None,
        }
    }

    #[test]
    fn the_agents_own_uid_and_listed_uids_and_gids_may_read_nobody_else() {
        let readers = Readers {
            uids: vec![1001],
            gids: vec![2000],
        };
        assert!(readers.allow(&peer(500, 500), 500), "the agent's own uid");
        assert!(readers.allow(&peer(1001, 1), 500));
        assert!(readers.allow(&peer(7, 2000), 500));
        assert!(!readers.allow(&peer(7, 7), 500));
        assert!(!readers.allow(&peer(0, 0), 500), "root is not implied");
        assert!(!Readers::default().allow(&peer(1001, 2000), 500));
    }
}
