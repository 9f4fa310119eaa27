"""The door-anywhere diagnostics (bench/door_paths.py, bench/layout_probe.py) on the shipped two-rooms bundle."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
BUNDLE = REPO / "models" / "two_rooms_fixed_door"  # the door benches describe what the fixed-door bundle memorised


def load(name: str):
    spec = importlib.util.spec_from_file_location(name, REPO / "bench" / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_layout_probe_finds_the_shipped_latent_codes_position_not_the_door(tmp_path: Path) -> None:
    """The shipped bundle (no layout part) codes the agent's x linearly and nothing of the door's height."""
    out = tmp_path / "probe.json"
    assert load("layout_probe").main(["--bundle", str(BUNDLE), "--episodes", "3", "--steps", "40", "--out", str(out)]) == 0
    row = json.loads(out.read_text())["bundles"][0]
    assert row["layout_dims"] == 0 and "layout_to_door" not in row and row["frames"] == 7 * 3 * 41
    assert row["agent_to_xy"][0] > 0.9 and row["agent_to_door"] < 0.3
    assert row["latent_to_xy"] == row["agent_to_xy"]


def test_layout_probe_refuses_a_directory_without_a_bundle(tmp_path: Path, capsys) -> None:
    assert load("layout_probe").main(["--bundle", str(tmp_path)]) == 2
    assert "no manifest.json" in capsys.readouterr().err


def test_door_paths_scores_both_paths_for_every_door(tmp_path: Path) -> None:
    out = tmp_path / "paths.json"
    mod = load("door_paths")
    assert mod.main(["--bundles", str(BUNDLE), "--horizon", "6", "--out", str(out)]) == 0
    result = json.loads(out.read_text())["results"][0]
    assert len(result["rows"]) == len(mod.DOORS) * len(mod.START_GOAL_Y)
    assert 0.0 <= result["door_path_predicted_cheaper_when_blocked"] <= 1.0
    for row in result["rows"]:
        assert row["door_predicted"] >= 0 and row["straight_predicted"] >= 0 and row["straight_true_px"] >= 0


def test_door_critic_fits_writes_a_loadable_critic_and_ranks_its_landscape(tmp_path: Path) -> None:
    import numpy as np

    from jepa_planner.critic import load_critic_checked

    mod = load("door_critic")
    e, i, j, lag, nxt = mod.lag_pairs(3, 10, 4, 500, np.random.default_rng(0))
    assert np.array_equal(np.abs(j - nxt), np.maximum(lag - 1, 0))  # one frame nearer the goal (or the goal itself)
    assert e.max() < 3 and min(i.min(), j.min()) >= 0 and max(i.max(), j.max()) < 10
    assert np.array_equal(lag, np.abs(j - i)) and lag.max() <= 4 and (j < i).any() and (j > i).any()
    # from (40, 10) to a goal at (12, 12) through a door at y = 10: 8 px to the door, then about 20.1 px on
    assert abs(mod.through_door(np.array([[40.0, 10.0]]), 10.0, (12.0, 12.0))[0] - (8.0 + np.hypot(20.0, 2.0))) < 1e-9
    assert abs(mod.rank_correlation(np.arange(5.0), np.arange(5.0) ** 2) - 1.0) < 1e-12
    assert abs(mod.rank_correlation(np.arange(5.0), -np.arange(5.0)) + 1.0) < 1e-12
    out, result = tmp_path / "critic.pt", tmp_path / "critic.json"
    args = ["--bundle", str(BUNDLE), "--episodes", "4", "--steps", "20", "--pairs", "200", "--epochs", "1", "--out", str(out)]
    cache = tmp_path / "latents.npy"
    for extra in (["--expectile", "0"], ["--expectile", "0.1", "--latents", str(cache)], ["--bootstrap", "--latents", str(cache)],
                  ["--goal-episodes", "2", "--bootstrap"], ["--predicted", "2"]):
        assert mod.main([*args, *extra, "--json", str(result)]) == 0
        assert cache.is_file() or extra[-1] == "0"
        critic = load_critic_checked(out, latent_shape=(8,))  # loads without unpickling, gives finite values
        data = json.loads(result.read_text())
        assert len(data["landscape"]) == len(mod.DOORS) * len(mod.GOALS) and data["held_out_mae_model_steps"] >= 0
        assert all(-1 <= r["rho_through_door"] <= 1 for r in data["landscape"]) and critic.config["hidden"] == 256


def test_door_critic_refuses_a_directory_without_a_bundle_and_bad_counts(tmp_path: Path, capsys) -> None:
    mod = load("door_critic")
    assert mod.main(["--bundle", str(tmp_path), "--out", str(tmp_path / "c.pt")]) == 2
    assert "no manifest.json" in capsys.readouterr().err
    assert mod.main(["--bundle", str(BUNDLE), "--expectile", "0.7", "--out", str(tmp_path / "c.pt")]) == 2
    assert "--expectile" in capsys.readouterr().err


def test_door_oracle_distance_goes_through_the_door_and_replaces_only_the_terminal_term(tmp_path: Path) -> None:
    import torch

    from jepa_planner.profiles import load_profile

    mod = load("door_oracle")
    dist = mod.through_door_distance(10.0, half_width=0.0, scale=2.0)
    z = torch.tensor([[40.0, 50.0], [40.0, 50.0]])
    goal = torch.tensor([[24.0, 50.0], [50.0, 50.0]])  # the other room: via (32, 10); the same room: straight
    expected_via = 2 * float(torch.hypot(torch.tensor(8.0), torch.tensor(40.0)))
    assert torch.allclose(dist(z, goal), torch.tensor([expected_via / 2.0, 10.0 / 2.0]))
    base = load_profile("flat_cem")
    swapped = mod.with_through_door_terminal(base).levels[-1].costs
    assert [c.type for c in swapped] == ["goal_distance", "critic"] and swapped[0].params["mode"] == "all"
    no_terminal = base.model_copy(update={"levels": [base.levels[0].model_copy(update={"costs": swapped[:1]})]})
    try:
        mod.with_through_door_terminal(no_terminal)
    except ValueError as err:
        assert "no terminal goal_distance" in str(err)
    else:
        raise AssertionError("a profile without a terminal term was accepted")
    out = tmp_path / "oracle.json"
    assert mod.main(["--doors", "20", "--episodes", "1", "--out", str(out)]) == 0
    rows = json.loads(out.read_text())["rows"]
    assert [(r["door_y"], r["cost"], r["episodes"]) for r in rows] == [(20.0, "straight", 1), (20.0, "through_door", 1)]
    assert mod.main(["--episodes", "0"]) == 2


def test_door_oracle_plans_with_a_learned_bundle_through_its_position_readout(tmp_path: Path) -> None:
    out = tmp_path / "learned.json"
    mod = load("door_oracle")
    assert mod.main(["--bundle", str(BUNDLE), "--doors", "32", "--episodes", "1", "--out", str(out)]) == 0
    data = json.loads(out.read_text())
    assert data["model"] == str(BUNDLE) and [r["cost"] for r in data["rows"]] == ["straight", "through_door"]


def test_wall_leak_finds_the_shipped_wall_where_it_was_trained_and_nowhere_else(tmp_path: Path) -> None:
    """The shipped bundle memorised its door at y = 32: there it neither leaks nor blocks; with the door at the
    top every push level with the real door is predicted blocked (its wall is whole there)."""
    import numpy as np

    mod = load("wall_leak")
    walls = np.zeros((10, 10), dtype=bool)
    walls[[0, -1], :] = walls[:, [0, -1]] = True
    walls[:, 4:6] = True
    walls[3:5, 4:6] = False
    left, right, rows = mod.wall_geometry(walls)
    assert (left, right, rows.tolist()) == (4, 5, [3, 4])
    out = tmp_path / "leak.json"
    assert mod.main(["--bundles", str(BUNDLE), "--doors", "32", "10", "--out", str(out)]) == 0
    at32, at10 = json.loads(out.read_text())["results"][0]["per_door"]
    assert at32["pushes_away_from_door"] > 10 and at32["pushes_at_door"] >= 2
    assert at32["leak_rate"] == 0.0 and at32["block_rate"] == 0.0
    assert at10["block_rate"] == 1.0
    assert at32["pushes_off_the_wall"] == at32["pushes_away_from_door"] and at32["held_rate"] == 0.0  # drives off it


class PositionModel:
    """A two-rooms "model" whose latent is the agent's position read off the image (its reddest pixel) and whose
    predictor either keeps the agent where it is (``still``) or adds the commanded moves, walls or not: the two wrong
    walls, everywhere and nowhere."""

    def __init__(self, still: bool) -> None:
        import torch

        self.still, self.frameskip, self.latent_std = still, 5, torch.ones(2)

    def encode(self, images):
        import numpy as np
        import torch

        images = np.asarray(images, dtype=np.float32)
        channel = (images[..., 0] - images[..., 1]).reshape(len(images), -1).argmax(axis=1)  # red agent, white walls
        side = images.shape[2]
        return torch.tensor(np.stack([channel % side, channel // side], axis=1) + 0.5, dtype=torch.float32)

    def predict(self, ctx, actions, level=0):
        moves = actions.reshape(len(actions), -1, 2).sum(dim=1)
        return ctx[:, -1] if self.still else ctx[:, -1] + moves

    def rollout(self, z, actions):
        import torch

        out, ctx = [], z
        for k in range(actions.shape[1]):
            ctx = self.predict(ctx, actions[:, k])[:, None]
            out.append(ctx[:, 0])
        return torch.stack(out, dim=1)


def test_wall_leak_tells_a_wall_everywhere_from_a_wall_nowhere() -> None:
    """A predictor that never moves the agent is held (and blocked at the door) but never leaks; one that ignores
    walls leaks on every push and is never held."""
    import torch

    mod = load("wall_leak")
    keep = torch.ones(2, dtype=torch.bool)
    still = mod.score_door(PositionModel(still=True), 20.0, 4, 2, torch.ones(2), keep)
    free = mod.score_door(PositionModel(still=False), 20.0, 4, 2, torch.ones(2), keep)
    assert still["held_rate"] == 1.0 and still["leak_rate"] == 0.0 and still["block_rate"] == 1.0
    assert free["held_rate"] == 0.0 and free["leak_rate"] == 1.0 and free["block_rate"] == 0.0
    assert still["pushes_off_the_wall"] == still["pushes_away_from_door"] > 10


def test_wall_leak_refuses_a_directory_without_a_bundle_and_other_worlds(tmp_path: Path, capsys) -> None:
    assert load("wall_leak").main(["--bundles", str(tmp_path)]) == 2
    assert "no manifest.json" in capsys.readouterr().err
    assert load("wall_leak").main(["--bundles", str(REPO / "models" / "multi_room")]) == 2
    assert "trained on 'multi_room'" in capsys.readouterr().err


def test_wall_data_probe_scores_fresh_predictors_against_the_simulated_pushes(tmp_path: Path) -> None:
    """On the shipped bundle (no layout part): only the 'none' and 'oracle' inputs, for both data sets; the
    simulated ends of the pushes are the wall's face and the far side of the doorway."""
    out = tmp_path / "probe.json"
    args = ["--bundle", str(BUNDLE), "--doors", "2", "--probe-episodes", "16", "--fit-steps", "50", "--out", str(out)]
    assert load("wall_data_probe").main(args) == 0
    rows = json.loads(out.read_text())["results"]["rows"]
    assert [(r["data"], r["layout_input"]) for r in rows] == [("base", "none"), ("base", "oracle"), ("probe", "none"), ("probe", "oracle")]
    assert rows[2]["transitions"] == rows[0]["transitions"] + 16 * 20  # 16 door_probe episodes of 20 model steps
    for r in rows:
        assert 30.0 < r["stopped_true_x"] < 31.5 and r["passed_true_x"] > 36.0
        assert r["mae_px"] >= 0 and abs(r["stopped_pred_x"]) < 100


def test_door_anywhere_bundle_reads_the_moved_wall(tmp_path: Path) -> None:
    """The shipped door-reading bundle (trained with door_probe data) stops pushes at the wall wherever the door is and lets
    most pushes level with the moved doorway through; the fixed-door bundle above blocks every one of them at y = 10."""
    bundle = REPO / "models" / "two_rooms"
    out = tmp_path / "leak.json"
    assert load("wall_leak").main(["--bundles", str(bundle), "--doors", "10", "54", "--out", str(out)]) == 0
    for door in json.loads(out.read_text())["results"][0]["per_door"]:
        assert door["pushes_away_from_door"] > 10 and door["pushes_at_door"] >= 2
        assert door["leak_rate"] <= 0.1 and door["block_rate"] <= 0.5
