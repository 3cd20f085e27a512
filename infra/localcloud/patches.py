"""Every patch of moto's internals (and one of botocore's), in one place, for moto 5.2.5 and botocore 1.44.5 only.

Each patch is a few lines, replaces one named function, and is checked by a canary test
(tests/integration/test_localcloud_canaries.py) that reads the patched source and fails loudly when moto
changes it. Bumping moto or botocore means re-reading each target below and ``../shared/notes/moto-local-cloud.md``.

1. ``WaitFunction._wait_interval``     Wait states sleep on the virtual clock instead of wall time.
2. ``retrier_decl.time``               Retry back-offs sleep on the virtual clock.
3. ``ExecutionWorker.start/stop``      each execution thread is an actor of the clock; a stop cancels it (wakes
   it and its Map iterations, and later sleeps of theirs return at once). A stop that arrives before the
   thread has had its turn (moto: ``AttributeError`` on ``env`` None) is kept and applied as the run reaches
   its first state, so it ends ABORTED without running one, as on AWS.
4. ``LambdaFunction._invoke_lambda``   the one seam every invoke path uses: run the handler in-process.
5. ``StateMachine.create_from_cloudformation_json``  CloudFormation-created state machines go to the
   executing backend with ``DefinitionSubstitutions`` applied (moto ignores them).
6. ``StepFunctionResponse.stop_execution``  keep StopExecution's ``error`` and ``cause`` (moto drops them),
   so a superseded run says in the console why it was stopped.
7. ``Timestamp._get_wait_seconds``     a Timestamp wait ends at its timestamp, to the microsecond of the
   virtual clock: moto truncates the stamp and the wait to whole seconds. Truncated, a Wait entered at a
   fractional now (a retry's FULL jitter) ended up to a second *before* its timestamp, and a message
   deferred to the end of quiet hours was retried, deferred again, forever at one instant; rounded up, a
   Wait entered after a task that took 0.7 s ended 0.7 s *after* it, so a visit rescheduled at the very
   second its reminder fell due lost that reminder to the reschedule. On AWS a Timestamp wait ends at
   its timestamp.
8. ``InlineIterationComponent._launch_worker``  each Map worker thread (INLINE and DISTRIBUTED: the distributed
   component inherits it) is an actor, child of the Map's actor, registered in launch order, so iterations
   that sleep in a Wait or a Retry back-off let the others run and every run interleaves them the same way.
   moto's workers pull jobs from one pool, and only MaxConcurrency of them are started.
9. ``JobPool.await_jobs``             the Map's actor blocks on the clock (gives up the baton, no wake-up time)
   instead of holding it on a ``threading.Event`` the iterations could never reach.
10. ``JobPool._notify_on_termination``  ...and is released when the pool ends (every job closed, or a worker's
   exception, which moto then raises in the Map as before, so Retry and Catch on the Map work).
11. ``Environment.set_error``       a stopped program stays stopped. When a stop ends a Map's iterations, moto
   raises their abort in the Map with details its error handling cannot read (a string, not a dict); the
   ``States.Runtime`` error that follows turned ABORTED into FAILED. On AWS a stopped execution ends ABORTED
   whatever its states were doing, and neither a Retry nor a Catch runs.

12. ``ResourceEvalS3._handle_put_object``  a Distributed Map's ``ResultWriter`` writes the results too: moto
   writes the manifest with empty ``ResultFiles`` and drops the results ("TODO: results"). As on AWS, the
   iterations' outputs go to ``<prefix>/<map run id>/SUCCEEDED_0.json`` (each ``{"Name", "Status", "Output"}``,
   Output a JSON string; Name, standing for the child execution's, is the item's position), and a failed
   iteration (moto yields null) to ``FAILED_0.json``, listed in the manifest, so what a run did can be read back from S3.

Eight shortcuts, for speed alone: each keeps what moto or botocore would build again, identical, for every run,
and changes no behaviour (the whole e2e suite runs on them; benchmarks/local_cloud.py measures them).

13. ``json_path.parse``, ``result_path.parse``  one jsonpath-ng expression per path string: moto built a new
   PLY parser (its LR tables read again) for every InputPath, OutputPath, ResultPath and ResultSelector
   field of every state it evaluated. Expressions are immutable; ``find`` and ``update`` take the data.
14. ``AmazonStateLanguageParser.parse``  the ANTLR parse tree of each definition is kept (the last 32),
   and only the preprocessing into evaluation components, cheap and stateful, runs per execution: moto
   parsed the whole 20 KB definition on every StartExecution.
15. ``lambda_eval_utils.boto_client_for``  one Lambda client per region for every lambda:invoke Task; moto
   made a client per Task. moto's own client ignores the state's credentials, as this one does.
16. ``JSONFileLoader.load_file``  (botocore, pinned in pyproject.toml) each service model file is read and
   parsed once per process, and every session gets its own copy (a pickle round trip, 7x cheaper than the
   parse): pynamodb makes a session per thread, and every execution thread of the clock is a new thread.
17. ``Stack.parse_template``  a JSON template body (the local cloud deploys JSON) is read with ``json``: moto
   reads every body with PyYAML's pure-Python loader first, 40% of CreateStack for this template. YAML
   bodies still go to moto's loader.
18. ``parsing.generate_resource_name``  a stack's generated names end in a suffix derived from the stack and
   the logical id, not a random one, so every deploy of the template gets the same function ARNs, hence the
   same state machine definitions, and patch 14's cache serves them across the local clouds of a test
   session. CloudFormation's suffixes are opaque; nothing here reads them.
19. ``SQSBackend.is_message_valid_based_on_retention_period``  reads the queue's retention period itself: moto
   built the queue's whole attribute dict for each message it considered receiving, and three of those
   attributes count the queue's messages, so a receive from a queue of N messages cost N x 3N checks (a
   morning's outbox of 2,000 texts, which an outbox sender reads every virtual second, spent 84% of its time
   there). Same value, same comparison.
20. ``Queue.messages``, ``Queue.approximate_number_of_messages_delayed`` and ``..._not_visible``  read the
   clock once per scan of the queue, not once per message: every SendMessage builds the queue's attributes
   (for ``ContentBasedDeduplication``), and each count asked every message ``visible``/``delayed``, each a
   read of the (time-machine) clock. Same comparisons against the same instant.

DISTRIBUTED Maps run in moto 5.2.5 from ``ItemsPath`` as from an ItemReader, in-process: iterations are not
child executions and their events go to a throw-away history (the parent shows only MapRunStarted/Succeeded).
A failed iteration there yields ``null`` and the Map still succeeds: moto reads ToleratedFailure* but never
applies it; a stopped run logs MapRunSucceeded and MapStateSucceeded before ExecutionAborted. Neither is patched
(tests/integration/test_localcloud_map.py pins both). Parallel branches still run on plain threads, outside
the one-baton rule: Waits or Retry back-offs in more than one branch at once are not supported.

Two reads of moto state, no code replaced: ``Queue.lambda_event_source_mappings`` is emptied so the local
cloud's poller, not SendMessage, delivers SQS batches; ``Message.visible_at`` tells the poller when a
failed message comes back, and ``Message.delayed_until`` when a delayed one arrives.
"""

