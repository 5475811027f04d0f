"""The benchmark suite: training step, inference, evaluate stage, data preparation, CLI start-up, memory.

Each item runs in its own child process (``run.py --item NAME``), so its peak RSS is its own and
one item's allocations cannot slow the next. Times are medians after warm-up. Nothing is
asserted: the numbers are for people, and only numbers from one run compare well.

Training steps and inference run in processes of their own, as users run them: ours
``benchmarks/ours.py``, which tunes glibc malloc and OpenMP before importing torch as every stage
does (``pix2pix.perf``); with ``--reference DIR`` (an extracted pytorch-CycleGAN-and-pix2pix) the
reference's ``benchmarks/reference.py`` with stock settings, the two taking turns process by
process (ours, ref, ref, ours, ...), ``stock_rounds`` of each. The evaluate stage is timed end to
end, against the reference's test.py end to end. Ratios are reference seconds / ours (> 1: ours
is faster). With a reference, the same measurements are also paired inside one child
(``same_process``): both sides' calls take turns call by call under that child's stock settings
(it never imports ``stages``), which isolates the code.

    python benchmarks/run.py [--quick] [--json] [--items train_step,infer,...] [--reference DIR]

Linux only (reads /proc). See benchmarks/README.md for what every key means.
"""

from __future__ import annotations

import argparse
import copy
import dataclasses
import datetime
import functools
import itertools
import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import numpy as np
import ours
import prep
import torch
from PIL import Image
from reference import Reference, synthetic_batch

from pix2pix import checkpoint as ckpt
from pix2pix.data.dataset import TrainingSet, load_eval_pair
from pix2pix.data.images import list_images
from pix2pix.infer.evaluate import evaluate
from pix2pix.infer.load import generator_from_checkpoint
from pix2pix.infer.metrics import image_metrics
from pix2pix.infer.reference_import import layer_map
from pix2pix.prep import imageops
from pix2pix.prep.synthetic import facade_pair
from pix2pix.task import Task
from pix2pix.train.config import TrainConfig
from pix2pix.train.pix2pix_model import Pix2Pix

REPO = Path(__file__).resolve().parent.parent
REFERENCE_SCRIPT = Path(__file__).resolve().parent / "reference.py"
OURS_SCRIPT = Path(__file__).resolve().parent / "ours.py"
CPU = torch.device("cpu")
TRAIN_SIZES = (64, 128, 256)
INFER_SIZE, INFER_BATCHES = 256, (1, 8)
DATA_COUNTS = (100, 10_000)
SAME_PROCESS = "stock settings for both sides: no pix2pix.perf.tune_process() (glibc malloc and OpenMP defaults, but for meta.env)"


@dataclasses.dataclass(frozen=True)
class Plan:
    """How much work each measurement gets."""

    warmup: int
    train_steps: dict[int, int]
    infer_repeats: int
    eval_images: int
    eval_runs: int
    prep_images: int
    prep_runs: int
    help_runs: int
    quality_seconds: float
    stock_rounds: int


FULL = Plan(2, {64: 20, 128: 10, 256: 6}, 8, 64, 3, 1000, 3, 5, 45.0, 3)
QUICK = Plan(1, dict.fromkeys(TRAIN_SIZES, 2), 2, 4, 1, 20, 1, 2, 5.0, 1)


# --- measuring -----------------------------------------------------------------------------------


def turns(names: list[str], rounds: int) -> Iterator[tuple[int, str]]:
    """(round, name): every name once a round, who goes first swapping every round (a, b, b, a, a, b, ...)."""
    for round_index in range(rounds):
        for name in names if round_index % 2 == 0 else names[::-1]:
            yield round_index, name


def alternating_medians(
    functions: dict[str, Callable[[], object]], repeats: int, warmup: int, before: Callable[[], None] | None = None
) -> dict[str, float]:
    """Median seconds per call of each function, the functions taking turns call by call.

    Taking turns (and swapping who goes first every round) exposes both sides to the same
    machine state, so their ratio holds on a shared VM where separate runs drift 15-25 %.
    ``before`` runs untimed ahead of every call (to clear outputs).
    """
    times: dict[str, list[float]] = {name: [] for name in functions}
    for round_index, name in turns(list(functions), warmup + repeats):
        if before:
            before()
        start = time.perf_counter()
        functions[name]()
        elapsed = time.perf_counter() - start
        if round_index >= warmup:
            times[name].append(elapsed)
    return {name: statistics.median(values) for name, values in times.items()}


@dataclasses.dataclass
class Finished:
    seconds: float
    rss_mb: float
    cpu_s: float


