"""Watching a search on another machine over ssh: no listener anywhere, the user's ssh config as is.

On the laptop (no torch needed):

- ``target.py``: ``gpu-box:ID``, ``user@host:ID``, ``ssh://user@host:port/ID``, ``gpu-box:``;
- ``hosts.py``: ``~/.config/enas-tui/hosts.toml`` (the remote command and sessions folder per host);
- ``ssh.py``: the ssh command line and one-line errors for what can go wrong;
- ``pump.py``, ``mirror.py``, ``follower.py``, ``attach.py``: a remote attach. The stream's records
  are written into a local mirror of the session folder, which the local attach's own
  LogFollower and AttachApp follow, so the dashboard has one code path for both;
- ``pull.py``: resumable, verified copies of a session; ``client.py``: sessions and stop.

On the box (the hidden ``enas-tui remote VERB`` commands): ``verbs.py``, with ``catchup.py``
choosing what a late attach needs from a long log. Both sides speak ``protocol.py``.
"""
