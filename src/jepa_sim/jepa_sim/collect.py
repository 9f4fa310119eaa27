"""Record behaviour-policy episodes in a built-in world: in memory, or to a rosbag2 MCAP bag.

``collect_episodes`` returns an ``EpisodeSet`` directly (training and tests without bags);
the ``jepa-collect`` CLI writes the same episodes to a bag (format in ``jepa_common.bag_format``).

Episode layout: ``steps`` actions give ``steps + 1`` frames; ``actions[t]`` is the (clipped)
displacement applied between frame t and t+1 and the last row is zero padding. Frame stamps are
sim time: ``spec.dt`` per step, with a gap of ``EPISODE_GAP_STEPS`` steps between episodes, so
stamps increase strictly across the whole recording.
"""

from __future__ import annotations

import argparse
import json
import shlex
import sys
import time
from collections.abc import Iterator
from dataclasses import asdict
from pathlib import Path
from typing import Any

import numpy as np
import yaml
from tqdm import tqdm

from jepa_common.episodes import Episode, EpisodeSet
from jepa_common.yaml_io import load_yaml_file
from jepa_sim.batching import as_batch
from jepa_sim.policies import Policy, PolicyInput, make_policy
from jepa_sim.worlds import World, batch_world_names, make_batch_world, make_world

EPISODE_GAP_STEPS = 10
DEFAULT_BATCH = 64


def episode_seeds(seed: int, n_episodes: int) -> list[int]:
    """Per-episode reset seeds derived from one collection seed."""
    return [int(s) for s in np.random.SeedSequence(seed).generate_state(n_episodes, dtype=np.uint32)]


def iter_episodes(
    world: str | World,
    n_episodes: int,
    steps: int,
    policy: str | Policy = "random_momentum",
    seed: int = 0,
    batch_size: int = DEFAULT_BATCH,
    policy_kwargs: dict[str, Any] | None = None,
    **world_kwargs: Any,
) -> Iterator[tuple[Episode, np.ndarray]]:
    """Yield (episode, goal_state) one by one, stepping up to ``batch_size`` environments at once.

    Raises:
        ValueError: bad counts, world or policy names/arguments.
    """
    if n_episodes < 1 or steps < 1:
        raise ValueError(f"n_episodes and steps must be >= 1, got {n_episodes} and {steps}")
    pol = make_policy(policy, **(policy_kwargs or {}))
    seeds = episode_seeds(seed, n_episodes)
    name = world if isinstance(world, str) else world.spec.name
    single = world if isinstance(world, World) else None
    if isinstance(world, str) and world not in batch_world_names():
        single = make_world(world, **world_kwargs)
    elif isinstance(world, World) and world_kwargs:
        raise ValueError("world_kwargs are only used with a world name, not a World instance")
    dt_ns = None
    for chunk_index, first in enumerate(range(0, n_episodes, batch_size if single is None else 1)):
        count = min(batch_size if single is None else 1, n_episodes - first)
        env = as_batch(single) if single is not None else make_batch_world(name, count, **world_kwargs)
        dt_ns = round(env.spec.dt * 1e9)
        obs = env.reset(seeds[first : first + count])
        pol.reset(env, np.random.default_rng([seed, chunk_index]))
        frames = np.empty((count, steps + 1, *obs.image.shape[1:]), dtype=np.uint8)
        proprio = np.empty((count, steps + 1, obs.proprio.shape[1]), dtype=np.float32)
        state = np.empty((count, steps + 1, env.spec.state_dim), dtype=np.float32)
        actions = np.zeros((count, steps + 1, env.spec.action_dim), dtype=np.float32)
        frames[:, 0], proprio[:, 0], state[:, 0] = obs.image, obs.proprio, env.true_state()
        blocked = np.zeros(count, dtype=bool)
        goals = env.goal_state()
        for t in range(steps):
            raw = pol.act(PolicyInput(proprio=proprio[:, t], true_state=state[:, t], goal_state=goals, blocked=blocked))
            applied, _ = env.clip_actions(raw)
            obs, info = env.step(applied)
            actions[:, t] = applied
            frames[:, t + 1], proprio[:, t + 1], state[:, t + 1] = obs.image, obs.proprio, info.true_state
            blocked = info.blocked
        for i in range(count):
            index = first + i
            start = index * (steps + 1 + EPISODE_GAP_STEPS)
            stamps = (start + np.arange(steps + 1, dtype=np.int64)) * dt_ns + dt_ns  # first stamp > 0
            yield (
                Episode(
                    frames=frames[i],
                    actions=actions[i],
                    proprio=proprio[i],
                    state=state[i],
                    stamps_ns=stamps,
                    source=f"{name}#{index}",
                ),
                goals[i],
            )


