"""Kubernetes manifests from the same topology: router Deployment + Service (the base's router's
Kubernetes service discovery, RBAC to watch pods), workers as a StatefulSet (a LeaderWorkerSet
for multi-node TP), with /health probes that give a GLM-5 load 30 minutes, the model volume, a
compile cache, GPUs, shared memory. Checked offline against the Kubernetes schemas
(kubernetes-validate, pinned: the [k8s] extra), the LeaderWorkerSet's pod templates against core's.

Compile caches: aiter's JIT and Triton write into them while a server starts, so two servers must
not share one. A StatefulSet replica gets its own volume (volumeClaimTemplates, ReadWriteOnce);
a LeaderWorkerSet's pods, which may sit on different nodes, share the named claim, which must be
ReadWriteMany (LeaderWorkerSet has no per-pod claim templates); each pod writes under its own
sub-directory of it (subPathExpr: the pod's name).

Security by default: workers are reachable only inside the cluster (no Service of their own), the
router Service is the one endpoint (ClusterIP: expose it with your Ingress/LoadBalancer), the
router's metrics bind 127.0.0.1, one Secret holds the API key for router and workers.
"""

from __future__ import annotations

import dataclasses

from wafer_sglang.errors import WaferError
from wafer_sglang.serve import names, recipes
from wafer_sglang.serve.cluster import Topology, config, refuse_worker_flags
from wafer_sglang.serve.router import listen_args, release

KUBERNETES = "1.37.0"  # the schema version manifests are checked against (kubernetes-validate's)
STARTUP_SECONDS = 1800  # a cold GLM-5 load plus aiter JIT builds
CACHE = "/cache"
CACHE_ENV = {  # every compile cache on the persistent volume: a restart does not rebuild aiter's JIT modules
    "AITER_JIT_DIR": f"{CACHE}/aiter-jit",
    "TRITON_CACHE_DIR": f"{CACHE}/triton",
    "TORCHINDUCTOR_CACHE_DIR": f"{CACHE}/inductor",
    "XDG_CACHE_HOME": f"{CACHE}/xdg",
}
SECRET, SECRET_KEY = "wafer-api-key", "key"
CACHE_SIZE = "100Gi"  # aiter JIT modules + Triton/Inductor caches of one server, with room


def manifests(
    topology: Topology,
    *,
    name: str,
    image: str,
    base: str,
    model_claim: str,
    model_path: str,
    replicas: int,
    namespace: str,
    cache_claim: str = "wafer-compile-cache",
    cache_size: str = CACHE_SIZE,
    flags: list[str] = (),
) -> list[dict]:
    """``flags``: sglang flags for every worker (after the command's options), as `cluster plan` takes them."""
    name = names.resource_name(name)
    _model_mount(model_path)  # refused before anything is built
    refuse_worker_flags(flags, topology, base)
    ports = config()["ports"]
    labels = {"app.kubernetes.io/name": name, "app.kubernetes.io/part-of": "wafer-sglang"}
    docs = [*_rbac(name, namespace, labels), _router_service(name, namespace, labels, ports)]
    roles = (
        [("prefill", topology.prefill_args), ("decode", topology.decode_args)]
        if topology.name == "pd"
        else [("worker", topology.worker_args)]
    )
    selectors = {}
    for role, args in roles:
        selector = {**labels, "app.kubernetes.io/component": role}
        selectors[role] = selector
        bootstrap = ["--disaggregation-bootstrap-port", str(ports["bootstrap"])] if role == "prefill" else []
        extra = [*args, *flags, *bootstrap]
        pod = _worker_pod(topology, role, extra, selector, image, base, model_claim, model_path, cache_claim, ports)
        docs.append(
            _lws(name, namespace, selector, pod, replicas, topology.nodes_per_worker)
            if topology.nodes_per_worker > 1
            else _statefulset(f"{name}-{role}", namespace, selector, pod, replicas, cache_size)
        )
    docs.append(_router(name, namespace, labels, topology, selectors, image, ports, base))
    return docs


def _model_mount(model_path: str) -> str:
    """Where the model volume is mounted: the model's parent folder, absolute and not /."""
    if not model_path.startswith("/") or ".." in model_path.split("/"):
        raise WaferError(
            f"--model {model_path!r}: give the absolute path inside the model volume, e.g. /models/GLM-5.2"
        )
    mount = model_path.rstrip("/").rsplit("/", 1)[0]
    if not mount:
        raise WaferError(
            f"--model {model_path!r}: the model volume would be mounted at / (over the image); "
            "put the model in a folder of the volume, e.g. /models/GLM-5.2"
        )
    return mount


def _meta(name: str, namespace: str, labels: dict) -> dict:
    return {"name": name, "namespace": namespace, "labels": labels}


