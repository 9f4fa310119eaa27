"""Render the named goal images of config/goals.yaml for the two-rooms world (reproducible; rerun after layout changes).

    .venv/bin/python scripts/make_goal_images.py
"""

from __future__ import annotations

from pathlib import Path

import imageio.v3 as iio
import numpy as np
import yaml

from jepa_sim.worlds.two_rooms import TwoRoomsBatch

GOALS = {"left_room": (16.0, 32.0), "right_room": (48.0, 32.0), "top_left": (12.0, 12.0), "bottom_right": (52.0, 52.0)}


def main() -> None:
    root = Path(__file__).resolve().parents[1] / "config"
    (root / "goals").mkdir(exist_ok=True)
    world = TwoRoomsBatch(1)
    entries = {}
    for name, xy in GOALS.items():
        image = world.render(np.array([xy]))[0]
        iio.imwrite(root / "goals" / f"{name}.png", image)
        entries[name] = {"image": f"goals/{name}.png", "world": "two_rooms", "position_px": list(xy)}
    header = "# Named goals for ReachGoal (goal_type 2): an image (PNG, rendered by scripts/make_goal_images.py) or a latent (.npy).\n"
    (root / "goals.yaml").write_text(header + yaml.safe_dump({"goals": entries}, sort_keys=False))


if __name__ == "__main__":
    main()
