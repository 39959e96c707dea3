"""The answer benchmark's baseline: a bare FastAPI endpoint that inserts one row per POST.

Served exactly as `followup serve` serves the app (uvicorn, same options), so the ratio shows what
the engine's work per answer costs, not what the framework costs.
Run: python -m followup.bench.bare_app --db PATH --port PORT
"""

from __future__ import annotations

import argparse
import datetime as dt
import sqlite3
from pathlib import Path
from typing import Annotated

from fastapi import FastAPI, Form
from fastapi.responses import RedirectResponse


def create_bare_app(db_path: Path) -> FastAPI:
    with sqlite3.connect(db_path) as connection:
        connection.execute("PRAGMA journal_mode=WAL")
        connection.execute(
            "CREATE TABLE IF NOT EXISTS answers (id INTEGER PRIMARY KEY, token TEXT, step TEXT, nps INTEGER, at TEXT)"
        )
    connection.close()
    app = FastAPI()

    @app.get("/healthz")
    def healthz() -> dict[str, str]:
        return {"status": "ok"}

    @app.post("/s/{token}")
    def answer(token: str, step: Annotated[str, Form()], nps: Annotated[int, Form()]) -> RedirectResponse:
        connection = sqlite3.connect(db_path, timeout=30)
        try:
            connection.execute("PRAGMA synchronous=NORMAL")
            connection.execute(
                "INSERT INTO answers (token, step, nps, at) VALUES (?, ?, ?, ?)",
                (token, step, nps, dt.datetime.now(dt.UTC).isoformat()),
            )
            connection.commit()
        finally:
            connection.close()
        return RedirectResponse(f"/s/{token}", status_code=303)

    return app


def main() -> None:
    import uvicorn  # noqa: PLC0415

    parser = argparse.ArgumentParser()
    parser.add_argument("--db", type=Path, required=True)
    parser.add_argument("--port", type=int, required=True)
    args = parser.parse_args()
    # The same options as `followup serve`.
    uvicorn.run(create_bare_app(args.db), host="127.0.0.1", port=args.port, log_level="warning", access_log=False)


if __name__ == "__main__":
    main()
