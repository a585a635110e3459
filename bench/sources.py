"""What verifying and normalising one call costs, per platform: each platform's documented
sample, signed as the platform signs it (SNS with an RSA key whose certificate a loopback
HTTPS host serves, fetched once and cached; Azure Monitor with an Entra ID token), through
the source's `verify` and `normalise`, in this process (no HTTP, no database: the part
of ingest that differs between platforms).

    .venv/bin/python bench/sources.py [--calls 2000]
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from app.config.sections import SourceConfig  # noqa: E402
from app.sources.base import WebhookRequest  # noqa: E402
from app.sources.registry import SOURCES  # noqa: E402
from tests.support.platforms import FIRING, SIGNERS  # noqa: E402
from tests.support.platforms import SOURCES as CONFIGS  # noqa: E402
from tests.support.standins.sns import start_sns  # noqa: E402


def timed(calls: int, one: Callable[[], object]) -> tuple[float, float]:
    """(median, p99) microseconds of `one` over `calls` runs."""
    took = []
    for _ in range(calls):
        started = time.perf_counter()
        one()
        took.append((time.perf_counter() - started) * 1e6)
    took.sort()
    return statistics.median(took), took[int(len(took) * 0.99) - 1]


def request(source: str, headers: dict[str, str], body: bytes) -> WebhookRequest:
    now = time.time()
    lowered = {k.lower(): v for k, v in headers.items()}
    return WebhookRequest(source, lowered, body, datetime.fromtimestamp(now, UTC), now, 3600)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--calls", type=int, default=2000)
    calls = parser.parse_args().calls
    cases: list[tuple[str, bytes, dict[str, str], SourceConfig]] = []
    for sample in FIRING:
        body = sample.body()
        config = SourceConfig.model_validate(CONFIGS[sample.source])
        cases.append((sample.source, body, SIGNERS[sample.source](body), config))
    sns = start_sns(Path(tempfile.mkdtemp(prefix="bench-sns-")))
    body = sns.body("alarm.json")
    cases.append(("cloudwatch", body, {"x-amz-sns-message-type": "Notification"},
                  SourceConfig.model_validate(sns.source_config())))  # fmt: skip
    print(
        f"{'source':>14}  {'verify µs p50':>13}  {'p99':>7}  {'normalise µs p50':>16}  {'p99':>7}"
    )
    try:
        for name, body, headers, config in cases:
            source = SOURCES[name]
            call = request(name, headers, body)
            source.verify(call, config)  # a first call fetches what it caches (SNS)
            verify = timed(calls, lambda: source.verify(call, config))  # noqa: B023
            payload = json.loads(body)
            normalise = timed(calls, lambda: source.normalise(payload, call))  # noqa: B023
            print(f"{name:>14}  {verify[0]:>13.1f}  {verify[1]:>7.1f}  {normalise[0]:>16.1f}"
                  f"  {normalise[1]:>7.1f}", flush=True)  # fmt: skip
    finally:
        sns.stop()


if __name__ == "__main__":
    main()
