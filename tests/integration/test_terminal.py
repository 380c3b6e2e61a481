"""`tokenrelay chat` driven as a user drives it: the real command in a pseudo-terminal
(pexpect), or with stdout a pipe, against a real server with the scripted model."""

from __future__ import annotations

import os
import platform
import re
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx
import pexpect
import pyte
import pytest
from rich.console import Console
from rich.markdown import Markdown

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
TOOL_CALLS = '[{"name": "get_weather", "arguments": {"city": "Paris"}}]'
_ANSI = re.compile(r"\x1b\[[0-?]*[ -/]*[@-~]|\x1b\][^\x07\x1b]*(?:\x07|\x1b\\)|\r")


def _plain(output: str) -> str:
    return _ANSI.sub("", output)


def _env(lines: int = LINES, columns: int = COLUMNS) -> dict[str, str]:
    # This checkout's code, whatever `tokenrelay` the environment has installed.
    path = os.pathsep.join(filter(None, [str(ROOT / "src"), os.environ.get("PYTHONPATH")]))
    return {**os.environ, "PYTHONPATH": path, "TERM": "xterm-256color",
            "COLUMNS": str(columns), "LINES": str(lines)}


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


def _run_piped(*args: str, stdin: str | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, *_argv(*args)], env=_env(), cwd=ROOT, text=True,
                          capture_output=True, timeout=30,
                          **({"input": stdin} if stdin is not None else
                             {"stdin": subprocess.DEVNULL}))


class _Screen:
    """The chat in a small pseudo-terminal, its output fed to a terminal emulator
    (pyte): what the screen and the scrollback show, as a user would see them."""

    ROWS, COLUMNS = 20, 60

    def __init__(self, child: pexpect.spawn) -> None:
        self.child = child
        self.screen = pyte.HistoryScreen(self.COLUMNS, self.ROWS, history=100_000)
        self._stream = pyte.Stream(self.screen)

    def rows(self) -> list[str]:
        return [self.screen.display[row].rstrip() for row in range(self.ROWS)]

    def lines(self) -> list[str]:
        """The scrollback, then the screen, without the empty rows under the text."""
        scrolled = ["".join(line[column].data for column in range(self.COLUMNS)).rstrip()
                    for line in self.screen.history.top]
        lines = scrolled + self.rows()
        while lines and not lines[-1]:
            lines.pop()
        return lines

    def cursor_row(self) -> str:
        return self.screen.display[self.screen.cursor.y]

    def wait(self, condition: Callable[[], bool], what: str) -> None:
        """Read the output until `condition` holds; a deadline, never a duration."""
        deadline = time.monotonic() + TIMEOUT
        while not condition():
            assert time.monotonic() < deadline, f"never shown: {what}\n" + "\n".join(self.lines())
            try:
                self._stream.feed(self.child.read_nonblocking(65536, timeout=0.05))
            except pexpect.TIMEOUT:
                pass

    def read_to_end(self) -> None:
        self.child.expect(pexpect.EOF)
        self._stream.feed(self.child.before)

    def wait_for(self, text: str) -> None:
        self.wait(lambda: text in "\n".join(self.rows()), repr(text))

    def wait_for_prompt(self) -> None:
        self.wait(lambda: self.cursor_row().startswith(PROMPT), "the prompt")


@contextmanager
def _small_terminal(*args: str) -> Iterator[_Screen]:
    rows, columns = _Screen.ROWS, _Screen.COLUMNS
    child = pexpect.spawn(sys.executable, _argv(*args), env=_env(rows, columns),
                          cwd=str(ROOT), encoding="utf-8", timeout=TIMEOUT,
                          dimensions=(rows, columns))
    try:
        yield _Screen(child)
    finally:
        child.close(force=True)


def _rendered(markdown: str, width: int = _Screen.COLUMNS) -> list[str]:
    """`markdown` as Rich renders it whole, line by line, as the screen shows it."""
    console = Console(width=width, force_terminal=True, color_system=None)
    lines = console.render_lines(Markdown(markdown), console.options, pad=False)
    return ["".join(segment.text for segment in line).rstrip() for line in lines]


