#!/usr/bin/env python3
"""Side-by-side benchmark of Lockstep, OpenBao and the HTTP+TLS ceiling.

Run through `bench/run`, which installs the tools and builds the binaries
first. Everything here uses the standard library only. One run, on
loopback:

  * starts the three servers with the same TLS certificate (a throwaway CA
    made with openssl);
  * prepares each one as a realistic consumer would meet it (Lockstep: a
    non-admin app holding only "Key Vault Secrets User" on the vault;
    OpenBao: a non-root token whose policy allows reading the secrets);
  * measures every workload with the same load generator (wrk), the same
    number of connections and the same duration, in interleaved rounds
    (A, B, C, A, B, C, ...), and reports the median of the rounds;
  * prints a table and writes bench/results/latest.json.

See docs/performance.md for what each workload means and the latest table.
"""

from __future__ import annotations

import argparse
import concurrent.futures
import http.client
import json
import os
import platform
import re
import shutil
import signal
import socket
import ssl
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.parse
from dataclasses import dataclass, field
from pathlib import Path

BENCH = Path(__file__).resolve().parent
ROOT = BENCH.parent
START = time.monotonic()

VAULT_SUFFIX = "vault.localhost"
VAULT_AUDIENCE = f"https://{VAULT_SUFFIX}"
SMALL_VALUE = "s3cr3t-" + "x" * 33  # 40 bytes
LARGE_VALUE = ("0123456789abcdef" * 256)[:4096]  # 4 KiB
SET_VALUE = "n3w-s3cr3t-" + "y" * 29  # 40 bytes
SYSTEMS = ["lockstep", "openbao", "ceiling"]
# Variants of the ceiling that add one piece of work Lockstep cannot skip,
# measured in the workloads where it applies (see bench/ceiling).
CEILING_VARIANTS = {
    "ceiling-audited": "the ceiling appending one hash-chained audit record per answer",
    "ceiling-rs256": "the ceiling with one RS256 signature per answer",
}
TOKEN_RATE_LIMIT = 1_000_000


# --------------------------------------------------------------------------
# output


class Progress:
    """One line per step on stderr, with the elapsed time."""

    def __init__(self, quiet: bool = False):
        self.quiet = quiet

    def __call__(self, msg: str) -> None:
        if not self.quiet:
            t = time.monotonic() - START
            print(f"[{t:6.1f}s] {msg}", file=sys.stderr, flush=True)


say = Progress()


class BenchError(Exception):
    """A system did not start or a workload produced no numbers."""


# --------------------------------------------------------------------------
# HTTP client (setup calls only; load comes from wrk)


class Client:
    """Keep-alive HTTPS to 127.0.0.1:port, verifying the bench CA (the
    certificate names are not checked: every name is loopback here)."""

    def __init__(self, port: int, ca: Path, host: str | None = None):
        self.port = port
        self.host = host or f"localhost:{port}"
        self.ctx = ssl.create_default_context(cafile=str(ca))
        self.ctx.check_hostname = False
        self.local = threading.local()

    def _conn(self) -> http.client.HTTPSConnection:
        c = getattr(self.local, "conn", None)
        if c is None:
            c = http.client.HTTPSConnection("127.0.0.1", self.port, context=self.ctx, timeout=120)
            self.local.conn = c
        return c

    def request(self, method: str, path: str, body=None, headers=None, host=None,
                form: dict | None = None) -> tuple[int, object, bytes]:
        hdrs = {"Host": host or self.host}
        if headers:
            hdrs.update(headers)
        data = None
        if form is not None:
            data = urllib.parse.urlencode(form).encode()
            hdrs["Content-Type"] = "application/x-www-form-urlencoded"
        elif body is not None:
            data = json.dumps(body).encode()
            hdrs["Content-Type"] = "application/json"
        for attempt in range(2):
            conn = self._conn()
            try:
                conn.request(method, path, body=data, headers=hdrs)
                resp = conn.getresponse()
                raw = resp.read()
                break
            except (http.client.HTTPException, OSError):
                conn.close()
                self.local.conn = None
                if attempt:
                    raise
        try:
            value = json.loads(raw) if raw else None
        except ValueError:
            value = raw.decode(errors="replace")
        return resp.status, value, raw

    def ok(self, method: str, path: str, **kw):
        status, value, raw = self.request(method, path, **kw)
        if not 200 <= status < 300:
            raise BenchError(f"{method} {path}: HTTP {status}: {str(value)[:300]}")
        return value, raw


# --------------------------------------------------------------------------
# processes


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def rss_mib(pid: int) -> float | None:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return None


def wait_until(pred, timeout: float, what: str, proc: subprocess.Popen | None = None,
               log: Path | None = None):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc is not None and proc.poll() is not None:
            tail = log.read_text(errors="replace")[-2000:] if log and log.exists() else ""
            raise BenchError(f"{what}: the process exited with {proc.returncode}\n{tail}")
        try:
            if pred():
                return
        except (OSError, http.client.HTTPException, ssl.SSLError):
            pass
        time.sleep(0.005)
    tail = log.read_text(errors="replace")[-2000:] if log and log.exists() else ""
    raise BenchError(f"{what}: not ready within {timeout:.0f} s\n{tail}")


class Process:
    """A server process with its output in a log file."""

    def __init__(self, name: str, argv: list[str], log: Path, env: dict | None = None):
        self.name = name
        self.log = log
        self.argv = argv
        self.env = env
        self.proc: subprocess.Popen | None = None

    def start(self):
        out = open(self.log, "ab")
        self.proc = subprocess.Popen(self.argv, stdout=out, stderr=subprocess.STDOUT,
                                     stdin=subprocess.DEVNULL, env=self.env,
                                     start_new_session=True)
        out.close()

    @property
    def pid(self) -> int:
        assert self.proc is not None
        return self.proc.pid

    def stop(self):
        if self.proc is None or self.proc.poll() is not None:
            return
        self.proc.send_signal(signal.SIGTERM)
        try:
            self.proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()


