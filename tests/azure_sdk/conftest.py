"""Fixtures for the Azure SDK compatibility tests.

A real `lockstep serve` process is started once per test session, on a random
loopback port, with a fresh data directory. The tests then talk to it with the
unmodified official Azure SDK for Python (azure-identity + azure-keyvault-secrets).

Server contract relied upon here:
  * `lockstep serve --data-dir DIR --listen 127.0.0.1:0` prints exactly one stdout
    line `Lockstep is listening on https://localhost:<PORT>` once it is ready;
  * by then DIR/bootstrap-admin.json exists with the keys tenant_id, client_id,
    client_secret, authority, vault_url and ca_cert (absolute path to the CA PEM);
  * SIGTERM stops it with exit status 0.

Environment:
  LOCKSTEP_BIN  path of the server binary (default: <repo>/target/debug/lockstep)
"""

from __future__ import annotations

import dataclasses
import json
import os
import queue
import re
import signal
import socket
import subprocess
import threading
import time
from pathlib import Path
from typing import IO, Iterator

import pytest
from azure.identity import ClientSecretCredential
from azure.keyvault.secrets import SecretClient

REPO_ROOT = Path(__file__).resolve().parents[2]
VAULT_HOST = "default.vault.localhost"
STARTUP_TIMEOUT_S = 60.0
SHUTDOWN_TIMEOUT_S = 30.0
LISTENING_RE = re.compile(r"^Lockstep is listening on https://localhost:(\d+)$")

# Transport settings shared by every SDK object the tests build: fail fast instead
# of hanging (azure-core's defaults are a 300 s read timeout and 10 retries).
SDK_TRANSPORT_OPTIONS = {"connection_timeout": 10, "read_timeout": 60, "retry_total": 3}


@dataclasses.dataclass(frozen=True)
class LockstepServer:
    """Coordinates of the running server and of its bootstrap admin principal."""

    port: int
    authority: str  # https://localhost:<port>
    vault_url: str  # https://default.vault.localhost:<port>
    tenant_id: str
    client_id: str
    client_secret: str
    ca_cert: str  # absolute path of the CA certificate (PEM)
    data_dir: Path
    log_path: Path

    def credential(self, client_secret: str | None = None) -> ClientSecretCredential:
        """A ClientSecretCredential for the bootstrap admin (or with another secret)."""
        return ClientSecretCredential(
            self.tenant_id,
            self.client_id,
            client_secret if client_secret is not None else self.client_secret,
            authority=self.authority,
            disable_instance_discovery=True,
            connection_verify=self.ca_cert,
            **SDK_TRANSPORT_OPTIONS,
        )

    def secret_client(self, credential: ClientSecretCredential) -> SecretClient:
        """A SecretClient for the default vault; challenge-resource verification stays on."""
        return SecretClient(
            vault_url=self.vault_url,
            credential=credential,
            connection_verify=self.ca_cert,
            **SDK_TRANSPORT_OPTIONS,
        )


def _check_vault_host_resolves() -> None:
    try:
        socket.getaddrinfo(VAULT_HOST, 443, type=socket.SOCK_STREAM)
    except socket.gaierror as exc:
        pytest.fail(
            f"{VAULT_HOST} does not resolve ({exc}). Vaults are addressed as "
            f"https://<vault>.vault.localhost:<port>, so *.localhost names must resolve to "
            f"loopback: run `sudo {REPO_ROOT / 'scripts' / 'setup-localhost-dns'}` once.",
            pytrace=False,
        )


def _server_binary() -> Path:
    binary = Path(os.environ.get("LOCKSTEP_BIN", REPO_ROOT / "target" / "debug" / "lockstep"))
    if not binary.is_file() or not os.access(binary, os.X_OK):
        pytest.fail(
            f"server binary not found at {binary}: build it (`cargo build -p lockstep-cli --bin lockstep`) "
            "or point LOCKSTEP_BIN at it",
            pytrace=False,
        )
    return binary


