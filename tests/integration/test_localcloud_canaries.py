"""Canaries: each fails loudly when moto changes code that infra/localcloud/patches.py replaces or reads.

They read moto's own source (not ours) for the lines each patch was written against, so a moto bump that
moves a seam fails here with the seam's name, not somewhere deep in an end-to-end test.
"""

from __future__ import annotations

import inspect
from importlib.metadata import version
from pathlib import Path

import boto3
import pytest
from botocore.loaders import JSONFileLoader
from moto import mock_aws
from moto.awslambda.models import LambdaFunction
from moto.cloudformation import parsing
from moto.cloudformation.models import Stack
from moto.core import DEFAULT_ACCOUNT_ID
from moto.sqs.models import Message, Queue, SQSBackend, sqs_backends
from moto.stepfunctions.models import StateMachine
from moto.stepfunctions.responses import StepFunctionResponse
from moto.stepfunctions.parser.asl.component.common.path import result_path
from moto.stepfunctions.parser.asl.component.common.retry import retrier_decl
from moto.stepfunctions.parser.asl.component.program.program import Program
from moto.stepfunctions.parser.asl.component.state.exec.execute_state import ExecutionState
from moto.stepfunctions.parser.asl.component.state.exec.state_map.iteration.distributed_iteration_component import (
    DistributedIterationComponent,
)
from moto.stepfunctions.parser.asl.component.state.exec.state_map.iteration.inline_iteration_component import (
    InlineIterationComponent,
)
from moto.stepfunctions.parser.asl.component.state.exec.state_map.iteration.iteration_worker import IterationWorker
from moto.stepfunctions.parser.asl.component.state.exec.state_map.iteration.job import JobPool
from moto.stepfunctions.parser.asl.component.state.exec.state_map.result_writer.resource_eval.resource_eval_s3 import (
    ResourceEvalS3,
)
from moto.stepfunctions.parser.asl.component.state.exec.state_task import lambda_eval_utils
from moto.stepfunctions.parser.asl.component.state.wait.wait_function.wait_function import WaitFunction
from moto.stepfunctions.parser.asl.eval.environment import Environment
from moto.stepfunctions.parser.asl.parse.asl_parser import AmazonStateLanguageParser
from moto.stepfunctions.parser.asl.utils import json_path
from moto.stepfunctions.parser.backend.execution_worker import ExecutionWorker

from localcloud import patches


@pytest.fixture(autouse=True)
def moto_as_shipped():
    """Read moto's originals, whatever an earlier local cloud in this session installed."""
    patches.uninstall()


def _source(obj) -> str:
    return inspect.getsource(obj)


def test_moto_is_the_pinned_version():
    assert version("moto") == patches.PINNED_MOTO


def test_wait_states_still_block_on_the_program_state_event():
    source = _source(WaitFunction._wait_interval)
    assert "def _wait_interval(self, env: Environment, wait_seconds: int) -> None:" in source
    assert "env.program_state_event.wait(wait_seconds)" in source


def test_retry_backoff_still_sleeps_with_the_module_level_time():
    assert "time.sleep(interval_seconds)" in _source(retrier_decl.RetrierDecl._eval_body)
    assert "import time" in _source(retrier_decl)


def test_executions_still_start_one_thread_running_execution_logic():
    start = _source(ExecutionWorker.start)
    assert "Thread(target=self._execution_logic, daemon=True)" in start
    assert "self.env.set_stop(stop_date=stop_date, cause=cause, error=error)" in _source(ExecutionWorker.stop)
    assert "self._evaluation_details.execution_details.name" in _source(ExecutionWorker)


def test_a_run_still_makes_its_environment_on_its_own_thread_and_first_asks_if_it_is_running():
    """A stop before the run's first turn is applied through these three lines (patches._stopped_at_start)."""
    assert "self.env = None" in _source(ExecutionWorker.__init__)
    assert "self.env = self._get_evaluation_environment()" in _source(ExecutionWorker._execution_logic)
    assert "while env.is_running():" in _source(Program._eval_body)


