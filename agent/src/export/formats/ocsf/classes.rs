//! The OCSF 1.3.0 classes, activities and captions proctor's events map to,
//! and the `security_control` reading of a finding's enforcement.

use super::super::common::{net_outcome, NetOutcome};
use crate::event::NetInfo;

/// The OCSF schema version the output conforms to (`metadata.version`).
pub const OCSF_VERSION: &str = "1.3.0";

/// Profiles in use (`metadata.profiles`).
pub const PROFILES: [&str; 3] = ["host", "container", "linux/linux_users"];
/// Findings also carry the `security_control` attributes (`action_id`,
/// `disposition_id`).
pub const FINDING_PROFILES: [&str; 4] =
    ["host", "container", "linux/linux_users", "security_control"];

pub const CATEGORY_SYSTEM: u32 = 1;
pub const CATEGORY_FINDINGS: u32 = 2;
pub const CATEGORY_NETWORK: u32 = 4;

pub const CLASS_FILE_SYSTEM_ACTIVITY: u32 = 1001;
pub const CLASS_PROCESS_ACTIVITY: u32 = 1007;
pub const CLASS_DETECTION_FINDING: u32 = 2004;
pub const CLASS_NETWORK_ACTIVITY: u32 = 4001;

/// `fingerprint.algorithm_id` of SHA-256.
pub const HASH_SHA256: u8 = 3;

/// An event class and activity, with the captions OCSF gives them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Activity {
    pub category_uid: u32,
    pub category_name: &'static str,
    pub class_uid: u32,
    pub class_name: &'static str,
    pub activity_id: u32,
    pub activity_name: &'static str,
}

impl Activity {
    /// `class_uid * 100 + activity_id`.
    pub fn type_uid(&self) -> u64 {
        u64::from(self.class_uid) * 100 + u64::from(self.activity_id)
    }
}

const fn system(class_uid: u32, class_name: &'static str, id: u32, name: &'static str) -> Activity {
    Activity {
        category_uid: CATEGORY_SYSTEM,
        category_name: "System Activity",
        class_uid,
        class_name,
        activity_id: id,
        activity_name: name,
    }
}

const fn network(id: u32, name: &'static str) -> Activity {
    Activity {
        category_uid: CATEGORY_NETWORK,
        category_name: "Network Activity",
        class_uid: CLASS_NETWORK_ACTIVITY,
        class_name: "Network Activity",
        activity_id: id,
        activity_name: name,
    }
}

pub const PROCESS_LAUNCH: Activity =
    system(CLASS_PROCESS_ACTIVITY, "Process Activity", 1, "Launch");
pub const PROCESS_TERMINATE: Activity =
    system(CLASS_PROCESS_ACTIVITY, "Process Activity", 2, "Terminate");
/// File System Activity `activity_id` 14 is "Open" ("a request to create a
/// file handle") in OCSF 1.3.0; 2 "Read" would claim data was read.
pub const FILE_OPEN: Activity = system(
    CLASS_FILE_SYSTEM_ACTIVITY,
    "File System Activity",
    14,
    "Open",
);
pub const NETWORK_OPEN: Activity = network(1, "Open");
pub const NETWORK_FAIL: Activity = network(4, "Fail");
pub const NETWORK_REFUSE: Activity = network(5, "Refuse");
pub const FINDING_CREATE: Activity = Activity {
    category_uid: CATEGORY_FINDINGS,
    category_name: "Findings",
    class_uid: CLASS_DETECTION_FINDING,
    class_name: "Detection Finding",
    activity_id: 1,
    activity_name: "Create",
};

/// The Network Activity activity a connect maps to: 1 Open when it
/// succeeded or is under way, 5 Refuse for ECONNREFUSED, 4 Fail otherwise.
pub fn network_activity_id(net: &NetInfo) -> Activity {
    match net_outcome(net) {
        NetOutcome::Success | NetOutcome::Pending => NETWORK_OPEN,
        NetOutcome::Refused => NETWORK_REFUSE,
        NetOutcome::Denied | NetOutcome::Failure => NETWORK_FAIL,
    }
}

/// The `security_control` attributes of a finding from its `action`:
/// (`action_id`, `action`, `disposition_id`, `disposition`). Without
/// enforcement the activity went ahead and was only detected.
pub fn enforcement(action: Option<&str>) -> (u8, &str, u8, &str) {
    match action {
        None => (1, "Allowed", 15, "Detected"),
        // The reader was SIGKILLed before its open returned; the connect
        // was refused by the egress program.
        Some("killed") | Some("denied") | Some("egress_blocked") => (2, "Denied", 2, "Blocked"),
        Some(other) => (99, other, 7, "Custom Action"),
    }
}
