"""Where dreams run: the executor seam (`executor.py`) and its three implementations, a
thread (`local.py`), a worker process (`process.py`) and a Ray cluster (`ray_worker.py`,
`ray_cluster.py`, `ray_driver.py`, `ray_supervisor.py`); what crosses a process or
machine boundary (`wire.py`); and the one retry policy they share (`retry.py`)."""
