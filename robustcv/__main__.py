from robustcv.cli import run

run()