def _rbac(name: str, namespace: str, labels: dict) -> list[dict]:
    return [
        {"apiVersion": "v1", "kind": "ServiceAccount", "metadata": _meta(f"{name}-router", namespace, labels)},
        {
            "apiVersion": "rbac.authorization.k8s.io/v1",
            "kind": "Role",
            "metadata": _meta(f"{name}-router", namespace, labels),
            "rules": [{"apiGroups": [""], "resources": ["pods"], "verbs": ["get", "list", "watch"]}],
        },
        {
            "apiVersion": "rbac.authorization.k8s.io/v1",
            "kind": "RoleBinding",
            "metadata": _meta(f"{name}-router", namespace, labels),
            "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": f"{name}-router"},
            "subjects": [{"kind": "ServiceAccount", "name": f"{name}-router", "namespace": namespace}],
        },
    ]


def _router_service(name: str, namespace: str, labels: dict, ports: dict) -> dict:
    return {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": _meta(name, namespace, labels),
        "spec": {
            "type": "ClusterIP",
            "selector": {**labels, "app.kubernetes.io/component": "router"},
            "ports": [{"name": "http", "port": ports["router"], "targetPort": "http"}],
        },
    }


def _key_env() -> dict:
    return {"name": "WAFER_API_KEY", "valueFrom": {"secretKeyRef": {"name": SECRET, "key": SECRET_KEY}}}


def _probe(path: str, port: str, failures: int, period: int = 10) -> dict:
    return {
        "httpGet": {"path": path, "port": port},
        "periodSeconds": period,
        "failureThreshold": failures,
        "timeoutSeconds": 5,
    }


