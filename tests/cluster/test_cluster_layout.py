"""The pure parts of the cluster devtool: slot split, CLUSTER NODES / INFO parsing, readiness."""

from __future__ import annotations

import pytest

from relay.devtools.redis_cluster import (
    SLOTS,
    NodeLine,
    NodeView,
    parse_cluster_nodes,
    parse_info,
    slot_ranges,
    unready,
)


@pytest.mark.parametrize(
    ("primaries", "ranges"),
    [
        (1, [(0, 16383)]),
        (2, [(0, 8191), (8192, 16383)]),
        (3, [(0, 5460), (5461, 10921), (10922, 16383)]),
        (5, [(0, 3275), (3276, 6552), (6553, 9829), (9830, 13106), (13107, 16383)]),
    ],
)
def test_slot_ranges_cover_every_slot_once(primaries: int, ranges: list[tuple[int, int]]) -> None:
    assert slot_ranges(primaries) == ranges
    assert sum(last - first + 1 for first, last in ranges) == SLOTS


def test_no_cluster_without_a_primary() -> None:
    with pytest.raises(ValueError, match="at least one primary"):
        slot_ranges(0)


N1, N2, N3 = "e7d1" * 10, "67ed" * 10, "292f" * 10
N4, N5 = "07c3" * 10, "6ec2" * 10
# Redis 6.2 writes `ip:port@bus`; Redis 7 may append `,hostname`.
NODES_62 = (
    f"{N4} 127.0.0.1:30004@40004 slave {N1} 0 1426238317239 4 connected\n"
    f"{N1} 127.0.0.1:30001@40001 myself,master - 0 0 1 connected 0-5460 [5461->-{N2}]\n"
    f"{N2} 127.0.0.1:30002@40002 master,fail - 1426238316232 1426238316232 2 disconnected "
    "5461-10921 16383\n"
)
NODES_7 = (
    f"{N3} 127.0.0.1:30003@40003,node-3 master - 0 1426238318243 3 connected 10922-16383\n"
    f"{N5} 127.0.0.1:30005@40005,node-5 myself,slave {N2} 0 1426238316232 5 connected\n"
)


@pytest.mark.parametrize(
    ("text", "nodes"),
    [
        (
            NODES_62,
            (
                NodeLine(N4, 30004, frozenset({"slave"}), N1, ()),
                NodeLine(N1, 30001, frozenset({"myself", "master"}), None, ((0, 5460),)),
                NodeLine(
                    N2, 30002, frozenset({"master", "fail"}), None, ((5461, 10921), (16383, 16383))
                ),
            ),
        ),
        (
            NODES_7,
            (
                NodeLine(N3, 30003, frozenset({"master"}), None, ((10922, 16383),)),
                NodeLine(N5, 30005, frozenset({"myself", "slave"}), N2, ()),
            ),
        ),
        ("", ()),
    ],
)
def test_cluster_nodes_parse(text: str, nodes: tuple[NodeLine, ...]) -> None:
    assert parse_cluster_nodes(text) == nodes


@pytest.mark.parametrize(
    ("text", "fields"),
    [
        (
            "cluster_state:ok\r\ncluster_slots_assigned:16384\r\n",
            {"cluster_state": "ok", "cluster_slots_assigned": "16384"},
        ),
        (
            "# Replication\r\nrole:slave\r\nmaster_link_status:up\r\n",
            {"role": "slave", "master_link_status": "up"},
        ),
        ("", {}),
    ],
)
def test_info_parses(text: str, fields: dict[str, str]) -> None:
    assert parse_info(text) == fields


def _primary(node_id: str, port: int, first: int, last: int, *flags: str) -> NodeLine:
    return NodeLine(node_id, port, frozenset({"master", *flags}), None, ((first, last),))


def _replica(node_id: str, port: int, master: str, *flags: str) -> NodeLine:
    return NodeLine(node_id, port, frozenset({"slave", *flags}), master, ())


A, B, R = "a" * 40, "b" * 40, "r" * 40
HEALTHY = (_primary(A, 1, 0, 8191), _primary(B, 2, 8192, 16383), _replica(R, 3, A))


def _views(*tables: tuple[NodeLine, ...], state: str = "ok", link: str = "up") -> list[NodeView]:
    """One view per table, each from the node of the same position in it."""
    views = []
    for index, table in enumerate(tables):
        me = table[index]
        mine = NodeLine(me.id, me.port, me.flags | {"myself"}, me.master, me.slots)
        nodes = tuple(mine if node is me else node for node in table)
        views.append(NodeView(me.port, state, nodes, link if me.master else None))
    return views


@pytest.mark.parametrize(
    ("views", "gone", "problems"),
    [
        (_views(HEALTHY, HEALTHY, HEALTHY), (), []),
        (_views(HEALTHY, state="fail"), (), ["node 1: cluster_state:fail"]),
        (
            _views(HEALTHY[:2], HEALTHY[:2]),
            (),
            [f"node 1: does not know ['{R}']", f"node 2: does not know ['{R}']"],
        ),
        (
            _views(HEALTHY, HEALTHY, HEALTHY, link="down"),
            (),
            ["node 3: replica link to its primary is down"],
        ),
        (
            # A's failure seen, its replica not promoted yet.
            _views((_primary(B, 2, 8192, 16383), _primary(A, 1, 0, 8191, "fail"), HEALTHY[2])),
            (A,),
            ["node 2: 1 live primaries cover 8192 slots"],
        ),
        (
            # A killed but not noticed yet: it still serves its slots.
            _views((HEALTHY[1], HEALTHY[0], HEALTHY[2])),
            (A,),
            [f"node 2: killed ['{A}'] still serve slots"],
        ),
        (
            # Failed over: R serves A's slots.
            _views(
                (
                    _primary(B, 2, 8192, 16383),
                    _primary(R, 3, 0, 8191),
                    _primary(A, 1, 0, 0, "fail"),
                )
            ),
            (A,),
            [],
        ),
        (
            # A restarted, still seen as failing by B.
            _views(
                (_primary(B, 2, 8192, 16383), _primary(R, 3, 0, 8191), _replica(A, 1, R, "fail"))
            ),
            (),
            ["node 2: sees [1] failing"],
        ),
        (
            # A restarted and not yet told of its failover: it still serves its old slots.
            _views(
                (_primary(B, 2, 8192, 16383), _primary(R, 3, 0, 8191), _replica(A, 1, R)),
                (_primary(B, 2, 8192, 16383), _primary(R, 3, 0, 8191), _replica(A, 1, R)),
                (_primary(B, 2, 8192, 16383), _primary(R, 3, 0, 8191), _primary(A, 1, 0, 8191)),
            ),
            (),
            [
                "node 1: 3 live primaries cover 24576 slots",
                "nodes disagree on which primary serves which slots",
            ],
        ),
    ],
)
def test_unready_names_what_is_missing(
    views: list[NodeView], gone: tuple[str, ...], problems: list[str]
) -> None:
    assert unready(views, shards=2, node_ids=[A, B, R], gone=gone) == problems