# Spawns the command from a small interpreter and reports its wall time and rusage. A child
# spawned straight from this (torch-sized) process would count our RSS as its own: Linux
# keeps the pre-exec high-water mark in ru_maxrss. The launcher's own ~10 MB is the floor.
LAUNCHER = """
import json, os, sys, time
start = time.perf_counter()
pid = os.posix_spawnp(sys.argv[2], sys.argv[2:], os.environ)
_, status, usage = os.wait4(pid, 0)
seconds = time.perf_counter() - start
with open(sys.argv[1], "w") as report:
    json.dump([seconds, usage.ru_maxrss / 1024, usage.ru_utime + usage.ru_stime], report)
sys.exit(os.waitstatus_to_exitcode(status))
"""


def run_process(command: list[str], quiet: bool = True) -> Finished:
    """Run a command to the end; its wall seconds, and peak RSS and CPU time of it and the children it reaped."""
    with tempfile.TemporaryDirectory() as tmp, open(Path(tmp) / "log", "w+b") as log:
        report = Path(tmp) / "report.json"
        # not quiet: the child's stdout joins our stderr, keeping our stdout for the JSON
        output = {"stdout": log, "stderr": subprocess.STDOUT} if quiet else {"stdout": sys.stderr}
        code = subprocess.run([sys.executable, "-c", LAUNCHER, str(report), *command], cwd=REPO, **output).returncode
        if code:
            log.seek(0)
            tail = log.read().decode(errors="replace")[-3000:]
            raise RuntimeError(f"{' '.join(command)} failed with exit code {code}\n{tail}")
        return Finished(*json.loads(report.read_text()))


def stage(name: str, *options: object) -> list[str]:
    return [sys.executable, "-m", f"stages.{name}", *map(str, options)]


def machine_busy_s() -> float:
    """CPU seconds all processes have used since boot (user, nice, system, irq, softirq)."""
    fields = [int(value) for value in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:8]]
    user, nice, system, _idle, _iowait, irq, softirq = fields
    return (user + nice + system + irq + softirq) / os.sysconf("SC_CLK_TCK")


