"""The laptop's one-question remote commands: the sessions on a host, and stopping one."""

from __future__ import annotations

import json
from dataclasses import fields

from enas_tui.launcher import StopResult
from enas_tui.remote.hosts import Endpoint
from enas_tui.remote.ssh import RemoteError, run_verb
from enas_tui.sessions import SessionSummary


def remote_sessions(endpoint: Endpoint) -> tuple[str, list[SessionSummary]]:
    """(the sessions folder as the host resolved it, the summaries ``enas-tui sessions`` shows there)."""
    result = run_verb(endpoint, "sessions")
    names = {f.name for f in fields(SessionSummary)}
    summaries = []
    for line in result.lines:
        try:
            data = json.loads(line)
            summaries.append(SessionSummary(**{k: v for k, v in data.items() if k in names}))
        except (ValueError, TypeError):
            raise RemoteError(f"{endpoint.target.destination}: unreadable session summary {line[:60]!r}",
                              "protocol") from None
    return str(result.hello.get("sessions_dir", "?")), summaries


def remote_stop(endpoint: Endpoint, wait: float) -> tuple[StopResult, str | None]:
    """SIGTERM to the session's trainer on the host; waits there up to ``wait`` s for it to stop.
    Returns what happened, and the sessions folder on the host (for the command to continue it)."""
    if not endpoint.target.session_id:
        raise RemoteError(f"name the session to stop: enas-tui stop {endpoint.target.label()}ID", "usage")
    result = run_verb(endpoint, "stop", [endpoint.target.session_id, "--wait", str(wait)], timeout=wait + 60)
    try:
        return StopResult(**json.loads(result.lines[-1])), result.hello.get("sessions_dir")
    except (ValueError, TypeError, IndexError):
        raise RemoteError(f"{endpoint.target.destination}: no answer from the stop request", "protocol") from None
