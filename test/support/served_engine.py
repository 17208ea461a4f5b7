"""The fork's own sglang server, as users run it, on this CPU-only machine.

``shared(base)`` is one server per base for the whole test run, started by the first test
that asks (under a lock: pytest-xdist workers share it) and stopped by the controlling pytest
process at the end of the run (``stop_all``, from conftest). ``Server.start`` starts one for a
single test module (another model, upstream's pristine wheel). Either way:

* the engine is the base's engine environment (support/engine_env.py) and sglang's own CPU
  path: ``SGLANG_USE_CPU_ENGINE=1 --device cpu``; sglang picks torch_native attention and the
  pytorch sampler itself when sgl-kernel's CPU ops are absent;
* ``--max-total-tokens`` (otherwise the KV pool is sized from free RAM), ``--sleep-on-idle``
  (otherwise an idle scheduler spins a core), metrics, cache report and a random API key;
* the import stand-ins (support/engine/standins.py) load through a sitecustomize in every
  process sglang spawns, and every call into them lands in ``standin_calls``;
* ``variant="upstream"`` puts the base's pristine upstream tree in front of the installed fork
  (same environment, same dependencies: only the sglang package differs);
* TMPDIR, the log and the call record live in the run's folder under build/, removed at stop.
"""

from __future__ import annotations

import json
import os
import secrets
import signal
import subprocess
import sys
import time
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from pathlib import Path

from support import engine_env

ROOT = engine_env.ROOT
SITE = Path(__file__).resolve().parent / "engine" / "site"
RUN_ENV = "WAFER_TEST_RUN_DIR"
READY_TIMEOUT = 300  # 31-58 s here alone; up to ~170 s on a loaded 2-core machine
FLAGS = (
    "--device",
    "cpu",
    "--host",
    "127.0.0.1",
    "--max-total-tokens",
    "16384",
    "--sleep-on-idle",
    "--enable-metrics",
    "--enable-cache-report",
)


def run_dir() -> Path:
    """This test run's folder (conftest sets it before workers start); one per process otherwise."""
    if RUN_ENV not in os.environ:
        path = ROOT / "build" / "test-run" / f"pid{os.getpid()}"
        path.mkdir(parents=True, exist_ok=True)
        os.environ[RUN_ENV] = str(path)
    return Path(os.environ[RUN_ENV])


def run_key() -> str:
    """One random API key for every server of this run (an eval's two sides take one key)."""
    path = run_dir() / ".api-key"
    with engine_env.locked(run_dir() / ".api-key.lock"):
        if not path.is_file():
            path.touch(mode=0o600)
            path.write_text(secrets.token_hex(16))
        return path.read_text()


def sgl_kernel_standin(base: str) -> bool:
    """0.5.2x imports eight sgl_kernel CPU ops at module level; 0.5.14 imports none."""
    from packaging.version import Version

    return Version(base) >= Version("0.5.20")