def test_the_program_still_runs_on_a_child_thread_of_the_execution():
    """The clock attributes child threads to the baton holder; this is the child thread it expects."""
    assert "threading.Thread(target=super().eval, args=(env,), daemon=True)" in _source(Program.eval)


def test_every_lambda_invoke_path_still_ends_in_invoke_lambda():
    assert "def _invoke_lambda(self, event: str | None = None) -> tuple[str, bool, str]:" in _source(
        LambdaFunction._invoke_lambda
    )
    assert "self._invoke_lambda(event=body)" in _source(LambdaFunction.invoke)
    for attribute in ("self.function_name", "self.environment_vars", "self.memory_size", "self.timeout"):
        assert attribute in _source(LambdaFunction.__init__)


def test_cloudformation_state_machines_still_ignore_definition_substitutions():
    source = _source(StateMachine.create_from_cloudformation_json)
    assert 'properties.get("DefinitionString", "")' in source
    assert "DefinitionSubstitutions" not in source  # when moto learns them, drop patch 5


def test_stop_execution_still_drops_error_and_cause():
    source = _source(StepFunctionResponse.stop_execution)
    assert 'arn = self._get_param("executionArn")' in source
    assert "stop_execution(arn)" in source  # when moto passes error and cause on, drop patch 6
    assert 'execution.stop(stop_date=utcnow(), error="", cause="")' in _source(StateMachine.stop_execution)


def test_sqs_still_invokes_event_sources_synchronously_from_its_mapping_dict():
    source = _source(Queue)
    assert "self.lambda_event_source_mappings: dict[str, EventSourceMapping] = {}" in source
    assert "for arn, esm in self.lambda_event_source_mappings.items():" in source
    message = _source(Message)
    assert "self.visible_at = unix_time_millis() + visibility_timeout_msec" in message
    assert isinstance(inspect.getattr_static(Message, "visible"), property)


def test_sns_still_delivers_to_lambda_through_the_seam_and_cloudformation_still_skips_subscriptions():
    """deploy.py creates AWS::SNS::Subscription itself (COMPLETED_BY_LOCALCLOUD); when moto's CloudFormation
    learns the type, drop that and let the stack create it."""
    from moto.awslambda.models import LambdaBackend
    from moto.cloudformation.parsing import get_model_map
    from moto.sns.models import Subscription

    assert "get_backend(self.account_id, region).send_sns_message(" in _source(Subscription.publish)
    assert "func.invoke(json.dumps(event), {}, {})" in _source(LambdaBackend.send_sns_message)
    assert "AWS::SNS::Subscription" not in get_model_map()


def test_cloudformation_still_skips_http_apis_and_reimport_still_turns_the_body_into_routes():
    """deploy.py creates AWS::ApiGatewayV2::Api and ::Stage itself (COMPLETED_BY_LOCALCLOUD) and imports the SAM
    OpenAPI body with ReimportApi; LocalCloud.http reads the routes and integrations that import makes. When
    moto's CloudFormation learns these types, let the stack create them (and keep reading the routes)."""
    from moto.apigatewayv2.models import Api
    from moto.cloudformation.parsing import get_model_map

    assert not {"AWS::ApiGatewayV2::Api", "AWS::ApiGatewayV2::Stage"} & set(get_model_map())
    source = _source(Api.import_api)
    assert 'route_key = f"{method.upper()} {path}"' in source
    assert 'if int_type == "x-amazon-apigateway-integration":' in source
    assert 'integration_uri=type_details.get("uri"),' in source
    assert 'target=f"integrations/{integration.id}",' in source


def test_timestamp_waits_are_still_truncated_to_whole_seconds():
    from moto.stepfunctions.parser.asl.component.state.wait.wait_function.timestamp import Timestamp

    assert "delta_sec = int(delta.total_seconds())" in _source(Timestamp._get_wait_seconds)


