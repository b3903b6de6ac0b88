"""`{% study_plan_get study as plan %}`: the manage page's planning panel reads its numbers here,
so the page's view stays untouched (templates/annotations/_plan.html)."""
from __future__ import annotations

from typing import Any

from django import template

from annotations.models import Study
from annotations.selectors import study_plan

register = template.Library()


@register.simple_tag
def study_plan_get(study: Study) -> dict[str, Any]:
    return study_plan(study=study)
