"""The GPU path in one run: the CUDA tests, training speed, memory and losses per precision, layout
and compile, the reference, the real training loop at batch 16, evaluate, and torchrun.

    python benchmarks/gpu.py [--dry-run] [--out DIR] [--steps N] [--reference DIR] [--only NAME,...] [--budget-s S]

Every check runs in a child process of its own (its own GPU memory peak; a crash or a timeout is
recorded as that check's failure with its one-line error, and the rest go on), in the order of
``CHECKS``, until the time budget is spent. ``--dry-run`` runs the same code paths on the CPU at
toy sizes (compiled settings skipped), to prove the script works where there is no GPU. One JSON
file goes to DIR (default $OUT, else benchmarks/) and a table to stdout; benchmarks/README.md
("GPU") says what every key means and how the budget was planned.
"""

from __future__ import annotations

import argparse
import dataclasses
import datetime
import json
import math
import os
import platform
import re
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch

BENCHMARKS = Path(__file__).resolve().parent
REPO = BENCHMARKS.parent
sys.path.insert(0, str(REPO))  # run as a script: the library sits next to benchmarks/

from pix2pix.files import atomic_write_text  # noqa: E402
from pix2pix.prep.synthetic import write_synthetic_facades  # noqa: E402

LOSS_TOLERANCE = 0.10  # relative difference of the final G_L1 from fp32's that still counts as trained alike
TAIL_STEPS = 5  # "the loss after N steps": G_L1 averaged over the last steps, one batch of 1 being noisy
STEP_BATCHES = 8  # distinct batches the step settings cycle through


@dataclasses.dataclass(frozen=True)
class Plan:
    """Sizes and times of one run: the reference configuration on a GPU, toy sizes for --dry-run."""

    device: str
    size: int
    load_size: int
    ngf: int
    steps: int
    warmup: int
    train_batch: int
    train_images: int
    train_steps: int
    budget_s: float


GPU = Plan("cuda", 256, 286, 64, steps=50, warmup=5, train_batch=16, train_images=64, train_steps=30, budget_s=450)
DRY_RUN = Plan("cpu", 32, 36, 8, steps=3, warmup=1, train_batch=16, train_images=16, train_steps=3, budget_s=600)


@dataclasses.dataclass(frozen=True)
class Check:
    """One child process: what it runs (``kind``), its options, and how long it may take."""

    name: str
    kind: str  # step, reference, train, evaluate, ddp, pytest
    timeout_s: float
    amp: str = "auto"  # the TrainConfig settings; auto: the device's defaults
    channels_last: str = "auto"
    compile: bool = False


def step_check(amp: str, channels_last: bool, compile: bool) -> Check:
    name = "+".join([{"off": "fp32"}.get(amp, amp), *(["channels_last"] if channels_last else []), *(["compile"] if compile else [])])
    return Check(name, "step", 180 if compile else 90, amp, "on" if channels_last else "off", compile)


# Cheapest and most telling first: the budget cuts the last ones. Compiled settings (about a
# minute of warm-up each on a GPU) only in the channels_last layout by default; --only picks the others.
EAGER = [step_check(amp, layout, False) for amp in ("off", "bf16", "fp16") for layout in (False, True)]
COMPILED = [step_check(amp, True, True) for amp in ("off", "bf16", "fp16")]
EXTRA = [step_check(amp, False, True) for amp in ("off", "bf16", "fp16")]
CHECKS = [
    *EAGER,
    Check("reference", "reference", 90),
    Check("train_b16", "train", 120),
    Check("evaluate", "evaluate", 90),
    Check("ddp", "ddp", 120),
    Check("pytest_cuda", "pytest", 240),
    *COMPILED,
]
BY_NAME = {check.name: check for check in [*CHECKS, *EXTRA]}
BASELINE = "fp32"


# --- children -------------------------------------------------------------------------------------


def train_config(plan: Plan, check: Check, **fields):
    from pix2pix.train.config import TrainConfig

    return TrainConfig(
        direction="BtoA", crop_size=plan.size, load_size=plan.load_size, ngf=plan.ngf, ndf=plan.ngf, device=plan.device,
        amp=check.amp, tf32="off" if check.amp == "off" else "auto", channels_last=check.channels_last,
        compile=check.compile, **fields,
    )  # fmt: skip


