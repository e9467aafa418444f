"""The placement check's fit (pure function, no Ray): issue case 8, a worker group the cluster
can never hold must fail, naming what does not fit."""

from __future__ import annotations

from training.run.placement import placement_problem

CPU1 = {"CPU": 1.0}


def test_fits_when_every_bundle_has_room():
    nodes = [{"CPU": 2.0}, {"CPU": 2.0}]
    assert placement_problem([CPU1] * 3, [CPU1], nodes, "PACK") == ""
    assert placement_problem([CPU1] * 2, [CPU1], nodes, "STRICT_SPREAD") == ""


def test_too_many_workers_or_no_room_for_a_decode_task():
    nodes = [{"CPU": 2.0}]
    assert "worker bundle {'CPU': 1.0} finds no node" in placement_problem(
        [CPU1] * 8, [CPU1], nodes, "PACK"
    )
    assert "no room is left for a decode task" in placement_problem(
        [CPU1] * 2, [CPU1], nodes, "PACK"
    )


def test_strategies_and_resources_a_node_lacks():
    nodes = [{"CPU": 4.0}, {"CPU": 4.0}]
    assert "STRICT_PACK needs {'CPU': 6.0} on one node" in placement_problem(
        [{"CPU": 3.0}] * 2, [], nodes, "STRICT_PACK"
    )
    assert placement_problem([{"CPU": 3.0}] * 2, [], nodes, "PACK") == ""
    assert "finds no node" in placement_problem([CPU1] * 3, [], nodes, "STRICT_SPREAD")
    assert "finds no node" in placement_problem([{"GPU": 1.0}], [], nodes, "PACK")
    pinned = [{"CPU": 1.0, "decode_node": 0.001}]
    assert "decode task" in placement_problem([CPU1], pinned, nodes, "PACK")
    nodes[1]["decode_node"] = 1.0
    assert placement_problem([CPU1], pinned, nodes, "PACK") == ""
