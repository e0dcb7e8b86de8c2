"""Kubernetes' label selector (``matchLabels``, ``matchExpressions``).

Apart from ``k8s.py`` because the conversion to Calico selectors
(``convert.py``) reads it, and ``k8s.py`` checks that its policies convert.
"""

from __future__ import annotations

from typing import Literal

from pydantic import Field, field_validator, model_validator

from gingham.model.meta import Labels, Model, ProblemList, Str
from gingham.selector.labels import label_key_problem, label_value_problem


class LabelSelectorRequirement(Model):
    key: Str
    operator: Literal["In", "NotIn", "Exists", "DoesNotExist"]
    values: tuple[Str, ...] = ()

    @field_validator("key")
    @classmethod
    def _key(cls, key: str) -> str:
        problem = label_key_problem(key)
        if problem:
            raise ValueError(problem)
        return key

    @model_validator(mode="after")
    def _values(self) -> LabelSelectorRequirement:
        problems = ProblemList()
        for i, value in enumerate(self.values):
            problem = label_value_problem(value)
            if problem:
                problems.add(f"values[{i}]", problem)
        if self.operator in ("In", "NotIn") and not self.values:
            problems.add("values", f"operator {self.operator} needs at least one value")
        if self.operator in ("Exists", "DoesNotExist") and self.values:
            problems.add("values", f"operator {self.operator} takes no values")
        problems.raise_if_any()
        return self


class LabelSelector(Model):
    """Kubernetes' label selector; the empty selector matches everything."""

    match_labels: Labels = Field(default_factory=dict)
    match_expressions: tuple[LabelSelectorRequirement, ...] = ()
