"""Where dreams run: the executor seam (`executor.py`), a worker process
(`process.py`), a Ray cluster (`ray_cluster.py`, `ray_supervisor.py`), what crosses a
process or machine boundary (`wire.py`) and the one retry policy they share."""
