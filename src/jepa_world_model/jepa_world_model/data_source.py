"""Where training episodes come from, as the config's ``data`` section says: a built-in world or rosbags."""

from __future__ import annotations

from typing import Any, NamedTuple

import numpy as np

from jepa_common.episodes import EpisodeSet
from jepa_world_model.config import BagDataConfig, SimDataConfig


def load_episodes(data_cfg: SimDataConfig | BagDataConfig) -> tuple[EpisodeSet, dict[str, Any]]:
    """Episodes plus provenance (world, raw action bounds) for the manifest.

    Returns:
        (episodes, meta) with meta keys ``source``, ``world`` (or None), ``raw_action_low``/``raw_action_high``
        and ``action_norm_max`` (or None).
    """
    if data_cfg.source == "sim":
        from jepa_sim.collect import collect_episodes
        from jepa_sim.worlds import make_world

        world = make_world(data_cfg.world, **data_cfg.world_kwargs)
        spec = world.spec
        world.close()
        # by name, so worlds with a numpy batch are stepped many at once
        parts = [(data_cfg.policy, data_cfg.episodes, data_cfg.policy_kwargs, data_cfg.seed, data_cfg.randomise)]
        parts += [
            (
                part.policy,
                part.episodes,
                part.policy_kwargs,
                data_cfg.seed + 1000 * (i + 1) if part.seed is None else part.seed,
                data_cfg.randomise if part.randomise is None else part.randomise,
            )
            for i, part in enumerate(data_cfg.extra)
        ]
        sets = [
            collect_episodes(  # randomised options reach the training data only, never world_kwargs
                data_cfg.world, n, data_cfg.steps, policy=policy, seed=seed, policy_kwargs=kwargs, progress=True,
                batch_size=data_cfg.collect_batch, **{**data_cfg.world_kwargs, **randomise},
            )
            for policy, n, kwargs, seed, randomise in parts
        ]
        eps = sets[0]
        if len(sets) > 1:
            metadata = dict(eps.metadata, n_episodes=sum(len(s) for s in sets), parts=[{k: v for k, v in s.metadata.items() if k != "goals"} for s in sets])
            metadata["goals"] = [g for s in sets for g in s.metadata.get("goals", [])]
            eps = EpisodeSet(episodes=[e for s in sets for e in s.episodes], metadata=metadata)
        meta = {
            "source": "sim",
            "world": spec.name,
            "raw_action_low": list(spec.action_low),
            "raw_action_high": list(spec.action_high),
            "action_norm_max": spec.action_norm_max,
        }
    else:
        from jepa_world_model.data.bags import load_bags, topics_from_mapping

        # one mapping for every bag, or per-bag overrides (``per_bag: {glob: {...}}``); bad keys are a ValueError
        bag_topics = topics_from_mapping(dict(data_cfg.topics), "data.topics")
        eps = load_bags(data_cfg.paths, bag_topics)
        acts = np.concatenate([e.actions[:-1] for e in eps.episodes])
        meta = {
            "source": "bags",
            "world": None,
            "raw_action_low": acts.min(0).astype(float).tolist(),
            "raw_action_high": acts.max(0).astype(float).tolist(),
            "action_norm_max": None,
        }
    if len(eps) == 0:
        raise ValueError(f"data source {data_cfg.source} produced no episodes")
    for ep in eps.episodes:
        ep.validate()
    return eps, meta


class FrameSample(NamedTuple):
    """Frames picked across episodes, with what was recorded with them."""

    frames: np.ndarray  # (N, H, W, 3) uint8
    states: np.ndarray | None  # (N, S) true states, when every episode has them
    proprio: np.ndarray  # (N, P) proprioception (P may be 0)


def sample_frames(eps: EpisodeSet, max_frames: int) -> FrameSample:
    """Evenly spaced frames across all episodes, with their true states (or None) and proprioception."""
    frames = np.concatenate([e.frames for e in eps.episodes])
    proprio = np.concatenate([e.proprio for e in eps.episodes]).astype(np.float32)
    states = None
    if all(e.state is not None for e in eps.episodes):
        states = np.concatenate([e.state for e in eps.episodes]).astype(np.float32)
    if len(frames) > max_frames:
        idx = np.linspace(0, len(frames) - 1, max_frames).round().astype(np.int64)
        frames, proprio = frames[idx], proprio[idx]
        states = states[idx] if states is not None else None
    return FrameSample(frames, states, proprio)
