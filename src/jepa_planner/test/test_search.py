"""Latent search (``jepa_planner.search``): the move set, a way round a wall through the door, the subgoal it
hands the sampling planner, closed-loop goals the straight goal distance misses, and the profile's checks."""

from __future__ import annotations

import math

import pytest
import torch

from jepa_planner.oracle import OracleTwoRoomsModel
from jepa_planner.profiles import PlannerProfile, build_planner, load_profile
from jepa_planner.search import LatentSearch, SearchGuidedPlanner, action_set

DOOR_X = 32.0  # the two-rooms wall's centre line (px)


def oracle(door_y: float = 10.0) -> OracleTwoRoomsModel:
    """Exact two-rooms dynamics with the door at ``door_y``; latent = position (px)."""
    return OracleTwoRoomsModel(frameskip=5, door_y=door_y)


def test_action_set_holds_each_heading_over_the_model_step_within_bounds() -> None:
    low, high = torch.full((10,), -2.0), torch.full((10,), 2.0)
    moves = action_set(low, high, frameskip=5, directions=8)
    raw = moves.reshape(8, 5, 2)
    assert torch.equal(raw, raw[:, :1].expand(-1, 5, -1))  # one raw action held for the model step
    assert torch.allclose(raw[:, 0].norm(dim=1), torch.full((8,), 2.0))  # full speed every heading allows
    angles = torch.atan2(raw[:, 0, 1], raw[:, 0, 0]).remainder(2 * math.pi)
    assert torch.allclose(angles.sort().values, torch.arange(8) * (math.pi / 4), atol=1e-5)
    three = action_set(torch.tensor([-1.0, -2.0, -3.0]), torch.tensor([1.0, 2.0, 3.0]), frameskip=1, directions=8)
    assert three.tolist() == [[1, 0, 0], [0, 2, 0], [0, 0, 3], [-1, 0, 0], [0, -2, 0], [0, 0, -3]]


def test_search_goes_round_the_wall_through_the_door() -> None:
    model = oracle(door_y=10.0)
    planner = build_planner("flat_cem_search", model)
    assert isinstance(planner, SearchGuidedPlanner)
    start, goal = torch.tensor([40.0, 50.0]), torch.tensor([20.0, 50.0])  # either side of the wall, door far up
    found = planner.search(start.reshape(1, 1, 2), goal)
    path = found.latents[found.path]
    assert path[-1, 0] < DOOR_X and (path[-1] - goal).norm() < 3.0  # reaches the goal in the other room
    crossing = int((path[:, 0] < DOOR_X).nonzero()[0])
    assert path[max(crossing - 1, 0):crossing + 1, 1].min() < 16.0  # crosses the wall at the door (y 6-14)
    assert found.actions.shape == (len(found.path), 10)
    # the planner aims at the node `lead` steps along that way: up toward the door, not at the wall
    result = planner.plan(start, goal)
    assert result.planner == "search+cem" and result.subgoal is not None
    assert result.subgoal[1] < start[1] - 10.0
    assert result.latents[0, 1] < start[1]  # its first model step goes up


def test_search_reuses_its_path_between_searches_and_forgets_it_on_reset() -> None:
    model = oracle(door_y=10.0)
    profile = load_profile("flat_cem_search")
    planner = build_planner(profile.model_copy(update={"search": profile.search.model_copy(update={"replan_every": 3})}), model)
    calls = []
    search = planner.search
    planner.search = lambda *args: calls.append(1) or search(*args)
    start, goal = torch.tensor([40.0, 50.0]), torch.tensor([20.0, 50.0])
    for _ in range(4):
        planner.plan(start, goal, shift=1)
    assert len(calls) == 2  # searched, followed the path for two model steps, searched again
    planner.reset()
    planner.plan(start, goal, shift=1)
    assert len(calls) == 3


