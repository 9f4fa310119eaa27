"""PointMaze (gymnasium-robotics on MuJoCo) as a ``World``: a force-driven ball in a maze of blocks.

Simulation is gymnasium-robotics' ``PointMazeEnv`` (the D4RL maze maps "umaze", "medium",
"large"); this module only adds the camera, goal handling and the common API:

* action: force [fx, fy] in [-1, 1]^2 (the environment's own actuator range), clipped here;
  the environment clips the ball speed to 5 m/s. One step = ``action_repeat`` MuJoCo steps of
  0.01 s each (the environment's frame_skip is 1).
* proprio and true state: [x, y, vx, vy] in metres and m/s (maze centred on the origin).
* goal: [x, y, 0, 0]; sampled like the environment does (a free cell's centre plus uniform
  noise of +-0.25 cell), or far along the maze (``goal_far=True``). Success is the
  environment's own test, distance <= 0.45 m.
* image: a fixed orthographic top-down camera that frames the whole maze, square; the ball is
  the environment's green disc, the goal region (radius 0.45 m) a translucent red disc on the
  floor under it (``show_target``), walls orange, floor the environment's blue checkerboard.
  The goal image renders the same scene with the ball moved onto the goal, so it equals an
  observation taken there exactly (rendering depends on positions only).

Rendering uses MuJoCo's offscreen OpenGL. ``MUJOCO_GL`` is set to "egl" when the user has not
set it and MuJoCo is not yet imported; "osmesa" (Debian ``libosmesa6``) is the alternative
on machines without EGL. Shadows, reflections and multisampling are off (about twice as fast
at 64 px, and a top-down view gains nothing from them). An EGL context current on one thread cannot be made
current on another (EGL_BAD_ACCESS), and a ROS executor runs the sim node's callbacks on pool threads, not the
thread that built the world: each render therefore takes the context under a lock and releases it afterwards.
"""

from __future__ import annotations

import contextlib
import io
import os
import sys
import threading
from collections import deque
from typing import Any

import numpy as np

from jepa_sim.worlds.base import Observation, StepInfo, World, WorldSpec

INSTALL_HINT = "pip install -r requirements/extras-pointmaze.txt"
# name -> (gymnasium_robotics.envs.maze.maps attribute, steps limit of its registered -v3 env)
MAZES: dict[str, tuple[str, int]] = {
    "umaze": ("U_MAZE", 300),
    "medium": ("MEDIUM_MAZE", 600),
    "large": ("LARGE_MAZE", 800),
}
SUCCESS_THRESHOLD = 0.45  # metres; gymnasium-robotics maze_v4 compute_terminated / info["success"]
POSITION_NOISE = 0.25  # cell fraction; gymnasium-robotics MazeEnv.position_noise_range
MIN_START_GOAL_DISTANCE = 0.5  # gymnasium-robotics generate_reset_pos keeps the start this far from the goal
TARGET_Z = -0.09  # just above the floor plane (z = -0.1), below the ball (z = 0)
SIM_DT = 0.01  # seconds per MuJoCo step of point.xml


def _import_simulator() -> tuple[Any, Any, Any]:
    """(mujoco, maps module, PointMazeEnv), or ImportError naming the extras file."""
    if "mujoco" not in sys.modules:
        os.environ.setdefault("MUJOCO_GL", "egl")
    try:
        # gymnasium_robotics prints a notice about unrelated Adroit envs to stderr on import.
        with contextlib.redirect_stderr(io.StringIO()):
            import mujoco
            from gymnasium_robotics.envs.maze import maps
            from gymnasium_robotics.envs.maze.point_maze import PointMazeEnv
    except ImportError as err:
        raise ImportError(
            f"world 'point_maze' needs gymnasium-robotics and mujoco ({err.name or err} is missing): {INSTALL_HINT}"
        ) from err
    return mujoco, maps, PointMazeEnv


def _release_gl_context() -> None:
    """Make no EGL context current on this thread (the Renderer makes its own current again when it renders).
    Other MuJoCo GL backends (osmesa, glfw) are left alone."""
    if os.environ.get("MUJOCO_GL") != "egl":
        return
    from mujoco import egl

    if egl.EGL_DISPLAY is not None:
        egl.EGL.eglMakeCurrent(egl.EGL_DISPLAY, egl.EGL.EGL_NO_SURFACE, egl.EGL.EGL_NO_SURFACE, egl.EGL.EGL_NO_CONTEXT)