def test_map_workers_still_each_start_one_plain_thread_and_the_map_waits_on_its_pool_event():
    """Patches 8-10: every Map (INLINE, DISTRIBUTED, the legacy Iterator) launches workers through the one
    ``_launch_worker``, at most MaxConcurrency of them, and waits on the pool's termination event."""
    from moto.stepfunctions.parser.asl.component.state.exec.state_map.iteration.itemprocessor.distributed_item_processor import (  # noqa: E501
        DistributedItemProcessor,
    )
    from moto.stepfunctions.parser.asl.component.state.exec.state_map.iteration.itemprocessor.inline_item_processor import (  # noqa: E501
        InlineItemProcessor,
    )
    from moto.stepfunctions.parser.asl.component.state.exec.state_map.iteration.iterator.distributed_iterator import (
        DistributedIterator,
    )
    from moto.stepfunctions.parser.asl.component.state.exec.state_map.iteration.iterator.inline_iterator import (
        InlineIterator,
    )

    launch = _source(InlineIterationComponent._launch_worker)
    assert "worker = self._create_worker(env=env, eval_input=eval_input, job_pool=job_pool)" in launch
    assert "worker_thread = threading.Thread(target=worker.eval, daemon=True)" in launch
    for component in (InlineItemProcessor, DistributedItemProcessor, InlineIterator, DistributedIterator):
        assert component._launch_worker is InlineIterationComponent._launch_worker, component
    for runs_the_pool in (InlineIterationComponent._eval_body, DistributedIterationComponent._map_run):
        source = _source(runs_the_pool)
        assert "else max_concurrency" in source
        assert "self._launch_worker(env=env, eval_input=eval_input, job_pool=job_pool)" in source
        assert "job_pool.await_jobs()" in source
        assert "if worker_exception is not None:" in source
    await_jobs = _source(JobPool.await_jobs)
    assert "if not self._is_terminated():" in await_jobs
    assert "self._termination_event.wait()" in await_jobs
    assert "self._termination_event.set()" in _source(JobPool._notify_on_termination)
    assert "self._notify_on_termination()" in _source(JobPool.close_job)
    assert "self._job_pool.next_job()" in _source(IterationWorker._eval_pool)


def test_a_stopped_map_still_raises_its_abort_with_details_moto_cannot_read_and_set_error_still_overrides_a_stop():
    """Patch 11: when moto keeps a stopped program stopped (or gives the abort readable details), drop it."""
    assert "executionFailedEventDetails=end_program_state.error" in _source(IterationWorker._eval_job)
    assert 'spec_event_details.get("error", "")' in _source(ExecutionState._construct_error_output_value)
    set_error = _source(Environment.set_error)
    assert "self._program_state = ProgramError(error=error)" in set_error
    assert "ProgramStopped" not in set_error
    assert "env.set_error(" in _source(Program._eval_body)


def test_the_result_writer_still_writes_only_the_manifest_and_drops_the_results():
    source = _source(ResourceEvalS3._handle_put_object)
    assert "env.stack.pop()  # TODO: results" in source
    assert '"ResultFiles": {"FAILED": [], "PENDING": [], "SUCCEEDED": []}' in source
    assert '"ResultWriterDetails": {"Bucket": parameters["Bucket"], "Key": key}' in source