def test_a_time_budget_cuts_the_search_short_and_leaves_the_planner_the_rest() -> None:
    model = oracle(door_y=10.0)
    planner = build_planner("flat_cem_search", model)
    start, goal = torch.tensor([40.0, 50.0]), torch.tensor([20.0, 50.0])
    full = planner.search(start.reshape(1, 1, 2), goal)
    assert len(full.latents) > 1 + 2 * planner.settings.max_nodes  # deeper than two levels without a budget
    planner.reset()
    seen = {}
    inner = planner.planner.plan
    planner.planner.plan = lambda *a, **k: seen.update(k) or inner(*a, **k)
    result = planner.plan(start, goal, max_time=1e-9)  # spent before the first depth ends
    assert len(planner.last.latents) <= 1 + planner.settings.max_nodes  # one depth only
    assert 0 < seen["max_time"] <= 1e-6 and torch.isfinite(result.actions).all()


def test_search_drops_diverged_predictions() -> None:
    model = oracle(door_y=10.0)
    planner = build_planner("flat_cem_search", model)
    predict = model.predict

    def left_diverges(ctx, action, level=0):  # moving left returns NaN
        out = predict(ctx, action, level)
        return torch.where((action[:, 0] < -1.0)[:, None], torch.full_like(out, math.nan), out)

    model.predict = left_diverges
    found = planner.search(torch.tensor([[[40.0, 50.0]]]), torch.tensor([20.0, 50.0]))
    assert torch.isfinite(found.latents).all() and len(found.latents) > 1
    result = planner.plan(torch.tensor([40.0, 50.0]), torch.tensor([20.0, 50.0]))
    assert torch.isfinite(result.actions).all()


def test_closed_loop_reaches_goals_the_straight_distance_misses() -> None:
    """Same seeded tasks, exact model, door near the bottom: ``flat_cem`` presses on the wall in some,
    ``flat_cem_search`` reaches every one (``bench/door_oracle.py`` measures it on 40 held-out tasks per door)."""
    from jepa_planner.evaluate import evaluate
    from jepa_planner.oracle import OracleWorldModel
    from jepa_sim.worlds import make_world

    torch.set_num_threads(1)
    world = make_world("two_rooms", door_y=54.0, goal_in_other_room=True, placement="mixed")
    model = OracleWorldModel.from_world(world, frameskip=5, strides=(4,))
    wins = {}
    for name in ("flat_cem", "flat_cem_search"):
        _, records, _ = evaluate(model, build_planner(name, model), world, 6, seed=100000, progress=False, gif_episode=None)
        wins[name] = sum(r.success for r in records)
    assert wins["flat_cem_search"] == 6 and wins["flat_cem"] < 6, wins


def test_profiles_validate_the_search_and_refuse_it_where_it_cannot_apply() -> None:
    from pydantic import ValidationError

    from jepa_planner.controller import MPCController
    from jepa_planner.planners.base import planner_parts, set_candidates_kept

    model = oracle()
    profile = load_profile("flat_cem_search")
    assert profile.search is not None and profile.escalation is None
    planner = build_planner(profile, model)
    assert planner.settings == LatentSearch(**profile.search.model_dump())
    ctl = MPCController(model, planner)  # the wrapper carries the recovery and the final approach
    assert ctl.recovery is not None and ctl.approach is not None and ctl.short_planner is planner.short_planner
    set_candidates_kept(planner, 5)
    assert planner.planner in list(planner_parts(planner)) and planner.planner.candidates_kept == 5
    flat = profile.model_dump()
    for bad, match in (({"depth": 0}, "depth"), ({"radius": 0.0}, "radius"), ({"directions": 1}, "directions"),
                       ({"lead": 0}, "lead"), ({"colour": 1}, "colour"), ({"blocked_radius": -0.1}, "blocked_radius"),
                       ({"blocked_angle": 181.0}, "blocked_angle")):
        with pytest.raises(ValidationError, match=match):
            PlannerProfile(**{**flat, "search": {**flat["search"], **bad}})
    with pytest.raises(ValidationError, match="search needs a flat profile"):
        PlannerProfile(**{**flat, "escalation": load_profile("flat_cem").escalation.model_dump()})
    hierarchical = load_profile("hierarchical").model_dump()
    with pytest.raises(ValidationError, match="search needs a flat profile"):
        PlannerProfile(**{**hierarchical, "search": flat["search"]})
    with pytest.raises(ValueError, match="proposals and warm_actions"):
        planner.plan(torch.tensor([40.0, 50.0]), torch.tensor([20.0, 50.0]), proposals=torch.zeros(1, 8, 10))
    with pytest.raises(ValueError, match="NaN"):
        planner.plan(torch.tensor([math.nan, 50.0]), torch.tensor([20.0, 50.0]))


