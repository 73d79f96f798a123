"""`prizeflow-ops preflight` against real HTTP servers on this machine (two host names for it: 127.0.0.1 and
localhost, so that a redirect is cross-host): a sanctions list redirected to an allowed host passes and its chain is
printed, to a host not allowed fails naming it, a 5xx fails, an API answering 4xx is reached, the JWKS follows no
redirect, the rails' APIs come from payouts' providers directory, and a closed port fails naming its target.
(Configurations it cannot read, a refusing proxy: tests/test_preflight.py.)"""

from __future__ import annotations

import io
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from prizeflow_ops import ExitCode, run

pytestmark = pytest.mark.integration

Route = tuple[int, dict[str, str]]  # status, headers


@dataclass
class Server:
    port: int
    routes: dict[str, Route]
    hits: list[str]

    def url(self, path: str, host: str = "127.0.0.1") -> str:
        return f"http://{host}:{self.port}{path}"


@pytest.fixture
def server() -> Iterator[Server]:
    routes: dict[str, Route] = {}
    hits: list[str] = []

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            hits.append(f"{self.headers['host']}{self.path}")
            status, headers = routes.get(self.path.split("?", 1)[0], (404, {}))
            body = b"<sdnList/>" * 1000  # never read by the preflight
            self.send_response(status)
            for name, value in headers.items():
                self.send_header(name, value)
            self.send_header("content-length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *_: object) -> None:
            pass

    httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    try:
        yield Server(httpd.server_address[1], routes, hits)
    finally:
        httpd.shutdown()
        httpd.server_close()


@pytest.fixture(autouse=True)
def _no_proxy(monkeypatch: pytest.MonkeyPatch) -> None:
    """The servers are on this machine: a proxy of the test runner's environment must not carry the requests."""
    for name in ("HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "http_proxy", "https_proxy", "all_proxy"):
        monkeypatch.delenv(name, raising=False)


@dataclass
class Ran:
    code: int
    stdout: str
    stderr: str


def preflight(env: dict[str, str], *argv: str) -> Ran:
    stdout, stderr = io.StringIO(), io.StringIO()
    code = run(["preflight", *argv], env=env, stdout=stdout, stderr=stderr)
    return Ran(code, stdout.getvalue(), stderr.getvalue())


def test_a_list_redirected_to_an_allowed_host_is_reached_and_its_chain_printed(server: Server) -> None:
    server.routes["/exports/SDN.XML"] = (
        302,
        {"location": server.url("/bucket/sdn.xml?X-Amz-Signature=s", "localhost")},
    )
    server.routes["/bucket/sdn.xml"] = (200, {})
    env = {
        "PAYOUTS_SANCTIONS_SOURCES": f"ofac_sdn={server.url('/exports/SDN.XML')}",
        "PAYOUTS_SANCTIONS_REDIRECT_HOSTS": "files.example.org,localhost",
    }
    ran = preflight(env)
    assert ran.code == ExitCode.OK, ran.stderr
    assert (
        f"ok     sanctions list ofac_sdn: GET {server.url('/exports/SDN.XML')} -> 302 -> "
        f"GET {server.url('/bucket/sdn.xml', 'localhost')}?… -> 200"
    ) in ran.stdout.splitlines()
    assert "X-Amz-Signature" not in ran.stdout, "a pre-signed URL's query is not printed"
    assert "1 of 1 reached" in ran.stdout
    assert server.hits == [
        f"127.0.0.1:{server.port}/exports/SDN.XML",
        f"localhost:{server.port}/bucket/sdn.xml?X-Amz-Signature=s",
    ]


def test_a_redirect_to_a_host_not_allowed_fails_naming_it(server: Server) -> None:
    server.routes["/exports/SDN.XML"] = (302, {"location": server.url("/bucket/sdn.xml", "localhost")})
    server.routes["/bucket/sdn.xml"] = (200, {})
    env = {"PAYOUTS_SANCTIONS_SOURCES": f"ofac_sdn={server.url('/exports/SDN.XML')}"}
    ran = preflight(env)
    assert ran.code == ExitCode.UNAVAILABLE
    assert (
        f"preflight: sanctions list ofac_sdn cannot be reached: GET {server.url('/exports/SDN.XML')}: redirected to "
        "localhost, which is not in PAYOUTS_SANCTIONS_REDIRECT_HOSTS (add it there and to the egress proxy's "
        "allow-list)"
    ) in ran.stderr.splitlines()
    assert ran.stdout.startswith("FAILED sanctions list ofac_sdn:")
    assert server.hits == [f"127.0.0.1:{server.port}/exports/SDN.XML"], "the host not allowed is never asked"


def test_a_server_error_fails_and_the_others_are_still_checked(server: Server) -> None:
    server.routes["/un.xml"] = (503, {})
    server.routes["/sdn.xml"] = (200, {})
    env = {"PAYOUTS_SANCTIONS_SOURCES": f"un={server.url('/un.xml')},ofac_sdn={server.url('/sdn.xml')}"}
    ran = preflight(env)
    assert ran.code == ExitCode.UNAVAILABLE
    assert ran.stderr.splitlines() == [
        f"preflight: sanctions list un cannot be reached: GET {server.url('/un.xml')}: HTTP 503"
    ]
    assert "1 of 2 reached" in ran.stdout


def test_a_file_must_end_in_200_and_the_jwks_follows_no_redirect(server: Server) -> None:
    server.routes["/keys"] = (301, {"location": server.url("/keys/")})
    ran = preflight({"JWT_JWKS_URL": server.url("/keys")})
    assert ran.code == ExitCode.UNAVAILABLE
    assert "redirected to 127.0.0.1, and its client follows no redirect" in ran.stderr
    assert preflight({"JWT_JWKS_URL": server.url("/missing")}).stderr.endswith(": HTTP 404\n")


def test_an_api_is_reached_by_any_answer_below_500_and_its_redirect_is_not_followed(server: Server) -> None:
    server.routes["/"] = (302, {"location": "https://core.telegram.invalid/bots"})
    env = {"PAYOUTS_KYC_PROVIDER": "sumsub", "PAYOUTS_KYC_BASE_URL": server.url("/"), "RATES_API_URL": server.url("")}
    env["REWARDS_FX_PAIRS"] = '{"USD/INR": 150}'
    ran = preflight(env)
    assert ran.code == ExitCode.OK, ran.stderr
    assert f"ok     identity-verification vendor (sumsub): GET {server.url('/')} -> 302" in ran.stdout
    assert f"ok     FX rates provider: GET {server.url('/api/latest.json')} -> 404" in ran.stdout
    assert server.hits == [f"127.0.0.1:{server.port}/", f"127.0.0.1:{server.port}/api/latest.json"]


def test_the_rails_apis_come_from_the_providers_directory(server: Server, tmp_path: Path) -> None:
    """As the ConfigMap is mounted: parts in file name order, kubelet's dot entries skipped; a part's `api_base_env`
    read from the environment; stellar's endpoint is SOROBAN_RPC_URL; the manual rail calls nothing."""
    providers = tmp_path / "providers"
    providers.mkdir()
    (providers / "..data").mkdir()
    (providers / "base.yaml").write_text(
        "providers:\n"
        "  - {name: stellar, type: stellar}\n"
        "  - {name: manual, type: manual}\n"
        f"  - {{name: stripe, type: stripe, options: {{api_base: '{server.url('/stripe')}'}}}}\n"
    )
    (providers / "rail-upi.yaml").write_text(
        "providers:\n  - {name: upi, type: upi, options: {api_base_env: UPI_API_URL}}\n"
    )
    env = {"UPI_API_URL": server.url("/razorpay"), "SOROBAN_RPC_URL": server.url("/soroban")}
    ran = preflight(env, "--providers", str(providers))
    assert ran.code == ExitCode.OK, ran.stderr
    assert [line.split(":")[0] for line in ran.stdout.splitlines()[:-1]] == [
        "ok     rail stripe (stripe)",
        "ok     rail upi (upi)",
        "ok     Stellar Soroban RPC",
    ]
    assert preflight(env | {"PAYOUTS_PROVIDERS_FILE": str(providers)}).stdout == ran.stdout
    (providers / "rail-x.yaml").write_text("providers:\n  - {name: x, type: carrier_pigeon}\n")
    refused = preflight(env, "--providers", str(providers))
    assert (refused.code, refused.stderr) == (
        ExitCode.USAGE,
        "preflight: PAYOUTS_PROVIDERS_FILE: provider x: type 'carrier_pigeon' has no known API here\n",
    )


def test_no_answer_fails_naming_the_target() -> None:
    """A closed port: nothing listening."""
    refused = preflight({"JWT_JWKS_URL": "http://127.0.0.1:9/keys"})
    assert refused.code == ExitCode.UNAVAILABLE
    assert "identity provider JWKS cannot be reached: GET http://127.0.0.1:9/keys: ConnectError" in refused.stderr
