"""``railvision`` command line: one entry point, one module per subcommand.

Subcommand modules are imported only when chosen, so ``railvision detect`` never
pays for (or imports) the training stack.
"""

from __future__ import annotations

import argparse
import importlib
import sys

from railvision import __version__

# name -> (module, one-line help). Each module defines add_arguments(parser) and run(args) -> int.
COMMANDS: dict[str, tuple[str, str]] = {
    "detect": ("railvision.cli.detect", "detect rolling stock in images and print counts per class"),
    "synth": ("railvision.cli.synth", "generate a labelled synthetic dataset"),
    "data": ("railvision.cli.data", "check datasets and import COCO / VOC / CVAT / Label Studio exports"),
    "train": ("railvision.cli.train", "train or fine-tune a detector (needs the 'train' extra)"),
    "export": ("railvision.cli.export", "export a trained .pt to ONNX for the engine"),
    "eval": ("railvision.cli.evaluate", "evaluate a model on a YOLO dataset"),
    "label": ("railvision.cli.label", "label a whole photo archive, resumably"),
    "serve": ("railvision.cli.serve", "run the HTTP inference service"),
}


def build_parser(argv: list[str]) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="railvision", description="Find and classify freight rolling stock in photos."
    )
    parser.add_argument("--version", action="version", version=f"railvision {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    chosen = next((a for a in argv if not a.startswith("-")), None)
    for name, (module, help_) in COMMANDS.items():
        p = sub.add_parser(name, help=help_, description=help_)
        # Only the chosen command's module is imported (keeps torch out of inference).
        if name == chosen:
            importlib.import_module(module).add_arguments(p)
    return parser


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    parser = build_parser(argv)
    args = parser.parse_args(argv)
    if args.command is None:
        parser.print_help()
        return 2
    module = importlib.import_module(COMMANDS[args.command][0])
    try:
        return int(module.run(args) or 0)
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
