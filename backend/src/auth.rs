//! Who may talk to this daemon, decided from the peer's kernel-verified credentials
//! (SO_PEERCRED) on every connection, before any frame is read.
//!
//! System mode admits root and members of the `berth` group; user mode admits only the uid the
//! daemon runs as. The socket itself is world-connectable on purpose: a refused peer gets a
//! frame that says why and what to do, instead of a bare "permission denied".

use nix::unistd::{Gid, Group, Uid, User, getgrouplist};

/// The peer on the other end of a connection, with the groups its user belongs to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Peer {
    pub uid: u32,
    pub gid: u32,
    pub pid: Option<i32>,
    /// The user's primary and supplementary groups.
    pub groups: Vec<u32>,
    pub user_name: Option<String>,
}

impl Peer {
    /// Complete kernel-reported credentials with the user's group list from the user database.
    pub fn from_credentials(uid: u32, gid: u32, pid: Option<i32>) -> Peer {
        let user = User::from_uid(Uid::from_raw(uid)).ok().flatten();
        let mut groups = vec![gid];
        if let Some(user) = &user
            && let Ok(name) = std::ffi::CString::new(user.name.as_str())
            && let Ok(list) = getgrouplist(&name, Gid::from_raw(gid))
        {
            groups.extend(list.into_iter().map(Gid::as_raw));
        }
        groups.sort_unstable();
        groups.dedup();
        Peer {
            uid,
            gid,
            pid,
            groups,
            user_name: user.map(|u| u.name),
        }
    }

    fn describe(&self) -> String {
        match &self.user_name {
            Some(name) => format!("user {name} (uid {})", self.uid),
            None => format!("uid {}", self.uid),
        }
    }
}

/// Who is admitted.
#[derive(Debug, Clone)]
pub enum Policy {
    /// Root, and members of the named group (`berth` unless configured otherwise).
    System { group: String },
    /// Only this uid.
    User { uid: u32 },
}

impl Policy {
    /// Admit the peer, or say why not and what would change it.
    pub fn admit(&self, peer: &Peer) -> Result<(), String> {
        match self {
            Policy::System { group } => {
                if peer.uid == 0 {
                    return Ok(());
                }
                let Some(gid) = Group::from_name(group)
                    .ok()
                    .flatten()
                    .map(|g| g.gid.as_raw())
                else {
                    return Err(format!(
                        "{} may not use this berthd: it admits root and members of group `{group}`, \
                         and that group does not exist (create it with `groupadd {group}`)",
                        peer.describe()
                    ));
                };
                if peer.groups.contains(&gid) {
                    return Ok(());
                }
                let who = peer.user_name.clone().unwrap_or_else(|| "USER".into());
                Err(format!(
                    "{} may not use this berthd: it admits root and members of group `{group}` \
                     (add the user with `usermod -aG {group} {who}`, then log in again)",
                    peer.describe()
                ))
            }
            Policy::User { uid } if *uid == peer.uid => Ok(()),
            Policy::User { uid } => Err(format!(
                "{} may not use this berthd: it is the private daemon of uid {uid}; \
                 start your own with `berthd --user`",
                peer.describe()
            )),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn peer(uid: u32, groups: &[u32]) -> Peer {
        Peer {
            uid,
            gid: groups[0],
            pid: None,
            groups: groups.to_vec(),
            user_name: None,
        }
    }

    #[test]
    fn system_mode_admits_root_and_group_members_only() {
        let root_group = Policy::System {
            group: "root".into(),
        };
        assert!(root_group.admit(&peer(0, &[0])).is_ok());
        assert!(
            root_group.admit(&peer(1000, &[1000, 0])).is_ok(),
            "member of group root"
        );
        let err = root_group.admit(&peer(65534, &[65534])).unwrap_err();
        assert!(
            err.contains("uid 65534") && err.contains("usermod -aG root"),
            "{err}"
        );
    }

    #[test]
    fn a_missing_group_is_named() {
        let policy = Policy::System {
            group: "no-such-group-here".into(),
        };
        let err = policy.admit(&peer(1000, &[1000])).unwrap_err();
        assert!(err.contains("does not exist"), "{err}");
        assert!(policy.admit(&peer(0, &[0])).is_ok());
    }

    #[test]
    fn user_mode_admits_only_its_uid() {
        let policy = Policy::User { uid: 1000 };
        assert!(policy.admit(&peer(1000, &[1000])).is_ok());
        let err = policy.admit(&peer(0, &[0])).unwrap_err();
        assert!(err.contains("private daemon of uid 1000"), "{err}");
    }

    #[test]
    fn peer_groups_come_from_the_user_database() {
        let root = Peer::from_credentials(0, 0, None);
        assert_eq!(root.user_name.as_deref(), Some("root"));
        assert!(root.groups.contains(&0));
    }
}
