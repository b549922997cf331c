"""`docker-compose.yml` hangs together: the addresses, ports, GPUs and settings its three
services give each other agree with each other and with the bot's settings.

CI has no Docker engine, so this reads the file; `tests/deploy/compose_live.sh` runs the set-up
for real where there is one (`test_compose_live.py`), and the same layout (a head without
resources, a worker node, the bot through Ray Client) runs as processes in
`test_ray_head_loss.py`.
"""

from __future__ import annotations

import re
from pathlib import PurePosixPath

import pytest

from bot import Settings
from tests.conftest import REPO

yaml = pytest.importorskip("yaml", reason="PyYAML comes with the ray extra")

RAY_CLIENT_PORT = 10001  # `ray start --head` serves Ray Client here unless told otherwise


@pytest.fixture(scope="module")
def services() -> dict:
    return yaml.safe_load((REPO / "docker-compose.yml").read_text())["services"]


def flags(command: str) -> dict[str, str]:
    return dict(part.removeprefix("--").split("=", 1) for part in command.split() if "=" in part)


def test_the_worker_and_the_bot_find_the_head(services):
    head = flags(services["ray-head"]["command"])
    assert "--head" in services["ray-head"]["command"].split()
    worker = flags(services["worker"]["command"])
    assert worker["address"] == f"ray-head:{head['port']}"
    client_port = int(head.get("ray-client-server-port", RAY_CLIENT_PORT))
    assert services["bot"]["environment"]["RAY_ADDRESS"] == f"ray://ray-head:{client_port}"


def test_dreams_run_on_the_workers_one_gpu_each(services):
    head = flags(services["ray-head"]["command"])
    assert head["num-cpus"] == head["num-gpus"] == "0"  # the head keeps no dreams
    worker = services["worker"]
    assert flags(worker["command"])["num-gpus"] == "1"
    (device,) = worker["deploy"]["resources"]["reservations"]["devices"]
    assert device["count"] == 1 and "gpu" in device["capabilities"]
    assert "ray start" not in str(services["bot"]["command"])  # Ray Client needs no node


def test_every_service_is_the_project_image_with_ray(services):
    images = {name: service.get("image") for name, service in services.items()}
    assert len(set(images.values())) == 1
    for service in services.values():
        assert service["build"]["args"]["EXTRAS"] == "[ray]"
        assert service["restart"] == "unless-stopped"  # a worker comes back after a head
    dockerfile = (REPO / "Dockerfile").read_text()
    assert "ARG EXTRAS" in dockerfile and '".${EXTRAS}"' in dockerfile


def test_the_bot_service_reads_as_valid_settings(services):
    bot = services["bot"]
    environment = {  # as compose fills ${NAME:-default} when neither .env nor the shell sets it
        name: re.sub(r"\$\{\w+:-([^}]*)\}", r"\1", value)
        for name, value in bot["environment"].items()
    }
    settings = Settings.from_env({"DISCORD_TOKEN": "x", **environment})
    assert settings.executor == "ray"
    assert settings.ray_address == bot["environment"]["RAY_ADDRESS"]
    (volume,) = bot["volumes"]
    mounted = PurePosixPath(volume.split(":")[1])
    assert mounted in PurePosixPath(settings.db_path).parents  # the queue outlives the container
    grace = int(bot["stop_grace_period"].removesuffix("s"))
    assert grace >= settings.shutdown_grace + 10  # the running dream may finish, then save


def test_cpu_workers_offer_one_dream_worker_each(services):
    """The `cpu` profile's node: as the GPU worker, but with DREAM_WORKER_CPUS CPUs, which
    the bot divides by the same setting (and the same default) into one worker."""
    cpu, gpu = services["cpu-worker"], services["worker"]
    assert cpu["profiles"] == ["cpu"] and "deploy" not in cpu
    assert flags(cpu["command"])["address"] == flags(gpu["command"])["address"]
    assert flags(cpu["command"])["num-gpus"] == "0"
    default = Settings.from_env({"DISCORD_TOKEN": "x"}).worker_cpus
    offered = f"${{DREAM_WORKER_CPUS:-{default}}}"
    assert flags(cpu["command"])["num-cpus"] == offered
    assert services["bot"]["environment"]["DREAM_WORKER_CPUS"] == offered  # the same value


def test_every_object_store_fits_in_shared_memory(services):
    """Ray puts its object store in /dev/shm only if it fits; else on disk, much slower."""
    for name, service in services.items():
        if "ray start" in service["command"]:
            store = int(flags(service["command"])["object-store-memory"])
            shm = int(service["shm_size"].removesuffix("gb")) * 2**30
            assert store <= 0.9 * shm, name
