"""A local Dask cluster (``scheduler='local'``) run from a process of its own.

dask.distributed starts its worker processes with multiprocessing's ``spawn``, which imports the
parent's ``__main__`` in each of them: run from a plain script without an
``if __name__ == "__main__":`` guard, every worker would run the whole script again and start a
cluster of its own. So the cluster is started by ``python -m cytophen.pipeline._dask_local N``:
its workers import this module as their ``__main__``, which does nothing on import. It prints the
scheduler's address on one line, keeps the cluster until its standard input closes (the batch is
done, or its process died in any way), then shuts it down.
"""

from __future__ import annotations

import logging
import subprocess
import sys

__all__ = ["start"]


def start(workers: int, timeout: float = 120.0) -> tuple[subprocess.Popen, str]:
    """Start the cluster process; return it and its scheduler address.

    Raises
    ------
    RuntimeError
        The cluster did not come up (its error output says why).
    """
    proc = subprocess.Popen(
        [sys.executable, "-m", __name__, str(int(workers))],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    import select

    ready, _, _ = select.select([proc.stdout], [], [], timeout)
    line = proc.stdout.readline().strip() if ready else ""  # the address ("": it died)
    if not line.startswith("tcp://"):
        proc.kill()
        stop(proc)
        raise RuntimeError(
            f"the local Dask cluster did not start within {timeout:g} s "
            f"(exit code {proc.returncode})"
        )
    return proc, line


def stop(proc: subprocess.Popen, timeout: float = 30.0) -> None:
    """Close the cluster process's standard input and wait for it to shut the cluster down."""
    try:
        proc.stdin.close()
    except OSError:  # pragma: no cover
        pass
    try:
        proc.wait(timeout)
    except subprocess.TimeoutExpired:  # pragma: no cover - a cluster that does not close
        proc.kill()
        proc.wait()


def _main(workers: int) -> None:
    from distributed import LocalCluster

    with LocalCluster(
        n_workers=workers,
        threads_per_worker=1,
        processes=True,
        dashboard_address=None,
        silence_logs=logging.ERROR,
    ) as cluster:
        print(cluster.scheduler_address, flush=True)
        sys.stdin.read()  # until the batch closes it (or dies)
        _quiet_teardown(cluster.scheduler_address)


def _quiet_logs() -> None:
    logging.getLogger("distributed").setLevel(logging.CRITICAL)


def _quiet_teardown(address: str) -> None:
    """Closing our own cluster: a worker's heartbeat that races the scheduler's close is logged
    by distributed as an ERROR with a traceback on the user's terminal, after a batch that
    succeeded. Errors during the batch are logged as before; only the teardown is quiet."""
    from distributed import Client

    try:
        with Client(address, timeout="10s") as client:
            client.run(_quiet_logs)
    except (OSError, TimeoutError):  # the cluster is going anyway
        pass
    _quiet_logs()


if __name__ == "__main__":
    _main(int(sys.argv[1]))