class PointMaze(World):
    """One PointMaze environment (positions in metres, y up, origin at the maze centre).

    Args:
        maze: "umaze", "medium" or "large".
        image_size: camera image side in px.
        goal_far: sample the goal among the cells farthest (in maze moves) from the start cell,
            for long-horizon tasks; otherwise uniform over free cells like the environment.
        far_fraction: with ``goal_far``, goal cells are those at least this fraction of the
            largest maze distance from the start cell.
        goal_cells: sample the goal exactly this many maze moves (4-neighbour cells) from the start cell,
            or as far as the maze allows; overrides goal_far (the task length of the hierarchy benchmark).
        action_repeat: MuJoCo steps per ``step`` (the force is held); dt = 0.01 s x this.
        max_steps: episode limit for evaluation (default: the registered env's limit / action_repeat).
        show_target: draw the goal region (red disc) in every image; False leaves the goal to the
            goal image alone.
    """

    position_unit = "m"

    def __init__(
        self,
        maze: str = "umaze",
        image_size: int = 64,
        goal_far: bool = False,
        far_fraction: float = 0.75,
        goal_cells: int | None = None,
        action_repeat: int = 1,
        max_steps: int | None = None,
        show_target: bool = True,
    ) -> None:
        if maze not in MAZES:
            raise ValueError(f"maze must be one of {list(MAZES)}, got {maze!r}")
        if image_size < 8:
            raise ValueError(f"image_size must be >= 8 px, got {image_size}")
        if action_repeat < 1:
            raise ValueError(f"action_repeat must be >= 1, got {action_repeat}")
        if not 0.0 <= far_fraction <= 1.0:
            raise ValueError(f"far_fraction must be in [0, 1], got {far_fraction}")
        if goal_cells is not None and goal_cells < 1:
            raise ValueError(f"goal_cells must be >= 1 maze move, got {goal_cells}")
        mujoco, maps, env_cls = _import_simulator()
        self._mj = mujoco
        map_name, env_limit = MAZES[maze]
        self.maze_name = maze
        self.maze_map = getattr(maps, map_name)
        self.goal_far = bool(goal_far)
        self.far_fraction = float(far_fraction)
        self.goal_cells = None if goal_cells is None else int(goal_cells)
        self.action_repeat = int(action_repeat)
        self.show_target = bool(show_target)
        self._env = env_cls(maze_map=self.maze_map, continuing_task=False)
        self._sim = self._env.point_env  # the MujocoEnv that owns model and data
        self.model, self.data = self._sim.model, self._sim.data
        self.maze = self._env.maze
        self.spec = WorldSpec(
            name="point_maze",
            image_size=int(image_size),
            action_dim=2,
            action_low=(-1.0, -1.0),
            action_high=(1.0, 1.0),
            proprio_dim=4,
            state_dim=4,
            max_steps=int(max_steps if max_steps is not None else -(-env_limit // self.action_repeat)),
            dt=SIM_DT * self.action_repeat,
        )
        self._free_cells = [(i, j) for i, row in enumerate(self.maze_map) for j, cell in enumerate(row) if cell != 1]
        self._agent_site = self.model.site("particle_site").id
        self._target_site = self.model.site("target").id
        self._agent_rgba = self.model.site_rgba[self._agent_site].copy()
        self._target_rgba = self.model.site_rgba[self._target_site].copy()
        # The environment's goal marker is a 0.2 m sphere floating above the ball, which would hide the
        # ball in the goal image; draw it instead as a flat disc of the success radius on the floor.
        self.model.site_type[self._target_site] = mujoco.mjtGeom.mjGEOM_CYLINDER
        self.model.site_size[self._target_site] = (SUCCESS_THRESHOLD, 0.002, 0.0)
        if not self.show_target:
            self.model.site_rgba[self._target_site, 3] = 0.0
        self._wall_geoms = {
            self.model.geom(g).id for g in range(self.model.ngeom) if self.model.geom(g).name.startswith("block_")
        }
        self._setup_camera()
        self._goal = np.zeros(2)
        self._has_reset = False

    # ------------------------------------------------------------------ rendering
    def _setup_camera(self) -> None:
        mj = self._mj
        self.model.vis.quality.offsamples = 0  # must precede the Renderer's framebuffer
        side = self.spec.image_size
        self._render_lock = threading.Lock()
        self._renderer = mj.Renderer(self.model, side, side)
        _release_gl_context()  # current on this thread since the Renderer made it: let any thread render
        self._extent = float(max(self.maze.map_length, self.maze.map_width) * self.maze.maze_size_scaling)
        self.model.vis.global_.fovy = self._extent  # orthographic: the vertical extent in metres
        cam = mj.MjvCamera()
        cam.type = mj.mjtCamera.mjCAMERA_FREE
        cam.orthographic = 1
        cam.lookat[:] = (0.0, 0.0, 0.0)  # the maze is centred on the origin
        cam.distance = 2.0 * self._extent
        cam.elevation = -90.0  # straight down
        cam.azimuth = 90.0  # +x to the right, +y up in the image
        self._camera = cam

    def _render(self) -> np.ndarray:
        mj = self._mj
        with self._render_lock:
            self._renderer.update_scene(self.data, camera=self._camera)
            flags = self._renderer.scene.flags
            flags[mj.mjtRndFlag.mjRND_SHADOW] = 0
            flags[mj.mjtRndFlag.mjRND_REFLECTION] = 0
            flags[mj.mjtRndFlag.mjRND_SKYBOX] = 0
            try:
                return self._renderer.render().copy()
            finally:
                _release_gl_context()

    def _render_at(self, xy: np.ndarray) -> np.ndarray:
        """The camera image with the ball placed at ``xy`` (state restored afterwards)."""
        qpos, qvel = self.data.qpos.copy(), self.data.qvel.copy()
        self.data.qpos[:2] = xy
        self.data.qvel[:] = 0.0
        self._mj.mj_forward(self.model, self.data)
        try:
            return self._render()
        finally:
            self.data.qpos[:], self.data.qvel[:] = qpos, qvel
            self._mj.mj_forward(self.model, self.data)

    def world_to_pixel(self, xy: np.ndarray) -> np.ndarray:
        """Maze positions (..., 2) [x, y] in metres to image [col, row] (float; pixel centres at integers)."""
        xy = np.asarray(xy, dtype=np.float64)
        scale = self.spec.image_size / self._extent
        col = (xy[..., 0] + self._extent / 2) * scale - 0.5
        row = (self._extent / 2 - xy[..., 1]) * scale - 0.5
        return np.stack([col, row], axis=-1)

    def pixel_to_world(self, colrow: np.ndarray) -> np.ndarray:
        """Inverse of ``world_to_pixel``."""
        colrow = np.asarray(colrow, dtype=np.float64)
        scale = self.spec.image_size / self._extent
        x = (colrow[..., 0] + 0.5) / scale - self._extent / 2
        y = self._extent / 2 - (colrow[..., 1] + 0.5) / scale
        return np.stack([x, y], axis=-1)

    # ------------------------------------------------------------------ episode control
    def reset(self, seed: int | None = None, goal: np.ndarray | None = None, start: np.ndarray | None = None) -> Observation:
        """Start an episode; ``goal`` / ``start`` are [x, y] in metres (or [x, y, vx, vy]), sampled when None."""
        rng = np.random.default_rng(seed)
        self._env.reset(seed=None if seed is None else int(seed))  # rebuilds data; its own sampling is overridden
        start_xy = self._check_point(start, "start")
        goal_xy = self._check_point(goal, "goal")
        if start_xy is None:
            start_xy = self._noisy_centre(rng, self._free_cells[rng.integers(len(self._free_cells))])
        if goal_xy is None:
            goal_xy = self._sample_goal(rng, start_xy)
        self._goal = goal_xy
        self._start_xy = np.asarray(start_xy, dtype=np.float64).copy()
        self._env.goal = goal_xy.copy()
        self._env.update_target_site_pos()
        self.model.site_pos[self._target_site, 2] = TARGET_Z
        self._sim.set_state(np.asarray(start_xy, dtype=np.float64), np.zeros(2))
        self._has_reset = True
        return self._observe()

    def step(self, action: np.ndarray) -> tuple[Observation, StepInfo]:
        """Apply a force (clipped to [-1, 1]^2) for ``action_repeat`` MuJoCo steps."""
        if not self._has_reset:
            raise RuntimeError("call reset() before step()")
        a = np.asarray(action, dtype=np.float64).reshape(-1)
        if a.shape != (2,) or not np.isfinite(a).all():
            raise ValueError(f"action must be 2 finite numbers [fx, fy], got {action!r}")
        clipped = np.clip(a, -1.0, 1.0)
        for _ in range(self.action_repeat):
            self._sim.step(clipped)
        obs = self._observe()
        return obs, StepInfo(
            success=self.is_success(),
            true_state=self.true_state(),
            clipped=bool(np.any(clipped != a)),
            extra={"blocked": self._touching_wall()},
        )

    def _observe(self) -> Observation:
        return Observation(image=self._render(), proprio=self.true_state())

    def _touching_wall(self) -> bool:
        contacts = self.data.contact[: self.data.ncon]
        return any(int(g1) in self._wall_geoms or int(g2) in self._wall_geoms for g1, g2 in zip(contacts.geom1, contacts.geom2))

    # ------------------------------------------------------------------ views
    def goal_observation(self) -> Observation:
        return self.observation_at(self._goal)

    def observation_at(self, xy: np.ndarray) -> Observation:
        """What the camera and proprio would give with the ball at rest at ``xy`` (the world's state unchanged):
        the goal image is this at the goal; tolerance calibration renders points around a goal with it."""
        xy = np.asarray(xy, np.float64)[:2]
        return Observation(image=self._render_at(xy), proprio=np.concatenate([xy, np.zeros(2)]).astype(np.float32))

    def is_free(self, xy: np.ndarray) -> bool:
        """Whether ``xy`` lies in a free cell of the maze."""
        return self.cell_of(xy) in self._free_cells

    def is_success(self) -> bool:
        return bool(np.linalg.norm(self.data.qpos[:2] - self._goal) <= SUCCESS_THRESHOLD)

    def state_success(self, goal_state: np.ndarray, state: np.ndarray) -> bool:
        return bool(np.linalg.norm(np.asarray(state)[:2] - np.asarray(goal_state)[:2]) <= SUCCESS_THRESHOLD)

    def true_state(self) -> np.ndarray:
        return np.concatenate([self.data.qpos[:2], self.data.qvel[:2]]).astype(np.float32)

    @property
    def goal_state(self) -> np.ndarray:
        return np.concatenate([self._goal, np.zeros(2)]).astype(np.float32)

    def task_length(self) -> int:
        """Maze moves (4-neighbour cells) from the start cell to the goal cell this episode: the realised task
        length (``goal_cells`` is lowered to the farthest reachable cell when the maze has none that far)."""
        return int(self.cell_distances(self.cell_of(self._start_xy)).get(self.cell_of(self._goal), -1))

    def render_map(self) -> np.ndarray:
        """The maze from the camera without ball and goal marker."""
        agent_alpha = self.model.site_rgba[self._agent_site, 3]
        target_alpha = self.model.site_rgba[self._target_site, 3]
        self.model.site_rgba[[self._agent_site, self._target_site], 3] = 0.0
        try:
            return self._render()
        finally:
            self.model.site_rgba[self._agent_site, 3] = agent_alpha
            self.model.site_rgba[self._target_site, 3] = target_alpha

    def close(self) -> None:
        self._renderer.close()
        self._env.close()

    # ------------------------------------------------------------------ sampling
    def cell_of(self, xy: np.ndarray) -> tuple[int, int]:
        """(row, col) of the maze cell containing [x, y]."""
        i, j = self.maze.cell_xy_to_rowcol(np.asarray(xy, dtype=np.float64))
        return int(i), int(j)

    def cell_distances(self, cell: tuple[int, int]) -> dict[tuple[int, int], int]:
        """Moves (4-neighbour) from ``cell`` to every reachable free cell."""
        free = set(self._free_cells)
        dist = {cell: 0}
        queue = deque([cell])
        while queue:
            i, j = queue.popleft()
            for nxt in ((i + 1, j), (i - 1, j), (i, j + 1), (i, j - 1)):
                if nxt in free and nxt not in dist:
                    dist[nxt] = dist[(i, j)] + 1
                    queue.append(nxt)
        return dist

    def _noisy_centre(self, rng: np.random.Generator, cell: tuple[int, int]) -> np.ndarray:
        centre = self.maze.cell_rowcol_to_xy(np.asarray(cell))
        noise = rng.uniform(-POSITION_NOISE, POSITION_NOISE, size=2) * self.maze.maze_size_scaling
        return np.asarray(centre, dtype=np.float64) + noise

    def _sample_goal(self, rng: np.random.Generator, start: np.ndarray) -> np.ndarray:
        cells = self._free_cells
        if self.goal_cells is not None or self.goal_far:
            dist = self.cell_distances(self.cell_of(start))
            if self.goal_cells is not None:
                wanted = min(self.goal_cells, max(dist.values()))
                cells = [c for c, d in dist.items() if d == wanted]
            else:
                wanted = max(1, int(np.ceil(self.far_fraction * max(dist.values()))))
                cells = [c for c, d in dist.items() if d >= wanted] or cells
        for _ in range(100):
            goal = self._noisy_centre(rng, cells[rng.integers(len(cells))])
            if np.linalg.norm(goal - start) > MIN_START_GOAL_DISTANCE:
                return goal
        raise RuntimeError(f"could not sample a goal farther than {MIN_START_GOAL_DISTANCE} m from start {start}")

    def _check_point(self, point: np.ndarray | None, what: str) -> np.ndarray | None:
        if point is None:
            return None
        arr = np.asarray(point, dtype=np.float64).reshape(-1)
        if arr.shape not in ((2,), (4,)) or not np.isfinite(arr).all():
            raise ValueError(f"{what} must be [x, y] (or [x, y, vx, vy]) in metres, got {point!r}")
        i, j = self.cell_of(arr[:2])
        inside = 0 <= i < self.maze.map_length and 0 <= j < self.maze.map_width
        if not inside or self.maze_map[i][j] == 1:
            raise ValueError(f"{what} {arr[:2].tolist()} is in a wall or outside the {self.maze_name} maze")
        return arr[:2].copy()