# --------------------------------------------------------------------------
# TLS material


def make_certs(d: Path) -> tuple[Path, Path, Path]:
    """A throwaway CA and one ECDSA P-256 server certificate (the key type
    Lockstep generates for itself) for every loopback name used here."""
    ca_key, ca, key, csr, cert = (d / n for n in ("ca-key.pem", "ca.pem", "key.pem", "server.csr", "cert.pem"))
    ext = d / "san.ext"
    ext.write_text(
        "subjectAltName=DNS:localhost,DNS:vault.localhost,DNS:*.vault.localhost,IP:127.0.0.1\n"
        "basicConstraints=CA:FALSE\nkeyUsage=digitalSignature\nextendedKeyUsage=serverAuth\n")

    def run(*args):
        subprocess.run(["openssl", *args], check=True, capture_output=True)

    run("req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes",
        "-keyout", str(ca_key), "-out", str(ca), "-days", "7", "-subj", "/CN=lockstep bench CA")
    run("req", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes",
        "-keyout", str(key), "-out", str(csr), "-subj", "/CN=localhost")
    run("x509", "-req", "-in", str(csr), "-CA", str(ca), "-CAkey", str(ca_key), "-CAcreateserial",
        "-out", str(cert), "-days", "7", "-extfile", str(ext))
    return ca, cert, key


# --------------------------------------------------------------------------
# load generator


@dataclass
class Sample:
    rps: float
    p50_ms: float
    p99_ms: float
    requests: int
    errors: int


LUA_DONE = r"""
done = function(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    'BENCH_JSON {"requests":%d,"duration_us":%d,"p50_us":%d,"p99_us":%d,' ..
    '"connect":%d,"read":%d,"write":%d,"status":%d,"timeout":%d}\n',
    summary.requests, summary.duration, latency:percentile(50), latency:percentile(99),
    e.connect, e.read, e.write, e.status, e.timeout))
end
"""


def lua_str(s: str) -> str:
    """A Lua long-bracket string literal holding `s`."""
    level = "=" * 3
    while f"]{level}]" in s:
        level += "="
    return f"[{level}[{s}]{level}]"


def lua_request(method: str, path: str, headers: dict, body: str | None) -> str:
    lines = [f"wrk.method = {lua_str(method)}", f"wrk.path = {lua_str(path)}"]
    for k, v in headers.items():
        lines.append(f"wrk.headers[ {lua_str(k)} ] = {lua_str(v)}")
    if body is not None:
        lines.append(f"wrk.body = {lua_str(body)}")
    return "\n".join(lines) + "\n"


@dataclass
class Load:
    """How every system is measured."""
    wrk: str
    connections: int
    threads: int
    duration: int
    rounds: int
    workdir: Path
    counter: int = 0

    def run(self, port: int, script: str, duration: int | None = None,
            allow_errors: bool = False) -> Sample:
        self.counter += 1
        lua = self.workdir / f"wrk-{self.counter}.lua"
        lua.write_text(script + LUA_DONE)
        d = duration or self.duration
        argv = [self.wrk, "-t", str(self.threads), "-c", str(self.connections), "-d", f"{d}s",
                "--timeout", "30s", "-s", str(lua), f"https://127.0.0.1:{port}"]
        out = subprocess.run(argv, capture_output=True, text=True, timeout=d + 120)
        m = re.search(r"^BENCH_JSON (\{.*\})$", out.stdout, re.M)
        if out.returncode != 0 or not m:
            raise BenchError(f"wrk failed ({out.returncode}): {out.stdout[-800:]} {out.stderr[-800:]}")
        r = json.loads(m.group(1))
        errors = r["connect"] + r["read"] + r["write"] + r["status"] + r["timeout"]
        if r["requests"] == 0:
            raise BenchError(f"wrk completed no request: {out.stdout[-800:]}")
        if errors and not allow_errors:
            raise BenchError(f"wrk saw {errors} errors ({r}); first lines of its output:\n{out.stdout[:800]}")
        return Sample(rps=r["requests"] / (r["duration_us"] / 1e6), p50_ms=r["p50_us"] / 1000,
                      p99_ms=r["p99_us"] / 1000, requests=r["requests"], errors=errors)


def median_of(samples: list[Sample]) -> dict:
    return {
        "rps": round(statistics.median(s.rps for s in samples), 1),
        "p50_ms": round(statistics.median(s.p50_ms for s in samples), 3),
        "p99_ms": round(statistics.median(s.p99_ms for s in samples), 3),
        "rounds": [round(s.rps, 1) for s in samples],
        "requests": sum(s.requests for s in samples),
    }


# --------------------------------------------------------------------------
# the systems measured


class System:
    """A server under test: a process, an HTTP client, and a readiness probe
    that tells when it answers. Subclasses set name, process, http and log."""

    name: str
    process: Process
    http: Client
    log: Path
    start_seconds: float | None = None

    def ready(self) -> bool:
        raise NotImplementedError

    def start(self) -> float:
        """Starts the process; returns the seconds until it answered."""
        t0 = time.monotonic()
        self.process.start()
        wait_until(self.ready, 60, self.name, self.process.proc, self.log)
        self.start_seconds = time.monotonic() - t0
        return self.start_seconds

    def stop(self):
        self.process.stop()


# --------------------------------------------------------------------------
# Lockstep


