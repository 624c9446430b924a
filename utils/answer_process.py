"""Run a student's answer in a process of its own, and call its functions from the grader.

The grader (``python -m utils.course grade``) must not run a submission's code in the process that
checks it: code there could replace the checker, read the reference values out of the checker's
frames, or print a forged result line. :class:`AnswerProcess` starts a child process that runs the
chapter's context and the student's answer; the checker, in the grader's process, is handed
:class:`RemoteFunction` stand-ins. A call sends its arguments to the child (pickled: the child
trusts the grader) and gets back only data, decoded without pickle (:func:`decode`), so nothing
the child sends can run code in the grader: NumPy arrays, torch tensors, numbers, strings, None,
and lists, tuples and dicts of them. The child runs every call behind the exercise's
:class:`utils.exercises.ReferenceGuard` and reports what it caught.

This is defence in depth, not a sandbox: the child still runs as the grading user and can read and
write files. Grade untrusted work in a container (see book/instructors.md).

Protocol (one request, one reply, over the child's stdin/stdout, which the child moves off fds 0/1
before any student code runs): each message is an 8-byte big-endian length and a payload; the
grader sends pickles, the child replies with an ``np.savez`` archive (``allow_pickle=False``)
holding a JSON header and the arrays.
"""
from __future__ import annotations

import io
import json
import os
import pickle
import struct
import subprocess
import sys
from pathlib import Path

import numpy as np

MAX_REPLY_BYTES = 512 * 2 ** 20          # a reply larger than this is refused


class AnswerError(Exception):
    """The student's code failed in the child (``kind`` is its exception's class name)."""

    def __init__(self, kind: str, message: str):
        super().__init__(f"{kind}: {message}")
        self.kind, self.message = kind, message


def raised_in_child(exc: AnswerError) -> Exception:
    """An exception that reads like the one the student's code raised: a ``NotImplementedError``
    (the stub: "not attempted") stays one; any other kind becomes an :class:`AnswerError`
    subclass of the same name."""
    if exc.kind == "NotImplementedError":
        return NotImplementedError(exc.message)
    name = exc.kind if exc.kind.isidentifier() else "Error"
    return type(name, (AnswerError,), {"__str__": lambda self: self.message})(exc.kind, exc.message)


# ---------------------------------------------------------------------------------------------
# data the child may send back
# ---------------------------------------------------------------------------------------------
def encode(obj) -> bytes:
    """An ``np.savez`` archive holding ``obj`` (see the module docstring for what is allowed)."""
    arrays: list[np.ndarray] = []

    def enc(x, depth=0):
        import torch
        if depth > 20:
            raise TypeError("the returned value is nested too deeply")
        if isinstance(x, torch.Tensor):
            arrays.append(x.detach().cpu().numpy())
            return {"tensor": len(arrays) - 1}
        if isinstance(x, np.ndarray):
            if x.dtype.hasobject:
                raise TypeError("an array of Python objects cannot be returned: use numbers")
            arrays.append(x)
            return {"array": len(arrays) - 1}
        if isinstance(x, np.generic):
            arrays.append(np.asarray(x))
            return {"scalar": len(arrays) - 1}
        if x is None or isinstance(x, (bool, int, float, str)):
            if isinstance(x, int) and not isinstance(x, bool) and abs(x) >= 2 ** 62:
                return {"bigint": str(x)}
            return {"value": x}
        if isinstance(x, (list, tuple)):
            return {"list" if isinstance(x, list) else "tuple": [enc(v, depth + 1) for v in x]}
        if isinstance(x, dict) and all(isinstance(k, str) for k in x):
            return {"dict": {k: enc(v, depth + 1) for k, v in x.items()}}
        raise TypeError(f"a {type(x).__name__} cannot be returned to the checker: return arrays, "
                        "tensors, numbers, strings, or lists, tuples and dicts of them")

    header = json.dumps(enc(obj))
    buf = io.BytesIO()
    np.savez(buf, __header__=np.frombuffer(header.encode(), dtype=np.uint8),
             **{f"a{i}": a for i, a in enumerate(arrays)})
    return buf.getvalue()


