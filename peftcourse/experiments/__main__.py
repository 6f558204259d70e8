"""`python -m peftcourse.experiments ...`: the command line (cli.main), restarted once on portable CPU kernels."""
import os
import sys

from .cli import PORTABLE_KERNELS, main, needs_portable_kernels

if __name__ == "__main__":
    if needs_portable_kernels():   # torch reads these when it starts: restart this command with them set
        os.execvpe(sys.executable, [sys.executable, "-m", "peftcourse.experiments", *sys.argv[1:]],
                   {**os.environ, **PORTABLE_KERNELS})
    sys.exit(main())