class Lockstep(System):
    name = "lockstep"

    def __init__(self, binary: Path, work: Path, cert: Path, key: Path, ca: Path, extra_args: list[str]):
        self.binary = binary
        self.data = work / "lockstep-data"
        self.cert, self.key, self.ca = cert, key, ca
        self.port = free_port()
        self.extra_args = extra_args
        self.log = work / "lockstep.log"
        env = {k: v for k, v in os.environ.items() if not k.startswith("LOCKSTEP_")}
        self.process = Process("lockstep", [
            str(binary), "serve", "--data-dir", str(self.data), "--listen", f"127.0.0.1:{self.port}",
            "--tls-cert", str(cert), "--tls-key", str(key),
            # One load generator is one client address: lift the per-address
            # token rate limit (1000/s by default) so that (c) measures issuance.
            "--token-rate-limit", str(TOKEN_RATE_LIMIT), *extra_args], self.log, env)
        self.http = Client(self.port, ca)
        self.vault_host = f"default.{VAULT_SUFFIX}:{self.port}"

    def ready(self) -> bool:
        return self.http.request("GET", "/healthz")[0] == 200

    def token(self, client_id: str, secret: str, resource: str) -> str:
        v, _ = self.http.ok("POST", f"/{self.tenant}/oauth2/v2.0/token", form={
            "grant_type": "client_credentials", "client_id": client_id,
            "client_secret": secret, "scope": f"{resource}/.default"})
        return v["access_token"]

    def app_with_role(self, display: str, role: str, scope: str) -> tuple[str, str]:
        app, _ = self.http.ok("POST", "/v1.0/applications", body={"displayName": display},
                              headers=self.graph_auth)
        pw, _ = self.http.ok("POST", f"/v1.0/applications/{app['id']}/addPassword", body={},
                             headers=self.graph_auth)
        if role:
            self.http.ok("POST", "/lockstep/v1/roleAssignments", headers=self.mgmt_auth,
                         body={"principalId": app["appId"], "roleDefinitionName": role, "scope": scope})
        return app["appId"], pw["secretText"]

    def prepare(self):
        boot = json.loads((self.data / "bootstrap-admin.json").read_text())
        self.tenant = boot["tenant_id"]
        admin = (boot["client_id"], boot["client_secret"])
        self.graph_auth = {"Authorization": "Bearer " + self.token(*admin, "https://graph.microsoft.com")}
        self.mgmt_auth = {"Authorization": "Bearer " + self.token(*admin, "api://lockstep")}
        # The realistic consumer: may read secret values in this vault, nothing else.
        self.consumer = self.app_with_role("bench consumer", "Key Vault Secrets User", "/vaults/default")
        # The writer of workload (b): may set secrets in this vault.
        self.writer = self.app_with_role("bench writer", "Key Vault Secrets Officer", "/vaults/default")
        self.read_auth = {"Authorization": "Bearer " + self.token(*self.consumer, VAULT_AUDIENCE)}
        self.write_auth = {"Authorization": "Bearer " + self.token(*self.writer, VAULT_AUDIENCE)}
        for name, value in (("small", SMALL_VALUE), ("large", LARGE_VALUE)):
            self.http.ok("PUT", f"/secrets/{name}?api-version=7.6", body={"value": value},
                         headers=self.write_auth, host=self.vault_host)

    # Each workload: the request wrk sends, and a check of one response.

    def get_script(self, name: str) -> str:
        return lua_request("GET", f"/secrets/{name}/?api-version=7.6",
                           {"Host": self.vault_host, **self.read_auth}, None)

    def get_body(self, name: str) -> bytes:
        _, raw = self.http.ok("GET", f"/secrets/{name}/?api-version=7.6", headers=self.read_auth,
                              host=self.vault_host)
        return raw

    def set_script(self) -> str:
        return lua_request("PUT", "/secrets/setbench?api-version=7.6",
                           {"Host": self.vault_host, "Content-Type": "application/json", **self.write_auth},
                           json.dumps({"value": SET_VALUE}))

    def set_body(self) -> bytes:
        _, raw = self.http.ok("PUT", "/secrets/setbench?api-version=7.6", body={"value": SET_VALUE},
                              headers=self.write_auth, host=self.vault_host)
        return raw

    def token_form(self) -> str:
        return urllib.parse.urlencode({
            "grant_type": "client_credentials", "client_id": self.consumer[0],
            "client_secret": self.consumer[1], "scope": f"{VAULT_AUDIENCE}/.default"})

    def token_script(self) -> str:
        return lua_request("POST", f"/{self.tenant}/oauth2/v2.0/token",
                           {"Host": f"localhost:{self.port}",
                            "Content-Type": "application/x-www-form-urlencoded"}, self.token_form())

    def token_body(self) -> bytes:
        _, raw = self.http.ok("POST", f"/{self.tenant}/oauth2/v2.0/token", form=dict(
            urllib.parse.parse_qsl(self.token_form())))
        return raw


# --------------------------------------------------------------------------
# OpenBao