from __future__ import annotations

import hashlib
import json
import pickle
import threading
from collections import OrderedDict
from datetime import UTC, datetime
from functools import cache
from importlib.metadata import version
from types import SimpleNamespace
from typing import TYPE_CHECKING, Any

from botocore.loaders import JSONFileLoader
from moto.awslambda.models import LambdaFunction
from moto.cloudformation import parsing
from moto.cloudformation.models import Stack
from moto.core.models import botocore_stubber
from moto.core.utils import unix_time, unix_time_millis
from moto.sqs.models import Message, Queue, SQSBackend
from moto.stepfunctions.models import StateMachine
from moto.stepfunctions.responses import StepFunctionResponse
from moto.stepfunctions.parser.asl.component.common.path import result_path
from moto.stepfunctions.parser.asl.component.common.retry import retrier_decl
from moto.stepfunctions.parser.asl.component.common.error_name.failure_event import FailureEventException
from moto.stepfunctions.parser.asl.component.state.exec.state_map.iteration.inline_iteration_component import (
    InlineIterationComponent,
)
from moto.stepfunctions.parser.asl.component.state.exec.state_map.iteration.job import JobPool
from moto.stepfunctions.parser.asl.component.state.exec.state_map.result_writer.resource_eval.resource_eval_s3 import (
    ResourceEvalS3,
)
from moto.stepfunctions.parser.asl.component.state.exec.state_task import lambda_eval_utils
from moto.stepfunctions.parser.asl.component.state.wait.wait_function.timestamp import Timestamp
from moto.stepfunctions.parser.asl.component.state.wait.wait_function.wait_function import WaitFunction
from moto.stepfunctions.parser.asl.eval.environment import Environment
from moto.stepfunctions.parser.asl.eval.program_state import ProgramStopped
from moto.stepfunctions.parser.asl.parse.asl_parser import AmazonStateLanguageParser
from moto.stepfunctions.parser.asl.parse.preprocessor import Preprocessor
from moto.stepfunctions.parser.asl.utils import json_path
from moto.stepfunctions.parser.backend.execution_worker import ExecutionWorker
from moto.stepfunctions.parser.utils import TMP_THREADS

