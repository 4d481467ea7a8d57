"""`make cluster`: the engine cluster of tests/cluster/nodes.py, until Ctrl-C or SIGTERM."""

from __future__ import annotations

import os
import signal
import sys
import tempfile
from pathlib import Path

from tests.cluster.nodes import cluster


def main() -> None:
    balancer_port = int(os.environ.get("CLUSTER_PORT", "8088"))
    with tempfile.TemporaryDirectory(prefix="engine-gateway-cluster-") as work_dir:
        with cluster(Path(work_dir), balancer_port) as running:
            lines = [
                "",
                "  engine cluster is up (PostgreSQL, two engines, two gateways, nginx).",
                f"    balancer (nginx):  {running.balancer_url}/engine-rest",
            ]
            for node in running.nodes:
                lines.append(
                    f"    node {node.name}: gateway {node.gateway.base_url}/engine-rest "
                    f"(admin {node.gateway.admin_url}), engine {node.engine.base_url}"
                )
            lines += [
                f"    PostgreSQL:        {running.database.jdbc_url}",
                "    credentials:       demo / demo",
                f"    logs:              {work_dir}",
                "  Ctrl-C stops it all; the database goes with it.",
                "",
            ]
            print("\n".join(lines), flush=True)
            # Blocked only now: children inherit a blocked mask, and must not.
            signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGINT, signal.SIGTERM})
            signal.sigwait({signal.SIGINT, signal.SIGTERM})
            print("stopping...", file=sys.stderr)


if __name__ == "__main__":
    main()
