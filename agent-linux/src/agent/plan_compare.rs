//! Plan sections compared by what they say. A [`StrId`] is an index into its
//! own plan's string table, and two compilations of one spec may order that
//! table differently, so a reload compares the strings the ids stand for,
//! never the ids. Every impl destructures its type whole: a field added to
//! the plan does not compile here until it is compared.

use outpost_core::plan::{Auth, LabelPair, Plan, Receiver, RelabelRule, StrId, Tls, Wal};

pub(super) trait SameMeaning {
    /// Whether `self`, read in `plan`, says what `other` says in `other_plan`.
    fn same_meaning(&self, plan: &Plan, other: &Self, other_plan: &Plan) -> bool;
}

impl SameMeaning for StrId {
    fn same_meaning(&self, plan: &Plan, other: &Self, other_plan: &Plan) -> bool {
        plan.str(*self) == other_plan.str(*other)
    }
}

impl<T: SameMeaning> SameMeaning for Option<T> {
    fn same_meaning(&self, plan: &Plan, other: &Self, other_plan: &Plan) -> bool {
        match (self, other) {
            (Some(a), Some(b)) => a.same_meaning(plan, b, other_plan),
            (None, None) => true,
            _ => false,
        }
    }
}

impl<T: SameMeaning> SameMeaning for Vec<T> {
    fn same_meaning(&self, plan: &Plan, other: &Self, other_plan: &Plan) -> bool {
        self.len() == other.len()
            && self
                .iter()
                .zip(other)
                .all(|(a, b)| a.same_meaning(plan, b, other_plan))
    }
}

impl SameMeaning for LabelPair {
    fn same_meaning(&self, plan: &Plan, other: &Self, other_plan: &Plan) -> bool {
        let LabelPair { name, value } = self;
        name.same_meaning(plan, &other.name, other_plan) && value.same_meaning(plan, &other.value, other_plan)
    }
}

impl SameMeaning for Tls {
    fn same_meaning(&self, plan: &Plan, other: &Self, other_plan: &Plan) -> bool {
        let Tls {
            ca_file,
            cert_file,
            key_file,
            server_name,
            insecure_skip_verify,
        } = self;
        ca_file.same_meaning(plan, &other.ca_file, other_plan)
            && cert_file.same_meaning(plan, &other.cert_file, other_plan)
            && key_file.same_meaning(plan, &other.key_file, other_plan)
            && server_name.same_meaning(plan, &other.server_name, other_plan)
            && *insecure_skip_verify == other.insecure_skip_verify
    }
}

impl SameMeaning for Auth {
    fn same_meaning(&self, plan: &Plan, other: &Self, other_plan: &Plan) -> bool {
        match (self, other) {
            (Auth::None, Auth::None) => true,
            (Auth::BearerTokenFile(a), Auth::BearerTokenFile(b)) => a.same_meaning(plan, b, other_plan),
            (
                Auth::Basic {
                    username,
                    password_file,
                },
                Auth::Basic {
                    username: other_username,
                    password_file: other_password_file,
                },
            ) => {
                username.same_meaning(plan, other_username, other_plan)
                    && password_file.same_meaning(plan, other_password_file, other_plan)
            }
            _ => false,
        }
    }
}

impl SameMeaning for RelabelRule {
    fn same_meaning(&self, plan: &Plan, other: &Self, other_plan: &Plan) -> bool {
        let RelabelRule {
            action,
            source_labels,
            separator,
            regex,
            modulus,
            target_label,
            replacement,
        } = self;
        *action == other.action
            && source_labels.same_meaning(plan, &other.source_labels, other_plan)
            && separator.same_meaning(plan, &other.separator, other_plan)
            && regex.same_meaning(plan, &other.regex, other_plan)
            && *modulus == other.modulus
            && target_label.same_meaning(plan, &other.target_label, other_plan)
            && replacement.same_meaning(plan, &other.replacement, other_plan)
    }
}

impl SameMeaning for Receiver {
    fn same_meaning(&self, plan: &Plan, other: &Self, other_plan: &Plan) -> bool {
        let Receiver {
            url,
            tenant_header,
            tls,
            auth,
            remote_timeout_ms,
            write_relabel,
        } = self;
        url.same_meaning(plan, &other.url, other_plan)
            && tenant_header.same_meaning(plan, &other.tenant_header, other_plan)
            && tls.same_meaning(plan, &other.tls, other_plan)
            && auth.same_meaning(plan, &other.auth, other_plan)
            && *remote_timeout_ms == other.remote_timeout_ms
            && write_relabel.same_meaning(plan, &other.write_relabel, other_plan)
    }
}

impl SameMeaning for Wal {
    fn same_meaning(&self, plan: &Plan, other: &Self, other_plan: &Plan) -> bool {
        let Wal {
            dir,
            max_bytes,
            segment_bytes,
            fsync,
            mode,
        } = self;
        dir.same_meaning(plan, &other.dir, other_plan)
            && *max_bytes == other.max_bytes
            && *segment_bytes == other.segment_bytes
            && *fsync == other.fsync
            && *mode == other.mode
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use outpost_core::plan::RelabelAction;
    use outpost_test_support::{PlanBuilder, Rule};
    use std::path::Path;

    const URL: &str = "https://receiver.example:19291/api/v1/receive";
    const WAL: &str = "/var/lib/outpost/wal";

    /// One plan; with `reordered`, its string table starts with the strings
    /// the builder would otherwise add last.
    fn plan(reordered: bool, wal: &str) -> Plan {
        let builder = if reordered {
            PlanBuilder::new().strings_first(&[wal, URL, "/etc/outpost/ca.pem", "team-a"])
        } else {
            PlanBuilder::new()
        };
        builder
            .receiver_url(URL)
            .tenant_header("THANOS-TENANT", "team-a")
            .receiver_tls(Path::new("/etc/outpost/ca.pem"), None)
            .write_relabel(&[Rule::new(RelabelAction::Drop)
                .sources(&["__name__"])
                .regex("go_.*")])
            .wal_dir(Path::new(wal))
            .build()
    }

    #[test]
    fn sections_are_compared_by_the_strings_their_ids_stand_for() {
        let (a, b) = (plan(false, WAL), plan(true, WAL));
        assert_ne!(a.wal, b.wal, "the ids differ");
        assert_ne!(a.receiver, b.receiver, "the ids differ");
        assert!(a.wal.same_meaning(&a, &b.wal, &b));
        assert!(a.receiver.same_meaning(&a, &b.receiver, &b));

        let moved = plan(true, "/data/wal");
        assert!(!a.wal.same_meaning(&a, &moved.wal, &moved));
        let mut fsync = b.wal.clone();
        fsync.fsync = outpost_core::plan::Fsync::Always;
        assert!(!a.wal.same_meaning(&a, &fsync, &b));
    }

    #[test]
    fn one_id_standing_for_another_string_is_a_change() {
        let a = plan(false, WAL);
        let mut b = a.clone();
        let tenant = b.receiver.tenant_header.unwrap().value;
        b.strings[tenant.0 as usize] = "team-b".into();
        assert_eq!(a.receiver, b.receiver, "the ids are the same");
        assert!(!a.receiver.same_meaning(&a, &b.receiver, &b));
        let mut b = a.clone();
        let regex = b.receiver.write_relabel[0].regex;
        b.strings[regex.0 as usize] = "process_.*".into();
        assert!(!a.receiver.same_meaning(&a, &b.receiver, &b));
    }
}
