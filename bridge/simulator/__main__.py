"""`python -m bridge.simulator --port N --dialect dp|restservice ...`: the simulator alone, until SIGINT/SIGTERM."""

from __future__ import annotations

import argparse
import asyncio
import logging
import signal

from bridge.simulator import add_arguments, options_from_args, serve


async def _main(ns: argparse.Namespace) -> None:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    await serve(options_from_args(ns), stop)


def main() -> int:
    parser = argparse.ArgumentParser(prog="python -m bridge.simulator", description="WinCC REST simulator")
    add_arguments(parser)
    ns = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)-7s %(name)s: %(message)s")
    asyncio.run(_main(ns))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
