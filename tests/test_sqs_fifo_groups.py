"""A FIFO queue's waiting messages by group (esmsim.model.sqs_fifo_groups) against a plain pool.

The plain pool is the rule itself: a receive takes, oldest first, the waiting messages whose group
has nothing in flight. Random sends, receives, deletes and returns must give the same messages.
"""

from __future__ import annotations

import math

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from esmsim.model.sqs_fifo_groups import MessageGroups
from esmsim.model.sqs_messages import Messages


def messages(ids: list[int]) -> Messages:
    m = Messages(np.asarray(ids, dtype=np.int64), np.asarray(ids, float), np.ones(len(ids)), None, None)
    m.last = np.full(len(ids), math.nan)
    return m


class Plain:
    """The rule, written plainly."""

    def __init__(self) -> None:
        self.waiting: set[int] = set()
        self.busy: dict[int, int] = {}

    def oldest(self, n: int, group_of: np.ndarray) -> list[int]:
        free = sorted(i for i in self.waiting if not self.busy.get(int(group_of[i]), 0))
        return free[:n]


@settings(max_examples=150, deadline=None)
@given(
    groups=st.integers(1, 6),
    steps=st.lists(
        st.tuples(
            st.sampled_from(["send", "receive", "delete", "return"]), st.integers(1, 10), st.integers(0, 99)
        ),
        max_size=60,
    ),
    seed=st.integers(0, 2**16),
)
def test_receives_match_the_plain_rule(groups: int, steps: list[tuple[str, int, int]], seed: int) -> None:
    rng = np.random.default_rng(seed)
    group_of = rng.integers(0, groups, size=10 * len(steps) + 1).astype(np.int64)
    lanes, plain = MessageGroups(groups), Plain()
    sent = 0
    in_flight: list[list[int]] = []  # batches received and not yet deleted or returned
    for action, n, pick in steps:
        if action == "send":
            ids = list(range(sent, sent + n))
            sent += n
            lanes.add(messages(ids), group_of[ids])
            plain.waiting.update(ids)
        elif action == "receive":
            expected = plain.oldest(n, group_of)
            found = lanes.oldest(n)
            got = [] if found is None else found.ids.tolist()
            assert got == expected
            # A receive may keep fewer than it was offered (the payload cap): the first ones.
            keep = got[: max(1, len(got) - pick % 3)] if got else []
            if keep:
                lanes.remove(group_of[keep])
                lanes.hold(group_of[keep])
                plain.waiting.difference_update(keep)
                for i in keep:
                    plain.busy[int(group_of[i])] = plain.busy.get(int(group_of[i]), 0) + 1
                in_flight.append(keep)
        elif in_flight:
            batch = in_flight.pop(pick % len(in_flight))
            lanes.release(group_of[batch])
            for i in batch:
                plain.busy[int(group_of[i])] -= 1
            if action == "return":  # visible again: back at the front of its group
                lanes.add(messages(batch), group_of[batch])
                plain.waiting.update(batch)
        assert lanes.visible() == len(plain.oldest(len(plain.waiting), group_of))
        assert sorted(i for c in lanes.chunks() for i in c.ids.tolist()) == sorted(plain.waiting)
    # Rebuilt from its own chunks (as after expiry), it offers the same.
    lanes.reset(lanes.chunks(), group_of)
    found = lanes.oldest(10)
    assert ([] if found is None else found.ids.tolist()) == plain.oldest(10, group_of)