def _answer_lines(lines: list[str], question: str, end: str) -> list[str]:
    """The lines between the question's and the first one after that starts with `end`."""
    first = lines.index(PROMPT + question) + 1
    last = next(i for i in range(first, len(lines)) if lines[i].startswith(end))
    return lines[first:last]


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
    assert result.stdout == ANSWER, "the raw deltas, no markup, its one newline kept"
    assert "\x1b" not in result.stdout


@pytest.mark.parametrize(("text", "printed"), [
    ("no newline at the end", "no newline at the end\n"),
    ("three at the end\n\n\n", "three at the end\n"),
    ("inside\n\nkept\n\n", "inside\n\nkept\n"),
])
def test_piped_output_ends_with_exactly_one_newline(server: Server, text: str,
                                                    printed: str) -> None:
    # issue 14: `tokenrelay chat "…" | tr a-z A-Z` left the shell's prompt on the
    # answer's last line. Through a real pipe into tr, as the README shows it.
    command = (f"{sys.executable} -m tokenrelay chat --url {server.url} -o text='{text}' "
               "-o delay_ms=1 hi | tr a-z A-Z")
    result = subprocess.run(command, shell=True, env=_env(), cwd=ROOT, text=True,
                            capture_output=True, stdin=subprocess.DEVNULL, timeout=30)
    assert result.returncode == 0, result.stderr
    assert result.stdout == printed.upper()


def test_a_question_on_stdin_is_answered_with_one_newline_at_the_end(server: Server) -> None:
    result = _run_piped("--url", server.url, "-o", "text=piped answer", stdin="question?")
    assert result.returncode == 0, result.stderr
    assert result.stdout == "piped answer\n"


def test_reasoning_and_tool_calls_stay_out_of_a_pipe(server: Server) -> None:
    result = _run_piped("--url", server.url, "-o", "reasoning=secret thoughts",
                        "-o", "text=the answer", "-o", f"tool_calls={TOOL_CALLS}", "hi")
    assert result.returncode == 0, result.stderr
    assert result.stdout == "the answer\n"
    assert "secret" not in result.stderr and "get_weather" not in result.stderr


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
    assert result.stdout == "a b \n", "the partial answer is still printed, and ends a line"
    assert "Error (upstream_error): scripted failure after 2 deltas" in result.stderr


def test_a_bad_option_is_refused_with_the_servers_reason(server: Server) -> None:
    result = _run_piped("--url", server.url, "-o", "temprature=1", "hi")
    assert result.returncode == 2
    assert "invalid_option" in result.stderr and "temprature" in result.stderr


def test_an_option_that_is_not_key_value_is_a_usage_error() -> None:
    result = _run_piped("--url", f"http://127.0.0.1:{free_port()}", "-o", "delay_ms", "hi")
    assert result.returncode == 2, "typer's exit status for a bad parameter"
    assert "'delay_ms' is not key=value" in result.stderr and result.stdout == ""


# --- a small terminal, read back through a terminal emulator (issue 13, issue 14) -------


def test_reasoning_streams_dimmed_before_the_answer_and_tool_calls_as_lines(
        server: Server) -> None:
    with _small_terminal("--url", server.url, "-o", "reasoning=Thinking it over first.",
                         "-o", "text=The **answer**.", "-o", f"tool_calls={TOOL_CALLS}",
                         "-o", "delay_ms=5") as term:
        term.wait_for_prompt()
        term.child.sendline("weather?")
        term.wait(lambda: STATS.search("\n".join(term.rows())) is not None, "the stats")
        lines = term.lines()
        answer = _answer_lines(lines, "weather?", "scripted ·")
        assert [line for line in answer if line] == [
            "Thinking it over first.", "The answer.", '→ get_weather({"city": "Paris"})']
        rows = term.rows()
        reasoning, text = rows.index("Thinking it over first."), rows.index("The answer.")
        assert term.screen.buffer[reasoning][0].italics, "reasoning is set apart (dim italic)"
        assert not term.screen.buffer[text][0].italics, "the answer in normal style"


def test_hide_reasoning_shows_only_the_answer(server: Server) -> None:
    with _small_terminal("--url", server.url, "--hide-reasoning",
                         "-o", "reasoning=Thinking it over first.", "-o", "text=Just this.",
                         "hi") as term:
        term.read_to_end()
    assert "Just this." in term.lines() and "Thinking" not in "\n".join(term.lines())


