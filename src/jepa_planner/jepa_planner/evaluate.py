"""Closed-loop evaluation of a planner profile with a world model in a built-in world (``jepa-evaluate``).

Each episode: encode the observation and the goal image, plan, execute the plan's raw actions for
``replan_every`` raw steps (each model step is ``frameskip`` raw actions), replan, until success or
``max_steps`` raw steps.
Writes ``evaluation.json`` (success rate with a Wilson 95% interval, steps to goal, planning time per
replan, model evaluations per episode, success by realised task length), ``trajectories.png`` (in the
world's position units) and ``episode.gif``.

The world is built with the settings the bundle was trained with (its manifest's data provenance:
world name and constructor options), then the evaluation defaults, then ``--world-arg`` (each
override of a bundle setting is printed), then ``--factor`` factors of variation (camera and world,
see ``jepa_sim.factors``). By default starts and goals are placed uniformly, near walls or in
corners (``placement: mixed``); ``--factor placement=uniform`` gives the uniform-only figure.
"""

from __future__ import annotations

import argparse
import json
import math
import statistics
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
import yaml
from tqdm import tqdm

from jepa_common.paths import portable_path
from jepa_planner.world_defaults import REPO, missing_bundle_hint
from jepa_sim.machine import machine_info

DEFAULT_WORLD_KWARGS: dict[str, dict[str, Any]] = {
    "two_rooms": {"goal_in_other_room": True, "placement": "mixed"},
    "multi_room": {"goal_far": True, "placement": "mixed"},
}


def wilson_interval(successes: int, n: int, z: float = 1.96) -> tuple[float, float]:
    """Wilson score interval of a binomial proportion (95% for z = 1.96)."""
    if n == 0:
        return 0.0, 1.0
    p = successes / n
    denom = 1 + z * z / n
    centre = (p + z * z / (2 * n)) / denom
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / denom
    # all or none: the bound on that side is exactly 1 or 0 (in floating point centre +- half can miss it by 1e-16,
    # which put the observed rate outside its own interval and a plot's error bar below zero)
    return (0.0 if successes == 0 else max(0.0, centre - half)), (1.0 if successes == n else min(1.0, centre + half))


@dataclass
class EpisodeRecord:
    """What happened in one episode (positions are true states, for plots only)."""

    seed: int
    success: bool
    steps: int
    replans: int
    model_steps: int
    plan_times: list[float]
    final_distance: float  # of the position part of the state only (world units), never velocities
    trajectory: list[list[float]]
    goal: list[float]
    task_length: int | None = None  # realised task length (doors, maze cells) when the world reports it
    escalations: int = 0  # times the profile's horizon escalation fired (HorizonEscalation)
    frames: list[dict[str, Any]] = field(default_factory=list, repr=False)  # per replan, for the GIF


def encode_observation(model, obs) -> torch.Tensor:
    """One observation's latent; its proprio goes along when the model's encoder fuses it."""
    if getattr(model, "uses_proprio", False):
        return model.encode(obs.image[None], np.asarray(obs.proprio, np.float32)[None])[0]
    return model.encode(obs.image[None])[0]


