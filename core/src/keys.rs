//! The Redis key layout of SPEC §3, in one place.
//!
//! Every key that one atomic operation touches shares one cluster hash tag `{…}`. The
//! identifiers were checked by [`crate::ident`] before they get here, so none of them can
//! close the tag early. The in-memory store uses the same keys, so both stores hold the same
//! data under the same names.

/// Default key prefix.
pub const DEFAULT_PREFIX: &str = "sf";

/// Builds keys under one prefix.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeySpace {
    prefix: String,
}

impl KeySpace {
    /// A key space with `prefix` (checked like a service name by the store config).
    pub fn new(prefix: impl Into<String>) -> Self {
        KeySpace {
            prefix: prefix.into(),
        }
    }

    /// The prefix.
    pub fn prefix(&self) -> &str {
        &self.prefix
    }

    /// `P:{<ns>:lk:<uid>}<service>`: the link of (uid, service).
    pub fn link(&self, ns: &str, uid: &str, service: &str) -> String {
        format!("{}:{{{ns}:lk:{uid}}}{service}", self.prefix)
    }

    /// `P:{<ns>:lk:<uid>}`: the hash of a user's persistent links.
    pub fn user_links(&self, ns: &str, uid: &str) -> String {
        format!("{}:{{{ns}:lk:{uid}}}", self.prefix)
    }

    /// `P:{<ns>:state:<service>}`: the hash of a service's pod states.
    pub fn pod_states(&self, ns: &str, service: &str) -> String {
        format!("{}:{{{ns}:state:{service}}}", self.prefix)
    }

    /// `P:{<ns>:state:<service>}cordon`: the pods an operator cordoned (hash: pod → ms), in
    /// the state hash's slot so the publish script reads it atomically (SPEC §12).
    pub fn cordon(&self, ns: &str, service: &str) -> String {
        format!("{}:{{{ns}:state:{service}}}cordon", self.prefix)
    }

    /// `P:{<ns>:state:<service>}placed`: new users placed on each pod, as gateways report
    /// them (hash: pod → count; `HINCRBY` once a period per gateway, never per new user).
    pub fn placements(&self, ns: &str, service: &str) -> String {
        format!("{}:{{{ns}:state:{service}}}placed", self.prefix)
    }

    /// The `SCAN` pattern of every state hash of `ns` (not the cordon keys: `?` is not `}`).
    pub fn pod_states_pattern(&self, ns: &str) -> String {
        format!("{}:{{{ns}:state:*}}", self.prefix)
    }

    /// The service of a state-hash key of `ns`, if `key` is one.
    pub fn service_of_pod_states<'a>(&self, ns: &str, key: &'a str) -> Option<&'a str> {
        key.strip_prefix(self.prefix.as_str())?
            .strip_prefix(":{")?
            .strip_prefix(ns)?
            .strip_prefix(":state:")?
            .strip_suffix('}')
            .filter(|s| !s.contains('}'))
    }

    /// `P:{<ns>:workload:<service>}`: a service's workload state.
    pub fn workload(&self, ns: &str, service: &str) -> String {
        format!("{}:{{{ns}:workload:{service}}}", self.prefix)
    }

    /// `P:{<ns>:tag:<tag>}`: the service name of a tag.
    pub fn tag(&self, ns: &str, tag: &str) -> String {
        format!("{}:{{{ns}:tag:{tag}}}", self.prefix)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn layout_matches_spec() {
        let k = KeySpace::new("sf");
        assert_eq!(k.link("default", "u1", "room"), "sf:{default:lk:u1}room");
        assert_eq!(k.user_links("default", "u1"), "sf:{default:lk:u1}");
        assert_eq!(k.pod_states("default", "room"), "sf:{default:state:room}");
        assert_eq!(k.workload("default", "room"), "sf:{default:workload:room}");
        assert_eq!(k.tag("default", "t"), "sf:{default:tag:t}");
        assert_eq!(k.cordon("default", "room"), "sf:{default:state:room}cordon");
        assert_eq!(
            k.placements("default", "room"),
            "sf:{default:state:room}placed"
        );
        assert_eq!(
            k.service_of_pod_states("default", "sf:{default:state:room}"),
            Some("room")
        );
        assert_eq!(
            k.service_of_pod_states("default", "sf:{default:state:room}cordon"),
            None
        );
        assert_eq!(
            k.service_of_pod_states("default", "sf:{other:state:room}"),
            None
        );
    }
}
