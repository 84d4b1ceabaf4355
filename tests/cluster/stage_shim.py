"""The node agent's stand-in for the stage image's ``radpipe`` entrypoint: the venv's
radpipe CLI, with the cluster tier's test stages registered first."""

from __future__ import annotations

from radpipe.cli import main
from tests.cluster.stages import register

if __name__ == "__main__":
    register()
    main()
