"""Machines joining and leaving a real multi-node Ray cluster (several raylets on this host).

Ray's own `ray.cluster_utils.Cluster` starts real nodes, each with its own
resources, that can be added and removed while the bot's executor runs: the
pool follows within the executor's poll interval, with no restart.
"""

from __future__ import annotations

import asyncio
import threading

import numpy as np
import pytest
from PIL import Image

ray = pytest.importorskip("ray", reason="Ray is not installed: pip install '.[ray]'")

from ray.cluster_utils import Cluster  # noqa: E402

from dream_engine.core.params import DreamParams  # noqa: E402
from dream_engine.runtime.executor import DreamRequest, EngineConfig  # noqa: E402
from dream_engine.runtime.ray_cluster import RayExecutor  # noqa: E402
from tests.runtime.test_ray_cluster import WAIT, eventually  # noqa: E402

NODE = {"num_cpus": 1, "object_store_memory": 80 * 1024 * 1024}
pytestmark = [pytest.mark.ray, pytest.mark.slow]


@pytest.mark.asyncio(loop_scope="function")
async def test_a_machine_that_joins_adds_a_worker_and_one_that_leaves_takes_it():
    cluster = Cluster(initialize_head=True, connect=True, head_node_args=NODE)
    executor = RayExecutor(EngineConfig("inceptionv3", "random"), worker_cpus=1, poll_seconds=0.5)
    try:
        await asyncio.wait_for(executor.start(), WAIT)
        assert executor.capacity == 1  # one node, one CPU: one worker
        seen: list[int] = []
        executor.on_capacity_change = lambda: seen.append(executor.capacity)

        node = cluster.add_node(**NODE)  # a machine joins
        await eventually(lambda: executor.capacity == 2)
        hosts = {status.host for status in executor.workers()}  # "host (node id)"
        assert len(hosts) == 2  # one worker on each node
        image = Image.fromarray(np.zeros((96, 128, 3), np.uint8))
        params = DreamParams(layers={"mixed3": 1.0}, octaves=1, iterations=2)
        results = await asyncio.gather(
            *(
                executor.submit(DreamRequest(image, params, 128), lambda p: None, threading.Event())
                for _ in range(2)
            )
        )
        assert all(result.image.size == (128, 96) for result in results)

        cluster.remove_node(node)  # and leaves
        await eventually(lambda: executor.capacity == 1 and len(executor.workers()) == 1)
        assert seen[:1] == [2] and seen[-1] == 1
    finally:
        await executor.close()
        ray.shutdown()
        cluster.shutdown()


@pytest.mark.asyncio(loop_scope="function")
async def test_on_a_cluster_with_gpus_each_worker_takes_one_gpu():
    """Ray's GPUs here are logical (this machine has none; TensorFlow's CPU build ignores
    the `CUDA_VISIBLE_DEVICES` Ray sets), which is enough to check the scheduling: one
    worker per GPU, whatever the CPUs, each on a GPU of its own, and it dreams."""
    cluster = Cluster(
        initialize_head=True, connect=True, head_node_args={**NODE, "num_cpus": 4, "num_gpus": 2}
    )
    executor = RayExecutor(EngineConfig("inceptionv3", "random"), worker_cpus=1, poll_seconds=0.5)
    try:
        await asyncio.wait_for(executor.start(), WAIT)
        assert executor.capacity == 2  # two GPUs: two workers (four CPUs would make four)
        assert sorted(status.device for status in executor.workers()) == ["GPU 0", "GPU 1"]
        image = Image.fromarray(np.zeros((96, 128, 3), np.uint8))
        params = DreamParams(layers={"mixed3": 1.0}, octaves=1, iterations=2)
        result = await executor.submit(
            DreamRequest(image, params, 128), lambda p: None, threading.Event()
        )
        assert result.image.size == (128, 96)
        assert ray.available_resources().get("GPU", 0) == 0  # both held by the workers
    finally:
        await executor.close()
        ray.shutdown()
        cluster.shutdown()
