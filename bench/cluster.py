"""`make bench-cluster`: the engine cluster of tests/cluster/nodes.py (PostgreSQL, two
engine nodes, a gateway before each, nginx before both), measured three ways:

- failover: clients call through nginx without pause (GET loops and POST loops) while one
  engine node is killed with SIGKILL and later started again; what each kind of request saw,
  how long the dead node's gateway took to say 503, and how long until nginx sent the
  revived pair requests again; once with the gateways' --refuse-while-engine-down off, once
  on;
- database: one 100 MB File variable uploaded and downloaded through one gateway, on
  PostgreSQL (the cluster's) and on H2 (an engine of its own), median of ROUNDS;
- throughput: CLIENTS clients doing 20 MB upload-and-download round trips for SECONDS,
  through nginx to both pairs, then straight to one pair's gateway.

    .venv/bin/python bench/cluster.py   # writes bench/results/cluster.json
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import statistics
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

import aiohttp

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from tests import processes
from tests.cluster.nodes import Cluster, cluster, requests_served
from tests.faults.polling import poll_until
from tests.integration import engine_api

RESULTS = Path(__file__).resolve().parent / "results" / "cluster.json"
MIB = 1 << 20
BIG = 100_000_000
ROUND_TRIP = 20_000_000
ROUNDS = 3
CLIENTS = 4
SECONDS = 30.0
STEADY_SECONDS = 5.0
AFTER_KILL_SECONDS = 15.0


def _session() -> aiohttp.ClientSession:
    return aiohttp.ClientSession(
        headers={"Authorization": engine_api.AUTHORIZATION},
        auto_decompress=False,
        timeout=aiohttp.ClientTimeout(total=600),
    )


async def _upload(client: aiohttp.ClientSession, base_url: str, task_id: str, size: int) -> int:
    form = engine_api.variable_form(
        engine_api.pseudo_random_chunks(size, size), size, value_type="File", filename="f.bin"
    )
    url = f"{base_url}/engine-rest/task/{task_id}/variables/doc/data"
    status, _ = await engine_api.post_form(client, url, form)
    return status


async def _download(client: aiohttp.ClientSession, base_url: str, instance_id: str) -> str:
    url = f"{base_url}/engine-rest/process-instance/{instance_id}/variables/doc/data"
    async with client.get(url) as response:
        assert response.status == 200, response.status
        digest = hashlib.sha256()
        async for chunk in response.content.iter_chunked(MIB):
            digest.update(chunk)
        return digest.hexdigest()


async def failover(engine_cluster: Cluster) -> dict[str, object]:
    a = engine_cluster.nodes[0]
    outcomes: dict[str, Counter[str]] = {"GET": Counter(), "POST": Counter()}
    failures_at: list[float] = []
    stop = asyncio.Event()
    killed_at = 0.0
    base = engine_cluster.balancer_url + "/engine-rest"

    async def loop(client: aiohttp.ClientSession, method: str) -> None:
        url = base + (
            "/process-definition/count"
            if method == "GET"
            else f"/process-definition/key/{engine_api.PROCESS_KEY}/start"
        )
        body = b"{}" if method == "POST" else None
        headers = {"Content-Type": "application/json"} if body else {}
        while not stop.is_set():
            try:
                async with client.request(method, url, data=body, headers=headers) as response:
                    await response.read()
                    outcome = str(response.status)
            except aiohttp.ClientError as error:
                outcome = type(error).__name__
            outcomes[method][outcome] += 1
            if outcome != "200" and killed_at:
                failures_at.append(time.monotonic() - killed_at)

    async with _session() as client:
        loops = [asyncio.create_task(loop(client, m)) for m in ("GET", "GET", "POST", "POST")]
        await asyncio.sleep(STEADY_SECONDS)  # a benchmark's fixed phase, not a synchronisation
        before = {method: sum(counts.values()) for method, counts in outcomes.items()}
        killed_at = time.monotonic()
        engine_cluster.kill_engine(0)

        async def unready() -> bool:
            try:
                async with client.get(a.gateway.admin_url + "/readyz") as response:
                    return response.status == 503
            except aiohttp.ClientError:
                return False

        await poll_until(unready, timeout_seconds=30, what="readyz 503")
        to_unready = time.monotonic() - killed_at
        await asyncio.sleep(AFTER_KILL_SECONDS - to_unready)
        revived_at = time.monotonic()
        await asyncio.to_thread(engine_cluster.start_engine, 0)
        engine_up = time.monotonic() - revived_at
        served = await requests_served(client, a.gateway.admin_url)

        async def used_again() -> bool:
            return await requests_served(client, a.gateway.admin_url) > served

        await poll_until(used_again, timeout_seconds=60, what="requests on the revived pair")
        back_in_rotation = time.monotonic() - revived_at
        stop.set()
        await asyncio.gather(*loops)
    return {
        "requests_before_kill": before,
        "outcomes": {method: dict(counts) for method, counts in outcomes.items()},
        "failures_seconds_after_kill": [round(t, 3) for t in failures_at],
        "kill_to_readyz_503_seconds": round(to_unready, 3),
        "revive_to_engine_ready_seconds": round(engine_up, 1),
        "revive_to_requests_on_the_revived_pair_seconds": round(back_in_rotation, 1),
    }


async def _round_trip_times(base_url: str, task_id: str, instance_id: str) -> dict[str, object]:
    expected = engine_api.pseudo_random_sha256(BIG, BIG)
    ups, downs = [], []
    async with _session() as client:
        for _ in range(ROUNDS):
            started = time.monotonic()
            assert await _upload(client, base_url, task_id, BIG) == 204
            ups.append(time.monotonic() - started)
            started = time.monotonic()
            assert await _download(client, base_url, instance_id) == expected
            downs.append(time.monotonic() - started)
    return {
        "upload_seconds_median": round(statistics.median(ups), 2),
        "download_seconds_median": round(statistics.median(downs), 2),
        "upload_seconds": [round(t, 2) for t in ups],
        "download_seconds": [round(t, 2) for t in downs],
    }


async def database(engine_cluster: Cluster, work_dir: Path) -> dict[str, object]:
    b = engine_cluster.nodes[1]
    instance_id, task_id = engine_api.start_instance(b.gateway.base_url)
    on_postgres = await _round_trip_times(b.gateway.base_url, task_id, instance_id)
    h2_dir = work_dir / "h2"
    h2_dir.mkdir()
    with (
        processes.engine(h2_dir) as engine,
        processes.gateway(h2_dir, engine.base_url) as gateway,
    ):
        engine_api.deploy(engine.base_url)
        instance_id, task_id = engine_api.start_instance(engine.base_url)
        on_h2 = await _round_trip_times(gateway.base_url, task_id, instance_id)
    return {"size_bytes": BIG, "postgres": on_postgres, "h2": on_h2}


async def throughput(base_url: str) -> dict[str, object]:
    moved, errors = [0], Counter[str]()
    deadline = time.monotonic() + SECONDS

    async def client_loop(client: aiohttp.ClientSession) -> None:
        instance_id, task_id = await asyncio.to_thread(engine_api.start_instance, base_url)
        expected = engine_api.pseudo_random_sha256(ROUND_TRIP, ROUND_TRIP)
        while time.monotonic() < deadline:
            try:
                status = await _upload(client, base_url, task_id, ROUND_TRIP)
                if status != 204:
                    errors[str(status)] += 1
                    continue
                if await _download(client, base_url, instance_id) != expected:
                    errors["mismatch"] += 1
                    continue
                moved[0] += 2 * ROUND_TRIP
            except (aiohttp.ClientError, AssertionError) as error:
                errors[type(error).__name__] += 1

    started = time.monotonic()
    async with _session() as client:
        await asyncio.gather(*(client_loop(client) for _ in range(CLIENTS)))
    elapsed = time.monotonic() - started
    return {
        "clients": CLIENTS,
        "seconds": round(elapsed, 1),
        "mb_per_s_both_ways": round(moved[0] / elapsed / 1e6, 1),
        "errors": dict(errors),
    }


async def main() -> int:
    work_dir = Path(tempfile.mkdtemp(prefix="bench-cluster-"))
    with cluster(work_dir) as engine_cluster:
        results: dict[str, object] = {}
        for refuse in ("off", "on"):
            engine_cluster.restart_gateways(refuse)
            results[f"failover_refuse_while_engine_down_{refuse}"] = await failover(engine_cluster)
        results["database"] = await database(engine_cluster, work_dir)
        results["throughput"] = {
            "through_nginx_two_pairs": await throughput(engine_cluster.balancer_url),
            "one_pair_direct": await throughput(engine_cluster.nodes[1].gateway.base_url),
        }
    RESULTS.write_text(json.dumps(results, indent=2) + "\n")
    print(json.dumps(results, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(asyncio.run(main()))
