"""The composed process's command line: thread budgets and node lists are checked before anything starts."""

from __future__ import annotations

import pytest

from jepa_planner.composed import EXECUTOR_THREADS, NODES, TORCH_THREADS, main, parse_budgets


def test_budgets_cover_every_node_and_parse() -> None:
    assert set(EXECUTOR_THREADS) == set(NODES) == set(TORCH_THREADS)
    assert parse_budgets(["actor=3"], TORCH_THREADS)["actor"] == 3
    assert parse_budgets([], TORCH_THREADS) == TORCH_THREADS
    for bad in ("actor=0", "actor=x", "planner=2", "actor"):
        with pytest.raises(ValueError, match="NODE=N"):
            parse_budgets([bad], TORCH_THREADS)


@pytest.mark.parametrize("argv", [["--nodes", "actor,planner"], ["--nodes", ","], ["--threads", "cost=0"]])
def test_bad_command_lines_exit_2_with_one_line(argv: list[str], capsys: pytest.CaptureFixture[str]) -> None:
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert err.startswith("[composed] error:") and err.count("\n") == 1


@pytest.mark.ros
@pytest.mark.slow
def test_a_node_failing_to_configure_ends_the_composed_process_with_code_1(ros_env, tmp_path) -> None:
    """As each node's own process does: the launch then shuts down (its OnProcessExit handler)."""
    import subprocess
    import sys

    out = subprocess.run(
        [sys.executable, "-m", "jepa_planner.composed", "--ros-args", "-p", f"bundle:={tmp_path / 'nope'}"],
        env=ros_env, capture_output=True, text=True, timeout=120,
    )
    assert out.returncode == 1, out.stdout + out.stderr
    assert "model bundle directory not found" in out.stdout + out.stderr
    assert "configure failed" in out.stdout + out.stderr