def _spec_of(world: str | World, world_kwargs: dict[str, Any]) -> Any:
    if not isinstance(world, str):
        return world.spec
    batch = make_batch_world(world, 1, **world_kwargs)
    if batch is not None:
        return batch.spec
    built = make_world(world, **world_kwargs)
    built.close()
    return built.spec


def collect_metadata(
    world: str | World,
    policy: str | Policy,
    seed: int,
    steps: int,
    n_episodes: int,
    world_kwargs: dict[str, Any],
    policy_kwargs: dict[str, Any] | None,
) -> dict[str, Any]:
    """Provenance record shared by EpisodeSet.metadata and bags."""
    spec = _spec_of(world, world_kwargs)
    return {
        "world": spec.name,
        "world_spec": asdict(spec),
        "world_kwargs": dict(world_kwargs),
        "policy": policy if isinstance(policy, str) else policy.name,
        "policy_kwargs": dict(policy_kwargs or {}),
        "seed": int(seed),
        "steps": int(steps),
        "n_episodes": int(n_episodes),
        "episode_gap_steps": EPISODE_GAP_STEPS,
    }


def collect_episodes(
    world: str | World,
    n_episodes: int,
    steps: int,
    policy: str | Policy = "random_momentum",
    seed: int = 0,
    batch_size: int = DEFAULT_BATCH,
    policy_kwargs: dict[str, Any] | None = None,
    progress: bool = False,
    **world_kwargs: Any,
) -> EpisodeSet:
    """Run a behaviour policy and return its episodes (``steps + 1`` frames each).

    Args:
        world: registry name (then ``world_kwargs`` build it) or a World instance.
        n_episodes: number of episodes.
        steps: actions per episode.
        policy: "random", "random_momentum", "noisy_goal", "door_probe", "pusher" or a Policy instance.
        seed: makes the whole collection reproducible (for a given ``batch_size``).
        batch_size: environments stepped together where the world has a numpy batch.
        policy_kwargs: options of a named policy (e.g. momentum, noise).
        progress: show a tqdm bar.

    Returns:
        EpisodeSet whose metadata holds world, world_spec, world_kwargs, policy, seed, goals.
    """
    episodes, goals = [], []
    it = iter_episodes(world, n_episodes, steps, policy, seed, batch_size, policy_kwargs, **world_kwargs)
    for episode, goal in tqdm(it, total=n_episodes, desc="collect", unit="ep", disable=not progress):
        episodes.append(episode)
        goals.append(goal.tolist())
    metadata = collect_metadata(world, policy, seed, steps, n_episodes, world_kwargs, policy_kwargs)
    metadata["goals"] = goals
    return EpisodeSet(episodes=episodes, metadata=metadata)


# ---------------------------------------------------------------------------- CLI
def parse_world_args(items: list[str]) -> dict[str, Any]:
    """['door_y=20', 'goal_in_other_room=true'] -> {'door_y': 20, 'goal_in_other_room': True} (YAML scalars)."""
    out: dict[str, Any] = {}
    for item in items:
        if "=" not in item:
            raise ValueError(f"--world-arg must look like key=value, got {item!r}")
        key, value = item.split("=", 1)
        out[key.strip()] = yaml.safe_load(value)
    return out


