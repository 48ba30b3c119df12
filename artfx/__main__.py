"""python -m artfx"""

from artfx.cli import run

run()
