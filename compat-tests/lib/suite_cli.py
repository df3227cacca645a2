"""The command line that every client suite script (kazoo, gozk, curator, kafka) shares:

    <suite>.py setup
    <suite>.py run --host H:P --server KIND --out-dir DIR [--server-log F]

Exit status: 0 when the run had no failure and no error, 1 otherwise; `error_status` when
`setup` or `run` raised one of `errors` (reported with `report`, stderr by default).
Standard library only.
"""

import argparse
import sys


def main(doc, setup, run, errors=(), error_status=1, report=None, argv=None):
    ap = argparse.ArgumentParser(description=doc, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = ap.add_subparsers(dest="cmd", required=True)
    sub.add_parser("setup")
    r = sub.add_parser("run")
    r.add_argument("--host", required=True, help="host:port of the running server")
    r.add_argument("--server", required=True, help="server kind, names the result files")
    r.add_argument("--out-dir", required=True)
    r.add_argument("--server-log")
    args = ap.parse_args(argv)
    try:
        if args.cmd == "setup":
            setup()
            return 0
        res = run(args.host, args.server, args.out_dir, args.server_log)
    except errors as e:
        (report or (lambda msg: print(msg, file=sys.stderr)))(str(e))
        return error_status
    return 0 if res["failed"] == 0 and "error" not in res else 1
