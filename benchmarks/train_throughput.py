"""Training throughput: images per second of the frame loader and of training steps.

For each batch size it prints:

* ``loader``: images/s of the training DataLoader alone (frame cache -> uint8 batches), for each
  ``--workers`` setting;
* ``step``: images/s of training steps on batches already on the device (uint8 -> float, kornia
  augmentation, standardisation, forward, backward, optimizer step; bf16 autocast on CUDA);
* ``trainer``: images/s of the same steps through Lightning's Trainer fed by the loader (the
  end-to-end number), with the GPU's mean utilisation during it when CUDA is present.

The data is the default synthetic cohort (``data/synthetic``, generated on first use like
``python train.py``) or ``--root``; configs are the project's own (``--model`` is a model config).

    python benchmarks/train_throughput.py [--model cnn] [--batch-sizes 64 128 256 512] [--workers 0 2]

On a CPU that other jobs share, ``--threads 1`` (or ``OMP_NUM_THREADS=1 python train.py``) can be
several times faster than torch's default of one thread per core, whose threads wait on each other.
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
import threading
import time

import _harness
import pytorch_lightning as pl
import torch

REPO = _harness.REPO


class GpuSampler(threading.Thread):
    """Samples ``nvidia-smi``'s utilisation of GPU 0 every ``period`` seconds."""

    def __init__(self, period: float = 0.2) -> None:
        super().__init__(daemon=True)
        self.period, self.values, self._halt = period, [], threading.Event()
        self.enabled = torch.cuda.is_available() and shutil.which("nvidia-smi") is not None

    def run(self) -> None:
        while self.enabled and not self._halt.is_set():
            out = subprocess.run(
                ["nvidia-smi", "--query-gpu=utilization.gpu", "--format=csv,noheader,nounits", "-i", "0"],
                capture_output=True, text=True,
            )  # fmt: skip
            if out.returncode == 0 and out.stdout.strip():
                self.values.append(float(out.stdout.split()[0]))
            self._halt.wait(self.period)

    def stop(self) -> str:
        self._halt.set()
        if self.is_alive():
            self.join()
        return f"{sum(self.values) / len(self.values):.0f}%" if self.values else "-"


def loader_rate(loader, num_batches: int) -> float:
    it = iter(loader)
    next(it)  # worker start-up and first memmap opens are not throughput
    n, t0 = 0, time.perf_counter()
    for _ in range(num_batches):
        try:
            batch = next(it)
        except StopIteration:
            break
        n += len(batch["label"])
    return n / (time.perf_counter() - t0)


def step_rate(module, batches: list[dict], device: torch.device, steps: int) -> float:
    module.to(device).train()
    optimizer = module.configure_optimizers()["optimizer"]
    key = module.input_key
    autocast = torch.autocast("cuda", dtype=torch.bfloat16) if device.type == "cuda" else None

    def one(batch: dict) -> None:
        # the module's own preparation (augmentation, standardisation, session reference)
        img = module.prepare_batch(dict(batch), augment=True)[key]
        if autocast is not None:
            with autocast:
                loss = module._loss(module(img), batch["label"])
        else:
            loss = module._loss(module(img), batch["label"])
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()

    one(batches[0])  # warm-up
    if device.type == "cuda":
        torch.cuda.synchronize()
    n, t0 = 0, time.perf_counter()
    for i in range(steps):
        batch = batches[i % len(batches)]
        one(batch)
        n += len(batch["label"])
    if device.type == "cuda":
        torch.cuda.synchronize()
    return n / (time.perf_counter() - t0)


class _Timer(pl.Callback):
    def __init__(self, skip: int = 2) -> None:
        self.skip, self.images, self.t0 = skip, 0, None

    def on_train_batch_start(self, trainer, module, batch, batch_idx):
        if batch_idx == self.skip:
            self.t0 = time.perf_counter()

    def on_train_batch_end(self, trainer, module, outputs, batch, batch_idx):
        if batch_idx >= self.skip:
            self.images += len(batch["label"])

    @property
    def rate(self) -> float:
        if self.t0 is None or not self.images:
            return float("nan")
        return self.images / (time.perf_counter() - self.t0)


