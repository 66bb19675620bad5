"""`python train.py ...` (or eval.py, predict.py, export.py) as a process forked from a warm interpreter: one that has
already imported torch, Lightning, Hydra and the project, so a test's run skips the ~6 s of CPU each fresh
interpreter spends importing them (most of the suite's time, on 2 cores).

`run(command, ...)` takes what `subprocess.run(command, capture_output=True, text=True, ...)` takes and returns the
same `CompletedProcess`. The child is a process of its own (own pid, folder, environment, argv, exit status, its own
process group) that runs the script as `python script.py` would, from `__main__` through the interpreter's normal
exit (atexit, flushes); only the imports were done before the fork. So it is not for tests of what a fresh
interpreter does at start-up (warnings at import, `-W`, `PYTHONWARNINGS`, signal dispositions set before exec,
resource limits): those start `sys.executable` themselves (`conftest.started_after`).

One server per test process (an xdist worker), started on first use by a fresh interpreter (`python tests/warm.py`),
never forked from the test process (whose threads make a fork unsafe). It forks only while it has no Python thread of
its own; torch, numpy's BLAS and Arrow's allocator register their own fork handlers, as for DataLoader workers.
"""

from __future__ import annotations

import atexit
import json
import os
import select
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

PRELOAD = (
    "numpy",
    "torch",
    "lightning",
    "torchmetrics",
    "hydra",
    "omegaconf",
    "tensorboard",
    "torch.utils.tensorboard",
    "rich",
    "logreg.checking",
    "logreg.training",
    "logreg.evaluation",
    "logreg.prediction",
    "logreg.export",
    "optuna",
    "hydra._internal.hydra",
    "hydra._internal.config_loader_impl",
    "hydra.core.plugins",
    "matplotlib.figure",  # the charts of the plots callback (logreg.charts: a Figure on an Agg canvas, no pyplot)
    "matplotlib.backends.backend_agg",
    "logreg.charts",
)


# ----------------------------------------------------------------------------------------------------- the server


def _serve(requests, replies) -> None:
    """One request (a JSON line: argv, cwd, env, stdout, stderr paths) at a time: fork, reply the child's pid, wait,
    reply its exit status."""
    for line in requests:
        request = json.loads(line)
        pid = os.fork()
        if pid == 0:
            requests.close()
            replies.close()
            _become(request)  # never returns: the script's SystemExit ends this process as it ends `python script.py`
        replies.write(json.dumps({"pid": pid}) + "\n")
        replies.flush()
        _, status, usage = os.wait4(pid, 0)
        cpu = usage.ru_utime + usage.ru_stime
        replies.write(json.dumps({"returncode": os.waitstatus_to_exitcode(status), "cpu": cpu}) + "\n")
        replies.flush()


def _become(request: dict) -> None:
    """In the forked child: the process `python <argv>` would be, then run the script as its __main__."""
    import runpy

    os.setpgid(0, 0)  # its own process group: a timeout kills it with whatever it started (DDP ranks, workers)
    os.chdir(request["cwd"])
    os.environ.clear()
    os.environ.update(request["env"])
    null = os.open(os.devnull, os.O_RDONLY)
    os.dup2(null, 0)
    for fd, path in ((1, request["stdout"]), (2, request["stderr"])):
        out = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
        os.dup2(out, fd)
        os.close(out)
    script = os.path.abspath(request["argv"][0])
    sys.argv = [script, *request["argv"][1:]]
    sys.path[0] = os.path.dirname(script)  # as for `python script.py`
    runpy.run_path(script, run_name="__main__")
    sys.exit(0)


