"""Train a JEPA world model from one YAML experiment file.

    jepa-train --config config/train/two_rooms.yaml --out runs/two_rooms [--resume] [--set train.epochs=3]

Runs as a single process or under ``torchrun`` (DDP, detected from WORLD_SIZE/LOCAL_RANK; gloo on CPU).
Every epoch: a checkpoint (``checkpoints/last.pt``), a line in ``metrics.jsonl`` and TensorBoard scalars.
Reseeding at every epoch start makes ``--resume`` reproduce an uninterrupted run exactly.
Checkpoints and ``final.pt`` hold tensors and plain data only and are read back with
``torch.load(weights_only=True)``: a tampered checkpoint is refused, never executed.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import sys
import time
from dataclasses import asdict
from pathlib import Path
from typing import Any

import numpy as np
import torch
import yaml
from torch.utils.data import DataLoader, DistributedSampler
from tqdm import tqdm

from jepa_common.episodes import EpisodeSet
from jepa_world_model.augment import augment_frames, invariance_loss
from jepa_world_model.config import ExperimentConfig, load_config
from jepa_world_model.data_source import FrameSample, load_episodes, sample_frames
from jepa_world_model.metrics import (
    CollapseDetector,
    RepresentationCollapseError,
    effective_rank,
    latent_std,
    normalised_mse,
    ridge_probe_r2,
)
from jepa_world_model.models.world_model import LAYOUT_STD, DataDims, JEPAWorldModel

EXIT_BAD_CONFIG = 2
EXIT_COLLAPSE = 3


def _dist_info() -> tuple[int, int, int]:
    """(rank, local_rank, world_size) from torchrun's environment; (0, 0, 1) otherwise."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    return int(os.environ.get("RANK", "0")), int(os.environ.get("LOCAL_RANK", "0")), world


def _stack_windows(dataset: Any, n: int) -> dict[str, torch.Tensor]:
    """Evenly spaced items of a window dataset, stacked into one batch (fixed validation set)."""
    idx = np.linspace(0, len(dataset) - 1, min(n, len(dataset))).round().astype(np.int64)
    items = [dataset[int(i)] for i in np.unique(idx)]
    return {k: torch.as_tensor(np.stack([it[k] for it in items])) for k in items[0]}


def _fused_proprio(model: JEPAWorldModel, proprio: torch.Tensor | np.ndarray | None, lead: torch.Size) -> torch.Tensor | None:
    """Proprio flattened like the frames when the encoder fuses it (else None); a clear error when it is missing."""
    if not getattr(model.encoder, "use_proprio", False):
        return None
    if proprio is None:
        raise ValueError("the encoder fuses proprioception (encoder.use_proprio) but no proprio was given with the frames")
    proprio = torch.as_tensor(proprio, dtype=torch.float32)
    return proprio.reshape(lead.numel(), -1)


@torch.no_grad()
def encode_batched(
    model: JEPAWorldModel, frames: torch.Tensor | np.ndarray, proprio: torch.Tensor | np.ndarray | None = None, chunk: int = 512
) -> torch.Tensor:
    """Encode any number of frames (..., H, W, 3) (and their proprio (..., P) for fusing encoders) in chunks."""
    frames = torch.as_tensor(frames)
    lead = frames.shape[:-3]
    flat = frames.reshape(-1, *frames.shape[-3:])
    pro = _fused_proprio(model, proprio, lead)
    out = torch.cat(
        [model.encode(flat[i : i + chunk], None if pro is None else pro[i : i + chunk]) for i in range(0, len(flat), chunk)]
    )
    return out.reshape(*lead, *model.latent_shape)


