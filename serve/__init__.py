"""railvision's HTTP inference service: FastAPI on the ONNX engine, with dynamic batching.

Run it with ``railvision serve`` or ``uvicorn serve.app:app`` (settings from ``RAILVISION_*``).
"""
