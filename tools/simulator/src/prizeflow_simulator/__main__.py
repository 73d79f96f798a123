"""`prizeflow-sim run` publishes a bounded burst and prints a summary; `serve` runs continuously (make run)."""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import os

from prometheus_client import CollectorRegistry

from prizeflow_simulator.chaos import Burst, ChaosConfig
from prizeflow_simulator.runner import Simulator
from prizeflow_simulator.scenarios import ScenarioConfig

log = logging.getLogger("prizeflow.simulator")


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="prizeflow-sim", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    for name in ("run", "serve"):
        p = sub.add_parser(name)
        p.add_argument("--rate", type=float, default=float(os.environ.get("SIM_RATE", "2")), help="rounds/s")
        p.add_argument("--duplicates", type=float, default=float(os.environ.get("SIM_DUPLICATE_RATE", "0")))
        p.add_argument("--out-of-order", type=float, default=float(os.environ.get("SIM_OUT_OF_ORDER_RATE", "0")))
        p.add_argument("--malformed", type=float, default=float(os.environ.get("SIM_MALFORMED_RATE", "0")))
        p.add_argument(
            "--burst",
            type=Burst.parse,
            default=os.environ.get("SIM_CHAOS_BURST") or None,
            help="periodic chaos window DURATION/PERIOD[@DELAY], e.g. 30s/15m@45s (alerts fire, then resolve)",
        )
        p.add_argument(
            "--burst-malformed",
            type=float,
            default=float(os.environ.get("SIM_CHAOS_BURST_MALFORMED", "1")),
            help="malformed records per round inside a burst (they are dead-lettered: the DLQ alert)",
        )
        p.add_argument(
            "--burst-forged-webhooks",
            type=float,
            default=float(os.environ.get("SIM_CHAOS_BURST_FORGED_WEBHOOKS", "0")),
            help="forged webhooks per second to WEBHOOKS_URL inside a burst (serve only: signature failures)",
        )
        p.add_argument("--seed", type=int, default=None)
        p.add_argument("--asset", default=os.environ.get("SIM_ASSET", "USDC"))
        p.add_argument("--campaign", default=os.environ.get("SIM_CAMPAIGN_ID", "sim-campaign"))
        if name == "run":
            p.add_argument("--rounds", type=int, default=100)
    return parser


def _simulator(args: argparse.Namespace, registry: CollectorRegistry | None = None) -> Simulator:
    return Simulator(
        bootstrap=os.environ.get("KAFKA_BOOTSTRAP_SERVERS", "127.0.0.1:9092"),
        topic_suffix=os.environ.get("KAFKA_TOPIC_SUFFIX", ""),
        scenario=ScenarioConfig(asset=args.asset, campaign_id=args.campaign),
        chaos=ChaosConfig(
            duplicate_rate=args.duplicates,
            out_of_order_rate=args.out_of_order,
            malformed_rate=args.malformed,
            burst=args.burst,
            burst_malformed_rate=args.burst_malformed,
            burst_forged_webhooks=args.burst_forged_webhooks,
        ),
        seed=args.seed,
        registry=registry,
    )


async def _run(args: argparse.Namespace) -> None:
    sim = _simulator(args)
    await sim.start()
    try:
        stats = await sim.run(rate=args.rate, rounds=args.rounds)
    finally:
        await sim.stop()
    print(json.dumps(stats.summary(), indent=2))


def main() -> None:
    args = _parser().parse_args()
    if args.command == "run":
        asyncio.run(_run(args))
        return
    from prizeflow_simulator.service import serve_simulator

    serve_simulator(lambda registry: _simulator(args, registry), rate=args.rate)


if __name__ == "__main__":
    main()
