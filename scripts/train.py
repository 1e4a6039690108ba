#!/usr/bin/env python
"""Train or fine-tune a detector; same as ``railvision train`` (see ``--help``)."""

import sys

from railvision.cli import main

if __name__ == "__main__":
    sys.exit(main(["train", *sys.argv[1:]]))
