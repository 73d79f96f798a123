"""`prizeflow-dev`: bring the local stack up and down, inspect it, run it in the foreground."""

from __future__ import annotations

import argparse
import contextlib
import os
import shlex
import signal
import sys
import time
from collections.abc import Iterator, Sequence
from pathlib import Path
from types import FrameType

from rich.console import Console
from rich.table import Table

from prizeflow_devstack.docker_engine import stop_project_engine
from prizeflow_devstack.infra import Infra, InfraError, ensure_infra, status, stop_infra
from prizeflow_devstack.paths import Paths, RootNotFoundError, find_root
from prizeflow_devstack.postgres import running_postmaster
from prizeflow_devstack.procs import pid_alive, pids_matching
from prizeflow_devstack.prometheus import (
    ALERTS_PAGE,
    PrometheusError,
    ensure_prometheus,
    leftover_pids,
    planned_targets,
    scrape_targets,
)
from prizeflow_devstack.sign_in import console_banner
from prizeflow_devstack.state import load_state
from prizeflow_devstack.supervisor import (
    RunningService,
    ServiceSpec,
    ServiceSpecError,
    ServiceStartError,
    discover_services,
    reserve_ports,
    running_services,
    start_services,
)
from prizeflow_devstack.topics import provision, provision_or_fail

console = Console()
err_console = Console(stderr=True)


def _raise_interrupt(signum: int, frame: FrameType | None) -> None:
    raise KeyboardInterrupt


@contextlib.contextmanager
def _uninterruptible() -> Iterator[None]:
    """Teardown must finish: a second Ctrl-C (or SIGTERM) must not leave half the stack running."""
    previous = {sig: signal.signal(sig, signal.SIG_IGN) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)


def _up(root: Path, *, demo: bool = False) -> tuple[Infra, list[RunningService], str]:
    started = time.monotonic()
    infra = ensure_infra(root)
    report = provision_or_fail(infra.kafka_bootstrap, _suffix())  # services verify their topics, never create them
    err_console.print(f"[dim]topics: {len(report.created)} created, {len(report.present)} present[/dim]")
    specs = discover_services(root)
    if demo:
        specs.append(demo_spec(root))
    if not specs:
        err_console.print("no services declare [tool.prizeflow.service]: infrastructure only", markup=False)
    # Prometheus first, on the ports the services will have: it sees each of them come up, and the simulator's
    # first chaos burst (timed from the simulator's start) whatever the machine's speed.
    targets = planned_targets(specs, reserve_ports(specs, root))
    prometheus_url = ensure_prometheus(root, targets)
    services = start_services(infra, root, specs)
    if (actual := scrape_targets(services)) != targets:  # a reserved port was taken in the meantime
        prometheus_url = ensure_prometheus(root, actual)
    err_console.print(f"[dim]ready in {time.monotonic() - started:.1f}s[/dim]")
    return infra, services, prometheus_url


def _suffix() -> str:
    return os.environ.get("KAFKA_TOPIC_SUFFIX", "")


def cmd_topics(root: Path, suffix: str, increase_partitions: bool) -> int:
    """Provision every contract topic and DLQ; exit 1 when one is short and was not increased."""
    infra = ensure_infra(root)
    report = provision(infra.kafka_bootstrap, suffix, increase_partitions=increase_partitions)
    for line in report.lines():
        style = "red" if line.startswith("SHORT") else "yellow" if line.startswith("increased") else "dim"
        console.print(f"[{style}]{line}[/{style}]", markup=True, highlight=False)
    console.print(
        f"topics on {infra.kafka_bootstrap}: {len(report.created)} created, {len(report.present)} present, "
        f"{len(report.increased)} increased, {len(report.short)} short"
    )
    return 0 if report.ok else 1