def step_batches(plan: Plan, pairs: Path) -> list[tuple[torch.Tensor, torch.Tensor]]:
    """The first batches of 1 that training draws (labels -> photo), on the CPU as the loader leaves them."""
    from pix2pix.data.dataset import TrainingSet
    from pix2pix.data.images import list_images
    from pix2pix.task import Task

    dataset = TrainingSet(list_images(pairs)[:STEP_BATCHES], Task("BtoA"), plan.load_size, plan.size)
    epoch = dataset.epoch_plan(0, 0)
    return [dataset.batch(epoch, index, 1) for index in range(len(dataset))]


def synchronize(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def peak_memory_mb(device: torch.device) -> float | None:
    return round(torch.cuda.max_memory_allocated(device) / 2**20, 1) if device.type == "cuda" else None


def timed_steps(step, batches: list, plan: Plan, device: torch.device) -> dict:
    """``plan.warmup`` untimed steps (compilation, cuDNN autotuning), then ``plan.steps`` timed ones.

    ``step(inputs, targets)`` returns the G_L1 tensor; it is read only after the timing, so the
    GPU is never made to wait for it.
    """
    for index in range(plan.warmup):
        step(*batches[index % len(batches)])
    synchronize(device)
    start = time.perf_counter()
    l1 = [step(*batches[(plan.warmup + index) % len(batches)]) for index in range(plan.steps)]
    synchronize(device)
    seconds = time.perf_counter() - start
    values = [float(value) for value in l1]
    return {
        "img_s": round(plan.steps / seconds, 2),
        "peak_memory_mb": peak_memory_mb(device),
        "g_l1": statistics.mean(values[-TAIL_STEPS:]),
        "finite": all(math.isfinite(value) for value in values),
    }


def run_step(check: Check, plan: Plan, work: Path, reference: Path | None) -> dict:
    """``Pix2Pix.train_step`` at batch 1 on the check's precision, layout and compile setting."""
    from pix2pix.nn.device import resolve
    from pix2pix.train.pix2pix_model import Pix2Pix

    config = train_config(plan, check)
    device = torch.device(plan.device)
    accel = resolve(device, config.amp, config.tf32, config.channels_last, config.cudnn_benchmark, config.compile, config.cpu_kernels)
    torch.manual_seed(0)
    model = Pix2Pix(config, device, acceleration=accel)
    return timed_steps(lambda a, b: model.train_step(a, b)["G_L1"], step_batches(plan, work / "pairs"), plan, device)


def run_reference(check: Check, plan: Plan, work: Path, reference: Path | None) -> dict:
    """The reference's Pix2PixModel, its own ``optimize_parameters`` in fp32 with stock settings, as its train.py runs."""
    from reference import Reference

    if reference is None:
        return {"skipped": "no --reference DIR"}
    ref, device = Reference(reference), torch.device(plan.device)
    torch.manual_seed(0)
    model = ref.training_model(plan.size, device)

    def step(inputs, targets):
        ref.train_step(model, inputs, targets)
        return model.loss_G_L1.detach() / model.opt.lambda_L1  # ours is unweighted

    return {**timed_steps(step, step_batches(plan, work / "pairs"), plan, device), "ngf": model.opt.ngf}


class StepClock:
    """Training's on_step callback: when each step ended, its losses, and the process group it ran in."""

    def __init__(self):
        self.times: list[float] = []
        self.losses: list[dict[str, float]] = []
        self.process_group: str | None = None

    def __call__(self, report) -> None:
        import torch.distributed as dist

        self.times.append(time.perf_counter())
        self.losses.append(report.losses)
        self.process_group = dist.get_backend() if dist.is_initialized() else None


def train_run(check: Check, plan: Plan, work: Path, out: Path) -> tuple[dict, StepClock]:
    """``train()`` as ``pix2pix train`` runs it, on the synthetic pairs' files: data loading included."""
    from pix2pix.data.images import list_images
    from pix2pix.train.loop import Callbacks
    from pix2pix.train.pix2pix_model import train

    config = train_config(plan, check, batch_size=plan.train_batch, max_steps=plan.train_steps, log_freq=plan.train_steps)
    clock = StepClock()
    summary = train(config, list_images(work / "pairs"), out, Callbacks(on_step=clock))
    return summary, clock


def train_result(summary: dict, clock: StepClock, plan: Plan, images_per_step: int) -> dict:
    timed = clock.times[plan.warmup - 1 :]  # from the end of the last warm-up step
    last = clock.losses[-1]
    return {
        "img_s": round(images_per_step * (len(timed) - 1) / (timed[-1] - timed[0]), 2),
        "peak_memory_mb": peak_memory_mb(torch.device(plan.device)),
        "g_l1": last["G_L1"],
        "finite": all(math.isfinite(value) for losses in clock.losses for value in losses.values()),
        "steps": summary["steps"],
        "data_wait_share": summary.get("data_wait_share"),  # None until the training loop reports it
    }


def run_train(check: Check, plan: Plan, work: Path, reference: Path | None) -> dict:
    """Batch 16 through the real training loop (its own data feeding, AMP and layout defaults)."""
    summary, clock = train_run(check, plan, work, work / "train_b16")
    return {**train_result(summary, clock, plan, plan.train_batch), "batch": plan.train_batch}


def run_ddp(check: Check, plan: Plan, work: Path, reference: Path | None) -> dict:
    """Under ``torchrun --nproc_per_node 1``: training through DDP, and the process group's backend."""
    summary, clock = train_run(check, plan, work, work / "ddp")
    if clock.process_group is None:
        raise RuntimeError("trained in no process group: the DDP path did not run")
    return {**train_result(summary, clock, plan, plan.train_batch), "world_size": int(os.environ["WORLD_SIZE"]),
            "process_group": clock.process_group}  # fmt: skip


def run_evaluate(check: Check, plan: Plan, work: Path, reference: Path | None) -> dict:
    """``pix2pix evaluate`` end to end (a process of its own) with the generator that ``train_b16`` wrote."""
    generator = work / "train_b16" / "generator.pt"
    if not generator.is_file():
        raise RuntimeError(f"no {generator}: train_b16 did not finish")
    command = [sys.executable, "-m", "stages.evaluate", "--input_dir", str(work / "pairs"), "--checkpoint", str(generator),
               "--output_dir", str(work / "results"), "--device", plan.device]  # fmt: skip
    start = time.perf_counter()
    finished = subprocess.run(command, cwd=REPO, capture_output=True, text=True)
    seconds = time.perf_counter() - start
    if finished.returncode:
        raise RuntimeError(error_line(finished.stderr) or f"evaluate exited with {finished.returncode}")
    metrics = json.loads((work / "results" / "metrics.json").read_text())
    return {"img_s": round(metrics["count"] / seconds, 2), "images": metrics["count"], "l1": metrics["l1"],
            "finite": all(math.isfinite(metrics[key]) for key in ("l1", "psnr", "ssim"))}  # fmt: skip


def run_pytest(check: Check, plan: Plan, work: Path, reference: Path | None) -> dict:
    """The tests marked ``cuda`` (all skipped without CUDA)."""
    command = [sys.executable, "-m", "pytest", "-q", "-m", "cuda", "-p", "no:cacheprovider", "tests/unit"]
    finished = subprocess.run(command, cwd=REPO, capture_output=True, text=True)
    counts = {word: int(number) for number, word in re.findall(r"(\d+) (passed|failed|skipped|errors?)", last_line(finished.stdout))}
    if finished.returncode:
        failed = [line for line in finished.stdout.splitlines() if line.startswith(("FAILED", "ERROR"))]
        raise RuntimeError(f"{counts}: {'; '.join(failed) or last_line(finished.stdout + finished.stderr)}")
    return {"tests": counts}


RUNNERS = {"step": run_step, "reference": run_reference, "train": run_train, "evaluate": run_evaluate, "ddp": run_ddp, "pytest": run_pytest}


# --- parent ---------------------------------------------------------------------------------------


def last_line(text: str) -> str:
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    return lines[-1] if lines else ""


def error_line(stderr: str) -> str:
    """The exception's own line of a child's traceback (torchrun follows it with its own report), else the last line."""
    raised = re.findall(r"^(?:[\w.]+(?:Error|Exception|Interrupt|Exit)\b.*)$", stderr, re.MULTILINE)
    return raised[-1].strip() if raised else last_line(stderr)


def child_command(check: Check, args: argparse.Namespace, work: Path, result: Path) -> list[str]:
    command = [__file__, "--child", check.name, "--work", str(work), "--result", str(result), "--steps", str(args.steps)]
    command += ["--dry-run"] if args.dry_run else []
    command += ["--reference", str(args.reference)] if args.reference else []
    if check.kind == "ddp":
        return [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "1", *command]
    return [sys.executable, *command]


def run_check(check: Check, args: argparse.Namespace, work: Path, seconds_left: float) -> dict:
    """One check in its child process: its result, or ``{"ok": False, "error": one line}``."""
    if args.dry_run and check.compile:
        return {"ok": None, "skipped": "compile in --dry-run: minutes of CPU compilation"}
    if seconds_left < 10:
        return {"ok": None, "skipped": "over the time budget"}
    result = work / f"{check.name}.json"
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(REPO), str(BENCHMARKS)])}
    timeout = min(check.timeout_s, seconds_left)
    start = time.perf_counter()
    try:
        finished = subprocess.run(child_command(check, args, work, result), cwd=REPO, env=env, capture_output=True, text=True, timeout=timeout)
    except subprocess.TimeoutExpired:
        return {"ok": False, "error": f"timed out after {timeout:.0f} s", "wall_s": round(time.perf_counter() - start, 1)}
    wall = round(time.perf_counter() - start, 1)
    if finished.returncode or not result.is_file():
        error = error_line(finished.stderr) or f"exit code {finished.returncode}"
        return {"ok": False, "error": error, "wall_s": wall}
    outcome = json.loads(result.read_text())
    ok = None if "skipped" in outcome else outcome.get("finite", True)
    return {"ok": ok, **outcome, "wall_s": wall}


