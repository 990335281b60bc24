"""Unit tests of the SQS queue's bookkeeping (esmsim.model.sqs_queue), below whole runs.

Whole-run behaviour is tested through the public tables elsewhere; these pin invariants of the
queue's index arithmetic that a run reaches only after long simulated times.
"""

from __future__ import annotations

import numpy as np

from esmsim.model.build import build
from esmsim.model.records import RecordFifo
from esmsim.rng import Streams
from tests.helpers import scenario


def test_arrived_stays_right_after_pollers_deal_past_it_and_rows_are_dropped() -> None:
    # Pollers collecting a batching window take fresh messages by moving the queue's head without
    # asking arrived(); the queue then drops the rows before the head. arrived() must still count
    # from the head: a cached position behind the dropped rows once read a future arrival time
    # (a negative index wraps around in numpy), froze the count and crashed an hour later.
    queue = build(scenario(), Streams(1)).queues["q"]
    sent = np.arange(1, 20_001, dtype=float) / 100.0  # 100 records/s for 200 s
    queue.extend({"sent_at": sent[:1000], "size": np.full(1000, 100.0)})
    assert queue.arrived(0.5) == 50  # records sent at 0.01 .. 0.50
    queue.head = 900  # dealt to collecting pollers (as SqsReceivers._settle does)
    for start in range(1000, 20_000, 1000):  # more traffic: the FIFO drops and compacts
        queue.extend({"sent_at": sent[start : start + 1000], "size": np.full(1000, 100.0)})
        queue.head = start + 900
    assert queue.fifo.low > 1000
    assert queue.head == 19_900
    assert queue.arrived(199.5) == 19_950  # records sent at 0.01 .. 199.50
    assert queue.visible_now(199.5) == 50
    assert queue.arrived(199.995) == 19_999


def test_a_message_expires_exactly_when_its_retention_ends() -> None:
    # sent + 60 rounds to exactly the time below while sent > time - 60 by one ulp: the expiry test
    # must use the same sum as the retention watermark, or the queue's expiry wake-up would find
    # the message due and not due at once, and ring again at the same instant forever.
    s = scenario({"sources": {"q": {"retention": 60}}})
    world = build(s, Streams(1))
    queue = world.queues["q"]
    sent = 0.10718752542478428
    now = sent + 60.0
    assert sent > now - 60.0  # the rounding this test is about
    queue.extend({"sent_at": np.array([sent]), "size": np.array([100.0])})
    queue.refresh(now)
    assert queue.head == 1  # expired and gone from the fresh messages
    world.env.run(until=now + 1)  # the expiry wake-up at `now` finds nothing left to do


def test_expired_until_compares_the_sum_the_watermark_uses() -> None:
    # A record sent at 0.05 with a retention of 0.2 is due at 0.05 + 0.2; a search for "sent <=
    # now - retention" misses it then ((0.05 + 0.2) - 0.2 is just below 0.05), and the record
    # would wait past its watermark forever. expired_until compares the sum itself.
    sent = np.array([0.0, 0.05, 0.1, 0.2])
    retention = 0.2
    now = 0.05 + retention
    assert int(np.searchsorted(sent, now - retention, side="right")) == 1  # the rounding, shown
    fifo = RecordFifo({"sent_at": float})
    fifo.append({"sent_at": sent})
    assert fifo.expired_until("sent_at", 0, now, retention) == 2
    for later in (0.3, 0.1 + retention, 0.4, 1.0):
        assert fifo.expired_until("sent_at", 0, later, retention) == int(
            np.count_nonzero(sent + retention <= later)
        )
    assert fifo.expired_until("sent_at", 2, 0.0, retention) == 2  # nothing due: the start itself
