import sys

from doubledescent.cli import main

sys.exit(main())
