from artfx.cli import run

run()
