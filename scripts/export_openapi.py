"""Write the API's OpenAPI document to docs/api/openapi.json (or the path given).

The document is generated from the app itself, so it cannot drift from the code: run this after
changing an endpoint or a schema, and commit the result.

    .venv/bin/python scripts/export_openapi.py [OUTPUT]

It builds a runtime on a throw-away SQLite file with a freshly generated master key; nothing is
connected to, migrated or sent, and the current directory's .env is not read.
"""

from __future__ import annotations

import json
import sys
import tempfile
from pathlib import Path

from pydantic import SecretStr

from followup.app import create_app
from followup.config import Settings
from followup.kernel.crypto import generate_master_key_text
from followup.runtime import build_runtime

DEFAULT_OUTPUT = Path(__file__).resolve().parent.parent / "docs" / "api" / "openapi.json"


def export(output: Path) -> None:
    with tempfile.TemporaryDirectory(prefix="followup-openapi-") as scratch:
        settings = Settings(
            _env_file=None,  # type: ignore[call-arg]
            database_url=f"sqlite:///{Path(scratch) / 'openapi.db'}",
            master_key=SecretStr(generate_master_key_text()),
        )
        runtime = build_runtime(settings)
        try:
            document = create_app(runtime).openapi()
        finally:
            runtime.close()
    output.parent.mkdir(parents=True, exist_ok=True)
    with output.open("w", encoding="utf-8") as handle:
        json.dump(document, handle, indent=2, sort_keys=True)
        handle.write("\n")


def main() -> None:
    output = Path(sys.argv[1]) if len(sys.argv) > 1 else DEFAULT_OUTPUT
    export(output)
    print(f"wrote {output}")


if __name__ == "__main__":
    main()
