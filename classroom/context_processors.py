from django.http import HttpRequest

from classroom.auth import is_instructor


def instructor(request: HttpRequest) -> dict[str, bool]:
    """``instructor`` in every page: true for the instructor, and for everyone when no token applies."""
    return {"instructor": is_instructor(request)}
