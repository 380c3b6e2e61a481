"""The plain install (no `[server]`, no `[local]`): the Python client talks to a real
server from a Python that cannot import the server's stack or the model runtime."""

from __future__ import annotations

import json

from tests.servers import Server
from tests.unit.test_layout import _plain


def test_the_client_streams_an_answer_without_the_server_stack(server: Server) -> None:
    done = _plain(f"""
        import json
        from tokenrelay import Client
        with Client({server.url!r}) as client:
            stream = client.chat("hi", model="scripted", options={{"text": "plain é\\n ok"}})
            kinds = [type(event).__name__ for event in stream]
            print(json.dumps({{"kinds": kinds, "text": stream.text()}}))
    """)
    assert done.returncode == 0, done.stderr
    seen = json.loads(done.stdout.splitlines()[-1])
    assert seen["text"] == "plain é\n ok"
    assert seen["kinds"][0] == "Start" and seen["kinds"][-1] == "Done"
