"""Command line: ``python -m listening_test {serve,export,stimuli}``.

(The ``mastering`` command line does not offer them: ``mastering`` never imports this app.)
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

from waitress.adjustments import Adjustments
from waitress.channel import HTTPChannel
from waitress.server import MultiSocketServer, TcpWSGIServer
from waitress.task import ThreadedTaskDispatcher

from mastering.evaluation.listening_design import TARGETS

__all__ = ["build_parser", "main"]

ADMIN_TOKEN_ENV = "LISTENING_TEST_ADMIN_TOKEN"


class PerClientLimitServer(TcpWSGIServer):
    """waitress's TCP server, closing a client's connections beyond ``max_per_client`` open at once.

    The extra connection is accepted and closed at once, so one client (one IP address) cannot
    fill waitress's ``connection_limit`` and stall everyone else. Connections from ``exempt`` (the
    trusted reverse proxy, which carries every participant and limits them itself) are not counted
    against the limit; ``max_per_client=0`` turns the limit off.
    """

    def __init__(self, *args, max_per_client: int, exempt: str | None = None, **kw):
        self.max_per_client = max_per_client
        self.exempt = exempt
        self.refused = 0
        super().__init__(*args, **kw)

    def open_connections(self, host: str) -> int:
        """Open connections from ``host`` on every socket of this server."""
        channels = list(self._map.values())  # atomic copy: workers may close channels meanwhile
        return sum(1 for c in channels if isinstance(c, HTTPChannel) and c.addr[0] == host)

    def accept(self):
        pair = super().accept()
        if pair is None or not self.max_per_client:
            return pair
        conn, addr = pair
        host = addr[0]
        if self.exempt not in (host, "*") and self.open_connections(host) >= self.max_per_client:
            conn.close()
            self.refused += 1
            return None  # waitress's handle_accept then creates no channel
        return pair

    def maintenance(self, now):
        super().maintenance(now)  # closes the connections idle for longer than channel_timeout
        if self.refused:
            self.logger.warning("closed %d connections over the limit of %d per client",
                                self.refused, self.max_per_client)
            self.refused = 0


def _raise_open_files_limit(connection_limit: int) -> None:
    """Make room for ``connection_limit`` sockets (plus the temporary files of large responses)."""
    try:
        import resource
    except ImportError:  # not POSIX
        return
    want, need = 2 * connection_limit + 64, connection_limit + 64
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft != resource.RLIM_INFINITY and soft < want:
        soft = want if hard == resource.RLIM_INFINITY else min(want, hard)
        resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))
    if soft != resource.RLIM_INFINITY and soft < need:
        print(f"warning: {soft} open files allowed, --connection-limit {connection_limit} needs about "
              f"{need}; raise `ulimit -n` or lower --connection-limit", file=sys.stderr, flush=True)


def _create_server(app, args: argparse.Namespace):
    """The waitress server of ``serve``: returns ``(server, port)``."""
    proxy = {}
    if args.trusted_proxy:  # an HTTPS reverse proxy in front: trust its X-Forwarded-Proto
        proxy = {"trusted_proxy": args.trusted_proxy, "trusted_proxy_headers": {"x-forwarded-proto"}}
    adj = Adjustments(
        host=args.host, port=args.port, threads=args.threads, ident="listening-test",
        clear_untrusted_proxy_headers=True, connection_limit=args.connection_limit,
        channel_timeout=args.idle_timeout_s, cleanup_interval=max(1, args.idle_timeout_s // 2),
        asyncore_use_poll=True,  # select() fails on file descriptors above 1023
        **proxy,
    )
    _raise_open_files_limit(adj.connection_limit)
    dispatcher = ThreadedTaskDispatcher()
    dispatcher.set_thread_count(adj.threads)
    socket_map: dict = {}  # shared by all listening sockets (create_server does the same)
    servers = [PerClientLimitServer(app, socket_map, dispatcher=dispatcher, adj=adj, sockinfo=info,
                                    max_per_client=args.max_connections_per_client, exempt=adj.trusted_proxy)
               for info in adj.listen]
    if len(servers) == 1:
        return servers[0], servers[0].effective_port
    listen = [(s.effective_host, s.effective_port) for s in servers]
    return MultiSocketServer(socket_map, adj, listen, dispatcher, servers[0].log_info), listen[0][1]


def _serve(args: argparse.Namespace) -> int:
    import secrets

    from .app import AppConfig, create_app

    token = args.admin_token or os.environ.get(ADMIN_TOKEN_ENV, "")
    if not token:
        token = secrets.token_urlsafe(24)
        print(f"admin token (for /admin/export.csv): {token}", file=sys.stderr, flush=True)
    config = AppConfig(
        n_fixed_checks=args.fixed_checks, n_anchor_repeats=args.anchor_repeats,
        training=not args.no_training, contact=args.contact,
    )
    app = create_app(args.stimuli, args.db, token, config)
    server, port = _create_server(app, args)
    # One parseable line (tests read the port from it when --port 0 asks for a free one).
    print(f"listening on http://{args.host}:{port}/", flush=True)
    try:
        server.run()
    except KeyboardInterrupt:
        pass
    finally:
        server.close()
    return 0


def _export(args: argparse.Namespace) -> int:
    from .store import Store

    if not Path(args.db).is_file():
        print(f"{args.db}: no such database", file=sys.stderr)
        return 1
    text = Store(args.db).export_csv()
    if args.out == "-":
        sys.stdout.write(text)
    else:
        out = Path(args.out)
        tmp = out.with_name(f".{out.name}.tmp-{os.getpid()}")
        tmp.write_text(text, encoding="utf-8")
        os.replace(tmp, out)
        print(f"wrote {out} ({text.count(chr(10)) - 1} ratings)", file=sys.stderr)
    return 0


def _stimuli(args: argparse.Namespace) -> int:
    from .stimuli import generate_stimuli, load_systems, select_tracks, split_tracks

    targets = args.targets or list(TARGETS)
    if args.tracks:
        tracks = select_tracks(args.tracks, args.n_items, seed=args.seed, min_duration_s=args.clip_s)
    else:
        tracks = split_tracks(args.n_items, split=args.split, seed=args.seed, min_duration_s=args.clip_s)
    systems = load_systems(args.systems)
    manifest = generate_stimuli(
        tracks, args.out, systems, targets, sample_rate=args.sample_rate, clip_s=args.clip_s,
        target_lufs=args.target_lufs, overwrite=args.overwrite,
    )
    print(f"wrote {manifest}", file=sys.stderr)
    return 0


def _int_at_least(low: int):
    """An argparse type: an integer no smaller than ``low``."""
    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            value = low - 1
        if value < low:
            raise argparse.ArgumentTypeError(f"must be an integer >= {low}, got {text!r}")
        return value
    return parse


def _add_commands(sub) -> None:
    p = sub.add_parser("serve", help="run the listening-test web app")
    p.add_argument("--stimuli", required=True, help="folder with manifest.csv and the WAV files")
    p.add_argument("--db", required=True, help="SQLite database of the responses (created when missing)")
    p.add_argument("--host", default="127.0.0.1", help="address to listen on (default 127.0.0.1)")
    p.add_argument("--port", type=int, default=8765, help="port (0 picks a free one; default 8765)")
    p.add_argument("--admin-token", default="",
                   help=f"secret for /admin/export.csv (else ${ADMIN_TOKEN_ENV}, else a random one is printed)")
    p.add_argument("--fixed-checks", type=int, default=4, help="fixed-answer attention checks per participant")
    p.add_argument("--anchor-repeats", type=int, default=4, help="repeated 'original' trials per participant")
    p.add_argument("--no-training", action="store_true", help="skip the training trial")
    p.add_argument("--contact", default="the study team", help="contact shown on the consent page")
    p.add_argument("--threads", type=int, default=8, help="server worker threads")
    p.add_argument("--trusted-proxy", default="",
                   help="address of an HTTPS reverse proxy whose X-Forwarded-Proto is trusted (cookies become "
                        "Secure); its connections are not limited per client (the proxy limits them)")
    p.add_argument("--max-connections-per-client", type=_int_at_least(0), default=64,
                   help="open connections one client address may hold; more are closed at once, so one "
                        "client cannot exhaust --connection-limit (0: no limit; default 64, room for "
                        "several browsers on one machine)")
    p.add_argument("--connection-limit", type=_int_at_least(1), default=1000,
                   help="open connections in all; beyond it new ones wait in the listen backlog (default 1000)")
    p.add_argument("--idle-timeout-s", type=_int_at_least(1), default=30,
                   help="seconds a connection may sit idle (nothing sent or received, no request being "
                        "answered) before it is closed; half-sent requests count as idle (default 30)")
    p.set_defaults(func=_serve)

    p = sub.add_parser("export", help="write all ratings as CSV (long format) from the database")
    p.add_argument("--db", required=True)
    p.add_argument("--out", default="-", help="output CSV file ('-' for stdout)")
    p.set_defaults(func=_export)

    p = sub.add_parser("stimuli", help="generate the stimuli (WAV + manifest.csv) from music tracks")
    p.add_argument("--tracks", default=None,
                   help="folder of audio files (default: the --split tracks prepared by `make data`)")
    p.add_argument("--split", default="test", choices=["train", "valid", "test"],
                   help="split of the prepared real-music tracks to draw from (default: test)")
    p.add_argument("--out", required=True, help="stimuli folder to write")
    p.add_argument("--n-items", type=int, default=10, help="number of clips (items)")
    p.add_argument("--targets", nargs="+", default=None, help="semantic targets (default: warm bright clear)")
    p.add_argument("--systems", default="listening_test.systems:stimulus_systems",
                   help="MODULE:FUNCTION returning {condition: system} (default: the real semantic EQ "
                        "systems, which need a local bundle: notebooks 07-09 or `python -m mastering.semantic "
                        "build`); 'placeholder': simple-EQ stand-ins for a pipeline check, marked placeholder=1")
    p.add_argument("--clip-s", type=float, default=8.0, help="clip length in seconds")
    p.add_argument("--target-lufs", type=float, default=-23.0, help="loudness of every stimulus (BS.1770)")
    p.add_argument("--sample-rate", type=int, default=44100)
    p.add_argument("--seed", type=int, default=0, help="seed of the track selection")
    p.add_argument("--overwrite", action="store_true", help="replace an existing stimuli set")
    p.set_defaults(func=_stimuli)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m listening_test",
                                     description="Listening-test web app, stimuli and export.")
    _add_commands(parser.add_subparsers(dest="command", metavar="COMMAND", required=True))
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return int(args.func(args) or 0)
    except ValueError as exc:  # includes mastering.io.AudioError
        print(f"listening_test {args.command}: error: {exc}", file=sys.stderr)
        return 1
