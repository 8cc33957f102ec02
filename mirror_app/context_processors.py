from sessions_app.selectors import kill_switches_in_force


def environment(request) -> dict:
    """Every page says which environment it shows (always paper here) and which kill
    switches are not ``active``, for the header: a halted scope is impossible to miss."""
    context = {"IFNS_ENV": "paper"}
    if getattr(request, "user", None) is not None and request.user.is_authenticated:
        context["SWITCHES_IN_FORCE"] = kill_switches_in_force()
    return context