class OpenBao(System):
    name = "openbao"

    def __init__(self, binary: Path, work: Path, cert: Path, key: Path, ca: Path, storage: str):
        self.binary = binary
        self.dir = work / "openbao"
        self.dir.mkdir()
        self.port = free_port()
        self.cluster_port = free_port()
        self.storage = storage
        self.audit_log = self.dir / "audit.log"
        data = self.dir / "data"
        data.mkdir()
        if storage == "raft":
            storage_hcl = f'storage "raft" {{\n  path = "{data}"\n  node_id = "bench"\n}}\n'
        else:
            storage_hcl = f'storage "file" {{\n  path = "{data}"\n}}\n'
        config = self.dir / "config.hcl"
        config.write_text(f"""
ui = false
disable_mlock = true
api_addr = "https://127.0.0.1:{self.port}"
cluster_addr = "https://127.0.0.1:{self.cluster_port}"
log_level = "warn"
listener "tcp" {{
  address = "127.0.0.1:{self.port}"
  cluster_address = "127.0.0.1:{self.cluster_port}"
  tls_cert_file = "{cert}"
  tls_key_file = "{key}"
}}
{storage_hcl}
audit "file" "file" {{
  description = "every request and response, as the benchmark's Lockstep has"
  options {{
    file_path = "{self.audit_log}"
  }}
}}
""")
        self.log = work / "openbao.log"
        self.process = Process("openbao", [str(binary), "server", f"-config={config}"], self.log,
                               {**os.environ, "BAO_LOG_LEVEL": "warn"})
        self.http = Client(self.port, ca, host=f"127.0.0.1:{self.port}")
        self.host = f"127.0.0.1:{self.port}"

    def ready(self) -> bool:
        return self.http.request("GET", "/v1/sys/health")[0] in (200, 429, 473, 501, 503)

    def prepare(self):
        init, _ = self.http.ok("PUT", "/v1/sys/init", body={"secret_shares": 1, "secret_threshold": 1})
        self.http.ok("PUT", "/v1/sys/unseal", body={"key": init["keys_base64"][0]})
        wait_until(lambda: self.http.request("GET", "/v1/sys/health")[0] == 200, 60,
                   "openbao to become active", self.process.proc, self.log)
        root = {"X-Vault-Token": init["root_token"]}

        def ok(method, path, body=None):
            for _ in range(100):  # just after unseal some paths answer 5xx for a moment
                status, value, raw = self.http.request(method, path, body=body, headers=root)
                if 200 <= status < 300:
                    return value
                if status < 500:
                    break
                time.sleep(0.1)
            raise BenchError(f"openbao {method} {path}: HTTP {status}: {str(value)[:300]}")

        ok("POST", "/v1/sys/mounts/secret", {"type": "kv", "options": {"version": "2"}})
        ok("PUT", "/v1/sys/policies/acl/bench-read", {"policy": (
            'path "secret/data/small" { capabilities = ["read"] }\n'
            'path "secret/data/large" { capabilities = ["read"] }\n')})
        ok("PUT", "/v1/sys/policies/acl/bench-write", {"policy": (
            'path "secret/data/setbench" { capabilities = ["create", "update"] }\n')})
        for name, value in (("small", SMALL_VALUE), ("large", LARGE_VALUE)):
            ok("POST", f"/v1/secret/data/{name}", {"data": {"value": value}})
        self.read_token = ok("POST", "/v1/auth/token/create",
                             {"policies": ["bench-read"], "ttl": "24h"})["auth"]["client_token"]
        self.write_token = ok("POST", "/v1/auth/token/create",
                              {"policies": ["bench-write"], "ttl": "24h"})["auth"]["client_token"]
        ok("POST", "/v1/sys/auth/approle", {"type": "approle"})
        ok("POST", "/v1/auth/approle/role/bench", {"token_policies": ["bench-read"],
                                                   "token_ttl": "1h", "secret_id_num_uses": 0})
        self.role_id = ok("GET", "/v1/auth/approle/role/bench/role-id")["data"]["role_id"]
        self.secret_id = ok("POST", "/v1/auth/approle/role/bench/secret-id", {})["data"]["secret_id"]
        # The declared audit device must be recording.
        self.get_body("small")
        if not self.audit_log.exists() or self.audit_log.stat().st_size == 0:
            raise BenchError("openbao: the file audit device wrote nothing")

    def get_script(self, name: str) -> str:
        return lua_request("GET", f"/v1/secret/data/{name}",
                           {"Host": self.host, "X-Vault-Token": self.read_token}, None)

    def get_body(self, name: str) -> bytes:
        return self.http.ok("GET", f"/v1/secret/data/{name}", headers={"X-Vault-Token": self.read_token})[1]

    def set_script(self) -> str:
        return lua_request("POST", "/v1/secret/data/setbench",
                           {"Host": self.host, "Content-Type": "application/json",
                            "X-Vault-Token": self.write_token},
                           json.dumps({"data": {"value": SET_VALUE}}))

    def set_body(self) -> bytes:
        return self.http.ok("POST", "/v1/secret/data/setbench", body={"data": {"value": SET_VALUE}},
                            headers={"X-Vault-Token": self.write_token})[1]

    def token_script(self) -> str:
        return lua_request("POST", "/v1/auth/approle/login",
                           {"Host": self.host, "Content-Type": "application/json"},
                           json.dumps({"role_id": self.role_id, "secret_id": self.secret_id}))

    def token_body(self) -> bytes:
        return self.http.ok("POST", "/v1/auth/approle/login",
                            body={"role_id": self.role_id, "secret_id": self.secret_id})[1]


# --------------------------------------------------------------------------
# the ceiling


class Ceiling(System):
    name = "ceiling"

    def __init__(self, binary: Path, work: Path, cert: Path, key: Path, ca: Path):
        self.bodies = work / "ceiling-bodies"
        self.bodies.mkdir()
        self.port = free_port()
        self.log = work / "ceiling.log"
        self.process = Process("ceiling", [str(binary), "--listen", f"127.0.0.1:{self.port}",
                                           "--cert", str(cert), "--key", str(key),
                                           "--bodies", str(self.bodies)], self.log)
        self.http = Client(self.port, ca)

    def set_bodies(self, bodies: dict[str, bytes]):
        for name, raw in bodies.items():
            (self.bodies / f"{name}.json").write_bytes(raw)

    def ready(self) -> bool:
        return self.http.request("GET", "/get-small")[0] == 200

    def script(self, name: str, method: str = "GET", body: str | None = None) -> str:
        hdrs = {"Host": f"localhost:{self.port}"}
        if body is not None:
            hdrs["Content-Type"] = "application/json"
        return lua_request(method, f"/{name}", hdrs, body)