def decode(data: bytes):
    """The object :func:`encode` archived; no pickle is ever loaded."""
    import torch
    with np.load(io.BytesIO(data), allow_pickle=False) as z:
        header = json.loads(bytes(z["__header__"]).decode())
        arrays = {k: z[k] for k in z.files if k != "__header__"}

    def dec(h):
        (kind, v), = h.items()
        if kind == "tensor":
            return torch.from_numpy(np.array(arrays[f"a{v}"]))
        if kind == "array":
            return np.array(arrays[f"a{v}"])
        if kind == "scalar":
            return arrays[f"a{v}"][()]
        if kind == "value":
            return v
        if kind == "bigint":
            return int(v)
        if kind == "list":
            return [dec(x) for x in v]
        if kind == "tuple":
            return tuple(dec(x) for x in v)
        if kind == "dict":
            return {k: dec(x) for k, x in v.items()}
        raise ValueError(f"unknown entry {kind!r} in the child's reply")

    return dec(header)


# ---------------------------------------------------------------------------------------------
# framing
# ---------------------------------------------------------------------------------------------
def _send(stream, payload: bytes) -> None:
    stream.write(struct.pack(">Q", len(payload)) + payload)
    stream.flush()


def _read_exactly(stream, n: int) -> bytes:
    """``n`` bytes from ``stream`` (a pipe may hand them over in pieces); fewer only at EOF."""
    parts, got = [], 0
    while got < n:
        chunk = stream.read(n - got)
        if not chunk:
            break
        parts.append(chunk)
        got += len(chunk)
    return b"".join(parts)


def _recv(stream, limit: int = MAX_REPLY_BYTES) -> bytes:
    head = _read_exactly(stream, 8)
    if len(head) < 8:
        raise EOFError("the answer process ended")
    (n,) = struct.unpack(">Q", head)
    if n > limit:
        raise ValueError(f"the answer process sent {n} bytes (more than {limit})")
    data = _read_exactly(stream, n)
    if len(data) < n:
        raise EOFError("the answer process ended mid-message")
    return data


# ---------------------------------------------------------------------------------------------
# the grader's side
# ---------------------------------------------------------------------------------------------
class RemoteFunction:
    """Stands in for the student's function ``name``: calling it runs the function in the child."""

    def __init__(self, proc: "AnswerProcess", name: str):
        self._proc, self.__name__ = proc, name

    def __call__(self, *args, **kwargs):
        return self._proc.call(self.__name__, args, kwargs)

    def __repr__(self):
        return f"<your function {self.__name__}>"


class AnswerProcess:
    """The child process that runs one answer: ``with AnswerProcess(context, answer, forbid,
    cwd=...) as ap: fn = ap.function("my_f")``. Start-up errors raise :class:`AnswerError`
    (``kind`` "context" when the chapter's own code failed)."""

    def __init__(self, context: str, answer: str, forbid=(), *, cwd: Path, root: Path):
        env = {k: v for k, v in os.environ.items() if not k.startswith("BOOK_GRADER")}
        env["PYTHONPATH"] = str(root)
        self._p = subprocess.Popen([sys.executable, "-m", "utils.answer_process"], cwd=str(cwd),
                                   stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                   stderr=subprocess.DEVNULL, env=env)
        self._request({"op": "start", "context": context, "answer": answer, "forbid": list(forbid),
                       "root": str(root)})

    def _request(self, msg: dict):
        try:
            _send(self._p.stdin, pickle.dumps(msg))
            reply = decode(_recv(self._p.stdout))
        except (EOFError, BrokenPipeError, OSError, ValueError) as exc:
            raise AnswerError("ProcessError", f"your code ended the answer process ({exc})") from None
        if not isinstance(reply, dict) or "status" not in reply:
            raise AnswerError("ProcessError", "the answer process sent a malformed reply")
        if reply["status"] != "ok":
            raise AnswerError(str(reply.get("kind", "Error")), str(reply.get("message", ""))[:500])
        return reply

    def function(self, name: str) -> RemoteFunction:
        return RemoteFunction(self, name)

    def call(self, name: str, args: tuple, kwargs: dict):
        try:
            reply = self._request({"op": "call", "name": name, "args": args, "kwargs": kwargs})
        except AnswerError as exc:
            raise raised_in_child(exc) from None
        hits, hooks = reply.get("forbidden") or [], reply.get("hooks_left") or False
        if hits:
            from .exercises import ReferenceGuard
            ReferenceGuard.raise_for(hits)
        if hooks:
            raise AssertionError("your function left hooks on the model; use the context managers")
        return reply["result"]

    def close(self) -> None:
        if self._p.poll() is None:
            self._p.kill()
        self._p.wait()
        for s in (self._p.stdin, self._p.stdout):
            try:
                s.close()
            except OSError:
                pass

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()
        return False


