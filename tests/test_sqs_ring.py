"""Batch formation in batching windows: the ring's laps, when a batch closes, its receive calls.

:class:`esmsim.model.sqs_ring.Ring` never deals row by row: it counts laps of the pointer. These
tests replay random joins, leaves, redelivered takes and deals on the ring and on a plain list with
a pointer, and require the same rows, counts and first batch to fill.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import simpy
from hypothesis import given, settings
from hypothesis import strategies as st

from esmsim.model.sqs_collector import Collector, dealt_receive_calls, long_poll_end
from esmsim.model.sqs_ring import Ring


@dataclass
class Owner:
    """The mapping side of a collector (only what the ring reads matters here)."""

    batch_size: int = 10
    window_s: float = 1.0
    max_messages: int = 10
    wait_time_s: float = 20.0
    round_trip_s: float = 0.0
    idle_collectors: int = 0
    finish_poll_after_window: bool = True


class Naive:
    """Round-robin dealing one row at a time: the definition the ring must agree with."""

    def __init__(self, single: bool) -> None:
        self.single = single
        self.members: list[Collector] = []
        self.rr = 0
        self.got: dict[int, list[int]] = {}

    def join(self, c: Collector) -> None:
        self.members.append(c)
        self.got[id(c)] = []

    def leave(self, i: int) -> None:
        self.members.pop(i)
        if self.single:
            return
        if i < self.rr:
            self.rr -= 1
        if self.rr >= len(self.members):
            self.rr = 0

    def deal(self, row: int) -> None:
        c = self.members[0 if self.single else self.rr]
        self.got[id(c)].append(row)
        if not self.single:
            self.rr = (self.rr + 1) % len(self.members)


def member(quota: int) -> Collector:
    c = Collector(simpy.Environment().event(), Owner(batch_size=quota), 0.0, 100.0)
    c.quota = quota
    return c


def first_full_row(naive: Naive, head: int, taken: dict[int, int]) -> int:
    """Deal ahead on a copy of the naive ring until some member reaches its quota."""
    members = list(naive.members)
    rr = naive.rr
    counts = {id(c): len(naive.got[id(c)]) + taken.get(id(c), 0) for c in members}
    row = head
    while True:
        c = members[0 if naive.single else rr]
        counts[id(c)] += 1
        if counts[id(c)] >= c.owner.batch_size:
            return row
        row += 1
        if not naive.single:
            rr = (rr + 1) % len(members)


join = st.tuples(st.just("join"), st.integers(1, 6))
deal = st.tuples(st.just("deal"), st.integers(1, 9))
# Joins and deals weigh more than leaves and takes, so rings of several members are dealt laps.
operations = st.lists(
    st.one_of(
        join,
        join,
        deal,
        deal,
        deal,
        st.tuples(st.just("leave"), st.integers(0, 50)),
        st.tuples(st.just("take"), st.integers(0, 50)),
    ),
    min_size=10,
    max_size=80,
)


@settings(max_examples=300, deadline=None, derandomize=True)
@given(ops=operations, single=st.booleans())
def test_the_ring_deals_what_round_robin_one_row_at_a_time_deals(
    ops: list[tuple[str, int]], single: bool
) -> None:
    ring, naive = Ring(single=single), Naive(single)
    taken: dict[int, int] = {}  # messages each member's own receives took (redeliveries)
    everyone: list[Collector] = []  # kept alive, so that no two members share an id()
    head = 0
    for op, k in ops:
        if op == "join":
            c = member(k)
            everyone.append(c)
            ring.join(c)
            naive.join(c)
        elif not naive.members:
            continue
        elif op == "leave":
            i = k % len(naive.members)
            assert ring.index(naive.members[i]) == i
            ring.leave(i)
            naive.leave(i)
        elif op == "take":
            i = k % len(naive.members)
            c = naive.members[i]
            if ring.need(c, i) > 1:
                ring.took(c, 1)
                taken[id(c)] = taken.get(id(c), 0) + 1
        else:
            # Deal no further than the first member to fill, as the receivers do.
            fill = ring.next_fill(head)
            assert fill is not None
            expected = first_full_row(naive, head, taken)
            assert fill[0] == expected
            assert naive.members[fill[2]] is fill[1]
            m = min(k, expected + 1 - head)
            ring.deal(head, m)
            for row in range(head, head + m):
                naive.deal(row)
            head += m
            full = ring.index(fill[1]) if ring.need(fill[1], fill[2]) == 0 else None
            if full is not None:
                ring.leave(full)  # its batch closes (the receivers complete it at once)
                naive.leave(full)
        for i, c in enumerate(naive.members):
            got = naive.got[id(c)]
            assert ring.visits(c, i) == len(got)
            assert ring.need(c, i) == c.owner.batch_size - len(got) - taken.get(id(c), 0)
            np.testing.assert_array_equal(ring.rows(c, head), got)
            assert c.first_row == (got[0] if got else -1)


def test_a_member_that_leaves_at_the_pointer_starts_the_next_lap() -> None:
    ring = Ring()
    a, b, c = member(3), member(3), member(3)
    for x in (a, b, c):
        ring.join(x)
    ring.deal(0, 2)  # rows 0 and 1 to a and b; c is next
    ring.leave(2)  # c leaves at the pointer: a starts the next lap
    ring.deal(2, 1)
    np.testing.assert_array_equal(ring.rows(a, 3), [0, 2])
    np.testing.assert_array_equal(ring.rows(b, 3), [1])
    assert ring.next_fill(3) == (4, a, 0)  # b gets row 3, a fills with row 4


def test_in_single_mode_only_the_oldest_member_is_dealt_to() -> None:
    ring = Ring(single=True)
    a, b = member(2), member(2)
    ring.join(a)
    ring.join(b)
    ring.deal(0, 2)
    assert ring.next_fill(2) == (1, a, 0)  # a filled with row 1
    ring.leave(0)
    assert ring.next_fill(2) == (3, b, 0)
    ring.deal(2, 1)
    np.testing.assert_array_equal(ring.rows(b, 3), [2])


def test_a_window_ends_with_the_long_poll_running_then() -> None:
    # Last message at 3 s, 20 s polls, 5 s window ending at 8 s: the poll that began at 3 s runs to
    # 23 s, unless the next message (at 10 s) ends it first.
    assert long_poll_end(8.0, 3.0, 20.0, math.inf) == 23.0
    assert long_poll_end(8.0, 3.0, 20.0, 10.0) == 10.0
    # Two full polls ran empty after a message at 0 s: the third, from 40 s, is running at 45 s.
    assert long_poll_end(45.0, 0.0, 20.0, math.inf) == 60.0
    # A receive that returned after the window ended closes the batch at once.
    assert long_poll_end(8.0, 9.0, 20.0, math.inf) == 9.0


def test_dealt_messages_come_in_one_call_per_burst_of_at_most_ten() -> None:
    # Bursts: {0, 0.005}, {0.1}, {0.5}: three calls; 25 messages at one instant need three calls.
    assert dealt_receive_calls(np.array([0.0, 0.005, 0.1, 0.5]), 0.01, 10) == 3
    assert dealt_receive_calls(np.zeros(25), 0.01, 10) == 3
    assert dealt_receive_calls(np.empty(0), 0.01, 10) == 0
