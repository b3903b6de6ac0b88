"""Template helpers of the annotations pages."""
from __future__ import annotations

from django import template

from annotations.selectors import user_is_researcher

register = template.Library()


@register.filter(name="is_researcher")
def is_researcher(user: object) -> bool:
    """The site header shows the researcher's navigation to researchers (staff or the researcher group)."""
    return user_is_researcher(user)  # type: ignore[arg-type]
