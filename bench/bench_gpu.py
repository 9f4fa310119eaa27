#!/usr/bin/env python3
"""GPU inference benchmark: torch vs onnxruntime CUDA vs TensorRT, in one run, as ratios.

Measures, on every backend this machine has (torch on CUDA or CPU, and each onnxruntime
provider among TensorRT/CUDA/CPU that really starts):
  * a token encoder (ViT-style, image -> patch tokens): latency at batch 1 and images/s at a batch;
  * a planner's replan time with a transformer predictor over token latents, at a CEM budget
    (300 samples x horizon 5 x 30 iterations, as DINO-WM/JEPA-WMs plan) and an MPPI budget like
    the hierarchical world model's high level (2000 samples); the planner code is the same for
    every backend, only the predictor step differs (onnxruntime runs through IO binding, so on
    a GPU the rollout never leaves device memory).
Outputs of every backend are checked against torch before timing.
Writes bench/results/gpu.json with the machine, providers and figures.

The models are defined here (small, randomly initialised: timing does not depend on training).
On a CPU use the reduced sizes, e.g.:
    .venv/bin/python bench/bench_gpu.py --image-size 32 --dim 64 --pred-depth 2 --cem-iters 2 --mppi-iters 1
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
import warnings
from collections.abc import Callable
from pathlib import Path

import numpy as np
import onnxruntime as ort
import torch
from torch import nn
from tqdm import tqdm

from jepa_common.paths import portable_args
from jepa_sim.machine import machine_info
from jepa_world_model.ort_session import (
    PROVIDER_NAMES,
    IoBoundRunner,
    OrtConfig,
    compare_providers,
    gpu_identity,
    make_session,
)

RESULTS = Path(__file__).resolve().parent / "results" / "gpu.json"


# ------------------------------------------------------------------------------------------ models


class Block(nn.Module):
    """Pre-norm transformer block with plain-op attention (exports cleanly to ONNX opset 17)."""

    def __init__(self, dim: int, heads: int):
        super().__init__()
        if dim % heads:
            raise ValueError(f"--dim {dim} must be divisible by --heads {heads}")
        self.heads = heads
        self.norm1, self.norm2 = nn.LayerNorm(dim), nn.LayerNorm(dim)
        self.qkv = nn.Linear(dim, 3 * dim)
        self.proj = nn.Linear(dim, dim)
        self.mlp = nn.Sequential(nn.Linear(dim, 4 * dim), nn.GELU(), nn.Linear(4 * dim, dim))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, n, d = x.shape
        q, k, v = self.qkv(self.norm1(x)).reshape(b, n, 3, self.heads, d // self.heads).permute(2, 0, 3, 1, 4)
        attn = torch.softmax(q @ k.transpose(-2, -1) * (d // self.heads) ** -0.5, dim=-1)
        x = x + self.proj((attn @ v).transpose(1, 2).reshape(b, n, d))
        return x + self.mlp(self.norm2(x))


class TokenEncoder(nn.Module):
    """uint8-range float image (B, 3, H, W) -> patch tokens (B, N, D)."""

    def __init__(self, image_size: int, patch: int, dim: int, depth: int, heads: int):
        super().__init__()
        if image_size % patch:
            raise ValueError(f"--image-size {image_size} must be a multiple of --patch {patch}")
        self.patchify = nn.Conv2d(3, dim, kernel_size=patch, stride=patch)
        self.pos = nn.Parameter(torch.randn(1, (image_size // patch) ** 2, dim) * 0.02)
        self.blocks = nn.Sequential(*[Block(dim, heads) for _ in range(depth)])
        self.norm = nn.LayerNorm(dim)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        x = self.patchify(images / 255.0).flatten(2).transpose(1, 2) + self.pos
        return self.norm(self.blocks(x))


class TokenPredictor(nn.Module):
    """(tokens (B, N, D), action (B, A)) -> next tokens (B, N, D); the action enters as an extra token."""

    def __init__(self, tokens: int, dim: int, action_dim: int, depth: int, heads: int):
        super().__init__()
        self.action = nn.Linear(action_dim, dim)
        self.pos = nn.Parameter(torch.randn(1, tokens + 1, dim) * 0.02)
        self.blocks = nn.Sequential(*[Block(dim, heads) for _ in range(depth)])
        self.norm = nn.LayerNorm(dim)

    def forward(self, tokens: torch.Tensor, action: torch.Tensor) -> torch.Tensor:
        x = torch.cat([self.action(action).unsqueeze(1), tokens], dim=1) + self.pos
        return tokens + self.norm(self.blocks(x))[:, 1:]


def export(model: nn.Module, example: tuple[torch.Tensor, ...], names: list[str], path: Path) -> Path:
    """ONNX export with a dynamic batch dimension (legacy exporter: fast and deterministic here)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(
            model,
            example,
            str(path),
            dynamo=False,
            input_names=names,
            output_names=["out"],
            dynamic_axes={**{n: {0: "batch"} for n in names}, "out": {0: "batch"}},
            opset_version=17,
        )
    return path