def run_episode(
    model, planner, world, seed: int, max_steps: int, replan_every: int, record: bool = False
) -> tuple[EpisodeRecord, list[tuple[np.ndarray, np.ndarray]]]:
    """One closed-loop episode driven by the same ``MPCController`` as the actor node.

    Every raw control step encodes the camera image; the controller replans every ``replan_every``
    raw steps and otherwise executes the plan's stacked raw actions.

    Returns:
        (the record, (latent, true state) pairs seen, for fitting a position probe).
    """
    from jepa_planner.controller import MPCController

    obs = world.reset(seed=seed)
    planner.reset(seed)
    controller = MPCController(model, planner, replan_every=replan_every)
    controller.set_goal(encode_observation(model, world.goal_observation()))
    trajectory = [world.true_state().tolist()]
    pairs: list[tuple[np.ndarray, np.ndarray]] = []
    steps, replans, model_steps, success = 0, 0, 0, world.is_success()
    plan_times: list[float] = []
    frames: list[dict[str, Any]] = []
    while not success and steps < max_steps:
        z = encode_observation(model, obs)
        if steps % model.frameskip == 0:
            pairs.append((z.numpy(), world.true_state().copy()))
        start = time.perf_counter()
        control = controller.step(z)
        if control.replanned:
            result = control.plan
            plan_times.append(time.perf_counter() - start)
            replans += 1
            model_steps += result.model_steps_this_call()
            if record:
                frames.append(
                    {
                        "image": obs.image.copy(),
                        "state": world.true_state().copy(),
                        "latents": result.latents.numpy(),
                        "subgoal": None if result.subgoal is None else result.subgoal.numpy(),
                        "upper": None if result.parent is None else result.parent.latents.numpy(),
                        "imagined": _decode(model, result.latents),
                    }
                )
        obs, info = world.step(control.action.astype(np.float64))
        steps += 1
        trajectory.append(info.true_state.tolist())
        success = info.success
    final = float(np.linalg.norm(world.true_state()[:2] - world.goal_state[:2]))
    task_length = world.task_length() if hasattr(world, "task_length") else None
    rec = EpisodeRecord(
        seed, bool(success), steps, replans, model_steps, plan_times, final, trajectory, world.goal_state.tolist(),
        task_length, controller.escalations, frames,
    )
    return rec, pairs


def _decode(model, latents: torch.Tensor) -> np.ndarray | None:
    """Imagined frames (H, h, w, 3) uint8 when the model has a decoder."""
    decode = getattr(model, "decode", None)
    if decode is None:
        return None
    with torch.no_grad():
        images = decode(latents)
    return np.asarray(images.cpu().numpy() if isinstance(images, torch.Tensor) else images)


def fit_position_probe(pairs: list[tuple[np.ndarray, np.ndarray]]) -> tuple[np.ndarray, float]:
    """Ridge linear probe latent -> position [x, y]; returns (weights (D + 1, 2), R^2 on the fitting data)."""
    z = np.stack([p[0].reshape(-1) for p in pairs]).astype(np.float64)
    y = np.stack([p[1][:2] for p in pairs]).astype(np.float64)
    x = np.concatenate([z, np.ones((z.shape[0], 1))], axis=1)
    w = np.linalg.solve(x.T @ x + 1e-6 * np.eye(x.shape[1]), x.T @ y)
    resid = y - x @ w
    r2 = 1.0 - resid.var(axis=0).sum() / max(y.var(axis=0).sum(), 1e-12)
    return w, float(r2)


def apply_probe(w: np.ndarray, latents: np.ndarray) -> np.ndarray:
    """Positions (N, 2) from latents (N, *L)."""
    z = latents.reshape(latents.shape[0], -1)
    return np.concatenate([z, np.ones((z.shape[0], 1))], axis=1) @ w


def summarise(records: list[EpisodeRecord]) -> dict[str, Any]:
    """Success rate with its Wilson interval, steps to goal, planning time per replan, model evaluations."""
    n, wins = len(records), sum(r.success for r in records)
    lo, hi = wilson_interval(wins, n)
    win_steps = [r.steps for r in records if r.success]
    times = sorted(t for r in records for t in r.plan_times)
    return {
        "episodes": n,
        "success_rate": wins / n if n else 0.0,
        "success_ci95": [lo, hi],
        "steps_to_goal_median": statistics.median(win_steps) if win_steps else None,
        "steps_to_goal_mean": statistics.fmean(win_steps) if win_steps else None,
        "plan_time_median_s": statistics.median(times) if times else None,
        "plan_time_p95_s": float(np.percentile(times, 95)) if times else None,
        "replans_per_episode": statistics.fmean(r.replans for r in records) if records else 0.0,
        "escalations_per_episode": statistics.fmean(r.escalations for r in records) if records else 0.0,
        "model_evals_per_episode": statistics.fmean(r.model_steps for r in records) if records else 0.0,
        "final_distance_mean": statistics.fmean(r.final_distance for r in records) if records else None,
        "by_task_length": by_task_length(records),
    }


def by_task_length(records: list[EpisodeRecord]) -> dict[str, dict[str, Any]]:
    """Success per realised task length (episodes whose world reports one); {} otherwise."""
    out: dict[str, dict[str, Any]] = {}
    for length in sorted({r.task_length for r in records if r.task_length is not None}):
        group = [r for r in records if r.task_length == length]
        wins = sum(r.success for r in group)
        out[str(length)] = {"episodes": len(group), "success_rate": wins / len(group), "success_ci95": list(wilson_interval(wins, len(group)))}
    return out


