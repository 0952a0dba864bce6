"""Test session set-up: figures render off-screen."""

import os

os.environ.setdefault("MPLBACKEND", "Agg")
