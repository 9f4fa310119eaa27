"""Push-T (gym-pusht on pymunk) as a ``World``: a round pusher moves a T-shaped block onto a target pose.

Physics, success test and drawing colours are gym-pusht's ``PushTEnv`` (512 x 512 px arena, the
agent a kinematic disc of radius 15 driven by a PD controller, 10 physics substeps of 0.01 s per
step); this module adds the action convention, goal handling and the common API:

* action: a bounded *relative displacement* [dx, dy] in arena px, |dx|, |dy| <= ``max_step``
  (default 50). The PD controller's target is the agent's current position plus the action,
  kept ``TARGET_MARGIN`` px inside the walls. A relative action makes the same action mean the
  same move anywhere, which is easier for a planner to sample than gym-pusht's absolute target.
  With the controller's gains the agent settles at 0.5 x |action| px per step when the same
  action is repeated (kp / kv = 5 per second, times 0.1 s).
* proprio: agent [x, y, vx, vy] (px, px/s). True state: [agent x, agent y, block x, block y,
  block angle] (px, rad in [0, 2 pi)); the block position is its body origin, as in gym-pusht.
* goal: a true-state vector. By default the block's target pose is gym-pusht's fixed
  (256, 256, pi/4) and the agent's goal position is sampled away from it. With
  ``goal_steps=N`` the goal is the state reached after N steps of a scripted pusher from the
  start (the block pose and the agent position it ends at), for tasks of known horizon.
* success: gym-pusht's test, coverage of the target pose by the block > 95%. ``dino_wm_success`` is
  DINO-WM's state test instead (positions within 20 px, block angle within pi/9), for comparisons.
* image: gym-pusht's top-down drawing (white floor, grey walls, green target region when
  ``show_target``, grey T, blue agent) at 512 px, shrunk with pygame's smoothscale (area
  averaging) to ``image_size``.
  The goal image draws the same scene with the agent and block at the goal state, in a separate
  pymunk space used only for drawing, so the simulation is never disturbed; it equals an
  observation taken with the simulation in that state exactly.
"""

from __future__ import annotations

import os
from typing import Any

import numpy as np

from jepa_sim.worlds.base import Observation, StepInfo, World, WorldSpec

INSTALL_HINT = "pip install -r requirements/extras-pusht.txt"
ARENA = 512.0  # px, gym-pusht's arena side
AGENT_RADIUS = 15.0  # px, gym-pusht add_circle radius
TARGET_MARGIN = 20.0  # px: PD targets stay inside the walls (at 5 px) plus the agent radius
DEFAULT_TARGET_POSE = (256.0, 256.0, np.pi / 4)  # gym-pusht PushTEnv._setup goal_pose
MAX_STEPS = 300  # gym-pusht registers PushT-v0 with max_episode_steps=300
STEP_DT = 0.1  # s: gym-pusht runs 10 substeps of dt 0.01 per step (control_hz 10)
# Start sampling ranges of gym-pusht PushTEnv.reset (px).
AGENT_START_RANGE = (50, 450)
BLOCK_START_RANGE = (100, 400)


def _import_simulator() -> tuple[Any, Any, Any, Any]:
    """(pygame, pymunk, PushTEnv class, DrawOptions class), or ImportError naming the extras file."""
    os.environ.setdefault("PYGAME_HIDE_SUPPORT_PROMPT", "1")
    try:
        import pygame
        import pymunk
        from gym_pusht.envs.pusht import PushTEnv
        from gym_pusht.envs.pymunk_override import DrawOptions
    except ImportError as err:
        raise ImportError(
            f"world 'push_t' needs gym-pusht and its pymunk, pygame, shapely, opencv ({err.name or err} is missing): {INSTALL_HINT}"
        ) from err
    return pygame, pymunk, PushTEnv, DrawOptions