# ------------------------------------------------------------------------------------------ planners

Step = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]


def rollout_cost(step: Step, z0: torch.Tensor, goal: torch.Tensor, actions: torch.Tensor) -> torch.Tensor:
    """Final-latent MSE to the goal for each candidate; actions (S, H, A)."""
    z = z0.expand(actions.shape[0], *z0.shape[1:]).contiguous()
    for t in range(actions.shape[1]):
        z = step(z, actions[:, t].contiguous())
    final = z if z.dim() == goal.dim() else z[:, -1]  # a context state: its newest latent
    return ((final - goal) ** 2).flatten(1).mean(dim=1)


def advance(state: torch.Tensor, z_next: torch.Tensor, has_context: bool) -> torch.Tensor:
    """Next planner state: the prediction itself, or the context window shifted by one."""
    return torch.cat([state[:, 1:], z_next.unsqueeze(1)], dim=1) if has_context else z_next


def cem(step: Step, z0, goal, samples: int, horizon: int, iters: int, elites: int, action_dim: int, gen) -> torch.Tensor:
    """Cross-entropy method: Gaussian over action sequences refit to the best ``elites``."""
    mean = torch.zeros(horizon, action_dim, device=z0.device)
    std = torch.ones(horizon, action_dim, device=z0.device)
    for _ in range(iters):
        noise = torch.randn(samples, horizon, action_dim, device=z0.device, generator=gen)
        actions = (mean + std * noise).clamp(-1.0, 1.0)
        best = rollout_cost(step, z0, goal, actions).topk(elites, largest=False).indices
        mean, std = actions[best].mean(0), actions[best].std(0).clamp_min(0.05)
    return mean


def mppi(step: Step, z0, goal, samples: int, horizon: int, iters: int, temperature: float, action_dim: int, gen) -> torch.Tensor:
    """MPPI: exponentially weighted mean of sampled sequences."""
    mean = torch.zeros(horizon, action_dim, device=z0.device)
    for _ in range(iters):
        noise = 0.5 * torch.randn(samples, horizon, action_dim, device=z0.device, generator=gen)
        actions = (mean + noise).clamp(-1.0, 1.0)
        cost = rollout_cost(step, z0, goal, actions)
        weights = torch.softmax(-(cost - cost.min()) / temperature, dim=0)
        mean = (weights[:, None, None] * actions).sum(0)
    return mean


# ------------------------------------------------------------------------------------------ timing


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def time_ms(fn: Callable[[], object], device: torch.device, reps: int, warmup: int = 1) -> float:
    """Median wall time of ``fn`` in ms after ``warmup`` calls."""
    for _ in range(warmup):
        fn()
    sync(device)
    times = []
    for _ in range(reps):
        t0 = time.perf_counter()
        fn()
        sync(device)
        times.append((time.perf_counter() - t0) * 1e3)
    return statistics.median(times)




