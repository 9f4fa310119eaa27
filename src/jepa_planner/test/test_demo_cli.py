"""The demo's command line and pictures (the node processes themselves are covered by tests/test_agent_integration.py)."""

from __future__ import annotations

import numpy as np
from PIL import Image

from jepa_planner.demo import EpisodeRecord, run, save_pictures
from jepa_sim.worlds import make_world


def test_bad_world_args_and_missing_bundle_exit_2_before_starting_nodes(tmp_path, capsys) -> None:
    assert run(["--world", "multi_room", "--world-args", "[1, 2]", "--out", str(tmp_path)]) == 2
    assert "YAML mapping" in capsys.readouterr().err
    assert run(["--world", "multi_room", "--bundle", str(tmp_path / "nowhere"), "--out", str(tmp_path)]) == 2
    assert not (tmp_path / "logs").exists()


def test_pictures_use_world_coordinates_and_draw_plans_on_the_gif(tmp_path) -> None:
    world = make_world("multi_room")  # 96 px arena seen at 64 px
    obs = world.reset(seed=0)
    path = [[10.0, 10.0], [12.0, 11.0], [80.0, 80.0], [81.0, 81.0]]  # a reset jump in the middle
    record = EpisodeRecord(seed=0, success=True, goal=[81.0, 81.0], path=path)
    plan = np.array([[48.0, 48.0]])  # arena centre, in world px
    saved = save_pictures(tmp_path, world, [record], [obs.image], [plan])
    assert any(s.endswith("trajectories.png") for s in saved) and any(s.endswith(".gif") for s in saved)
    gif = np.asarray(Image.open(tmp_path / "episode.gif").convert("RGB"))
    centre = gif.shape[0] // 2  # the plan point lands at the centre of the 4x scaled frame
    assert (gif[centre - 1 : centre + 2, centre - 1 : centre + 2] == (255, 255, 0)).all()
