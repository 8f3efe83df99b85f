"""The portal's static files (its CSS and script, and vendored htmx and Pico CSS), served under /static."""

from pathlib import Path

STATIC_DIR = Path(__file__).parent
