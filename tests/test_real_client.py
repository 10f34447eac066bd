"""
The worker as a WhatsApp API server uses it: axios under Node.js, making the
calls of whatsapp-api's session provider (tests/client/provider-client.mjs).
"""

import os
import shutil
import subprocess

import pytest

from tests.worker import ROOT, TwistdWorker, free_port

CLIENT = ROOT / "tests" / "client"
TOKEN = "real-client-token"


@pytest.fixture(scope="module")
def node_client():
    """The client folder with axios installed, or a skip saying why not."""
    node, npm = shutil.which("node"), shutil.which("npm")
    if not (node and npm):
        if os.environ.get("SESSION_WORKER_REQUIRE_NODE") == "1":
            pytest.fail("Node.js and npm are required here but not installed")
        pytest.skip("Node.js and npm are not installed: no axios client to run")
    if not (CLIENT / "node_modules" / "axios").is_dir():
        subprocess.run(
            [
                npm,
                "install",
                "--no-audit",
                "--no-fund",
                "--no-package-lock",
                "--silent",
            ],
            cwd=CLIENT,
            check=True,
            timeout=300,
        )
    return node


def test_the_session_provider_of_whatsapp_api_is_served(node_client, tmp_path):
    worker = TwistdWorker(tmp_path, free_port(), GLOBAL_AUTH_TOKEN=TOKEN).start()
    try:
        result = subprocess.run(
            [node_client, str(CLIENT / "provider-client.mjs"), worker.url, TOKEN],
            capture_output=True,
            text=True,
            timeout=120,
        )
    finally:
        worker.stop()
    assert result.returncode == 0, result.stdout + result.stderr
    assert "all calls answered as whatsapp-api expects" in result.stdout
