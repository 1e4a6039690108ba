"""railvision's HTTP inference service: FastAPI on the ONNX engine, with dynamic batching.

Run it with ``railvision serve`` or ``uvicorn railvision.serve.app:app`` (settings from ``RAILVISION_*``).
It only adds HTTP to the library: it imports ``railvision``, never the other way round.
"""
