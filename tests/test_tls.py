"""
LISTEN=ssl:...: the same API over TLS, to clients that check the server's
name against a certificate authority they trust.
"""

import json
import socket
import ssl
from datetime import datetime, timedelta, timezone

import pytest
import pytest_twisted
import treq
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID
from twisted.internet import reactor
from twisted.internet.ssl import Certificate, optionsForClientTLS
from twisted.internet.threads import deferToThread
from twisted.web.client import Agent, ResponseNeverReceived
from twisted.web.iweb import IPolicyForHTTPS
from zope.interface import implementer

from tests.worker import InProcessWorker

TOKEN = "tls-token-8d2a61"
AUTH = {"apikey": TOKEN}
SERVER_NAME = "session-worker.test"


def _name(common_name: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])


def _issue(subject, subject_key, issuer, issuer_key, extensions):
    now = datetime.now(timezone.utc)
    builder = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(issuer)
        .public_key(subject_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - timedelta(minutes=5))
        .not_valid_after(now + timedelta(days=1))
        .add_extension(
            x509.SubjectKeyIdentifier.from_public_key(subject_key.public_key()),
            critical=False,
        )
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(issuer_key.public_key()),
            critical=False,
        )
    )
    for extension, critical in extensions:
        builder = builder.add_extension(extension, critical=critical)
    return builder.sign(issuer_key, hashes.SHA256())


def _pem(certificate) -> bytes:
    return certificate.public_bytes(serialization.Encoding.PEM)