def compare_losses(results: dict) -> None:
    """Each trained setting's G_L1 against fp32's (same data, same steps): relative difference, and whether it is close."""
    baseline = results.get(BASELINE, {}).get("g_l1")
    for name, result in results.items():
        if baseline and result.get("g_l1") is not None and BY_NAME[name].kind in ("step", "reference"):
            result["g_l1_vs_fp32"] = round(result["g_l1"] / baseline - 1, 4)
            if BY_NAME[name].kind == "step":
                result["ok"] = result["ok"] and abs(result["g_l1_vs_fp32"]) <= LOSS_TOLERANCE


def verdicts(results: dict, dry_run: bool) -> list[str]:
    steps = [name for name in results if BY_NAME[name].kind == "step"]
    lines = []
    for label, names in (("all settings trained", steps), ("all other checks passed", [n for n in results if n not in steps])):
        failed = [name for name in names if results[name]["ok"] is False]
        skipped = [name for name in names if results[name]["ok"] is None]
        lines.append(f"{label}: {'no, failed: ' + ', '.join(failed) if failed else 'yes'}"
                     + (f" (skipped: {', '.join(skipped)})" if skipped else ""))  # fmt: skip
    ref = results.get("reference", {})
    if ref.get("img_s"):
        best = max((name for name in steps if results[name]["ok"] and BY_NAME[name].amp != "off"), key=lambda n: results[n]["img_s"], default=None)
        if best:
            note = " (dry run: toy sizes, the reference at its fixed ngf 64; not a measurement)" if dry_run else " (goal: >= 3x)"
            lines.append(f"ours vs reference: {best} {results[best]['img_s'] / ref['img_s']:.2f}x the reference's images/s; "
                         f"G_L1 {results[best]['g_l1']:.4f} vs {ref['g_l1']:.4f}{note}")  # fmt: skip
    ddp = results.get("ddp", {})
    if ddp.get("ok"):
        lines.append(f"DDP: torchrun --nproc_per_node 1 trained over {ddp['process_group']}; multi-GPU scaling is unmeasured (one GPU)")
    wait = results.get("train_b16", {}).get("data_wait_share")
    if wait is not None:
        lines.append(f"data wait at batch {results['train_b16']['batch']}: {wait:.1%} of step time (goal: under 5 %)")
    return lines