def demo_spec(root: Path) -> ServiceSpec:
    """The outbox → Kafka → inbox demonstration process that `run` starts beside the services."""
    return ServiceSpec(
        name="demo",
        directory=root,
        command=(sys.executable, "-m", "prizeflow_devstack.demo"),
        http_port_env="HTTP_PORT",
        database="prizeflow_demo",
    )


def _table(root: Path, infra: Infra, services: Sequence[RunningService], prometheus_url: str) -> Table:
    paths = Paths(root)
    table = Table(title="Prizeflow devstack")
    table.add_column("component", style="bold", overflow="fold")
    table.add_column("address", overflow="fold")
    table.add_column("metrics", overflow="fold")
    table.add_column("log", overflow="fold")
    pg_source = "managed" if infra.managed else "external/env"
    table.add_row(f"postgres ({pg_source})", infra.postgres_url, "-", str(paths.pg_log))
    table.add_row("kafka", infra.kafka_bootstrap, "-", str(paths.kafka_log))
    table.add_row("prometheus", f"{prometheus_url}{ALERTS_PAGE}", "-", str(paths.prometheus_log))
    for svc in services:
        table.add_row(svc.spec.name, svc.http_url or "-", svc.metrics_url or "-", str(svc.log))
    return table


def _banner(root: Path, infra: Infra, services: Sequence[RunningService], prometheus_url: str) -> None:
    """What runs where; then, once the console runs, its address and a dev sign-in link per person."""
    console.print(_table(root, infra, services, prometheus_url))
    if (sign_in := console_banner(services)) is not None:
        console.print(sign_in)


def _down(root: Path) -> int:
    """Stop everything, then prove by pid that nothing of ours survives."""
    paths = Paths(root)
    with _uninterruptible():
        stopped = stop_infra(root)
        if stop_project_engine(root):  # a container tier that was killed leaves its dockerd
            stopped.append("dockerd (.devstack/docker)")
        state = load_state(paths)
        leftovers = [f"kafka pid {p}" for p in pids_matching(str(paths.kafka_config))]
        leftovers += [f"prometheus pid {p}" for p in leftover_pids(paths)]
        if pid_alive(state.prometheus.pid, state.prometheus.start_ticks):
            leftovers.append(f"prometheus pid {state.prometheus.pid}")
        if (pm := running_postmaster(paths)) is not None:
            leftovers.append(f"postgres pid {pm.pid}")
        leftovers += [
            f"{name} pid {svc.pid}" for name, svc in state.services.items() if pid_alive(svc.pid, svc.start_ticks)
        ]
    if leftovers:
        err_console.print(f"[bold red]still running after down:[/bold red] {', '.join(leftovers)}")
        return 1
    console.print(f"stopped: {', '.join(stopped) if stopped else 'nothing was running'}")
    return 0


def cmd_up(root: Path) -> int:
    """Interrupted while starting: tear everything down rather than leave a half stack behind."""
    previous = {
        signal.SIGTERM: signal.signal(signal.SIGTERM, _raise_interrupt),
        signal.SIGINT: signal.signal(signal.SIGINT, signal.default_int_handler),
    }
    try:
        infra, services, prometheus_url = _up(root)
    except KeyboardInterrupt:
        err_console.print("[yellow]interrupted: tearing down[/yellow]")
        _down(root)
        return 130
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    _banner(root, infra, services, prometheus_url)
    return 0


def cmd_run(root: Path) -> int:
    from prizeflow_devstack.live import run_live_view

    previous = {
        signal.SIGTERM: signal.signal(signal.SIGTERM, _raise_interrupt),
        # also when started with SIGINT ignored (a background job): Ctrl-C must still tear down
        signal.SIGINT: signal.signal(signal.SIGINT, signal.default_int_handler),
    }
    try:
        infra, services, prometheus_url = _up(root, demo=True)
        _banner(root, infra, services, prometheus_url)
        run_live_view(infra, services, prometheus_url=prometheus_url)
    except KeyboardInterrupt:
        err_console.print("[yellow]stopping the stack[/yellow]")
    finally:
        code = _down(root)
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    return code


