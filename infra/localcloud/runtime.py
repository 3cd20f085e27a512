"""Runs Lambda handlers in this process, as moto has no Docker-free Lambda runtime.

Every invoke path in moto (the Invoke API, Step Functions tasks, SQS event sources) ends in
``LambdaFunction._invoke_lambda``; ``patches.py`` routes that seam here. A handler is loaded from its
function folder (``functions/<name>/app.py``) under a module name of its own, with the function's
environment from the template applied around the call. ``os.environ`` is process-wide, so calls are
serialised; the virtual clock already runs one execution at a time.
"""

from __future__ import annotations

import contextlib
import importlib.util
import io
import json
import os
import sys
import threading
import time
import traceback
import uuid
from contextvars import ContextVar
from dataclasses import dataclass, field
from pathlib import Path
from types import ModuleType
from typing import Any, Callable


# The function whose code is running (its logical id), for the length of its call: whose role signs its requests.
current_function: ContextVar[str | None] = ContextVar("current_function", default=None)


@dataclass(frozen=True)
class FunctionSource:
    logical_id: str
    code_dir: Path
    handler: str


@dataclass(frozen=True)
class Invocation:
    function: str
    errored: bool
    error_type: str | None
    seconds: float


@dataclass
class LambdaContext:
    """The attributes of the Lambda context object that Powertools and handlers read."""

    function_name: str
    function_version: str
    invoked_function_arn: str
    memory_limit_in_mb: int
    aws_request_id: str = field(default_factory=lambda: str(uuid.uuid4()))
    log_group_name: str = ""
    log_stream_name: str = "local"
    timeout_seconds: int = 30

    def get_remaining_time_in_millis(self) -> int:
        return self.timeout_seconds * 1000


class UnknownFunction(LookupError):
    pass


class InProcessRuntime:
    def __init__(self, *, region: str, base_env: dict[str, str] | None = None) -> None:
        self._region = region
        self._base_env = dict(base_env or {})
        self._sources: dict[str, FunctionSource] = {}
        self._handlers: dict[str, Callable[[Any, Any], Any]] = {}
        self._lock = threading.RLock()
        self.invocations: list[Invocation] = []
        # What CloudWatch Logs does with a function's embedded-metric-format lines: each, parsed, with its function.
        self.on_metrics: Callable[[str, dict[str, Any]], None] | None = None

    def register(self, function_name: str, source: FunctionSource) -> None:
        self._sources[function_name] = source

    def source_of(self, function_name: str) -> FunctionSource:
        try:
            return self._sources[function_name]
        except KeyError:
            raise UnknownFunction(f"{function_name} was not deployed from template.yaml") from None

    def invoke(self, fn: Any, event: str | bytes | dict[str, Any] | None) -> tuple[str, bool, str]:
        source = self.source_of(fn.function_name)
        payload = json.loads(event) if isinstance(event, (str, bytes)) and event else (event or {})
        context = LambdaContext(
            function_name=fn.function_name,
            function_version=str(fn.version),
            invoked_function_arn=fn.function_arn,
            memory_limit_in_mb=int(fn.memory_size),
            log_group_name=f"/aws/lambda/{fn.function_name}",
            timeout_seconds=int(fn.timeout),
        )
        env = {
            **self._base_env,
            **{k: str(v) for k, v in (fn.environment_vars or {}).items()},
            "AWS_REGION": self._region,
            "AWS_DEFAULT_REGION": self._region,
            "AWS_LAMBDA_FUNCTION_NAME": fn.function_name,
            "AWS_LAMBDA_FUNCTION_MEMORY_SIZE": str(fn.memory_size),
            "_HANDLER": source.handler,
        }
        with self._lock, _environment(env):
            started = time.perf_counter()
            running = current_function.set(source.logical_id)
            printed = _Printed(sys.stdout)
            try:
                with contextlib.redirect_stdout(printed):
                    result = self._handler(fn.function_name, source)(payload, context)
                body, errored, error_type = json.dumps(result), False, None
            except Exception as error:  # the Lambda runtime turns any exception into a function error
                error_type = type(error).__name__
                body = json.dumps({
                    "errorType": error_type,
                    "errorMessage": str(error),
                    "requestId": context.aws_request_id,
                    "stackTrace": traceback.format_exception(error)[-5:],
                })
                errored = True
            finally:
                current_function.reset(running)
                for record in printed.metrics():
                    if self.on_metrics is not None:
                        self.on_metrics(source.logical_id, record)
            self.invocations.append(
                Invocation(source.logical_id, errored, error_type, time.perf_counter() - started)
            )
        return body, errored, ""

    def redeploy_code(self) -> None:
        """Drop every loaded handler, as a new Lambda version retires the warm environments of the old one."""
        with self._lock:
            self._handlers.clear()

    def _handler(self, function_name: str, source: FunctionSource) -> Callable[[Any, Any], Any]:
        if function_name not in self._handlers:
            module_path, _, attribute = source.handler.rpartition(".")
            module = _load_module(f"lambda_{source.logical_id}", source.code_dir / f"{module_path.replace('.', '/')}.py")
            self._handlers[function_name] = getattr(module, attribute)
        return self._handlers[function_name]


def _load_module(name: str, path: Path) -> ModuleType:
    spec = importlib.util.spec_from_file_location(name, path)
    if spec is None or spec.loader is None:
        raise ImportError(f"cannot load a handler from {path}")
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module  # a fresh copy per local cloud: module state never leaks between runs
    spec.loader.exec_module(module)
    return module


class _Printed(io.TextIOBase):
    """A function's standard output, passed through, but for its embedded-metric-format lines (a JSON object with
    an ``_aws`` key, as Powertools prints them, one ``print`` each): those are kept for CloudWatch, not shown."""

    def __init__(self, through: Any) -> None:
        self._through = through
        self._lines: list[str] = []
        self._after_metrics = False

    def write(self, text: str) -> int:
        if text.startswith('{"_aws"'):
            self._lines.append(text)
            self._after_metrics = True
            return len(text)
        if self._after_metrics and text == "\n":  # the end of the line print() wrote
            self._after_metrics = False
            return len(text)
        self._after_metrics = False
        return self._through.write(text)

    def flush(self) -> None:
        self._through.flush()

    def metrics(self) -> list[dict[str, Any]]:
        return [record for record in map(json.loads, self._lines) if "CloudWatchMetrics" in record["_aws"]]


class _environment:
    """Apply one function's environment for the duration of a call, then restore the process's."""

    def __init__(self, values: dict[str, str]) -> None:
        self._values = values
        self._saved: dict[str, str | None] = {}

    def __enter__(self) -> None:
        self._saved = {k: os.environ.get(k) for k in self._values}
        os.environ.update(self._values)

    def __exit__(self, *exc: object) -> None:
        for key, old in self._saved.items():
            if old is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = old
