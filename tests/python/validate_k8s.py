"""Validates Kubernetes manifests (multi-document YAML on stdin) and what the platform needs of them.

Each document is checked against the Kubernetes 1.32 schemas by kubernetes-validate (strict: no
unknown fields). Then, of the set as a whole: both Deployments with at least 2 replicas,
resource requests, readiness on /readyz and liveness on /healthz, a termination grace period
longer than the drain (the preStop pause plus the services' 10 s shutdown), preferred
anti-affinity across nodes; a Service and a PodDisruptionBudget for each; a
HorizontalPodAutoscaler for agent-app-api; the environment from the ConfigMap and the Secret.
Prints each failure and exits 1 if there is any; prints the kinds it saw on success.
"""

import json
import sys

import kubernetes_validate
import yaml

VERSION = "1.32.0"
DRAIN_SECS = 10
failures = []
documents = [d for d in yaml.safe_load_all(sys.stdin) if d]
for d in documents:
    try:
        kubernetes_validate.validate(d, VERSION, strict=True)
    except kubernetes_validate.ValidationError as e:
        failures.append(f"{d.get('kind')}/{d.get('metadata', {}).get('name')}: {e.message}")

by_kind = {}
for d in documents:
    by_kind.setdefault(d["kind"], {})[d["metadata"]["name"]] = d


def need(ok, what):
    if not ok:
        failures.append(what)


for name in ["dispatcher", "agent-app-api"]:
    deployment = by_kind.get("Deployment", {}).get(name)
    need(deployment is not None, f"no Deployment {name}")
    if deployment is None:
        continue
    spec = deployment["spec"]
    pod = spec["template"]["spec"]
    need(spec.get("replicas", 1) >= 2, f"{name}: fewer than 2 replicas")
    container = pod["containers"][0]
    need("requests" in container.get("resources", {}), f"{name}: no resource requests")
    need(container.get("readinessProbe", {}).get("httpGet", {}).get("path") == "/readyz", f"{name}: readiness is not /readyz")
    need(container.get("livenessProbe", {}).get("httpGet", {}).get("path") == "/healthz", f"{name}: liveness is not /healthz")
    pause = container.get("lifecycle", {}).get("preStop", {}).get("sleep", {}).get("seconds", 0)
    need(pod.get("terminationGracePeriodSeconds", 30) > pause + DRAIN_SECS, f"{name}: the grace period is not longer than the drain")
    anti = pod.get("affinity", {}).get("podAntiAffinity", {})
    need(bool(anti), f"{name}: no anti-affinity")
    sources = [next(iter(s)) for s in container.get("envFrom", [])]
    need("configMapRef" in sources and "secretRef" in sources, f"{name}: the environment is not from a ConfigMap and a Secret")
    need(name in by_kind.get("Service", {}), f"no Service {name}")
    need(name in by_kind.get("PodDisruptionBudget", {}), f"no PodDisruptionBudget {name}")
hpa = by_kind.get("HorizontalPodAutoscaler", {}).get("agent-app-api")
need(hpa is not None and hpa["spec"]["scaleTargetRef"]["name"] == "agent-app-api", "no HorizontalPodAutoscaler for agent-app-api")
need(hpa is None or hpa["spec"].get("minReplicas", 1) >= 2, "the autoscaler may scale agent-app-api below 2")

for failure in failures:
    print(failure)
if failures:
    sys.exit(1)
print(json.dumps(sorted(f"{kind}/{name}" for kind, names in by_kind.items() for name in names)))
