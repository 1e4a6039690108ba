#!/usr/bin/env python
"""Export a .pt to ONNX and verify it; same as ``railvision export`` (see ``--help``)."""

import sys

from railvision.cli import main

if __name__ == "__main__":
    sys.exit(main(["export", *sys.argv[1:]]))
