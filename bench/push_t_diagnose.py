"""Why a Push-T plan fails: the model's view of the expert's actions against the planner's own plan.

For held-out tasks at distance d (the scripted pusher's state d steps from the start, as ``bench_push_t.py``
builds them), with the pusher's own d actions known:

* task distance: normalised latent distance start -> goal (what the planner must close);
* expert, predicted: the terminal goal distance the model predicts for the pusher's actions (0 for a perfect model);
* expert, true: the distance of the encoded true end state (not 0 only through the agent's velocity, which the
  goal image's proprio sets to 0);
* model error: normalised distance between predicted and encoded latents after each model step of the pusher,
  also apart for the latent's image and proprio parts when the encoder gives proprio its own dimensions;
* plan: one open-loop plan of the profile's level-0 planner over the same horizon, its predicted terminal
  distance, then executed in the world: its true latent distance and the true errors (agent px, block px,
  block angle) against the pusher's.

If plans reach a lower predicted distance than the expert but a worse true end, the planner exploits model
error; if the expert's predicted distance is already large, the model cannot represent the push; if the plan's
predicted distance stays above the expert's, the search falls short.

    .venv/bin/python bench/push_t_diagnose.py --model runs/push_t_bundle --d 25 --tasks 20
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

import numpy as np
import torch
from bench_push_t import HELD_OUT_SEED


def diagnose(model: Any, profile_name: str, d: int, tasks: int, seed: int) -> dict[str, Any]:
    from jepa_planner.evaluate import encode_observation
    from jepa_planner.profiles import build_planner, load_profile
    from jepa_sim.worlds import make_world
    from jepa_sim.worlds.push_t import state_errors

    world = make_world("push_t", goal_steps=d, max_steps=10 * d)  # bench_push_t's tasks, the same seeds
    fs = int(model.frameskip)
    steps = -(-d // fs)
    profile = load_profile(profile_name)
    planner = build_planner(profile, model, seed=seed)

    def dist(a: torch.Tensor, b: torch.Tensor, part: slice = slice(None)) -> float:
        return float(torch.linalg.vector_norm(((a - b) / model.latent_std)[..., part]))

    # the latent's image and proprio parts (encoder.proprio_latent_dim: the proprio part comes last)
    k = int(model.manifest.get("provenance", {}).get("config", {}).get("model", {}).get("encoder", {})
            .get("proprio_latent_dim", 0))
    parts = {"image": slice(0, -k), "proprio": slice(-k, None)} if k else {}

    rows = []
    for i in range(tasks):
        world.reset(seed=seed + i)  # the task: start, goal, and the scripted pusher's actions between them
        start, goal, actions = world.true_state().astype(np.float64), world.goal_state.astype(np.float64), world.goal_actions
        padded = np.zeros((steps * fs, 2))
        padded[:d] = actions
        model_actions = torch.as_tensor(padded.reshape(steps, fs * 2), dtype=torch.float32)
        obs = world.reset(start=start, goal=goal)
        z0 = encode_observation(model, obs)
        zg = encode_observation(model, world.goal_observation())
        true_latents = []
        for k, a in enumerate(padded):
            obs, _ = world.step(a)
            if (k + 1) % fs == 0:
                true_latents.append(encode_observation(model, obs))
        expert_end = world.true_state().astype(np.float64)
        with torch.no_grad():
            pred = model.rollout(z0[None, None], model_actions[None])[0]
        model_err = [dist(p, t) for p, t in zip(pred, true_latents, strict=True)]
        # the planner's open-loop plan, with the expert's horizon or the profile's, whichever is longer
        planner.reset(seed + i)
        world.reset(start=start, goal=goal)
        plan = planner.plan(z0[None], zg)
        for a in plan.actions.detach().numpy().reshape(-1, 2)[: steps * fs]:
            obs, _ = world.step(a)
        plan_true = encode_observation(model, obs)
        plan_end = world.true_state().astype(np.float64)
        rows.append({
            "seed": seed + i, "task_distance": dist(z0, zg),
            "expert_predicted": dist(pred[-1], zg), "expert_true": dist(true_latents[-1], zg),
            "model_error_per_step": model_err,
            **{f"model_error_per_step_{name}": [dist(p, q, part) for p, q in zip(pred, true_latents, strict=True)]
               for name, part in parts.items()},
            **{f"task_distance_{name}": dist(z0, zg, part) for name, part in parts.items()},
            "plan_predicted_terminal": dist(plan.latents[min(steps, plan.latents.shape[0]) - 1], zg),
            "plan_true": dist(plan_true, zg),
            "expert_state_error": state_errors(goal, expert_end),
            "plan_state_error": state_errors(goal, plan_end),
            "block_moved_px": float(np.linalg.norm(goal[2:4] - start[2:4])),
            "agent_to_goal_px": float(np.linalg.norm(goal[:2] - start[:2])),
        })
    world.close()

    def med(key: str, sub: str | None = None) -> float:
        return float(np.median([r[key][sub] if sub else r[key] for r in rows]))

    summary = {k: med(k) for k in ("task_distance", "expert_predicted", "expert_true", "plan_predicted_terminal", "plan_true",
                                   "block_moved_px", "agent_to_goal_px")}
    for suffix in ("", *(f"_{name}" for name in parts)):
        summary[f"model_error_by_step{suffix}"] = [float(np.median([r[f"model_error_per_step{suffix}"][i] for r in rows]))
                                                   for i in range(steps)]
    for name in parts:
        summary[f"task_distance_{name}"] = med(f"task_distance_{name}")
    for who in ("plan",):
        for sub in ("agent_px", "block_px", "angle_rad"):
            summary[f"{who}_{sub}"] = med(f"{who}_state_error", sub)
    summary["plan_beats_expert_in_prediction"] = float(np.mean([r["plan_predicted_terminal"] < r["expert_predicted"] for r in rows]))
    return {"d": d, "profile": profile_name, "tasks": tasks, "summary": summary, "rows": rows}


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--model", required=True)
    p.add_argument("--d", type=int, default=25)
    p.add_argument("--tasks", type=int, default=20)
    p.add_argument("--profile", default="flat_cem")
    p.add_argument("--seed", type=int, default=HELD_OUT_SEED)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--out", default="")
    args = p.parse_args(argv)
    torch.set_num_threads(args.threads)
    from jepa_world_model.bundle import load_bundle

    model = load_bundle(args.model, backend="torch")
    result = diagnose(model, args.profile, args.d, args.tasks, args.seed)
    result.update(model_id=model.model_id, command="bench/push_t_diagnose.py " + " ".join(sys.argv[1:] if argv is None else argv))
    for key, value in result["summary"].items():
        print(f"{key:>32}: {np.round(value, 3).tolist() if isinstance(value, list) else round(value, 3)}")
    if args.out:
        Path(args.out).write_text(json.dumps(result, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