class _ServerProcess:
    """A `lockstep serve` child whose stdout and stderr are drained into a log file
    by two threads until it exits, so that neither pipe can ever fill up and block it."""

    def __init__(self, binary: Path, data_dir: Path, log_path: Path) -> None:
        self.log_path = log_path
        self._log = open(log_path, "w", encoding="utf-8")
        self._log_lock = threading.Lock()
        self._stdout_lines: "queue.Queue[str]" = queue.Queue()
        self._proc = subprocess.Popen(
            [str(binary), "serve", "--data-dir", str(data_dir), "--listen", "127.0.0.1:0"],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            encoding="utf-8",
            errors="replace",
            bufsize=1,
        )
        self._pumps = [
            threading.Thread(target=self._pump, args=(self._proc.stdout, "", True), daemon=True),
            threading.Thread(target=self._pump, args=(self._proc.stderr, "[stderr] ", False), daemon=True),
        ]
        for pump in self._pumps:
            pump.start()

    def _pump(self, stream: IO[str], prefix: str, keep_lines: bool) -> None:
        for raw in stream:
            line = raw.rstrip("\r\n")
            with self._log_lock:
                self._log.write(f"{prefix}{line}\n")
                self._log.flush()
            if keep_lines:
                self._stdout_lines.put(line)
        stream.close()

    def wait_for_port(self, timeout_s: float) -> int:
        """Read stdout lines until the 'listening' line; return the port it names."""
        deadline = time.monotonic() + timeout_s
        while True:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise RuntimeError(f"no 'Lockstep is listening on ...' line within {timeout_s:.0f} s")
            try:
                line = self._stdout_lines.get(timeout=min(remaining, 0.5))
            except queue.Empty:
                stdout_closed = not self._pumps[0].is_alive() and self._stdout_lines.empty()
                if stdout_closed and self._proc.poll() is not None:
                    raise RuntimeError(f"server exited with status {self._proc.returncode} before listening")
                continue
            match = LISTENING_RE.match(line.strip())
            if match:
                return int(match.group(1))

    def stop(self) -> int | None:
        """SIGTERM, wait, and return the exit status (None if it had to be killed)."""
        status: int | None
        if self._proc.poll() is None:
            self._proc.send_signal(signal.SIGTERM)
            try:
                status = self._proc.wait(timeout=SHUTDOWN_TIMEOUT_S)
            except subprocess.TimeoutExpired:
                self._proc.kill()
                self._proc.wait()
                status = None
        else:
            status = self._proc.returncode
        for pump in self._pumps:
            pump.join(timeout=5)
        if not self._log.closed:
            self._log.close()
        return status

    def output_tail(self, n: int = 40) -> str:
        try:
            lines = self.log_path.read_text(encoding="utf-8", errors="replace").splitlines()
        except OSError:
            return "(no output)"
        return "\n".join(lines[-n:]) or "(no output)"


def _server_from_bootstrap(port: int, data_dir: Path, log_path: Path) -> LockstepServer:
    bootstrap_path = data_dir / "bootstrap-admin.json"
    try:
        bootstrap = json.loads(bootstrap_path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise RuntimeError(f"cannot read {bootstrap_path}: {exc}") from None
    missing = {"tenant_id", "client_id", "client_secret", "authority", "vault_url", "ca_cert"} - set(bootstrap)
    if missing:
        raise RuntimeError(f"{bootstrap_path} lacks {sorted(missing)}")

    server = LockstepServer(
        port=port,
        authority=f"https://localhost:{port}",
        vault_url=f"https://{VAULT_HOST}:{port}",
        tenant_id=bootstrap["tenant_id"],
        client_id=bootstrap["client_id"],
        client_secret=bootstrap["client_secret"],
        ca_cert=bootstrap["ca_cert"],
        data_dir=data_dir,
        log_path=log_path,
    )
    # The bootstrap file must describe the same server as the printed line.
    for key, expected in (("authority", server.authority), ("vault_url", server.vault_url)):
        if bootstrap[key].rstrip("/") != expected:
            raise RuntimeError(f"bootstrap {key} is {bootstrap[key]!r}, expected {expected!r}")
    if not (os.path.isabs(server.ca_cert) and os.path.isfile(server.ca_cert)):
        raise RuntimeError(f"bootstrap ca_cert {server.ca_cert!r} is not an absolute path to a file")
    return server


@pytest.fixture(scope="session")
def lockstep(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LockstepServer]:
    """Start `lockstep serve` once for the session; stop it with SIGTERM and expect exit 0."""
    _check_vault_host_resolves()
    binary = _server_binary()
    base = tmp_path_factory.mktemp("lockstep")
    data_dir = base / "data"
    data_dir.mkdir()

    process = _ServerProcess(binary, data_dir, base / "server.log")
    startup_error: Exception | None = None
    try:
        port = process.wait_for_port(STARTUP_TIMEOUT_S)
        server = _server_from_bootstrap(port, data_dir, process.log_path)
    except Exception as exc:  # reported below, outside the except block, without a traceback
        startup_error = exc
    except BaseException:
        process.stop()
        raise
    if startup_error is not None:
        process.stop()
        pytest.fail(
            f"lockstep serve did not start: {startup_error}\n--- server output ---\n{process.output_tail()}",
            pytrace=False,
        )

    try:
        yield server
    finally:
        status = process.stop()
        if status != 0:
            pytest.fail(
                f"lockstep serve did not exit cleanly on SIGTERM (status {status}; None = killed after "
                f"{SHUTDOWN_TIMEOUT_S:.0f} s)\n--- server output ---\n{process.output_tail()}",
                pytrace=False,
            )


@pytest.fixture(scope="session")
def credential(lockstep: LockstepServer) -> Iterator[ClientSecretCredential]:
    with lockstep.credential() as cred:
        yield cred


@pytest.fixture(scope="session")
def client(lockstep: LockstepServer, credential: ClientSecretCredential) -> Iterator[SecretClient]:
    with lockstep.secret_client(credential) as secret_client:
        yield secret_client