def fmt(value, pattern: str) -> str:
    return "-" if value is None else format(value, pattern)


def print_table(summary: dict) -> None:
    meta = summary["meta"]
    print(f"{meta['date']}  {meta['device']}  torch {meta['torch']}, CUDA {meta['cuda']}, cuDNN {meta['cudnn']}"
          f"{'  (dry run)' if meta['dry_run'] else ''}  {meta['steps']} steps, {meta['elapsed_s']:.0f} s")  # fmt: skip
    print(f"{'check':<28} {'status':<7} {'img/s':>8} {'peak MB':>9} {'G_L1':>7} {'vs fp32':>8} {'wait':>6} {'wall s':>7}  note")
    for name, result in summary["checks"].items():
        status = {True: "ok", False: "FAILED", None: "skipped"}[result["ok"]]
        tests = ", ".join(f"{count} {outcome}" for outcome, count in result.get("tests", {}).items())
        note = result.get("error") or result.get("skipped") or tests
        print(f"{name:<28} {status:<7} {fmt(result.get('img_s'), '.1f'):>8} {fmt(result.get('peak_memory_mb'), '.0f'):>9} "
              f"{fmt(result.get('g_l1'), '.4f'):>7} {fmt(result.get('g_l1_vs_fp32'), '+.1%'):>8} "
              f"{fmt(result.get('data_wait_share'), '.1%'):>6} {fmt(result.get('wall_s'), '.0f'):>7}  {note}")  # fmt: skip
    for line in summary["verdicts"]:
        print(line)


