"""The ``make-notebook-auth`` command: ``make-notebook-auth sandbox [options]`` (also
``python -m make_notebook_auth.sandbox [options]``) runs the sandbox until interrupted, after
printing the settings to use as ``NAME=value`` lines on stdout. Without a command it prints its
help; ``--version`` prints the version."""

from __future__ import annotations

import argparse
import signal
import sys
import threading
from collections.abc import Sequence
from types import FrameType

from .app import Sandbox, is_loopback

DEFAULT_PORT = 8764


def build_parser(prog: str = "make-notebook-auth sandbox") -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog=prog,
        description="Run a local stand-in for Make (OpenID provider + Make-like API). "
                    "Prints the settings to use as NAME=value lines, then serves until "
                    "interrupted.")
    parser.add_argument("--host", default="127.0.0.1",
                        help="address to listen on (default 127.0.0.1; keep it loopback)")
    parser.add_argument("--port", type=int, default=DEFAULT_PORT,
                        help=f"port (default {DEFAULT_PORT}; 0 picks a free port)")
    parser.add_argument("--confidential", action="store_true",
                        help="print settings for the confidential client (with a throwaway "
                             "MAKE_CLIENT_SECRET) instead of the public PKCE client")
    parser.add_argument("--rate-limit", type=int, metavar="N", default=None,
                        help="answer 429 with Retry-After after N API requests per minute "
                             "per token")
    parser.add_argument("--zones", type=int, metavar="N", default=3,
                        help="serve the API as N zones, each on its own port (default 3); "
                             "organizations are spread across them")
    parser.add_argument("--no-org-limits", action="store_true",
                        help="do not enforce each organization's license.apiLimit (requests "
                             "per minute; over it the API answers 429 like Make)")
    parser.add_argument("--no-retry-after", action="store_true",
                        help="send an organization's 429 without Retry-After")
    parser.add_argument("--latency-ms", type=float, metavar="MS", default=0.0,
                        help="delay every API answer by MS milliseconds")
    parser.add_argument("--access-token-ttl", type=int, metavar="SECONDS", default=3600,
                        help="access token lifetime (default 3600)")
    parser.add_argument("--browser-base-url", metavar="URL", default=None,
                        help="public address of the sandbox for the browser when behind a "
                             "proxy, e.g. https://hub.example/user/ana/proxy/{port} ({port} is "
                             "replaced by the port)")
    return parser


def _stop_on_signal(signum: int, frame: FrameType | None) -> None:
    raise KeyboardInterrupt


def run(argv: Sequence[str] | None = None, prog: str = "make-notebook-auth sandbox") -> int:
    args = build_parser(prog).parse_args(argv)
    if args.rate_limit is not None and args.rate_limit < 1:
        print("--rate-limit must be at least 1", file=sys.stderr)
        return 2
    if args.zones < 1 or args.latency_ms < 0:
        print("--zones must be at least 1 and --latency-ms not negative", file=sys.stderr)
        return 2
    if not is_loopback(args.host):
        print(f"warning: listening on {args.host}, not loopback: anyone who can reach it can "
              "sign in as a demo user", file=sys.stderr, flush=True)
    sandbox = Sandbox(args.host, args.port, confidential=args.confidential,
                      access_token_ttl=args.access_token_ttl, rate_limit=args.rate_limit,
                      browser_base_url=args.browser_base_url, zones=args.zones,
                      org_limits=not args.no_org_limits,
                      org_retry_after=not args.no_retry_after, latency_ms=args.latency_ms)
    try:
        sandbox.start()
    except OSError as exc:
        print(f"cannot listen on {args.host}:{args.port}: {exc.strerror or exc}",
              file=sys.stderr)
        return 1
    for name, value in sandbox.settings().items():
        sys.stdout.write(f"{name}={value}\n")
    sys.stdout.flush()
    print(f"Make sandbox serving at {sandbox.issuer} (API {sandbox.api_url}; zones "
          f"{', '.join(sandbox.zones)}); demo users: alice, bob, carol, dave. "
          "Press Ctrl+C to stop.", file=sys.stderr, flush=True)
    print("API token (alice, read-only scopes), for running notebooks without the OAuth "
          f"client (unset MAKE_CLIENT_ID): MAKE_API_TOKEN={sandbox.api_token}",
          file=sys.stderr, flush=True)
    previous = signal.signal(signal.SIGTERM, _stop_on_signal)
    try:
        threading.Event().wait()
    except KeyboardInterrupt:
        pass
    finally:
        signal.signal(signal.SIGTERM, previous)
        sandbox.stop()
    return 0


def build_command_parser() -> argparse.ArgumentParser:
    """``make-notebook-auth``'s own parser: its commands, ``--help`` and ``--version``."""
    from .._version import __version__

    parser = argparse.ArgumentParser(
        prog="make-notebook-auth",
        description="Log into the Make API from Jupyter. In a notebook: %load_ext "
                    "make_notebook_auth, then make = %make_login. This command runs the "
                    "local Make sandbox for trying the package without a Make account.")
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND")
    commands.add_parser("sandbox", add_help=False,
                        help="run a local stand-in for Make (OpenID provider + Make-like API); "
                             "'make-notebook-auth sandbox --help' for its options")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Console-script entry: ``sandbox [options]``, ``--version``, ``--help``; nothing prints
    the help (exit status 2, as argparse does for a missing command)."""
    args = list(sys.argv[1:] if argv is None else argv)
    if args and args[0] == "sandbox":
        return run(args[1:])
    parser = build_command_parser()
    if not args:
        parser.print_help()
        return 2
    parser.parse_args(args)  # --help, --version and unknown input exit here
    parser.print_help()
    return 2


if __name__ == "__main__":
    sys.exit(run())
