"""mkdocs hooks: the command-line reference from argparse itself, and topic pages added to the nav
only when their files exist (other pages are written alongside this site)."""

from __future__ import annotations

import os
import re
from pathlib import Path

#: Topic pages of their own; each joins the nav's "Topics" section when its file exists.
OPTIONAL_PAGES = {
    "autoencoders.md": "Autoencoders",
    "vq_vae.md": "VQ-VAE",
    "likelihoods.md": "Likelihoods",
    "networks.md": "Networks and traversals",
    "data.md": "Data sources",
    "speed.md": "Speed",
    "factors.md": "Factors and disentanglement",
}

_CLI_MARKER = re.compile(r"<!-- cli-help: ?([\w ]*) -->")


def on_config(config, **kwargs):
    docs = Path(config["docs_dir"])
    present = [{title: name} for name, title in OPTIONAL_PAGES.items() if (docs / name).exists()]
    if present:
        nav = config["nav"]
        at = next((i for i, item in enumerate(nav) if "Command line" in item), len(nav))
        nav.insert(at, {"Topics": present})
    return config


def on_page_markdown(markdown, page, config, files, **kwargs):
    if "cli-help" not in markdown:
        return markdown
    return _CLI_MARKER.sub(lambda m: _help(m.group(1).split()), markdown)


def _help(command: list[str]) -> str:
    """``pyrovae <command> --help`` as a fenced block, at a fixed width."""
    os.environ["COLUMNS"] = "100"
    from pyrovae.cli import build_parser

    parser = build_parser()
    for name in command:
        sub = next(a for a in parser._actions if a.__class__.__name__ == "_SubParsersAction")
        parser = sub.choices[name]
    return "```text\n" + parser.format_help().rstrip() + "\n```"
