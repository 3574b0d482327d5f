"""`python -m service --host 0.0.0.0 --port 8000 --workers 2`: the API, exiting non-zero when it cannot serve."""

import argparse

from service.main import serve

parser = argparse.ArgumentParser(prog="python -m service", description=serve.__doc__)
parser.add_argument("--host", default="127.0.0.1")
parser.add_argument("--port", type=int, default=8000)
parser.add_argument("--workers", type=int, default=1)
args = parser.parse_args()
serve(args.host, args.port, args.workers)