if TYPE_CHECKING:
    from localcloud.clock import VirtualClock
    from localcloud.runtime import InProcessRuntime

PINNED_MOTO = "5.2.5"
PINNED_BOTOCORE = "1.44.5"

_active: dict[str, Any] = {"clock": None, "runtime": None}
_originals: dict[str, Any] = {}
_lock = threading.Lock()


class MotoVersionMismatch(RuntimeError):
    pass


def activate(clock: "VirtualClock", runtime: "InProcessRuntime") -> None:
    install()
    _active["clock"], _active["runtime"] = clock, runtime


def deactivate() -> None:
    _active["clock"] = _active["runtime"] = None


def _clock() -> "VirtualClock":
    clock = _active["clock"]
    if clock is None:
        raise RuntimeError("no local cloud is active: executions need its virtual clock")
    return clock


def _wait_interval(self: WaitFunction, env: Any, wait_seconds: float) -> None:
    if wait_seconds > 0 and env.is_running():
        _clock().sleep(wait_seconds)


def _timestamp_wait_seconds(self: Timestamp, env: Any) -> float:
    self.string.eval(env=env)
    text = env.stack.pop()
    if self._from_timestamp_string(timestamp=text) is None:
        raise FailureEventException(self._create_failure_event(env, text))
    stamp = datetime.fromisoformat(text)
    stamp = stamp if stamp.tzinfo is not None else stamp.replace(tzinfo=UTC)
    return (stamp - _clock().now()).total_seconds()


def _start(self: ExecutionWorker) -> None:
    clock = _clock()
    self._clock_actor = clock.register(self._evaluation_details.execution_details.name)
    _run_as_actor(clock, self._clock_actor, self._execution_logic)


def _run_as_actor(clock: "VirtualClock", actor: Any, target: Any) -> None:
    def run() -> None:
        clock.enter(actor)
        try:
            target()
        finally:
            clock.exit()

    thread = threading.Thread(target=run, daemon=True, name=f"sfn:{actor.name}")
    TMP_THREADS.append(thread)
    thread.start()


def _launch_worker(self: InlineIterationComponent, env: Any, eval_input: Any, job_pool: JobPool) -> Any:
    clock = _clock()
    worker = self._create_worker(env=env, eval_input=eval_input, job_pool=job_pool)
    parent = clock.current_actor()
    _run_as_actor(clock, clock.register(f"{parent.name}/{eval_input.state_name}", parent=parent), worker.eval)
    return worker


def _await_jobs(self: JobPool) -> None:
    if not self._is_terminated():
        clock = _clock()
        self._clock_waiter = clock.current_actor()
        clock.block()


def _notify_on_termination(self: JobPool) -> None:
    _originals["pool_ended"](self)
    waiter = getattr(self, "_clock_waiter", None)
    if waiter is not None and self._is_terminated():
        self._clock_waiter = None
        _clock().release(waiter)


def _stop(self: ExecutionWorker, stop_date: Any, error: str | None, cause: str | None) -> None:
    if self.env is None:
        self._get_evaluation_environment = _stopped_at_start(self._get_evaluation_environment, stop_date, error,
                                                             cause)
    else:
        _originals["stop"](self, stop_date, error, cause)
    actor = getattr(self, "_clock_actor", None)
    if actor is not None:
        _clock().cancel(actor)