@torch.no_grad()
def recalibrate_batchnorm(model: JEPAWorldModel, frames: np.ndarray, proprio: np.ndarray | None = None, chunk: int = 256) -> None:
    """Recompute BatchNorm running statistics for the current weights over ``frames`` (train-mode forward, no grad).

    Running averages lag behind the weights during training; evaluation and export must use statistics
    that match the final weights, or eval-mode latents drift from the ones the predictor was trained on.
    """
    norms = [m for m in model.encoder.modules() if isinstance(m, torch.nn.modules.batchnorm._BatchNorm)]
    if not norms:
        return
    was_training = model.training
    momenta = [m.momentum for m in norms]
    for m in norms:
        m.reset_running_stats()
        m.momentum = None  # cumulative average over the whole pass
    model.encoder.train()
    x = torch.as_tensor(frames)
    pro = _fused_proprio(model, proprio, x.shape[:1])
    device = next(model.parameters()).device
    for i in range(0, len(x) - chunk + 1 if len(x) >= chunk else 1, chunk):
        model.encoder(x[i : i + chunk].to(device), None if pro is None else pro[i : i + chunk].to(device))
    for m, mom in zip(norms, momenta):
        m.momentum = mom
    model.train(was_training)


@torch.no_grad()
def evaluate(
    model: JEPAWorldModel,
    val: dict[str, torch.Tensor],
    probe_train: FrameSample,
    probe_val: FrameSample,
    ridge: float,
) -> dict[str, Any]:
    """Latent spread, effective rank, k-step normalised prediction error per level, linear probe R^2.

    Of the agent part of the latent when the encoder has a layout part (``JEPAWorldModel.agent_part``).
    """
    was_training = model.training
    recalibrate_batchnorm(model, probe_train.frames, probe_train.proprio)
    model.eval()
    c = model.context
    z = encode_batched(model, val["frames"], val.get("proprio"))  # (N, T, *L)
    part = model.agent_part
    z_agent = part(z)
    agent_shape = z_agent.shape[2:]
    flat = z_agent.reshape(-1, *agent_shape)
    std = latent_std(flat)
    out: dict[str, Any] = {
        "latent_std_mean": float(std.mean()),
        "latent_std_min": float(std.min()),
        "latent_std_per_dim": [round(float(v), 5) for v in std],  # jsonl only; TensorBoard gets the histogram
        "effective_rank": effective_rank(flat),
    }
    scale = std.reshape(agent_shape)
    actions = val["actions"].float()
    window = z[:, :c]
    for k in range(z.shape[1] - c):
        z_next = model.predict(window, actions[:, c - 1 + k])
        out[f"val_pred_error_{k + 1}"] = normalised_mse(part(z_next), part(z[:, c + k]), scale)
        window = torch.cat([window, z_next.unsqueeze(1)], dim=1)[:, -c:]
    for lv in range(1, len(model.level_strides)):
        s = model.level_strides[lv]
        n_sub = (z.shape[1] - 1) // s + 1
        zs = z[:, 0 : (n_sub - 1) * s + 1 : s]
        window = zs[:, :1]
        for k in range(n_sub - 1):
            macro = model.encode_macro(actions[:, k * s : (k + 1) * s], lv)
            z_next = model.predict(window, macro, level=lv)
            out[f"val_level{lv}_pred_error_{k + 1}"] = normalised_mse(part(z_next), part(zs[:, k + 1]), scale)
            window = torch.cat([window, z_next.unsqueeze(1)], dim=1)[:, -c:]
    if probe_train.states is not None and probe_val.states is not None:
        zt = part(encode_batched(model, probe_train.frames, probe_train.proprio))
        zv = part(encode_batched(model, probe_val.frames, probe_val.proprio))
        out["probe_r2"] = ridge_probe_r2(zt, torch.as_tensor(probe_train.states), zv, torch.as_tensor(probe_val.states), ridge)
    model.train(was_training)
    return out