class PushT(World):
    """One Push-T environment.

    Args:
        image_size: camera image side in px.
        max_step: bound on each component of the relative-displacement action (arena px).
        goal_steps: 0 for the standard fixed target pose; N > 0 for the state reached by N steps
            of the scripted pusher from the start (e.g. 25, 50, 75).
        show_target: draw the target region (green T) in every image, as gym-pusht does (at the fixed pose with
            ``goal_steps`` > 0, as in the standard task's training data; the goal is then the goal image).
        max_steps: episode limit for evaluation (default 300, gym-pusht's).
    """

    def __init__(
        self,
        image_size: int = 64,
        max_step: float = 50.0,
        goal_steps: int = 0,
        show_target: bool = True,
        max_steps: int = MAX_STEPS,
    ) -> None:
        if image_size < 8:
            raise ValueError(f"image_size must be >= 8 px, got {image_size}")
        if not max_step > 0:
            raise ValueError(f"max_step must be > 0 px, got {max_step}")
        if goal_steps < 0:
            raise ValueError(f"goal_steps must be >= 0, got {goal_steps}")
        self._pygame, self._pymunk, env_cls, self._draw_options_cls = _import_simulator()
        self.max_step = float(max_step)
        self.goal_steps = int(goal_steps)
        self.show_target = bool(show_target)
        self._env = env_cls(obs_type="state", render_mode="rgb_array")
        self.spec = WorldSpec(
            name="push_t",
            image_size=int(image_size),
            action_dim=2,
            action_low=(-self.max_step, -self.max_step),
            action_high=(self.max_step, self.max_step),
            proprio_dim=4,
            state_dim=5,
            max_steps=int(max_steps),
            dt=STEP_DT,
        )
        self._screen = self._pygame.Surface((int(ARENA), int(ARENA)))
        self._draw_space, self._draw_agent, self._draw_block = self._build_draw_space()
        self._goal = np.zeros(5)
        self._has_reset = False
        # with goal_steps: the scripted pusher's raw actions that reach this episode's goal from its start
        self.goal_actions = np.zeros((0, 2))

    # ------------------------------------------------------------------ state helpers
    def _build_draw_space(self) -> tuple[Any, Any, Any]:
        """A pymunk space with gym-pusht's walls, agent and T in the same order, never stepped."""
        env_cls = type(self._env)
        space = self._pymunk.Space()
        space.add(
            env_cls.add_segment(space, (5, 506), (5, 5), 2),
            env_cls.add_segment(space, (5, 5), (506, 5), 2),
            env_cls.add_segment(space, (506, 5), (506, 506), 2),
            env_cls.add_segment(space, (5, 506), (506, 506), 2),
        )
        agent = env_cls.add_circle(space, (256, 400), AGENT_RADIUS)
        block, _ = env_cls.add_tee(space, (256, 300), 0)
        return space, agent, block

    def _place(self, space: Any, agent: Any, block: Any, state: np.ndarray) -> None:
        """Put agent and block at a true state, at rest (angle before position: pymunk keeps the
        centre of gravity when the angle changes, so this order makes ``position`` the origin)."""
        agent.position = (float(state[0]), float(state[1]))
        agent.velocity = (0.0, 0.0)
        block.angle = float(state[4])
        block.position = (float(state[2]), float(state[3]))
        block.velocity = (0.0, 0.0)
        block.angular_velocity = 0.0
        space.reindex_shapes_for_body(agent)
        space.reindex_shapes_for_body(block)

    def _state_of(self, agent: Any, block: Any) -> np.ndarray:
        return np.array(
            [*agent.position, *block.position, block.angle % (2 * np.pi)],
            dtype=np.float64,
        )

    # ------------------------------------------------------------------ rendering
    def _draw(self, space: Any, target_pose: np.ndarray | None) -> np.ndarray:
        pygame, screen = self._pygame, self._screen
        screen.fill((255, 255, 255))
        if target_pose is not None:
            goal_body = self._env.get_goal_pose_body(np.asarray(target_pose, dtype=np.float64))
            for shape in self._env.block.shapes:
                points = [goal_body.local_to_world(v) for v in shape.get_vertices()]
                pygame.draw.polygon(screen, pygame.Color("LightGreen"), [(p.x, p.y) for p in points])
        space.debug_draw(self._draw_options_cls(screen))
        side = self.spec.image_size
        if side != int(ARENA):
            # smoothscale averages like cv2 INTER_AREA (within 1 grey level) at a tenth of the time
            # of copying the 512 px surface out and resizing it.
            screen = pygame.transform.smoothscale(screen, (side, side))
        return np.ascontiguousarray(np.transpose(pygame.surfarray.array3d(screen), (1, 0, 2)))  # pygame is (x, y)

    def _target_to_draw(self) -> np.ndarray | None:
        """Where the green T goes: the goal pose in gym-pusht's own task (``goal_steps`` 0, where it is the fixed
        pose), the fixed pose with ``goal_steps`` > 0. There the goal comes as a goal image and the T is scenery;
        drawn at the goal pose it put every frame outside what a model trained on the standard task saw (latents
        5-12 std from the origin instead of about 1, and the latent distance no longer fell as the agent
        approached its goal)."""
        if not self.show_target:
            return None
        return np.asarray(DEFAULT_TARGET_POSE) if self.goal_steps > 0 else self._goal[2:5]

    def world_to_pixel(self, xy: np.ndarray) -> np.ndarray:
        """Arena positions (..., 2) [x, y] in px to image [col, row] (float; pixel centres at integers)."""
        return np.asarray(xy, dtype=np.float64) * (self.spec.image_size / ARENA) - 0.5

    def pixel_to_world(self, colrow: np.ndarray) -> np.ndarray:
        """Inverse of ``world_to_pixel``."""
        return (np.asarray(colrow, dtype=np.float64) + 0.5) * (ARENA / self.spec.image_size)

    # ------------------------------------------------------------------ episode control
    def reset(self, seed: int | None = None, goal: np.ndarray | None = None, start: np.ndarray | None = None) -> Observation:
        """Start an episode.

        Args:
            seed: makes start, goal and the scripted pusher reproducible.
            goal: [agent x, agent y, block x, block y, block angle], or the block pose [x, y, angle]
                alone (the agent's goal position is then sampled); sampled when None.
            start: a true state to start from; sampled like gym-pusht when None.
        """
        rng = np.random.default_rng(seed)
        start_state = self._check_state(start, "start", allow_pose=False)
        goal_state = self._check_state(goal, "goal", allow_pose=True)
        if start_state is None:
            start_state = self._sample_start(rng)
        self.goal_actions = np.zeros((0, 2))
        if goal_state is None:
            if self.goal_steps > 0:
                goal_state = self._scripted_goal(rng, start_state)
            else:
                goal_state = np.array([0.0, 0.0, *DEFAULT_TARGET_POSE])
                goal_state[:2] = self._sample_agent_clear_of(rng, goal_state)
        elif goal_state.shape == (3,):
            pose = goal_state
            goal_state = np.array([0.0, 0.0, *pose])
            goal_state[:2] = self._sample_agent_clear_of(rng, goal_state)
        self._goal = np.asarray(goal_state, dtype=np.float64)
        self._goal[4] %= 2 * np.pi
        self._start_from(start_state)
        self._has_reset = True
        return self._observe()

    def _start_from(self, state: np.ndarray) -> None:
        self._env.reset(seed=0)  # fresh pymunk space; its own random start is replaced below
        self._env.goal_pose = self._goal[2:5].copy()
        self._place(self._env.space, self._env.agent, self._env.block, state)
        self._has_reset = True

    def step(self, action: np.ndarray) -> tuple[Observation, StepInfo]:
        """Move the PD target to agent position + action (clipped to +-max_step) and simulate 0.1 s."""
        if not self._has_reset:
            raise RuntimeError("call reset() before step()")
        a = np.asarray(action, dtype=np.float64).reshape(-1)
        if a.shape != (2,) or not np.isfinite(a).all():
            raise ValueError(f"action must be 2 finite numbers [dx, dy] in px, got {action!r}")
        clipped = np.clip(a, -self.max_step, self.max_step)
        wanted = np.asarray(self._env.agent.position, dtype=np.float64) + clipped
        target = np.clip(wanted, TARGET_MARGIN, ARENA - TARGET_MARGIN)
        _, _, _, _, info = self._env.step(target)
        at_wall = bool(np.any(target != wanted))
        return self._observe(), StepInfo(
            success=bool(info["is_success"]),
            true_state=self.true_state(),
            clipped=bool(np.any(clipped != a)) or at_wall,
            extra={"blocked": at_wall, "coverage": float(info["coverage"])},
        )

    def _observe(self) -> Observation:
        agent = self._env.agent
        proprio = np.array([*agent.position, *agent.velocity], dtype=np.float32)
        return Observation(image=self._draw(self._env.space, self._target_to_draw()), proprio=proprio)

    # ------------------------------------------------------------------ views
    def goal_observation(self) -> Observation:
        self._place(self._draw_space, self._draw_agent, self._draw_block, self._goal)
        image = self._draw(self._draw_space, self._target_to_draw())
        proprio = np.array([self._goal[0], self._goal[1], 0.0, 0.0], dtype=np.float32)
        return Observation(image=image, proprio=proprio)

    def coverage(self) -> float:
        """Fraction of the target pose's area covered by the block (gym-pusht's measure)."""
        return float(self._env._get_coverage())

    def is_success(self) -> bool:
        return self.coverage() > self._env.success_threshold

    def state_success(self, goal_state: np.ndarray, state: np.ndarray) -> bool:
        """gym-pusht's test on states: the block at ``state`` covers its pose in ``goal_state`` by more than 95%."""
        goal = self._block_geometry(np.asarray(goal_state, np.float64)[2:5])
        block = self._block_geometry(np.asarray(state, np.float64)[2:5])
        return bool(block.intersection(goal).area / goal.area > self._env.success_threshold)

    def true_state(self) -> np.ndarray:
        return self._state_of(self._env.agent, self._env.block).astype(np.float32)

    @property
    def goal_state(self) -> np.ndarray:
        return self._goal.astype(np.float32)

    def render_map(self) -> np.ndarray:
        """The arena and the target region, without agent and block."""
        away = np.array([-1000.0, -1000.0, -1000.0, -1000.0, 0.0])
        self._place(self._draw_space, self._draw_agent, self._draw_block, away)
        return self._draw(self._draw_space, self._goal[2:5])

    def close(self) -> None:
        self._env.close()

    # ------------------------------------------------------------------ sampling
    def _block_geometry(self, pose: np.ndarray) -> Any:
        from gym_pusht.envs.pusht import pymunk_to_shapely

        body = self._env.get_goal_pose_body(np.asarray(pose, dtype=np.float64))
        return pymunk_to_shapely(body, self._draw_block.shapes)

    def _sample_agent_clear_of(self, rng: np.random.Generator, state: np.ndarray) -> np.ndarray:
        """An agent position in gym-pusht's start range that does not touch the block at state[2:5]."""
        import shapely.geometry as sg

        block = self._block_geometry(state[2:5])
        for _ in range(1000):
            xy = rng.integers(*AGENT_START_RANGE, size=2).astype(np.float64)
            if block.distance(sg.Point(*xy)) > AGENT_RADIUS + 5:
                return xy
        raise RuntimeError(f"no free agent position found around block pose {state[2:5].tolist()}")

    def _sample_start(self, rng: np.random.Generator) -> np.ndarray:
        """gym-pusht's start distribution, minus starts that touch the block or already succeed."""
        target = self._block_geometry(np.asarray(DEFAULT_TARGET_POSE))
        for _ in range(1000):
            state = np.zeros(5)
            state[2:4] = rng.integers(*BLOCK_START_RANGE, size=2)
            state[4] = rng.uniform(-np.pi, np.pi)
            block = self._block_geometry(state[2:5])
            if block.intersection(target).area / target.area > self._env.success_threshold:
                continue
            state[:2] = self._sample_agent_clear_of(rng, state)
            return state
        raise RuntimeError("could not sample a Push-T start state")

    def _scripted_goal(self, rng: np.random.Generator, start: np.ndarray, tries: int = 10) -> np.ndarray:
        """The state after ``goal_steps`` steps of the scripted pusher from ``start``.

        Retries with fresh push directions while the block ends within success of its start
        pose (nothing to do), keeping the try that moved the block most.
        """
        best, best_overlap, best_actions = None, np.inf, np.zeros((0, 2))
        for _ in range(tries):
            self._goal = np.array([*start[:2], *DEFAULT_TARGET_POSE])
            self._start_from(start)
            pusher = ScriptedPusher(rng, self.max_step)
            actions = []
            for _ in range(self.goal_steps):
                actions.append(pusher.act(self.true_state()))
                self.step(actions[-1])
            final = self._state_of(self._env.agent, self._env.block)
            start_block = self._block_geometry(start[2:5])
            final_block = self._block_geometry(final[2:5])
            overlap = final_block.intersection(start_block).area / final_block.area
            if overlap < best_overlap:
                best, best_overlap, best_actions = final, overlap, np.asarray(actions)
            if overlap <= self._env.success_threshold:
                break
        self.goal_actions = best_actions
        return best

    def _check_state(self, state: np.ndarray | None, what: str, allow_pose: bool) -> np.ndarray | None:
        if state is None:
            return None
        arr = np.asarray(state, dtype=np.float64).reshape(-1)
        shapes = ((5,), (3,)) if allow_pose else ((5,),)
        if arr.shape not in shapes or not np.isfinite(arr).all():
            wanted = "[agent x, agent y, block x, block y, block angle]" + (" or [block x, block y, angle]" if allow_pose else "")
            raise ValueError(f"{what} must be {wanted}, got {state!r}")
        xy = arr[:-1]
        if np.any(xy < 0) or np.any(xy > ARENA):
            raise ValueError(f"{what} positions {xy.tolist()} must lie in the {ARENA:.0f} px arena")
        return arr


