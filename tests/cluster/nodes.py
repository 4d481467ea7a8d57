"""An engine cluster of real processes: PostgreSQL, two engine nodes (the same jar, two
ports, one database, a job executor each), a gateway before each node (with
--refuse-while-engine-down on), and nginx balancing the two gateways with the shipped site
config (deploy/nginx/engine-gateway.conf).

Used by tests/cluster and by `make cluster` (`python -m tests.cluster`).
"""

from __future__ import annotations

import contextlib
import dataclasses
import functools
import os
import signal
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import aiohttp

from tests import processes
from tests.integration import engine_api


async def metric_sum(client: aiohttp.ClientSession, admin_url: str, series: str) -> float:
    """The sum of a gateway's samples whose line starts with `series`."""
    async with client.get(
        admin_url + "/metrics", headers={"Accept-Encoding": "identity"}
    ) as response:
        text = await response.text()
    return sum(
        float(line.rsplit(" ", 1)[1]) for line in text.splitlines() if line.startswith(series)
    )


async def requests_served(client: aiohttp.ClientSession, admin_url: str) -> float:
    """Requests the gateway has answered (engine_gateway_requests_total, all labels)."""
    return await metric_sum(client, admin_url, "engine_gateway_requests_total{")


# The gateways' --refuse-while-engine-down: on, so that nginx retries POSTs elsewhere too
# when a node's engine is gone (bench/cluster.py measures both).
REFUSE_WHILE_ENGINE_DOWN = "on"


@dataclass(frozen=True)
class Node:
    """One engine node and the gateway before it."""

    name: str
    engine: processes.Running
    gateway: processes.Gateway

    @property
    def engine_port(self) -> int:
        return int(self.engine.base_url.rsplit(":", 1)[1])

    @property
    def gateway_address(self) -> str:
        return self.gateway.base_url.removeprefix("http://")

    @property
    def gateway_ports(self) -> tuple[int, int]:
        return (
            int(self.gateway.base_url.rsplit(":", 1)[1]),
            int(self.gateway.admin_url.rsplit(":", 1)[1]),
        )


@dataclass
class Cluster:
    work_dir: Path
    database: processes.Postgres
    nodes: list[Node]
    balancer: processes.Nginx
    stack: contextlib.ExitStack
    refuse_while_engine_down: str = REFUSE_WHILE_ENGINE_DOWN

    @property
    def balancer_url(self) -> str:
        return self.balancer.base_url

    def kill_engine(self, index: int) -> None:
        """SIGKILL: the node dies with its transfers, its transactions left to the database."""
        process = self.nodes[index].engine.process
        os.kill(process.pid, signal.SIGKILL)
        process.wait(timeout=30)

    def start_engine(self, index: int) -> None:
        """A new engine process for the node, on the port its gateway points at."""
        node = self.nodes[index]
        engine = self.stack.enter_context(
            processes.engine(self.work_dir, None, database=self.database, port=node.engine_port)
        )
        self.nodes[index] = dataclasses.replace(node, engine=engine)

    def start_gateway(self, index: int) -> None:
        """A new gateway process for the node, on the ports nginx points at."""
        node = self.nodes[index]
        gateway = _gateway(
            self.stack,
            self.work_dir,
            node.engine.base_url,
            self.refuse_while_engine_down,
            node.gateway_ports,
        )
        self.nodes[index] = dataclasses.replace(node, gateway=gateway)

    def restart_gateways(self, refuse_while_engine_down: str) -> None:
        """Every gateway drained and started again, with this --refuse-while-engine-down."""
        self.refuse_while_engine_down = refuse_while_engine_down
        for index, node in enumerate(self.nodes):
            processes.stop(node.gateway.running.process)
            self.start_gateway(index)


def _gateway(
    stack: contextlib.ExitStack,
    work_dir: Path,
    engine_url: str,
    refuse_while_engine_down: str,
    ports: tuple[int, int] | None = None,
) -> processes.Gateway:
    gateway = processes.start_gateway(
        work_dir, engine_url, "--refuse-while-engine-down", refuse_while_engine_down, ports=ports
    )
    stack.callback(processes.stop, gateway.running.process)
    return gateway


@contextlib.contextmanager
def cluster(work_dir: Path, balancer_port: int | None = None) -> Iterator[Cluster]:
    """The whole cluster, up and ready, with the test process deployed through nginx."""
    with contextlib.ExitStack() as stack:
        database = stack.enter_context(processes.postgres(work_dir))
        nodes = []
        # One after the other: the first node creates the schema, which two engines starting
        # on an empty database at once would both try to do.
        for name in ("a", "b"):
            engine = stack.enter_context(processes.engine(work_dir, None, database=database))
            gateway = _gateway(stack, work_dir, engine.base_url, REFUSE_WHILE_ENGINE_DOWN)
            nodes.append(Node(name, engine, gateway))
        first, *others = (node.gateway_address for node in nodes)
        site = functools.partial(processes.nginx_site, more_gateways=tuple(others))
        balancer = stack.enter_context(
            processes.nginx(work_dir, first, site=site, port=balancer_port)
        )
        engine_api.deploy(balancer.base_url)
        yield Cluster(work_dir, database, nodes, balancer, stack)
