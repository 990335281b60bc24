"""Where a sweep's runs execute: one code path over ``concurrent.futures`` for every executor.

* ``serial``: in this process, one run after another.
* ``local`` / ``local:N``: a process pool (loky's: it needs no ``if __name__ == "__main__"`` guard
  and runs from notebooks) with N workers, by default one per core.
* ``dask-local:N``: a Dask LocalCluster of N single-threaded worker processes (needs ``esmsim[dask]``).
* ``dask://host:port`` (or ``tcp://host:port``, Dask's own form): an existing Dask scheduler; its
  workers need esmsim installed.

Every executor returns ``concurrent.futures.Future`` objects, so results stream back the same way.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from concurrent.futures import Executor, Future
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

from esmsim.errors import Issue, ScenarioError


class SerialExecutor(Executor):
    """Runs each task when it is submitted, in this process."""

    def submit(self, fn: Callable[..., Any], /, *args: Any, **kwargs: Any) -> Future[Any]:
        """Run ``fn`` now and return its completed future."""
        future: Future[Any] = Future()
        try:
            future.set_result(fn(*args, **kwargs))
        except BaseException as error:
            future.set_exception(error)
            if isinstance(error, KeyboardInterrupt):
                raise
        return future


@dataclass(frozen=True)
class ExecutorInfo:
    """An executor and what it is."""

    executor: Executor
    workers: int
    description: str


def _count(text: str, spec: str) -> int:
    try:
        count = int(text)
    except ValueError:
        count = 0
    if count < 1:
        raise ScenarioError([Issue((), f"{spec!r}: the worker count must be a whole number of at least 1")])
    return count


def parse(spec: str) -> tuple[str, str]:
    """Split an executor spec into its kind and argument (raising a one-line error if it is unknown)."""
    if spec == "serial":
        return "serial", ""
    if spec == "local" or spec.startswith("local:"):
        return "local", spec[6:]
    if spec.startswith("dask-local:") or spec == "dask-local":
        return "dask-local", spec[11:]
    if spec.startswith("dask://") or spec.startswith("tcp://"):
        return "dask", spec
    raise ScenarioError(
        [
            Issue(
                (),
                f"unknown executor {spec!r} (use serial, local, local:N, dask-local:N or dask://host:port)",
            )
        ]
    )


@contextmanager
def open_executor(spec: str) -> Iterator[ExecutorInfo]:
    """The executor named by ``spec``, shut down (workers stopped) when the block ends."""
    kind, arg = parse(spec)
    if kind == "serial":
        yield ExecutorInfo(SerialExecutor(), 1, "serial")
        return
    if kind == "local":
        import loky

        workers = _count(arg, spec) if arg else (os.cpu_count() or 1)
        executor = loky.get_reusable_executor(max_workers=workers, timeout=60)
        try:
            yield ExecutorInfo(executor, workers, f"local:{workers}")
        except BaseException:
            # Interrupted (Ctrl-C, an iterator closed early): runs in progress are not waited for;
            # a resumed sweep runs them again.
            executor.shutdown(wait=False, kill_workers=True)
            raise
        executor.shutdown(wait=True)
        return
    try:
        from distributed import Client, LocalCluster
    except ImportError:
        raise ScenarioError([Issue((), f"{spec!r} needs Dask: pip install 'esmsim[dask]'")]) from None
    if kind == "dask-local":
        workers = _count(arg, spec) if arg else (os.cpu_count() or 1)
        cluster = LocalCluster(
            n_workers=workers, threads_per_worker=1, processes=True, dashboard_address=None
        )
        client = Client(cluster)
        try:
            yield ExecutorInfo(client.get_executor(), workers, f"dask-local:{workers}")
        finally:
            client.close()
            cluster.close()
        return
    address = arg.replace("dask://", "tcp://", 1)
    try:
        client = Client(address, timeout="10s")
    except OSError as error:
        raise ScenarioError([Issue((), f"cannot reach the Dask scheduler at {address}: {error}")]) from None
    try:
        workers = max(1, sum(w.get("nthreads", 1) for w in client.scheduler_info()["workers"].values()))
        yield ExecutorInfo(client.get_executor(), workers, f"dask:{address}")
    finally:
        client.close()
