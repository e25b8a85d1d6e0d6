import sys

from .signals import Interrupted, install, signal_name

install()  # before the CLI's imports: a signal during start-up ends the run with one line too
try:
    from .cli import run
except Interrupted as e:
    sys.stderr.write(f"attncli: interrupted by {signal_name(e.signum)}\n")
    sys.exit(e.exit_code)

run()
