"""The warm interpreter (tests/warm.py) runs a script as `python script.py` would: what a test reads of the process
(exit status, output, folder, environment, argv, __main__, atexit) is the same as from a fresh interpreter."""

import subprocess
import sys
import textwrap
import time

import pytest
import warm

SCRIPT = textwrap.dedent(
    """
    import atexit, json, os, sys
    atexit.register(lambda: print("atexit ran"))
    print(json.dumps({"argv": sys.argv[1:], "cwd": os.getcwd(), "name": __name__, "path0": sys.path[0],
                      "env": os.environ.get("WARM_TEST"), "stdin": sys.stdin.read()}))
    print("to stderr", file=sys.stderr)
    if sys.argv[1] == "fail":
        raise ValueError("a bug")
    sys.exit(int(sys.argv[1]))
    """
)


@pytest.fixture
def script(tmp_path):
    path = tmp_path / "folder" / "script.py"
    path.parent.mkdir()
    path.write_text(SCRIPT)
    return path


@pytest.mark.parametrize("argument", ["0", "3", "fail"])
def test_a_script_run_warm_is_seen_as_the_same_process_a_fresh_interpreter_runs(script, tmp_path, argument):
    command = [sys.executable, str(script), argument, "a=b c"]
    env = {"WARM_TEST": "set here", "PATH": "/usr/bin:/bin"}
    fresh = subprocess.run(
        command, cwd=tmp_path, env=env, stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=60
    )
    warmed = warm.run(command, cwd=tmp_path, env=env, timeout=60)

    assert warmed.returncode == fresh.returncode
    assert warmed.stdout == fresh.stdout
    assert warmed.stderr.splitlines()[0] == fresh.stderr.splitlines()[0] == "to stderr"
    assert warmed.stderr.splitlines()[-1] == fresh.stderr.splitlines()[-1]  # ValueError: a bug, where it failed


@pytest.mark.slow  # it waits out a timeout
def test_a_script_past_its_timeout_is_killed_with_what_it_started(tmp_path):
    script = tmp_path / "sleeps.py"
    marker = tmp_path / "child.pid"
    script.write_text(
        "import subprocess, sys, time\n"
        f"child = subprocess.Popen([sys.executable, '-c', 'import time; time.sleep(600)'])\n"
        f"open({str(marker)!r}, 'w').write(str(child.pid))\n"
        "time.sleep(600)\n"
    )

    with pytest.raises(subprocess.TimeoutExpired):
        warm.run([sys.executable, str(script)], cwd=tmp_path, timeout=5)

    child = int(marker.read_text())
    for _ in range(100):  # the kill is asynchronous: poll for the grandchild's end, bounded
        try:
            state = open(f"/proc/{child}/stat").read().split()[2]
        except FileNotFoundError:
            break
        if state == "Z":  # ended, not yet reaped by init
            break
        time.sleep(0.05)
    else:
        pytest.fail(f"process {child}, started by the script, outlived its timeout")