# DINO-WM's Push-T state criterion (Zhou et al. 2024, its PushT wrapper's ``eval_state``): the agent and block
# positions within 20 px (the 512 px arena; one norm over the 4 coordinates) and the block angle within pi/9.
DINO_WM_POSITION_PX = 20.0
DINO_WM_ANGLE_RAD = np.pi / 9


def angle_error(a: float, b: float) -> float:
    """Absolute difference of two angles (rad), the short way round: in [0, pi]."""
    diff = abs(float(a) - float(b)) % (2 * np.pi)
    return min(diff, 2 * np.pi - diff)


def state_errors(goal_state: np.ndarray, state: np.ndarray) -> dict[str, float]:
    """Agent and block position errors (px) and block angle error (rad) of a true state against a goal state."""
    goal, cur = np.asarray(goal_state, np.float64), np.asarray(state, np.float64)
    return {"agent_px": float(np.linalg.norm(goal[:2] - cur[:2])), "block_px": float(np.linalg.norm(goal[2:4] - cur[2:4])),
            "angle_rad": angle_error(goal[4], cur[4])}


def dino_wm_success(goal_state: np.ndarray, state: np.ndarray) -> bool:
    """DINO-WM's state test on true states [agent x, agent y, block x, block y, block angle] (px, rad)."""
    goal, cur = np.asarray(goal_state, np.float64), np.asarray(state, np.float64)
    return bool(np.linalg.norm(goal[:4] - cur[:4]) < DINO_WM_POSITION_PX and angle_error(goal[4], cur[4]) < DINO_WM_ANGLE_RAD)


