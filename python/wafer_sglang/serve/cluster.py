"""Past one node: the exact worker commands per node and the one router command, for a topology
(data/topologies.toml) over a list of nodes.

Security by default: workers bind their node's private address (the one given in the node
list), the router is the only public endpoint, its Prometheus port binds 127.0.0.1, and one API
key (``$WAFER_API_KEY``, referenced, never written) reaches the router and every worker. Worker
flags are checked against the base's real ServerArgs CLI; router flags against the installed
sglang-router's own parser (serve/router.py).
"""

from __future__ import annotations

import dataclasses
import shlex
from dataclasses import dataclass, field

from wafer_sglang.errors import WaferError
from wafer_sglang.serve import names, recipes
from wafer_sglang.serve.router import check_router_argv, listen_args, release
from wafer_sglang.serve.topologies import config

KEY_REF = "${WAFER_API_KEY}"  # the plan refers to the key; its value is never in a plan or a file


@dataclass(frozen=True)
class Topology:
    name: str
    purpose: str
    recipe: str
    gpus_per_worker: int
    router_args: list[str]
    worker_args: list[str] = field(default_factory=list)
    prefill_args: list[str] = field(default_factory=list)
    decode_args: list[str] = field(default_factory=list)
    workers_per_node: int = 1
    nodes_per_worker: int = 1


@dataclass
class Process:
    node: str  # the address it runs on
    role: str  # worker | prefill | decode | router
    env: dict[str, str]
    argv: list[str]
    url: str | None = None  # where the router reaches it

    def shell(self) -> str:
        """One shell line; the key stays a reference to the environment."""
        return f"{self._env()} {self._command()}".strip()

    def exec_line(self) -> str:
        """The script's last line. ``exec VAR=x cmd`` would exec a file named ``VAR=x`` (exit 127):
        the variables go through env(1)."""
        env = self._env()
        return f"exec env {env} {self._command()}" if env else f"exec {self._command()}"

    def _env(self) -> str:
        return " ".join(f"{k}={shlex.quote(v)}" for k, v in self.env.items())

    def _command(self) -> str:
        return " ".join(f'"{KEY_REF}"' if a == KEY_REF else shlex.quote(a) for a in self.argv)


@dataclass
class ClusterPlan:
    topology: Topology
    base: str
    processes: list[Process]
    notes: list[str]

    @property
    def router(self) -> Process:
        return next(p for p in self.processes if p.role == "router")


def load_topology(name: str) -> Topology:
    topologies = config()["topology"]
    if name not in topologies:
        raise WaferError(f"unknown topology {name!r}; known: {', '.join(topologies)}")
    entry = {k.replace("-", "_"): v for k, v in topologies[name].items()}
    return Topology(name=name, **entry)


def plan(
    topology: Topology,
    model: str,
    base: str,
    nodes: list[str],
    *,
    prefill_nodes: list[str] = (),
    decode_nodes: list[str] = (),
    router_node: str | None = None,
    api_key: bool = True,
    extra: list[str] = (),
) -> ClusterPlan:
    """``extra``: sglang flags for every worker (e.g. --disaggregation-ib-device), which win,
    except those the topology itself sets (parallelism, rendezvous, addresses)."""
    refuse_worker_flags(extra, topology, base)
    nodes, prefill_nodes, decode_nodes = (names.node_list(n) if n else [] for n in (nodes, prefill_nodes, decode_nodes))
    router_node = names.node_address(router_node) if router_node else None
    ports = config()["ports"]
    recipe = dataclasses.replace(recipes.select(topology.recipe), launcher="sglang")
    notes = [n for n in recipe.notes if "--no-router" not in n]  # a cluster always routes
    topology = dataclasses.replace(
        topology,
        worker_args=[*topology.worker_args, *extra],
        prefill_args=[*topology.prefill_args, *extra],
        decode_args=[*topology.decode_args, *extra],
    )
    if topology.name == "pd":
        if not prefill_nodes or not decode_nodes:
            raise WaferError("the pd topology needs --prefill-nodes and --decode-nodes")
        workers = _pd_workers(topology, recipe, model, base, prefill_nodes, decode_nodes, ports, api_key)
    elif topology.name == "tp":
        workers = _tp_workers(topology, recipe, model, base, nodes, ports, api_key)
    else:
        workers = _dp_workers(topology, recipe, model, base, nodes, ports, api_key)
    if not workers:
        raise WaferError("no nodes given (--nodes IP,IP,...)")
    router_node = router_node or workers[0].node
    launcher = release(base).launch_argv()
    router = Process(router_node, "router", {}, [*launcher, *_router_args(topology, workers, ports, api_key)])
    check_router_argv(router.argv[len(launcher) :], base)
    return ClusterPlan(topology, base, workers + [router], notes)


