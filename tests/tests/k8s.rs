//! `deploy/k8s/`: the Kustomize base and the example overlay, built with `kubectl kustomize`
//! and validated against the Kubernetes 1.32 schemas by kubernetes-validate (PyPI), with what
//! the platform needs of them checked (`tests/python/validate_k8s.py`). Without kubectl, the
//! base's plain manifests are validated instead.

use std::process::Command;

const K8S: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../deploy/k8s");

/// The manifests of `dir` as `kubectl kustomize` builds them, or `None` without kubectl.
fn kustomize(dir: &str) -> Option<String> {
    let out = Command::new("kubectl")
        .args(["kustomize", &format!("{K8S}/{dir}")])
        .output()
        .ok()?;
    assert!(
        out.status.success(),
        "kubectl kustomize {dir}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    Some(String::from_utf8(out.stdout).expect("YAML is text"))
}

/// The base's manifests as they are, for a machine without kubectl.
fn plain_base() -> String {
    let mut files: Vec<_> = std::fs::read_dir(format!("{K8S}/base"))
        .expect("deploy/k8s/base")
        .map(|e| e.expect("an entry").path())
        .filter(|p| p.extension().is_some_and(|x| x == "yaml"))
        .filter(|p| !p.ends_with("kustomization.yaml"))
        .collect();
    files.sort();
    files
        .iter()
        .map(|p| std::fs::read_to_string(p).expect("a manifest"))
        .collect::<Vec<_>>()
        .join("\n---\n")
}

#[test]
fn the_kubernetes_manifests_build_and_are_valid() {
    let mut checked = 0;
    for dir in ["base", "overlays/example"] {
        let Some(yaml) = kustomize(dir) else {
            eprintln!("kubectl is not installed: validating the base's plain manifests");
            break;
        };
        let (ok, printed) = e2e::python("validate_k8s.py", &yaml);
        assert!(ok, "deploy/k8s/{dir}:\n{printed}\n{yaml}");
        assert!(
            printed.contains("HorizontalPodAutoscaler/agent-app-api"),
            "{printed}"
        );
        checked += 1;
    }
    if checked == 0 {
        let (ok, printed) = e2e::python("validate_k8s.py", &plain_base());
        assert!(ok, "deploy/k8s/base:\n{printed}");
    }
    // The check can fail: one replica, and a field Kubernetes does not know, are refused.
    let broken = plain_base()
        .replacen("replicas: 2", "replicas: 1", 1)
        .replacen(
            "revisionHistoryLimit: 5",
            "revisionHistoryLimit: 5\n  colour: red",
            1,
        );
    let (ok, printed) = e2e::python("validate_k8s.py", &broken);
    assert!(!ok, "{printed}");
    assert!(printed.contains("fewer than 2 replicas"), "{printed}");
    assert!(printed.contains("colour"), "{printed}");
}