def build_arg_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="jepa-collect",
        description="Record behaviour-policy episodes of a built-in world to a rosbag2 MCAP bag (topics in jepa_common.bag_format).",
    )
    parser.add_argument(
        "--config",
        default=None,
        help="YAML file of defaults (keys: world, world_args, episodes, steps, policy, policy_args, seed, image_size); flags override it",
    )
    parser.add_argument("--world", default="two_rooms", help="world registry name (two_rooms, multi_room, point_maze, push_t)")
    parser.add_argument(
        "--world-arg",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="world constructor option, repeatable (value parsed as YAML)",
    )
    parser.add_argument("--episodes", type=int, default=10, help="number of episodes to record")
    parser.add_argument("--steps", type=int, default=100, help="actions per episode (each episode has steps+1 frames)")
    parser.add_argument("--policy", default="random_momentum", help="behaviour policy: random, random_momentum, noisy_goal, door_probe, pusher (push_t)")
    parser.add_argument(
        "--policy-arg",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="policy option, repeatable (e.g. momentum=0.95, noise=0.2)",
    )
    parser.add_argument(
        "--seed", type=int, default=0, help="collection seed (episodes and policy noise are reproducible from it)"
    )
    parser.add_argument(
        "--out",
        required=True,
        help="output bag directory (must not exist); written under a temporary name, renamed when complete",
    )
    parser.add_argument(
        "--image-size", type=int, default=None, help="camera image side in px (default: the world's own, 64 for two_rooms)"
    )
    parser.add_argument("--batch-size", type=int, default=DEFAULT_BATCH, help="environments stepped at once for batched worlds")
    return parser


def main(argv: list[str] | None = None) -> int:
    """Entry point of ``jepa-collect``."""
    from jepa_common.bag_format import write_episodes_bag

    parser = build_arg_parser()
    args = parser.parse_args(argv)
    file_world_args: dict[str, Any] = {}
    file_policy_args: dict[str, Any] = {}
    if args.config:
        config = load_yaml_file(args.config) or {}
        unknown = set(config) - {
            "world",
            "world_args",
            "episodes",
            "steps",
            "policy",
            "policy_args",
            "seed",
            "image_size",
            "out",
            "batch_size",
        }
        if unknown:
            raise ValueError(f"{args.config}: unknown keys {sorted(unknown)}")
        file_world_args = dict(config.pop("world_args", None) or {})
        file_policy_args = dict(config.pop("policy_args", None) or {})
        parser.set_defaults(**config)
        args = parser.parse_args(argv)
    if not args.out:
        parser.error("--out is required (on the command line or in --config)")
    world_kwargs = {**file_world_args, **parse_world_args(args.world_arg)}
    if args.image_size is not None:
        world_kwargs["image_size"] = args.image_size
    policy_kwargs = {**file_policy_args, **parse_world_args(args.policy_arg)}
    command = shlex.join([Path(sys.argv[0]).name, *(sys.argv[1:] if argv is None else argv)])
    metadata = collect_metadata(args.world, args.policy, args.seed, args.steps, args.episodes, world_kwargs, policy_kwargs)
    metadata["command"] = command
    it = iter_episodes(
        args.world, args.episodes, args.steps, args.policy, args.seed, args.batch_size, policy_kwargs, **world_kwargs
    )
    start = time.perf_counter()
    bar = tqdm(it, total=args.episodes, desc="record", unit="ep")
    frames = write_episodes_bag(Path(args.out), bar, metadata)
    elapsed = time.perf_counter() - start
    print(f"wrote {args.out}: {args.episodes} episodes, {frames} frames in {elapsed:.1f} s ({frames / elapsed:.0f} frames/s)")
    print(json.dumps({"frames": frames, "seconds": round(elapsed, 3)}))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
