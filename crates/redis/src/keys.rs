//! The key layout, in one place (docs/deployment.md lists it with each key's expiry).
//!
//! Every key of a channel — its record, its presence, its held messages — and its namespace's
//! name index carry the hash tag of the channel's namespace, `{ACCOUNT:REGION}`. One tag per
//! namespace is what lets the create, the compare-and-swap updates and the channel limit be one
//! atomic script on Redis Cluster too (a script may only touch keys of one slot); namespaces
//! spread over the cluster's slots.
//!
//! | key | type | holds | expiry |
//! |---|---|---|---|
//! | `P:{A:R}:names` | sorted set, score 0 | the namespace's channel names (listing, limit) | none |
//! | `P:{A:R}:ch:NAME` | hash `rev`, `rec` | the channel record (JSON) and its revision | none |
//! | `P:{A:R}:pr:ARN` | hash role → `NODE:CONN` | who is connected to the channel, where | refreshed on each connect |
//! | `P:{A:R}:hm:ARN` | hash seq → message | held messages | the latest held message's expiry |
//! | `P:{A:R}:hq:ARN` | sorted set of seq | their acceptance order | same |
//! | `P:{A:R}:hr:ARN:RECIPIENT` | sorted set of seq | one recipient's held messages, in order | same |
//! | `P:{A:R}:hx:ARN` | hash | the newest offer/answer per (recipient, sender); `#` = seq | same |
//! | `P:{A:R}:gone:ARN` | string | the channel was deleted: claims on it fail | 1 hour |
//! | `P:{A:R}:snames` | sorted set, score 0 | the namespace's stream names (listing, limit) | none |
//! | `P:{A:R}:st:NAME` | hash `rev`, `arn`, `rec` | the stream record (JSON), revision and ARN | none |
//! | `P:{A:R}:ml:CHANNEL_ARN` | string | the channel's media-storage link (JSON) | none |
//! | `P:{A:R}:mls:STREAM_ARN` | string | the channel ARN linked to the stream | none |
//! | `P:{A:R}:mfz:NAME~CREATED` | sorted set number → number | a stream's fragment numbers (GetMedia) | none (retention, byte cap) |
//! | `P:{A:R}:mfm:NAME~CREATED` | hash number → `PRODUCER,SERVER,DURATION,OFFSET,LEN` | their metadata | same |
//! | `P:{A:R}:mfb:NAME~CREATED:NUMBER` | string | one fragment's Matroska bytes | same |
//! | `P:{A:R}:mfs:NAME~CREATED` | string | the stream's fragment bytes in all | same |
//! | `P:{A:R}:mfn:NAME~CREATED` | string | the last fragment number given | none |
//! | `P:{A:R}:mfi:NAME~CREATED` | string | a recording of the stream is live | 5 s, renewed each second |
//! | `P:mstreams` | set | the streams that have fragments (`A|R|NAME|CREATED`) | none |
//! | `P:q:SCOPE:OP:SUBJECT` | string | a quota bucket's GCRA cell (µs, Redis's clock) | a second after the bucket is full again |
//! | `P:{nodes}` | sorted set node → lease end (Redis's clock, ms) | node leases | 1 day, renewed |
//! | `P:{ss}` | hash channel ARN → claim | storage-session claims (one per channel; Redis's clock) | none; lapsed claims pruned at the next claim |
//! | `P:ss:superseded` | pub/sub channel | ids of replaced storage-session claims | (not stored) |
//! | `P:bus:NODE` | pub/sub channel | envelopes to one node | (not stored) |

use kvs_core::ids::{ChannelName, Namespace};
use kvs_core::relay::NodeId;

#[derive(Debug, Clone)]
pub struct Keys {
    prefix: String,
}

impl Keys {
    pub fn new(prefix: &str) -> Self {
        Self {
            prefix: prefix.to_owned(),
        }
    }

    fn ns_tag(ns: &Namespace) -> String {
        format!("{{{}:{}}}", ns.account, ns.region)
    }

