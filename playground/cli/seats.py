"""`seats`: the Class page's seats from the command line: list them, issue one (its link's key is printed once),
revoke one, or give one a new link. A running server reads the change at its next page."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from playground.cli.common import EXIT_OK, print_json
from playground.runs.seats import SEAT_PARAM, SEATS_FILE, SeatBook


def add_parser(commands: Any) -> None:
    parser = commands.add_parser("seats", help="a shared server's seats: list, issue, revoke, new link")
    parser.add_argument("--runs-dir", default="runs", help="the runs folder the server uses (default runs)")
    action = parser.add_mutually_exclusive_group()
    action.add_argument("--issue", metavar="NAME", help="issue a seat for this student and print its link once")
    action.add_argument("--revoke", metavar="SEAT", help="the seat (its id) grants nothing from now on")
    action.add_argument("--new-link", metavar="SEAT", help="a fresh link for the seat (its old one stops working)")
    parser.add_argument("--url", default="http://localhost:8501", help="the server's address, for the link")
    parser.add_argument("--json", action="store_true", help="end with one JSON line: the seats, and the link made")


def run(args: argparse.Namespace) -> int:
    book = SeatBook(Path(args.runs_dir) / SEATS_FILE)
    made: dict[str, str] = {}
    if args.issue is not None:
        seat, key = book.issue(args.issue)
        made = {"id": seat.id, "link": f"{args.url.rstrip('/')}/?{SEAT_PARAM}={key}"}
    elif args.new_link is not None:
        made = {"id": args.new_link, "link": f"{args.url.rstrip('/')}/?{SEAT_PARAM}={book.new_key(args.new_link)}"}
    elif args.revoke is not None:
        book.revoke(args.revoke)
    if problem := book.problem:
        print(f"warning: {problem}")
    seats = [{"id": seat.id, "name": seat.name, "by": seat.how, "revoked": seat.revoked} for seat in book.all()]
    for seat in seats:
        print(f"{seat['id']}  {seat['by']:<5} {'revoked' if seat['revoked'] else 'active':<7}  {seat['name']}")
    if made:
        print(f"link for seat {made['id']} (shown once): {made['link']}")
    if args.json:
        print_json({"seats": seats, **({"made": made} if made else {})})
    return EXIT_OK
