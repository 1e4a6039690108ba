"""``railvision`` command line: one entry point, one module per subcommand.

Subcommand modules are imported only when chosen, so ``railvision detect`` never
pays for (or imports) the training stack. They report failures by raising: ``main``
turns ``CommandError``, ``RailvisionError``, ``ValueError`` and ``FileNotFoundError``
into an ``error: ...`` line on stderr and the exit code, here and nowhere else.
"""

from __future__ import annotations

import argparse
import importlib
import sys

from railvision import __version__
from railvision.errors import RailvisionError

USAGE_ERRORS = (RailvisionError, ValueError, FileNotFoundError)  # bad arguments or input: exit code 2


class CommandError(Exception):
    """A failure a subcommand explains in one line: ``main`` prints ``error: <message>`` and exits with
    ``code`` (2: the arguments or input cannot be used, 1: the work ran and failed)."""

    def __init__(self, message: str, code: int = 2) -> None:
        super().__init__(message)
        self.code = code


# name -> (module, one-line help). Each module defines add_arguments(parser) and run(args) -> int.
COMMANDS: dict[str, tuple[str, str]] = {
    "detect": ("railvision.cli.detect", "detect rolling stock in images and print counts per class"),
    "synth": ("railvision.cli.synth", "generate a labelled synthetic dataset"),
    "data": ("railvision.cli.data", "check datasets and import COCO / VOC / CVAT / Label Studio exports"),
    "train": ("railvision.cli.train", "train or fine-tune a detector (needs the 'train' extra)"),
    "export": ("railvision.cli.export", "export a trained .pt to ONNX for the engine"),
    "quantize": ("railvision.cli.quantize", "write an INT8 copy of an ONNX model, calibrated on photos"),
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
    except KeyboardInterrupt as exc:  # a command may say what an interrupt leaves behind
        print(f"interrupted: {exc}" if str(exc) else "interrupted", file=sys.stderr)
        return 130
    except (CommandError, *USAGE_ERRORS) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return exc.code if isinstance(exc, CommandError) else 2
