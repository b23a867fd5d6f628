"""``hiergym serve``: hiergym envs over HTTP and WebSocket, one env per session.

The protocol is documented in :mod:`hiergym.server`; the client is :class:`hiergym.remote.RemoteEnv`.
"""

from __future__ import annotations

import argparse
import sys


def _serve(args: argparse.Namespace) -> int:
    try:
        from hiergym.server import ServeConfig, check_bind, serve
    except ImportError as e:  # fastapi/uvicorn are the `server` extra
        print(
            f"hiergym serve needs the server extra: pip install 'hiergym[server]' ({e})",
            file=sys.stderr,
        )
        return 2
    import os

    from hiergym.errors import HiergymError
    from hiergym.server import TOKEN_ENV

    token = args.token or os.environ.get(TOKEN_ENV) or None
    try:
        check_bind(args.host, token)
    except ValueError as e:
        print(f"hiergym serve: {e}", file=sys.stderr)
        return 2
    envs = tuple(e for part in args.envs for e in part.split(",") if e)
    config = ServeConfig(
        envs=envs,
        max_sessions=args.max_sessions,
        token=token,
        idle_timeout=args.idle_timeout,
        max_request_bytes=args.max_request_bytes,
        threads=args.threads,
        full_gc_s=args.full_gc_s,
    )
    try:
        if args.inline is not None:
            from hiergym.envs.registry import resolve_env_id

            names = [e for part in args.inline for e in part.split(",") if e]
            config.inline = tuple(resolve_env_id(e) for e in names)
        serve(args.host, args.port, config, preload=not args.no_preload, log_level=args.log_level)
    except HiergymError as e:  # an unknown --envs name, say
        print(f"hiergym serve: {e}", file=sys.stderr)
        return 2
    return 0


def add_command(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "serve",
        help="serve envs over HTTP/WebSocket (one env per session; see hiergym.server)",
        description="Serve hiergym envs over HTTP and WebSocket: one env per session, "
        "OpenEnv's WebSocket protocol, a stateful HTTP API, /health and /metrics. Connect with "
        "hiergym.remote.RemoteEnv(url, env_id) or gym.make('hiergym/Remote-v0', url=..., env_id=...).",
    )
    p.add_argument("--host", default="127.0.0.1", help="address (non-loopback needs --token)")
    p.add_argument("--port", type=int, default=8000)
    p.add_argument(
        "--envs",
        nargs="*",
        default=[],
        metavar="ENV",
        help="ids or short names (comma or space separated); default: every registered id",
    )
    p.add_argument("--max-sessions", type=int, default=1024, help="beyond it: 503 (default 1024)")
    p.add_argument(
        "--token",
        default=None,
        help="bearer token required on every route but /health "
        "(or set HIERGYM_SERVE_TOKEN, which keeps it out of the process list)",
    )
    p.add_argument(
        "--idle-timeout",
        type=float,
        default=600.0,
        help="seconds without a request before a session is closed (default 600)",
    )
    p.add_argument(
        "--max-request-bytes",
        type=int,
        default=1 << 20,
        help="largest request body or WebSocket message (default 1 MiB)",
    )
    p.add_argument(
        "--threads",
        type=int,
        default=16,
        help="threads that run env calls (0: all on the event loop)",
    )
    p.add_argument(
        "--full-gc-s",
        type=float,
        default=600.0,
        help="freeze the long-lived heap each second and collect all of it every this many "
        "seconds, so collections do not stall every session (0: Python's default collector)",
    )
    p.add_argument(
        "--inline",
        nargs="*",
        default=None,
        metavar="ENV",
        help="ids whose (cheap, in-process) calls run on the event loop; default: "
        "Shopping, Travel, TravelPlanner",
    )
    p.add_argument(
        "--no-preload",
        action="store_true",
        help="do not build each env's sandbox before accepting clients",
    )
    p.add_argument("--log-level", default="info")
    p.set_defaults(fn=_serve)