def _stopped_at_start(environment: Any, stop_date: Any, error: str | None, cause: str | None) -> Any:
    """The run's environment, stopped the first time the program asks whether it is running."""
    def stopped() -> Any:
        env = environment()

        def is_running() -> bool:
            env.set_stop(stop_date=stop_date, cause=cause, error=error)
            del env.is_running
            return env.is_running()

        env.is_running = is_running
        return env
    return stopped


def _set_error(self: Environment, error: Any) -> None:
    if not isinstance(self._program_state, ProgramStopped):
        _originals["set_error"](self, error)


def _result_writer_put_object(env: Environment, resource_runtime_part: Any, state_credentials: Any) -> None:
    parameters = env.stack.pop()
    results = env.stack.pop()
    s3 = ResourceEvalS3._get_s3_client(resource_runtime_part=resource_runtime_part,
                                       state_credentials=state_credentials)
    map_run_arn = env.map_run_record_pool_manager.get_all().pop().map_run_arn
    prefix = parameters["Prefix"] if not parameters["Prefix"] or parameters["Prefix"].endswith("/") else (
        parameters["Prefix"] + "/")
    folder = f"{prefix}{map_run_arn.split(':')[-1]}/"
    files: dict[str, list[dict[str, Any]]] = {"FAILED": [], "PENDING": [], "SUCCEEDED": []}
    numbered = [(f"{n:08d}", r) for n, r in enumerate(results)]  # child names in item order
    records = {"SUCCEEDED": [{"Name": name, "Status": "SUCCEEDED", "Output": json.dumps(r)}
                             for name, r in numbered if r is not None],
               "FAILED": [{"Name": name, "Status": "FAILED"} for name, r in numbered if r is None]}
    for status, written in records.items():
        if written:
            body = json.dumps(written).encode("utf8")
            s3.put_object(Bucket=parameters["Bucket"], Key=f"{folder}{status}_0.json", Body=body)
            files[status].append({"Key": f"{folder}{status}_0.json", "Size": len(body)})
    manifest = {"DestinationBucket": parameters["Bucket"], "MapRunArn": map_run_arn, "ResultFiles": files}
    s3.put_object(Bucket=parameters["Bucket"], Key=f"{folder}manifest.json",
                  Body=json.dumps(manifest, indent=2).encode("utf8"))
    env.stack.append({"MapRunArn": map_run_arn,
                      "ResultWriterDetails": {"Bucket": parameters["Bucket"], "Key": f"{folder}manifest.json"}})


def _invoke_lambda(self: LambdaFunction, event: str | None = None) -> tuple[str, bool, str]:
    runtime = _active["runtime"]
    if runtime is None:
        return _originals["invoke"](self, event)
    return runtime.invoke(self, event)


@classmethod  # type: ignore[misc]
def _state_machine_from_cfn(cls: type, resource_name: str, cloudformation_json: Any, account_id: str,
                            region_name: str, **kwargs: Any) -> StateMachine:
    from moto.stepfunctions.parser.models import stepfunctions_parser_backends

    properties = cloudformation_json["Properties"]
    definition = properties.get("DefinitionString") or json.dumps(properties.get("Definition", {}))
    for key, value in (properties.get("DefinitionSubstitutions") or {}).items():
        definition = definition.replace("${" + key + "}", str(value))
    backend = stepfunctions_parser_backends[account_id][region_name]
    return backend.create_state_machine(
        name=properties.get("StateMachineName", resource_name),
        definition=definition,
        roleArn=properties.get("RoleArn", ""),
        tags=[{"key": t["Key"], "value": t["Value"]} for t in properties.get("Tags", [])],
        sm_type=properties.get("StateMachineType", "STANDARD"),
    )


def _stop_execution_response(self: Any) -> Any:
    from moto.core.responses import ActionResult
    from moto.core.utils import utcnow

    execution = self.stepfunction_backend.describe_execution(self._get_param("executionArn"))
    execution.stop(stop_date=utcnow(), error=self._get_param("error", ""), cause=self._get_param("cause", ""))
    return ActionResult({"stopDate": execution.stop_date})


def detach_sqs_event_sources(region: str, queue_name: str) -> None:
    from moto.core import DEFAULT_ACCOUNT_ID
    from moto.sqs.models import sqs_backends

    sqs_backends[DEFAULT_ACCOUNT_ID][region].queues[queue_name].lambda_event_source_mappings.clear()


