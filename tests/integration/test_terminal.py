"""`tokenrelay chat` driven as a user drives it: the real command in a pseudo-terminal
(pexpect), or with stdout a pipe, against a real server with the scripted model."""

from __future__ import annotations

import os
import platform
import re
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx
import pexpect
import pytest

from tokenrelay import Client
from tests.servers import ROOT, Server, free_port

COLUMNS, LINES = 100, 30
TIMEOUT = 30  # a deadline for what each step waits for, never a duration asserted
PROMPT = "› "
ANSWER = "Here is **bold** text.\n\n- one\n- two\n"
RENDERED = "Here is bold text."  # the same, as markdown rendered in a terminal
STATS = re.compile(r"first token [\d.]+ s · [\d.]+ tokens/s · \d+ tokens")
CONTINUE_HINT = re.compile(r"tokenrelay chat --continue (conv_\w+)")
# CSI sequences (colour, cursor moves), OSC sequences (hyperlinks), and the CRs of redraws
_ANSI = re.compile(r"\x1b\[[0-?]*[ -/]*[@-~]|\x1b\][^\x07\x1b]*(?:\x07|\x1b\\)|\r")


def _plain(output: str) -> str:
    return _ANSI.sub("", output)


def _env() -> dict[str, str]:
    # This checkout's code, whatever `tokenrelay` the environment has installed.
    path = os.pathsep.join(filter(None, [str(ROOT / "src"), os.environ.get("PYTHONPATH")]))
    return {**os.environ, "PYTHONPATH": path, "TERM": "xterm-256color",
            "COLUMNS": str(COLUMNS), "LINES": str(LINES)}


def _argv(*args: str) -> list[str]:
    return ["-m", "tokenrelay", "chat", *args]


@contextmanager
def _terminal(*args: str) -> Iterator[pexpect.spawn]:
    child = pexpect.spawn(sys.executable, _argv(*args), env=_env(), cwd=str(ROOT),
                          encoding="utf-8", timeout=TIMEOUT, dimensions=(LINES, COLUMNS))
    try:
        yield child
    finally:
        child.close(force=True)


def _run_piped(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, *_argv(*args)], env=_env(), cwd=ROOT, text=True,
                          capture_output=True, stdin=subprocess.DEVNULL, timeout=30)


def _exit(child: pexpect.spawn) -> tuple[int | None, str]:
    """Wait for the command to end; its exit status and what it printed last."""
    child.expect(pexpect.EOF)
    output = child.before
    child.close()
    return child.exitstatus, _plain(output)


#: the system calls that wait for a terminal's input (select, pselect6, poll, ppoll)
_WAITS_FOR_INPUT = {"x86_64": {"7", "23", "270", "271"}, "aarch64": {"72", "73"}}


def _wait_until_waiting_for_input(child: pexpect.spawn) -> None:
    """Block until the chat's main thread sleeps in the system call that reads its
    terminal. CPython's readline looks for a signal only when that select() is
    interrupted: a Ctrl-C sent the moment the prompt is drawn, before the select()
    starts, is noticed only at the next key (about 1 in 300 runs under load), and
    the chat never exits. A person never types that fast; a test does, unless it
    waits for this."""
    waits = _WAITS_FOR_INPUT.get(platform.machine())
    syscall = Path(f"/proc/{child.pid}/syscall")  # the main thread's: its id is the pid's
    if waits is None or not syscall.exists():
        pytest.skip("needs Linux's /proc/<pid>/syscall (x86_64 or aarch64) to know when "
                    "the chat waits at its prompt")
    deadline = time.monotonic() + TIMEOUT
    while syscall.read_text().split()[0] not in waits:
        assert time.monotonic() < deadline, "the chat never waited for input"
        time.sleep(0.005)


def _conversation(server: Server, conversation_id: str) -> dict:
    response = httpx.get(f"{server.url}/api/conversations/{conversation_id}", timeout=10)
    response.raise_for_status()
    return response.json()


def test_one_shot_into_a_pipe_prints_exactly_the_text(server: Server) -> None:
    result = _run_piped("--url", server.url, "-o", f"text={ANSWER}", "-o", "delay_ms=5", "hi")
    assert result.returncode == 0, result.stderr
    assert result.stdout == ANSWER, "the raw deltas, no markup, no added newline"
    assert "\x1b" not in result.stdout


def test_one_shot_in_a_terminal_renders_the_answer(server: Server) -> None:
    with _terminal("--url", server.url, "-o", f"text={ANSWER}", "hi") as child:
        status, output = _exit(child)
    assert status == 0
    assert RENDERED in output and "**" not in output
    assert "• one" in output and "• two" in output


