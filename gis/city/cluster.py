"""The Dask cluster a city build runs on: an existing scheduler, or local worker processes."""

from __future__ import annotations

import logging
import os
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from gis.errors import GridAtlasError

CONNECT_TIMEOUT = "20s"


class SchedulerUnavailable(GridAtlasError):
    """The Dask scheduler named in the settings or on the command line cannot be reached."""


@contextmanager
def dask_client(scheduler: str | None = None, workers: int | None = None) -> Iterator[Any]:
    """Yield a ``distributed.Client`` of ``scheduler`` (``tcp://host:port``), or of a local
    cluster of ``workers`` processes (default: one per core), one thread each.

    One thread per worker process: the work holds the GIL in shapely and numpy for long
    stretches, so processes, not threads, use the cores.
    """
    from distributed import Client, LocalCluster

    if scheduler:
        try:
            client = Client(scheduler, timeout=CONNECT_TIMEOUT)
        except OSError as err:  # refused, unreachable, or no answer within the timeout
            raise SchedulerUnavailable(
                f"cannot reach the Dask scheduler at {scheduler} ({err}); start it "
                "(`dask scheduler`) or leave --scheduler and GRIDATLAS_DASK_SCHEDULER unset "
                "for a local cluster",
                key="city.no_scheduler",
                address=scheduler,
            ) from err
        with client:
            yield client
        return
    import psutil

    n = workers or os.cpu_count() or 1
    with (
        LocalCluster(
            n_workers=n,
            threads_per_worker=1,
            processes=True,
            # Dask splits the memory evenly between workers by default; a whole-city task
            # (the cells, reach) runs alone and needs most of it, so every worker may use
            # the machine's memory (its nanny still restarts one that exceeds it).
            memory_limit=psutil.virtual_memory().total,
            dashboard_address=None,
            silence_logs=logging.ERROR,
        ) as cluster,
        Client(cluster) as client,
    ):
        yield client
