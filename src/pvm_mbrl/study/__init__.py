"""Studies: a grid of runs (``plan``), each run's state read from the study directory (``state``), the job that
brings one run to finished (``job``), launching through Hydra's launchers and reporting (``launch``), and compute
estimates (``estimate``)."""
