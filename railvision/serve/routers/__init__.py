"""The HTTP routes, one router per module: ``v1`` (the API, behind the key) and ``public`` (health, metrics, page)."""