def next_visible_at(region: str, queue_name: str, now: Any) -> Any:
    """When the earliest in-flight or delayed message of a queue becomes receivable (UTC), or None."""

    from moto.core import DEFAULT_ACCOUNT_ID
    from moto.sqs.models import sqs_backends

    queue = sqs_backends[DEFAULT_ACCOUNT_ID][region].queues[queue_name]
    # moto shows a hidden message once its visibility time is past (strictly), a delayed one at its delay's end.
    at = now.timestamp() * 1000
    waiting = [max(m.visible_at + 1 if at <= m.visible_at else 0, m.delayed_until if at < m.delayed_until else 0)
               for m in queue._messages if at <= m.visible_at or at < m.delayed_until]
    if not waiting:
        return None
    return max(datetime.fromtimestamp(min(waiting) / 1000, UTC), now)


_parse_trees: OrderedDict[str, Any] = OrderedDict()
_loaded_files: dict[str, bytes | None] = {}


def _parse_definition(definition: str) -> tuple[Any, Any]:
    with _lock:
        tree = _parse_trees.get(definition)
        if tree is not None:
            _parse_trees.move_to_end(definition)
    if tree is None:
        program, tree = _originals["asl_parse"](definition)
        with _lock:
            _parse_trees[definition] = tree
            while len(_parse_trees) > 32:
                _parse_trees.popitem(last=False)
        return program, tree
    return Preprocessor().visit(tree), tree


def _lambda_client_for(region: str, service: str, state_credentials: Any = None) -> Any:
    return _client_for(region, service, botocore_stubber.enabled)


@cache
def _client_for(region: str, service: str, intercepting: bool) -> Any:
    return _originals["boto_client_for"](region=region, service=service)


def _load_file(self: JSONFileLoader, file_path: str) -> Any:
    if file_path not in _loaded_files:
        data = _originals["load_file"](self, file_path)
        _loaded_files[file_path] = None if data is None else pickle.dumps(data, pickle.HIGHEST_PROTOCOL)
    kept = _loaded_files[file_path]
    return None if kept is None else pickle.loads(kept)


def _parse_stack_template(template: str) -> dict[str, Any]:
    if template.lstrip().startswith("{"):
        try:
            parsed: dict[str, Any] = json.loads(template)
            return parsed
        except ValueError:
            pass
    return _originals["stack_template"](template)  # type: ignore[no-any-return]


def _stable_resource_name(resource_type: str, stack_name: str, logical_id: str) -> str:
    name: str = _originals["resource_name"](resource_type, stack_name, logical_id)
    suffix = hashlib.sha256(f"{stack_name}/{logical_id}".encode()).hexdigest()[:12].upper()
    return name[:-12] + (suffix.lower() if resource_type == "AWS::S3::Bucket" else suffix)


def _within_retention(self: SQSBackend, queue_name: str, message: Message) -> bool:
    retention = int(self.get_queue(queue_name).message_retention_period)
    return retention + message.sent_timestamp / 1000 > unix_time()  # type: ignore[operator]


def _visible_messages(self: Queue) -> list[Message]:
    now = unix_time_millis()
    return [m for m in self._messages if now > m.visible_at and not now < m.delayed_until]


def _count_delayed(self: Queue) -> int:
    now = unix_time_millis()
    return sum(1 for m in self._messages if now < m.delayed_until)


def _count_not_visible(self: Queue) -> int:
    now = unix_time_millis()
    return sum(1 for m in self._messages if not now > m.visible_at)


_QUEUE_SCANS = {"messages": _visible_messages, "approximate_number_of_messages_delayed": _count_delayed,
                "approximate_number_of_messages_not_visible": _count_not_visible}


