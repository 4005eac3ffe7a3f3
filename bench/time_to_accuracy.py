"""Benchmark 5: wall seconds from a cold start to 91% Fashion-MNIST test top-1, cnnlab vs PyTorch.

    python -m bench.time_to_accuracy [--model wide_typical_cnn] [--max-epochs 15] [--target 0.91]

Recipe, the same on both sides: the model, Adam at lr 2e-3 decayed by half a
cosine to 0 over the `--max-epochs` budget (per step), batch 128, Fashion-MNIST
z-scored with the training split's statistics, the same shuffled batches from
cnnlab's pipeline, and the test set evaluated after every epoch. The clock
starts before the data is loaded and the model is built (compilation
included) and stops at the first epoch whose test top-1 reaches the target.
cnnlab's side runs the loop's own `train_epoch` and `evaluate`. Goal: faster
than PyTorch. The two runs take turns, one epoch each, each on its own clock
(the time spent in its own epochs), so a change in the machine's load hits
both: run one after the other, the same build gave 0.90 and 1.27. Both start from the same weights: PyTorch's twin gets cnnlab's
initial params for the run's seed (checked: the same logits to 1e-4), so the
two differ only in the framework that trains them (and in their dropout
draws). With each framework's default initialization instead, cnnlab reached
91% at epoch 9-10 and PyTorch at epoch 7.

The default model is the typical CNN at widths (32, 64) and a dense 128
(225,034 parameters). With this recipe in PyTorch, LeNet-5 stopped at 90.9%
after 15 epochs and the lecture's 27,562-parameter typical CNN at 88.6%.
"""

import argparse
import time
from collections.abc import Iterator

import jax
import numpy as np

from bench import common, fashion

# model: (cnnlab overrides, image size, PyTorch twin's arguments)
MODELS = {
    "lenet5": (["model=lenet5"], 32, {}),
    "typical_cnn": (["model=typical_cnn"], 28, {}),
    "wide_typical_cnn": (["model=typical_cnn", "model.features=[32,64]", "model.hidden_size=128"], 28,
                         {"features": (32, 64), "hidden_size": 128}),
}  # fmt: skip
LEARNING_RATE = 2e-3
BATCH = 128


def recipe(model: str, epochs: int) -> list[str]:
    overrides, size, _ = MODELS[model]
    return [*overrides, "optimizer=adam", f"optimizer.learning_rate={LEARNING_RATE}", f"trainer.batch_size={BATCH}",
            "schedule=cosine", f"schedule.length={epochs}", f"trainer.epochs={epochs}", f"data.image_size={size}",
            "logger.progress_bar=false", "logger.tensorboard=false"]  # fmt: skip


def cnnlab_epochs(model: str, max_epochs: int) -> Iterator[tuple[int, float, float]]:
    """cnnlab's run, one epoch per `next`: (epoch, test top-1, seconds not to count)."""
    from cnnlab.train import loop, parallel, setup
    from cnnlab.train.progress import Progress

    cfg = fashion.config(*recipe(model, max_epochs))
    par = parallel.create(cfg["parallel"]["name"])
    job = setup.build(cfg, par)
    state, progress = job.init(par), Progress.fresh(1)
    for epoch in range(max_epochs):
        state, progress, *_ = loop.train_epoch(job, par, state, progress, epoch, cfg, save=None, wall=None)
        yield epoch + 1, loop.evaluate(job, par, state, "test")[0]["top1"], 0.0


def torch_epochs(model: str, max_epochs: int) -> Iterator[tuple[int, float, float]]:
    """The same recipe in PyTorch, one epoch per `next`: (epoch, test top-1, seconds not to count)."""
    import grain
    import torch

    from bench import torch_cpu, torch_models
    from cnnlab import data, optim

    torch.set_num_threads(torch_cpu.threads())
    torch.manual_seed(0)
    cfg = fashion.config(*recipe(model, max_epochs))
    dataset = data.load(cfg["data"])
    net = getattr(torch_models, cfg["model"]["name"])(**MODELS[model][2])
    copying = time.perf_counter()
    same_start(net, cfg)
    untimed = time.perf_counter() - copying  # the copy is the benchmark's, not PyTorch's
    opt = torch.optim.Adam(net.parameters(), lr=LEARNING_RATE, eps=1e-8)
    # The learning rate of every step from the schedule cnnlab builds for the same config, computed once.
    steps_per_epoch = len(dataset.splits["train"]) // BATCH  # cnnlab's epochs drop the remainder
    _, learning_rate = optim.build(cfg["optimizer"], cfg["schedule"], steps_per_epoch=steps_per_epoch)
    rates = np.asarray(learning_rate(np.arange(max_epochs * steps_per_epoch)))
    factor = lambda step: float(rates[min(step, len(rates) - 1)]) / LEARNING_RATE  # noqa: E731
    schedule = torch.optim.lr_scheduler.LambdaLR(opt, factor)
    for epoch in range(max_epochs):
        net.train()
        batches = data.train_batches(dataset.splits["train"], batch_size=BATCH, seed=cfg["seed"], epoch=epoch,
                                     normalization=dataset.normalization)  # fmt: skip
        for batch in batches.to_iter_dataset(grain.ReadOptions(num_threads=2, prefetch_buffer_size=4)):
            opt.zero_grad(set_to_none=True)
            torch.nn.functional.cross_entropy(net(torch_images(batch)), torch.from_numpy(batch["label"]).long()).backward()
            opt.step()
            schedule.step()
        net.eval()
        correct = total = 0
        with torch.no_grad():
            for batch in data.eval_batches(dataset.splits["test"], batch_size=256, normalization=dataset.normalization):
                mask = torch.from_numpy(batch["mask"])
                hit = net(torch_images(batch)).argmax(1) == torch.from_numpy(batch["label"]).long()
                correct, total = correct + int((hit & mask).sum()), total + int(mask.sum())
        yield epoch + 1, correct / total, untimed
        untimed = 0.0


