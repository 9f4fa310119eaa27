"""The oracle point-mass model agrees with the two-rooms world."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from jepa_planner.oracle import OracleTwoRoomsModel, OracleWorldModel
from jepa_sim.worlds import make_world
from jepa_world_model.protocol import WorldModel

torch.set_num_threads(1)


def test_oracle_encodes_positions_and_predicts_the_true_dynamics():
    world = make_world("two_rooms")
    model = OracleWorldModel.from_world(world, frameskip=2, strides=(3,))
    assert isinstance(model, WorldModel)
    assert model.levels[0].action_dim == 4 and model.levels[1].stride == 3
    rng = np.random.default_rng(0)
    obs = world.reset(seed=3)
    blocked = 0
    for _ in range(150):
        state = torch.tensor(world.true_state())
        assert torch.allclose(model.encode(obs.image[None])[0], state, atol=0.05)
        action = rng.uniform(-3.0, 3.0, 4)  # beyond the bound: the model must clip like the world
        pred = model.predict(state.reshape(1, 1, 2), torch.tensor(action, dtype=torch.float32)[None])[0]
        for raw in action.reshape(2, 2):
            obs, info = world.step(raw)
            blocked += info.extra["blocked"]
        assert torch.allclose(pred, torch.tensor(world.true_state()), atol=1e-3)
    assert blocked > 0  # the walk did hit walls


def test_oracle_walls_block_macro_actions_and_bad_images_raise():
    model = OracleTwoRoomsModel(frameskip=1, strides=(10,))
    start = torch.tensor([[[20.0, 10.0]]])  # left room, far from the door (centred at y = 32)
    through_wall = model.predict(start, torch.tensor([[20.0, 0.0]]), level=1)
    assert through_wall[0, 0] < 31.0  # stopped by the wall at x ~ 30.5
    macro = model.encode_macro(torch.ones(2, 10, 2), level=1)
    assert torch.equal(macro, torch.full((2, 2), 10.0))
    with pytest.raises(ValueError, match="images must be"):
        model.encode(np.zeros((1, 32, 32, 3), np.uint8))
    with pytest.raises(ValueError, match="no agent visible"):
        model.encode(np.zeros((1, 64, 64, 3), np.uint8))
    with pytest.raises(ValueError, match="levels"):
        model.predict(start, torch.zeros(1, 2), level=2)
