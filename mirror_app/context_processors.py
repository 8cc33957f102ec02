def environment(request) -> dict:
    """Every page says which environment it shows: always paper here."""
    return {"IFNS_ENV": "paper"}