    /// The namespace tag of a channel ARN (`arn:aws:kinesisvideo:REGION:ACCOUNT:channel/...`),
    /// so presence and held messages share the slot of the channel's record.
    fn arn_tag(arn: &str) -> String {
        let mut parts = arn.split(':');
        match (parts.nth(3), parts.next()) {
            (Some(region), Some(account)) => format!("{{{account}:{region}}}"),
            _ => format!("{{{arn}}}"),
        }
    }

    pub fn names(&self, ns: &Namespace) -> String {
        format!("{}:{}:names", self.prefix, Self::ns_tag(ns))
    }

    /// The `SCAN MATCH` pattern of every namespace's name index (the prefix's glob characters
    /// escaped), for the test-suite endpoints that walk everything (`/_kvs/state`, `/_kvs/reset`).
    pub fn all_names_pattern(&self) -> String {
        let mut escaped = String::with_capacity(self.prefix.len());
        for c in self.prefix.chars() {
            if matches!(c, '*' | '?' | '[' | ']' | '\\') {
                escaped.push('\\');
            }
            escaped.push(c);
        }
        format!("{escaped}:{{*}}:names")
    }

    /// The namespace (account, region) whose name index is `key`, if `key` is one of ours.
    pub fn namespace_of_names(&self, key: &str) -> Option<(String, String)> {
        let tag = key
            .strip_prefix(self.prefix.as_str())?
            .strip_prefix(":{")?
            .strip_suffix("}:names")?;
        let (account, region) = tag.split_once(':')?;
        Some((account.to_owned(), region.to_owned()))
    }

    /// What every channel record key of `ns` starts with (`P:{A:R}:ch:`).
    pub fn channel_prefix(&self, ns: &Namespace) -> String {
        format!("{}:{}:ch:", self.prefix, Self::ns_tag(ns))
    }

    pub fn channel(&self, ns: &Namespace, name: &ChannelName) -> String {
        format!("{}:{}:ch:{}", self.prefix, Self::ns_tag(ns), name)
    }

    /// Every channel's storage-session claim (issue 15), one hash: claims are few (one per
    /// recording channel) and listed together.
    pub fn storage_sessions(&self) -> String {
        format!("{}:{{ss}}", self.prefix)
    }

    /// The pub/sub channel on which a replaced storage-session claim is announced.
    pub fn storage_session_notices(&self) -> String {
        format!("{}:ss:superseded", self.prefix)
    }

    /// One channel's storage-session viewers (JoinStorageSessionAsViewer), a hash ClientId →
    /// membership; in the claims' slot so one script can read both.
    pub fn storage_session_viewers(&self, channel_arn: &str) -> String {
        format!("{}:{{ss}}:v:{channel_arn}", self.prefix)
    }

    /// The counter that numbers viewer joins.
    pub fn storage_session_viewer_seq(&self) -> String {
        format!("{}:{{ss}}:vseq", self.prefix)
    }

    /// The pub/sub channel on which a viewer's join is announced (payload: the channel ARN).
    pub fn storage_session_viewer_notices(&self) -> String {
        format!("{}:ss:viewers", self.prefix)
    }

    /// The namespace's stream names (issue 15).
    /// Glob patterns of every stream key of every namespace: name indexes, records, links and
    /// their reverse (for `/_kvs/reset`, by `SCAN`).
    pub fn all_stream_patterns(&self) -> [String; 4] {
        ["snames", "st:*", "ml:*", "mls:*"].map(|k| format!("{}:{{*}}:{k}", self.prefix))
    }

    pub fn stream_names(&self, ns: &Namespace) -> String {
        format!("{}:{}:snames", self.prefix, Self::ns_tag(ns))
    }

    pub fn stream(&self, ns: &Namespace, name: &str) -> String {
        format!("{}:{}:st:{name}", self.prefix, Self::ns_tag(ns))
    }

    /// The prefix of a channel's media-storage link key; the channel ARN follows.
    pub fn media_link_prefix(&self, ns: &Namespace) -> String {
        format!("{}:{}:ml:", self.prefix, Self::ns_tag(ns))
    }

    /// The prefix of a stream's reverse link key; the stream ARN follows.
    pub fn stream_link_prefix(&self, ns: &Namespace) -> String {
        format!("{}:{}:mls:", self.prefix, Self::ns_tag(ns))
    }