def test_ctrl_c_mid_answer_leaves_the_partial_answer_once(server: Server) -> None:
    # issue 14: the terminal echoed "^C" where the cursor was, at the end of a
    # full-width line of the live answer; it wrapped, Rich's next redraw started a line
    # too low, and a stale copy of the partial line stayed above the final text.
    long_text = "word " * 2000  # 100 s at 50 ms a delta: only a cancel ends it in time
    with _small_terminal("--url", server.url, "-o", f"text={long_text}",
                         "-o", "delay_ms=50") as term:
        term.wait_for_prompt()
        term.child.sendline("stop me")
        term.wait_for("word word word")
        term.child.sendintr()
        term.wait_for("■ stopped")
        term.wait_for_prompt()
        answer = _answer_lines(term.lines(), "stop me", "■ stopped")
        term.child.sendeof()
        term.child.expect(CONTINUE_HINT)
        stored = _conversation(server, term.child.match.group(1))["messages"][-1]
    assert stored["status"] == "cancelled"
    assert " ".join(answer).split() == stored["content"].split(), answer


def test_a_tall_answer_scrolls_into_the_scrollback_once(server: Server) -> None:
    # issue 14: an answer taller than the screen showed only its last screenful, and
    # its start reached the scrollback only at the end, printed whole a second time.
    paragraphs = "".join(f"Paragraph {n} of a tall answer.\n\n" for n in range(40))
    tail = "tail " * 10_000  # 50 s at 5 ms a delta: it still streams when checked
    with _small_terminal("--url", server.url, "-o", f"text={paragraphs}{tail}",
                         "-o", "delay_ms=5") as term:
        term.wait_for_prompt()
        term.child.sendline("go")
        term.wait_for("tail tail tail")
        streaming = term.lines()
        assert not any(STATS.search(line) for line in streaming), "it still streams"
        seen = [line for line in streaming if line.startswith("Paragraph")]
        assert seen == [f"Paragraph {n} of a tall answer." for n in range(40)], \
            "every paragraph once, the first ones in the scrollback already"
        term.child.sendintr()
        term.wait_for("■ stopped")
        term.wait_for_prompt()
        answer = _answer_lines(term.lines(), "go", "■ stopped")
        term.child.sendeof()
        term.child.expect(CONTINUE_HINT)
        stored = _conversation(server, term.child.match.group(1))["messages"][-1]
    assert answer == _rendered(stored["content"]), "the scrollback holds the answer once"


def test_keys_typed_while_waiting_go_to_the_next_prompt(server: Server) -> None:
    # issue 14: text typed while "waiting for the first token" was echoed onto the
    # spinner's line; once it wrapped, a stale spinner line stayed. Now the keys wait
    # in the terminal's buffer and the next prompt shows them.
    question = f"wait for me {os.getpid()}-{time.monotonic_ns()}"
    typed = "typed ahead " * 4  # wraps the spinner's line at 60 columns
    with _small_terminal("--url", server.url, "-o", "text=late", "-o", "delay_ms=60000") \
            as term:
        term.wait_for_prompt()
        term.child.sendline(question)
        term.wait_for("waiting for the first token")
        term.child.send(typed)
        _cancel_answer_to(server, question)
        term.wait_for("■ stopped")
        term.wait(lambda: term.cursor_row().startswith(PROMPT + typed.rstrip()),
                  "the typed text at the prompt")
        lines = term.lines()
    assert not any("waiting for the first token" in line for line in lines), lines
    assert sum("typed ahead" in line for line in lines) == 1, lines


def _cancel_answer_to(server: Server, question: str) -> None:
    """Cancel the streaming answer to `question` through the API, not Ctrl-C (which
    also empties the terminal's input buffer)."""
    deadline = time.monotonic() + TIMEOUT
    while True:
        assert time.monotonic() < deadline, "the answer never started"
        listed = httpx.get(f"{server.url}/api/conversations", params={"limit": 50},
                           timeout=10).json()
        for summary in listed["conversations"]:
            messages = _conversation(server, summary["id"])["messages"]
            if messages[0]["content"] == question and messages[-1].get("stream_id"):
                httpx.post(f"{server.url}/api/streams/{messages[-1]['stream_id']}/cancel",
                           timeout=10).raise_for_status()
                return
        time.sleep(0.02)