def _worker_pod(
    topology: Topology,
    role: str,
    args: list[str],
    labels: dict,
    image: str,
    base: str,
    model_claim: str,
    model_path: str,
    cache_claim: str,
    ports: dict,
) -> dict:
    recipe = dataclasses.replace(recipes.select(topology.recipe), launcher="sglang")
    flags = ["--host", "0.0.0.0", "--port", str(ports["worker"]), "--enable-metrics", "--api-key", "$(WAFER_API_KEY)"]
    expansion = recipes.expand(recipe, model_path, base, args + flags)
    env = [{"name": k, "value": v} for k, v in {**recipe.env, **CACHE_ENV}.items()] + [_key_env()]
    container = {
        "name": "sglang",
        "image": image,
        "command": ["python3", "-m", "sglang.launch_server"],
        "args": expansion.argv[3:],
        "env": env,
        "ports": [{"name": "http", "containerPort": ports["worker"]}],
        "resources": {"limits": {"amd.com/gpu": topology.gpus_per_worker // topology.nodes_per_worker}},
        "startupProbe": _probe("/health", "http", STARTUP_SECONDS // 10),
        "readinessProbe": _probe("/health", "http", 3),
        "livenessProbe": _probe("/health", "http", 6, 30),
        "volumeMounts": [
            {"name": "model", "mountPath": _model_mount(model_path), "readOnly": True},
            {"name": "cache", "mountPath": CACHE},
            {"name": "shm", "mountPath": "/dev/shm"},
        ],
    }
    volumes = [{"name": "model", "persistentVolumeClaim": {"claimName": model_claim, "readOnly": True}}]
    if topology.nodes_per_worker > 1:  # LeaderWorkerSet: the shared ReadWriteMany claim, a folder per pod
        volumes.append({"name": "cache", "persistentVolumeClaim": {"claimName": cache_claim}})
        container["volumeMounts"][1]["subPathExpr"] = "$(POD_NAME)"
        container["env"].append({"name": "POD_NAME", "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}}})
    volumes.append({"name": "shm", "emptyDir": {"medium": "Memory", "sizeLimit": "64Gi"}})
    return {
        "metadata": {"labels": labels},
        "spec": {
            "containers": [container],
            "volumes": volumes,
        },
    }


def _statefulset(name: str, namespace: str, labels: dict, pod: dict, replicas: int, cache_size: str) -> dict:
    """No serviceName: the router finds the pods by label, and workers get no Service (not even a
    headless one) of their own."""
    cache = {
        "metadata": {"name": "cache"},
        "spec": {"accessModes": ["ReadWriteOnce"], "resources": {"requests": {"storage": cache_size}}},
    }
    return {
        "apiVersion": "apps/v1",
        "kind": "StatefulSet",
        "metadata": _meta(name, namespace, labels),
        "spec": {
            "replicas": replicas,
            "podManagementPolicy": "Parallel",
            "selector": {"matchLabels": labels},
            "template": pod,
            "volumeClaimTemplates": [cache],
        },
    }


def _lws(name: str, namespace: str, labels: dict, pod: dict, replicas: int, size: int) -> dict:
    """A LeaderWorkerSet: rank 0 serves; the others join its rendezvous (LWS_LEADER_ADDRESS)."""

    def ranked(leader: bool) -> dict:
        template = {
            "metadata": pod["metadata"],
            "spec": {**pod["spec"], "containers": [dict(pod["spec"]["containers"][0])]},
        }
        container = template["spec"]["containers"][0]
        container["args"] = container["args"] + [
            "--nnodes",
            str(size),
            "--node-rank",
            "0" if leader else "$(LWS_WORKER_INDEX)",
            "--dist-init-addr",
            "$(LWS_LEADER_ADDRESS):5000",
        ]
        container["env"] = container["env"] + [
            {
                "name": "LWS_WORKER_INDEX",
                "valueFrom": {"fieldRef": {"fieldPath": "metadata.labels['leaderworkerset.sigs.k8s.io/worker-index']"}},
            }
        ]
        if not leader:  # only the leader serves HTTP
            for probe in ("startupProbe", "readinessProbe", "livenessProbe"):
                container.pop(probe, None)
        return template

    return {
        "apiVersion": "leaderworkerset.x-k8s.io/v1",
        "kind": "LeaderWorkerSet",
        "metadata": _meta(name, namespace, labels),
        "spec": {
            "replicas": replicas,
            "leaderWorkerTemplate": {"size": size, "leaderTemplate": ranked(True), "workerTemplate": ranked(False)},
        },
    }


def _router(
    name: str, namespace: str, labels: dict, topology: Topology, selectors: dict, image: str, ports: dict, base: str
) -> dict:
    router_labels = {**labels, "app.kubernetes.io/component": "router"}
    args = [
        *listen_args(ports),
        "--service-discovery",
        "--service-discovery-namespace",
        namespace,
        "--service-discovery-port",
        str(ports["worker"]),
    ]
    if topology.name == "pd":
        args += [
            "--prefill-selector",
            *_selector(selectors["prefill"]),
            "--decode-selector",
            *_selector(selectors["decode"]),
        ]
    else:
        leader = (
            {**selectors["worker"]}
            if topology.nodes_per_worker == 1
            else {**selectors["worker"], "leaderworkerset.sigs.k8s.io/worker-index": "0"}
        )
        args += ["--selector", *_selector(leader)]
    args += topology.router_args + ["--api-key", "$(WAFER_API_KEY)"]
    container = {
        "name": "router",
        "image": image,
        "command": release(base).launch_argv(),
        "args": args,
        "env": [_key_env()],
        "ports": [{"name": "http", "containerPort": ports["router"]}],
        "readinessProbe": _probe("/health", "http", 3),
        "livenessProbe": _probe("/health", "http", 6, 30),
    }
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": _meta(f"{name}-router", namespace, router_labels),
        "spec": {
            "replicas": 1,
            "selector": {"matchLabels": router_labels},
            "template": {
                "metadata": {"labels": router_labels},
                "spec": {"serviceAccountName": f"{name}-router", "containers": [container]},
            },
        },
    }


def _selector(labels: dict) -> list[str]:
    return [f"{k}={v}" for k, v in labels.items()]


def router_args_of(doc: dict) -> list[str]:
    return doc["spec"]["template"]["spec"]["containers"][0]["args"]


def dump(docs: list[dict]) -> str:
    """YAML without anchors: a manifest reads the same in every object (``&id001``/``*id001``
    appear where two objects share a dict, and some tools reject them)."""
    import yaml

    class Plain(yaml.SafeDumper):
        def ignore_aliases(self, data) -> bool:
            return True

    return yaml.dump_all(docs, Dumper=Plain, sort_keys=False)


def validate(docs: list[dict]) -> list[str]:
    """Errors from the Kubernetes schemas (kubernetes-validate, strict) for every document; a
    LeaderWorkerSet's pod templates are checked as core PodTemplateSpecs."""
    try:
        import kubernetes_validate
    except ImportError:
        raise WaferError(
            "checking manifests needs the k8s extra: pip install 'wafer-sglang[k8s]' "
            "(or --no-validate to write them unchecked)"
        ) from None

    errors = []
    for doc in docs:
        targets = [doc]
        if doc["kind"] == "LeaderWorkerSet":
            lws = doc["spec"]["leaderWorkerTemplate"]
            targets = [
                {
                    "apiVersion": "v1",
                    "kind": "PodTemplate",
                    "metadata": {"name": f"{doc['metadata']['name']}-{k}"},
                    "template": lws[k],
                }
                for k in ("leaderTemplate", "workerTemplate")
            ]
        for target in targets:
            try:
                kubernetes_validate.validate(target, KUBERNETES, strict=True)
            except kubernetes_validate.ValidationError as exc:
                errors.append(
                    f"{target['kind']} {target['metadata']['name']}: {exc.message} at {'/'.join(map(str, exc.path))}"
                )
    return errors
