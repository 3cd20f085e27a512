"""Prepaid courses in DynamoDB (``CourseStore``), and the same contract in memory."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date, datetime

from pynamodb.exceptions import PutError

from medspa.domain.course import Course
from medspa.ports.memberships import DEFAULT_DUE_SHARDS

from .errors import transient_errors_named
from .models import CourseItem, condition_failed, update_if


class CourseRepository:
    def __init__(self, model: type[CourseItem], due_shards: int = DEFAULT_DUE_SHARDS) -> None:
        self._model = model
        self.due_shards = due_shards

    def get(self, course_id: str) -> tuple[Course, int] | None:
        try:
            with transient_errors_named():
                item = self._model.get(course_id, consistent_read=True)
        except self._model.DoesNotExist:
            return None
        return Course.model_validate_json(item.state), int(item.record_version)

    def create(self, course: Course, due: tuple[str, date] | None, now: datetime) -> bool:
        item = self._model(course.course_id, state=course.model_dump_json(), updated_at=now, record_version=1,
                           due_shard=due[0] if due else None, due_on=due[1].isoformat() if due else None)
        try:
            item.save(condition=self._model.course_id.does_not_exist(), add_version_condition=False)
        except PutError as error:
            if condition_failed(error):
                return False
            raise
        return True

    def replace(self, course: Course, read_version: int, due: tuple[str, date] | None, now: datetime) -> bool:
        m = self._model
        actions = [m.state.set(course.model_dump_json()), m.updated_at.set(now),
                   m.record_version.set(read_version + 1)]
        actions += ([m.due_shard.set(due[0]), m.due_on.set(due[1].isoformat())] if due
                    else [m.due_shard.remove(), m.due_on.remove()])
        return update_if(m, course.course_id, actions, m.record_version == read_version) is not None

    def due(self, shard: str, on_or_before: date) -> list[str]:
        with transient_errors_named():
            return [i.course_id for i in self._model.by_due_day.query(shard, self._model.due_on <= on_or_before.isoformat())]


@dataclass
class InMemoryCourses:
    items: dict[str, tuple[str, int, tuple[str, date] | None]] = field(default_factory=dict)
    due_shards: int = DEFAULT_DUE_SHARDS

    def get(self, course_id: str) -> tuple[Course, int] | None:
        held = self.items.get(course_id)
        return (Course.model_validate_json(held[0]), held[1]) if held else None

    def create(self, course: Course, due: tuple[str, date] | None, now: datetime) -> bool:
        if course.course_id in self.items:
            return False
        self.items[course.course_id] = (course.model_dump_json(), 1, due)
        return True

    def replace(self, course: Course, read_version: int, due: tuple[str, date] | None, now: datetime) -> bool:
        held = self.items.get(course.course_id)
        if held is None or held[1] != read_version:
            return False
        self.items[course.course_id] = (course.model_dump_json(), read_version + 1, due)
        return True

    def due(self, shard: str, on_or_before: date) -> list[str]:
        return sorted(k for k, (_, _, d) in self.items.items() if d is not None and d[0] == shard and d[1] <= on_or_before)