class ScriptedPusher:
    """A pushing behaviour used to make reachable goals: approach the block from behind a push
    direction (aimed roughly at the arena centre, with a lateral offset so the block also turns),
    then push through it; a new direction every ``switch_every`` steps.

    Args:
        rng: random source for directions and offsets.
        max_step: the world's action bound (px).
        speed: pushing step as a fraction of ``max_step``.
        switch_every: steps between new push directions.
    """

    REACH = 75.0  # px behind the block's centre where a push starts (the T spans about 120 px)

    def __init__(self, rng: np.random.Generator, max_step: float, speed: float = 0.5, switch_every: int = 25) -> None:
        self.rng, self.max_step, self.speed, self.switch_every = rng, float(max_step), float(speed), int(switch_every)
        self._steps = 0
        self._direction = np.zeros(2)
        self._offset = 0.0
        self._pushing = False

    def _new_direction(self, block_xy: np.ndarray) -> None:
        to_centre = np.array([ARENA / 2, ARENA / 2]) - block_xy
        angle = np.arctan2(to_centre[1], to_centre[0]) + self.rng.uniform(-np.pi / 3, np.pi / 3)
        self._direction = np.array([np.cos(angle), np.sin(angle)])
        self._offset = self.rng.uniform(-25.0, 25.0)
        self._pushing = False

    def act(self, state: np.ndarray) -> np.ndarray:
        """A relative-displacement action for true state [ax, ay, bx, by, angle]."""
        agent, block = np.asarray(state[:2], dtype=np.float64), np.asarray(state[2:4], dtype=np.float64)
        if self._steps % self.switch_every == 0:
            self._new_direction(block)
        self._steps += 1
        d = self._direction
        side = np.array([-d[1], d[0]])
        contact = block - d * self.REACH + side * self._offset
        lateral = float(np.dot(agent - contact, side))
        if not self._pushing and np.linalg.norm(agent - contact) < 15.0:
            self._pushing = True
        if self._pushing and abs(lateral) > 40.0:
            self._pushing = False
        # pushing: along d, steering back onto the push line; otherwise straight to the contact point
        move = d * self.speed * self.max_step - side * 0.5 * lateral if self._pushing else contact - agent
        return np.clip(move, -self.max_step, self.max_step)
