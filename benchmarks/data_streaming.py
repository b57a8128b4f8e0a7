"""Streaming against in-memory training on an image folder, and peak memory when streaming 200,000 images.

    python benchmarks/data_streaming.py                      # both parts, results CSV
    python benchmarks/data_streaming.py --images 1000 --rss-images 20000   # a quick look

Part 1 (speed): a folder of ``--images`` 32x32 RGB PNGs (coloured shapes, resized) is trained
on with ``pyrovae train --network conv`` for one epoch held in memory (``--no-stream``) and
one epoch streamed through the DataLoader (``--stream``), alternating, ``--repeats`` times
each, in this one process. The figure is each epoch's ``train_seconds`` (the optimisation
steps, DataLoader start included, without the ELBO evaluation); the table gives medians and
their ratio (goal: streaming within 1.2x of in-memory).

Part 2 (memory): ``pyrovae train --dataset colour-shapes --train-size N --stream`` (3x64x64
images drawn on demand in the DataLoader workers; 200,000 by default, 9.8 GB as float32 if
held in memory) for one epoch with a small MLP VAE, run as a subprocess; a thread samples the
memory of that process and its DataLoader workers every 0.2 s (the sum of their proportional
set sizes, Pss: a page the forked workers share with the trainer counts once) and reports the
peak. Goal: under 2 GB. The trainer alone (torch and Pyro imported) holds about 0.5 GB.
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from datetime import date
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]


def write_folder(folder: Path, count: int, size: int) -> Path:
    """``count`` coloured shapes as ``size x size`` RGB PNGs, in one subfolder per shape."""
    from PIL import Image

    from pyrovae.data.shapes import colour_shapes

    shapes = colour_shapes()
    indices = np.random.default_rng(0).choice(len(shapes), count, replace=False)
    for start in range(0, count, 1000):
        chunk = indices[start:start + 1000]
        for index, image, codes in zip(chunk, shapes.images(chunk), shapes.factor_codes(chunk)):
            target = folder / str(codes[0])
            target.mkdir(parents=True, exist_ok=True)
            Image.fromarray(image.transpose(1, 2, 0)).resize((size, size), Image.Resampling.BILINEAR) \
                .save(target / f"{index}.png")
    return folder


def epoch_seconds(folder: Path, out: Path, stream: bool, batch_size: int) -> float:
    from pyrovae.cli import main

    code = main(["train", "--dataset", str(folder), "--network", "conv", "--channels", "32,64",
                 "--latent-dim", "32", "--likelihood", "cbernoulli", "--epochs", "1", "--batch-size", str(batch_size),
                 "--no-progress", "--out", str(out), "--overwrite", "--stream" if stream else "--no-stream"])
    if code != 0:
        raise SystemExit(f"pyrovae train failed with exit code {code}")
    return json.loads((out / "metrics.jsonl").read_text().splitlines()[-1])["train_seconds"]


def tree_pss(pid: int) -> int:
    """Memory of ``pid`` and its descendants: the sum of their proportional set sizes (Pss), which
    counts a page shared by k processes (a forked worker's copy of torch) once, 1/k in each."""
    total, stack = 0, [pid]
    while stack:
        p = stack.pop()
        try:
            for line in Path(f"/proc/{p}/smaps_rollup").read_text().splitlines():
                if line.startswith("Pss:"):
                    total += int(line.split()[1]) * 1024
            for task in Path(f"/proc/{p}/task").iterdir():
                stack += [int(c) for c in (task / "children").read_text().split()]
        except (FileNotFoundError, ProcessLookupError, PermissionError):
            continue
    return total


def streamed_peak_rss(count: int, out: Path, workers: int | None) -> tuple[int, float]:
    command = [sys.executable, "-m", "pyrovae", "train", "--dataset", "colour-shapes", "--train-size", str(count),
               "--stream", "--epochs", "1", "--batch-size", "256", "--hidden", "64", "--latent-dim", "8",
               "--likelihood", "cbernoulli", "--no-progress", "--out", str(out), "--overwrite"]
    if workers is not None:
        command += ["--workers", str(workers)]
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    start = time.perf_counter()
    process = subprocess.Popen(command, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    peak = 0

    def watch() -> None:
        nonlocal peak
        while process.poll() is None:
            peak = max(peak, tree_pss(process.pid))
            time.sleep(0.2)

    watcher = threading.Thread(target=watch, daemon=True)
    watcher.start()
    output = process.communicate()[0]
    watcher.join()
    if process.returncode != 0:
        raise SystemExit(f"streamed run failed:\n{output[-3000:]}")
    return peak, time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=2000, help="images in the folder of part 1")
    parser.add_argument("--repeats", type=int, default=3, help="epochs of each kind in part 1")
    parser.add_argument("--batch-size", type=int, default=128)
    parser.add_argument("--rss-images", type=int, default=200_000, help="images streamed in part 2 (0: skip)")
    parser.add_argument("--workers", type=int, default=None, help="DataLoader workers (default: pyrovae's)")
    parser.add_argument("--csv", type=Path, default=ROOT / "benchmarks" / "results" / "data_streaming.csv")
    args = parser.parse_args()
    sys.path.insert(0, str(ROOT))
    import torch

    from pyrovae.data.streaming import default_workers

    rows = []
    with tempfile.TemporaryDirectory() as scratch:
        scratch = Path(scratch)
        folder = write_folder(scratch / "images", args.images, 32)
        times: dict[bool, list[float]] = {False: [], True: []}
        for _ in range(args.repeats):
            for stream in (False, True):
                times[stream].append(epoch_seconds(folder, scratch / "run", stream, args.batch_size))
        memory, streamed = statistics.median(times[False]), statistics.median(times[True])
        print(f"part 1: {args.images} 32x32 RGB PNGs, conv VAE, batch {args.batch_size}: in memory {memory:.2f} s, "
              f"streamed {streamed:.2f} s per epoch (medians of {args.repeats}); ratio {streamed / memory:.3f}")
        common = {"date": date.today().isoformat(), "torch_threads": torch.get_num_threads(),
                  "workers": args.workers if args.workers is not None else default_workers(),
                  "cpu_count": os.cpu_count()}
        rows.append({**common, "measure": "epoch_seconds_in_memory", "images": args.images, "value": round(memory, 3)})
        rows.append({**common, "measure": "epoch_seconds_streamed", "images": args.images, "value": round(streamed, 3)})
        rows.append({**common, "measure": "streamed_over_in_memory", "images": args.images,
                     "value": round(streamed / memory, 3)})
        if args.rss_images:
            peak, seconds = streamed_peak_rss(args.rss_images, scratch / "rss", args.workers)
            print(f"part 2: streaming {args.rss_images} colour-shapes 3x64x64 images for one epoch: peak resident "
                  f"memory {peak / 1e9:.2f} GB (process and workers, sum of Pss), {seconds:.0f} s")
            rows.append({**common, "measure": "streamed_peak_rss_gb", "images": args.rss_images,
                         "value": round(peak / 1e9, 3)})
    args.csv.parent.mkdir(parents=True, exist_ok=True)
    with args.csv.open("w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    print(f"wrote {args.csv}")


if __name__ == "__main__":
    main()