def time_backend(
    backend: dict[str, object], args: argparse.Namespace, images_np, z0_np, goal_np, action_dim: int
) -> dict[str, float]:
    """Encoder and planner figures of one backend; the planners run identical code on every backend."""
    dev = torch.device(str(backend["device"]))
    encode, step = backend["encode"], backend["step"]
    one, batch = torch.from_numpy(images_np[:1]).to(dev), torch.from_numpy(images_np).to(dev)
    z0, goal = torch.from_numpy(z0_np).to(dev), torch.from_numpy(goal_np).to(dev)
    gen = torch.Generator(device=dev).manual_seed(args.seed)
    plan_reps = max(1, args.reps // 2)

    def run_cem() -> torch.Tensor:
        return cem(step, z0, goal, args.cem_samples, args.horizon, args.cem_iters, args.cem_elites, action_dim, gen)

    def run_mppi() -> torch.Tensor:
        return mppi(step, z0, goal, args.mppi_samples, args.horizon, args.mppi_iters, 0.1, action_dim, gen)

    with torch.inference_mode():
        enc1_ms = time_ms(lambda: encode(one), dev, args.reps)
        encb_ms = time_ms(lambda: encode(batch), dev, args.reps)
        cem_ms = time_ms(run_cem, dev, plan_reps)
        mppi_ms = time_ms(run_mppi, dev, plan_reps)
    return {
        "encoder_latency_b1_ms": enc1_ms,
        "encoder_images_per_s": args.enc_batch / encb_ms * 1e3,
        "cem_replan_ms": cem_ms,
        "cem_ms_per_iter": cem_ms / args.cem_iters,
        "cem_replan_ms_full_budget": cem_ms / args.cem_iters * args.cem_full_iters,
        "mppi_replan_ms": mppi_ms,
        "mppi_ms_per_iter": mppi_ms / args.mppi_iters,
        "mppi_replan_ms_full_budget": mppi_ms / args.mppi_iters * args.mppi_full_iters,
    }


# ------------------------------------------------------------------------------------------ main


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument(
        "--bundle",
        type=Path,
        help="model bundle directory: time its encoder.onnx/predictor.onnx instead of the built-in networks (onnxruntime only)",
    )
    p.add_argument(
        "--providers",
        default="tensorrt,cuda,cpu",
        help="onnxruntime providers to time, comma separated (default: %(default)s; unavailable ones are skipped)",
    )
    p.add_argument("--no-torch", action="store_true", help="skip the torch baseline")
    p.add_argument("--fp16", action="store_true", help="TensorRT fp16 kernels (agreement tolerance becomes 2e-2)")
    p.add_argument("--image-size", type=int, default=64, help="encoder input size in pixels (default %(default)s)")
    p.add_argument("--patch", type=int, default=8, help="encoder patch size; tokens = (image-size/patch)^2 (default %(default)s)")
    p.add_argument("--dim", type=int, default=128, help="token width (default %(default)s)")
    p.add_argument("--heads", type=int, default=4, help="attention heads (default %(default)s)")
    p.add_argument("--enc-depth", type=int, default=4, help="encoder transformer blocks (default %(default)s)")
    p.add_argument("--pred-depth", type=int, default=4, help="predictor transformer blocks (default %(default)s)")
    p.add_argument("--action-dim", type=int, default=2, help="action size (default %(default)s)")
    p.add_argument("--enc-batch", type=int, default=64, help="batch for encoder throughput (default %(default)s)")
    p.add_argument("--cem-samples", type=int, default=300, help="CEM candidates (default %(default)s)")
    p.add_argument("--cem-elites", type=int, default=30, help="CEM elites (default %(default)s)")
    p.add_argument("--horizon", type=int, default=5, help="planning horizon for CEM and MPPI (default %(default)s)")
    p.add_argument("--cem-iters", type=int, default=30, help="CEM iterations actually run (default %(default)s; lower on CPU)")
    p.add_argument(
        "--cem-full-iters", type=int, default=30, help="CEM budget the replan time is extrapolated to (default %(default)s)"
    )
    p.add_argument(
        "--mppi-samples", type=int, default=2000, help="MPPI candidates (default %(default)s, as the hierarchical anchor)"
    )
    p.add_argument("--mppi-iters", type=int, default=6, help="MPPI iterations actually run (default %(default)s)")
    p.add_argument(
        "--mppi-full-iters", type=int, default=6, help="MPPI budget the replan time is extrapolated to (default %(default)s)"
    )
    p.add_argument("--reps", type=int, default=5, help="timed repetitions per figure, median reported (default %(default)s)")
    p.add_argument("--threads", type=int, default=2, help="CPU threads for torch and onnxruntime (default %(default)s)")
    p.add_argument(
        "--engine-cache",
        type=Path,
        default=None,
        help="TensorRT engine cache directory (default: the suite's, ~/.cache/jepa_agent/trt_engines)",
    )
    p.add_argument("--out", type=Path, default=RESULTS, help="JSON output (default %(default)s)")
    p.add_argument("--seed", type=int, default=0, help="seed for weights and samples (default %(default)s)")
    args = p.parse_args(argv)
    for name in (
        "image_size",
        "patch",
        "dim",
        "heads",
        "enc_batch",
        "cem_samples",
        "horizon",
        "cem_iters",
        "mppi_samples",
        "mppi_iters",
        "reps",
        "threads",
    ):
        if getattr(args, name) < 1:
            p.error(f"--{name.replace('_', '-')} must be >= 1")
    if not 1 <= args.cem_elites <= args.cem_samples:
        p.error("--cem-elites must be between 1 and --cem-samples")
    return args


def load_bundle_onnx(bundle: Path) -> tuple[Path, Path]:
    enc, pred = bundle / "encoder.onnx", bundle / "predictor.onnx"
    for f in (enc, pred):
        if not f.is_file():
            raise FileNotFoundError(f"--bundle {bundle}: {f.name} not found (expected encoder.onnx and predictor.onnx)")
    return enc, pred


def static_shape(arg: ort.NodeArg, what: str) -> tuple[int, ...]:
    dims = arg.shape[1:]
    if not all(isinstance(d, int) for d in dims):
        raise ValueError(f"{what} input {arg.name!r} has non-static dims {arg.shape}: only the batch dim may be dynamic")
    return tuple(dims)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    torch.manual_seed(args.seed)
    torch.set_num_threads(args.threads)
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    base_cfg = OrtConfig(
        fp16=args.fp16, intra_op_threads=args.threads, **({"engine_cache_dir": args.engine_cache} if args.engine_cache else {})
    )
    wanted = [PROVIDER_NAMES.get(p.strip().lower(), p.strip()) for p in args.providers.split(",") if p.strip()]
    atol = 2e-2 if args.fp16 else 1e-4

    with tempfile.TemporaryDirectory(prefix="bench_gpu_") as tmp:
        encoder = predictor = None
        if args.bundle:
            enc_path, pred_path = load_bundle_onnx(args.bundle)
            enc_probe = ort.InferenceSession(str(enc_path), providers=["CPUExecutionProvider"])
            pred_probe = ort.InferenceSession(str(pred_path), providers=["CPUExecutionProvider"])
            if len(pred_probe.get_inputs()) != 2:
                raise ValueError(
                    f"{pred_path} must take (latent or context, action); it has inputs {[i.name for i in pred_probe.get_inputs()]}"
                )
            image_in, (state_in, action_in) = enc_probe.get_inputs()[0], pred_probe.get_inputs()
            names = {"images": image_in.name, "state": state_in.name, "action": action_in.name}
            image_shape, image_dtype = (
                static_shape(image_in, "encoder"),
                np.uint8 if image_in.type == "tensor(uint8)" else np.float32,
            )
            state_shape, action_dim = static_shape(state_in, "predictor"), static_shape(action_in, "predictor")[0]
            out_dims = pred_probe.get_outputs()[0].shape[1:]
            latent_shape = tuple(out_dims) if all(isinstance(d, int) for d in out_dims) else state_shape[1:]
            args.no_torch = True
        else:
            tokens = (args.image_size // args.patch) ** 2
            encoder = TokenEncoder(args.image_size, args.patch, args.dim, args.enc_depth, args.heads).eval()
            predictor = TokenPredictor(tokens, args.dim, args.action_dim, args.pred_depth, args.heads).eval()
            image_shape, state_shape, action_dim = (3, args.image_size, args.image_size), (tokens, args.dim), args.action_dim
            latent_shape, image_dtype = state_shape, np.float32
            names = {"images": "images", "state": "tokens", "action": "action"}
            enc_path = export(encoder, (torch.rand(2, *image_shape) * 255,), ["images"], Path(tmp) / "encoder.onnx")
            pred_path = export(
                predictor,
                (torch.randn(2, *state_shape), torch.randn(2, action_dim)),
                ["tokens", "action"],
                Path(tmp) / "predictor.onnx",
            )

        rng = np.random.default_rng(args.seed)
        images_np = (rng.random((args.enc_batch, *image_shape)) * 255).astype(image_dtype)
        # A state may be a context window (C, *latent) of a bundle's predictor: the step then shifts it.
        z0_np = rng.standard_normal((1, *state_shape)).astype(np.float32)
        goal_np = rng.standard_normal((1, *latent_shape)).astype(np.float32)
        has_context = tuple(state_shape) != tuple(latent_shape)

        # Backends: torch first (the reference), then each onnxruntime provider that really starts.
        backends: dict[str, dict[str, object]] = {}
        if not args.no_torch:
            encoder, predictor = encoder.to(device), predictor.to(device)
            backends["torch"] = {"device": str(device), "encode": encoder, "step": predictor}
        skipped: dict[str, str] = {}
        agreement: dict[str, dict[str, float]] = {}
        for provider in wanted:
            if provider not in ort.get_available_providers():
                skipped[provider] = "not available in this onnxruntime"
                continue
            cfg = OrtConfig(
                providers=(provider,),
                fp16=base_cfg.fp16,
                intra_op_threads=args.threads,
                engine_cache_dir=base_cfg.engine_cache_dir,
            )
            enc_sess, enc_used = make_session(enc_path, cfg)
            pred_sess, pred_used = make_session(pred_path, cfg)
            if enc_used != provider or pred_used != provider:
                skipped[provider] = f"session fell back to {enc_used}/{pred_used}"
                continue
            rdev = torch.device("cuda", cfg.device_id) if provider != PROVIDER_NAMES["cpu"] else torch.device("cpu")
            enc_runner, pred_runner = (
                IoBoundRunner(enc_sess, enc_used, cfg.device_id),
                IoBoundRunner(pred_sess, pred_used, cfg.device_id),
            )
            backends[f"ort:{provider.removesuffix('ExecutionProvider')}"] = {
                "device": str(rdev),
                "encode": lambda x, r=enc_runner: r.run_torch({names["images"]: x})[0],
                "step": lambda z, a, r=pred_runner: advance(
                    z, r.run_torch({names["state"]: z, names["action"]: a})[0], has_context
                ),
            }

        if "torch" in backends:
            with torch.inference_mode():
                enc_ref = encoder(torch.from_numpy(images_np[:4]).to(device)).cpu().numpy()
                pred_ref = (
                    predictor(torch.from_numpy(np.repeat(z0_np, 4, 0)).to(device), torch.zeros(4, action_dim, device=device))
                    .cpu()
                    .numpy()
                )
            providers_checked = [p for p in wanted if p not in skipped]
            for label, path, feeds, ref in (
                ("encoder", enc_path, {"images": images_np[:4]}, enc_ref),
                (
                    "predictor",
                    pred_path,
                    {"tokens": np.repeat(z0_np, 4, 0), "action": np.zeros((4, action_dim), np.float32)},
                    pred_ref,
                ),
            ):
                for res in compare_providers(path, feeds, [ref], atol=atol, providers=providers_checked, config=base_cfg):
                    agreement.setdefault(res.requested.removesuffix("ExecutionProvider"), {})[label] = res.max_abs_diff
                    if not res.ok:
                        print(
                            f"error: {label} on {res.requested} differs from torch by {res.max_abs_diff:.2e} > {atol:.0e}",
                            file=sys.stderr,
                        )
                        return 1

        results = {
            name: time_backend(backend, args, images_np, z0_np, goal_np, action_dim)
            for name, backend in tqdm(backends.items(), desc="backends", unit="backend")
        }

    if not results:
        print("error: no backend could be timed: " + json.dumps(skipped), file=sys.stderr)
        return 1
    reference = "torch" if "torch" in results else next(iter(results))
    ratios = {
        name: {
            "encoder_latency_b1": results[reference]["encoder_latency_b1_ms"] / r["encoder_latency_b1_ms"],
            "encoder_throughput": r["encoder_images_per_s"] / results[reference]["encoder_images_per_s"],
            "cem_replan": results[reference]["cem_replan_ms"] / r["cem_replan_ms"],
            "mppi_replan": results[reference]["mppi_replan_ms"] / r["mppi_replan_ms"],
        }
        for name, r in results.items()
    }
    report = {
        "benchmark": "bench_gpu",
        "machine": machine_info(gpu=gpu_identity(0)),
        "command": " ".join([Path(sys.executable).name, *sys.argv]),
        "config": portable_args(args),
        "models": {
            "source": str(args.bundle) if args.bundle else "built-in",
            "image_shape": list(image_shape),
            "state_shape": list(state_shape),
            "latent_shape": list(latent_shape),
            "action_dim": action_dim,
        },
        "devices": {name: str(b["device"]) for name, b in backends.items()},
        "skipped_providers": skipped,
        "max_abs_diff_vs_torch": agreement,
        "extrapolated": args.cem_iters != args.cem_full_iters or args.mppi_iters != args.mppi_full_iters,
        "results": results,
        "speedup_vs_" + reference: ratios,
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=2) + "\n")

    m = report["machine"]
    print(f"machine: {m['cpu']} x{m['cores']}, gpu: {m['gpu']}, torch {m['torch']}, onnxruntime {m['onnxruntime']}")
    if skipped:
        print("skipped: " + "; ".join(f"{k}: {v}" for k, v in skipped.items()))
    columns = [("backend", -16), ("device", -8), ("enc b1 ms", 10), ("enc img/s", 11), ("CEM ms", 10), ("CEM full", 10)]
    columns += [("MPPI ms", 10), ("MPPI full", 11), ("CEM x", 7), ("MPPI x", 7)]
    print("".join(f"{name:<{-w}}" if w < 0 else f"{name:>{w}}" for name, w in columns))
    for name, r in results.items():
        print(
            f"{name:<16}{backends[name]['device']:<8}{r['encoder_latency_b1_ms']:>10.2f}{r['encoder_images_per_s']:>11.0f}"
            f"{r['cem_replan_ms']:>10.1f}{r['cem_replan_ms_full_budget']:>10.0f}{r['mppi_replan_ms']:>10.1f}"
            f"{r['mppi_replan_ms_full_budget']:>11.0f}{ratios[name]['cem_replan']:>7.2f}{ratios[name]['mppi_replan']:>7.2f}"
        )
    print(
        f"CEM: {args.cem_samples} samples x horizon {args.horizon} x {args.cem_iters} iters run ('full' = {args.cem_full_iters} iters); "
        f"MPPI: {args.mppi_samples} x {args.horizon} x {args.mppi_iters} ('full' = {args.mppi_full_iters}); "
        f"ratios vs {reference} (>1 = faster)"
    )
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