def blocked_search(door_y: float, radius: float) -> SearchGuidedPlanner:
    profile = load_profile("flat_cem_search")
    update = {"blocked_radius": radius, "blocked_angle": 50.0}
    return build_planner(profile.model_copy(update={"search": profile.search.model_copy(update=update)}), oracle(door_y))


def first_heading(planner: SearchGuidedPlanner, start: torch.Tensor, goal: torch.Tensor) -> float:
    """Angle (degrees, 0 = +x) of the first move of the search's path from ``start`` toward ``goal``."""
    found = planner.search(start.reshape(1, 1, 2), goal)
    raw = found.actions[0, :2]
    return math.degrees(math.atan2(float(raw[1]), float(raw[0])))


def test_a_stall_closes_that_push_near_there_until_the_next_goal() -> None:
    """The model's door is where the agent stands (y = 50) but the world stopped its push +x there: the search goes
    round the place instead of through it, only near it, and only until forget_blocked (a new goal)."""
    planner = blocked_search(door_y=50.0, radius=0.25)
    start, goal = torch.tensor([28.0, 50.0]), torch.tensor([40.0, 50.0])
    assert abs(first_heading(planner, start, goal)) < 1.0  # straight through the model's door
    planner.note_blocked(start, torch.tensor([2.0, 0.1]))
    assert abs(first_heading(planner, start, goal)) > 50.0  # not into the push the world stopped
    far = torch.tensor([28.0, 20.0])  # far from the stall: pushing +x there is still fine (the model has no door there)
    planner.note_blocked(far, torch.tensor([0.0, 2.0]))  # a push +y stopped there closes +y there, nothing else
    assert abs(first_heading(planner, start, goal)) > 50.0
    planner.forget_blocked()
    assert abs(first_heading(planner, start, goal)) < 1.0
    off = blocked_search(door_y=50.0, radius=0.0)  # the profile's default: nothing remembered
    off.note_blocked(start, torch.tensor([2.0, 0.0]))
    assert abs(first_heading(off, start, goal)) < 1.0


def test_the_controller_reports_each_stall_to_the_search_and_clears_it_for_a_new_goal() -> None:
    from jepa_planner.controller import MPCController

    planner = blocked_search(door_y=50.0, radius=0.25)
    notes = []
    note = planner.note_blocked
    planner.note_blocked = lambda z, command: notes.append((z.clone(), command.clone())) or note(z, command)
    ctl = MPCController(planner.model, planner)
    start, goal = torch.tensor([28.0, 50.0]), torch.tensor([40.0, 50.0])
    ctl.set_goal(goal)
    for _ in range(ctl.recovery.window + 1):  # the world does not let it move: its plan pushes +x, nothing changes
        step = ctl.step(start)
    assert step.index == -1 and len(notes) == 1  # the stall: a manoeuvre, and the search told where and which way
    assert torch.equal(notes[0][0], start) and float(notes[0][1][0]) > 0
    assert planner.blocked_count == 1
    ctl.set_goal(goal + 1.0)
    assert planner.blocked_count == 0
