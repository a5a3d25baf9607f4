//! identity-forgery end to end: cgroups that only name a pod or container get no Kubernetes identity, and forged ones raise the finding, next to a kubelet-placed pod that still attests.
//!
//! The cgroups are real (made under the cgroup v2 mount by the test); the
//! kubelet is the HTTPS stand-in of `pod_metadata.rs`, listing the victim
//! pod and its container under ids of this test's own.

use std::{os::unix::fs::chown, process::Command};

use serde_json::Value;

use crate::harness::*;
use crate::pod_metadata::{
    agent_config, attest_selectors, pod_status, podlist_with, Answer, Kubelet,
};

fn forgery_findings_of(agent: &AgentProc, pid: u32) -> Vec<Value> {
    agent
        .events()
        .into_iter()
        .filter(|e| {
            e["kind"] == "finding"
                && e["finding"]["rule"] == "identity-forgery"
                && e["process"]["pid"] == pid
        })
        .collect()
}

/// A sleeper in `cg`, once the agent has seen it exec there.
fn sleeper_in(cg: &PlacedCgroup, agent: &AgentProc) -> (Kid, Value) {
    let kid = Kid(cg.command("/bin/sleep").arg("120").spawn().unwrap());
    let pid = kid.pid();
    let ev = agent.wait_for(|e| e["kind"] == "process_exec" && e["process"]["pid"] == pid);
    assert_eq!(ev["process"]["cgroup"]["path"], cg.rel.as_str(), "{ev:#}");
    (kid, ev)
}

#[test]
fn forged_delegated_and_misattributed_pod_cgroups_get_no_pod_identity_while_the_kubelets_own_attests(
) {
    let (uid, cid) = pod_and_container_ids("forgery-victim");
    let uid_us = uid.replace('-', "_");
    let (_, other_cid) = pod_and_container_ids("forgery-unlisted");
    let (other_uid, _) = pod_and_container_ids("forgery-other-pod");
    // Cgroups first: they outlive (drop after) the processes in them.
    // Where the kubelet's systemd driver puts the victim's container.
    let genuine = PlacedCgroup::new(&format!(
        "kubepods.slice/kubepods-besteffort.slice/kubepods-besteffort-pod{uid_us}.slice/cri-containerd-{cid}.scope"
    ));
    // The same names under a user slice: anyone who may make cgroups there can.
    let forged = PlacedCgroup::new(&format!(
        "user.slice/evil.slice/kubepods-besteffort-pod{uid_us}.slice/cri-containerd-{cid}.scope"
    ));
    // The right place, but the pod's directory delegated to uid 1000.
    let delegated = PlacedCgroup::new(&format!("kubepods/burstable/pod{uid}/{cid}"));
    chown(delegated.ancestor(3), Some(1000), None).unwrap();
    // The right place, root-owned, a container the pod list does not have.
    let unlisted = PlacedCgroup::new(&format!("kubepods/besteffort/pod{uid}/{other_cid}"));
    // The right place, root-owned, the victim's container under another pod.
    let misattributed = PlacedCgroup::new(&format!("kubepods/besteffort/pod{other_uid}/{cid}"));

    let kubelet = Kubelet::start(Answer::PodList, podlist_with(&uid, &cid));
    let dir = tempfile::tempdir().unwrap();
    let socket = dir.path().join("api.sock");
    let agent = AgentProc::start(&agent_config(&socket, &kubelet));
    agent.wait_for(|e| e["kind"] == "agent_status" && pod_status(e)["state"] == "ok");

    // Positive control: the kubelet's own cgroup attests with the pod.
    let (g, ev) = sleeper_in(&genuine, &agent);
    assert_eq!(ev["process"]["pod"]["namespace"], "shop", "{ev:#}");
    let sel = attest_selectors(&socket, g.pid());
    for want in [
        format!("k8s:pod-uid:{uid}"),
        "k8s:ns:shop".into(),
        "k8s:sa:checkout".into(),
        "k8s:container-name:checkout".into(),
        format!("proctor:container-id:{cid}"),
    ] {
        assert!(sel.contains(&want), "{want} missing from {sel:#?}");
    }

    // A genuine container the list does not have (a sandbox, or one not
    // listed yet): its container, no pod fields, and no finding.
    let (u, ev) = sleeper_in(&unlisted, &agent);
    assert!(ev["process"]["pod"].is_null(), "{ev:#}");
    assert_eq!(
        ev["process"]["container"]["id"],
        other_cid.as_str(),
        "{ev:#}"
    );
    let sel = attest_selectors(&socket, u.pid());
    assert!(!sel.iter().any(|s| s.starts_with("k8s:")), "{sel:#?}");
    assert!(
        sel.contains(&format!("proctor:container-id:{other_cid}")),
        "{sel:#?}"
    );

    // Each forgery: no pod, no container, no k8s selector, one finding.
    let cases = [
        (&forged, "not at a container's or pod's place"),
        (&delegated, "owned by uid 1000"),
        (&misattributed, "gives this container to pod"),
    ];
    let mut kids = Vec::new();
    for (cg, why) in cases {
        let (kid, ev) = sleeper_in(cg, &agent);
        let pid = kid.pid();
        let p = &ev["process"];
        assert!(p["pod"].is_null(), "{}: {ev:#}", cg.rel);
        let f = agent.wait_for(|e| {
            e["kind"] == "finding"
                && e["finding"]["rule"] == "identity-forgery"
                && e["process"]["pid"] == pid
        });
        let fd = &f["finding"];
        assert_eq!(fd["severity"], "high", "{f:#}");
        assert_eq!(fd["mitre"], serde_json::json!(["T1036"]), "{f:#}");
        assert_eq!(fd["evidence"]["paths"][0], cg.rel.as_str(), "{f:#}");
        let ids = fd["evidence"]["identities"].to_string();
        assert!(ids.contains(&format!("container-id:{cid}")), "{f:#}");
        assert!(
            fd["evidence"]["reason"].as_str().unwrap().contains(why),
            "{}: {f:#}",
            cg.rel
        );
        assert_eq!(
            fd["evidence"]["exec_ids"][0], ev["process"]["exec_id"],
            "{f:#}"
        );
        let sel = attest_selectors(&socket, pid);
        assert!(
            !sel.iter().any(|s| s.starts_with("k8s:")),
            "{}: {sel:#?}",
            cg.rel
        );
        if cg.rel != misattributed.rel {
            // A forged chain proves no container either.
            assert!(p["container"].is_null(), "{}: {ev:#}", cg.rel);
            assert!(
                !sel.iter().any(|s| s.starts_with("proctor:container-id:")),
                "{}: {sel:#?}",
                cg.rel
            );
            assert!(ids.contains(&format!("pod-uid:{uid}")), "{f:#}");
        }
        kids.push(kid);
    }

    // Once per exec: a marker exec after everything flushes what came before.
    let m = marker("forgery-flush");
    run(Command::new("/bin/true").arg(&m));
    agent.wait_for(|e| is_exec_with(e, &m));
    for k in &kids {
        let found = forgery_findings_of(&agent, k.pid());
        assert_eq!(found.len(), 1, "{found:#?}");
    }
    // No false alarm for the genuine and the unlisted container.
    for pid in [g.pid(), u.pid()] {
        let found = forgery_findings_of(&agent, pid);
        assert!(found.is_empty(), "{found:#?}");
    }
    drop(kids);
    drop((g, u));
    agent.stop();
}