def evaluate(
    model,
    planner,
    world,
    episodes: int,
    seed: int = 0,
    max_steps: int | None = None,
    replan_every: int | None = None,
    progress: bool = True,
    gif_episode: int | None = 0,
) -> tuple[dict[str, Any], list[EpisodeRecord], tuple[np.ndarray, float]]:
    """Run ``episodes`` closed-loop episodes (seeds seed, seed+1, ...), replanning every ``replan_every``
    raw steps (default: one model step).

    Returns:
        (summary dict, episode records, (position probe weights, probe R^2)).
    """
    level0 = next(s for s in model.levels if s.level == 0)
    if level0.action_dim != model.frameskip * world.spec.action_dim:
        raise ValueError(
            f"model level-0 action_dim {level0.action_dim} != frameskip {model.frameskip} x world action_dim "
            f"{world.spec.action_dim}: the model was not trained on this world"
        )
    max_steps = int(max_steps or world.spec.max_steps)
    replan_every = int(replan_every or model.frameskip)
    records, pairs = [], []
    for ep in tqdm(range(episodes), desc="episodes", disable=not progress):
        rec, ep_pairs = run_episode(model, planner, world, seed + ep, max_steps, replan_every, record=(ep == gif_episode))
        records.append(rec)
        pairs += ep_pairs
    return summarise(records), records, fit_position_probe(pairs)


# ----------------------------------------------------------------------------------------------- pictures
def arena_size(world) -> float:
    """Side of the world's arena in world px (the units of true positions); the image side without a layout."""
    layout = getattr(world, "layout", None)
    return float(layout.size) if layout is not None else float(world.spec.image_size)


def map_extent(world) -> tuple[float, float, float, float]:
    """(left, right, bottom, top) of the camera/map image in the world's position units, for ``imshow(extent=...)``.

    Uses the world's ``pixel_to_world`` (PointMaze: metres, y up), else the point-mass arena in px.
    """
    to_world = getattr(world, "pixel_to_world", None)
    if to_world is None:
        size = arena_size(world)
        return 0.0, size, size, 0.0
    side = world.spec.image_size
    (x0, y0), (x1, y1) = np.asarray(to_world(np.array([[-0.5, -0.5], [side - 0.5, side - 0.5]])), dtype=float)
    return float(x0), float(x1), float(y1), float(y0)


def _frame_axes(ax, world) -> None:
    left, right, bottom, top = map_extent(world)
    ax.set_xlim(left, right)
    ax.set_ylim(bottom, top)


def layout_varies(world: Any) -> bool:
    """Whether ``world`` (or the batch under it, through a camera wrapper) draws a new layout every episode."""
    return bool(getattr(getattr(world, "batch", None), "layout_varies", False))


