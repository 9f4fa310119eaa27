"""Mode 1 vs Mode 2: a policy distilled from Mode-2 decisions with DAgger, alone and seeding Mode 2.

One command regenerates everything from the bundle (the policy is trained here, never shipped):

1. DAgger (``jepa_planner.distill``): one round of Mode-2 demonstrations, then ``--rounds`` rounds where
   the policy drives and Mode 2 labels the states it visits; every 5th episode is held out for validation.
   ``--label-k`` Mode-2 planners label each state (``MeanLabeller``: the mean of their final sampling means,
   ``--keep-speed`` at the speed of their executed first actions); 0 labels with one planner's best action.
2. On held-out seeds (disjoint from the training seeds), through the same controller:
   Mode 1 alone as the ``--mode1-profile`` runs it (its ``policy_noise`` and ``stall_recovery``; and
   deterministic); Mode 1 with a one-step check (``--check-samples``: of its action and noisy copies, the one
   the model predicts nearest the goal, the ``policy_checked`` profile), without and with the controller's
   stall recovery; Mode 2 (``--profile``);
   Mode 2 at reduced samples, unseeded, seeded by Mode 1's proposals (they count in the samples),
   warm-started by Mode 1's decision (the first action of the sampler's initial mean) and by its rollout (the
   whole initial mean); then scarcer budgets (``--sweep-fractions``) unseeded and with both warm starts.
   Success with a Wilson 95% interval, time per decision, samples per decision.

    .venv/bin/python bench/bench_policy.py --seed 0 --rounds 8 --episodes-per-round 20 --episodes 100 \
        --label-k 4 --noise-std 0.6 --ensemble 5 --out bench/results/policy_mode1_recovery_seed0.json
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from dataclasses import asdict
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]


def run_condition(model, make_planner, world, seeds: list[int], max_steps: int, replan: int, name: str) -> dict:
    """Success (Wilson interval), time and samples per decision of one planner factory on ``seeds``."""
    from jepa_planner.experience import drive_seeds

    run = drive_seeds(model, make_planner, world, seeds, max_steps, replan, desc=name)
    return {**run.success(), "decision_ms_median": run.time_ms(0.5), "decision_ms_p95": run.time_ms(0.95),
            "samples_per_decision": run.samples_per_decision()}


def main(argv: list[str] | None = None) -> int:
    from jepa_common.paths import portable_path
    from jepa_planner.distill import distil_dagger
    from jepa_planner.policy import PolicyPlanner
    from jepa_planner.profiles import PolicySeededPlanner, StallRecoveryConfig, build_planner, load_profile, with_recovery
    from jepa_sim.machine import machine_info
    from jepa_sim.worlds import make_world
    from jepa_world_model.bundle import load_bundle

    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--seed", type=int, default=0, help="base seed: training and held-out seeds derive from it")
    p.add_argument("--episodes", type=int, default=40, help="held-out evaluation episodes per condition")
    p.add_argument("--out", default=str(ROOT / "bench" / "results" / "policy.json"))
    p.add_argument("--bundle", default=str(ROOT / "models" / "two_rooms"))
    p.add_argument("--world", default="two_rooms")
    p.add_argument("--profile", default="flat_cem", help="the Mode-2 profile (a flat sampling planner)")
    p.add_argument("--mode1-profile", default="policy",
                   help="the Mode-1 profile (kind policy): its policy_noise and stall_recovery are how Mode 1 alone is run")
    p.add_argument("--rounds", type=int, default=4, help="DAgger rounds after the demonstration round")
    p.add_argument("--episodes-per-round", type=int, default=15)
    p.add_argument("--epochs", type=int, default=200)
    p.add_argument("--hidden", type=int, default=256, help="policy MLP width")
    p.add_argument("--depth", type=int, default=3, help="policy MLP hidden layers")
    p.add_argument("--ensemble", type=int, default=1, help="policy MLPs averaged (each fitted alone)")
    p.add_argument("--difference", action="store_true", help="the policy also sees (goal - latent)")
    p.add_argument("--label-k", type=int, default=0,
                   help="Mode-2 planners averaged per label (0: one planner's best first action, as executed)")
    p.add_argument("--label-best", action="store_true",
                   help="with --label-k: average the planners' best first actions, not their final sampling means")
    p.add_argument("--keep-speed", action="store_true",
                   help="with --label-k: the label keeps the mean's direction at the executed actions' mean speed")
    p.add_argument("--noise-std", type=float, default=0.6,
                   help="Mode 1's action noise (fraction of the half range) while it drives DAgger rounds, in its "
                        "proposals to Mode 2 and in the one-step check's copies (Mode 1 alone runs with the "
                        "--mode1-profile's policy_noise)")
    p.add_argument("--check-samples", type=int, default=8,
                   help="candidates of Mode 1 with a one-step check (its action and noisy copies; PolicyPlanner check_samples)")
    p.add_argument("--sample-fraction", type=float, default=1 / 3, help="samples of the reduced Mode 2 (fraction)")
    p.add_argument("--sweep-fractions", type=float, nargs="*", default=[1 / 9, 1 / 27],
                   help="scarcer sample budgets (fractions of the profile's) run unseeded and warm-started by Mode 1")
    p.add_argument("--proposals", type=int, default=16, help="Mode-1 proposals per iteration of the seeded Mode 2")
    p.add_argument("--policy-out", default="", help="also save the policy here (it belongs to this bundle only)")
    p.add_argument("--max-steps", type=int, default=0, help="raw steps per episode (0: the world's)")
    args = p.parse_args(argv)
    torch.set_num_threads(2)
    try:
        model = load_bundle(args.bundle, backend="torch")
        profile = load_profile(args.profile)
        mode1 = load_profile(args.mode1_profile)
    except (FileNotFoundError, ValueError) as exc:
        print(f"bench_policy: {exc}", file=sys.stderr)
        return 2
    if (args.label_k < 0 or args.hidden < 1 or args.depth < 1 or args.ensemble < 1 or not 0 < args.noise_std <= 2
            or args.check_samples < 2
            or not all(0 < f <= 1 for f in [args.sample_fraction, *args.sweep_fractions])):
        print("bench_policy: --label-k must be >= 0, --hidden, --depth, --ensemble >= 1, --check-samples >= 2, --noise-std in "
              "(0, 2] and the sample fractions in (0, 1]", file=sys.stderr)
        return 2
    if mode1.kind != "policy":
        print(f"bench_policy: --mode1-profile {args.mode1_profile!r} must be kind: policy, got {mode1.kind}", file=sys.stderr)
        return 2
    if profile.kind != "flat" or "num_samples" not in profile.levels[0].params:
        print(f"bench_policy: profile {args.profile!r} must be flat with params.num_samples (cem or mppi)", file=sys.stderr)
        return 2
    kwargs = {"two_rooms": {"goal_in_other_room": True}, "multi_room": {"goal_far": True}}.get(args.world, {})
    world = make_world(args.world, **kwargs)
    max_steps = args.max_steps or world.spec.max_steps
    replan = profile.replan_interval(model.frameskip)
    base = 1_000_000 * (args.seed + 1)
    train_seeds = [base + i for i in range(500_000)]
    heldout = [base + 500_000 + i for i in range(args.episodes)]

    start = time.perf_counter()
    policy, history = distil_dagger(
        model, lambda s: build_planner(profile, model, seed=s), world, train_seeds, rounds=args.rounds,
        episodes_per_round=args.episodes_per_round, max_steps=max_steps, replan_every=replan, epochs=args.epochs,
        hidden=args.hidden, depth=args.depth, difference=args.difference, ensemble=args.ensemble, label_k=args.label_k,
        label_mean=not args.label_best, label_keep_speed=args.keep_speed, driver_noise=args.noise_std,
        seed=args.seed, progress=lambda line: print(line, flush=True),
    )
    train_s = time.perf_counter() - start
    if args.policy_out:
        Path(args.policy_out).parent.mkdir(parents=True, exist_ok=True)
        policy.save(args.policy_out)

    full = int(profile.levels[0].params["num_samples"])

    def reduced_profile(total: int):
        """The Mode-2 profile at ``total`` samples per iteration (elites scaled down with them)."""
        out = profile.model_copy(deep=True)
        out.levels[0].params["num_samples"] = total
        out.levels[0].params["num_elites"] = min(int(profile.levels[0].params.get("num_elites", 10)), max(1, total // 10))
        return out

    reduced_total = max(2, round(full * args.sample_fraction))
    reduced = reduced_profile(reduced_total)
    seeded = reduced.model_copy(deep=True)
    seeded.levels[0].params["num_samples"] = reduced_total - args.proposals  # proposals count in the budget

    def warm_started(prof, how: str = "first"):
        return lambda s: PolicySeededPlanner(build_planner(prof, model, seed=s), policy, 0, warm_start=how)

    deterministic = mode1.model_copy(update={"policy_noise": 0.0})
    # the checked policy with the controller's stall recovery: the --mode1-profile's, else its defaults
    recovering = mode1 if mode1.stall_recovery is not None else mode1.model_copy(update={"stall_recovery": StallRecoveryConfig()})
    conditions = {
        "mode1_policy": lambda s: build_planner(mode1, model, seed=s, policy=policy),
        "mode1_policy_deterministic": lambda s: build_planner(deterministic, model, seed=s, policy=policy),
        "mode1_policy_checked": lambda s: PolicyPlanner(model, policy, noise_std=args.noise_std, seed=s,
                                                        check_samples=args.check_samples),
        "mode1_policy_checked_stall_recovery": lambda s: with_recovery(recovering, PolicyPlanner(
            model, policy, noise_std=args.noise_std, seed=s, check_samples=args.check_samples)),
        "mode2_planner": lambda s: build_planner(profile, model, seed=s),
        "mode2_reduced": lambda s: build_planner(reduced, model, seed=s),
        "mode2_reduced_seeded_by_mode1": lambda s: PolicySeededPlanner(build_planner(seeded, model, seed=s), policy,
                                                                       args.proposals, noise_std=args.noise_std),
        "mode2_reduced_warm_started_by_mode1": warm_started(reduced),
        "mode2_reduced_rollout_started_by_mode1": warm_started(reduced, "rollout"),
    }
    results: dict = {}
    partial = Path(args.out).with_suffix(".partial.json")
    for name, make in conditions.items():
        results[name] = run_condition(model, make, world, heldout, max_steps, replan, name)
        print(f"{name}: {results[name]}", flush=True)
        partial.write_text(json.dumps({"dagger": [asdict(h) for h in history], **results}, indent=2))
    sweep = []
    for fraction in args.sweep_fractions:  # scarcer budgets: where a seed from Mode 1 has room to help
        scarce = reduced_profile(max(2, round(full * fraction)))
        row = {"fraction": fraction, "samples_per_iteration": scarce.levels[0].params["num_samples"]}
        for name, make in (("unseeded", lambda s, p=scarce: build_planner(p, model, seed=s)),
                           ("warm_started_by_mode1", warm_started(scarce)),
                           ("rollout_started_by_mode1", warm_started(scarce, "rollout"))):
            row[name] = run_condition(model, make, world, heldout, max_steps, replan, f"{name} x{fraction:.3f}")
        sweep.append(row)
        print(f"budget x{fraction:.3f}: {row}", flush=True)
    results["budget_sweep"] = sweep
    m1, m2 = results["mode1_policy"], results["mode2_planner"]
    result = {
        "command": "bench/bench_policy.py " + " ".join(portable_path(a) if a.startswith("/") else a
                                                       for a in (sys.argv[1:] if argv is None else argv)),
        "machine": machine_info(),
        "bundle": Path(args.bundle).name,
        "world": args.world,
        "profile": args.profile,
        "mode1_profile": {"name": args.mode1_profile, "policy_noise": mode1.policy_noise,
                          "stall_recovery": None if mode1.stall_recovery is None else mode1.stall_recovery.model_dump()},
        "policy": {"hidden": args.hidden, "depth": args.depth, "difference": args.difference, "epochs": args.epochs,
                   "noise_std": args.noise_std, "ensemble": args.ensemble, "check_samples": args.check_samples,
                   "label": ("best first action of one planner" if not args.label_k else
                             f"mean of {args.label_k} planners' " + ("best first actions" if args.label_best else
                                                                     "final sampling means")
                             + (", at their executed speed" if args.keep_speed else ""))},
        "dagger": [asdict(h) for h in history],
        "train_s": train_s,
        "heldout_seeds": [heldout[0], heldout[-1]],
        "samples": {"mode2": full, "reduced": reduced_total, "seeded_random": reduced_total - args.proposals,
                    "seeded_proposals": args.proposals},
        **results,
        "speedup_mode1_over_mode2": m2["decision_ms_median"] / m1["decision_ms_median"],
    }
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(result, indent=2))
    partial.unlink(missing_ok=True)
    for name, r in results.items():
        if name == "budget_sweep":
            continue
        print(f"{name}: success {100 * r['success_rate']:.0f}% [{100 * r['success_ci95'][0]:.0f}, "
              f"{100 * r['success_ci95'][1]:.0f}], {r['decision_ms_median']:.2f} ms/decision, "
              f"{r['samples_per_decision']:.0f} samples/decision")
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