def install() -> None:
    with _lock:
        if _originals:
            return
        for package, pinned in (("moto", PINNED_MOTO), ("botocore", PINNED_BOTOCORE)):
            if (found := version(package)) != pinned:
                raise MotoVersionMismatch(
                    f"the local cloud patches {package} {pinned} internals; found {package} {found}. "
                    "Re-check infra/localcloud/patches.py against the new version before bumping the pin."
                )
        _originals.update(
            wait=WaitFunction._wait_interval,
            retry_time=retrier_decl.time,
            start=ExecutionWorker.start,
            stop=ExecutionWorker.stop,
            invoke=LambdaFunction._invoke_lambda,
            sm_cfn=StateMachine.__dict__["create_from_cloudformation_json"],
            stop_response=StepFunctionResponse.stop_execution,
            timestamp_wait=Timestamp._get_wait_seconds,
            launch_worker=InlineIterationComponent._launch_worker,
            await_jobs=JobPool.await_jobs,
            pool_ended=JobPool._notify_on_termination,
            set_error=Environment.set_error,
            result_writer=ResourceEvalS3.__dict__["_handle_put_object"],
            json_path_parse=json_path.parse,
            result_path_parse=result_path.parse,
            asl_parse=AmazonStateLanguageParser.parse,
            boto_client_for=lambda_eval_utils.boto_client_for,
            load_file=JSONFileLoader.load_file,
            stack_template=Stack.parse_template,
            resource_name=parsing.generate_resource_name,
            retention=SQSBackend.is_message_valid_based_on_retention_period,
            queue_scans={name: Queue.__dict__[name] for name in _QUEUE_SCANS},
        )
        json_path.parse = cache(json_path.parse)
        result_path.parse = cache(result_path.parse)
        AmazonStateLanguageParser.parse = staticmethod(_parse_definition)  # type: ignore[method-assign]
        lambda_eval_utils.boto_client_for = _lambda_client_for
        JSONFileLoader.load_file = _load_file
        Stack.parse_template = staticmethod(_parse_stack_template)  # type: ignore[method-assign]
        parsing.generate_resource_name = _stable_resource_name
        SQSBackend.is_message_valid_based_on_retention_period = _within_retention  # type: ignore[method-assign]
        for name, scan in _QUEUE_SCANS.items():
            setattr(Queue, name, property(scan))
        ResourceEvalS3._handle_put_object = staticmethod(_result_writer_put_object)
        Environment.set_error = _set_error
        InlineIterationComponent._launch_worker = _launch_worker
        JobPool.await_jobs = _await_jobs
        JobPool._notify_on_termination = _notify_on_termination
        Timestamp._get_wait_seconds = _timestamp_wait_seconds
        WaitFunction._wait_interval = _wait_interval
        retrier_decl.time = SimpleNamespace(sleep=lambda seconds: _clock().sleep(seconds))
        ExecutionWorker.start = _start
        ExecutionWorker.stop = _stop
        LambdaFunction._invoke_lambda = _invoke_lambda
        StateMachine.create_from_cloudformation_json = _state_machine_from_cfn
        StepFunctionResponse.stop_execution = _stop_execution_response


def uninstall() -> None:
    with _lock:
        if not _originals:
            return
        WaitFunction._wait_interval = _originals["wait"]
        retrier_decl.time = _originals["retry_time"]
        ExecutionWorker.start = _originals["start"]
        ExecutionWorker.stop = _originals["stop"]
        LambdaFunction._invoke_lambda = _originals["invoke"]
        StateMachine.create_from_cloudformation_json = _originals["sm_cfn"]
        StepFunctionResponse.stop_execution = _originals["stop_response"]
        Timestamp._get_wait_seconds = _originals["timestamp_wait"]
        InlineIterationComponent._launch_worker = _originals["launch_worker"]
        JobPool.await_jobs = _originals["await_jobs"]
        JobPool._notify_on_termination = _originals["pool_ended"]
        Environment.set_error = _originals["set_error"]
        ResourceEvalS3._handle_put_object = _originals["result_writer"]
        json_path.parse = _originals["json_path_parse"]
        result_path.parse = _originals["result_path_parse"]
        AmazonStateLanguageParser.parse = staticmethod(_originals["asl_parse"])  # type: ignore[method-assign]
        lambda_eval_utils.boto_client_for = _originals["boto_client_for"]
        JSONFileLoader.load_file = _originals["load_file"]
        Stack.parse_template = staticmethod(_originals["stack_template"])  # type: ignore[method-assign]
        parsing.generate_resource_name = _originals["resource_name"]
        SQSBackend.is_message_valid_based_on_retention_period = _originals["retention"]  # type: ignore[method-assign]
        for name, original in _originals["queue_scans"].items():
            setattr(Queue, name, original)
        _originals.clear()
