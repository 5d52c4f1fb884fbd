"""A local 3-master Redis Cluster for tests, from the redis-server pykue embeds."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import tempfile
import time
from pathlib import Path

import redis

from pykue.server import find_binary
from tests.helpers import wait_for


def _free(port: int) -> bool:
    with socket.socket() as s:
        try:
            s.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def _cluster_ports(n: int) -> list[int]:
    """Ports a cluster node may use: below 55536, with port + 10000 (its bus) free too."""
    ports: list[int] = []
    start = 20000 + (os.getpid() * 7) % 30000
    for port in range(start, 55535):
        if _free(port) and _free(port + 10000):
            ports.append(port)
            if len(ports) == n:
                return ports
    raise RuntimeError("no free ports for a local cluster")


class LocalCluster:
    """Three masters on 127.0.0.1, slots split by `redis-cli --cluster create`."""

    def __init__(self, masters: int = 3) -> None:
        self.binary = find_binary()
        self.cli = str(Path(self.binary).with_name("redis-cli"))
        self.dir = tempfile.mkdtemp(prefix="pykue-cluster-")
        self.ports = _cluster_ports(masters)
        self.procs: list[subprocess.Popen[bytes]] = []

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.ports[0]}/0"

    def start(self) -> LocalCluster:
        for port in self.ports:
            node_dir = os.path.join(self.dir, str(port))
            os.mkdir(node_dir)
            args = [self.binary, "--port", str(port), "--bind", "127.0.0.1", "--dir", node_dir,
                    "--cluster-enabled", "yes", "--cluster-config-file", "nodes.conf",
                    "--cluster-node-timeout", "5000", "--save", "", "--appendonly", "no",
                    "--logfile", os.path.join(node_dir, "redis.log")]  # fmt: skip
            self.procs.append(subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL))
        for port in self.ports:
            wait_for(lambda p=port: self._pings(p), what=f"cluster node {port}")
        nodes = [f"127.0.0.1:{p}" for p in self.ports]
        subprocess.run([self.cli, "--cluster", "create", *nodes, "--cluster-replicas", "0", "--cluster-yes"],
                       check=True, capture_output=True, timeout=30)  # fmt: skip
        wait_for(self._ok, timeout=30, what="cluster_state:ok on every node")
        return self

    def _pings(self, port: int) -> bool:
        try:
            return bool(redis.Redis(port=port, socket_connect_timeout=0.2).ping())
        except redis.ConnectionError:
            return False

    def _ok(self) -> bool:
        for port in self.ports:
            with redis.Redis(port=port, decode_responses=True) as r:
                info = r.cluster("info")
                if info.get("cluster_state") != "ok" or int(info.get("cluster_known_nodes", 0)) != len(self.ports):
                    return False
        return True

    def slot_of(self, key: str) -> int:
        with redis.Redis(port=self.ports[0], decode_responses=True) as r:
            return int(r.cluster("keyslot", key))

    def node_of(self, key: str) -> int:
        """The port of the master that serves `key`."""
        with redis.Redis(port=self.ports[0], decode_responses=True) as r:
            slot = int(r.cluster("keyslot", key))
            for start, end, (_, port, *_) in [(s[0], s[1], s[2]) for s in r.cluster("slots")]:
                if start <= slot <= end:
                    return int(port)
        raise AssertionError(f"no node serves {key}")

    def all_keys(self) -> list[str]:
        keys: list[str] = []
        for port in self.ports:
            with redis.Redis(port=port, decode_responses=True) as r:
                keys += list(r.scan_iter(count=1000))
        return keys

    def stop(self) -> None:
        for proc in self.procs:
            proc.kill()
        deadline = time.monotonic() + 10
        for proc in self.procs:
            proc.wait(max(0.1, deadline - time.monotonic()))
        shutil.rmtree(self.dir, ignore_errors=True)