def meta(args: argparse.Namespace, plan: Plan) -> dict:
    cuda = plan.device == "cuda"
    return {
        "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "dry_run": args.dry_run, "device": torch.cuda.get_device_name() if cuda else f"CPU ({platform.machine()}, {os.cpu_count()} cores)",
        "torch": torch.__version__, "cuda": torch.version.cuda, "cudnn": torch.backends.cudnn.version(),
        "python": platform.python_version(), "steps": plan.steps, "plan": dataclasses.asdict(plan),
        "reference": str(args.reference) if args.reference else None, "loss_tolerance": LOSS_TOLERANCE,
        "multi_gpu_scaling": "unmeasured: one GPU",
    }  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--dry-run", action="store_true", help="the CPU at toy sizes: proves the script, measures nothing")
    parser.add_argument("--out", type=Path, default=Path(os.environ.get("OUT") or BENCHMARKS), help="folder for the JSON [default: $OUT, else benchmarks/]")
    parser.add_argument("--steps", type=int, help=f"timed steps per setting [default: {GPU.steps}, dry run {DRY_RUN.steps}]")
    parser.add_argument("--reference", type=Path, help="pytorch-CycleGAN-and-pix2pix checkout to time beside ours")
    parser.add_argument("--only", help=f"comma-separated checks [default: all of {', '.join(c.name for c in CHECKS)}]; also: {', '.join(c.name for c in EXTRA)}")
    parser.add_argument("--budget-s", type=float, help=f"stop starting checks after this many seconds [default: {GPU.budget_s:.0f}, dry run {DRY_RUN.budget_s:.0f}]")
    parser.add_argument("--child", choices=list(BY_NAME), help=argparse.SUPPRESS)
    parser.add_argument("--work", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--result", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    plan = DRY_RUN if args.dry_run else GPU
    if args.steps is not None:
        if args.steps < 1:
            parser.error(f"--steps {args.steps}: at least 1")
        plan = dataclasses.replace(plan, steps=args.steps)
    args.steps = plan.steps
    plan = dataclasses.replace(plan, budget_s=args.budget_s or plan.budget_s)

    if args.child:
        check = BY_NAME[args.child]
        outcome = RUNNERS[check.kind](check, plan, args.work, args.reference)
        if int(os.environ.get("RANK", 0)) == 0:
            args.result.write_text(json.dumps(outcome))
        return

    checks = CHECKS
    if args.only:
        unknown = [name for name in args.only.split(",") if name not in BY_NAME]
        if unknown:
            parser.error(f"--only: unknown check {unknown[0]!r}; choose from {', '.join(BY_NAME)}")
        checks = [BY_NAME[name] for name in args.only.split(",")]
    if args.reference and not (args.reference / "models" / "pix2pix_model.py").is_file():
        parser.error(f"--reference {args.reference}: not a pytorch-CycleGAN-and-pix2pix checkout (no models/pix2pix_model.py)")
    if not args.dry_run and not torch.cuda.is_available():
        parser.error("no CUDA device here: run with --dry-run to check the script on the CPU")
    args.out.mkdir(parents=True, exist_ok=True)

    start = time.perf_counter()
    results: dict[str, dict] = {}
    with tempfile.TemporaryDirectory(prefix="pix2pix-gpu-") as tmp:
        work = Path(tmp)
        write_synthetic_facades(work / "pairs", count=plan.train_images, size=plan.load_size)
        for index, check in enumerate(checks, start=1):
            print(f"[{index}/{len(checks)}] {check.name}", file=sys.stderr, flush=True)
            results[check.name] = run_check(check, args, work, plan.budget_s - (time.perf_counter() - start))
    compare_losses(results)
    summary = {"meta": {**meta(args, plan), "elapsed_s": round(time.perf_counter() - start, 1)}, "checks": results}
    summary["verdicts"] = verdicts(results, args.dry_run)
    stamp = summary["meta"]["date"].replace(":", "")[:17]
    path = args.out / f"gpu-{stamp}{'-dry-run' if args.dry_run else ''}.json"
    atomic_write_text(path, json.dumps(summary, indent=2) + "\n")
    print_table(summary)
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