def rss_mb(field: str = "VmRSS") -> float:
    """This process's resident memory (MB): all of it (VmRSS), or its anonymous part (RssAnon), the
    memory no file backs, which the OS cannot drop under pressure."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(f"{field}:"):
            return int(line.split()[1]) / 1024
    raise RuntimeError(f"no {field} in /proc/self/status")


def ratio(reference_s: float, ours_s: float) -> float:
    return round(reference_s / ours_s, 3)


# --- the two sides' calls, and the stock processes that run them -------------------------------------


def own_process_medians(measure: str, options: dict, repeats: int, plan: Plan, ref: Reference | None, tmp: Path) -> tuple[dict, dict]:
    """Seconds per call of each side as users run it, in processes of its own, and their peak RSS (MB).

    Ours is ``benchmarks/ours.py`` (tuned like a stage), the reference ``benchmarks/reference.py``
    (stock). The processes take turns, ``plan.stock_rounds`` of each side; each reports its
    median after warm-up, and the median over rounds is returned, keyed ours / reference.
    """
    report = tmp / "own-process.json"
    common = {**options, "repeats": repeats, "warmup": plan.warmup}
    commands = {"ours": [sys.executable, str(OURS_SCRIPT), measure]}
    if ref:
        commands["reference"] = [sys.executable, str(REFERENCE_SCRIPT), measure, "--ref", str(ref.root)]
    for command in commands.values():
        command += ["--result", str(report), *(str(part) for key, value in common.items() for part in (f"--{key}", value))]
    seconds: dict[str, list[float]] = {name: [] for name in commands}
    peak_mb: dict[str, list[float]] = {name: [] for name in commands}
    for _, name in turns(list(commands), plan.stock_rounds):
        peak_mb[name].append(run_process(commands[name]).rss_mb)
        seconds[name].append(json.loads(report.read_text())["seconds"])
    return ({name: statistics.median(values) for name, values in seconds.items()},
            {name: round(max(values), 1) for name, values in peak_mb.items()})  # fmt: skip


def compared(key: str, ratio_key: str, ours_value, reference_value, speedup) -> dict:
    """The result layout of one measurement with a reference: ours at the top, theirs under ``reference``."""
    return {key: ours_value, "reference": {key: reference_value}, ratio_key: speedup}


# --- items (each runs in its own child process) -----------------------------------------------------


def item_train_step(size: int, plan: Plan, ref: Reference | None, tmp: Path) -> dict:
    """Seconds per training step, batch 1, synthetic inputs (data loading excluded).

    Each side in processes of its own; with a reference, also both in this process, paired.
    """
    key, item = str(size), f"train_step_{size}"
    seconds, peak_mb = own_process_medians("train_step", {"size": size}, plan.train_steps[size], plan, ref, tmp)
    result = {"train_step_s": {key: seconds["ours"]}, "peak_rss_mb": {item: peak_mb["ours"]}}
    if ref:
        _merge(result, {"reference": {"train_step_s": {key: seconds["reference"]}, "peak_rss_mb": {item: peak_mb["reference"]}},
                        "ratio_train_step": {key: ratio(seconds["reference"], seconds["ours"])}})  # fmt: skip
        inputs, targets = synthetic_batch(1, size), synthetic_batch(1, size)
        functions = {"ours": ours.train_step_call(size, inputs, targets), "reference": ref.train_step_call(size, inputs, targets)}
        same = alternating_medians(functions, plan.train_steps[size], plan.warmup)
        result["same_process"] = compared("train_step_s", "ratio_train_step", {key: same["ours"]}, {key: same["reference"]},
                                          {key: ratio(same["reference"], same["ours"])})  # fmt: skip
    return result


def item_infer(plan: Plan, ref: Reference | None, tmp: Path) -> dict:
    """Generator images/s in eval mode: ours under inference_mode, the reference's as test.py --eval (no_grad).

    Each side in processes of its own; with a reference, also both in this process, paired.
    """
    size, result = str(INFER_SIZE), {}
    for batch_size in INFER_BATCHES:
        key, item = f"b{batch_size}", f"infer_{INFER_SIZE}_b{batch_size}"
        options = {"size": INFER_SIZE, "batch": batch_size}
        seconds, peak_mb = own_process_medians("infer", options, plan.infer_repeats, plan, ref, tmp)
        _merge(result, {"infer_img_s": {size: {key: batch_size / seconds["ours"]}}, "peak_rss_mb": {item: peak_mb["ours"]}})
        if ref:
            _merge(result, {
                "reference": {"infer_img_s": {size: {key: batch_size / seconds["reference"]}}, "peak_rss_mb": {item: peak_mb["reference"]}},
                "ratio_infer": {size: {key: ratio(seconds["reference"], seconds["ours"])}},
            })  # fmt: skip
            batch = synthetic_batch(batch_size, INFER_SIZE)
            same = alternating_medians({"ours": ours.inference_call(batch), "reference": ref.inference_call(batch)},
                                       plan.infer_repeats, plan.warmup)  # fmt: skip
            _merge(result, {"same_process": compared(
                "infer_img_s", "ratio_infer", {size: {key: batch_size / same["ours"]}},
                {size: {key: batch_size / same["reference"]}}, {size: {key: ratio(same["reference"], same["ours"])}},
            )})  # fmt: skip
    result["peak_rss_mb"]["infer"] = max(result["peak_rss_mb"].values())  # ours, not this harness
    return result


def item_evaluate(plan: Plan, ref: Reference | None, tmp: Path) -> dict:
    """The evaluate stage end to end (start-up, checkpoint load, PNG writing, metrics) on 256 px A|B pairs.

    Its peak RSS is the stage's, not this harness's. With a reference, ``reference.py test`` (its
    test.py, stock process, from its own checkpoint file) takes turns with the stage, run for run;
    and both evaluation loops also run in this process, alternating: ours
    (``pix2pix.infer.evaluate.evaluate``) and the reference's test.py loop. All in their default train mode.
    """
    pairs = tmp / "pairs"
    pairs.mkdir()
    for index in range(plan.eval_images):
        labels, photo = facade_pair(0, index, INFER_SIZE)
        imageops.combine(labels, photo).save(pairs / f"{index:04d}.png")
    config = TrainConfig(crop_size=INFER_SIZE, load_size=INFER_SIZE, device="cpu")
    torch.manual_seed(0)
    model = Pix2Pix(config, CPU)
    generator_path = tmp / "run" / ckpt.GENERATOR_NAME
    ckpt.save(
        {"config": config.model_dump(mode="json"), "architecture": config.architecture(),
         "generator": model.generator.state_dict(), "step": 0, "epoch": 0},
        generator_path,
    )  # fmt: skip
    del model
    # the generator.pt file, not its run folder: given a folder, the stage also logs to MLflow
    commands = {"ours": stage("evaluate", "--input_dir", pairs, "--checkpoint", generator_path,
                              "--output_dir", tmp / "results", "--device", "cpu")}  # fmt: skip
    if ref:
        theirs = ref.test_model()
        their_path = tmp / "checkpoints" / "bench" / "latest_net_G.pth"  # where test.py --name bench looks
        their_path.parent.mkdir(parents=True)
        torch.save(theirs.netG.state_dict(), their_path)
        commands["reference"] = [sys.executable, str(REFERENCE_SCRIPT), "test", "--ref", str(ref.root), "--input_dir", str(pairs),
                                 "--checkpoint", str(their_path), "--results_dir", str(tmp / "ref-results")]  # fmt: skip
    runs: dict[str, list[Finished]] = {name: [] for name in commands}
    for _, name in turns(list(commands), plan.eval_runs):
        runs[name].append(run_process(commands[name]))
    seconds = {name: statistics.median(run.seconds for run in done) for name, done in runs.items()}
    peak_mb = {name: round(max(run.rss_mb for run in done), 1) for name, done in runs.items()}
    result = {"evaluate_img_s": plan.eval_images / seconds["ours"], "peak_rss_mb": {"evaluate": peak_mb["ours"]}}
    if ref:
        _merge(result, {"reference": {"evaluate_img_s": plan.eval_images / seconds["reference"], "peak_rss_mb": {"evaluate": peak_mb["reference"]}},
                        "ratio_evaluate": ratio(seconds["reference"], seconds["ours"])})  # fmt: skip
        paths = list_images(pairs)
        generator, _ = generator_from_checkpoint(generator_path)
        (tmp / "ref").mkdir()
        loops = {
            "ours": lambda: evaluate(generator, Task(), paths, tmp / "inprocess"),
            "reference": lambda: ref.test_images(theirs, paths, tmp / "ref"),
        }
        same = alternating_medians(loops, plan.eval_runs, 1)
        result["same_process"] = compared("evaluate_img_s", "ratio_evaluate", len(paths) / same["ours"],
                                          len(paths) / same["reference"], ratio(same["reference"], same["ours"]))  # fmt: skip
    return result


def item_prep(plan: Plan, ref: Reference | None, tmp: Path) -> dict:
    """The resize and combine stages (default workers) against plain single-process PIL loops.

    Inputs are 512x512 photo-like JPEGs; resize goes to 256, combine pairs the 512 px originals.
    The stages are timed as subprocesses (start-up included), the loops in this process: the
    loop a user would write (PIL's default PNG encoder, zlib level 6) and the same loop with the
    stages' encoder settings (level 1); the same pixels out in all three.
    """
    a_dir, b_dir, out = tmp / "a", tmp / "b", tmp / "out"
    prep.make_jpegs(a_dir, plan.prep_images, 0)
    prep.make_jpegs(b_dir, plan.prep_images, 1)
    cases = {
        "resize": (stage("resize", "--input_dir", a_dir, "--output_dir", out, "--size", prep.TARGET),
                   lambda save: prep.plain_resize(a_dir, out, save)),
        "combine": (stage("combine", "--a_dir", a_dir, "--b_dir", b_dir, "--output_dir", out),
                    lambda save: prep.plain_combine(a_dir, b_dir, out, save)),
    }  # fmt: skip
    key_suffixes = {"default": "", "same_encoder": "_same_encoder"}  # per prep.PLAIN_LOOPS
    result: dict = {}
    stage_rss = []
    for name, (command, plain) in cases.items():
        loops = {loop: functools.partial(plain, save) for loop, save in prep.PLAIN_LOOPS.items()}
        seconds = alternating_medians(
            {"stage": lambda command=command: stage_rss.append(run_process(command).rss_mb), **loops},
            plan.prep_runs, 0, before=lambda: shutil.rmtree(out, ignore_errors=True),
        )  # fmt: skip
        _merge(result, {"prep_img_s": {name: plan.prep_images / seconds["stage"]}})
        for loop, suffix in key_suffixes.items():
            _merge(result, {
                f"prep_baseline{suffix}_img_s": {name: plan.prep_images / seconds[loop]},
                f"prep_ratio{suffix}": {name: ratio(seconds[loop], seconds["stage"])},
            })  # fmt: skip
    result["peak_rss_mb"] = {"prep": max(stage_rss)}
    return result


def item_help(plan: Plan, ref: Reference | None, tmp: Path) -> dict:
    """Wall time of ``pix2pix --help`` through the installed console script: what every command pays to start."""
    command = [str(Path(sys.executable).parent / "pix2pix"), "--help"]
    runs = [run_process(command) for _ in range(1 + plan.help_runs)][1:]  # the first warms the file cache
    return {"help_s": statistics.median(run.seconds for run in runs), "peak_rss_mb": {"help": max(run.rss_mb for run in runs)}}


def item_data_rss(count: int, plan: Plan, ref: Reference | None, tmp: Path) -> dict:
    """Memory of the training set over ``count`` 64 px A|B pairs, decoded into memory and memory-mapped.

    In memory: VmRSS growth from building it. Mapped (``cache_dir``): RssAnon growth from building
    the cache file, mapping it again as a later run does, and reading every batch of one epoch;
    the file's pages count as RssFile, which the OS can drop and re-read. 100 distinct pairs are
    drawn; more files are hard links to them (decoding cost and size do not depend on the content).
    """
    folder = tmp / "pairs"
    folder.mkdir()
    distinct = min(count, 100)
    for index in range(distinct):
        labels, photo = facade_pair(0, index, 64)
        imageops.combine(labels, photo).save(folder / f"{index:05d}.png")
    for index in range(distinct, count):
        os.link(folder / f"{index % distinct:05d}.png", folder / f"{index:05d}.png")
    paths = list_images(folder)
    before = rss_mb()
    dataset = TrainingSet(paths, Task(), load_size=64, crop_size=64)
    growth = rss_mb() - before
    cache_mb = dataset.pixels.nbytes / 2**20
    del dataset
    anon_before = rss_mb("RssAnon")
    TrainingSet(paths, Task(), load_size=64, crop_size=64, cache_dir=tmp / "cache")
    mapped = TrainingSet(paths, Task(), load_size=64, crop_size=64, cache_dir=tmp / "cache")
    epoch = mapped.epoch_plan(0, 0)
    for index in range(len(mapped)):
        mapped.batch(epoch, index, 1)
    return {
        "data_rss_mb": {str(count): round(growth, 1)},
        "data_rss_mapped_mb": {str(count): round(rss_mb("RssAnon") - anon_before, 1)},
        "data_cache_mb": {str(count): round(cache_mb, 1)},
    }


QUALITY_SEEDS = (0, 1, 2, 3, 4)
QUALITY_BUDGET_SHARES = (1 / 9, 1 / 3, 1)  # of --quality-seconds: 5, 15 and 45 s by default
PARITY_STEPS = 10


def start_from_reference_weights(ours: Pix2Pix, theirs) -> None:
    """Copy the reference model's (initial) weights into ours: G through the import mapping, D layer by layer."""
    mapping = layer_map(ours.generator.depth)
    their_g = theirs.netG.state_dict()
    ours.generator.load_state_dict({
        key: their_g[f"{mapping[key.rsplit('.', 1)[0]]}.{key.rsplit('.', 1)[1]}"] for key in ours.generator.state_dict()
    })  # fmt: skip
    ours.discriminator.load_state_dict(dict(zip(ours.discriminator.state_dict(), theirs.netD.state_dict().values())))


def item_parity(plan: Plan, ref: Reference | None, tmp: Path) -> dict:
    """Same maths: from the same weights and batches (dropout off), the largest loss difference over
    the first steps, ours with torch's default Adam (the reference's) and with our fused Adam."""
    batches = [(synthetic_batch(1, 64), synthetic_batch(1, 64)) for _ in range(PARITY_STEPS)]
    result = {"steps": PARITY_STEPS}
    for adam in ("plain", "fused"):
        torch.manual_seed(0)
        theirs = ref.training_model(64)
        for module in theirs.netG.modules():
            if isinstance(module, torch.nn.Dropout):
                module.p = 0.0
        ours = Pix2Pix(TrainConfig(crop_size=64, load_size=64, dropout=0.0, device="cpu"), CPU)
        start_from_reference_weights(ours, theirs)
        if adam == "plain":
            for name in ("optimizer_g", "optimizer_d"):
                network = ours.generator if name == "optimizer_g" else ours.discriminator
                setattr(ours, name, torch.optim.Adam(network.parameters(), lr=2e-4, betas=(0.5, 0.999)))
        difference = 0.0
        for inputs, targets in batches:
            losses = ours.train_step(inputs, targets)
            ref.train_step(theirs, inputs, targets)
            theirs_losses = {"G_GAN": theirs.loss_G_GAN, "G_L1": theirs.loss_G_L1 / 100, "D_real": theirs.loss_D_real, "D_fake": theirs.loss_D_fake}
            difference = max(difference, *(abs(float(losses[k]) - float(theirs_losses[k].detach())) for k in losses))
        result[f"max_loss_difference_{adam}_adam"] = difference
    return {"parity": result}


def item_quality(plan: Plan, ref: Reference | None, tmp: Path) -> dict:
    """Validation L1 of ours and the reference (required) after the same training seconds on 64 px synthetic facades.

    For each seed both start from the same weights (the reference's initialisation, copied into
    ours), see the same batches (our loader: resize to 72, random 64 crop, flip; labels ->
    photo), take turns step by step, and are scored the same way (test-time train mode, seed 0,
    L1 on 8-bit RGB in [0, 1]) each time their step time passes one of the budgets: a learning
    curve, because on this data val L1 falls for about 100 steps and then wanders +-0.01 around
    0.14, so only the early budgets show what speed buys. Only their speed and rounding (and the
    dropout masks each draws) differ.
    """
    run_process(stage("download", "synthetic-facades", "--count", 100, "--size", 64, "--output_dir", tmp / "raw"))
    run_process(stage("split", "--input_dir", tmp / "raw" / "synthetic-facades", "--output_dir", tmp / "split"))
    config = TrainConfig(direction="BtoA", load_size=72, crop_size=64, device="cpu")
    dataset = TrainingSet(list_images(tmp / "split" / "train"), config.task, config.load_size, config.crop_size)
    val_paths = list_images(tmp / "split" / "val")
    budgets = [round(plan.quality_seconds * share, 1) for share in QUALITY_BUDGET_SHARES]
    runs = {name: {"steps": {str(b): [] for b in budgets}, "val_l1": {str(b): [] for b in budgets}} for name in ("ours", "reference")}
    for seed in QUALITY_SEEDS:
        torch.manual_seed(seed)
        theirs = ref.training_model(64)
        ours = Pix2Pix(config, CPU)
        start_from_reference_weights(ours, theirs)
        streams = {name: _batches(dataset, seed) for name in runs}
        steps = {
            "ours": lambda: ours.train_step(*next(streams["ours"])),
            "reference": lambda: ref.train_step(theirs, *next(streams["reference"])),
        }
        generators = {"ours": ours.generator, "reference": theirs.netG}
        spent, done, reached = dict.fromkeys(steps, 0.0), dict.fromkeys(steps, 0), dict.fromkeys(steps, 0)
        while min(reached.values()) < len(budgets):
            for name, step in steps.items():
                if reached[name] == len(budgets):
                    continue
                start = time.perf_counter()
                step()
                spent[name] += time.perf_counter() - start
                done[name] += 1
                while reached[name] < len(budgets) and spent[name] >= budgets[reached[name]]:
                    budget = str(budgets[reached[name]])
                    runs[name]["steps"][budget].append(done[name])
                    runs[name]["val_l1"][budget].append(_val_l1(generators[name], config.task, val_paths))
                    reached[name] += 1
    for values in runs.values():
        values["mean_val_l1"] = {budget: round(statistics.mean(l1), 5) for budget, l1 in values["val_l1"].items()}
    return {"quality": {
        "seconds": budgets, "seeds": list(QUALITY_SEEDS), "train_images": len(dataset), "val_images": len(val_paths), **runs,
    }}  # fmt: skip


def _batches(dataset: TrainingSet, seed: int):
    for epoch in itertools.count():
        epoch_plan = dataset.epoch_plan(seed, epoch)
        for index in range(len(dataset)):
            yield dataset.batch(epoch_plan, index, 1)


def _val_l1(generator: torch.nn.Module, task: Task, paths: list[Path]) -> float:
    """Scored on a copy, with the random state put back: training goes on as if never scored."""
    generator = copy.deepcopy(generator).train()  # train mode: the test-time default of test.py and of our evaluate stage
    scores = []
    with torch.random.fork_rng(), torch.no_grad():
        torch.manual_seed(0)
        for path in paths:
            network_input, _, target_rgb = load_eval_pair(path, task)
            _, output_rgb = task.to_rgb(network_input, generator(network_input.unsqueeze(0))[0])
            scores.append(image_metrics(output_rgb, target_rgb)["l1"])
    return round(float(np.mean(scores)), 5)


ITEMS: dict[str, Callable[[Plan, Reference | None, Path], dict]] = {
    **{f"train_step_{size}": functools.partial(item_train_step, size) for size in TRAIN_SIZES},
    "infer": item_infer,
    "evaluate": item_evaluate,
    "prep": item_prep,
    "help": item_help,
    **{f"data_rss_{count}": functools.partial(item_data_rss, count) for count in DATA_COUNTS},
    "quality": item_quality,
    "parity": item_parity,
}
GROUPS = {"train_step": [f"train_step_{s}" for s in TRAIN_SIZES], "data_rss": [f"data_rss_{c}" for c in DATA_COUNTS]}
NEEDS_REFERENCE = ("quality", "parity")
DEFAULT_ITEMS = [name for name in ITEMS if name not in NEEDS_REFERENCE]


# --- driver --------------------------------------------------------------------------------------


def run_item(name: str, args: argparse.Namespace) -> dict:
    """One item in a child process; adds its peak RSS (unless it measured its own) and the foreign load."""
    with tempfile.TemporaryDirectory(prefix="pix2pix-bench-") as tmp:
        result_path = Path(tmp) / "result.json"
        command = [sys.executable, __file__, "--item", name, "--result", str(result_path)]
        if args.quick:
            command.append("--quick")
        if args.quality_seconds is not None:
            command += ["--quality-seconds", str(args.quality_seconds)]
        if args.reference is not None:
            command += ["--reference", str(args.reference)]
        busy = machine_busy_s()
        finished = run_process(command, quiet=False)
        other_s = machine_busy_s() - busy - finished.cpu_s
        result = json.loads(result_path.read_text())
    result.setdefault("peak_rss_mb", {}).setdefault(name, finished.rss_mb)
    result["peak_rss_mb"][name] = round(result["peak_rss_mb"][name], 1)
    result["foreign_load"] = {name: round(max(0.0, other_s) / (finished.seconds * os.cpu_count()), 3)}
    result["item_s"] = {name: round(finished.seconds, 1)}
    return result


def _merge(into: dict, update: dict) -> None:
    for key, value in update.items():
        if isinstance(value, dict) and isinstance(into.get(key), dict):
            _merge(into[key], value)
        else:
            into[key] = value


def machine() -> str:
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        if line.startswith("model name"):
            return line.split(":", 1)[1].strip()
    return platform.machine()


def _get(node, *path: str):
    for key in path:
        node = node.get(key) if isinstance(node, dict) else None
    return node


def describe(summary: dict) -> list[tuple[str, str]]:
    """(item, result) rows for the table, from the JSON summary."""
    ref, same, rows = summary.get("reference", {}), summary.get("same_process", {}), []

    def add(label: str, ours: float | None, unit: str, theirs: float | None, speedup: float | None, where: str) -> None:
        if ours is not None:
            versus = "" if theirs is None else f"  (reference, {where}: {theirs:.3g}; ours {speedup:.2f}x as fast)"
            rows.append((label, f"{ours:.3g} {unit}{versus}"))

    def add_pair(label: str, unit: str, key: str, ratio_key: str, *path: str) -> None:
        """The own-process row, then the same-process one."""
        add(label, _get(summary, key, *path), unit, _get(ref, key, *path), _get(summary, ratio_key, *path), "own process")
        add(f"{label} same process", _get(same, key, *path), unit,
            _get(same, "reference", key, *path), _get(same, ratio_key, *path), "same process")  # fmt: skip

    for size in summary.get("train_step_s", {}):
        add_pair(f"train_step_{size}", "s/step", "train_step_s", "ratio_train_step", size)
    for size, batches in summary.get("infer_img_s", {}).items():
        for batch in batches:
            add_pair(f"infer {size} {batch}", "img/s", "infer_img_s", "ratio_infer", size, batch)
    add("evaluate", summary.get("evaluate_img_s"), "img/s (stage, end to end)",
        ref.get("evaluate_img_s"), summary.get("ratio_evaluate"), "its test.py, end to end")  # fmt: skip
    add("evaluate same process", same.get("evaluate_img_s"), "img/s (the loops alone)",
        _get(same, "reference", "evaluate_img_s"), same.get("ratio_evaluate"), "same process")  # fmt: skip
    for name, rate in summary.get("prep_img_s", {}).items():
        plain, same_encoder = summary["prep_baseline_img_s"][name], summary["prep_baseline_same_encoder_img_s"][name]
        text = (f"{rate:.1f} img/s (plain PIL loop {plain:.1f}: stage {summary['prep_ratio'][name]:.2f}x as fast; "
                f"with the stage's PNG settings {same_encoder:.1f}: {summary['prep_ratio_same_encoder'][name]:.2f}x)")  # fmt: skip
        rows.append((f"prep {name}", text))
    if "help_s" in summary:
        rows.append(("help", f"{summary['help_s']:.2f} s"))
    for count, growth in summary.get("data_rss_mb", {}).items():
        mapped, cache = summary["data_rss_mapped_mb"][count], summary["data_cache_mb"][count]
        rows.append((f"data_rss_{count}", f"+{growth:.1f} MB RSS in memory, +{mapped:.1f} MB anonymous RSS mapped (uint8 cache {cache:.1f} MB)"))
    if "quality" in summary:
        quality = summary["quality"]
        for budget in map(str, quality["seconds"]):
            rows.append((f"quality {budget} s", "  ".join(
                f"{name} val L1 {quality[name]['mean_val_l1'][budget]:.4f} ({'/'.join(map(str, quality[name]['steps'][budget]))} steps)"
                for name in ("ours", "reference")
            ) + f"  seeds {quality['seeds']}"))  # fmt: skip
    if "parity" in summary:
        parity = summary["parity"]
        rows.append(("parity", f"max loss difference over {parity['steps']} steps from the same weights: "
                               f"{parity['max_loss_difference_plain_adam']:.1e} with torch's default Adam, "
                               f"{parity['max_loss_difference_fused_adam']:.1e} with fused Adam"))  # fmt: skip
    return rows


def print_table(summary: dict, file) -> None:
    meta = summary["meta"]
    print(f"{meta['date']}  {meta['machine']}, {meta['cpus']} CPUs, torch {meta['torch']}, {meta['threads']} threads"
          + ("  (quick)" if meta["quick"] else ""), file=file)  # fmt: skip
    print("rows: each side in processes of its own (ours tuned as a stage process, the reference stock)", file=file)
    if "same_process" in summary:
        print(f"'same process' rows: both in one process, {meta['same_process']}", file=file)
    rows = describe(summary)
    width = max(len(item) for item, _ in rows) if rows else 0
    for item, text in rows:
        print(f"{item:<{width}}  {text}", file=file)
    print("\nitem             peak RSS  foreign load  item wall", file=file)
    for name, seconds in summary["item_s"].items():
        rss = summary["peak_rss_mb"][name]
        print(f"{name:<16} {rss:>6.0f} MB {summary['foreign_load'][name]:>12.0%} {seconds:>9.0f} s", file=file)
    theirs = summary.get("reference", {}).get("peak_rss_mb", {})
    for name, rss in summary["peak_rss_mb"].items():
        if name not in summary["item_s"] or name in theirs:
            versus = f"  (reference {theirs[name]:.0f} MB)" if name in theirs else ""
            print(f"peak RSS {name}: ours {rss:.0f} MB{versus}", file=file)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="tiny counts: a smoke run, not a measurement")
    parser.add_argument("--json", action="store_true", help="print one JSON object on stdout (the table goes to stderr)")
    parser.add_argument("--items", default=",".join(DEFAULT_ITEMS),
                        help=f"comma-separated, from: {', '.join([*ITEMS, *GROUPS])} [default: all but quality]")  # fmt: skip
    parser.add_argument("--reference", type=Path, help="pytorch-CycleGAN-and-pix2pix checkout to compare with, side by side")
    parser.add_argument("--quality-seconds", type=float, help="training seconds per side and seed for the quality item [default: 45, quick 5]")
    parser.add_argument("--item", choices=list(ITEMS), help=argparse.SUPPRESS)  # child mode
    parser.add_argument("--result", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    plan = QUICK if args.quick else FULL
    if args.quality_seconds is not None:
        plan = dataclasses.replace(plan, quality_seconds=args.quality_seconds)
    ref = Reference(args.reference) if args.reference else None

    if args.item:
        with tempfile.TemporaryDirectory(prefix=f"pix2pix-bench-{args.item}-") as tmp:
            args.result.write_text(json.dumps(ITEMS[args.item](plan, ref, Path(tmp))))
        return

    names = []
    for name in args.items.split(","):
        if name not in ITEMS and name not in GROUPS:
            parser.error(f"unknown item {name!r}; choose from {', '.join([*ITEMS, *GROUPS])}")
        names += GROUPS.get(name, [name])
    if ref is None and set(names) & set(NEEDS_REFERENCE):
        parser.error(f"the {', '.join(NEEDS_REFERENCE)} items compare with the reference: give --reference DIR")
    summary = {"meta": {
        "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "machine": machine(), "cpus": os.cpu_count(), "torch": torch.__version__, "threads": torch.get_num_threads(),
        "python": platform.python_version(), "pillow": Image.__version__, "quick": args.quick,
        "reference": str(args.reference) if args.reference else None, "plan": dataclasses.asdict(plan),
        "same_process": SAME_PROCESS,
        "env": {key: value for key, value in os.environ.items() if key.startswith(("OMP_", "GOMP_", "MKL_", "MALLOC_", "LD_PRELOAD"))},
    }}  # fmt: skip
    for index, name in enumerate(names, start=1):
        print(f"[{index}/{len(names)}] {name}", file=sys.stderr, flush=True)
        _merge(summary, run_item(name, args))
    if args.json:
        print_table(summary, sys.stderr)
        print(json.dumps(summary, indent=2))
    else:
        print_table(summary, sys.stdout)


if __name__ == "__main__":
    main()
