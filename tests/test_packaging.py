"""
The package as a user installs it: a wheel built from this tree, installed
(not editable) into a fresh virtualenv, run from an unrelated folder.
"""

import subprocess
import sys
import venv

import pytest

from tests.worker import ROOT, free_port, twistd_environment

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def fresh_venv(tmp_path_factory):
    """A new virtualenv with session-worker installed from a built wheel."""
    folder = tmp_path_factory.mktemp("fresh")
    wheels = folder / "wheels"
    subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "wheel",
            "--quiet",
            "--no-deps",
            "--wheel-dir",
            str(wheels),
            str(ROOT),
        ],
        check=True,
        timeout=300,
    )
    (wheel,) = wheels.glob("session_worker-*.whl")

    env = folder / "venv"
    venv.EnvBuilder(with_pip=True).create(env)
    subprocess.run(
        [str(env / "bin" / "pip"), "install", "--quiet", str(wheel)],
        check=True,
        timeout=600,
    )
    return env


def _clean_environment(**variables):
    environ = twistd_environment(**variables)
    # Nothing of this tree may leak in: the installed copy must stand alone.
    environ.pop("PYTHONPATH", None)
    return environ


def test_the_installed_plugin_is_listed_by_twistd_anywhere(fresh_venv, tmp_path):
    result = subprocess.run(
        [str(fresh_venv / "bin" / "twistd"), "--help"],
        cwd=tmp_path,
        env=_clean_environment(),
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0
    assert "session-worker" in result.stdout


def test_the_installed_worker_serves_from_any_folder(fresh_venv, tmp_path):
    port = free_port()
    process = subprocess.Popen(
        [str(fresh_venv / "bin" / "twistd"), "-n", "--pidfile=", "session-worker"],
        cwd=tmp_path,
        env=_clean_environment(
            GLOBAL_AUTH_TOKEN="installed", LISTEN=f"tcp:{port}:interface=127.0.0.1"
        ),
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )
    try:
        probe = (
            "import sys, time, urllib.request\n"
            "for _ in range(200):\n"
            "    try:\n"
            f"        r = urllib.request.urlopen('http://127.0.0.1:{port}/ping')\n"
            "        sys.exit(0 if r.read() == b'pong' else 2)\n"
            "    except OSError:\n"
            "        time.sleep(0.05)\n"
            "sys.exit(1)\n"
        )
        assert subprocess.run([sys.executable, "-c", probe], timeout=60).returncode == 0
        assert (tmp_path / "instances" / "sessions.db").is_file()
    finally:
        process.terminate()
        output = process.communicate(timeout=30)[0].decode()
    assert "session-worker 1.0.0 starting" in output