# ---------------------------------------------------------------------------------------------
# the child's side
# ---------------------------------------------------------------------------------------------
def _serve() -> None:
    """Run in the child: take the protocol streams off fds 0 and 1, then answer requests."""
    import contextlib
    inp = os.fdopen(os.dup(0), "rb")
    out = os.fdopen(os.dup(1), "wb")                 # buffered: write() sends every byte
    devnull = os.open(os.devnull, os.O_RDWR)
    os.dup2(devnull, 0)
    os.dup2(devnull, 1)
    sys.stdin = open(os.devnull)
    sys.stdout = open(os.devnull, "w")

    def reply(obj):
        _send(out, encode(obj))

    def failure(exc):
        return {"status": "error", "kind": type(exc).__name__, "message": str(exc)[:500]}

    ns = {"__name__": "__main__"}
    forbid: list[str] = []
    while True:
        try:
            msg = pickle.loads(_recv(inp, limit=2 ** 34))
        except EOFError:
            return
        if msg["op"] == "start":
            sys.path.insert(0, msg["root"])
            forbid = msg["forbid"]
            try:
                with contextlib.redirect_stdout(io.StringIO()):
                    exec(compile(msg["context"], "<chapter context>", "exec"), ns)
            except BaseException as exc:            # noqa: BLE001 - the chapter's own code
                reply({"status": "error", "kind": "context", "message": f"{type(exc).__name__}: {exc}"})
                continue
            try:
                with contextlib.redirect_stdout(io.StringIO()):
                    exec(compile(msg["answer"], "<your answer>", "exec"), ns)
            except BaseException as exc:            # noqa: BLE001 - the student's code
                reply(failure(exc))
                continue
            reply({"status": "ok"})
        elif msg["op"] == "call":
            reply(_call_in_child(ns, msg, forbid, failure))
        else:
            reply({"status": "error", "kind": "ProtocolError", "message": f"unknown op {msg['op']!r}"})


def _call_in_child(ns: dict, msg: dict, forbid, failure) -> dict:
    import contextlib

    import torch
    from .exercises import ReferenceGuard
    fn = ns.get(msg["name"])
    if not callable(fn):
        return {"status": "error", "kind": "NameError",
                "message": f"your answer does not define a function {msg['name']!r}"}
    guard = ReferenceGuard(forbid)
    try:
        with contextlib.redirect_stdout(io.StringIO()):
            result = guard.wrap(fn)(*msg["args"], **msg["kwargs"])
        modules = [a for a in list(msg["args"]) + list(msg["kwargs"].values())
                   if isinstance(a, torch.nn.Module)]
        hooks = any(len(m._forward_hooks) or len(m._forward_pre_hooks)
                    for mod in modules for m in mod.modules())
        encode(result)                                   # fail here, in the child, if not data
        return {"status": "ok", "result": result, "forbidden": guard.hits, "hooks_left": hooks}
    except BaseException as exc:                         # noqa: BLE001 - the student's code
        if guard.hits:
            return {"status": "ok", "result": None, "forbidden": guard.hits, "hooks_left": False}
        return failure(exc)


if __name__ == "__main__":
    _serve()
