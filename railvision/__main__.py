import sys

from railvision.cli import main

sys.exit(main())