def main() -> None:
    # The requests and replies move off fds 0 and 1, so that a child's own stdin and stdout can take those fds
    requests = os.fdopen(os.dup(0), "r")
    replies = os.fdopen(os.dup(1), "w")
    null = os.open(os.devnull, os.O_RDWR)
    os.dup2(null, 0)
    os.dup2(2, 1)
    try:
        import matplotlib

        matplotlib.use("Agg")
    except ImportError:
        pass
    for name in PRELOAD:
        try:
            __import__(name)
        except ImportError:  # an optional extra not installed: the child imports what it needs itself
            pass
    import pkgutil

    import hydra_plugins  # Hydra's plugins (a namespace package): imported, as Hydra's discovery would, not registered

    for plugin in pkgutil.walk_packages(hydra_plugins.__path__, "hydra_plugins."):
        try:
            __import__(plugin.name)
        except ImportError:
            pass
    import threading

    assert threading.active_count() == 1, "the warm interpreter started a thread: a fork would copy it half-done"
    replies.write(json.dumps({"ready": True}) + "\n")
    replies.flush()
    _serve(requests, replies)


# ----------------------------------------------------------------------------------------------------- the client

_server: subprocess.Popen | None = None


def _started() -> subprocess.Popen:
    global _server
    if _server is None or _server.poll() is not None:
        # unbuffered: a reply is read byte by byte after select says it is there (a buffered reader could take the
        # next reply into its buffer along with this one, where select no longer sees it)
        _server = subprocess.Popen([sys.executable, __file__], stdin=subprocess.PIPE, stdout=subprocess.PIPE, bufsize=0)
        assert json.loads(_reply(_server, 300)) == {"ready": True}
        atexit.register(_stop, _server)
    return _server


def _stop(server: subprocess.Popen) -> None:
    """At the test process's end: the server sees its requests end, and exits."""
    if server.stdin is not None:
        server.stdin.close()
    server.wait(timeout=60)


def _reply(server: subprocess.Popen, timeout: float) -> str:
    """The server's next reply line, within `timeout` seconds."""
    assert server.stdout is not None
    deadline, line = time.monotonic() + timeout, b""
    while not line.endswith(b"\n"):
        ready, _, _ = select.select([server.stdout], [], [], max(0.0, deadline - time.monotonic()))
        if not ready:
            raise TimeoutError
        byte = os.read(server.stdout.fileno(), 1)
        if not byte:
            raise RuntimeError(f"the warm interpreter ended (status {server.wait()})")
        line += byte
    return line.decode()


def _send(server: subprocess.Popen, request: dict) -> None:
    assert server.stdin is not None
    data = memoryview((json.dumps(request) + "\n").encode())
    while data:
        data = data[os.write(server.stdin.fileno(), data) :]


def run(
    command: list[str],
    *,
    cwd: str | Path | None = None,
    env: dict[str, str] | None = None,
    timeout: float = 300,
    capture_output: bool = True,
    text: bool = True,
) -> subprocess.CompletedProcess:
    """`subprocess.run(command, capture_output=True, text=True, cwd=cwd, env=env, timeout=timeout)`, where `command`
    is `[sys.executable, script, *arguments]`, forked from the warm interpreter."""
    assert capture_output and text, "the warm interpreter captures text output, as the suite's runs do"
    assert command[0] == sys.executable and command[1].endswith(".py"), f"not `python script.py ...`: {command}"
    environment = dict(os.environ if env is None else env)
    if environment.get("PYTHONPATH") != os.environ.get("PYTHONPATH"):  # another sys.path: a fresh interpreter
        return subprocess.run(command, cwd=cwd, env=environment, timeout=timeout, capture_output=True, text=True)
    server = _started()
    with tempfile.TemporaryDirectory() as folder:
        out, err = Path(folder, "stdout"), Path(folder, "stderr")
        request = {
            "argv": [str(part) for part in command[1:]],
            "cwd": str(cwd or os.getcwd()),
            "env": environment,
            "stdout": str(out),
            "stderr": str(err),
        }
        _send(server, request)
        pid = json.loads(_reply(server, 60))["pid"]
        deadline = time.monotonic() + timeout
        try:
            returncode = json.loads(_reply(server, timeout))["returncode"]
        except TimeoutError:
            try:
                os.killpg(pid, signal.SIGKILL)
            except ProcessLookupError:  # it ended just now
                pass
            _reply(server, max(1.0, deadline - time.monotonic() + 60))
            raise subprocess.TimeoutExpired(command, timeout, out.read_text(), err.read_text()) from None
        return subprocess.CompletedProcess(command, returncode, out.read_text(), err.read_text())


if __name__ == "__main__":
    main()
