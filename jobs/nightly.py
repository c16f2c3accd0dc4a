"""Entrypoint for `ray job submit -- python jobs/nightly.py [-c FILE.yaml]... [key=value]...`.

Connects to the cluster the job runs in (RAY_ADDRESS is set by the job runtime), labels
every drop under drops.root that has no committed run, and prints where results went.
"""

import sys

from raylabel.cli import main

if __name__ == "__main__":
    sys.exit(main(["nightly", *sys.argv[1:]]))