# --------------------------------------------------------------------------
# workloads


@dataclass
class Results:
    config: dict
    workloads: dict = field(default_factory=dict)
    systems: dict = field(default_factory=dict)

    def add(self, key: str, title: str, per_system: dict[str, dict], unit: str = "req/s", note: str = ""):
        entry = {"title": title, "unit": unit, "systems": per_system}
        lk = per_system.get("lockstep", {}).get("rps")
        others = [("openbao", "lockstep_over_openbao"), ("ceiling", "lockstep_over_ceiling")]
        others += [(v, "lockstep_over_" + v.replace("-", "_")) for v in CEILING_VARIANTS]
        for other, label in others:
            o = per_system.get(other, {}).get("rps")
            if lk and o:
                entry[label] = round(lk / o, 3)
        if note:
            entry["note"] = note
        self.workloads[key] = entry


def interleaved(load: Load, title: str, plans: list[tuple[str, int, str]], rounds: int,
                duration: int | None = None) -> dict[str, dict]:
    """Runs each (system, port, script) once per round, in turn, and returns
    the medians per system."""
    samples: dict[str, list[Sample]] = {name: [] for name, _, _ in plans}
    for r in range(rounds):
        for name, port, script in plans:
            s = load.run(port, script, duration)
            samples[name].append(s)
            say(f"{title}: round {r + 1}/{rounds} {name:9s} {s.rps:10.0f} req/s  "
                f"p50 {s.p50_ms:7.2f} ms  p99 {s.p99_ms:7.2f} ms")
    return {name: median_of(ss) for name, ss in samples.items()}


def rotations(lock: Lockstep, n: int, parallel: int) -> dict:
    """Creates n bindings (one app each; the first rotation of each runs at
    once and is waited for), then asks every binding to rotate at the same
    moment and measures completed runs per second until every run ended."""
    if n > 500:
        raise BenchError("--rotations is at most 500 (runs are read back 1000 at a time)")
    say(f"rotations: creating {n} apps and bindings")

    def bind(i: int):
        app, _ = lock.http.ok("POST", "/v1.0/applications", body={"displayName": f"rot {i}"},
                              headers=lock.graph_auth)
        lock.http.ok("POST", "/lockstep/v1/rotation/bindings", headers=lock.mgmt_auth, body={
            "name": f"rot-{i}",
            "source": {"kind": "builtin-app", "appId": app["appId"]},
            "target": {"kind": "builtin-vault", "vault": "default", "secret": f"rot-{i}"},
            "policy": {"jitter": "PT0S"}})

    with concurrent.futures.ThreadPoolExecutor(parallel) as pool:
        list(pool.map(bind, range(n)))
    names = {f"rot-{i}" for i in range(n)}

    def runs() -> list[dict]:
        v, _ = lock.http.ok("GET", "/lockstep/v1/rotation/runs?limit=1000", headers=lock.mgmt_auth)
        return [r for r in v["value"] if r["binding"] in names]

    say("rotations: waiting for the first rotation of every binding")
    deadline = time.monotonic() + max(120, n)
    while True:
        rs = runs()
        ended = {r["binding"] for r in rs if r["state"] in ("succeeded", "failed", "cancelled")}
        if len(ended) == n and not any(r["state"] in ("pending", "running") for r in rs):
            break
        if time.monotonic() > deadline:
            raise BenchError(f"rotations: only {len(ended)}/{n} first rotations ended")
        time.sleep(0.1)
    say(f"rotations: triggering {n} rotations at once")
    log_start = lock.log.stat().st_size
    t0 = time.monotonic()

    def rotate(i: int) -> str:
        v, _ = lock.http.ok("POST", f"/lockstep/v1/rotation/bindings/rot-{i}/rotate", body={},
                            headers=lock.mgmt_auth)
        return v["runId"]

    with concurrent.futures.ThreadPoolExecutor(parallel) as pool:
        ids = set(pool.map(rotate, range(n)))
    triggered = time.monotonic() - t0
    # Completion is read from the server's log ("rotation succeeded" /
    # "rotation failed", one line per run, written anyway) so that watching
    # adds no load to the server; the runs are checked through the API after.
    ended: set[str] = set()
    deadline = time.monotonic() + max(120, n)
    with open(lock.log, "rb") as f:
        f.seek(log_start)
        pending = b""
        while ended < ids:
            chunk = f.read()
            if chunk:
                lines = (pending + chunk).split(b"\n")
                pending = lines.pop()
                for line in lines:
                    if b"rotation succeeded" in line or b"rotation failed" in line:
                        m = RUN_IN_LOG.search(line)
                        if m and m.group(1).decode() in ids:
                            ended.add(m.group(1).decode())
                continue
            if time.monotonic() > deadline:
                raise BenchError(f"rotations: {len(ended)}/{len(ids)} runs ended before the deadline")
            time.sleep(0.005)
    elapsed = time.monotonic() - t0
    states = {r["id"]: r["state"] for r in runs()}
    failed = sum(1 for i in ids if states.get(i) != "succeeded")
    if failed:
        raise BenchError(f"rotations: {failed} of {n} runs did not succeed")
    rate = n / elapsed
    say(f"rotations: {n} runs succeeded in {elapsed:.2f} s ({rate:.0f}/s; the requests took {triggered:.2f} s)")
    return {"rps": round(rate, 1), "runs": n, "seconds": round(elapsed, 3),
            "trigger_seconds": round(triggered, 3)}