def test_install_replaces_exactly_the_documented_targets_and_uninstall_restores_them():
    from moto.stepfunctions.parser.asl.component.state.wait.wait_function.timestamp import Timestamp

    def targets() -> tuple:
        return (WaitFunction._wait_interval, retrier_decl.time, ExecutionWorker.start, ExecutionWorker.stop,
                LambdaFunction._invoke_lambda, StateMachine.__dict__["create_from_cloudformation_json"],
                StepFunctionResponse.stop_execution, Timestamp._get_wait_seconds,
                InlineIterationComponent._launch_worker, JobPool.await_jobs, JobPool._notify_on_termination,
                Environment.set_error, ResourceEvalS3.__dict__["_handle_put_object"], json_path.parse,
                result_path.parse, AmazonStateLanguageParser.parse, lambda_eval_utils.boto_client_for,
                JSONFileLoader.load_file, Stack.parse_template, parsing.generate_resource_name,
                SQSBackend.is_message_valid_based_on_retention_period,
                *(Queue.__dict__[name] for name in patches._QUEUE_SCANS))

    originals = targets()
    patches.install()
    try:
        assert WaitFunction._wait_interval is patches._wait_interval
        assert retrier_decl.time is not originals[1]
        assert ExecutionWorker.start is patches._start
        assert ExecutionWorker.stop is patches._stop
        assert LambdaFunction._invoke_lambda is patches._invoke_lambda
        assert StateMachine.__dict__["create_from_cloudformation_json"] is patches._state_machine_from_cfn
        assert StepFunctionResponse.stop_execution is patches._stop_execution_response
        assert Timestamp._get_wait_seconds is patches._timestamp_wait_seconds
        assert InlineIterationComponent._launch_worker is patches._launch_worker
        assert JobPool.await_jobs is patches._await_jobs
        assert JobPool._notify_on_termination is patches._notify_on_termination
        assert Environment.set_error is patches._set_error
        assert ResourceEvalS3.__dict__["_handle_put_object"].__func__ is patches._result_writer_put_object
        assert json_path.parse.__wrapped__ is originals[13]
        assert result_path.parse.__wrapped__ is originals[14]
        assert AmazonStateLanguageParser.parse is patches._parse_definition
        assert lambda_eval_utils.boto_client_for is patches._lambda_client_for
        assert JSONFileLoader.load_file is patches._load_file
        assert Stack.parse_template is patches._parse_stack_template
        assert parsing.generate_resource_name is patches._stable_resource_name
        assert SQSBackend.is_message_valid_based_on_retention_period is patches._within_retention
        assert all(Queue.__dict__[name].fget is scan for name, scan in patches._QUEUE_SCANS.items())
    finally:
        patches.uninstall()
    assert targets() == originals


@pytest.mark.parametrize("package", ["moto", "botocore"])
def test_a_different_moto_or_botocore_version_refuses_to_patch(monkeypatch, package):
    monkeypatch.setattr(patches, "version", lambda name: "9.9.9" if name == package else version(name))
    with pytest.raises(patches.MotoVersionMismatch, match=f"{package} 9.9.9"):
        patches.install()


def test_the_state_machines_still_parse_json_paths_with_a_new_parser_per_call():
    """Patch 13: when moto caches the expressions itself, drop the patch."""
    assert "input_expr = parse(path)" in _source(json_path.extract_json)
    assert "from jsonpath_ng.ext import parse" in _source(json_path)
    assert "result_expr = parse(self.result_path_src)" in _source(result_path)
    assert "from jsonpath_ng import parse" in _source(result_path)


def test_every_execution_still_parses_its_definition_and_the_parse_still_ends_in_one_preprocessor_visit():
    """Patch 14 keeps the tree and runs ``Preprocessor().visit(tree)`` again, which is what parse ends with."""
    from moto.stepfunctions.parser.backend.execution_worker import ExecutionWorker as Worker

    assert "return AmazonStateLanguageParser.parse(" in _source(Worker._get_evaluation_entrypoint)
    parse = _source(AmazonStateLanguageParser.parse)
    assert "preprocessor = Preprocessor()\n        program = preprocessor.visit(tree)" in parse
    assert "return program, tree" in parse


def test_lambda_tasks_still_make_a_client_per_task_that_ignores_the_state_credentials():
    from moto.stepfunctions.parser.asl.utils import boto_client

    for invoke in (lambda_eval_utils._invoke_lambda_function, lambda_eval_utils.exec_lambda_function):
        assert "lambda_client = boto_client_for(" in _source(invoke)
    made = _source(boto_client.boto_client_for)
    assert "state_credentials" not in made.split("return boto3.client(")[1]
    assert "intercepting_boto_calls = botocore_stubber.enabled" in made


def test_stacks_still_read_every_template_body_with_pyyaml_first():
    """Patch 17: when moto tries JSON first, drop it."""
    source = _source(Stack.parse_template)
    assert "return yaml.load(template, Loader=yaml.Loader)" in source
    assert source.index("yaml.load") < source.index("json.loads")
    assert "self.template_dict = self.parse_template(self.template)" in _source(Stack._parse_template)