def cmd_status(root: Path) -> int:
    stack = status(root)
    table = Table(title=f"Prizeflow devstack at {root}")
    for column in ("component", "state", "address", "pid", "log"):
        table.add_column(column, overflow="fold")
    for comp in (stack.postgres, stack.kafka, stack.prometheus):
        state = "[green]running[/green]" if comp.running else "[red]stopped[/red]"
        table.add_row(comp.name, state, comp.address or "-", str(comp.pid or "-"), str(comp.log or "-"))
    for svc in running_services(root):
        table.add_row(svc.spec.name, "[green]running[/green]", svc.http_url or "-", str(svc.pid), str(svc.log))
    console.print(table)
    for key, value in stack.external.items():
        console.print(f"[dim]env {key}={value} (ensure_infra uses it unless it points at the devstack)[/dim]")
    return 0


def _log_files(root: Path, name: str | None) -> list[Path]:
    paths = Paths(root)
    known = {"postgres": paths.pg_log, "kafka": paths.kafka_log}
    known.update({p.stem: p for p in sorted(paths.logs.glob("*.log")) if p.stem not in known})
    if name is None:
        return [p for p in known.values() if p.exists()]
    if name not in known:
        raise SystemExit(f"unknown log {name!r}; known: {', '.join(sorted(known))}")
    return [known[name]]


def cmd_logs(root: Path, name: str | None, follow: bool, lines: int) -> int:
    from prizeflow_devstack.procs import tail

    files = _log_files(root, name)
    for path in files:
        if len(files) > 1:
            console.rule(str(path))
        sys.stdout.write(tail(path, lines) + "\n")
    sys.stdout.flush()
    if not follow:
        return 0
    offsets = {p: p.stat().st_size if p.exists() else 0 for p in files}
    try:
        while True:
            for path in files:
                if not path.exists():
                    continue
                size = path.stat().st_size
                if size < offsets[path]:
                    offsets[path] = 0  # truncated or recreated
                if size > offsets[path]:
                    with path.open("rb") as handle:
                        handle.seek(offsets[path])
                        chunk = handle.read().decode(errors="replace")
                    offsets[path] = size
                    prefix = f"[{path.stem}] " if len(files) > 1 else ""
                    sys.stdout.write("".join(prefix + line for line in chunk.splitlines(keepends=True)))
                    sys.stdout.flush()
            time.sleep(0.5)
    except KeyboardInterrupt:
        return 0


def cmd_env(root: Path) -> int:
    infra = ensure_infra(root)
    exports = " ".join(f"{k}={shlex.quote(v)}" for k, v in infra.env().items())
    sys.stdout.write(f"export {exports}\n")
    return 0


def cmd_images(root: Path, only: list[str] | None, args: argparse.Namespace) -> int:
    from prizeflow_devstack import images

    unknown = sorted(set(only or ()) - set(images.IMAGES))
    if unknown:
        err_console.print(f"unknown images {unknown}; known: {sorted(images.IMAGES)}")
        return 2
    try:
        if args.infra:
            for ref, how in images.ensure_infrastructure_images(root).items():
                sys.stdout.write(f"{ref}: {how}\n")
        built = images.build_images(root, only)
        sys.stdout.write(images.report(root, built, root / ".results" / "images.json") + "\n")
        digests = {b.ref: b.digest for b in built}
        if args.push:
            specs = [images.IMAGES[n] for n in (only or list(images.IMAGES))]
            for spec in specs:
                digests[spec.ref] = images.push(root, spec, args.push, args.tag, tls_verify=not args.insecure)
                sys.stdout.write(f"pushed {args.push}/{spec.name}:{args.tag}@{digests[spec.ref]}\n")
        if args.pin:
            kustomization = Path(args.pin) / "kustomization.yaml"
            if not args.push:
                err_console.print(
                    "--pin without --push: pinning LOCAL manifest digests (podman's), which a registry's may differ"
                    " from; a release pins what `--push` reports"
                )
            named = {spec.name: digests[spec.ref] for spec in images.IMAGES.values() if spec.ref in digests}
            wanted = images.overlay_image_names(kustomization)
            missing = sorted(wanted - set(named))
            if missing:
                err_console.print(f"--pin: {kustomization} names {missing}, which were not built: build them too")
                return 2
            repository = args.pin_repository or args.push
            pinned = images.pin_overlay(kustomization, {n: named[n] for n in wanted}, repository=repository)
            sys.stdout.write(f"pinned {', '.join(pinned)} in {kustomization}\n")
    except images.ImageError as err:
        err_console.print(f"[bold red]prizeflow-dev images failed:[/bold red] {err}", markup=True)
        return 1
    return 0


