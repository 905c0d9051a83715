import sys

from sense_nodes.cli.main import main

sys.exit(main())