def plot_trajectories(world, records: list[EpisodeRecord], path: Path, title: str = "") -> None:
    """Trajectories over the map: green = success, red = failure; circle = start, star = goal.

    Where the world draws a new layout every episode (``door_y=random``) the map is the last episode's, and the
    title says so.
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(5, 5))
    ax.imshow(world.render_map(), extent=map_extent(world))
    for r in records:
        traj = np.asarray(r.trajectory)
        colour = "tab:green" if r.success else "tab:red"
        ax.plot(traj[:, 0], traj[:, 1], color=colour, lw=1.2, alpha=0.9)
        ax.plot(traj[0, 0], traj[0, 1], "o", color=colour, ms=4)
        ax.plot(r.goal[0], r.goal[1], "*", color="gold", ms=9, mec="k", mew=0.5)
    _frame_axes(ax, world)
    unit = getattr(world, "position_unit", "px")
    ax.set_xlabel(f"x ({unit})", fontsize=8)
    ax.set_ylabel(f"y ({unit})", fontsize=8)
    if layout_varies(world):
        title = f"{title}\n(layout differs per episode; map of the last one)"
    ax.set_title(title, fontsize=9)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def write_gif(world, record: EpisodeRecord, probe: np.ndarray, path: Path, max_frames: int = 60) -> int:
    """GIF of one episode: camera with goal and planned path (probe positions); imagined frames when decodable.

    Returns:
        number of frames written.
    """
    import imageio.v2 as imageio
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    if not record.frames:
        raise ValueError("the episode has no recorded frames (run it with record=True)")
    frames = record.frames[:: max(1, math.ceil(len(record.frames) / max_frames))]
    has_imagined = frames[0]["imagined"] is not None
    out = []
    for i, fr in enumerate(frames):
        cols = 2 if has_imagined else 1
        fig, axes = plt.subplots(1, cols, figsize=(3.2 * cols, 3.4))
        ax = axes[0] if has_imagined else axes
        ax.imshow(fr["image"], extent=map_extent(world))
        path_xy = apply_probe(probe, fr["latents"])
        start = fr["state"][:2]
        ax.plot([start[0], *path_xy[:, 0]], [start[1], *path_xy[:, 1]], "-o", color="cyan", ms=2, lw=1, label="plan")
        if fr["upper"] is not None:
            up = apply_probe(probe, fr["upper"])
            ax.plot([start[0], *up[:, 0]], [start[1], *up[:, 1]], "--s", color="orange", ms=3, lw=1, label="high level")
        if fr["subgoal"] is not None:
            sg = apply_probe(probe, fr["subgoal"][None])[0]
            ax.plot(sg[0], sg[1], "D", color="orange", ms=5, mec="k", mew=0.5, label="subgoal")
        ax.plot(record.goal[0], record.goal[1], "*", color="gold", ms=10, mec="k", mew=0.5, label="goal")
        _frame_axes(ax, world)
        ax.set_title(f"replan {i * max(1, math.ceil(len(record.frames) / max_frames))}", fontsize=8)
        ax.axis("off")
        if has_imagined:
            strip = np.concatenate(list(fr["imagined"][:4]), axis=1)
            axes[1].imshow(strip)
            axes[1].set_title("imagined frames", fontsize=8)
            axes[1].axis("off")
        fig.tight_layout()
        fig.canvas.draw()
        out.append(np.asarray(fig.canvas.buffer_rgba())[..., :3].copy())
        plt.close(fig)
    imageio.mimsave(path, out, duration=0.25, loop=0)
    return len(out)


# ----------------------------------------------------------------------------------------------- CLI
def load_model(spec: str, world, backend: str = "torch", frameskip: int = 5, strides: tuple[int, ...] = (4,)):
    """``oracle`` (exact point-mass model of ``world``) or a model bundle directory."""
    if spec == "oracle":
        from jepa_planner.oracle import OracleWorldModel

        return OracleWorldModel.from_world(world, frameskip=frameskip, strides=strides)
    path = Path(spec)
    if not path.exists():
        raise FileNotFoundError(f"model bundle {path} does not exist (pass a bundle directory or 'oracle')")
    try:
        from jepa_world_model.bundle import load_bundle
    except ImportError as err:  # the bundle loader ships with jepa_world_model
        raise ValueError(f"cannot load bundle {path}: jepa_world_model.bundle is unavailable ({err})") from err
    return load_bundle(path, backend=backend)


ORACLE_WORLDS = ("two_rooms", "multi_room")


def default_model(world: str | None) -> str:
    """``--model`` when none is given: the exact oracle for the point-mass worlds, else the world's shipped bundle
    (``models/<world>`` of the repository), so ``jepa-evaluate --world push_t`` evaluates the Push-T model."""
    name = world or "two_rooms"
    if name in ORACLE_WORLDS:
        return "oracle"
    bundle = REPO / "models" / name
    if not (bundle / "manifest.json").is_file():
        raise FileNotFoundError(f"world {name!r} has no exact oracle and no shipped bundle at models/{name}"
                                f"{missing_bundle_hint(name, REPO, '--model')}")
    return str(bundle)


def bundle_world(model_spec: str) -> tuple[str | None, dict[str, Any]]:
    """(world name, world constructor options) a bundle was trained with, from its manifest; (None, {}) otherwise."""
    manifest = Path(model_spec) / "manifest.json"
    if model_spec == "oracle" or not manifest.is_file():
        return None, {}
    try:
        prov = json.loads(manifest.read_text()).get("provenance", {}) or {}
    except json.JSONDecodeError as err:
        raise ValueError(f"cannot read {manifest}: {err}") from None
    data = prov.get("data", {}) or {}
    return prov.get("world") or data.get("world"), dict(data.get("world_kwargs") or {})


def world_settings(
    model_spec: str, world: str | None, world_args: dict[str, Any]
) -> tuple[str, dict[str, Any], list[str]]:
    """World name and options for an evaluation: the bundle's, then the evaluation defaults, then ``world_args``.

    Returns:
        (world name, constructor options, notes saying where settings came from and what overrode the bundle).
    """
    trained_world, trained = bundle_world(model_spec)
    notes: list[str] = []
    name = world or trained_world or "two_rooms"
    if trained_world and world and world != trained_world:
        notes.append(f"--world {world} overrides the bundle's world {trained_world} (its settings are not used)")
        trained = {}
    elif trained:
        notes.append(f"world settings from the bundle's manifest: {trained}")
    kwargs = {**DEFAULT_WORLD_KWARGS.get(name, {}), **trained}
    for key, value in world_args.items():
        if key in trained and trained[key] != value:
            notes.append(f"--world-arg {key}={value!r} overrides the bundle's {key}={trained[key]!r}")
        kwargs[key] = value
    return name, kwargs, notes


def _parse_world_args(items: list[str]) -> dict[str, Any]:
    out = {}
    for item in items:
        if "=" not in item:
            raise ValueError(f"--world-arg expects key=value, got {item!r}")
        key, value = item.split("=", 1)
        out[key] = yaml.safe_load(value)
    return out


def build_arg_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="jepa-evaluate", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument(
        "--model", default=None,
        help="model bundle directory, or 'oracle' for the exact point-mass model (default: the oracle for two_rooms and "
        "multi_room, the shipped bundle models/<world> for the other worlds)",
    )
    p.add_argument(
        "--backend", default="torch", choices=["torch", "onnx"], help="bundle backend (the gradient planner needs torch)"
    )
    p.add_argument(
        "--world", default=None, help="built-in world name (default: the bundle's training world, else two_rooms)"
    )
    p.add_argument(
        "--world-arg",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="world constructor option (repeatable; defaults: the bundle's training settings, plus goal_in_other_room=true "
        "for two_rooms, goal_far=true for multi_room, placement=mixed for both)",
    )
    p.add_argument(
        "--factor",
        action="append",
        default=[],
        metavar="NAME=LEVEL",
        help="factor of variation (repeatable), e.g. noise=0.012 brightness=1.2 door_y=random placement=corner; "
        "see jepa_sim.factors (an unknown name or level lists the valid ones)",
    )
    p.add_argument("--profile", default=None,
                   help="planner profile name (see config/planner_profiles.yaml; default: the world's, profile_for_world)")
    p.add_argument("--profiles-file", default=None, help="planner profiles YAML (default: config/planner_profiles.yaml)")
    p.add_argument("--policy", default=None, help="DistilledPolicy checkpoint, for kind: policy profiles or policy seeding")
    p.add_argument("--episodes", type=int, default=20, help="number of episodes (seeds seed..seed+N-1)")
    p.add_argument("--seed", type=int, default=0, help="first episode seed (also seeds the planner)")
    p.add_argument("--max-steps", type=int, default=None, help="raw control steps per episode (default: the world's max_steps)")
    p.add_argument("--execute-steps", type=int, default=None, help="model steps executed per replan (default: the profile's)")
    p.add_argument("--replan-every", type=int, default=None, help="raw control steps between replans (overrides --execute-steps)")
    p.add_argument(
        "--max-time", type=float, default=None, help="planning time budget per level per replan, seconds (default: the profile's)"
    )
    p.add_argument("--oracle-frameskip", type=int, default=5, help="raw steps per model step of the oracle model")
    p.add_argument("--oracle-stride", type=int, default=4, help="level-0 steps per level-1 step of the oracle model")
    p.add_argument("--out", default="eval_out", help="output directory for evaluation.json, trajectories.png, episode.gif")
    p.add_argument("--gif-episode", type=int, default=0, help="episode index shown in the GIF (-1: no GIF)")
    p.add_argument("--threads", type=int, default=2, help="torch CPU threads")
    p.add_argument("--no-progress", action="store_true", help="hide the tqdm progress bar")
    return p


def main(argv: list[str] | None = None) -> int:
    args = build_arg_parser().parse_args(argv)
    from jepa_planner.policy import DistilledPolicy
    from jepa_planner.profiles import build_planner, load_profile, profile_for_world
    from jepa_sim.factors import make_varied_world, parse_factors

    if args.episodes < 1:
        raise SystemExit("--episodes must be >= 1")
    torch.set_num_threads(max(1, args.threads))
    try:
        args.model = args.model or default_model(args.world)
        world_name, world_kwargs, notes = world_settings(args.model, args.world, _parse_world_args(args.world_arg))
        factors = parse_factors(args.factor, world_name)
        world = make_varied_world(world_name, world_kwargs, factors)
    except (ValueError, ImportError, FileNotFoundError) as err:
        raise SystemExit(f"jepa-evaluate: {err}") from None
    for note in notes:
        print(f"jepa-evaluate: {note}")
    if factors:
        print(f"jepa-evaluate: factors of variation: {factors}")
    args.world = world_name
    try:
        model = load_model(args.model, world, args.backend, args.oracle_frameskip, (args.oracle_stride,))
    except (FileNotFoundError, ValueError) as exc:  # a bad or unsafe bundle: one line, nothing loaded
        print(f"jepa-evaluate: {' '.join(str(exc).split())}", file=sys.stderr)
        return 1
    args.profile = args.profile or profile_for_world(world_name)
    profile = load_profile(args.profile, args.profiles_file)
    if args.max_time is not None:
        for lv in profile.levels:
            lv.max_time = args.max_time
    policy = DistilledPolicy.load(args.policy) if args.policy else None
    planner = build_planner(profile, model, seed=args.seed, policy=policy)
    replan_every = (args.replan_every or (args.execute_steps * model.frameskip if args.execute_steps else None)
                    or profile.replan_interval(model.frameskip))
    gif_ep = None if args.gif_episode < 0 else args.gif_episode
    summary, records, (probe, probe_r2) = evaluate(
        model, planner, world, args.episodes, args.seed, args.max_steps, replan_every, not args.no_progress, gif_ep
    )
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    plot_trajectories(world, records, out / "trajectories.png", f"{args.profile} on {args.world}: {summary['success_rate']:.0%}")
    gif_frames = (
        write_gif(world, records[gif_ep], probe, out / "episode.gif") if gif_ep is not None and gif_ep < len(records) else 0
    )
    report = {
        "summary": summary,
        "config": {
            "model": portable_path(args.model),
            "backend": args.backend,
            "world": args.world,
            "world_kwargs": world_kwargs,
            "factors": factors,
            "world_notes": notes,
            "profile": profile.model_dump(),
            "seed": args.seed,
            "replan_every_raw_steps": replan_every,
            "max_steps": args.max_steps,
            "frameskip": model.frameskip,
        },
        "probe_r2": probe_r2,
        "gif_frames": gif_frames,
        "machine": machine_info(),
        "episodes": [{k: v for k, v in r.__dict__.items() if k != "frames"} for r in records],
    }
    (out / "evaluation.json").write_text(json.dumps(report, indent=1))
    s = summary
    print(
        f"{args.profile} on {args.world} ({args.episodes} episodes, model {portable_path(args.model)}): success {s['success_rate']:.1%} "
        f"[{s['success_ci95'][0]:.1%}, {s['success_ci95'][1]:.1%}], steps to goal median {s['steps_to_goal_median']}, "
        f"plan time median {1000 * (s['plan_time_median_s'] or 0):.1f} ms (p95 {1000 * (s['plan_time_p95_s'] or 0):.1f} ms), "
        f"model evals/episode {s['model_evals_per_episode']:.0f}; wrote {out}/evaluation.json, trajectories.png"
        + (", episode.gif" if gif_frames else "")
    )
    if s["by_task_length"] and len(s["by_task_length"]) > 1:
        print("  by realised task length: " + ", ".join(
            f"{k}: {v['success_rate']:.0%} of {v['episodes']}" for k, v in s["by_task_length"].items()))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