def cmd_token(root: Path, args: argparse.Namespace) -> int:
    """The token alone on stdout (for `$(...)`); a refusal on stderr, exit 2."""
    from prizeflow_devstack.dev_tokens import DevTokenRefusedError, dev_token

    try:
        token = dev_token(
            root,
            os.environ,
            user=args.user or os.environ.get("USER") or "operator",
            roles=args.role,
            ttl_s=args.ttl,
            audiences=args.audience,
        )
    except DevTokenRefusedError as err:
        err_console.print(f"prizeflow-dev token: {err}", markup=False, highlight=False, soft_wrap=True)
        return 2
    sys.stdout.write(token + "\n")
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="prizeflow-dev", description=__doc__)
    parser.add_argument("--root", type=Path, help="repo root (default: PRIZEFLOW_ROOT or discovered from cwd)")
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser("up", help="start PostgreSQL, Kafka, migrations, every discovered service and Prometheus")
    sub.add_parser("down", help="stop services, Prometheus, Kafka, PostgreSQL; verify no process is left")
    sub.add_parser("status", help="what runs where")
    logs = sub.add_parser("logs", help="show (and follow) logs: postgres, kafka, prometheus or a service")
    logs.add_argument("name", nargs="?")
    logs.add_argument("-f", "--follow", action="store_true")
    logs.add_argument("-n", "--lines", type=int, default=50)
    sub.add_parser("env", help="print `export DATABASE_URL=... KAFKA_BOOTSTRAP_SERVERS=...`")
    sub.add_parser("run", help="up, live view in the foreground, down on Ctrl-C/SIGTERM")
    topics = sub.add_parser("topics", help="provision every contract topic and DLQ (what `up` does first)")
    topics.add_argument("--suffix", default=None, help="topic suffix (default: KAFKA_TOPIC_SUFFIX, else none)")
    topics.add_argument(
        "--increase-partitions", action="store_true", help="add partitions to topics that have fewer than expected"
    )
    images = sub.add_parser("images", help="build the platform's container images offline with podman; sizes")
    images.add_argument("only", nargs="*", help="images to build (settlement, …, ops); all by default")
    images.add_argument("--infra", action="store_true", help="also the official images compose runs (or stand-ins)")
    images.add_argument("--push", metavar="REPOSITORY", help="push each to REPOSITORY/<name>:TAG (a release)")
    images.add_argument("--tag", default="dev", help="the tag --push pushes under (default: dev)")
    images.add_argument("--insecure", action="store_true", help="--push over plain HTTP / unverified TLS")
    images.add_argument(
        "--pin-repository",
        metavar="REPOSITORY",
        help="the repository --pin names (default: --push's): where the cluster pulls from, when this machine "
        "pushes to the same registry under another address",
    )
    images.add_argument(
        "--pin", metavar="OVERLAY", help="write the digests into OVERLAY/kustomization.yaml's `images:` (after --push)"
    )
    sub.add_parser("compose-secrets", help="keys and passwords docker-compose.yml reads (deploy/compose/secrets/)")
    token = sub.add_parser(
        "token", help="print a bearer token the local stack accepts (dev identity; dev profile only)"
    )
    token.add_argument("--role", action="append", required=True, help="ops, admin, approver or player (repeatable)")
    token.add_argument("--user", default=None, help="the token's subject (default: $USER)")
    token.add_argument("--ttl", type=int, default=3600, help="seconds the token is valid (default 3600)")
    token.add_argument("--audience", action="append", default=[], help="instead of every service's dev audience")
    bench = sub.add_parser("bench", help="run every */bench/bench_*.py; JSON under .results/bench/")
    bench.add_argument("only", nargs="*", help="benchmark names (bench_<name>.py) to run; all by default")
    check = sub.add_parser(
        "bench-check",
        help="the short e2e bench of this checkout beside the reference commit docs/capacity.md names; "
        "fails >20 %% below",
    )
    check.add_argument(
        "--update", action="store_true", help="make this checkout's commit the reference in docs/capacity.md instead"
    )
    check.add_argument(
        "--allow-lower",
        action="store_true",
        help="with --update: write even when a figure is below the reference's of the same sitting",
    )
    check.add_argument("--from-json", type=Path, default=None, help="judge this e2e result instead of running one")
    check.add_argument(
        "--reference-json", type=Path, default=None, help="with --from-json: the reference's e2e result beside it"
    )
    sub.add_parser(
        "soak",
        help="the whole platform under a steady load, sampled, judged for leaks (tests/bench/soak.py; its options "
        "follow: --minutes, --rounds-per-s, --payouts-per-s, --interval, ...; docs/soak.md)",
        add_help=False,  # --help goes to the soak script, with the rest of its options
    )
    return parser


