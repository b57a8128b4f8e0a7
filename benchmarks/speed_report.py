"""The ratio table that ``speed.py`` prints and writes to ``results/NAME.md``."""

from __future__ import annotations


def is_default_protocol(args: dict) -> bool:
    """The ANCHORS.md protocol that issue 5's targets are set for: Pyro's tutorial VAE
    (784-400-50 MLP, standard prior) at batch 256."""
    return (args["model"], args["prior"], args["net"], args["batch_size"], args["latent_dim"],
            args["hidden"]) == ("vae", "normal", "mlp", 256, 50, 400)


def ratio_rows(results: dict) -> list[tuple[str, str, str]]:
    """``(ratio, value, target)`` rows; the targets stand only beside the default protocol's
    figures, other configurations print "(info)"."""
    default = is_default_protocol(results["args"])

    def target(text: str) -> str:
        return text if default else "(info)"

    rows = []
    train = results.get("train")
    if train:
        m = train["median_seconds"]
        # The trainer's default compiles fits of AUTO_COMPILE_STEPS steps or more on a CPU (21
        # full-MNIST epochs at batch 256): the compiled contender is pyrovae's path for such
        # runs and carries the targets; the eager one is the path of shorter runs.
        compiled = "pyrovae-compiled" in m
        eager_target = "(info: runs under 5,000 steps)" if compiled else None
        rows.append(("pyrovae / plain (epoch time)", f"{m['pyrovae'] / m['plain']:.3f}",
                     eager_target or target("<= 1.10")))
        rows.append(("pyro-style / pyrovae", f"{m['pyro-style'] / m['pyrovae']:.3f}", eager_target or target(">= 1.4")))
        if compiled:
            c = "pyrovae-compiled"
            rows.append((f"{c} / plain", f"{m[c] / m['plain']:.3f}", target("<= 1.10")))
            rows.append((f"pyro-style / {c}", f"{m['pyro-style'] / m[c]:.3f}", target(">= 1.4")))
            if "floor" in m:
                rows.append((f"floor / {c}", f"{m['floor'] / m[c]:.3f}", target(">= 0.55")))
            extra = train["warmup_seconds"][c] - m[c]
            rows.append((f"{c}: one-off compile (warm-up epoch minus median epoch, s)", f"{extra:.1f}", "(info)"))
        if "svi-on-pyrovae" in m:
            rows.append(("svi-on-pyrovae / pyrovae", f"{m['svi-on-pyrovae'] / m['pyrovae']:.3f}", "(info)"))
        rows.append(("floor / pyrovae (fraction of floor)",
                     f"{m['floor'] / m['pyrovae']:.3f}" if "floor" in m else "n/a (conv)",
                     eager_target or target(">= 0.55")))
        rows.append(("floor / plain", f"{m['floor'] / m['plain']:.3f}" if "floor" in m else "n/a", "(info)"))
        c = train["median_cpu_seconds"]
        rows.append(("CPU time: pyrovae / plain", f"{c['pyrovae'] / c['plain']:.3f}", "(load-robust check)"))
        rows.append(("CPU time: pyro-style / pyrovae", f"{c['pyro-style'] / c['pyrovae']:.3f}", "(load-robust check)"))
    ev = results.get("eval")
    if ev:
        label = "pyrovae.infer.evaluation.log_likelihood"
        if "floor" in ev:
            # Runs since 2026-12-02 time the floor between their own batches: the median of the
            # runs' ratios; older files hold one floor measured after all runs.
            ours = ev["eval-pyrovae"]
            ratio = ours.get("floor_ratio", ours["seconds_10000"] / ev["floor"]["seconds_10000"])
            rows.append((f"{label} / floor, k={results['args']['eval_samples']}", f"{ratio:.3f}", target("<= 1.5")))
        if "onednn_floor_ratio" in ev["eval-pyrovae"]:
            rows.append((f"{label} / floor by oneDNN's linear at its own pass shape (the kernel it runs)",
                         f"{ev['eval-pyrovae']['onednn_floor_ratio']:.3f}", "(info)"))
        rows.append((f"{label} peak RSS (GB)", f"{ev['eval-pyrovae']['peak_rss'] / 1e9:.2f}", target("< 4")))
    if results.get("memory"):
        rows.append(("training peak RSS, full MNIST (GB)", f"{results['memory']['peak_rss'] / 1e9:.2f}",
                     target("<= 1.5")))
    return rows


def markdown(results: dict) -> str:
    lines = [f"Run {results['date']} on {results['machine']}; torch {results['torch']}, pyro {results['pyro']}; "
             f"load average {results['load_before']} before, {results['load_after']} after.", ""]
    train = results.get("train")
    if train:
        lines += ["| contender | median s/epoch (wall) | epochs timed (wall) | median CPU s/epoch |",
                  "|---|---|---|---|"]
        for name, sec in train["median_seconds"].items():
            cpu = train["median_cpu_seconds"].get(name)
            lines.append(f"| {name} | {sec:.2f} | {', '.join(f'{t:.2f}' for t in train['epoch_seconds'].get(name, []))}"
                         f" | {'' if cpu is None else f'{cpu:.2f}'} |")
        lines.append("")
    ev = results.get("eval")
    if ev:
        lines += ["| evaluation, 10,000 test images | seconds (scaled) | peak RSS GB |", "|---|---|---|"]
        for kind in ("eval-reference", "eval-pyrovae"):
            if kind in ev:
                lines.append(f"| {kind} | {ev[kind]['seconds_10000']:.1f} | {ev[kind]['peak_rss'] / 1e9:.2f} |")
        if "floor" in ev:
            lines.append(f"| matmul floor (torch.matmul) | {ev['floor']['seconds_10000']:.1f} | |")
        if "onednn_floor" in ev:
            seconds = ev["onednn_floor"]["seconds_10000"]
            lines.append(f"| matmul floor (oneDNN linear, 10,000-row passes) | {seconds:.1f} | |")
        lines.append("")
    lines += ["| ratio | value | target |", "|---|---|---|"]
    lines += [f"| {a} | {b} | {c} |" for a, b, c in ratio_rows(results)]
    return "\n".join(lines) + "\n"


