"""GoalSupervisor: when a goal ends and why, without ROS."""

from __future__ import annotations

import numpy as np

from jepa_planner.supervision import CANCELED, REACHED, TIMEOUT, GoalSupervisor


class FakeClock:
    def __init__(self) -> None:
        self.t = 100.0

    def __call__(self) -> float:
        return self.t


def make(tolerance: float = 0.5, time_limit: float = 10.0, max_steps: int = 0) -> tuple[GoalSupervisor, FakeClock]:
    clock = FakeClock()
    sup = GoalSupervisor(np.zeros(4, np.float32), np.full(4, 2.0, np.float32), tolerance, time_limit, max_steps, clock=clock)
    return sup, clock


def test_reached_when_distance_drops_below_tolerance() -> None:
    sup, _ = make(tolerance=0.5)
    z = sup.observe([4.0, 4.0, 4.0, 4.0], (0, 1))
    assert z is not None and z.shape == (4,)
    assert sup.distance == 2.0  # RMS of (4 - 0) / 2
    assert not sup.advance()
    assert sup.observe([0.2, 0.0, 0.0, 0.0], (0, 2)) is not None
    assert sup.advance() and sup.step == 2
    assert sup.final_distance == sup.distance < 0.5
    assert REACHED == "reached"


def test_skips_repeated_wrong_size_and_non_finite_latents() -> None:
    sup, _ = make()
    assert sup.observe([1.0] * 4, (0, 1)) is not None
    assert sup.observe([0.0] * 4, (0, 1)) is None  # same stamp: nothing new
    assert sup.observe([0.0] * 3, (0, 2)) is None
    assert sup.observe([np.nan, 0, 0, 0], (0, 3)) is None
    assert sup.distance == 0.5  # still the accepted latent's


def test_end_reasons_in_priority_order() -> None:
    sup, clock = make(time_limit=5.0, max_steps=3)
    assert sup.end_reason() is None
    assert sup.end_reason(dead_input="perception silent") == "error: perception silent"
    clock.t += 6
    assert sup.end_reason(dead_input="perception silent") == TIMEOUT
    assert sup.end_reason(cancel_requested=True, dead_input="x") == CANCELED
    assert sup.end_reason(preempted="preempted", cancel_requested=True) == "preempted"
    assert sup.elapsed() == 6


def test_step_limit_and_no_latent_final_distance() -> None:
    sup, _ = make(max_steps=2)
    assert sup.final_distance == -1.0
    for i in range(2):
        sup.observe([9.0] * 4, (0, i))
        sup.advance()
    assert sup.end_reason() == TIMEOUT
    unlimited, _ = make(max_steps=0)
    unlimited.step = 10_000
    assert unlimited.end_reason() is None


def test_tolerance_comes_from_the_goal_then_the_parameter_then_the_bundle() -> None:
    from jepa_planner.supervision import resolve_tolerance

    assert resolve_tolerance(0.2, 0.05, 0.01, 0.03) == 0.2  # the goal's own
    assert resolve_tolerance(0.0, 0.05, 0.01, 0.03) == 0.05  # default_tolerance > 0 overrides the bundle's
    assert resolve_tolerance(-1.0, 0.0, 0.01, 0.03) == 0.01  # default_tolerance 0: the bundle's
    assert resolve_tolerance(0.0, 0.0, None, 0.03) == 0.03  # a bundle without one: the fallback