def main(argv: Sequence[str] | None = None) -> None:  # noqa: PLR0912 - one case per command
    parser = build_parser()
    args, rest = parser.parse_known_args(argv)
    if rest and args.command != "soak":
        parser.error(f"unrecognized arguments: {' '.join(rest)}")
    if args.command == "bench-check" and args.allow_lower and not args.update:
        parser.error("--allow-lower goes with --update")
    if args.command == "bench-check" and (args.reference_json is None) != (args.from_json is None):
        parser.error("--from-json and --reference-json go together")
    try:
        root = args.root.resolve() if args.root else find_root()
        if args.root:
            os.environ.setdefault("PRIZEFLOW_ROOT", str(root))
        match args.command:
            case "up":
                code = cmd_up(root)
            case "bench":
                from prizeflow_devstack.bench import run_all

                code = run_all(root, args.only or None, console)
            case "bench-check":
                from prizeflow_devstack.bench_check import run_check

                code = run_check(
                    root,
                    write=args.update,
                    allow_lower=args.allow_lower,
                    e2e_json=args.from_json,
                    reference_json=args.reference_json,
                    console=console,
                )
            case "soak":
                from prizeflow_devstack.bench import run_soak

                code = run_soak(root, rest)
            case "images":
                code = cmd_images(root, args.only or None, args)
            case "compose-secrets":
                from prizeflow_devstack.compose import ensure_compose_secrets

                sys.stdout.write(f"{ensure_compose_secrets(root)}\n")
                code = 0
            case "token":
                code = cmd_token(root, args)
            case "down":
                code = _down(root)
            case "status":
                code = cmd_status(root)
            case "logs":
                code = cmd_logs(root, args.name, args.follow, args.lines)
            case "env":
                code = cmd_env(root)
            case "run":
                code = cmd_run(root)
            case "topics":
                code = cmd_topics(root, _suffix() if args.suffix is None else args.suffix, args.increase_partitions)
            case _:  # pragma: no cover - argparse rejects unknown commands
                code = 2
    except (InfraError, PrometheusError, ServiceSpecError, ServiceStartError, RootNotFoundError) as err:
        err_console.print(f"[bold red]prizeflow-dev {args.command} failed:[/bold red] {err}", markup=True)
        code = 1
    raise SystemExit(code)