# What a topology decides for each worker: a change here would not move the GPU split
# (HIP_VISIBLE_DEVICES), the ranks or the router's worker addresses with it.
TOPOLOGY_DESTS = ("tp_size", "dp_size", "pp_size", "nnodes", "node_rank", "dist_init_addr", "base_gpu_id")
ADDRESS_DESTS = ("host", "port")
SECRET_DESTS = ("api_key", "admin_api_key")  # a literal key would sit in every 0755 script


def refuse_worker_flags(extra, topology: Topology, base: str) -> None:
    """Extra sglang flags for every worker that the plan sets itself, or that would write a key."""
    flags = recipes.ServerFlags(base)
    for name in (token.split("=", 1)[0] for token in extra if token.startswith("--")):
        option = flags.resolve(name)
        dest = flags.dest(option) if option else None
        if dest in TOPOLOGY_DESTS:
            raise WaferError(
                f"{name} is set by the {topology.name} topology ({topology.gpus_per_worker} GPUs per worker, split "
                "across the node by the plan): choose another topology, or change it in data/topologies.toml"
            )
        if dest in ADDRESS_DESTS:
            raise WaferError(f"{name} is set by the plan (--nodes, and the ports in data/topologies.toml)")
        if dest in SECRET_DESTS:
            raise WaferError(
                f"{name} would write the key into every generated script or manifest: they refer to "
                "$WAFER_API_KEY instead (export it on every node, or create the wafer-api-key Secret)"
            )


def _worker(
    recipe,
    model: str,
    base: str,
    node: str,
    port: int,
    args: list[str],
    api_key: bool,
    env: dict,
    role: str,
    serves: bool = True,
) -> Process:
    extra = [*args, "--host", node, "--port", str(port), "--enable-metrics"] + (
        ["--api-key", KEY_REF] if api_key else []
    )
    expansion = recipes.expand(recipe, model, base, extra)
    argv = ["python3", *expansion.argv[1:]]  # run on another host: its python3, not ours
    return Process(node, role, {**recipe.env, **env}, argv, f"http://{node}:{port}" if serves else None)


def _gpus(index: int, per_worker: int) -> str:
    return ",".join(str(g) for g in range(index * per_worker, (index + 1) * per_worker))


def _dp_workers(topology, recipe, model, base, nodes, ports, api_key) -> list[Process]:
    return [
        _worker(
            recipe,
            model,
            base,
            node,
            ports["worker"] + i,
            topology.worker_args,
            api_key,
            {"HIP_VISIBLE_DEVICES": _gpus(i, topology.gpus_per_worker)},
            "worker",
        )
        for node in nodes
        for i in range(topology.workers_per_node)
    ]


def _pd_workers(topology, recipe, model, base, prefill_nodes, decode_nodes, ports, api_key) -> list[Process]:
    bootstrap = ["--disaggregation-bootstrap-port", str(ports["bootstrap"])]
    return [
        _worker(recipe, model, base, n, ports["worker"], topology.prefill_args + bootstrap, api_key, {}, "prefill")
        for n in prefill_nodes
    ] + [
        _worker(recipe, model, base, n, ports["worker"], topology.decode_args, api_key, {}, "decode")
        for n in decode_nodes
    ]


def _tp_workers(topology, recipe, model, base, nodes, ports, api_key) -> list[Process]:
    size = topology.nodes_per_worker
    if len(nodes) % size:
        raise WaferError(f"the tp topology spans {size} nodes per server: give a multiple of {size} nodes")
    out = []
    for first in range(0, len(nodes), size):
        group = nodes[first : first + size]
        for rank, node in enumerate(group):
            args = [
                *topology.worker_args,
                "--nnodes",
                str(size),
                "--node-rank",
                str(rank),
                "--dist-init-addr",
                f"{group[0]}:{ports['dist-init']}",
            ]
            # every rank runs the same server command; only rank 0 serves HTTP (the router's target)
            out.append(
                _worker(recipe, model, base, node, ports["worker"], args, api_key, {}, "worker", serves=rank == 0)
            )
    return out


def _router_args(topology: Topology, workers: list[Process], ports: dict, api_key: bool) -> list[str]:
    argv = listen_args(ports)
    if topology.name == "pd":
        for w in workers:
            if w.role == "prefill":
                argv += ["--prefill", w.url, str(ports["bootstrap"])]
            else:
                argv += ["--decode", w.url]
    else:
        argv += ["--worker-urls", *[w.url for w in workers if w.url]]
    argv += topology.router_args
    return argv + (["--api-key", KEY_REF] if api_key else [])