RUN_IN_LOG = re.compile(rb"\brun=([0-9a-f]+)")

LUA_RANDOM_GET = r"""
local threads = {}
setup = function(thread)
  thread:set("tid", #threads + 1)
  table.insert(threads, thread)
end
init = function(args)
  math.randomseed(os.time() * 7 + tid)
end
request = function()
  return wrk.format("GET", "/secrets/s" .. math.random(0, SECRETS - 1) .. "/?api-version=7.6")
end
"""


def load_secrets(lock: Lockstep, first: int, total: int, parallel: int) -> dict:
    """Adds secrets s{first}..s{total-1} (40-byte values) through the API
    with `parallel` keep-alive connections, each request a durable SET.
    (wrk cannot stop after a number of requests, so the loader is here.)"""
    count = total - first
    if count <= 0:
        return {"secrets": total, "seconds": 0.0, "rps": 0.0}
    body = {"value": SMALL_VALUE}
    done = [0]
    failures: list[str] = []
    lock_done = threading.Lock()

    def worker(w: int):
        for i in range(first + w, total, parallel):
            for attempt in range(3):
                status, value, _ = lock.http.request(
                    "PUT", f"/secrets/s{i}?api-version=7.6", body=body,
                    headers=lock.write_auth, host=lock.vault_host)
                if status == 200:
                    break
                if status != 429 and status < 500 or attempt == 2:
                    failures.append(f"s{i}: HTTP {status} {str(value)[:200]}")
                    return
                time.sleep(0.5)
            with lock_done:
                done[0] += 1

    t0 = time.monotonic()
    with concurrent.futures.ThreadPoolExecutor(parallel) as pool:
        futures = [pool.submit(worker, w) for w in range(parallel)]
        while not all(f.done() for f in futures):
            concurrent.futures.wait(futures, timeout=10)
            if failures:
                break
            el = time.monotonic() - t0
            say(f"scale: {first + done[0]}/{total} secrets loaded, {done[0] / el:.0f}/s "
                f"(lockstep RSS {rss_mib(lock.process.pid) or 0:.0f} MiB)")
        for f in futures:
            f.result()
    if failures:
        raise BenchError(f"loader: {len(failures)} secrets not stored, e.g. {failures[0]}")
    elapsed = time.monotonic() - t0
    say(f"scale: loaded {count} secrets in {elapsed:.1f} s ({count / elapsed:.0f}/s)")
    return {"secrets": total, "seconds": round(elapsed, 1), "rps": round(count / elapsed, 1)}


def random_get_script(lock: Lockstep, secrets: int) -> str:
    return (lua_request("GET", "/", {"Host": lock.vault_host, **lock.read_auth}, None)
            + LUA_RANDOM_GET.replace("SECRETS", str(secrets)))


# --------------------------------------------------------------------------
# report


def fmt_rate(x) -> str:
    return "-" if x is None else f"{x:,.0f}"


def fmt_ms(x) -> str:
    return "-" if x is None else f"{x:.2f}"


def fmt_ratio(x) -> str:
    return "-" if x is None else f"{x:.2f}x"


def table(results: Results) -> str:
    head = ("workload", "Lockstep req/s", "p50/p99 ms", "OpenBao req/s", "p50/p99 ms",
            "ceiling req/s", "p50/p99 ms", "LS/OB", "LS/ceil")
    rows = []
    for w in results.workloads.values():
        cells = [w["title"]]
        for sysname in ("lockstep", "openbao", "ceiling"):
            s = w["systems"].get(sysname, {})
            cells.append(fmt_rate(s.get("rps")))
            lat = "-" if s.get("p50_ms") is None else f"{fmt_ms(s.get('p50_ms'))} / {fmt_ms(s.get('p99_ms'))}"
            cells.append(lat)
        cells.append(fmt_ratio(w.get("lockstep_over_openbao")))
        cells.append(fmt_ratio(w.get("lockstep_over_ceiling")))
        rows.append(cells)
    widths = [max(len(r[i]) for r in [head, *rows]) for i in range(len(head))]
    line = lambda cells: "| " + " | ".join(c.ljust(widths[i]) if i == 0 else c.rjust(widths[i])
                                           for i, c in enumerate(cells)) + " |"
    sep = "|" + "|".join("-" * (w + 2) if i == 0 else "-" * (w + 1) + ":" for i, w in enumerate(widths)) + "|"
    out = [line(head), sep, *(line(r) for r in rows)]
    extra = []
    for w in results.workloads.values():
        for variant, what in CEILING_VARIANTS.items():
            s = w["systems"].get(variant)
            if s and s.get("rps"):
                ratio = w.get("lockstep_over_" + variant.replace("-", "_"))
                extra.append(f"{w['title']}: {what} {fmt_rate(s['rps'])} req/s (p50/p99 "
                             f"{fmt_ms(s.get('p50_ms'))} / {fmt_ms(s.get('p99_ms'))} ms); "
                             f"Lockstep reaches {fmt_ratio(ratio)} of it")
    if extra:
        out += ["", *extra]
    sysrows = []
    for name, s in results.systems.items():
        sysrows.append(f"{name}: start {s.get('start_seconds', '-')} s, RSS "
                       f"{s.get('rss_mib_after_load', '-')} MiB after the workloads")
    return "\n".join(out) + "\n\n" + "\n".join(sysrows)


# --------------------------------------------------------------------------
# main


