import sys

from doubledescent import warm

# A local run's server takes the step if there is one (doubledescent.warm); else it runs here.
code = warm.forward(sys.argv)
if code is None:
    from doubledescent.cli import main

    code = main()
sys.exit(code)
