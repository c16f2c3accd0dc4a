"""Entrypoint for `ray job submit -- python jobs/audit.py [-c FILE.yaml]... [key=value]...`.

Connects to the cluster the job runs in (RAY_ADDRESS is set by the job runtime).
"""

import sys

from raylabel.cli import main

if __name__ == "__main__":
    sys.exit(main(["audit", *sys.argv[1:]]))