def trainer_rate(cfg, steps: int, accelerator: str) -> tuple[float, str]:
    from hydra.utils import instantiate

    dm, module = instantiate(cfg.data), instantiate(cfg.model)
    timer = _Timer()
    gpu = GpuSampler()
    trainer = pl.Trainer(
        accelerator=accelerator, devices=1, max_epochs=1, limit_train_batches=steps + timer.skip,
        limit_val_batches=0, logger=False, enable_checkpointing=False, enable_progress_bar=False,
        enable_model_summary=False, precision="bf16-mixed" if accelerator == "gpu" else "32-true",
        callbacks=[timer], num_sanity_val_steps=0,
    )  # fmt: skip
    gpu.start()
    trainer.fit(module, datamodule=dm)
    util = gpu.stop()
    return timer.rate, util


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--model", default="cnn", help="model config (conf/model/<name>.yaml); default cnn")
    parser.add_argument(
        "--root", default=None, help="dataset root (default: data/synthetic, generated if absent)"
    )
    parser.add_argument("--batch-sizes", type=int, nargs="+", default=[64, 128, 256, 512])
    parser.add_argument("--workers", type=int, nargs="+", default=[0, 2], help="loader processes to try")
    parser.add_argument("--steps", type=int, default=8, help="timed batches per measurement (default 8)")
    parser.add_argument("--image-size", type=int, nargs=2, default=[72, 96], metavar=("H", "W"))
    parser.add_argument("--device", default="auto", help="auto | cpu | cuda")
    parser.add_argument(
        "--threads",
        type=int,
        default=None,
        help="torch CPU threads (default: torch's; 1 is faster on a busy CPU)",
    )
    _harness.add_markdown_argument(parser)
    args = parser.parse_args(argv)
    report = _harness.Report(args.markdown, seed=None)
    if args.threads:
        torch.set_num_threads(args.threads)

    from hydra.utils import instantiate

    from mouseemo.utils.device import pick_device

    device = pick_device(args.device)
    accelerator = "gpu" if device.type == "cuda" else "cpu"
    root = args.root or str(REPO / "data" / "synthetic")
    workers = max(args.workers)
    base = [
        f"model={args.model}", f"data.root={root}", f"paths.root_dir={REPO}", f"paths.output_dir={REPO}/logs/throughput",
        f"data.image_size=[{args.image_size[0]},{args.image_size[1]}]", "data.train_stride=1",
        f"data.pin_memory={device.type == 'cuda'}",
    ]  # fmt: skip
    if args.root:
        base.append("data.synthesize=null")
    name = (
        torch.cuda.get_device_name(device)
        if device.type == "cuda"
        else f"CPU, {torch.get_num_threads()} threads"
    )
    report.line(
        f"# training throughput, model={args.model}, frames {args.image_size[0]}x{args.image_size[1]}, {name}"
    )
    report.line(
        f"# torch {torch.__version__}, pytorch-lightning {pl.__version__}; images/s (higher is better)\n"
    )
    head = ["batch"] + [f"loader w={w}" for w in args.workers] + ["step", f"trainer w={workers}", "GPU util"]
    report.table(head, align="---:")
    for bs in args.batch_sizes:
        row = [str(bs)]
        for w in args.workers:
            cfg = _harness.train_config([*base, f"data.batch_size={bs}", f"data.num_workers={w}"])
            dm = instantiate(cfg.data)
            dm.prepare_data()
            dm.setup("fit")
            row.append(f"{loader_rate(dm.train_dataloader(), args.steps):.0f}")
        cfg = _harness.train_config([*base, f"data.batch_size={bs}", "data.num_workers=0"])
        dm, module = instantiate(cfg.data), instantiate(cfg.model)
        dm.prepare_data()
        dm.setup("fit")
        it = iter(dm.train_dataloader())
        batches = []
        for _ in range(min(args.steps, 4)):
            b = next(it)
            batches.append({k: v.to(device) if torch.is_tensor(v) else v for k, v in b.items()})
        row.append(f"{step_rate(module, batches, device, args.steps):.0f}")
        cfg = _harness.train_config([*base, f"data.batch_size={bs}", f"data.num_workers={workers}"])
        rate, util = trainer_rate(cfg, args.steps, accelerator)
        row += [f"{rate:.0f}", util]
        report.row(row)
    report.write()


if __name__ == "__main__":
    import logging
    import warnings

    logging.getLogger("pytorch_lightning").setLevel(logging.ERROR)
    warnings.filterwarnings("ignore")
    main()