def test_generated_names_still_end_in_a_twelve_character_random_suffix_and_have_one_caller():
    """Patch 18 replaces the last twelve characters of the name moto generates."""
    from moto.cloudformation.utils import random_suffix

    source = _source(parsing.generate_resource_name)
    assert source.count("random_suffix()") == 4
    assert all(line.rstrip().endswith(("random_suffix()}\"", "random_suffix()}\".lower()"))
               for line in source.splitlines() if "random_suffix()}" in line)
    assert "size = 12" in _source(random_suffix)
    assert _source(parsing).count("generate_resource_name(") == 2  # the definition and its one caller


def test_sqs_still_builds_every_queue_attribute_to_read_the_retention_period_of_each_message_it_receives():
    """Patch 19 reads the one attribute; the counts moto builds with it scan the queue."""
    source = _source(SQSBackend.is_message_valid_based_on_retention_period)
    assert 'self.get_queue_attributes(\n            queue_name, ["MessageRetentionPeriod"]' in source
    assert "retain_until <= unix_time()" in source
    assert "if not self.is_message_valid_based_on_retention_period(" in _source(SQSBackend.receive_message)
    assert "for attribute in self.BASE_ATTRIBUTES" in _source(Queue.attributes.fget)  # type: ignore[union-attr]
    assert "ApproximateNumberOfMessagesDelayed" in Queue.BASE_ATTRIBUTES
    with mock_aws():
        boto3.client("sqs", region_name="us-east-1").create_queue(
            QueueName="canary", Attributes={"MessageRetentionPeriod": "120"})
        queue = sqs_backends[DEFAULT_ACCOUNT_ID]["us-east-1"].get_queue("canary")
        assert int(queue.message_retention_period) == 120  # what the patch reads


def test_sqs_still_asks_each_message_for_the_time_when_it_scans_a_queue():
    """Patch 20 makes the same comparisons against one reading of the clock."""
    assert "current_time > self.visible_at" in _source(Message.visible.fget)  # type: ignore[union-attr]
    assert "current_time < self.delayed_until" in _source(Message.delayed.fget)  # type: ignore[union-attr]
    assert "if message.visible and not message.delayed" in _source(Queue.messages.fget)  # type: ignore[union-attr]
    assert "[m for m in self._messages if m.delayed]" in _source(
        Queue.approximate_number_of_messages_delayed.fget)  # type: ignore[union-attr]
    assert "[m for m in self._messages if not m.visible]" in _source(
        Queue.approximate_number_of_messages_not_visible.fget)  # type: ignore[union-attr]


def test_botocore_still_loads_each_model_file_through_load_file():
    from botocore import loaders

    assert "def load_file(self, file_path):" in _source(JSONFileLoader.load_file)
    assert "found = self.file_loader.load_file(possible_path)" in _source(loaders)


def test_the_caches_give_each_caller_its_own_copy_and_the_same_program_as_a_fresh_parse(tmp_path):
    (tmp_path / "model.json").write_text('{"shapes": {"A": {"type": "string"}}}')
    definition = (Path(__file__).parents[2] / "statemachines" / "appointment_lifecycle.asl.json").read_text()
    fresh = AmazonStateLanguageParser.parse(definition)[0]
    patches.install()
    try:
        first, second = (JSONFileLoader().load_file(str(tmp_path / "model")) for _ in range(2))
        assert first == second == {"shapes": {"A": {"type": "string"}}} and first is not second
        programs = [AmazonStateLanguageParser.parse(definition)[0] for _ in range(3)]
    finally:
        patches.uninstall()
    assert programs[1] is not programs[2]
    assert all(_shape(p) == _shape(fresh) for p in programs)


def _shape(component, depth: int = 0) -> object:
    """A component tree as nested type names and plain values, to compare two parses of one definition."""
    if depth > 40:
        return "..."
    if isinstance(component, (str, int, float, bool, type(None))):
        return component
    if isinstance(component, (list, tuple)):
        return [_shape(c, depth + 1) for c in component]
    if isinstance(component, dict):
        return {k: _shape(v, depth + 1) for k, v in sorted(component.items(), key=lambda kv: str(kv[0]))}
    if hasattr(component, "__dict__"):
        return [type(component).__name__,
                {k: _shape(v, depth + 1) for k, v in sorted(vars(component).items()) if not k.startswith("__")}]
    return type(component).__name__