def race(runs: dict[str, Iterator[tuple[int, float, float]]], target: float, model: str) -> dict[str, dict]:
    """Advance the runs in turn, one epoch each, until each reaches `target` or runs out of epochs.

    Each run's clock counts only the time inside its own epochs (its cold start
    is inside its first), less the seconds it reports as not its own."""
    clocks = dict.fromkeys(runs, 0.0)
    curves: dict[str, list] = {name: [] for name in runs}
    live = dict(runs)
    while live:
        for name, epochs in list(live.items()):
            start = time.perf_counter()
            item = next(epochs, None)
            if item is None:
                del live[name]
                continue
            epoch, top1, untimed = item
            clocks[name] += time.perf_counter() - start - untimed
            curves[name].append((epoch, round(clocks[name], 1), round(top1, 4)))
            print(f"  {name} {model} epoch {epoch}: test top-1 {top1:.4f} at {clocks[name]:.1f} s", flush=True)
            if top1 >= target:
                del live[name]
    return {name: {"seconds": clocks[name], "reached": curves[name][-1][2] >= target, "curve": curves[name]}
            for name in runs}  # fmt: skip


def torch_images(batch: dict):
    """A batch's (B, H, W, C) images as PyTorch's (B, C, H, W) tensor."""
    import torch

    return torch.from_numpy(np.ascontiguousarray(batch["image"].transpose(0, 3, 1, 2)))


def same_start(net, cfg: dict) -> None:
    """Load the params cnnlab's run starts from (`setup.build` and its `init`, as
    `cnnlab_epochs` builds them) into the PyTorch twin, and check that both give the same
    logits on the first test images."""
    import torch

    from bench import torch_models
    from cnnlab import data
    from cnnlab.train import parallel, setup

    par = parallel.create(cfg["parallel"]["name"])
    job = setup.build(cfg, par)
    params = jax.device_get(par.gather(job.init(par)).params)
    torch_models.load_flax_params(net, params)
    test = job.dataset
    batch = next(iter(data.eval_batches(test.splits["test"], batch_size=64, normalization=test.normalization)))
    net.eval()
    with torch.no_grad():
        theirs = net(torch_images(batch)).numpy()
    ours = np.asarray(job.model.apply({"params": params}, batch["image"], train=False))
    if not np.allclose(ours, theirs, atol=1e-4):
        raise AssertionError(f"PyTorch twin of {cfg['model']['name']}: logits differ by {np.abs(ours - theirs).max():.2e}")


def run(model: str = "wide_typical_cnn", max_epochs: int = 15, target: float = 0.91, with_torch: bool = True) -> list[common.Figure]:
    runs = {"cnnlab": cnnlab_epochs(model, max_epochs)}
    if with_torch:
        runs["torch"] = torch_epochs(model, max_epochs)
    results = race(runs, target, model)
    ours, theirs = results["cnnlab"], results.get("torch")
    where = jax.default_backend()
    if theirs is None:
        value, ratio, met = f"{ours['seconds']:.0f} s ({'reached' if ours['reached'] else 'not reached'})", None, None
    else:
        ratio = ours["seconds"] / theirs["seconds"]
        met = ours["reached"] and theirs["reached"] and ratio < 1.0 if theirs["reached"] else ours["reached"]
        value = f"{ours['seconds']:.0f} s vs {theirs['seconds']:.0f} s"
    return [common.Figure(
        "5", f"time to {target:.0%} Fashion-MNIST test top-1, {model} on {where}" + (", cnnlab vs PyTorch" if theirs else ""),
        value, batch=str(BATCH), goal="faster than PyTorch" if theirs else "", ratio=ratio, met=met,
        notes=f"cnnlab (epoch, s, top-1): {ours['curve'][-3:]}" + (f"; torch: {theirs['curve'][-3:]}" if theirs else ""),
    )]  # fmt: skip


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default="wide_typical_cnn", choices=sorted(MODELS))
    parser.add_argument("--max-epochs", type=int, default=15, help="the epoch budget: the cosine decays over it")
    parser.add_argument("--target", type=float, default=0.91)
    parser.add_argument("--no-torch", action="store_true")
    args = parser.parse_args()
    common.report("time to accuracy", run(args.model, args.max_epochs, args.target, not args.no_torch))
