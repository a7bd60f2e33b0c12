import sys

from mouseemo.cli import main

sys.exit(main())