@dataclass
class Server:
    name: str
    base: str
    variant: str
    model: str
    port: int
    api_key: str
    pid: int
    folder: str

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def headers(self) -> dict:
        return {"Authorization": f"Bearer {self.api_key}"}

    @property
    def log(self) -> Path:
        return Path(self.folder) / "server.log"

    @property
    def standin_calls(self) -> list[str]:
        path = Path(self.folder) / "standin-calls"
        return path.read_text().splitlines() if path.is_file() else []

    @classmethod
    def start(
        cls, name: str, base: str, model: Path, variant: str = "fork", launch=None, env: dict = (), port: int = 0
    ) -> Server:
        """Start and wait until it generates; the launcher leads its own process group.
        ``launch(python, server)`` gives another command that starts the same server (the
        ``serve`` command, the image's entrypoint); ``env`` adds to its environment."""
        python = engine_env.ensure(base)
        folder = run_dir() / name
        (folder / "tmp").mkdir(parents=True, exist_ok=True)
        server = cls(name, base, variant, str(model), port or _port(), run_key(), 0, str(folder))
        env = {
            **os.environ,
            **dict(env),
            "PYTHONPATH": os.pathsep.join(_python_path(base, variant)),
            "SGLANG_USE_CPU_ENGINE": "1",
            "WAFER_STANDIN_SGL_KERNEL": "1" if sgl_kernel_standin(base) else "0",
            "WAFER_STANDIN_CALLS": str(folder / "standin-calls"),
            "TMPDIR": str(folder / "tmp"),
            "HF_HUB_OFFLINE": "1",
        }
        argv = (launch or _launch_server)(python, server)
        with open(server.log, "wb") as log:
            process = subprocess.Popen(
                argv, env=env, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, start_new_session=True
            )
        server.pid = process.pid
        (folder / "server.json").write_text(json.dumps(asdict(server)))  # before the wait: stop_all finds it
        started = time.monotonic()
        server.wait_ready(process)
        print(f"sglang {name} ({base}): generating {time.monotonic() - started:.0f} s after launch", file=sys.stderr)
        return server

    def wait_ready(self, process: subprocess.Popen | None = None) -> None:
        from support.tiny_llm import wait_ok

        def exited() -> bool:
            return (process is not None and process.poll() is not None) or not _alive(self.pid)

        try:
            ready = wait_ok(self.url + "/health_generate", READY_TIMEOUT, exited, request_timeout=30)
        except RuntimeError:
            raise RuntimeError(f"sglang {self.name} exited at start:\n{self.log.read_text()[-4000:]}") from None
        if not ready:
            self.stop()
            raise RuntimeError(f"sglang {self.name} not ready in {READY_TIMEOUT} s:\n{self.log.read_text()[-4000:]}")

    def stop(self) -> list[str]:
        """SIGTERM to the launcher, as a user's Ctrl-C or `docker stop` would; returns the
        processes of its group still there afterwards (then killed) — empty when it drains."""
        import psutil

        try:
            group = [self.pid] + [c.pid for c in psutil.Process(self.pid).children(recursive=True)]
        except psutil.NoSuchProcess:
            group = []
        if _alive(self.pid):
            os.kill(self.pid, signal.SIGTERM)
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and any(_alive(p) for p in group):
            time.sleep(0.2)
        left = [f"{p} {_cmdline(p)}" for p in group if _alive(p)]
        if left:
            try:
                os.killpg(self.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        (Path(self.folder) / "server.json").unlink(missing_ok=True)  # stopped: stop_all skips it
        return left


def _launch_server(python: Path, server: Server) -> list[str]:
    argv = [str(python), "-m", "sglang.launch_server", "--model-path", server.model, "--port", str(server.port)]
    return [*argv, *FLAGS, "--api-key", server.api_key]


def _port() -> int:
    """A free port sglang accepts: it derives its gRPC port as --port + 10000 even over HTTP
    and refuses one above 65535 (0.5.14 server_args.py L2784-2791)."""
    import random
    import socket

    while True:
        port = random.randint(20000, 55000)
        with socket.socket() as s:
            try:
                s.bind(("127.0.0.1", port))
            except OSError:
                continue
            return port


def _python_path(base: str, variant: str) -> list[str]:
    path = [str(SITE)]
    if variant == "upstream":
        from support.engine_harness import tree

        path.insert(0, str(tree(base, "pristine")))
    return path


def _alive(pid: int) -> bool:
    import psutil

    try:
        return psutil.Process(pid).status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False


def _cmdline(pid: int) -> str:
    import psutil

    try:
        return " ".join(psutil.Process(pid).cmdline())[:200]
    except psutil.Error:
        return "?"


def shared_model() -> Path:
    """The suite's tiny model (HF format) that every shared server serves: it answers
    ANSWER to anything (support/tiny_llm.py), so an eval knows what it must score."""
    from support.tiny_llm import make_model

    with engine_env.locked(run_dir() / ".model.lock"):
        return make_model(run_dir() / "model", answer=ANSWER)


ANSWER = "#### 0 (A)\n"


def shared(base: str) -> Server:
    """The run's fork server for ``base``: started once, by whichever test asks first."""
    folder = run_dir() / f"fork-{base}"
    with engine_env.locked(run_dir() / f".fork-{base}.lock"):
        state = folder / "server.json"
        if state.is_file():
            server = Server(**json.loads(state.read_text()))
            server.wait_ready()  # fails at once if it died
            return server
        return Server.start(f"fork-{base}", base, shared_model())


@contextmanager
def running(name: str, base: str, model: Path | None = None, **start):
    """A server of a test module's own (a workload whose server-side counters no other test may
    move, another model, upstream's wheel, another launcher); on exit it must stop cleanly,
    stand-ins uncalled."""
    server = Server.start(name, base, model or shared_model(), **start)
    try:
        yield server
    finally:
        left = server.stop()
        assert left == [], f"sglang {name} left processes behind after SIGTERM: {left}"
        assert server.standin_calls == [], f"sglang {name} called a stand-in: {server.standin_calls}"


def stop_all() -> list[str]:
    """Stop every server of this run; the problems found (leftover processes, stand-in calls)."""
    import shutil

    if RUN_ENV not in os.environ or not Path(os.environ[RUN_ENV]).is_dir():
        return []
    problems = []
    for state in sorted(Path(os.environ[RUN_ENV]).glob("*/server.json")):
        server = Server(**json.loads(state.read_text()))
        problems += [f"sglang {server.name}: still running after SIGTERM: {p}" for p in server.stop()]
        problems += [f"sglang {server.name}: a stand-in was called: {c}" for c in server.standin_calls]
    shutil.rmtree(os.environ[RUN_ENV], ignore_errors=True)
    return problems