def machine() -> dict:
    cpu = "?"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    mem = "?"
    try:
        kb = int(Path("/proc/meminfo").read_text().split()[1])
        mem = f"{kb / 1024 / 1024:.1f} GiB"
    except (OSError, ValueError, IndexError):
        pass
    return {"nproc": os.cpu_count(), "cpu": cpu, "memory": mem, "kernel": platform.release(),
            "load_average_at_start": os.getloadavg()}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--lockstep", type=Path, required=True, help="the lockstep binary")
    ap.add_argument("--lockstep-build", default="release", help="release or debug (recorded in the results)")
    ap.add_argument("--ceiling", type=Path, required=True, help="the ceiling binary")
    ap.add_argument("--bao", type=Path, required=True, help="the bao binary")
    ap.add_argument("--bao-storage", choices=("raft", "file"), default="raft",
                    help="OpenBao storage: raft (fsyncs, the durable choice; default) or file (no fsync)")
    ap.add_argument("--wrk", default=shutil.which("wrk") or "wrk")
    ap.add_argument("--smoke", action="store_true",
                    help="a few seconds per workload and small N: checks that every system starts "
                         "and every workload produces numbers")
    ap.add_argument("--duration", type=int, help="seconds per measurement (default 10; smoke 2)")
    ap.add_argument("--rounds", type=int, help="interleaved rounds (default 3; smoke 1)")
    ap.add_argument("--connections", type=int, default=32)
    ap.add_argument("--threads", type=int, default=2, help="wrk threads")
    ap.add_argument("--rotations", type=int, help="bindings rotated in workload (d) (default 500; smoke 20)")
    ap.add_argument("--secrets", type=int, help="secrets loaded in workload (e) (default 100000; smoke 500)")
    ap.add_argument("--only", help="comma-separated workloads to run: get,set,token,rotate,scale")
    ap.add_argument("--lockstep-arg", action="append", default=[],
                    help="extra argument for `lockstep serve` (repeatable)")
    ap.add_argument("--out", type=Path,
                    help="results file (default bench/results/latest.json; smoke: smoke.json)")
    ap.add_argument("--keep", action="store_true", help="keep the working directory")
    args = ap.parse_args()

    smoke = args.smoke
    if args.out is None:
        args.out = BENCH / "results" / ("smoke.json" if smoke else "latest.json")
    duration = args.duration or (2 if smoke else 10)
    rounds = args.rounds or (1 if smoke else 3)
    n_rot = args.rotations or (20 if smoke else 500)
    n_secrets = args.secrets or (500 if smoke else 100_000)
    only = set((args.only or "get,set,token,rotate,scale").split(","))

    work = Path(tempfile.mkdtemp(prefix="lockstep-bench-"))
    say(f"working directory {work}")
    load = Load(wrk=args.wrk, connections=args.connections, threads=args.threads,
                duration=duration, rounds=rounds, workdir=work)
    results = Results(config={
        "mode": "smoke" if smoke else "full", "duration_s": duration, "rounds": rounds,
        "connections": args.connections, "wrk_threads": args.threads, "load_generator": "wrk",
        "lockstep_build": args.lockstep_build, "openbao_storage": args.bao_storage,
        "rotations": n_rot, "secrets": n_secrets, "machine": machine(),
        "lockstep_token_rate_limit": TOKEN_RATE_LIMIT,
        "started": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
    })
    ca, cert, key = make_certs(work)
    lock = Lockstep(args.lockstep, work, cert, key, ca, args.lockstep_arg)
    bao = OpenBao(args.bao, work, cert, key, ca, args.bao_storage)
    ceil = Ceiling(args.ceiling, work, cert, key, ca)
    systems = [lock, bao, ceil]
    failed = False
    try:
        say("starting lockstep")
        lock.start()
        lock.prepare()
        say(f"lockstep ready on port {lock.port} (started in {lock.start_seconds:.2f} s)")
        say("starting openbao")
        bao.start()
        bao.prepare()
        say(f"openbao ready on port {bao.port} (started in {bao.start_seconds:.2f} s)")
        ceil.set_bodies({"get-small": lock.get_body("small"), "get-large": lock.get_body("large"),
                         "set": lock.set_body(), "token": lock.token_body()})
        say("starting the ceiling")
        ceil.start()
        say(f"ceiling ready on port {ceil.port}")
        for s in systems:
            results.systems[s.name] = {"start_seconds": round(s.start_seconds, 3)}

        if "get" in only:
            for name, label in (("small", "GET latest, 40 B value"), ("large", "GET latest, 4 KiB value")):
                per = interleaved(load, f"get {name}", [
                    ("lockstep", lock.port, lock.get_script(name)),
                    ("openbao", bao.port, bao.get_script(name)),
                    ("ceiling", ceil.port, ceil.script(f"get-{name}")),
                    # The same static answer after appending an audit record.
                    ("ceiling-audited", ceil.port, ceil.script(f"audited/get-{name}")),
                ], rounds)
                results.add(f"get_{name}", label, per,
                            note="ceiling-audited: the ceiling appending one audit record per answer")
        if "set" in only:
            per = interleaved(load, "set", [
                ("lockstep", lock.port, lock.set_script()),
                ("openbao", bao.port, bao.set_script()),
                ("ceiling", ceil.port, ceil.script("set", "PUT", json.dumps({"value": SET_VALUE}))),
            ], rounds)
            results.add("set", "SET new version (durable)", per,
                        note=f"OpenBao storage: {args.bao_storage}")
        if "token" in only:
            per = interleaved(load, "token", [
                ("lockstep", lock.port, lock.token_script()),
                ("openbao", bao.port, bao.token_script()),
                ("ceiling", ceil.port, ceil.script("token", "POST", lock.token_form())),
                # The same static answer after one RS256 signature: what any
                # endpoint issuing RS256 JWTs can reach here at most.
                ("ceiling-rs256", ceil.port, ceil.script("sign/token", "POST", lock.token_form())),
            ], rounds)
            results.add("token", "token: client credentials vs AppRole login", per,
                        note="ceiling-rs256: the ceiling answering after one RS256 signature")
        for s in systems:
            results.systems[s.name]["rss_mib_after_load"] = round(rss_mib(s.process.pid) or 0, 1)
        if "rotate" in only:
            r = rotations(lock, n_rot, 16)
            results.add("rotations", f"full rotations ({n_rot} bindings)", {"lockstep": r}, unit="runs/s",
                        note="create, store, verify, finish; Lockstep only")
        if "scale" in only:
            scale(load, lock, n_secrets, results, rounds)
    except BenchError as e:
        print(f"\nBENCHMARK FAILED: {e}", file=sys.stderr)
        failed = True
    except subprocess.CalledProcessError as e:
        print(f"\nBENCHMARK FAILED: {e} {e.stderr!r}", file=sys.stderr)
        failed = True
    finally:
        for s in systems:
            s.stop()

    results.config["finished"] = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
    expected = {"get": [("get_small", [*SYSTEMS, "ceiling-audited"]),
                        ("get_large", [*SYSTEMS, "ceiling-audited"])], "set": [("set", SYSTEMS)],
                "token": [("token", [*SYSTEMS, "ceiling-rs256"])], "rotate": [("rotations", ["lockstep"])],
                "scale": [("scale_load", ["lockstep"]), ("scale_get", ["lockstep"]),
                          ("scale_random", ["lockstep"])]}
    checks = [f"{w}/{s}" for o in sorted(only) for w, ss in expected.get(o, []) for s in ss]
    missing = [c for c in checks
               if not results.workloads.get(c.split("/")[0], {}).get("systems", {})
               .get(c.split("/")[1], {}).get("rps")]
    if missing and not failed:
        print(f"\nBENCHMARK FAILED: no numbers for {', '.join(missing)}", file=sys.stderr)
        failed = True
    results.config["complete"] = not failed
    args.out.parent.mkdir(parents=True, exist_ok=True)
    tmp = args.out.with_suffix(".json.tmp")
    tmp.write_text(json.dumps({"config": results.config, "systems": results.systems,
                               "workloads": results.workloads}, indent=2) + "\n")
    tmp.replace(args.out)
    print()
    print(table(results))
    print(f"\nresults: {args.out}")
    if not args.keep and not failed:
        shutil.rmtree(work, ignore_errors=True)
    else:
        print(f"working directory kept: {work}")
    if smoke:
        # One closing line in the plain form CI reads: a workload and system
        # with numbers passed.
        print(f"smoke: {len(checks) - len(missing)} passed, {len(missing)} failed")
    return 1 if failed else 0


