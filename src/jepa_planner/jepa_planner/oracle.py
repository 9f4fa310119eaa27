"""Oracle world models: a hand-made latent (the agent position) and the true point-mass dynamics.

They implement ``jepa_world_model.protocol.WorldModel`` without learning, so planners, the hierarchy and
the evaluation command can be tested in closed loop, and benchmarks get an upper bound.

Latent: the agent position [x, y] in arena px, read from the image as the intensity centroid of the
agent channel. Level 0 action: ``frameskip`` raw displacements stacked; each is clipped like the world
does (box, then L2 norm <= max_step) and moved with wall clipping. Level k > 0: a macro-action = the
total displacement over ``stride * frameskip`` raw steps, followed as equal straight sub-steps.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

# Same stand-off from a wall as jepa_sim's layout.move (px), so predictions match the world.
from jepa_sim.worlds.layout import STOP_GAP
from jepa_world_model.protocol import LevelSpec, sliding_rollout

AGENT_CHANNEL = 0


def move_with_walls(pos: torch.Tensor, disp: torch.Tensor, rects: torch.Tensor) -> torch.Tensor:
    """Torch port of the slab test of ``RectLayout.move``: go straight, stop just before the first wall.

    Args:
        pos: (N, 2) start positions; disp: (N, 2) displacements; rects: (R, 4) walls [x0, y0, x1, y1].

    Returns:
        (N, 2) new positions.
    """
    p, d = pos[:, None, :], disp[:, None, :]
    lo, hi = rects[None, :, :2], rects[None, :, 2:]
    moving = d != 0
    safe_d = torch.where(moving, d, torch.ones_like(d))
    t1, t2 = (lo - p) / safe_d, (hi - p) / safe_d
    inside_slab = (p >= lo) & (p <= hi)
    inf = torch.full_like(t1, float("inf"))
    # An axis without motion never limits entry if inside its slab, and rules out a hit otherwise.
    t_near = torch.where(moving, torch.minimum(t1, t2), torch.where(inside_slab, -inf, inf))
    t_far = torch.where(moving, torch.maximum(t1, t2), torch.where(inside_slab, inf, -inf))
    t_enter, t_exit = t_near.amax(dim=2), t_far.amin(dim=2)
    hit = (t_enter <= t_exit) & (t_exit >= 0.0) & (t_enter <= 1.0)
    t_hit = torch.where(hit, t_enter.clamp_min(0.0), inf[..., 0]).amin(dim=1)
    blocked = t_hit <= 1.0
    length = disp.norm(dim=1)
    safe_len = torch.where(length > 0, length, torch.ones_like(length))
    frac = torch.where(blocked, (torch.where(blocked, t_hit, 0.0) - STOP_GAP / safe_len).clamp_min(0.0), torch.ones_like(length))
    return pos + frac[:, None] * disp


def clip_displacement(disp: torch.Tensor, max_step: float) -> torch.Tensor:
    """Box then L2-norm clipping of (N, 2) displacements, as the point-mass world applies it."""
    boxed = disp.clamp(-max_step, max_step)
    norm = boxed.norm(dim=1, keepdim=True)
    return boxed * torch.clamp(max_step / norm.clamp_min(1e-12), max=1.0)


def peak_of_gaussian_dot(w: torch.Tensor) -> torch.Tensor:
    """Sub-pixel (col, row) centre of a Gaussian dot in (B, H, W) intensities.

    A 3-point parabola through the log intensities around the brightest pixel is exact for a Gaussian
    and, unlike a centroid, unbiased where the dot is cut by the image border.
    """
    b, h, wd = w.shape
    flat = w.flatten(1).argmax(dim=1)
    r, c = flat // wd, flat % wd
    logw = w.clamp_min(1.0).log()
    idx = torch.arange(b)

    def offset(left: torch.Tensor, mid: torch.Tensor, right: torch.Tensor) -> torch.Tensor:
        curv = left - 2 * mid + right
        return torch.where(curv < -1e-6, 0.5 * (left - right) / curv.clamp(max=-1e-6), torch.zeros_like(mid)).clamp(-0.5, 0.5)

    cl, cr = (c - 1).clamp(0, wd - 1), (c + 1).clamp(0, wd - 1)
    rl, rr = (r - 1).clamp(0, h - 1), (r + 1).clamp(0, h - 1)
    mid = logw[idx, r, c]
    # A neighbour outside the image makes the curvature zero, so that axis keeps the integer pixel.
    left_c = torch.where(c > 0, logw[idx, r, cl], 2 * mid - logw[idx, r, cr])
    right_c = torch.where(c < wd - 1, logw[idx, r, cr], 2 * mid - logw[idx, r, cl])
    left_r = torch.where(r > 0, logw[idx, rl, c], 2 * mid - logw[idx, rr, c])
    right_r = torch.where(r < h - 1, logw[idx, rr, c], 2 * mid - logw[idx, rl, c])
    col = c.float() + offset(left_c, mid, right_c)
    row = r.float() + offset(left_r, mid, right_r)
    return torch.stack([col, row], dim=1)


class OracleWorldModel:
    """Exact model of a point-mass world (any ``RectLayout``): latent = agent position in px.

    Args:
        rects: (R, 4) walls of the layout.
        arena_size: arena side in px; image_size: camera image side in px.
        max_step: L2 bound of a raw action (px).
        frameskip: raw steps per level-0 model step.
        strides: strides of levels 1.. in level-0 steps.
        context: context length reported to planners.
    """

    def __init__(
        self,
        rects: np.ndarray,
        arena_size: int,
        image_size: int,
        max_step: float = 2.45,
        frameskip: int = 1,
        strides: tuple[int, ...] = (),
        context: int = 1,
    ) -> None:
        if frameskip < 1 or any(s < 1 for s in strides):
            raise ValueError(f"frameskip and strides must be >= 1, got {frameskip}, {strides}")
        self.rects = torch.as_tensor(np.asarray(rects, dtype=np.float32)).reshape(-1, 4)
        self.arena_size, self.image_size = float(arena_size), int(image_size)
        self.scale = image_size / arena_size
        self.max_step, self.frameskip, self.context = float(max_step), int(frameskip), int(context)
        self.latent_shape = (2,)
        self.latent_mean = torch.full((2,), arena_size / 2.0)
        self.latent_std = torch.full((2,), arena_size / 4.0)
        m = self.max_step
        self.levels = [LevelSpec(0, 1, 2 * frameskip, (-m,) * 2 * frameskip, (m,) * 2 * frameskip)]
        for k, stride in enumerate(strides, start=1):
            reach = m * stride * frameskip
            self.levels.append(LevelSpec(k, int(stride), 2, (-reach, -reach), (reach, reach)))
        self.predict_calls = 0

    @classmethod
    def from_world(cls, world: Any, frameskip: int = 1, strides: tuple[int, ...] = (), **kwargs: Any) -> OracleWorldModel:
        """The oracle of a built-in point-mass world (``two_rooms``, ``multi_room``)."""
        batch = getattr(world, "batch", None)
        if batch is None or not hasattr(batch, "layout"):
            raise ValueError(
                f"the oracle model needs a point-mass world with a layout (two_rooms, multi_room), got {type(world).__name__}"
            )
        return cls(batch.layout.rects, batch.layout.size, batch.spec.image_size, batch.max_step, frameskip, strides, **kwargs)

    def encode(self, images: np.ndarray | torch.Tensor) -> torch.Tensor:
        """uint8 (B, H, W, 3) -> (B, 2) positions in px (intensity centroid of the agent channel)."""
        x = torch.as_tensor(np.asarray(images))
        if x.dim() == 3:
            x = x.unsqueeze(0)
        if x.dim() != 4 or x.shape[1] != self.image_size or x.shape[2] != self.image_size or x.shape[3] != 3:
            raise ValueError(f"images must be (B, {self.image_size}, {self.image_size}, 3) uint8, got {tuple(x.shape)}")
        w = x[..., AGENT_CHANNEL].float()
        if (w.flatten(1).amax(dim=1) <= 0).any():
            raise ValueError("no agent visible in the agent channel of an image; cannot locate it")
        return (peak_of_gaussian_dot(w) + 0.5) / self.scale

    def predict(self, z_ctx: torch.Tensor, action: torch.Tensor, level: int = 0) -> torch.Tensor:
        self.predict_calls += 1
        pos = z_ctx[:, -1]
        if level == 0:
            raw = action.reshape(action.shape[0], self.frameskip, 2)
            for i in range(self.frameskip):
                pos = move_with_walls(pos, clip_displacement(raw[:, i], self.max_step), self.rects)
            return pos
        spec = self._level(level)
        n = spec.stride * self.frameskip
        step = action / n
        for _ in range(n):
            pos = move_with_walls(pos, clip_displacement(step, self.max_step), self.rects)
        return pos

    def rollout(self, z_ctx: torch.Tensor, actions: torch.Tensor, level: int = 0) -> torch.Tensor:
        return sliding_rollout(self, z_ctx, actions, level)

    def encode_macro(self, actions: torch.Tensor, level: int = 1) -> torch.Tensor:
        """Level-0 chunks (B, stride, 2 * frameskip) -> total displacement (B, 2)."""
        self._level(level)
        return actions.reshape(actions.shape[0], -1, 2).sum(dim=1)

    def _level(self, level: int) -> LevelSpec:
        for spec in self.levels:
            if spec.level == level:
                return spec
        raise ValueError(f"the oracle model has levels {[s.level for s in self.levels]}, not {level}")


class OracleTwoRoomsModel(OracleWorldModel):
    """The oracle of the two-rooms world (same layout options as ``jepa_sim``'s ``TwoRooms``)."""

    def __init__(
        self,
        frameskip: int = 1,
        strides: tuple[int, ...] = (),
        context: int = 1,
        size: int = 64,
        image_size: int | None = None,
        max_step: float = 2.45,
        **layout_kwargs: Any,
    ) -> None:
        from jepa_sim.worlds.two_rooms import two_rooms_layout

        layout = two_rooms_layout(size, **layout_kwargs)
        super().__init__(layout.rects, size, image_size or size, max_step, frameskip, strides, context)