    /// A recorded stream's key of `kind` (`mfz`, `mfm`, `mfb`, `mfs`, `mfn`, `mfi`), under the
    /// namespace's tag like the stream's record.
    pub fn media(&self, account: &str, region: &str, stream: &str, kind: &str) -> String {
        format!("{}:{{{account}:{region}}}:{kind}:{stream}", self.prefix)
    }

    /// The set of streams that have fragments.
    pub fn media_streams(&self) -> String {
        format!("{}:mstreams", self.prefix)
    }

    fn per_channel(&self, kind: &str, arn: &str) -> String {
        format!("{}:{}:{kind}:{arn}", self.prefix, Self::arn_tag(arn))
    }

    pub fn presence(&self, arn: &str) -> String {
        self.per_channel("pr", arn)
    }

    /// The three keys of a channel's held messages: messages, order, replacement index.
    pub fn held(&self, arn: &str) -> [String; 3] {
        [
            self.per_channel("hm", arn),
            self.per_channel("hq", arn),
            self.per_channel("hx", arn),
        ]
    }

    /// The prefix of a channel's per-recipient held-message orders: `hr:ARN:` + the recipient
    /// (`M`, `V:CLIENT`, `W:CLIENT`).
    pub fn held_for_prefix(&self, arn: &str) -> String {
        format!("{}:", self.per_channel("hr", arn))
    }

    /// The record key of the channel an ARN names (`…:channel/NAME/MILLIS`), for scripts that
    /// check the channel still exists; an ARN that does not parse gets a key nothing is at.
    pub fn channel_of_arn(&self, arn: &str) -> String {
        let name = arn
            .split_once(":channel/")
            .and_then(|(_, rest)| rest.split('/').next())
            .unwrap_or("");
        format!("{}:{}:ch:{name}", self.prefix, Self::arn_tag(arn))
    }

    /// Set for an hour when a channel is deleted: a claim on it after that fails.
    pub fn gone(&self, arn: &str) -> String {
        self.per_channel("gone", arn)
    }

    /// One quota bucket: `SCOPE` is `account` or `channel`, `SUBJECT` the account and region or
    /// the channel. Expires a second after the bucket is full again.
    pub fn quota(&self, scope: &str, op: &str, subject: &str) -> String {
        format!("{}:q:{scope}:{op}:{subject}", self.prefix)
    }

    pub fn nodes(&self) -> String {
        format!("{}:{{nodes}}", self.prefix)
    }

    /// The live view's pub/sub channel, shared by every node.
    pub fn feed(&self) -> String {
        format!("{}:feed", self.prefix)
    }

    pub fn bus(&self, node: NodeId) -> String {
        format!("{}:bus:{node}", self.prefix)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn channel_keys_share_the_namespace_tag() {
        let keys = Keys::new("kvs");
        let arn = "arn:aws:kinesisvideo:us-west-2:111122223333:channel/cam/1700000000000";
        assert_eq!(
            keys.presence(arn),
            format!("kvs:{{111122223333:us-west-2}}:pr:{arn}")
        );
        assert!(keys.held(arn)[0].starts_with("kvs:{111122223333:us-west-2}:hm:"));
        let ns = Namespace::new(
            kvs_core::ids::AccountId::parse("111122223333").unwrap_or_else(|_| unreachable!()),
            kvs_core::ids::Region::parse("us-west-2").unwrap_or_else(|_| unreachable!()),
        );
        assert_eq!(keys.names(&ns), "kvs:{111122223333:us-west-2}:names");
        let name = kvs_core::ids::ChannelName::parse("n", "cam").unwrap_or_else(|_| unreachable!());
        assert_eq!(keys.channel_of_arn(arn), keys.channel(&ns, &name));
        assert_eq!(
            keys.namespace_of_names(&keys.names(&ns)),
            Some(("111122223333".into(), "us-west-2".into()))
        );
        assert!(keys
            .channel(&ns, &name)
            .starts_with(&keys.channel_prefix(&ns)));
        assert_eq!(keys.all_names_pattern(), "kvs:{*}:names");
        assert_eq!(
            Keys::new("a*[b]").all_names_pattern(),
            "a\\*\\[b\\]:{*}:names"
        );
    }
}