def scale(load: Load, lock: Lockstep, n: int, results: Results, rounds: int):
    """Workload (e): GET latest as in (a), and random GETs, with few and
    with `n` secrets in the vault; RSS; the time a restart takes."""
    base_n = min(n, 200)
    load_secrets(lock, 0, base_n, load.connections)
    fixed_small = interleaved(load, f"scale: GET latest (a) with {base_n} secrets", [
        ("lockstep", lock.port, lock.get_script("small"))], rounds)["lockstep"]
    small = interleaved(load, f"scale: random GET among {base_n}", [
        ("lockstep", lock.port, random_get_script(lock, base_n))], rounds)["lockstep"]
    loaded = load_secrets(lock, base_n, n, load.connections)
    fixed_big = interleaved(load, f"scale: GET latest (a) with {n} secrets", [
        ("lockstep", lock.port, lock.get_script("small"))], rounds)["lockstep"]
    big = interleaved(load, f"scale: random GET among {n}", [
        ("lockstep", lock.port, random_get_script(lock, n))], rounds)["lockstep"]
    rss_loaded = rss_mib(lock.process.pid) or 0.0
    db = sum(f.stat().st_size for f in lock.data.glob("lockstep.db*"))
    say("scale: restarting lockstep")
    lock.stop()
    start = lock.start()
    # One request after the restart must be served (tokens stay valid).
    lock.get_body("small")
    rss_restarted = rss_mib(lock.process.pid) or 0.0
    say(f"scale: restarted in {start:.2f} s; RSS {rss_loaded:.0f} MiB after the load, "
        f"{rss_restarted:.0f} MiB after the restart; database {db / 2**20:.0f} MiB")
    ratio = lambda a, b: round(a / b, 3) if b else None
    results.add("scale_load", f"scale: load {n - base_n} secrets (SET, {load.connections} conns)",
                {"lockstep": loaded})
    results.add("scale_get", f"scale: GET latest (a), {n} secrets", {"lockstep": {
        **fixed_big, "baseline_rps": fixed_small["rps"], "baseline_secrets": base_n,
        "ratio_to_baseline": ratio(fixed_big["rps"], fixed_small["rps"]),
        "rss_mib": round(rss_loaded, 1), "rss_mib_after_restart": round(rss_restarted, 1),
        "start_seconds": round(start, 3), "database_mib": round(db / 2**20, 1)}},
        note=f"baseline (the same GET with {base_n} secrets): {fixed_small['rps']:.0f} req/s")
    results.add("scale_random", f"scale: random GET among {n} secrets", {"lockstep": {
        **big, "baseline_rps": small["rps"], "baseline_secrets": base_n,
        "ratio_to_baseline": ratio(big["rps"], small["rps"])}},
        note=f"baseline (random GET among {base_n}): {small['rps']:.0f} req/s")


if __name__ == "__main__":
    sys.exit(main())