class Trainer:
    """One training run: data, model, optimiser, epochs, checkpoints, final artefact ``final.pt``."""

    def __init__(
        self, cfg: ExperimentConfig, out_dir: str | Path, episodes: EpisodeSet | None = None, meta: dict | None = None
    ) -> None:
        self.cfg, self.out = cfg, Path(out_dir)
        self.rank, self.local_rank, self.world_size = _dist_info()
        self.is_main = self.rank == 0
        torch.set_num_threads(cfg.train.num_threads)
        # Subnormal floats appear in the gradients after a few hundred steps and run far slower on x86 CPUs:
        # flushing them to zero made trained-model steps 1.49x faster with the same losses (bench/bench_train_step.py).
        torch.set_flush_denormal(True)
        self.device = torch.device(cfg.train.device if cfg.train.device != "cuda" else f"cuda:{self.local_rank}")
        if self.world_size > 1 and not torch.distributed.is_initialized():
            torch.distributed.init_process_group("nccl" if self.device.type == "cuda" else "gloo")
        if episodes is None:
            episodes, meta = load_episodes(cfg.data)
        from jepa_world_model.data.windows import WindowDataset, split_episodes

        self.meta = dict(meta or {})
        self.data_report = episodes.metadata.get("data_report")  # per bag: frames kept/dropped, rates, zeroed actions
        self.train_eps, self.val_eps = split_episodes(episodes, cfg.data.val_fraction, cfg.data.seed)
        t_len = cfg.window_length()
        self.context, self.horizon = cfg.model.context, t_len - cfg.model.context
        self.train_set = WindowDataset(self.train_eps, cfg.model.context, self.horizon, cfg.model.frameskip)
        self.val_set = WindowDataset(self.val_eps, cfg.model.context, self.horizon, cfg.model.frameskip)
        self.contact_flags = None
        if cfg.train.contact_oversample > 0:
            from jepa_world_model.data.windows import contact_windows

            self.contact_flags = contact_windows(self.train_set, cfg.train.contact_threshold)
            n_contact = int(self.contact_flags.sum())
            self.meta["contact_windows"] = [n_contact, len(self.contact_flags)]
            if self.is_main:
                tqdm.write(
                    f"contact windows: {n_contact} of {len(self.contact_flags)} ({100 * n_contact / len(self.contact_flags):.1f}%), "
                    f"{cfg.train.contact_oversample:.0%} of every batch drawn from them"
                )
        if len(self.train_set) < cfg.train.batch_size:
            raise ValueError(
                f"only {len(self.train_set)} training windows of {t_len} frames (frameskip {cfg.model.frameskip}) "
                f"for train.batch_size {cfg.train.batch_size}: collect more or longer episodes"
            )
        self.dims = DataDims(
            image_size=episodes.image_size[0], raw_action_dim=episodes.action_dim, proprio_dim=episodes.proprio_dim
        )
        if "raw_action_low" not in self.meta:
            acts = np.concatenate([e.actions[:-1] for e in episodes.episodes])
            self.meta.update(raw_action_low=acts.min(0).tolist(), raw_action_high=acts.max(0).tolist(), action_norm_max=None)
        self.val_batch = _stack_windows(self.val_set, cfg.train.val_windows)
        self.probe_train = sample_frames(self.train_eps, 4000)
        self.probe_val = sample_frames(self.val_eps, 2000)

        torch.manual_seed(cfg.seed)
        self.model = JEPAWorldModel(cfg, self.dims).to(self.device)
        if self.model.decoder is not None:
            self.model.decoder.requires_grad_(False)  # trained afterwards on frozen latents
        params = [p for p in self.model.parameters() if p.requires_grad]
        self.optimizer = torch.optim.AdamW(params, lr=cfg.train.lr, weight_decay=cfg.train.weight_decay)
        self.ddp_model: torch.nn.Module = self.model
        if self.world_size > 1:
            self.ddp_model = torch.nn.parallel.DistributedDataParallel(
                self.model, device_ids=[self.local_rank] if self.device.type == "cuda" else None
            )
        c = cfg.train.collapse
        self.collapse = CollapseDetector(c.min_effective_rank, c.min_std, c.patience)
        self.start_epoch = 0
        self.global_step = 0
        self.history: list[dict[str, Any]] = []

    # ---- checkpoints -------------------------------------------------------------------------
    @property
    def ckpt_path(self) -> Path:
        return self.out / "checkpoints" / "last.pt"

    def save_checkpoint(self, epoch: int) -> None:
        if not self.is_main:
            return
        self.ckpt_path.parent.mkdir(parents=True, exist_ok=True)
        state = {
            "model": self.model.state_dict(),
            "optimizer": self.optimizer.state_dict(),
            "epoch": epoch,
            "global_step": self.global_step,
            "collapse_bad_checks": self.collapse.bad_checks,
            "history": self.history,
            "config": self.cfg.model_dump(mode="json"),
        }
        tmp = self.ckpt_path.with_suffix(".tmp")
        torch.save(state, tmp)
        tmp.replace(self.ckpt_path)  # atomic: a crash never leaves a half-written checkpoint

    def load_checkpoint(self) -> None:
        if not self.ckpt_path.is_file():
            raise FileNotFoundError(f"--resume: no checkpoint at {self.ckpt_path}; run without --resume to start fresh")
        from jepa_world_model.bundle import safe_torch_load

        # tensors and plain data only: a tampered checkpoint is refused, never executed
        state = safe_torch_load(self.ckpt_path, self.device)
        missing = [k for k in ("model", "optimizer", "epoch", "global_step", "collapse_bad_checks", "history", "config")
                   if not isinstance(state, dict) or k not in state]
        if missing:
            raise ValueError(f"--resume: {self.ckpt_path} is not a jepa-train checkpoint (missing {missing}); use a new --out")
        saved, now = state["config"], self.cfg.model_dump(mode="json")
        # only the epoch count and the decoder (trained after the JEPA, on frozen latents) may change on
        # resume; anything else would mix two experiments
        for cfg_dict in (saved, now):
            cfg_dict["train"].pop("epochs", None)
            cfg_dict.pop("decoder", None)
        if saved != now:
            raise ValueError(
                f"--resume: the config differs from the one {self.ckpt_path} was trained with "
                "(only train.epochs and the decoder section may change); use a new --out"
            )
        self.model.load_state_dict(state["model"])
        self.optimizer.load_state_dict(state["optimizer"])
        self.start_epoch, self.global_step = state["epoch"], state["global_step"]
        self.collapse.bad_checks = state["collapse_bad_checks"]
        self.history = state["history"]

    # ---- loop --------------------------------------------------------------------------------
    def _log(self, record: dict[str, Any], writer: Any) -> None:
        self.history.append(record)
        if not self.is_main:  # every rank keeps the history (resume); only rank 0 writes the file
            return
        with open(self.out / "metrics.jsonl", "w") as f:  # rewritten whole: stays consistent with the checkpoint
            for rec in self.history:
                f.write(json.dumps(rec) + "\n")
        if writer is not None:
            for key, val in record.items():
                if isinstance(val, (int, float)) and key != "epoch":
                    writer.add_scalar(key, val, record["epoch"])
                elif isinstance(val, list) and val:
                    writer.add_histogram(key, np.asarray(val), record["epoch"])
            writer.flush()

    def _set_lr(self, batches_per_epoch: int) -> None:
        """Learning rate as a pure function of the global step (so resume reproduces it): warmup, then cosine."""
        tc = self.cfg.train
        step, total = self.global_step, max(tc.epochs * batches_per_epoch, 1)
        scale = 1.0
        if tc.lr_schedule == "cosine":
            progress = min(step / total, 1.0)
            scale = tc.lr_min_fraction + (1.0 - tc.lr_min_fraction) * 0.5 * (1.0 + math.cos(math.pi * progress))
        if tc.warmup_steps and step < tc.warmup_steps:
            scale *= (step + 1) / tc.warmup_steps
        for group in self.optimizer.param_groups:
            group["lr"] = tc.lr * scale

    def train_epoch(self, epoch: int) -> dict[str, float]:
        cfg = self.cfg
        # reseeding per epoch (not carrying RNG state) is what makes resume == uninterrupted
        torch.manual_seed(cfg.seed * 1_000_003 + epoch * 7919 + self.rank)
        if self.contact_flags is not None:
            from jepa_world_model.data.windows import ContactSampler

            sampler = ContactSampler(
                self.contact_flags, cfg.train.contact_oversample, len(self.train_set) // self.world_size, cfg.seed, self.rank
            )
        else:
            sampler = DistributedSampler(
                self.train_set, num_replicas=self.world_size, rank=self.rank, shuffle=True, seed=cfg.seed, drop_last=True
            )
        sampler.set_epoch(epoch)
        loader = DataLoader(self.train_set, batch_size=cfg.train.batch_size, sampler=sampler, drop_last=True, num_workers=0)
        n_batches = len(loader) if cfg.train.steps_per_epoch == 0 else min(len(loader), cfg.train.steps_per_epoch)
        sums: dict[str, float] = {}
        bar = tqdm(total=n_batches, desc=f"epoch {epoch + 1}/{cfg.train.epochs}", disable=not self.is_main, leave=False)
        self.model.train()
        for i, batch in enumerate(loader):
            if i >= n_batches:
                break
            frames = batch["frames"].to(self.device)
            actions = batch["actions"].to(self.device).float()
            proprio = batch["proprio"].to(self.device).float() if "proprio" in batch else None
            self._set_lr(n_batches)
            loss, logs = self.ddp_model(augment_frames(frames, cfg.augment), actions, proprio)
            if cfg.augment.enabled and cfg.augment.invariance_weight > 0 and not self.model.encoder_frozen:
                inv = invariance_loss(self.model.encoder, frames, cfg.augment)
                loss = loss + cfg.augment.invariance_weight * inv
                logs["invariance"] = inv.item()
                logs["loss"] = loss.item()
            self.optimizer.zero_grad(set_to_none=True)
            loss.backward()
            if cfg.train.grad_clip > 0:
                torch.nn.utils.clip_grad_norm_([p for p in self.model.parameters() if p.requires_grad], cfg.train.grad_clip)
            self.optimizer.step()
            self.model.update_target()
            self.global_step += 1
            if not np.isfinite(logs["loss"]):
                raise FloatingPointError(f"loss became {logs['loss']} at epoch {epoch + 1} step {i}: lower train.lr")
            for k, v in logs.items():
                sums[k] = sums.get(k, 0.0) + v
            bar.set_postfix(loss=f"{logs['loss']:.4f}")
            bar.update(1)
        bar.close()
        out = {f"train_{k}": v / max(n_batches, 1) for k, v in sums.items()}
        out["lr"] = self.optimizer.param_groups[0]["lr"]
        return out

    def fit(self, resume: bool = False, stop_after: int | None = None) -> dict[str, Any]:
        """Train all epochs (or the remaining ones), then finalise; returns the last metrics record.

        Args:
            resume: continue from ``checkpoints/last.pt``.
            stop_after: stop (checkpointed, not finalised) once this many epochs are done, as an
                interruption would; a later ``fit(resume=True)`` finishes the run.
        """
        if self.is_main:
            self.out.mkdir(parents=True, exist_ok=True)
            (self.out / "config.yaml").write_text(yaml.safe_dump(self.cfg.model_dump(mode="json"), sort_keys=False))
            if self.data_report:
                from jepa_world_model.data.bags import format_data_report, write_data_report

                write_data_report(self.data_report, self.out)
                tqdm.write(format_data_report(self.data_report))
        if resume:
            self.load_checkpoint()
        writer = None
        if self.is_main:
            from torch.utils.tensorboard import SummaryWriter

            writer = SummaryWriter(str(self.out / "tb"))
        t0 = time.time()
        try:
            for epoch in range(self.start_epoch, self.cfg.train.epochs):
                record: dict[str, Any] = {"epoch": epoch + 1}
                record.update(self.train_epoch(epoch))
                record["step"] = self.global_step
                record.update(evaluate(self.model, self.val_batch, self.probe_train, self.probe_val, self.cfg.train.probe_ridge))
                record["elapsed_s"] = round(time.time() - t0, 2)
                self.collapse.check(record["effective_rank"], record["latent_std_mean"])
                self._log(record, writer)
                self.save_checkpoint(epoch + 1)
                if self.is_main:
                    summary = " ".join(f"{k}={v:.4g}" for k, v in record.items() if k in _SHOWN)
                    tqdm.write(f"epoch {epoch + 1}: {summary}")
                if stop_after is not None and epoch + 1 >= stop_after:
                    return self.history[-1]
        finally:
            if writer is not None:
                writer.close()
        self.finalise()
        return self.history[-1] if self.history else {}

    def finalise(self) -> None:
        """Latent statistics for cost normalisation, the visual decoder, and ``final.pt`` for export."""
        if not self.is_main:
            return
        torch.manual_seed(self.cfg.seed + 17)
        sample = sample_frames(self.train_eps, 8000)
        frames = sample.frames
        recalibrate_batchnorm(self.model, frames, sample.proprio)
        self.model.eval()  # BatchNorm uses the recalibrated running statistics from here on
        z = encode_batched(self.model, frames, sample.proprio)
        self.model.latent_mean.copy_(z.mean(0))
        self.model.latent_std.copy_(z.std(0).clamp_min(1e-6))
        # a layout part is context, not state: normalised distances must not see it (empty slice without one)
        self.model.layout_part(self.model.latent_std).fill_(LAYOUT_STD)
        if self.model.decoder is not None:
            self.train_decoder(frames, z)
        final = {
            "model": self.model.state_dict(),
            "config": self.cfg.model_dump(mode="json"),
            "dims": asdict(self.dims),
            "meta": self.meta,
            "metrics": self.history[-1] if self.history else {},
            "onnx_encoder": getattr(self.model.encoder, "onnx_bytes", None),
        }
        torch.save(final, self.out / "final.pt")

    def train_decoder(self, frames: np.ndarray, z: torch.Tensor) -> None:
        dec = self.model.decoder.requires_grad_(True)
        dc = self.cfg.decoder
        opt = torch.optim.Adam(dec.parameters(), lr=dc.lr)
        target = torch.as_tensor(frames)
        n, bs = len(frames), 128
        # Pixels that differ from the average frame (the agent, moved objects) get extra weight: with a plain
        # MSE a small agent on a static scene costs almost nothing, and the decoder learns to draw only the scene.
        mean_img = target.float().mean(0) / 255.0
        g = torch.Generator().manual_seed(self.cfg.seed)
        for ep in tqdm(range(dc.epochs), desc="decoder", disable=not self.is_main, leave=False):
            perm = torch.randperm(n, generator=g)
            total = 0.0
            for i in range(0, n - bs + 1, bs):
                idx = perm[i : i + bs]
                img = target[idx].to(self.device).float() / 255.0
                weight = (
                    1.0 + dc.foreground_weight * ((img - mean_img.to(self.device)).abs().amax(-1, keepdim=True) > 0.1).float()
                )
                loss = (weight * (dec(z[idx].to(self.device)) - img).pow(2)).mean()
                opt.zero_grad(set_to_none=True)
                loss.backward()
                opt.step()
                total += loss.item()
            self.meta.setdefault("decoder_mse", [])
            self.meta["decoder_mse"].append(total / max(n // bs, 1))
            tqdm.write(f"decoder epoch {ep + 1}: weighted mse {self.meta['decoder_mse'][-1]:.5f}")
        dec.requires_grad_(False)


_SHOWN = (
    "train_loss",
    "val_pred_error_1",
    "val_pred_error_8",
    "val_level1_pred_error_1",
    "effective_rank",
    "latent_std_mean",
    "probe_r2",
)


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="jepa-train", description="Train a JEPA world model from a YAML experiment file.")
    p.add_argument("--config", required=True, help="experiment YAML (see config/train/*.yaml)")
    p.add_argument(
        "--out", default=None, help="run directory for checkpoints, metrics.jsonl, tb/ and final.pt (default runs/<name>)"
    )
    p.add_argument("--resume", action="store_true", help="continue from <out>/checkpoints/last.pt (same config required)")
    p.add_argument(
        "--set",
        dest="overrides",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="override a config value, e.g. --set train.epochs=3 (repeatable)",
    )
    return p


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        cfg = load_config(args.config, args.overrides)
    except (ValueError, FileNotFoundError) as exc:
        print(f"jepa-train: {exc}", file=sys.stderr)
        return EXIT_BAD_CONFIG
    out = args.out or f"runs/{cfg.name}"
    try:
        trainer = Trainer(cfg, out)
        record = trainer.fit(resume=args.resume)
    except RepresentationCollapseError as exc:
        print(f"jepa-train: stopped: {exc}", file=sys.stderr)
        return EXIT_COLLAPSE
    except (ValueError, FileNotFoundError) as exc:
        print(f"jepa-train: {exc}", file=sys.stderr)
        return EXIT_BAD_CONFIG
    finally:
        if torch.distributed.is_available() and torch.distributed.is_initialized():
            torch.distributed.destroy_process_group()
    if trainer.is_main:
        print(json.dumps({"run": str(out), **{k: record.get(k) for k in _SHOWN if k in record}}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