def test_interactive_renders_markdown_and_continues_the_conversation(server: Server) -> None:
    with _terminal("--url", server.url, "-o", f"text={ANSWER}", "-o", "delay_ms=20") as child:
        child.expect(PROMPT)
        child.sendline("first question")
        child.expect(STATS)
        first = _plain(child.before)
        assert RENDERED in first and "**" not in first
        child.expect(PROMPT)
        child.sendline("second question")
        child.expect(STATS)
        child.expect(PROMPT)
        child.sendeof()
        status, output = _exit(child)
    assert status == 0
    match = CONTINUE_HINT.search(output)
    assert match, output
    messages = _conversation(server, match.group(1))["messages"]
    assert [(m["role"], m["content"]) for m in messages] == [
        ("user", "first question"), ("assistant", ANSWER),
        ("user", "second question"), ("assistant", ANSWER),
    ]


def test_ctrl_c_stops_the_answer_on_the_server_and_a_second_one_exits(server: Server) -> None:
    long_text = "word " * 2000  # 100 s at 50 ms a delta: only a cancel ends it in time
    with _terminal("--url", server.url, "-o", f"text={long_text}", "-o", "delay_ms=50") as child:
        child.expect(PROMPT)
        child.sendline("stop me")
        child.expect("word word word")
        child.sendintr()
        child.expect("■ stopped")
        child.expect(STATS)
        child.expect(PROMPT)
        _wait_until_waiting_for_input(child)
        child.sendintr()
        status, output = _exit(child)
    assert status == 0
    match = CONTINUE_HINT.search(output)
    assert match, output
    answer = _conversation(server, match.group(1))["messages"][-1]
    assert answer["status"] == "cancelled"
    assert 0 < len(answer["content"]) < len(long_text) and long_text.startswith(answer["content"])


def test_continue_shows_the_earlier_messages_and_continues_them(server: Server) -> None:
    with Client(server.url) as client:
        earlier = client.chat("remember the lighthouse",
                              options={"text": "I will **remember** it."})
        earlier.text()
    conversation_id = earlier.conversation_id
    assert conversation_id is not None
    with _terminal("--url", server.url, "--continue", conversation_id) as child:
        child.expect("Ctrl-D exits")
        history = _plain(child.before)
        assert "remember the lighthouse" in history and "I will remember it." in history
        child.expect(PROMPT)
        child.sendline("and now?")
        child.expect(STATS)
        child.expect(PROMPT)
        child.sendeof()
        status, output = _exit(child)
    assert status == 0 and conversation_id in output
    messages = _conversation(server, conversation_id)["messages"]
    assert [m["content"] for m in messages if m["role"] == "user"] == [
        "remember the lighthouse", "and now?"]
    assert len(messages) == 4 and messages[-1]["status"] == "complete"


def test_an_error_event_is_shown_and_the_session_goes_on(server: Server) -> None:
    with _terminal("--url", server.url, "-o", "text=a b c d", "-o", "fail_after=2") as child:
        child.expect(PROMPT)
        child.sendline("fail please")
        child.expect(r"Error \(upstream_error\): scripted failure after 2 deltas")
        child.expect(PROMPT)
        child.sendline("again")
        child.expect(r"Error \(upstream_error\)")
        child.expect(PROMPT)
        child.sendeof()
        status, _ = _exit(child)
    assert status == 0


def test_an_unreachable_server_is_exit_2_with_a_clear_message() -> None:
    url = f"http://127.0.0.1:{free_port()}"
    result = _run_piped("--url", url, "hi")
    assert result.returncode == 2
    assert f"Cannot reach tokenrelay at {url}: start it with `tokenrelay serve`" in result.stderr
    assert result.stdout == ""


def test_an_error_event_in_one_shot_mode_is_exit_1(server: Server) -> None:
    result = _run_piped("--url", server.url, "-o", "text=a b c d", "-o", "fail_after=2", "hi")
    assert result.returncode == 1
    assert result.stdout == "a b ", "the partial answer is still printed"
    assert "Error (upstream_error): scripted failure after 2 deltas" in result.stderr


def test_a_bad_option_is_refused_with_the_servers_reason(server: Server) -> None:
    result = _run_piped("--url", server.url, "-o", "temprature=1", "hi")
    assert result.returncode == 2
    assert "invalid_option" in result.stderr and "temprature" in result.stderr


def test_an_option_that_is_not_key_value_is_a_usage_error() -> None:
    result = _run_piped("--url", f"http://127.0.0.1:{free_port()}", "-o", "delay_ms", "hi")
    assert result.returncode == 2, "typer's exit status for a bad parameter"
    assert "'delay_ms' is not key=value" in result.stderr and result.stdout == ""