@pytest.fixture(scope="module")
def certificates(tmp_path_factory):
    """A CA, and a certificate for SERVER_NAME it signed: (folder, CA PEM)."""
    folder = tmp_path_factory.mktemp("tls")
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca = _issue(
        _name("session-worker test CA"),
        ca_key,
        _name("session-worker test CA"),
        ca_key,
        [
            (x509.BasicConstraints(ca=True, path_length=0), True),
            (
                x509.KeyUsage(
                    digital_signature=False,
                    content_commitment=False,
                    key_encipherment=False,
                    data_encipherment=False,
                    key_agreement=False,
                    key_cert_sign=True,
                    crl_sign=True,
                    encipher_only=False,
                    decipher_only=False,
                ),
                True,
            ),
        ],
    )
    server_key = ec.generate_private_key(ec.SECP256R1())
    server = _issue(
        _name(SERVER_NAME),
        server_key,
        ca.subject,
        ca_key,
        [
            (x509.BasicConstraints(ca=False, path_length=None), True),
            (x509.SubjectAlternativeName([x509.DNSName(SERVER_NAME)]), False),
            (x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), False),
        ],
    )
    (folder / "server.key").write_bytes(
        server_key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    (folder / "server.crt").write_bytes(_pem(server))
    (folder / "ca.crt").write_bytes(_pem(ca))
    return folder, _pem(ca)


@pytest.fixture
def worker(certificates, tmp_path, monkeypatch, no_proxy_env):
    folder, _ = certificates
    monkeypatch.chdir(tmp_path)
    listen = (
        f"ssl:0:interface=127.0.0.1:privateKey={folder / 'server.key'}"
        f":certKey={folder / 'server.crt'}"
    )
    running = InProcessWorker(
        token=TOKEN, store="memory:", listen=listen, **{"body-size": "1"}
    ).start()
    yield running
    pytest_twisted.blockon(running.stop())


@implementer(IPolicyForHTTPS)
class _Expecting:
    """A client TLS policy that trusts our CA and expects one server name."""

    def __init__(self, hostname: str, ca_pem: bytes) -> None:
        self.hostname = hostname
        self.trust = Certificate.loadPEM(ca_pem)

    def creatorForNetloc(self, hostname, port):
        return optionsForClientTLS(self.hostname, trustRoot=self.trust)


def _client(hostname: str, ca_pem: bytes) -> treq.client.HTTPClient:
    return treq.client.HTTPClient(
        Agent(reactor, contextFactory=_Expecting(hostname, ca_pem))
    )


async def _call(client, worker, method, path, body=None, headers=AUTH):
    data = json.dumps(body).encode() if isinstance(body, dict) else body
    url = f"https://127.0.0.1:{worker.port}{path}"
    response = await client.request(method, url, data=data, headers=headers)
    return response.code, await response.content()


@pytest_twisted.ensureDeferred
async def test_a_client_checking_the_server_name_is_served(worker, certificates):
    """The whole API answers over TLS as it does in the clear."""
    client = _client(SERVER_NAME, certificates[1])
    value = '{"noiseKey": {"private": "AQID"}}'

    assert await _call(client, worker, "OPTIONS", "/ping", headers={}) == (
        200,
        b"pong",
    )
    assert (await _call(client, worker, "POST", "/session", {"group": "g"}))[0] == 204
    answer = await _call(client, worker, "POST", "/session/g", {"instance": "i"})
    assert answer[0] == 204
    path = "/session/g/i/app-state-sync-key-AAAAAPj/kQ=="
    assert (await _call(client, worker, "POST", path, {"data": value}))[0] == 204
    assert await _call(client, worker, "GET", path) == (200, value.encode())
    assert (await _call(client, worker, "GET", "/session/g/i/creds"))[0] == 404
    assert (await _call(client, worker, "GET", path, headers={}))[0] == 401


@pytest_twisted.ensureDeferred
async def test_a_client_expecting_another_name_is_refused(worker, certificates):
    """service-identity refuses the handshake: no request is ever sent."""
    client = _client("other-worker.test", certificates[1])

    with pytest.raises(ResponseNeverReceived) as refused:
        await _call(client, worker, "GET", "/ping", headers={})

    reasons = " ".join(str(f.value) for f in refused.value.reasons)
    assert "other-worker.test" in reasons


@pytest_twisted.ensureDeferred
async def test_a_client_without_our_authority_is_refused(worker):
    """A certificate the client cannot trust fails the handshake too."""
    client = treq.client.HTTPClient(Agent(reactor))
    with pytest.raises(ResponseNeverReceived):
        await _call(client, worker, "GET", "/ping", headers={})


def _send_over_tls(port: int, ca_pem: bytes, head: bytes, body_chunks) -> bytes:
    """Send a request whose body may be refused midway; return all read back."""
    context = ssl.create_default_context(cadata=ca_pem.decode("ascii"))
    raw = socket.create_connection(("127.0.0.1", port), timeout=10)
    answer = b""
    # A TLS connection cut without close_notify is an error here, as it is to
    # strict clients: it cannot be told from a truncated answer.
    with context.wrap_socket(
        raw, server_hostname=SERVER_NAME, suppress_ragged_eofs=False
    ) as s:
        s.sendall(head)
        try:
            for chunk in body_chunks:
                s.sendall(chunk)
        except OSError:
            pass  # The server stopped reading: expected after a refusal.
        while True:
            data = s.recv(65536)
            if not data:
                break
            answer += data
    return answer


@pytest_twisted.ensureDeferred
async def test_a_body_over_the_limit_is_refused_with_413_over_tls(worker, certificates):
    """
    The refusal reaches a client still sending, and TLS ends with
    close_notify, not with a cut a client would take for a truncation.
    """
    head = (
        b"POST /session/g/i/creds HTTP/1.1\r\nHost: worker\r\n"
        b"apikey: " + TOKEN.encode() + b"\r\n"
        b"Content-Length: %d\r\n\r\n" % (1024**3,)
    )
    chunks = (b"x" * (1024 * 1024) for _ in range(64))

    answer = await deferToThread(
        _send_over_tls, worker.port, certificates[1], head, chunks
    )

    head, _, body = answer.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 413 ")
    assert json.loads(body)["error"] == "payload_too_large"
